//! The self-service sign-up part of the store: sign-up records, email codes (credential tokens
//! of purpose `signup`), and the deletion of a signed-up account's tenancy.

use gatehouse_core::error::{CoreError, CoreResult, Rejection};
use gatehouse_core::model::{Profile, TokenPurpose, User};
use gatehouse_core::signup::DeletionScope;
use gatehouse_core::store::{NewUser, SignupRecord};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use crate::rows::{flag, get, get_flag, parse_uuid, user_from_row, USER_COLUMNS};
use crate::{db_error, insert_history, insert_new_user, Engine, SqlStore, Tx};

const SIGNUP_COLUMNS: &str =
    "user_id, owns_tenant, created_at, activated_at, privacy_policy_accepted_at";

fn signup_from_row(row: &AnyRow) -> CoreResult<SignupRecord> {
    Ok(SignupRecord {
        user_id: parse_uuid(row, "user_id")?,
        owns_tenant: get_flag(row, "owns_tenant")?,
        created_at: get(row, "created_at")?,
        activated_at: get(row, "activated_at")?,
        privacy_policy_accepted_at: get(row, "privacy_policy_accepted_at")?,
    })
}

/// Voids every email code of a user.
async fn delete_email_codes(tx: &mut Tx, user_id: &str) -> CoreResult<()> {
    sqlx::query("DELETE FROM credential_tokens WHERE user_id = $1 AND purpose = $2")
        .bind(user_id)
        .bind(TokenPurpose::EmailVerification.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The rule of an address being taken: a user's email or login name equals `$1` in any letter
/// case. Both comparisons have an index on the lower-cased column (migration 0006).
const ADDRESS_MATCHES: &str = "LOWER(email) = LOWER($1) OR LOWER(username) = LOWER($1)";

/// Whether an address is taken (see [`ADDRESS_MATCHES`]), within a transaction.
async fn address_taken(tx: &mut Tx, address: &str) -> CoreResult<bool> {
    let sql = format!("SELECT id FROM users WHERE {ADDRESS_MATCHES} LIMIT 1");
    let taken: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(address)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(taken.is_some())
}

/// Pending sign-ups, within a transaction.
async fn pending_signups(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
) -> CoreResult<u64> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signups WHERE activated_at IS NULL")
        .fetch_one(executor)
        .await
        .map_err(db_error)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

impl SqlStore {
    /// See `Store::insert_signup`. Sign-ups are serialized (SQLite's write lock; a table lock on
    /// PostgreSQL), so the address check and the cap hold under parallel sign-ups.
    pub(crate) async fn store_signup(
        &self,
        user: NewUser,
        record: SignupRecord,
        max_pending: u64,
    ) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        if self.engine == Engine::Postgres {
            sqlx::query("LOCK TABLE signups IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        let address = user
            .user
            .profile
            .email
            .clone()
            .unwrap_or_else(|| user.user.username.clone());
        if address_taken(&mut tx, &address).await? {
            return Err(CoreError::conflict(format!(
                "a user with the address '{address}' already exists"
            )));
        }
        if pending_signups(&mut *tx).await? >= max_pending {
            return Err(CoreError::RateLimited {
                retry_after_secs: 600,
            });
        }
        insert_new_user(&mut tx, &user).await?;
        let id = user.user.id.to_string();
        if let Some(hash) = &user.password_hash {
            insert_history(&mut tx, &id, hash, record.created_at).await?;
        }
        sqlx::query(
            "INSERT INTO signups (user_id, owns_tenant, created_at, activated_at, \
             privacy_policy_accepted_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(flag(record.owns_tenant))
        .bind(record.created_at)
        .bind(record.activated_at)
        .bind(record.privacy_policy_accepted_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    /// See `Store::user_by_address_any_case`.
    pub(crate) async fn select_user_by_address(&self, address: &str) -> CoreResult<Option<User>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {ADDRESS_MATCHES} \
             ORDER BY CASE WHEN email = $1 THEN 0 WHEN username = $1 THEN 1 ELSE 2 END, id LIMIT 1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(address)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    /// See `Store::signup`.
    pub(crate) async fn select_signup(&self, user_id: Uuid) -> CoreResult<Option<SignupRecord>> {
        let sql = format!("SELECT {SIGNUP_COLUMNS} FROM signups WHERE user_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(signup_from_row)
            .transpose()
    }

    /// See `Store::renew_pending_signup`.
    pub(crate) async fn renew_signup(
        &self,
        user_id: Uuid,
        password_hash: &str,
        profile: &Profile,
        now: i64,
    ) -> CoreResult<()> {
        let id = user_id.to_string();
        let mut tx = self.begin_write().await?;
        // Only while pending: an account that was ever enabled is never changed by a sign-up.
        let renewed = sqlx::query(
            "UPDATE signups SET created_at = $2 WHERE user_id = $1 AND activated_at IS NULL",
        )
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if renewed != 1 {
            return Err(CoreError::not_found("pending sign-up"));
        }
        sqlx::query(
            "UPDATE users SET password_hash = $2, password_changed_at = $3, first_name = $4, \
             last_name = $5, phone = $6, additional_info = $7 WHERE id = $1",
        )
        .bind(&id)
        .bind(password_hash)
        .bind(now)
        .bind(profile.first_name.as_deref())
        .bind(profile.last_name.as_deref())
        .bind(profile.phone.as_deref())
        .bind(profile.additional_info.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query("DELETE FROM password_history WHERE user_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_history(&mut tx, &id, password_hash, now).await?;
        delete_email_codes(&mut tx, &id).await?;
        tx.commit().await.map_err(db_error)
    }

    /// See `Store::verify_signup_email`.
    pub(crate) async fn use_email_code(
        &self,
        digest: &str,
        now: i64,
    ) -> CoreResult<Result<Uuid, Rejection>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT user_id, expires_at FROM credential_tokens WHERE digest = $1 AND purpose = $2",
        )
        .bind(digest)
        .bind(TokenPurpose::EmailVerification.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(Err(Rejection::EmailCodeUnknown));
        };
        let user_id: String = row.try_get("user_id").map_err(db_error)?;
        let expires_at: i64 = row.try_get("expires_at").map_err(db_error)?;
        if expires_at <= now {
            return Ok(Err(Rejection::EmailCodeExpired));
        }
        // Deleting the code is the claim: of parallel uses exactly one deletes it.
        let claimed =
            sqlx::query("DELETE FROM credential_tokens WHERE digest = $1 AND purpose = $2")
                .bind(digest)
                .bind(TokenPurpose::EmailVerification.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
        if claimed != 1 {
            return Ok(Err(Rejection::EmailCodeUnknown));
        }
        delete_email_codes(&mut tx, &user_id).await?;
        let verified = sqlx::query(
            "UPDATE signups SET activated_at = $2 WHERE user_id = $1 \
             AND activated_at IS NULL",
        )
        .bind(&user_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if verified != 1 {
            return Ok(Err(Rejection::EmailCodeUnknown));
        }
        sqlx::query(
            "UPDATE users SET credentials_enabled = 1, failed_login_attempts = 0 WHERE id = $1",
        )
        .bind(&user_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Uuid::parse_str(&user_id)
            .map(Ok)
            .map_err(CoreError::internal)
    }

    /// Ends a pending sign-up that an administrator enabled (see `Store::activate_signup`).
    pub(crate) async fn settle_signup(&self, user_id: Uuid, now: i64) -> CoreResult<()> {
        let id = user_id.to_string();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE signups SET activated_at = $2 WHERE user_id = $1 AND activated_at IS NULL",
        )
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        delete_email_codes(&mut tx, &id).await?;
        tx.commit().await.map_err(db_error)
    }

    /// See `Store::accept_privacy_policy`.
    pub(crate) async fn record_privacy_policy(&self, user_id: Uuid, now: i64) -> CoreResult<()> {
        sqlx::query(
            "UPDATE signups SET privacy_policy_accepted_at = $2 WHERE user_id = $1 \
             AND privacy_policy_accepted_at IS NULL",
        )
        .bind(user_id.to_string())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// See `Store::count_unverified_signups`.
    pub(crate) async fn unverified_signups(&self) -> CoreResult<u64> {
        pending_signups(&self.pool).await
    }

    /// See `Store::purge_unverified_signups`.
    pub(crate) async fn purge_signups(&self, created_before: i64, limit: u32) -> CoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let purged = sqlx::query(
            "DELETE FROM users WHERE id IN (SELECT user_id FROM signups \
             WHERE activated_at IS NULL AND created_at < $1 ORDER BY created_at LIMIT $2)",
        )
        .bind(created_before)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(purged)
    }

    /// See `Store::delete_tenancy`.
    pub(crate) async fn remove_tenancy(&self, scope: DeletionScope) -> CoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let users = match scope {
            DeletionScope::Tenant(tenant_id) => {
                let tenant = tenant_id.to_string();
                // Domain links go with their client or domain (cascade).
                for sql in [
                    "DELETE FROM oauth2_clients WHERE tenant_id = $1",
                    "DELETE FROM domains WHERE tenant_id = $1",
                ] {
                    sqlx::query(sql)
                        .bind(&tenant)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
                sqlx::query("DELETE FROM users WHERE tenant_id = $1")
                    .bind(&tenant)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .rows_affected()
            }
            DeletionScope::Customer {
                tenant_id,
                customer_id,
            } => sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND customer_id = $2")
                .bind(tenant_id.to_string())
                .bind(customer_id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected(),
        };
        tx.commit().await.map_err(db_error)?;
        Ok(users)
    }
}

//! The MFA part of the store: factors, backup codes, sent codes and the second-factor failure
//! counter. Everything that uses something up is one conditional statement, so that parallel
//! requests (and replicas) cannot use it twice.

use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::mfa::{MfaFactor, MfaProvider};
use gatehouse_core::store::MfaAttempt;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use crate::rows::{count_u32, flag, get, get_flag, parse_uuid};
use crate::{db_error, map_error, placeholders, SqlStore, Tx};

/// Columns of `mfa_factors f` read into an [`MfaFactor`], with the backup codes left.
const FACTOR_COLUMNS: &str = "f.user_id, f.provider, f.enrolled, f.use_by_default, \
    f.sealed_secret, f.contact, f.created_at, \
    (SELECT COUNT(*) FROM mfa_backup_codes b WHERE b.user_id = f.user_id) AS codes_left";

fn factor_from_row(row: &AnyRow) -> CoreResult<MfaFactor> {
    let provider: String = get(row, "provider")?;
    let provider = MfaProvider::parse(&provider)
        .ok_or_else(|| CoreError::internal(format!("stored MFA provider {provider:?}")))?;
    let codes_left = if provider == MfaProvider::BackupCode {
        count_u32(get(row, "codes_left")?)
    } else {
        0
    };
    Ok(MfaFactor {
        user_id: parse_uuid(row, "user_id")?,
        provider,
        enrolled: get_flag(row, "enrolled")?,
        use_by_default: get_flag(row, "use_by_default")?,
        sealed_secret: get(row, "sealed_secret")?,
        contact: get(row, "contact")?,
        codes_left,
        created_at: get(row, "created_at")?,
    })
}

/// Sets the user's `mfa_enrolled` flag from its enrolled factors (backup codes alone do not
/// count).
async fn sync_enrolled_flag(tx: &mut Tx, user_id: &str) -> CoreResult<()> {
    sqlx::query(
        "UPDATE users SET mfa_enrolled = CASE WHEN EXISTS (SELECT 1 FROM mfa_factors \
         WHERE user_id = $1 AND enrolled = 1 AND provider <> 'BACKUP_CODE') THEN 1 ELSE 0 END \
         WHERE id = $1",
    )
    .bind(user_id)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

impl SqlStore {
    pub(crate) async fn select_mfa_factors(&self, user_id: Uuid) -> CoreResult<Vec<MfaFactor>> {
        let sql = format!(
            "SELECT {FACTOR_COLUMNS} FROM mfa_factors f WHERE f.user_id = $1 \
             ORDER BY f.provider, f.enrolled"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(user_id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(factor_from_row).collect()
    }

    pub(crate) async fn store_mfa_factor(
        &self,
        factor: MfaFactor,
        backup_code_digests: Option<Vec<String>>,
    ) -> CoreResult<()> {
        let user_id = factor.user_id.to_string();
        let provider = factor.provider.as_str();
        let mut tx = self.begin_write().await?;
        if factor.enrolled {
            sqlx::query(
                "DELETE FROM mfa_factors WHERE user_id = $1 AND provider = $2 AND enrolled = 0",
            )
            .bind(&user_id)
            .bind(provider)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        // The replay guard of a row is kept: steps only grow, so the last step of an earlier
        // seed refuses nothing a new seed could produce now.
        sqlx::query(
            "INSERT INTO mfa_factors (user_id, provider, enrolled, use_by_default, sealed_secret, \
             contact, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (user_id, provider, enrolled) DO UPDATE SET \
             use_by_default = excluded.use_by_default, sealed_secret = excluded.sealed_secret, \
             contact = excluded.contact, code_digest = NULL, code_expires_at = NULL, \
             created_at = excluded.created_at",
        )
        .bind(&user_id)
        .bind(provider)
        .bind(flag(factor.enrolled))
        .bind(flag(factor.use_by_default))
        .bind(factor.sealed_secret.as_deref())
        .bind(factor.contact.as_deref())
        .bind(factor.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|error| map_error(error, "the factor exists", "user"))?;
        if factor.use_by_default {
            sqlx::query(
                "UPDATE mfa_factors SET use_by_default = 0 WHERE user_id = $1 \
                 AND NOT (provider = $2 AND enrolled = $3)",
            )
            .bind(&user_id)
            .bind(provider)
            .bind(flag(factor.enrolled))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        if let Some(digests) = backup_code_digests {
            sqlx::query("DELETE FROM mfa_backup_codes WHERE user_id = $1")
                .bind(&user_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            for digest in digests {
                sqlx::query("INSERT INTO mfa_backup_codes (user_id, digest) VALUES ($1, $2)")
                    .bind(&user_id)
                    .bind(digest)
                    .execute(&mut *tx)
                    .await
                    .map_err(|error| map_error(error, "duplicate backup code", "user"))?;
            }
        }
        sync_enrolled_flag(&mut tx, &user_id).await?;
        tx.commit().await.map_err(db_error)
    }

    pub(crate) async fn remove_mfa_factors(
        &self,
        user_id: Uuid,
        providers: &[MfaProvider],
    ) -> CoreResult<u64> {
        if providers.is_empty() {
            return Ok(0);
        }
        let user_id = user_id.to_string();
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "DELETE FROM mfa_factors WHERE user_id = $1 AND provider IN ({})",
            placeholders(2, providers.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(&user_id);
        for provider in providers {
            query = query.bind(provider.as_str());
        }
        let removed = query
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        if providers.contains(&MfaProvider::BackupCode) {
            sqlx::query("DELETE FROM mfa_backup_codes WHERE user_id = $1")
                .bind(&user_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        sync_enrolled_flag(&mut tx, &user_id).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(removed)
    }

    pub(crate) async fn take_totp_step(&self, user_id: Uuid, step: u64) -> CoreResult<bool> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let result = sqlx::query(
            "UPDATE mfa_factors SET last_totp_step = $2 WHERE user_id = $1 AND provider = 'TOTP' \
             AND enrolled = 1 AND (last_totp_step IS NULL OR last_totp_step < $2)",
        )
        .bind(user_id.to_string())
        .bind(step)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    pub(crate) async fn take_backup_code(&self, user_id: Uuid, digest: &str) -> CoreResult<bool> {
        let result = sqlx::query("DELETE FROM mfa_backup_codes WHERE user_id = $1 AND digest = $2")
            .bind(user_id.to_string())
            .bind(digest)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    pub(crate) async fn put_mfa_code(
        &self,
        user_id: Uuid,
        provider: MfaProvider,
        enrolled: bool,
        digest: &str,
        expires_at: i64,
    ) -> CoreResult<bool> {
        let result = sqlx::query(
            "UPDATE mfa_factors SET code_digest = $4, code_expires_at = $5 \
             WHERE user_id = $1 AND provider = $2 AND enrolled = $3",
        )
        .bind(user_id.to_string())
        .bind(provider.as_str())
        .bind(flag(enrolled))
        .bind(digest)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() > 0)
    }

    pub(crate) async fn take_mfa_code(
        &self,
        user_id: Uuid,
        provider: MfaProvider,
        enrolled: bool,
        digest: &str,
        now: i64,
    ) -> CoreResult<bool> {
        let result = sqlx::query(
            "UPDATE mfa_factors SET code_digest = NULL, code_expires_at = NULL \
             WHERE user_id = $1 AND provider = $2 AND enrolled = $3 AND code_digest = $4 \
             AND code_expires_at > $5",
        )
        .bind(user_id.to_string())
        .bind(provider.as_str())
        .bind(flag(enrolled))
        .bind(digest)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    pub(crate) async fn count_mfa_attempt(
        &self,
        user_id: Uuid,
        limit: Option<u32>,
        now: i64,
    ) -> CoreResult<MfaAttempt> {
        let id = user_id.to_string();
        // One statement: the row lock (PostgreSQL) or the write lock (SQLite) makes the check
        // and the increment atomic.
        let counted = sqlx::query(
            "UPDATE users SET mfa_failed_attempts = mfa_failed_attempts + 1 \
             WHERE id = $1 AND COALESCE(mfa_banned_until, 0) <= $3 \
             AND ($2 IS NULL OR mfa_failed_attempts < $2) RETURNING mfa_failed_attempts",
        )
        .bind(&id)
        .bind(limit.map(i64::from))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        if let Some(row) = counted {
            let count: i64 = row.try_get("mfa_failed_attempts").map_err(db_error)?;
            return Ok(MfaAttempt::Counted(count_u32(count)));
        }
        let row = sqlx::query("SELECT mfa_banned_until FROM users WHERE id = $1")
            .bind(&id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .ok_or(CoreError::not_found("user"))?;
        let banned_until: Option<i64> = row.try_get("mfa_banned_until").map_err(db_error)?;
        Ok(match banned_until {
            Some(until) if until > now => MfaAttempt::BannedUntil(until),
            _ => MfaAttempt::Exhausted,
        })
    }

    pub(crate) async fn start_mfa_ban(
        &self,
        user_id: Uuid,
        until: i64,
        now: i64,
    ) -> CoreResult<i64> {
        let id = user_id.to_string();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE users SET mfa_banned_until = $2, mfa_failed_attempts = 0 \
             WHERE id = $1 AND COALESCE(mfa_banned_until, 0) <= $3",
        )
        .bind(&id)
        .bind(until)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let row = sqlx::query("SELECT mfa_banned_until FROM users WHERE id = $1")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or(CoreError::not_found("user"))?;
        let in_force: Option<i64> = row.try_get("mfa_banned_until").map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(in_force.unwrap_or(until))
    }

    pub(crate) async fn clear_mfa_attempts(&self, user_id: Uuid) -> CoreResult<()> {
        sqlx::query(
            "UPDATE users SET mfa_failed_attempts = 0 WHERE id = $1 AND mfa_failed_attempts <> 0",
        )
        .bind(user_id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }
}

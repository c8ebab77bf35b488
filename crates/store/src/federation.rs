//! The federated-login part of the store: logins under way (taken once by their callback) and
//! the links from a provider's subject to a user.

use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::federation::FederationLogin;
use sqlx::Row;
use uuid::Uuid;

use crate::rows::get;
use crate::{db_error, map_error, SqlStore};

impl SqlStore {
    pub(crate) async fn store_federation_login(
        &self,
        login: FederationLogin,
        now: i64,
    ) -> CoreResult<()> {
        sqlx::query("DELETE FROM federation_logins WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO federation_logins (state_digest, provider, binding_digest, nonce, \
             redirect_uri, return_to, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&login.state_digest)
        .bind(&login.provider)
        .bind(&login.binding_digest)
        .bind(&login.nonce)
        .bind(&login.redirect_uri)
        .bind(login.return_to.as_deref())
        .bind(login.created_at)
        .bind(login.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|error| map_error(error, "a login with this state exists", "login"))?;
        Ok(())
    }

    pub(crate) async fn count_logins(&self, now: i64) -> CoreResult<u64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS pending FROM federation_logins WHERE expires_at > $1")
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        let pending: i64 = get(&row, "pending")?;
        Ok(u64::try_from(pending).unwrap_or_default())
    }

    pub(crate) async fn take_login(
        &self,
        state_digest: &str,
    ) -> CoreResult<Option<FederationLogin>> {
        // One statement: of two parallel callbacks with the same state, one deletes the row.
        let row = sqlx::query(
            "DELETE FROM federation_logins WHERE state_digest = $1 RETURNING state_digest, \
             provider, binding_digest, nonce, redirect_uri, return_to, created_at, expires_at",
        )
        .bind(state_digest)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|row| {
            Ok(FederationLogin {
                state_digest: get(&row, "state_digest")?,
                provider: get(&row, "provider")?,
                binding_digest: get(&row, "binding_digest")?,
                nonce: get(&row, "nonce")?,
                redirect_uri: get(&row, "redirect_uri")?,
                return_to: get(&row, "return_to")?,
                created_at: get(&row, "created_at")?,
                expires_at: get(&row, "expires_at")?,
            })
        })
        .transpose()
    }

    pub(crate) async fn select_federated_user(
        &self,
        provider: &str,
        subject: &str,
    ) -> CoreResult<Option<Uuid>> {
        let row = sqlx::query(
            "SELECT user_id FROM federated_identities WHERE provider = $1 AND subject = $2",
        )
        .bind(provider)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|row| {
            let id: String = row.try_get("user_id").map_err(db_error)?;
            id.parse().map_err(CoreError::internal)
        })
        .transpose()
    }

    pub(crate) async fn insert_federated_identity(
        &self,
        provider: &str,
        subject: &str,
        user_id: Uuid,
        now: i64,
    ) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO federated_identities (provider, subject, user_id, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(provider)
        .bind(subject)
        .bind(user_id.to_string())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|error| map_error(error, "the identity is linked to a user", "user"))?;
        Ok(())
    }
}

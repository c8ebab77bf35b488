//! The device-onboarding part of the store: client registration requests (a grant creates the
//! user in the same transaction) and trusted certificates.

use std::str::FromStr;

use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::permission::{Context, Grant, Operation, Resource};
use gatehouse_core::registry::{CredentialType, Registration, RegistrationOrigin};
use gatehouse_core::store::{NewUser, TrustedCertificate};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::rows::{flag, get, get_flag};
use crate::{db_error, insert_new_user, map_error, SqlStore};

const REGISTRATION_COLUMNS: &str = "username, credential_type, password_hash, csr, \
    requested_roles, requested_permissions, context, origin, created_at, granted, certificate, \
    user_id";

fn permissions_json(grants: &[Grant]) -> String {
    Value::Array(
        grants
            .iter()
            .map(|grant| {
                json!({
                    "resource": grant.resource.as_str(),
                    "operation": grant.operation.as_str(),
                    "context": grant.context.as_str(),
                })
            })
            .collect(),
    )
    .to_string()
}

fn permissions_from_json(text: &str) -> CoreResult<Vec<Grant>> {
    let stored = |reason: String| CoreError::internal(format!("stored permissions: {reason}"));
    let wrong = |reason: &dyn std::fmt::Display| stored(reason.to_string());
    let values: Vec<Value> = serde_json::from_str(text).map_err(|e| stored(e.to_string()))?;
    values
        .iter()
        .map(|value| {
            let field = |name: &str| {
                value
                    .get(name)
                    .and_then(Value::as_str)
                    .ok_or_else(|| stored(format!("no {name}")))
            };
            let context = Context::from_str(field("context")?).map_err(|e| wrong(&e))?;
            Ok(Grant {
                resource: Resource::parse(field("resource")?, context).map_err(|e| wrong(&e))?,
                operation: Operation::from_str(field("operation")?).map_err(|e| wrong(&e))?,
                context,
            })
        })
        .collect()
}

fn registration_from_row(row: &AnyRow) -> CoreResult<Registration> {
    let credential_type: String = get(row, "credential_type")?;
    let origin: String = get(row, "origin")?;
    let roles: String = get(row, "requested_roles")?;
    let permissions: String = get(row, "requested_permissions")?;
    let user_id: Option<String> = get(row, "user_id")?;
    Ok(Registration {
        username: get(row, "username")?,
        credential_type: CredentialType::parse(&credential_type).ok_or_else(|| {
            CoreError::internal(format!("stored credential type {credential_type:?}"))
        })?,
        password_hash: get(row, "password_hash")?,
        csr: get(row, "csr")?,
        requested_roles: serde_json::from_str(&roles).map_err(CoreError::internal)?,
        requested_permissions: permissions_from_json(&permissions)?,
        context: get(row, "context")?,
        origin: RegistrationOrigin::parse(&origin)
            .ok_or_else(|| CoreError::internal(format!("stored origin {origin:?}")))?,
        created_at: get(row, "created_at")?,
        granted: get_flag(row, "granted")?,
        certificate: get(row, "certificate")?,
        user_id: user_id
            .map(|id| id.parse().map_err(CoreError::internal))
            .transpose()?,
    })
}

impl SqlStore {
    pub(crate) async fn store_registration(&self, registration: Registration) -> CoreResult<()> {
        let roles =
            serde_json::to_string(&registration.requested_roles).map_err(CoreError::internal)?;
        sqlx::query(
            "INSERT INTO registry_requests (username, credential_type, password_hash, csr, \
             requested_roles, requested_permissions, context, origin, created_at, granted) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)",
        )
        .bind(&registration.username)
        .bind(registration.credential_type.as_str())
        .bind(registration.password_hash.as_deref())
        .bind(registration.csr.as_deref())
        .bind(roles)
        .bind(permissions_json(&registration.requested_permissions))
        .bind(registration.context.as_deref())
        .bind(registration.origin.as_str())
        .bind(registration.created_at)
        .execute(&self.pool)
        .await
        .map_err(|error| {
            map_error(
                error,
                &format!("a registration for '{}' exists", registration.username),
                "registration",
            )
        })?;
        Ok(())
    }

    pub(crate) async fn select_registrations(
        &self,
        username: Option<&str>,
    ) -> CoreResult<Vec<Registration>> {
        let sql = match username {
            Some(_) => {
                format!("SELECT {REGISTRATION_COLUMNS} FROM registry_requests WHERE username = $1")
            }
            None => format!(
                "SELECT {REGISTRATION_COLUMNS} FROM registry_requests ORDER BY created_at, username"
            ),
        };
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(username) = username {
            query = query.bind(username.to_owned());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db_error)?;
        rows.iter().map(registration_from_row).collect()
    }

    pub(crate) async fn count_pending(&self) -> CoreResult<u64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS pending FROM registry_requests WHERE granted = 0")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(u64::try_from(get::<i64>(&row, "pending")?).unwrap_or(0))
    }

    pub(crate) async fn grant(
        &self,
        username: &str,
        user: NewUser,
        certificate: Option<String>,
    ) -> CoreResult<bool> {
        let mut tx = self.begin_write().await?;
        // The request is claimed first: of parallel grants, the others find it granted (or wait
        // for the row and then find it granted) and report it gone, before touching users.
        let claimed = sqlx::query(
            "UPDATE registry_requests SET granted = $1, certificate = $2 \
             WHERE username = $3 AND granted = 0",
        )
        .bind(flag(true))
        .bind(certificate.as_deref())
        .bind(username)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        insert_new_user(&mut tx, &user).await?;
        sqlx::query("UPDATE registry_requests SET user_id = $1 WHERE username = $2")
            .bind(user.user.id.to_string())
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    pub(crate) async fn store_trusted(
        &self,
        certificates: Vec<TrustedCertificate>,
    ) -> CoreResult<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let mut added = Vec::new();
        for certificate in certificates {
            let inserted = sqlx::query(
                "INSERT INTO trusted_certificates (id, pem, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&certificate.id)
            .bind(&certificate.pem)
            .bind(certificate.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if inserted > 0 {
                added.push(certificate.id);
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(added)
    }

    pub(crate) async fn select_trusted(&self) -> CoreResult<Vec<TrustedCertificate>> {
        let rows = sqlx::query(
            "SELECT id, pem, created_at FROM trusted_certificates ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(TrustedCertificate {
                    id: row.try_get("id").map_err(db_error)?,
                    pem: row.try_get("pem").map_err(db_error)?,
                    created_at: row.try_get("created_at").map_err(db_error)?,
                })
            })
            .collect()
    }

    pub(crate) async fn remove_trusted(&self, id: &str) -> CoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM trusted_certificates WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(deleted > 0)
    }
}

//! Decoding of stored rows into core types. Stored values were validated on the way in; a row
//! that no longer parses is reported as an internal error rather than trusted.

use std::str::FromStr;

use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::model::{IdentityProvider, Role, Session, User, UserCredentials};
use gatehouse_core::permission::{Context, Grant, Operation, Permission, Resource};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

/// Columns of `users` read into a [`User`].
pub const USER_COLUMNS: &str = "id, username, identity_provider, grant_types, auto_generated, \
    mqtt_publish_prefix, enforce_mfa_enrollment, mfa_enrolled, created_at";

/// Columns of `roles r` read into a [`Role`].
pub const ROLE_COLUMNS: &str = "r.id, r.name, r.is_shared, r.auto_generated, r.ldap_group_dn, \
    r.ms_entra_id_group_ids, r.owner_user_id, r.builtin";

/// A flag as stored: 0 or 1.
pub fn flag(value: bool) -> i64 {
    i64::from(value)
}

fn get<T>(row: &AnyRow, column: &str) -> CoreResult<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column).map_err(CoreError::internal)
}

fn get_flag(row: &AnyRow, column: &str) -> CoreResult<bool> {
    Ok(get::<i64>(row, column)? != 0)
}

/// A UUID column.
pub fn parse_uuid(row: &AnyRow, column: &str) -> CoreResult<Uuid> {
    Uuid::from_str(&get::<String>(row, column)?).map_err(CoreError::internal)
}

/// A row with [`USER_COLUMNS`].
pub fn user_from_row(row: &AnyRow) -> CoreResult<User> {
    let provider: String = get(row, "identity_provider")?;
    let grant_types: String = get(row, "grant_types")?;
    Ok(User {
        id: parse_uuid(row, "id")?,
        username: get(row, "username")?,
        auto_generated: get_flag(row, "auto_generated")?,
        mqtt_publish_prefix: get(row, "mqtt_publish_prefix")?,
        identity_provider: IdentityProvider::parse(&provider)
            .ok_or_else(|| CoreError::internal(format!("stored identity provider {provider:?}")))?,
        grant_types: serde_json::from_str(&grant_types).map_err(CoreError::internal)?,
        enforce_mfa_enrollment: get_flag(row, "enforce_mfa_enrollment")?,
        mfa_enrolled: get_flag(row, "mfa_enrolled")?,
        created_at: get(row, "created_at")?,
    })
}

/// A row with [`USER_COLUMNS`] and `password_hash`.
pub fn credentials_from_row(row: &AnyRow) -> CoreResult<UserCredentials> {
    Ok(UserCredentials {
        user: user_from_row(row)?,
        password_hash: get(row, "password_hash")?,
    })
}

/// A row with [`ROLE_COLUMNS`]; permissions are filled in separately.
pub fn role_from_row(row: &AnyRow) -> CoreResult<Role> {
    let owner: Option<String> = get(row, "owner_user_id")?;
    Ok(Role {
        id: parse_uuid(row, "id")?,
        name: get(row, "name")?,
        is_shared: get_flag(row, "is_shared")?,
        auto_generated: get_flag(row, "auto_generated")?,
        ldap_group_dn: get(row, "ldap_group_dn")?,
        ms_entra_id_group_ids: get(row, "ms_entra_id_group_ids")?,
        owner_user_id: owner
            .map(|id| Uuid::from_str(&id).map_err(CoreError::internal))
            .transpose()?,
        builtin: get_flag(row, "builtin")?,
        permissions: Vec::new(),
    })
}

/// A row with `id, resource, operation, context`.
pub fn permission_from_row(row: &AnyRow) -> CoreResult<Permission> {
    let context =
        Context::from_str(&get::<String>(row, "context")?).map_err(CoreError::internal)?;
    let operation =
        Operation::from_str(&get::<String>(row, "operation")?).map_err(CoreError::internal)?;
    let resource =
        Resource::parse(&get::<String>(row, "resource")?, context).map_err(CoreError::internal)?;
    Ok(Permission {
        id: parse_uuid(row, "id")?,
        grant: Grant {
            resource,
            operation,
            context,
        },
    })
}

/// A row of `sessions`.
pub fn session_from_row(row: &AnyRow) -> CoreResult<Session> {
    Ok(Session {
        id: parse_uuid(row, "id")?,
        user_id: parse_uuid(row, "user_id")?,
        fingerprint: get(row, "fingerprint")?,
        label: get(row, "label")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
    })
}

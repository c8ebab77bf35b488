//! Decoding of stored rows into core types. Stored values were validated on the way in; a row
//! that no longer parses is reported as an internal error rather than trusted.

use std::str::FromStr;

use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::model::{
    ApiKey, Authority, CredentialToken, IdentityProvider, Profile, Role, Session, SessionKind,
    Tenancy, TokenPurpose, User, UserCredentials,
};
use gatehouse_core::permission::{Context, Grant, Operation, Permission, Resource};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

/// Columns of `users` read into a [`User`].
pub const USER_COLUMNS: &str = "id, username, identity_provider, grant_types, auto_generated, \
    mqtt_publish_prefix, enforce_mfa_enrollment, mfa_enrolled, created_at, email, first_name, \
    last_name, phone, additional_info, authority, tenant_id, customer_id, credentials_enabled";

/// Columns of `users` read into [`UserCredentials`] (besides [`USER_COLUMNS`]).
pub const CREDENTIAL_COLUMNS: &str = "password_hash, password_changed_at, failed_login_attempts";

/// Columns of `roles r` read into a [`Role`].
pub const ROLE_COLUMNS: &str = "r.id, r.name, r.is_shared, r.auto_generated, r.ldap_group_dn, \
    r.ms_entra_id_group_ids, r.owner_user_id, r.builtin";

/// Columns of `sessions` read into a [`Session`].
pub const SESSION_COLUMNS: &str = "id, user_id, kind, fingerprint, label, created_at, expires_at";

/// Columns of `credential_tokens` read into a [`CredentialToken`].
pub const TOKEN_COLUMNS: &str = "digest, user_id, purpose, created_at, expires_at";

/// Columns of `api_keys` read into an [`ApiKey`].
pub const API_KEY_COLUMNS: &str =
    "id, user_id, digest, description, enabled, expiration_time, created_at";

/// A flag as stored: 0 or 1.
pub fn flag(value: bool) -> i64 {
    i64::from(value)
}

pub(crate) fn get<T>(row: &AnyRow, column: &str) -> CoreResult<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column).map_err(CoreError::internal)
}

pub(crate) fn get_flag(row: &AnyRow, column: &str) -> CoreResult<bool> {
    Ok(get::<i64>(row, column)? != 0)
}

/// A non-negative count as stored, clamped into `u32`.
pub fn count_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// A UUID column.
pub fn parse_uuid(row: &AnyRow, column: &str) -> CoreResult<Uuid> {
    Uuid::from_str(&get::<String>(row, column)?).map_err(CoreError::internal)
}

/// The storage name of a token purpose parsed back (the core only defines `as_str`).
pub fn parse_purpose(text: &str) -> Option<TokenPurpose> {
    [
        TokenPurpose::Activation,
        TokenPurpose::PasswordReset,
        TokenPurpose::EmailVerification,
    ]
    .into_iter()
    .find(|purpose| purpose.as_str() == text)
}

/// A row with [`USER_COLUMNS`].
pub fn user_from_row(row: &AnyRow) -> CoreResult<User> {
    let provider: String = get(row, "identity_provider")?;
    let grant_types: String = get(row, "grant_types")?;
    let authority: String = get(row, "authority")?;
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
        profile: Profile {
            email: get(row, "email")?,
            first_name: get(row, "first_name")?,
            last_name: get(row, "last_name")?,
            phone: get(row, "phone")?,
            additional_info: get(row, "additional_info")?,
        },
        tenancy: Tenancy {
            authority: Authority::parse(&authority)
                .ok_or_else(|| CoreError::internal(format!("stored authority {authority:?}")))?,
            tenant_id: parse_uuid(row, "tenant_id")?,
            customer_id: parse_uuid(row, "customer_id")?,
        },
        credentials_enabled: get_flag(row, "credentials_enabled")?,
    })
}

/// A row with [`USER_COLUMNS`] and [`CREDENTIAL_COLUMNS`].
pub fn credentials_from_row(row: &AnyRow) -> CoreResult<UserCredentials> {
    Ok(UserCredentials {
        user: user_from_row(row)?,
        password_hash: get(row, "password_hash")?,
        password_changed_at: get(row, "password_changed_at")?,
        failed_login_attempts: count_u32(get(row, "failed_login_attempts")?),
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

/// A row with [`SESSION_COLUMNS`].
pub fn session_from_row(row: &AnyRow) -> CoreResult<Session> {
    let kind: String = get(row, "kind")?;
    Ok(Session {
        id: parse_uuid(row, "id")?,
        user_id: parse_uuid(row, "user_id")?,
        kind: SessionKind::parse(&kind)
            .ok_or_else(|| CoreError::internal(format!("stored session kind {kind:?}")))?,
        fingerprint: get(row, "fingerprint")?,
        label: get(row, "label")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
    })
}

/// A row with [`TOKEN_COLUMNS`].
pub fn token_from_row(row: &AnyRow) -> CoreResult<CredentialToken> {
    let purpose: String = get(row, "purpose")?;
    Ok(CredentialToken {
        digest: get(row, "digest")?,
        user_id: parse_uuid(row, "user_id")?,
        purpose: parse_purpose(&purpose)
            .ok_or_else(|| CoreError::internal(format!("stored token purpose {purpose:?}")))?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
    })
}

/// A row with [`API_KEY_COLUMNS`].
pub fn api_key_from_row(row: &AnyRow) -> CoreResult<ApiKey> {
    Ok(ApiKey {
        id: parse_uuid(row, "id")?,
        user_id: parse_uuid(row, "user_id")?,
        digest: get(row, "digest")?,
        description: get(row, "description")?,
        enabled: get_flag(row, "enabled")?,
        expiration_time: get(row, "expiration_time")?,
        created_at: get(row, "created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_round_trip() {
        for purpose in [TokenPurpose::Activation, TokenPurpose::PasswordReset] {
            assert_eq!(parse_purpose(purpose.as_str()), Some(purpose));
        }
        assert_eq!(parse_purpose("other"), None);
    }

    #[test]
    fn counts_clamp() {
        assert_eq!(count_u32(-3), 0);
        assert_eq!(count_u32(7), 7);
        assert_eq!(count_u32(i64::MAX), u32::MAX);
    }
}

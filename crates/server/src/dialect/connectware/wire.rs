//! Connectware's JSON shapes (field names as in the seed API document) and their translation to
//! and from core types. Parsing into core types happens here, once, so handlers only see proven
//! values.

use std::str::FromStr;

use gatehouse_core::clock::format_millis;
use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::model::{BoundCertificate, GrantType, IdentityProvider, Role, Session};
use gatehouse_core::permission::{Context, Grant, Operation, Permission, Resource};
use gatehouse_core::service::Page;
use gatehouse_core::topic::TopicName;
use gatehouse_core::users::{parse_fingerprint, UserView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::schema::{ContextSchema, GrantTypeSchema, IdentityProviderSchema, OperationSchema};

/// Prefixes the field of an `Invalid` error, e.g. `resource` → `permissions[2].resource`.
pub fn in_field(prefix: &str, error: CoreError) -> CoreError {
    match error {
        CoreError::Invalid { field, reason } => CoreError::Invalid {
            field: format!("{prefix}.{field}"),
            reason,
        },
        other => other,
    }
}

/// A permission as sent by a client. An `id` field is ignored: ids are assigned by the server.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"resource": "/api/users/#", "operation": "read", "context": "http"}))]
pub struct PermissionIn {
    /// Topic or path filter (MQTT filter syntax; `http` resources start with `/` or are `#`
    /// or `+`).
    #[schema(min_length = 1)]
    pub resource: String,
    /// `read`, `write` or `readWrite`.
    #[schema(value_type = OperationSchema)]
    pub operation: String,
    /// `mqtt` or `http`.
    #[schema(value_type = ContextSchema)]
    pub context: String,
}

impl PermissionIn {
    /// Parses into a grant.
    pub fn parse(&self) -> CoreResult<Grant> {
        let context = Context::from_str(&self.context)?;
        Ok(Grant {
            operation: Operation::from_str(&self.operation)?,
            resource: Resource::parse(&self.resource, context)?,
            context,
        })
    }
}

/// Parses a list of permissions, naming the offending entry on failure.
pub fn parse_grants(field: &str, permissions: &[PermissionIn]) -> CoreResult<Vec<Grant>> {
    permissions
        .iter()
        .enumerate()
        .map(|(index, permission)| {
            permission
                .parse()
                .map_err(|e| in_field(&format!("{field}[{index}]"), e))
        })
        .collect()
}

/// Parses role ids.
pub fn parse_role_ids(field: &str, ids: &[String]) -> CoreResult<Vec<Uuid>> {
    ids.iter()
        .map(|id| {
            Uuid::parse_str(id)
                .map_err(|_| CoreError::invalid(field, format!("'{id}' is not a role id (a UUID)")))
        })
        .collect()
}

/// Parses an identity provider name.
pub fn parse_provider(text: &str) -> CoreResult<IdentityProvider> {
    IdentityProvider::parse(text).ok_or_else(|| {
        CoreError::invalid(
            "identityProvider",
            "must be one of local, ldap, entra, oauth2",
        )
    })
}

/// Parses an MQTT publish prefix: a topic without wildcards.
pub fn parse_prefix(text: &str) -> CoreResult<TopicName> {
    TopicName::parse(text, "mqttPublishPrefix")
}

/// A certificate as sent with a new user. A `createdAt` field is ignored: the binding time is
/// the server's.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CertificateIn {
    /// Hex SHA-1 (40 digits) or SHA-256 (64 digits); `:` separators and upper case accepted.
    #[schema(pattern = r"^:*(?:[0-9A-Fa-f]:*){40}(?:(?:[0-9A-Fa-f]:*){24})?$")]
    pub fingerprint: String,
    /// Expiry as an RFC 3339 timestamp, if known.
    #[serde(rename = "expiresAt", default)]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// Parses certificates sent with a new user.
pub fn parse_certificates(
    certificates: &[CertificateIn],
    now: i64,
) -> CoreResult<Vec<BoundCertificate>> {
    certificates
        .iter()
        .enumerate()
        .map(|(index, certificate)| {
            let field = format!("certificates[{index}]");
            let expires_at = match &certificate.expires_at {
                Some(text) => Some(parse_timestamp(text).map_err(|e| in_field(&field, e))?),
                None => None,
            };
            Ok(BoundCertificate {
                fingerprint: parse_fingerprint(&certificate.fingerprint)
                    .map_err(|e| in_field(&field, e))?,
                created_at: now,
                expires_at,
            })
        })
        .collect()
}

fn parse_timestamp(text: &str) -> CoreResult<i64> {
    let moment = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| CoreError::invalid("expiresAt", "must be an RFC 3339 timestamp"))?;
    i64::try_from(moment.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| CoreError::invalid("expiresAt", "is out of range"))
}

/// A permission as answered.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Permission)]
pub struct PermissionOut {
    /// Stable id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Topic or path filter.
    pub resource: String,
    /// Operation.
    #[schema(value_type = OperationSchema)]
    pub operation: Operation,
    /// Context.
    #[schema(value_type = ContextSchema)]
    pub context: Context,
}

impl From<&Permission> for PermissionOut {
    fn from(permission: &Permission) -> Self {
        Self {
            id: permission.id.to_string(),
            resource: permission.grant.resource.as_str().to_owned(),
            operation: permission.grant.operation,
            context: permission.grant.context,
        }
    }
}

/// Renders permissions.
pub fn permissions_out(permissions: &[Permission]) -> Vec<PermissionOut> {
    permissions.iter().map(PermissionOut::from).collect()
}

/// A role as answered by `/api/roles` and inside users.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Role)]
pub struct RoleOut {
    /// Stable id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Name.
    pub name: String,
    /// Shared flag.
    #[serde(rename = "isShared")]
    pub is_shared: bool,
    /// Created by the system.
    #[serde(rename = "autoGenerated")]
    pub auto_generated: bool,
    /// Permissions.
    pub permissions: Vec<PermissionOut>,
    /// LDAP group DN.
    #[serde(rename = "ldapGroupDn")]
    #[schema(required = true)]
    pub ldap_group_dn: Option<String>,
    /// Comma-separated Entra ID group ids (the seed names this field in the singular).
    #[serde(rename = "msEntraIdGroupId")]
    #[schema(required = true)]
    pub ms_entra_id_group_id: Option<String>,
}

impl From<&Role> for RoleOut {
    fn from(role: &Role) -> Self {
        Self {
            id: role.id.to_string(),
            name: role.name.clone(),
            is_shared: role.is_shared,
            auto_generated: role.auto_generated,
            permissions: permissions_out(&role.permissions),
            ldap_group_dn: role.ldap_group_dn.clone(),
            ms_entra_id_group_id: role.ms_entra_id_group_ids.clone(),
        }
    }
}

/// A token as listed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Token)]
pub struct TokenOut {
    /// The session id; pass it as `?id=` to delete this token.
    #[schema(format = Uuid)]
    pub id: String,
    /// Hex SHA-256 of the token.
    pub fingerprint: String,
    /// Issue time.
    #[serde(rename = "createdAt")]
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Expiry.
    #[serde(rename = "expiresAt")]
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// Label given at login.
    #[schema(required = true)]
    pub label: Option<String>,
}

impl From<&Session> for TokenOut {
    fn from(session: &Session) -> Self {
        Self {
            id: session.id.to_string(),
            fingerprint: session.fingerprint.clone(),
            created_at: format_millis(session.created_at),
            expires_at: format_millis(session.expires_at),
            label: session.label.clone(),
        }
    }
}

/// A bound certificate as answered.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Certificate)]
pub struct CertificateOut {
    /// Hex fingerprint, lower case without separators.
    pub fingerprint: String,
    /// Binding time.
    #[serde(rename = "createdAt")]
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Expiry, if known.
    #[serde(rename = "expiresAt")]
    #[schema(format = DateTime, required = true)]
    pub expires_at: Option<String>,
}

/// A user as answered.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserOut {
    /// Stable id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Login name.
    pub username: String,
    /// Created by the system.
    #[serde(rename = "autoGenerated")]
    pub auto_generated: bool,
    /// MQTT publish prefix.
    #[serde(rename = "mqttPublishPrefix")]
    #[schema(required = true)]
    pub mqtt_publish_prefix: Option<String>,
    /// Identity provider.
    #[serde(rename = "identityProvider")]
    #[schema(value_type = IdentityProviderSchema)]
    pub identity_provider: IdentityProvider,
    /// Allowed authentication methods.
    #[serde(rename = "grantTypes")]
    #[schema(value_type = Vec<GrantTypeSchema>)]
    pub grant_types: Vec<GrantType>,
    /// Live tokens.
    pub tokens: Vec<TokenOut>,
    /// Bound certificates.
    pub certificates: Vec<CertificateOut>,
    /// Roles held (the user's own role included).
    pub roles: Vec<RoleOut>,
    /// Whether MFA is enrolled.
    pub mfa_is_enrolled: bool,
    /// Whether MFA enrolment is enforced.
    #[serde(rename = "enforceMFAEnrollment")]
    pub enforce_mfa_enrollment: bool,
}

impl From<&UserView> for UserOut {
    fn from(view: &UserView) -> Self {
        let user = &view.user;
        Self {
            id: user.id.to_string(),
            username: user.username.clone(),
            auto_generated: user.auto_generated,
            mqtt_publish_prefix: user.mqtt_publish_prefix.clone(),
            identity_provider: user.identity_provider,
            grant_types: user.grant_types.clone(),
            tokens: view.sessions.iter().map(TokenOut::from).collect(),
            certificates: view
                .certificates
                .iter()
                .map(|certificate| CertificateOut {
                    fingerprint: certificate.fingerprint.clone(),
                    created_at: format_millis(certificate.created_at),
                    expires_at: certificate.expires_at.map(format_millis),
                })
                .collect(),
            roles: view.roles.iter().map(RoleOut::from).collect(),
            mfa_is_enrolled: user.mfa_enrolled,
            enforce_mfa_enrollment: user.enforce_mfa_enrollment,
        }
    }
}

/// Pagination block of paged answers.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Pagination)]
pub struct PaginationOut {
    /// Number of pages.
    #[serde(rename = "totalPages")]
    pub total_pages: u64,
    /// Rows across all pages.
    #[serde(rename = "totalRows")]
    pub total_rows: u64,
    /// Rows in this page.
    #[serde(rename = "totalRowsInPage")]
    pub total_rows_in_page: u64,
    /// This page's number (from 1).
    #[serde(rename = "currentPage")]
    pub current_page: u64,
    /// The next page's number, or null on the last page.
    #[serde(rename = "nextPage")]
    #[schema(required = true)]
    pub next_page: Option<u64>,
    /// Page size.
    #[serde(rename = "rowsPerPage")]
    pub rows_per_page: u64,
}

impl<T> From<&Page<T>> for PaginationOut {
    fn from(page: &Page<T>) -> Self {
        Self {
            total_pages: page.total_pages(),
            total_rows: page.total_rows,
            total_rows_in_page: page.items.len() as u64,
            current_page: page.request.page_number,
            next_page: page.next_page(),
            rows_per_page: page.request.rows_per_page,
        }
    }
}

/// Deserializes a list (`null` = empty) whose entries must be JSON objects (serde alone would also read an
/// array into a struct field by field).
pub fn objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    // `null` counts as an absent list.
    let maps =
        Option::<Vec<serde_json::Map<String, serde_json::Value>>>::deserialize(deserializer)?
            .unwrap_or_default();
    maps.into_iter()
        .map(|map| {
            serde_json::from_value(serde_json::Value::Object(map)).map_err(serde::de::Error::custom)
        })
        .collect()
}

/// [`objects`] for an optional list (`null` = absent).
pub fn optional_objects<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let maps =
        Option::<Vec<serde_json::Map<String, serde_json::Value>>>::deserialize(deserializer)?;
    maps.map(|maps| {
        maps.into_iter()
            .map(|map| {
                serde_json::from_value(serde_json::Value::Object(map))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    })
    .transpose()
}

/// A whole number in a query string. Unlike serde's default, an empty value (`?rowsPerPage=`) is
/// an error, not an absent parameter.
pub fn query_number<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text = String::deserialize(deserializer)?;
    text.parse::<u64>()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("'{text}' is not a whole number")))
}

/// A boolean in a query string: exactly `true` or `false` (an empty value is an error).
pub fn query_flag<'de, D>(deserializer: D) -> Result<Option<bool>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text = String::deserialize(deserializer)?;
    match text.as_str() {
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        _ => Err(serde::de::Error::custom(format!(
            "'{text}' is not true or false"
        ))),
    }
}

/// [`query_flag`] for a flag that defaults to false.
pub fn query_bool<'de, D>(deserializer: D) -> Result<bool, D::Error>
where
    D: serde::Deserializer<'de>,
{
    query_flag(deserializer).map(|flag| flag.unwrap_or(false))
}

/// Splits a list filter from the query: each value may be repeated and/or comma-separated.
/// Absent means no filter; an empty item (`?usernames=`, `?names=a,,b`) is a 400, like any
/// other empty query value.
pub fn split_list(field: &'static str, values: Vec<String>) -> CoreResult<Option<Vec<String>>> {
    if values.is_empty() {
        return Ok(None);
    }
    let parts: Vec<String> = values
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .map(str::to_owned)
        .collect();
    if parts.iter().any(String::is_empty) {
        return Err(CoreError::invalid(field, "must not contain empty values"));
    }
    Ok(Some(parts))
}

/// A JSON value that distinguishes "absent" from "null" (for fields that may be cleared).
pub fn absent_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

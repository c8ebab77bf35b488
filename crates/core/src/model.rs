//! The identity model shared by every dialect: users, roles, certificates, sessions.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::permission::{Grant, Permission};

/// How a user may authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantMethod {
    /// Username and password.
    Password,
    /// A client certificate whose fingerprint is bound to the user.
    Certificate,
}

/// One allowed authentication method of a user (Connectware's `grantTypes` entry).
/// `isRequired: true` marks a method that must succeed in addition to any other; see
/// `docs/connectware.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantType {
    /// The method.
    pub method: GrantMethod,
    /// Whether this method is mandatory.
    #[serde(rename = "isRequired")]
    pub is_required: bool,
}

/// Where a user's identity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityProvider {
    /// Managed by Gatehouse.
    Local,
    /// An LDAP directory.
    Ldap,
    /// Microsoft Entra ID (OpenID Connect).
    Entra,
}

impl IdentityProvider {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityProvider::Local => "local",
            IdentityProvider::Ldap => "ldap",
            IdentityProvider::Entra => "entra",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "local" => Some(IdentityProvider::Local),
            "ldap" => Some(IdentityProvider::Ldap),
            "entra" => Some(IdentityProvider::Entra),
            _ => None,
        }
    }
}

/// A user, without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id.
    pub id: Uuid,
    /// Login name (already validated).
    pub username: String,
    /// Created by the system (registry, federation) rather than an administrator.
    pub auto_generated: bool,
    /// Prefix put in front of every topic the user publishes to.
    pub mqtt_publish_prefix: Option<String>,
    /// Where the identity comes from.
    pub identity_provider: IdentityProvider,
    /// Allowed authentication methods.
    pub grant_types: Vec<GrantType>,
    /// Whether the user must enrol MFA at the next login.
    pub enforce_mfa_enrollment: bool,
    /// Whether the user has an enrolled MFA factor.
    pub mfa_enrolled: bool,
    /// Creation time, Unix ms.
    pub created_at: i64,
}

impl User {
    /// Whether the user may authenticate with `method`.
    pub fn allows_grant(&self, method: GrantMethod) -> bool {
        self.grant_types.iter().any(|grant| grant.method == method)
    }
}

/// A user together with the stored digest of its password, for authentication only.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    /// The user.
    pub user: User,
    /// Argon2id PHC string, if the user has a password.
    pub password_hash: Option<String>,
}

/// A certificate bound to a user by its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundCertificate {
    /// Lower-case hex SHA-256 (or SHA-1) fingerprint without separators.
    pub fingerprint: String,
    /// When it was bound, Unix ms.
    pub created_at: i64,
    /// When the certificate expires, Unix ms, if known.
    pub expires_at: Option<i64>,
}

/// A role: a named set of permissions given to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Stable id.
    pub id: Uuid,
    /// Unique among roles that belong to no single user.
    pub name: String,
    /// Meant to be held by several users.
    pub is_shared: bool,
    /// Created by the system.
    pub auto_generated: bool,
    /// LDAP group whose members receive this role.
    pub ldap_group_dn: Option<String>,
    /// Comma-separated Entra ID group ids whose members receive this role.
    pub ms_entra_id_group_ids: Option<String>,
    /// For a user's own role (its direct permissions): that user.
    pub owner_user_id: Option<Uuid>,
    /// Created at first start (`connectware-admin`, `minimum-access`); cannot be renamed or deleted.
    pub builtin: bool,
    /// The role's permissions.
    pub permissions: Vec<Permission>,
}

impl Role {
    /// Whether the role's permissions are fixed: those of the built-in administrator role, so
    /// that no edit can lock every administrator out.
    pub fn permissions_locked(&self) -> bool {
        self.builtin && self.name == crate::roles::ADMIN_ROLE
    }
}

/// A login session; every access token belongs to one, so that it can be listed and revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Stable id (the token's `sid` claim).
    pub id: Uuid,
    /// The user.
    pub user_id: Uuid,
    /// Lower-case hex SHA-256 of the issued token; the token itself is never stored.
    pub fingerprint: String,
    /// Caller-chosen label.
    pub label: Option<String>,
    /// Issue time, Unix ms.
    pub created_at: i64,
    /// Expiry, Unix ms.
    pub expires_at: i64,
}

/// One use of a permission, for the permission usage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionUsage {
    /// The permission.
    pub permission: Permission,
    /// The role that declares it.
    pub role_id: Uuid,
    /// That role's name.
    pub role_name: String,
    /// Whether that role is shared.
    pub role_is_shared: bool,
    /// When the role is a user's own role: that user's id and name.
    pub owner: Option<(Uuid, String)>,
}

/// A new permission to store (id assigned by the core).
pub type NewPermission = Grant;

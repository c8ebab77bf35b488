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
    /// One of the ThingsBoard dialect's OAuth2 clients (the link to the client's subject is
    /// kept beside the user).
    #[serde(rename = "oauth2")]
    OAuth2,
}

impl IdentityProvider {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityProvider::Local => "local",
            IdentityProvider::Ldap => "ldap",
            IdentityProvider::Entra => "entra",
            IdentityProvider::OAuth2 => "oauth2",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "local" => Some(IdentityProvider::Local),
            "ldap" => Some(IdentityProvider::Ldap),
            "entra" => Some(IdentityProvider::Entra),
            "oauth2" => Some(IdentityProvider::OAuth2),
            _ => None,
        }
    }
}

/// ThingsBoard's `NULL_UUID` (`13814000-1dd2-11b2-8080-808080808080`): the tenant of system
/// administrators and the customer of everyone who belongs to no customer.
pub const NULL_UUID: Uuid = Uuid::from_u128(0x13814000_1dd2_11b2_8080_808080808080);

/// A user's ThingsBoard authority: what it may administer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Authority {
    /// Administers the whole installation.
    SysAdmin,
    /// Administers one tenant.
    TenantAdmin,
    /// A user of one customer of a tenant.
    CustomerUser,
}

impl Authority {
    /// The wire and storage name (`SYS_ADMIN`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Authority::SysAdmin => "SYS_ADMIN",
            Authority::TenantAdmin => "TENANT_ADMIN",
            Authority::CustomerUser => "CUSTOMER_USER",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "SYS_ADMIN" => Some(Authority::SysAdmin),
            "TENANT_ADMIN" => Some(Authority::TenantAdmin),
            "CUSTOMER_USER" => Some(Authority::CustomerUser),
            _ => None,
        }
    }
}

/// Where a user sits in ThingsBoard's tenancy: authority, tenant and customer. Tenants and
/// customers are opaque ids here (Gatehouse stores no tenant or customer entities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenancy {
    /// The authority.
    pub authority: Authority,
    /// The tenant; [`NULL_UUID`] for system administrators.
    pub tenant_id: Uuid,
    /// The customer; [`NULL_UUID`] unless the user is a customer user.
    pub customer_id: Uuid,
}

impl Default for Tenancy {
    /// Users created outside the ThingsBoard dialect: customer users of no tenant and no
    /// customer, the least privileged place (see `docs/thingsboard.md`).
    fn default() -> Self {
        Self {
            authority: Authority::CustomerUser,
            tenant_id: NULL_UUID,
            customer_id: NULL_UUID,
        }
    }
}

impl Tenancy {
    /// A system administrator's tenancy.
    pub fn system_admin() -> Self {
        Self {
            authority: Authority::SysAdmin,
            tenant_id: NULL_UUID,
            customer_id: NULL_UUID,
        }
    }
}

/// Descriptive fields of a user, shown by the ThingsBoard dialect.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    /// E-mail address (unique among users), where activation and reset links go.
    pub email: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Free-form JSON object kept for ThingsBoard clients (`additionalInfo`).
    pub additional_info: Option<String>,
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
    /// Descriptive fields (email, names, phone).
    pub profile: Profile,
    /// ThingsBoard authority, tenant and customer.
    pub tenancy: Tenancy,
    /// Whether the user may authenticate at all: false until activated, and after a lockout or
    /// an administrator disabled it. Read-only here: only the dedicated store operations change
    /// it, so that an edit of other fields can never undo a lockout.
    pub credentials_enabled: bool,
}

impl User {
    /// A new local user who logs in with a password (and holds no other grant), not
    /// auto-generated, with no publish prefix and no MFA: the shape of every user Gatehouse
    /// creates itself (the bootstrap administrator, ThingsBoard's `POST /api/user`).
    pub fn local(
        username: String,
        created_at: i64,
        profile: Profile,
        tenancy: Tenancy,
        credentials_enabled: bool,
    ) -> Self {
        Self {
            id: Uuid::new_v4(),
            username,
            auto_generated: false,
            mqtt_publish_prefix: None,
            identity_provider: IdentityProvider::Local,
            grant_types: vec![GrantType {
                method: GrantMethod::Password,
                is_required: false,
            }],
            enforce_mfa_enrollment: false,
            mfa_enrolled: false,
            created_at,
            profile,
            tenancy,
            credentials_enabled,
        }
    }

    /// The name ThingsBoard clients see as `email` and the tokens' `sub`: the email, or the
    /// login name for users that have none.
    pub fn email_or_username(&self) -> &str {
        self.profile.email.as_deref().unwrap_or(&self.username)
    }

    /// Whether the user may authenticate with `method`.
    pub fn allows_grant(&self, method: GrantMethod) -> bool {
        self.grant_types.iter().any(|grant| grant.method == method)
    }

    /// Whether an authentication that proved the password (`password`) and/or a client
    /// certificate (`certificate`) satisfies the grant types: at least one proven method is
    /// granted, and every method marked `isRequired` is proven (so a user whose methods are
    /// both required needs both, which only the HTTPS listener's `POST /api/login` and a
    /// broker's certificate listener can carry).
    pub fn grants_satisfied(&self, password: bool, certificate: bool) -> bool {
        grants_satisfied(&self.grant_types, password, certificate)
    }
}

/// The rule of [`User::grants_satisfied`], for holders of a copy of the grant types.
pub fn grants_satisfied(grant_types: &[GrantType], password: bool, certificate: bool) -> bool {
    let proven = |method: GrantMethod| match method {
        GrantMethod::Password => password,
        GrantMethod::Certificate => certificate,
    };
    grant_types.iter().any(|grant| proven(grant.method))
        && grant_types
            .iter()
            .all(|grant| !grant.is_required || proven(grant.method))
}

/// A user together with the stored digest of its password, for authentication only.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    /// The user.
    pub user: User,
    /// Argon2id PHC string, if the user has a password.
    pub password_hash: Option<String>,
    /// When the password was last set, Unix ms (for password expiry).
    pub password_changed_at: Option<i64>,
    /// Consecutive failed password attempts since the last success.
    pub failed_login_attempts: u32,
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
        self.is_builtin_admin()
    }

    /// Whether this is the built-in administrator role (`connectware-admin`).
    pub fn is_builtin_admin(&self) -> bool {
        self.builtin && self.name == crate::roles::ADMIN_ROLE
    }
}

/// What kind of credential a session stands behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// One long-lived access token (Connectware's login); its fingerprint is that token's.
    Token,
    /// An access/refresh token pair (ThingsBoard's login); its fingerprint is that of the
    /// current refresh token, rotated on every refresh. Access tokens of the pair are
    /// short-lived and valid while the session exists.
    Pair,
    /// A Connectware token of a user who must enrol MFA first: it opens only the enrolment
    /// endpoints, and becomes a [`SessionKind::Token`] once enrolment succeeds.
    Enrolment,
    /// A second-factor step in progress (ThingsBoard's `PRE_VERIFICATION_TOKEN` and
    /// `MFA_CONFIGURATION_TOKEN`, Connectware's login `secret`): it opens only the MFA
    /// endpoints of its scope and is consumed when the login completes.
    MfaPending,
}

impl SessionKind {
    /// The storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Token => "token",
            SessionKind::Pair => "pair",
            SessionKind::Enrolment => "enrolment",
            SessionKind::MfaPending => "mfa",
        }
    }

    /// Parses the storage name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "token" => Some(SessionKind::Token),
            "pair" => Some(SessionKind::Pair),
            "enrolment" => Some(SessionKind::Enrolment),
            "mfa" => Some(SessionKind::MfaPending),
            _ => None,
        }
    }
}

/// A login session; every access token belongs to one, so that it can be listed and revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Stable id (the token's `sid` or `sessionId` claim).
    pub id: Uuid,
    /// The user.
    pub user_id: Uuid,
    /// What the session stands behind.
    pub kind: SessionKind,
    /// Lower-case hex SHA-256 of the bound token (see [`SessionKind`]); tokens are never stored.
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

/// What a one-time credential token (mailed link) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Setting the first password of a new user.
    Activation,
    /// Replacing a forgotten or expired password.
    PasswordReset,
    /// Proving the mailbox of a self-service sign-up (the email code).
    EmailVerification,
}

impl TokenPurpose {
    /// The storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::Activation => "activation",
            TokenPurpose::PasswordReset => "reset",
            TokenPurpose::EmailVerification => "signup",
        }
    }
}

/// A one-time credential token as stored: its digest, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialToken {
    /// Lower-case hex SHA-256 of the token.
    pub digest: String,
    /// The user it acts for.
    pub user_id: Uuid,
    /// What it is for.
    pub purpose: TokenPurpose,
    /// Issue time, Unix ms.
    pub created_at: i64,
    /// Expiry, Unix ms.
    pub expires_at: i64,
}

/// An API key as stored: its digest, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Stable id.
    pub id: Uuid,
    /// The user it authenticates as.
    pub user_id: Uuid,
    /// Lower-case hex SHA-256 of the key.
    pub digest: String,
    /// What it is for (never blank).
    pub description: String,
    /// Whether it may be used.
    pub enabled: bool,
    /// Expiry, Unix ms; 0 means never.
    pub expiration_time: i64,
    /// Creation time, Unix ms.
    pub created_at: i64,
}

impl ApiKey {
    /// Whether the key has expired at `now_millis`.
    pub fn is_expired(&self, now_millis: i64) -> bool {
        self.expiration_time != 0 && self.expiration_time < now_millis
    }
}

#[cfg(test)]
mod grant_rule_tests {
    use super::*;

    fn grants(list: &[(GrantMethod, bool)]) -> Vec<GrantType> {
        list.iter()
            .map(|&(method, is_required)| GrantType {
                method,
                is_required,
            })
            .collect()
    }

    /// Every combination of granted and required methods against every proof.
    #[test]
    fn at_least_one_granted_method_and_every_required_one() {
        use GrantMethod::{Certificate as C, Password as P};
        // (grant types, [password only, certificate only, both]).
        let table = [
            (grants(&[(P, false)]), [true, false, true]),
            (grants(&[(C, false)]), [false, true, true]),
            (grants(&[(P, false), (C, false)]), [true, true, true]),
            (grants(&[(P, false), (C, true)]), [false, true, true]),
            (grants(&[(P, true), (C, false)]), [true, false, true]),
            (grants(&[(P, true), (C, true)]), [false, false, true]),
            (grants(&[(C, true)]), [false, true, true]),
            (Vec::new(), [false, false, false]),
        ];
        for (grant_types, expected) in table {
            let proofs = [(true, false), (false, true), (true, true)];
            for ((password, certificate), expected) in proofs.into_iter().zip(expected) {
                assert_eq!(
                    grants_satisfied(&grant_types, password, certificate),
                    expected,
                    "{grant_types:?} password={password} certificate={certificate}"
                );
            }
            assert!(!grants_satisfied(&grant_types, false, false));
        }
    }
}

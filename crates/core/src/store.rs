//! The storage surface the core needs. One implementation over sqlx serves SQLite and
//! PostgreSQL (crate `gatehouse-store`); tests may substitute their own.
//!
//! Every method that writes commits before it returns. Uniqueness rules (usernames, role names,
//! certificate fingerprints, a role's permissions) are enforced by the database so that
//! parallel requests cannot bypass them; violations come back as [`CoreError::Conflict`].

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::CoreResult;
use crate::model::{BoundCertificate, PermissionUsage, Role, Session, User, UserCredentials};
use crate::permission::Permission;

/// Which users to list.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Only these usernames (exact match), if given.
    pub usernames: Option<Vec<String>>,
    /// Leave out users created by the system.
    pub exclude_auto_generated: bool,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u64,
}

/// Which roles to list.
#[derive(Debug, Clone, Default)]
pub struct RoleQuery {
    /// Only roles with one of these names, if given.
    pub names: Option<Vec<String>>,
    /// Only roles with this `auto_generated` flag, if given.
    pub auto_generated: Option<bool>,
    /// Only roles with this `is_shared` flag, if given.
    pub is_shared: Option<bool>,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return at most (`u64::MAX` for all).
    pub limit: u64,
}

/// A user to create, with everything that must be stored in the same transaction.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The user.
    pub user: User,
    /// Argon2id PHC string, if the user has a password.
    pub password_hash: Option<String>,
    /// The user's own role holding direct permissions, if any.
    pub own_role: Option<Role>,
    /// Ids of further roles to give the user; an unknown id fails the whole creation.
    pub role_ids: Vec<Uuid>,
    /// Certificates to bind.
    pub certificates: Vec<BoundCertificate>,
}

/// Changes to a user; `None` leaves a part as it is. Applied in one transaction.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// The new scalar fields (username, prefix, provider, grant types, MFA flags).
    pub user: Option<User>,
    /// A new password hash.
    pub password_hash: Option<String>,
    /// Replace the roles held (other than the user's own role) by these ids.
    pub role_ids: Option<Vec<Uuid>>,
    /// Replace the direct permissions (creating the user's own role with this definition if
    /// needed; the role's permissions are replaced).
    pub own_role: Option<Role>,
}

/// The storage operations of the identity core.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- users
    /// Creates users atomically: either all of them are stored or none.
    async fn insert_users(&self, users: Vec<NewUser>) -> CoreResult<()>;
    /// One user, by id.
    async fn user(&self, id: Uuid) -> CoreResult<Option<User>>;
    /// The users with the given ids that exist, in no particular order.
    async fn users_by_ids(&self, ids: &[Uuid]) -> CoreResult<Vec<User>>;
    /// One user with its password hash, by exact username.
    async fn credentials_by_username(&self, username: &str) -> CoreResult<Option<UserCredentials>>;
    /// One user with its password hash, by id.
    async fn credentials(&self, id: Uuid) -> CoreResult<Option<UserCredentials>>;
    /// A page of users ordered by username, and the total count matching the query.
    async fn users(&self, query: &UserQuery) -> CoreResult<(Vec<User>, u64)>;
    /// Applies changes to an existing user; `NotFound` if it does not exist.
    async fn update_user(&self, id: Uuid, update: UserUpdate) -> CoreResult<()>;
    /// Deletes a user with its own role, bindings and sessions; false if it did not exist.
    async fn delete_user(&self, id: Uuid) -> CoreResult<bool>;

    // --- user ↔ role
    /// Gives a role to a user (idempotent). `NotFound` names the missing one.
    async fn add_user_role(&self, user_id: Uuid, role_id: Uuid) -> CoreResult<()>;
    /// Takes a role from a user; false if the user did not hold it.
    async fn remove_user_role(&self, user_id: Uuid, role_id: Uuid) -> CoreResult<bool>;
    /// The roles (with permissions) held by each of the given users, own roles included.
    async fn roles_of_users(&self, user_ids: &[Uuid]) -> CoreResult<Vec<(Uuid, Vec<Role>)>>;
    /// The users (id, username) holding each of the given roles.
    async fn members_of_roles(
        &self,
        role_ids: &[Uuid],
    ) -> CoreResult<Vec<(Uuid, Vec<(Uuid, String)>)>>;

    // --- certificates
    /// Binds a certificate; `Conflict` if the fingerprint is bound already.
    async fn add_certificate(&self, user_id: Uuid, certificate: BoundCertificate)
        -> CoreResult<()>;
    /// Unbinds a certificate from the user; false if it was not bound to that user.
    async fn remove_certificate(&self, user_id: Uuid, fingerprint: &str) -> CoreResult<bool>;
    /// The certificates bound to each of the given users.
    async fn certificates_of_users(
        &self,
        user_ids: &[Uuid],
    ) -> CoreResult<Vec<(Uuid, Vec<BoundCertificate>)>>;

    // --- roles and permissions
    /// Creates a role with its permissions; `Conflict` on a duplicate name or permission.
    async fn insert_role(&self, role: Role) -> CoreResult<()>;
    /// One role with its permissions.
    async fn role(&self, id: Uuid) -> CoreResult<Option<Role>>;
    /// A page of roles (with permissions) ordered by name, and the total count.
    async fn roles(&self, query: &RoleQuery) -> CoreResult<(Vec<Role>, u64)>;
    /// Replaces a role's fields, and its permissions when `replace_permissions` is set.
    async fn update_role(&self, role: Role, replace_permissions: bool) -> CoreResult<()>;
    /// Deletes a role; false if it did not exist.
    async fn delete_role(&self, id: Uuid) -> CoreResult<bool>;
    /// Adds a permission to a role; `Conflict` if the role declares that resource and context.
    async fn insert_permission(&self, role_id: Uuid, permission: Permission) -> CoreResult<()>;
    /// Changes a permission of a role; false if the role has no such permission.
    async fn update_permission(&self, role_id: Uuid, permission: Permission) -> CoreResult<bool>;
    /// Deletes a permission of a role; false if the role has no such permission.
    async fn delete_permission(&self, role_id: Uuid, permission_id: Uuid) -> CoreResult<bool>;
    /// Every permission with the role (and owning user) that declares it.
    async fn permission_usages(&self) -> CoreResult<Vec<PermissionUsage>>;
    /// Every permission of every role the user holds, own role included.
    async fn permissions_of_user(&self, user_id: Uuid) -> CoreResult<Vec<Permission>>;

    // --- sessions
    /// Stores a new session, and deletes the user's sessions that have expired.
    async fn insert_session(&self, session: Session) -> CoreResult<()>;
    /// One session, if it exists and has not been revoked.
    async fn session(&self, id: Uuid) -> CoreResult<Option<Session>>;
    /// The sessions of each of the given users that expire after `now_millis`, newest first.
    async fn sessions_of_users(
        &self,
        user_ids: &[Uuid],
        now_millis: i64,
    ) -> CoreResult<Vec<(Uuid, Vec<Session>)>>;
    /// Revokes the user's sessions whose id or fingerprint equals `key`, or all of them when
    /// `key` is `None`; returns how many were revoked.
    async fn revoke_sessions(&self, user_id: Uuid, key: Option<&str>) -> CoreResult<u64>;

    // --- settings
    /// The value stored under `key`, if any.
    async fn setting(&self, key: &str) -> CoreResult<Option<String>>;
    /// Stores `value` under `key` unless a value exists; returns the stored value either way,
    /// so replicas racing at first start agree on one.
    async fn setting_or_insert(&self, key: &str, value: &str) -> CoreResult<String>;
}

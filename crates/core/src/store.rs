//! The storage surface the core needs. One implementation over sqlx serves SQLite and
//! PostgreSQL (crate `gatehouse-store`); tests may substitute their own.
//!
//! Every method that writes commits before it returns. Uniqueness rules (usernames, role names,
//! certificate fingerprints, a role's permissions) are enforced by the database so that
//! parallel requests cannot bypass them; violations come back as [`CoreError::Conflict`].

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::CoreResult;
use crate::federation::FederationLogin;
use crate::mfa::{MfaFactor, MfaProvider};
use crate::model::{
    ApiKey, BoundCertificate, CredentialToken, PermissionUsage, Profile, Role, Session,
    SessionKind, TokenPurpose, User, UserCredentials,
};
use crate::oauth2::{
    Domain, DomainName, DomainQuery, OAuth2ClientQuery, OAuth2Template, SealedOAuth2Client,
};
use crate::permission::Permission;
use crate::registry::Registration;

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
    /// The number of users matching the filters, when the caller knows it (the core caches
    /// it): the store then reads only the page.
    pub known_total: Option<u64>,
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

/// How a signed-up account came to be and what its owner has done since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignupRecord {
    /// The user.
    pub user_id: Uuid,
    /// Whether the sign-up created the user's tenant (else a customer of a configured tenant).
    pub owns_tenant: bool,
    /// When the user signed up (or last renewed an unverified sign-up), Unix ms.
    pub created_at: i64,
    /// When the account was first enabled (by its email code or by an administrator), Unix
    /// ms; `None` while the sign-up is pending. A later lockout or disabling leaves it set.
    pub activated_at: Option<i64>,
    /// When the privacy policy was accepted, Unix ms.
    pub privacy_policy_accepted_at: Option<i64>,
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
    /// With `password_hash`: when it was set, Unix ms (starts the expiry period).
    pub password_changed_at: Option<i64>,
    /// Replace the roles held (other than the user's own role) by these ids.
    pub role_ids: Option<Vec<Uuid>>,
    /// Replace the direct permissions (creating the user's own role with this definition if
    /// needed; the role's permissions are replaced).
    pub own_role: Option<Role>,
}

/// A new password to store, with everything that must happen in the same transaction.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    /// The user.
    pub user_id: Uuid,
    /// Argon2id PHC string of the new password.
    pub password_hash: String,
    /// When it is set, Unix ms.
    pub changed_at: i64,
    /// How many entries of password history to keep, newest first, the new one included
    /// (0: keep none).
    pub history_keep: u32,
    /// A one-time token (digest, purpose) that authorizes the change: it is deleted first, and
    /// the change fails with `NotFound("token")` if it is already gone, so that a token works
    /// once even under parallel use. All tokens of that purpose of the user are deleted too.
    pub consume_token: Option<(String, TokenPurpose)>,
    /// Also enable the user's credentials (activation) and clear its failed attempts.
    pub enable_credentials: bool,
}

/// Which API keys to list.
#[derive(Debug, Clone)]
pub struct ApiKeyQuery {
    /// The owner.
    pub user_id: Uuid,
    /// Only keys whose description contains this text, ignoring ASCII case.
    pub text_search: Option<String>,
    /// Sort column.
    pub sort: ApiKeySort,
    /// Descending instead of ascending.
    pub descending: bool,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u64,
}

/// Sort columns of API key listings (ThingsBoard's `sortProperty`). Ties are broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeySort {
    /// `createdTime`.
    CreatedTime,
    /// `expirationTime`.
    ExpirationTime,
    /// `description`.
    Description,
    /// `enabled`.
    Enabled,
}

/// A certificate the server trusts as an issuer of client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCertificate {
    /// Lower-case hex SHA-256 fingerprint of the DER encoding.
    pub id: String,
    /// The certificate, PEM.
    pub pem: String,
    /// When it was added, Unix ms.
    pub created_at: i64,
}

/// The outcome of reserving a second-factor attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaAttempt {
    /// Counted; the user's failures including this attempt.
    Counted(u32),
    /// The limit is used up (and the user is not banned yet): nothing was counted.
    Exhausted,
    /// The user is banned until this time, Unix ms: nothing was counted.
    BannedUntil(i64),
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
    /// One user with its password hash, by exact email.
    async fn credentials_by_email(&self, email: &str) -> CoreResult<Option<UserCredentials>>;
    /// One user with its password hash, by id.
    async fn credentials(&self, id: Uuid) -> CoreResult<Option<UserCredentials>>;
    /// A page of users ordered by username, and the total count matching the query (the
    /// query's `known_total` when it has one).
    async fn users(&self, query: &UserQuery) -> CoreResult<(Vec<User>, u64)>;
    /// Applies changes to an existing user; `NotFound` if it does not exist.
    async fn update_user(&self, id: Uuid, update: UserUpdate) -> CoreResult<()>;
    /// Deletes a user with its own role, bindings and sessions; false if it did not exist.
    async fn delete_user(&self, id: Uuid) -> CoreResult<bool>;

    /// Replaces a user's profile and tenancy (email, names, phone, additional info, authority,
    /// tenant, customer); `NotFound` if it does not exist, `Conflict` on a duplicate email.
    async fn update_profile(&self, user: &User) -> CoreResult<()>;

    // --- credentials and lockout (atomic: parallel requests and replicas cannot bypass them)
    /// Counts one more password attempt of an enabled user unless `limit` attempts are counted
    /// already. Returns the new count, or `None` when the limit is used up (or the credentials
    /// are disabled) and nothing was counted. `limit: None` counts without a limit.
    async fn reserve_login_attempt(
        &self,
        user_id: Uuid,
        limit: Option<u32>,
    ) -> CoreResult<Option<u32>>;
    /// Clears the failed-attempt count after a successful login.
    async fn reset_login_attempts(&self, user_id: Uuid) -> CoreResult<()>;
    /// Enables or disables a user's credentials; true when this call changed the state (so
    /// exactly one of several parallel lockouts reports it). Disabling revokes every session
    /// of the user; enabling clears the failed-attempt count. `NotFound` if no such user.
    async fn set_credentials_enabled(&self, user_id: Uuid, enabled: bool) -> CoreResult<bool>;
    /// Disables an enabled user's credentials after too many failed logins, keeping its live
    /// sessions (the lockout stops password guessing; it must not let a guesser end the
    /// user's sessions). True when this call disabled them, so that exactly one of several
    /// parallel attempts reports the lock.
    async fn lock_credentials(&self, user_id: Uuid) -> CoreResult<bool>;
    /// Sets a new password and revokes every session of the user, in one transaction (see
    /// [`PasswordChange`]).
    async fn set_password(&self, change: PasswordChange) -> CoreResult<()>;
    /// Password hashes the user had, set at or after `since_millis`, newest first.
    async fn password_history(&self, user_id: Uuid, since_millis: i64) -> CoreResult<Vec<String>>;

    // --- one-time credential tokens (mailed links)
    /// Stores a token digest, and deletes the user's expired tokens.
    async fn insert_credential_token(&self, token: CredentialToken) -> CoreResult<()>;
    /// A stored token by digest and purpose (expired ones included: the caller decides).
    async fn credential_token(
        &self,
        digest: &str,
        purpose: TokenPurpose,
    ) -> CoreResult<Option<CredentialToken>>;

    // --- API keys
    /// Stores a new key; `Conflict` on a duplicate digest.
    async fn insert_api_key(&self, key: ApiKey) -> CoreResult<()>;
    /// One key by id.
    async fn api_key(&self, id: Uuid) -> CoreResult<Option<ApiKey>>;
    /// One key by the digest of its value.
    async fn api_key_by_digest(&self, digest: &str) -> CoreResult<Option<ApiKey>>;
    /// A page of a user's keys and the total count matching the query.
    async fn api_keys(&self, query: &ApiKeyQuery) -> CoreResult<(Vec<ApiKey>, u64)>;
    /// Stores a key's description and enabled flag; false if it does not exist.
    async fn update_api_key(&self, key: &ApiKey) -> CoreResult<bool>;
    /// Deletes a key; false if it did not exist.
    async fn delete_api_key(&self, id: Uuid) -> CoreResult<bool>;

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
    /// The sessions of each of the given users that expire after `now_millis`, newest first;
    /// logins still waiting for their second factor ([`SessionKind::MfaPending`]) are left out.
    async fn sessions_of_users(
        &self,
        user_ids: &[Uuid],
        now_millis: i64,
    ) -> CoreResult<Vec<(Uuid, Vec<Session>)>>;
    /// Replaces the fingerprint and expiry of a session only if its fingerprint is still
    /// `old_fingerprint` (refresh-token rotation); false when it was revoked or rotated already.
    async fn rotate_session(
        &self,
        session_id: Uuid,
        old_fingerprint: &str,
        new_fingerprint: &str,
        new_expires_at: i64,
    ) -> CoreResult<bool>;
    /// Revokes the user's sessions whose id or fingerprint equals `key`, or all of them when
    /// `key` is `None`; returns how many were revoked.
    async fn revoke_sessions(&self, user_id: Uuid, key: Option<&str>) -> CoreResult<u64>;

    /// Changes a session's kind from `from` to `to` (an enrolment-only token becoming a full
    /// one); false when the session is gone or of another kind.
    async fn promote_session(
        &self,
        session_id: Uuid,
        from: SessionKind,
        to: SessionKind,
    ) -> CoreResult<bool>;

    // --- MFA factors (every check that uses something up is atomic)
    /// The user's factors, enrolled and pending, with backup codes counted.
    async fn mfa_factors(&self, user_id: Uuid) -> CoreResult<Vec<MfaFactor>>;
    /// Stores a factor, replacing the user's factor of the same provider and state, in one
    /// transaction that also: deletes the pending factor of the provider when an enrolled one is
    /// saved; clears the default flag of the user's other factors when this one is the default;
    /// replaces the user's backup codes with `backup_code_digests` when given; keeps the
    /// TOTP replay guard of the row (steps only grow); and keeps the user's `mfa_enrolled` flag in step.
    async fn save_mfa_factor(
        &self,
        factor: MfaFactor,
        backup_code_digests: Option<Vec<String>>,
    ) -> CoreResult<()>;
    /// Deletes the user's factors (enrolled and pending) of `providers`, backup codes with
    /// `BACKUP_CODE`, and keeps `mfa_enrolled` in step; returns how many rows went.
    async fn delete_mfa_factors(&self, user_id: Uuid, providers: &[MfaProvider])
        -> CoreResult<u64>;
    /// Accepts TOTP `step` for the user's enrolled TOTP only if it is later than the last one
    /// accepted (no replay); false otherwise.
    async fn accept_totp_step(&self, user_id: Uuid, step: u64) -> CoreResult<bool>;
    /// Deletes one of the user's backup codes by digest; false if it was not there.
    async fn consume_backup_code(&self, user_id: Uuid, digest: &str) -> CoreResult<bool>;
    /// Stores the digest and expiry of a sent code on the user's factor of `provider` (enrolled
    /// or pending), replacing any earlier code; false if there is no such factor.
    async fn set_mfa_code(
        &self,
        user_id: Uuid,
        provider: MfaProvider,
        enrolled: bool,
        digest: &str,
        expires_at: i64,
    ) -> CoreResult<bool>;
    /// Clears the sent code of the factor if it has this digest and has not expired at `now`;
    /// true when it matched (a code works once).
    async fn consume_mfa_code(
        &self,
        user_id: Uuid,
        provider: MfaProvider,
        enrolled: bool,
        digest: &str,
        now: i64,
    ) -> CoreResult<bool>;
    /// Counts one more second-factor attempt unless the user is banned at `now` or `limit`
    /// failures are counted already (`None`: no limit).
    async fn reserve_mfa_attempt(
        &self,
        user_id: Uuid,
        limit: Option<u32>,
        now: i64,
    ) -> CoreResult<MfaAttempt>;
    /// Bans the user until `until` and clears its failures, unless a ban is in force at `now`;
    /// returns the end of the ban in force afterwards.
    async fn ban_mfa(&self, user_id: Uuid, until: i64, now: i64) -> CoreResult<i64>;
    /// Clears the user's second-factor failures after a success.
    async fn reset_mfa_attempts(&self, user_id: Uuid) -> CoreResult<()>;

    // --- client registry
    /// Stores a new registration request; `Conflict` if one exists for the username.
    async fn insert_registration(&self, registration: Registration) -> CoreResult<()>;
    /// The request for `username`, if any.
    async fn registration(&self, username: &str) -> CoreResult<Option<Registration>>;
    /// Every request, oldest first.
    async fn registrations(&self) -> CoreResult<Vec<Registration>>;
    /// How many requests wait for a grant.
    async fn count_pending_registrations(&self) -> CoreResult<u64>;
    /// In one transaction: marks the pending request of `username` granted (with the signed
    /// certificate, if any) and creates `user`. False, with nothing written, when there is no
    /// pending request (another grant came first); `Conflict` when the username is taken.
    async fn grant_registration(
        &self,
        username: &str,
        user: NewUser,
        certificate: Option<String>,
    ) -> CoreResult<bool>;

    // --- self-service sign-up
    /// In one transaction, serialized with other sign-ups: creates the signed-up user and its
    /// sign-up record; `Conflict` when its address is taken in any letter case, `RateLimited`
    /// when `max_pending` sign-ups are pending already.
    async fn insert_signup(
        &self,
        user: NewUser,
        record: SignupRecord,
        max_pending: u64,
    ) -> CoreResult<()>;
    /// Ends the pending state of a user's sign-up (an administrator enabled the account) and
    /// voids its email codes; nothing for users that did not sign up or are activated already.
    async fn activate_signup(&self, user_id: Uuid, now: i64) -> CoreResult<()>;
    /// A user whose email or login name equals `address` regardless of case (an exact email
    /// match first): whether an address is taken, for sign-up.
    async fn user_by_address_any_case(&self, address: &str) -> CoreResult<Option<User>>;
    /// The sign-up record of a user, if it signed up itself.
    async fn signup(&self, user_id: Uuid) -> CoreResult<Option<SignupRecord>>;
    /// In one transaction, for a user whose sign-up is unverified: replaces its password hash
    /// and descriptive fields, restarts its retention (`created_at`), and voids its email codes.
    async fn renew_pending_signup(
        &self,
        user_id: Uuid,
        password_hash: &str,
        profile: &Profile,
        now: i64,
    ) -> CoreResult<()>;
    /// In one transaction: uses the email code with digest `digest` (purpose
    /// [`TokenPurpose::EmailVerification`]): voids every email code of its user, enables the
    /// user's credentials and marks its email verified. The user's id, or why the code is not
    /// usable (unknown, or expired at `now`).
    async fn verify_signup_email(
        &self,
        digest: &str,
        now: i64,
    ) -> CoreResult<Result<Uuid, crate::error::Rejection>>;
    /// Records that a user accepted the privacy policy at `now` (the first acceptance stays);
    /// nothing for users that did not sign up.
    async fn accept_privacy_policy(&self, user_id: Uuid, now: i64) -> CoreResult<()>;
    /// How many sign-ups are pending (never activated).
    async fn count_unverified_signups(&self) -> CoreResult<u64>;
    /// Deletes up to `limit` users whose sign-up is pending (never activated) and was made (or
    /// renewed) before `created_before`; returns how many.
    async fn purge_unverified_signups(&self, created_before: i64, limit: u32) -> CoreResult<u64>;
    /// In one transaction: deletes every user of the scope (and, for a tenant, its OAuth2
    /// clients and domains); returns how many users.
    async fn delete_tenancy(&self, scope: crate::signup::DeletionScope) -> CoreResult<u64>;

    // --- trusted certificates
    /// Stores certificates the server trusts, skipping ids already stored; returns the ids
    /// that were added.
    async fn insert_trusted_certificates(
        &self,
        certificates: Vec<TrustedCertificate>,
    ) -> CoreResult<Vec<String>>;
    /// Every stored trusted certificate, oldest first.
    async fn trusted_certificates(&self) -> CoreResult<Vec<TrustedCertificate>>;
    /// Deletes a trusted certificate; false if it was not stored.
    async fn delete_trusted_certificate(&self, id: &str) -> CoreResult<bool>;

    // --- OAuth2 clients, templates and domains (ThingsBoard)
    /// Stores a new client.
    async fn insert_oauth2_client(&self, client: &SealedOAuth2Client) -> CoreResult<()>;
    /// Replaces a client's title, document and sealed secrets (not its tenant nor creation
    /// time); false if it does not exist.
    async fn update_oauth2_client(&self, client: &SealedOAuth2Client) -> CoreResult<bool>;
    /// One client, its secrets sealed.
    async fn oauth2_client(&self, id: Uuid) -> CoreResult<Option<SealedOAuth2Client>>;
    /// The clients with these ids that exist, oldest first.
    async fn oauth2_clients_by_ids(&self, ids: &[Uuid]) -> CoreResult<Vec<SealedOAuth2Client>>;
    /// A page of clients and the total count matching the query.
    async fn oauth2_clients(
        &self,
        query: &OAuth2ClientQuery,
    ) -> CoreResult<(Vec<SealedOAuth2Client>, u64)>;
    /// Deletes a client and its links to domains; false if it did not exist.
    async fn delete_oauth2_client(&self, id: Uuid) -> CoreResult<bool>;
    /// The clients of the domain named `name` if it is OAuth2-enabled, oldest first.
    async fn oauth2_clients_of_domain(
        &self,
        name: &DomainName,
    ) -> CoreResult<Vec<SealedOAuth2Client>>;
    /// Every template, by provider id.
    async fn oauth2_templates(&self) -> CoreResult<Vec<OAuth2Template>>;
    /// One template.
    async fn oauth2_template(&self, id: Uuid) -> CoreResult<Option<OAuth2Template>>;
    /// Stores a new template; `Conflict` if its provider id is taken.
    async fn insert_oauth2_template(&self, template: &OAuth2Template) -> CoreResult<()>;
    /// Stores those of `templates` whose provider id is not taken (seeding; parallel callers
    /// store each once).
    async fn insert_missing_oauth2_templates(
        &self,
        templates: Vec<OAuth2Template>,
    ) -> CoreResult<()>;
    /// Replaces a template's provider id and document; false if it does not exist, `Conflict`
    /// if the provider id is taken.
    async fn update_oauth2_template(&self, template: &OAuth2Template) -> CoreResult<bool>;
    /// Deletes a template; false if it did not exist.
    async fn delete_oauth2_template(&self, id: Uuid) -> CoreResult<bool>;
    /// Stores a new domain linked to `client_ids`, in one transaction; `Conflict` if the name
    /// is taken, `NotFound` if a client is gone.
    async fn insert_domain(&self, domain: &Domain, client_ids: &[Uuid]) -> CoreResult<()>;
    /// Replaces a domain's name and flags and, when given, its clients, in one transaction;
    /// false if it does not exist, `Conflict` if the name is taken.
    async fn update_domain(&self, domain: &Domain, client_ids: Option<&[Uuid]>)
        -> CoreResult<bool>;
    /// Replaces a domain's clients; false if the domain does not exist.
    async fn set_domain_clients(&self, id: Uuid, client_ids: &[Uuid]) -> CoreResult<bool>;
    /// One domain.
    async fn domain(&self, id: Uuid) -> CoreResult<Option<Domain>>;
    /// A page of domains and the total count matching the query.
    async fn domains(&self, query: &DomainQuery) -> CoreResult<(Vec<Domain>, u64)>;
    /// The clients of each of the given domains (oldest first), in the order of `ids`.
    async fn domain_clients(
        &self,
        ids: &[Uuid],
    ) -> CoreResult<Vec<(Uuid, Vec<SealedOAuth2Client>)>>;
    /// Deletes a domain and its links; false if it did not exist.
    async fn delete_domain(&self, id: Uuid) -> CoreResult<bool>;

    // --- federated login
    /// Stores a login under way; `Conflict` if its state digest is taken. Logins that expired
    /// before `now` are deleted first.
    async fn insert_federation_login(&self, login: FederationLogin, now: i64) -> CoreResult<()>;
    /// How many logins are under way (unexpired at `now`).
    async fn count_federation_logins(&self, now: i64) -> CoreResult<u64>;
    /// Takes (deletes and returns) the login whose state has `state_digest`: a state is used
    /// once, whatever the outcome, and of two parallel callbacks only one gets it.
    async fn take_federation_login(
        &self,
        state_digest: &str,
    ) -> CoreResult<Option<FederationLogin>>;
    /// The user a provider's subject is linked to.
    async fn federated_user(&self, provider: &str, subject: &str) -> CoreResult<Option<Uuid>>;
    /// Links a provider's subject to a user; `Conflict` if the subject is linked already.
    async fn link_federated_identity(
        &self,
        provider: &str,
        subject: &str,
        user_id: Uuid,
        now: i64,
    ) -> CoreResult<()>;

    // --- settings
    /// The value stored under `key`, if any.
    async fn setting(&self, key: &str) -> CoreResult<Option<String>>;
    /// Stores `value` under `key`, replacing any value.
    async fn put_setting(&self, key: &str, value: &str) -> CoreResult<()>;
    /// Stores `value` under `key` unless a value exists; returns the stored value either way,
    /// so replicas racing at first start agree on one.
    async fn setting_or_insert(&self, key: &str, value: &str) -> CoreResult<String>;

    // --- the change feed of the hot-path caches (see [`crate::changes`])
    /// Counts one more change of `feed` in the database, for the caches of every process that
    /// serves it.
    async fn count_change(&self, feed: crate::changes::ChangeFeed) -> CoreResult<()>;
    /// The change counters as stored now.
    async fn change_counters(&self) -> CoreResult<crate::changes::ChangeCounters>;
}

//! Change notification for the hot-path caches. Two kinds of cached data change:
//!
//! - **identity data** (users, credentials, roles, permissions, role memberships, certificates,
//!   sign-up states): compiled MQTT principals, verified broker credentials and the principals
//!   of token sessions are built from it;
//! - **sessions**: the token cache remembers that a session exists, so a revocation must reach
//!   it.
//!
//! Every write of either kind counts up a [`Generation`] in this process and a counter in the
//! database ([`Store::count_change`]). [`NotifyingStore`] wraps the real store, so no write can
//! forget to notify: every method of the [`Store`] trait is listed there, each saying whether
//! it changes cached data. Caches drop what they loaded under an older generation.
//!
//! Other processes on the same database (replicas, `gatehouse restore`) learn of a change
//! through the database's counters: a [`ChangeFollower`] polls them (every
//! `broker.cache_ttl_secs`) and counts up the local generation of each kind whose counter
//! moved. Cache entries therefore need no time-to-live: a reconnect storm is served from memory
//! for as long as nothing changes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
use crate::store::{
    ApiKeyQuery, MfaAttempt, NewUser, PasswordChange, RoleQuery, SignupRecord, Store,
    TrustedCertificate, UserQuery, UserUpdate,
};

/// Which kind of cached data a change concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeFeed {
    /// Users, credentials, roles, permissions, memberships, certificates, sign-up states.
    Identity,
    /// Revoked sessions.
    Sessions,
}

impl ChangeFeed {
    /// The feed's name in the database's `change_counters` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Sessions => "sessions",
        }
    }
}

/// The change counters as stored in the database (see [`Store::change_counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCounters {
    /// Changes of identity data.
    pub identity: i64,
    /// Session revocations.
    pub sessions: i64,
}

/// A generation counter of one kind of cached data in this process.
#[derive(Debug, Clone, Default)]
pub struct Generation(Arc<AtomicU64>);

impl Generation {
    /// The current generation.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Marks the data as changed.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// The generations the hot-path caches check; a clone shares the counters.
#[derive(Debug, Clone, Default)]
pub struct CacheGenerations {
    /// Identity data.
    pub identity: Generation,
    /// Sessions.
    pub sessions: Generation,
}

impl CacheGenerations {
    /// The generation of `feed`.
    pub fn of(&self, feed: ChangeFeed) -> &Generation {
        match feed {
            ChangeFeed::Identity => &self.identity,
            ChangeFeed::Sessions => &self.sessions,
        }
    }

    /// Marks everything as changed (after a restore).
    pub fn bump_all(&self) {
        self.identity.bump();
        self.sessions.bump();
    }
}

/// Follows the database's change counters for this process: each [`ChangeFollower::poll`]
/// counts up the local generation of every feed whose counter moved since the last poll, so
/// that changes made by other processes reach this one's caches.
pub struct ChangeFollower {
    store: Arc<dyn Store>,
    generations: CacheGenerations,
    seen: Option<ChangeCounters>,
}

impl ChangeFollower {
    /// Follows the counters of `store` into `generations`.
    pub fn new(store: Arc<dyn Store>, generations: CacheGenerations) -> Self {
        Self {
            store,
            generations,
            seen: None,
        }
    }

    /// Reads the counters once and bumps the generation of each feed whose counter differs
    /// from the last reading (a restore may set a counter to any value, so any difference
    /// counts). The first reading bumps every feed: whatever was cached before it may predate
    /// changes made elsewhere.
    ///
    /// When the counters cannot be read, every feed is bumped (the caches then ask the
    /// database, which stays right, until a reading succeeds) and the error is returned.
    pub async fn poll(&mut self) -> CoreResult<()> {
        let now = match self.store.change_counters().await {
            Ok(now) => now,
            Err(error) => {
                self.seen = None;
                self.generations.bump_all();
                return Err(error);
            }
        };
        let seen = self.seen.replace(now);
        for feed in [ChangeFeed::Identity, ChangeFeed::Sessions] {
            let moved = match (seen, feed) {
                (None, _) => true,
                (Some(seen), ChangeFeed::Identity) => seen.identity != now.identity,
                (Some(seen), ChangeFeed::Sessions) => seen.sessions != now.sessions,
            };
            if moved {
                self.generations.of(feed).bump();
            }
        }
        Ok(())
    }
}

/// A [`Store`] that forwards every call to the real store and, after each successful write
/// of cached data, counts up the generation of its [`ChangeFeed`] here and in the database, so
/// that caches never serve data from before the write. Settings, credential tokens, API keys,
/// MFA factors and new sessions do not count: they are not cached.
pub struct NotifyingStore {
    inner: Arc<dyn Store>,
    generations: CacheGenerations,
}

impl NotifyingStore {
    /// Wraps `inner`; writes through the wrapper bump `generations` (a clone shares its
    /// counters, so the caller keeps one to read).
    pub fn new(inner: Arc<dyn Store>, generations: CacheGenerations) -> Self {
        Self { inner, generations }
    }

    /// Announces a change of `feed`: here at once, then to the other processes through the
    /// database. Should the database refuse the count, the write stands but the error is
    /// returned, so that the caller does not report a success other replicas may not see.
    async fn announce(&self, feed: ChangeFeed) -> CoreResult<()> {
        self.generations.of(feed).bump();
        self.inner.count_change(feed).await
    }

    /// Announces a change of identity data after a write that succeeded.
    async fn written(&self, result: CoreResult<()>) -> CoreResult<()> {
        if result.is_ok() {
            self.announce(ChangeFeed::Identity).await?;
        }
        result
    }

    /// Announces a change of identity data after a write that reports it changed something.
    async fn changed(&self, result: CoreResult<bool>) -> CoreResult<bool> {
        if matches!(result, Ok(true)) {
            self.announce(ChangeFeed::Identity).await?;
        }
        result
    }

    /// Announces a change of identity data after a write that reports how many rows it
    /// removed, when it removed any.
    async fn removed(&self, result: CoreResult<u64>) -> CoreResult<u64> {
        if matches!(result, Ok(removed) if removed > 0) {
            self.announce(ChangeFeed::Identity).await?;
        }
        result
    }
}

#[async_trait]
impl Store for NotifyingStore {
    // --- writes that change identity data: bump the generation once they succeed

    async fn insert_users(&self, users: Vec<NewUser>) -> CoreResult<()> {
        let result = self.inner.insert_users(users).await;
        self.written(result).await
    }

    async fn update_user(&self, id: Uuid, update: UserUpdate) -> CoreResult<()> {
        let result = self.inner.update_user(id, update).await;
        self.written(result).await
    }

    async fn delete_user(&self, id: Uuid) -> CoreResult<bool> {
        let result = self.inner.delete_user(id).await;
        self.changed(result).await
    }

    async fn update_profile(&self, user: &User) -> CoreResult<()> {
        let result = self.inner.update_profile(user).await;
        self.written(result).await
    }

    async fn set_credentials_enabled(&self, user_id: Uuid, enabled: bool) -> CoreResult<bool> {
        let result = self.inner.set_credentials_enabled(user_id, enabled).await;
        self.changed(result).await
    }

    async fn lock_credentials(&self, user_id: Uuid) -> CoreResult<bool> {
        let result = self.inner.lock_credentials(user_id).await;
        self.changed(result).await
    }

    async fn set_password(&self, change: PasswordChange) -> CoreResult<()> {
        let result = self.inner.set_password(change).await;
        self.written(result).await
    }

    async fn add_user_role(&self, user_id: Uuid, role_id: Uuid) -> CoreResult<()> {
        let result = self.inner.add_user_role(user_id, role_id).await;
        self.written(result).await
    }

    async fn remove_user_role(&self, user_id: Uuid, role_id: Uuid) -> CoreResult<bool> {
        let result = self.inner.remove_user_role(user_id, role_id).await;
        self.changed(result).await
    }

    async fn add_certificate(
        &self,
        user_id: Uuid,
        certificate: BoundCertificate,
    ) -> CoreResult<()> {
        let result = self.inner.add_certificate(user_id, certificate).await;
        self.written(result).await
    }

    async fn remove_certificate(&self, user_id: Uuid, fingerprint: &str) -> CoreResult<bool> {
        let result = self.inner.remove_certificate(user_id, fingerprint).await;
        self.changed(result).await
    }

    async fn insert_role(&self, role: Role) -> CoreResult<()> {
        let result = self.inner.insert_role(role).await;
        self.written(result).await
    }

    async fn update_role(&self, role: Role, replace_permissions: bool) -> CoreResult<()> {
        let result = self.inner.update_role(role, replace_permissions).await;
        self.written(result).await
    }

    async fn delete_role(&self, id: Uuid) -> CoreResult<bool> {
        let result = self.inner.delete_role(id).await;
        self.changed(result).await
    }

    async fn insert_permission(&self, role_id: Uuid, permission: Permission) -> CoreResult<()> {
        let result = self.inner.insert_permission(role_id, permission).await;
        self.written(result).await
    }

    async fn update_permission(&self, role_id: Uuid, permission: Permission) -> CoreResult<bool> {
        let result = self.inner.update_permission(role_id, permission).await;
        self.changed(result).await
    }

    async fn delete_permission(&self, role_id: Uuid, permission_id: Uuid) -> CoreResult<bool> {
        let result = self.inner.delete_permission(role_id, permission_id).await;
        self.changed(result).await
    }

    // --- everything else forwards unchanged: reads, failed-attempt counting, credential
    // tokens, API keys, MFA codes and attempts (none of them cached), settings, and
    // sessions except their revocation (a new session is not cached yet; a rotated or promoted
    // one fails the cached checks, which then ask the database)

    async fn user(&self, id: Uuid) -> CoreResult<Option<User>> {
        self.inner.user(id).await
    }

    async fn users_by_ids(&self, ids: &[Uuid]) -> CoreResult<Vec<User>> {
        self.inner.users_by_ids(ids).await
    }

    async fn credentials_by_username(&self, username: &str) -> CoreResult<Option<UserCredentials>> {
        self.inner.credentials_by_username(username).await
    }

    async fn credentials_by_email(&self, email: &str) -> CoreResult<Option<UserCredentials>> {
        self.inner.credentials_by_email(email).await
    }

    async fn credentials(&self, id: Uuid) -> CoreResult<Option<UserCredentials>> {
        self.inner.credentials(id).await
    }

    async fn users(&self, query: &UserQuery) -> CoreResult<(Vec<User>, u64)> {
        self.inner.users(query).await
    }

    async fn reserve_login_attempt(
        &self,
        user_id: Uuid,
        limit: Option<u32>,
    ) -> CoreResult<Option<u32>> {
        self.inner.reserve_login_attempt(user_id, limit).await
    }

    async fn reset_login_attempts(&self, user_id: Uuid) -> CoreResult<()> {
        self.inner.reset_login_attempts(user_id).await
    }

    async fn password_history(&self, user_id: Uuid, since_millis: i64) -> CoreResult<Vec<String>> {
        self.inner.password_history(user_id, since_millis).await
    }

    async fn insert_credential_token(&self, token: CredentialToken) -> CoreResult<()> {
        self.inner.insert_credential_token(token).await
    }

    async fn credential_token(
        &self,
        digest: &str,
        purpose: TokenPurpose,
    ) -> CoreResult<Option<CredentialToken>> {
        self.inner.credential_token(digest, purpose).await
    }

    async fn insert_api_key(&self, key: ApiKey) -> CoreResult<()> {
        self.inner.insert_api_key(key).await
    }

    async fn api_key(&self, id: Uuid) -> CoreResult<Option<ApiKey>> {
        self.inner.api_key(id).await
    }

    async fn api_key_by_digest(&self, digest: &str) -> CoreResult<Option<ApiKey>> {
        self.inner.api_key_by_digest(digest).await
    }

    async fn api_keys(&self, query: &ApiKeyQuery) -> CoreResult<(Vec<ApiKey>, u64)> {
        self.inner.api_keys(query).await
    }

    async fn update_api_key(&self, key: &ApiKey) -> CoreResult<bool> {
        self.inner.update_api_key(key).await
    }

    async fn delete_api_key(&self, id: Uuid) -> CoreResult<bool> {
        self.inner.delete_api_key(id).await
    }

    async fn roles_of_users(&self, user_ids: &[Uuid]) -> CoreResult<Vec<(Uuid, Vec<Role>)>> {
        self.inner.roles_of_users(user_ids).await
    }

    async fn members_of_roles(
        &self,
        role_ids: &[Uuid],
    ) -> CoreResult<Vec<(Uuid, Vec<(Uuid, String)>)>> {
        self.inner.members_of_roles(role_ids).await
    }

    async fn certificates_of_users(
        &self,
        user_ids: &[Uuid],
    ) -> CoreResult<Vec<(Uuid, Vec<BoundCertificate>)>> {
        self.inner.certificates_of_users(user_ids).await
    }

    async fn role(&self, id: Uuid) -> CoreResult<Option<Role>> {
        self.inner.role(id).await
    }

    async fn roles(&self, query: &RoleQuery) -> CoreResult<(Vec<Role>, u64)> {
        self.inner.roles(query).await
    }

    async fn permission_usages(&self) -> CoreResult<Vec<PermissionUsage>> {
        self.inner.permission_usages().await
    }

    async fn permissions_of_user(&self, user_id: Uuid) -> CoreResult<Vec<Permission>> {
        self.inner.permissions_of_user(user_id).await
    }

    async fn insert_session(&self, session: Session) -> CoreResult<()> {
        self.inner.insert_session(session).await
    }

    async fn session(&self, id: Uuid) -> CoreResult<Option<Session>> {
        self.inner.session(id).await
    }

    async fn sessions_of_users(
        &self,
        user_ids: &[Uuid],
        now_millis: i64,
    ) -> CoreResult<Vec<(Uuid, Vec<Session>)>> {
        self.inner.sessions_of_users(user_ids, now_millis).await
    }

    async fn rotate_session(
        &self,
        session_id: Uuid,
        old_fingerprint: &str,
        new_fingerprint: &str,
        new_expires_at: i64,
    ) -> CoreResult<bool> {
        self.inner
            .rotate_session(session_id, old_fingerprint, new_fingerprint, new_expires_at)
            .await
    }

    async fn revoke_sessions(&self, user_id: Uuid, key: Option<&str>) -> CoreResult<u64> {
        // The token cache remembers live sessions; a revocation must reach it everywhere.
        let result = self.inner.revoke_sessions(user_id, key).await;
        if matches!(result, Ok(revoked) if revoked > 0) {
            self.announce(ChangeFeed::Sessions).await?;
        }
        result
    }

    async fn promote_session(
        &self,
        session_id: Uuid,
        from: SessionKind,
        to: SessionKind,
    ) -> CoreResult<bool> {
        self.inner.promote_session(session_id, from, to).await
    }

    async fn mfa_factors(&self, user_id: Uuid) -> CoreResult<Vec<MfaFactor>> {
        self.inner.mfa_factors(user_id).await
    }

    async fn save_mfa_factor(
        &self,
        factor: MfaFactor,
        backup_code_digests: Option<Vec<String>>,
    ) -> CoreResult<()> {
        // The user's `mfa_enrolled` flag follows its factors, and cached principals hold it.
        let result = self
            .inner
            .save_mfa_factor(factor, backup_code_digests)
            .await;
        self.written(result).await
    }

    async fn delete_mfa_factors(
        &self,
        user_id: Uuid,
        providers: &[MfaProvider],
    ) -> CoreResult<u64> {
        let result = self.inner.delete_mfa_factors(user_id, providers).await;
        self.removed(result).await
    }

    async fn accept_totp_step(&self, user_id: Uuid, step: u64) -> CoreResult<bool> {
        self.inner.accept_totp_step(user_id, step).await
    }

    async fn consume_backup_code(&self, user_id: Uuid, digest: &str) -> CoreResult<bool> {
        self.inner.consume_backup_code(user_id, digest).await
    }

    async fn set_mfa_code(
        &self,
        user_id: Uuid,
        provider: MfaProvider,
        enrolled: bool,
        digest: &str,
        expires_at: i64,
    ) -> CoreResult<bool> {
        self.inner
            .set_mfa_code(user_id, provider, enrolled, digest, expires_at)
            .await
    }

    async fn consume_mfa_code(
        &self,
        user_id: Uuid,
        provider: MfaProvider,
        enrolled: bool,
        digest: &str,
        now: i64,
    ) -> CoreResult<bool> {
        self.inner
            .consume_mfa_code(user_id, provider, enrolled, digest, now)
            .await
    }

    async fn reserve_mfa_attempt(
        &self,
        user_id: Uuid,
        limit: Option<u32>,
        now: i64,
    ) -> CoreResult<MfaAttempt> {
        self.inner.reserve_mfa_attempt(user_id, limit, now).await
    }

    async fn ban_mfa(&self, user_id: Uuid, until: i64, now: i64) -> CoreResult<i64> {
        self.inner.ban_mfa(user_id, until, now).await
    }

    async fn reset_mfa_attempts(&self, user_id: Uuid) -> CoreResult<()> {
        self.inner.reset_mfa_attempts(user_id).await
    }

    async fn insert_signup(
        &self,
        user: NewUser,
        record: SignupRecord,
        max_pending: u64,
    ) -> CoreResult<()> {
        let result = self.inner.insert_signup(user, record, max_pending).await;
        self.written(result).await
    }

    async fn activate_signup(&self, user_id: Uuid, now: i64) -> CoreResult<()> {
        self.inner.activate_signup(user_id, now).await
    }

    async fn user_by_address_any_case(&self, address: &str) -> CoreResult<Option<User>> {
        self.inner.user_by_address_any_case(address).await
    }

    async fn signup(&self, user_id: Uuid) -> CoreResult<Option<SignupRecord>> {
        self.inner.signup(user_id).await
    }

    async fn renew_pending_signup(
        &self,
        user_id: Uuid,
        password_hash: &str,
        profile: &Profile,
        now: i64,
    ) -> CoreResult<()> {
        let result = self
            .inner
            .renew_pending_signup(user_id, password_hash, profile, now)
            .await;
        self.written(result).await
    }

    async fn verify_signup_email(
        &self,
        digest: &str,
        now: i64,
    ) -> CoreResult<Result<Uuid, crate::error::Rejection>> {
        let result = self.inner.verify_signup_email(digest, now).await;
        if matches!(result, Ok(Ok(_))) {
            self.announce(ChangeFeed::Identity).await?;
        }
        result
    }

    async fn accept_privacy_policy(&self, user_id: Uuid, now: i64) -> CoreResult<()> {
        // Broker caches hold whether a user may connect, which the acceptance changes.
        let result = self.inner.accept_privacy_policy(user_id, now).await;
        self.written(result).await
    }

    async fn count_unverified_signups(&self) -> CoreResult<u64> {
        self.inner.count_unverified_signups().await
    }

    async fn purge_unverified_signups(&self, created_before: i64, limit: u32) -> CoreResult<u64> {
        let result = self
            .inner
            .purge_unverified_signups(created_before, limit)
            .await;
        self.removed(result).await
    }

    async fn delete_tenancy(&self, scope: crate::signup::DeletionScope) -> CoreResult<u64> {
        let result = self.inner.delete_tenancy(scope).await;
        self.removed(result).await
    }

    async fn insert_registration(&self, registration: Registration) -> CoreResult<()> {
        self.inner.insert_registration(registration).await
    }

    async fn registration(&self, username: &str) -> CoreResult<Option<Registration>> {
        self.inner.registration(username).await
    }

    async fn registrations(&self) -> CoreResult<Vec<Registration>> {
        self.inner.registrations().await
    }

    async fn count_pending_registrations(&self) -> CoreResult<u64> {
        self.inner.count_pending_registrations().await
    }

    async fn grant_registration(
        &self,
        username: &str,
        user: NewUser,
        certificate: Option<String>,
    ) -> CoreResult<bool> {
        let result = self
            .inner
            .grant_registration(username, user, certificate)
            .await;
        self.changed(result).await
    }

    // OAuth2 clients, templates and domains: configuration, not identity data.

    async fn insert_oauth2_client(&self, client: &SealedOAuth2Client) -> CoreResult<()> {
        self.inner.insert_oauth2_client(client).await
    }

    async fn update_oauth2_client(&self, client: &SealedOAuth2Client) -> CoreResult<bool> {
        self.inner.update_oauth2_client(client).await
    }

    async fn oauth2_client(&self, id: Uuid) -> CoreResult<Option<SealedOAuth2Client>> {
        self.inner.oauth2_client(id).await
    }

    async fn oauth2_clients_by_ids(&self, ids: &[Uuid]) -> CoreResult<Vec<SealedOAuth2Client>> {
        self.inner.oauth2_clients_by_ids(ids).await
    }

    async fn oauth2_clients(
        &self,
        query: &OAuth2ClientQuery,
    ) -> CoreResult<(Vec<SealedOAuth2Client>, u64)> {
        self.inner.oauth2_clients(query).await
    }

    async fn delete_oauth2_client(&self, id: Uuid) -> CoreResult<bool> {
        self.inner.delete_oauth2_client(id).await
    }

    async fn oauth2_clients_of_domain(
        &self,
        name: &DomainName,
    ) -> CoreResult<Vec<SealedOAuth2Client>> {
        self.inner.oauth2_clients_of_domain(name).await
    }

    async fn oauth2_templates(&self) -> CoreResult<Vec<OAuth2Template>> {
        self.inner.oauth2_templates().await
    }

    async fn oauth2_template(&self, id: Uuid) -> CoreResult<Option<OAuth2Template>> {
        self.inner.oauth2_template(id).await
    }

    async fn insert_oauth2_template(&self, template: &OAuth2Template) -> CoreResult<()> {
        self.inner.insert_oauth2_template(template).await
    }

    async fn insert_missing_oauth2_templates(
        &self,
        templates: Vec<OAuth2Template>,
    ) -> CoreResult<()> {
        self.inner.insert_missing_oauth2_templates(templates).await
    }

    async fn update_oauth2_template(&self, template: &OAuth2Template) -> CoreResult<bool> {
        self.inner.update_oauth2_template(template).await
    }

    async fn delete_oauth2_template(&self, id: Uuid) -> CoreResult<bool> {
        self.inner.delete_oauth2_template(id).await
    }

    async fn insert_domain(&self, domain: &Domain, client_ids: &[Uuid]) -> CoreResult<()> {
        self.inner.insert_domain(domain, client_ids).await
    }

    async fn update_domain(
        &self,
        domain: &Domain,
        client_ids: Option<&[Uuid]>,
    ) -> CoreResult<bool> {
        self.inner.update_domain(domain, client_ids).await
    }

    async fn set_domain_clients(&self, id: Uuid, client_ids: &[Uuid]) -> CoreResult<bool> {
        self.inner.set_domain_clients(id, client_ids).await
    }

    async fn domain(&self, id: Uuid) -> CoreResult<Option<Domain>> {
        self.inner.domain(id).await
    }

    async fn domains(&self, query: &DomainQuery) -> CoreResult<(Vec<Domain>, u64)> {
        self.inner.domains(query).await
    }

    async fn domain_clients(
        &self,
        ids: &[Uuid],
    ) -> CoreResult<Vec<(Uuid, Vec<SealedOAuth2Client>)>> {
        self.inner.domain_clients(ids).await
    }

    async fn delete_domain(&self, id: Uuid) -> CoreResult<bool> {
        self.inner.delete_domain(id).await
    }

    async fn insert_federation_login(&self, login: FederationLogin, now: i64) -> CoreResult<()> {
        self.inner.insert_federation_login(login, now).await
    }

    async fn count_federation_logins(&self, now: i64) -> CoreResult<u64> {
        self.inner.count_federation_logins(now).await
    }

    async fn take_federation_login(
        &self,
        state_digest: &str,
    ) -> CoreResult<Option<FederationLogin>> {
        self.inner.take_federation_login(state_digest).await
    }

    async fn federated_user(&self, provider: &str, subject: &str) -> CoreResult<Option<Uuid>> {
        self.inner.federated_user(provider, subject).await
    }

    async fn link_federated_identity(
        &self,
        provider: &str,
        subject: &str,
        user_id: Uuid,
        now: i64,
    ) -> CoreResult<()> {
        self.inner
            .link_federated_identity(provider, subject, user_id, now)
            .await
    }

    async fn insert_trusted_certificates(
        &self,
        certificates: Vec<TrustedCertificate>,
    ) -> CoreResult<Vec<String>> {
        self.inner.insert_trusted_certificates(certificates).await
    }

    async fn trusted_certificates(&self) -> CoreResult<Vec<TrustedCertificate>> {
        self.inner.trusted_certificates().await
    }

    async fn delete_trusted_certificate(&self, id: &str) -> CoreResult<bool> {
        self.inner.delete_trusted_certificate(id).await
    }

    async fn setting(&self, key: &str) -> CoreResult<Option<String>> {
        self.inner.setting(key).await
    }

    async fn put_setting(&self, key: &str, value: &str) -> CoreResult<()> {
        self.inner.put_setting(key, value).await
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> CoreResult<String> {
        self.inner.setting_or_insert(key, value).await
    }

    async fn count_change(&self, feed: ChangeFeed) -> CoreResult<()> {
        self.inner.count_change(feed).await
    }

    async fn change_counters(&self) -> CoreResult<ChangeCounters> {
        self.inner.change_counters().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_advances_the_generation() {
        let generation = Generation::default();
        assert_eq!(generation.current(), 0);
        generation.bump();
        generation.bump();
        assert_eq!(generation.current(), 2);
    }

    #[test]
    fn clones_share_the_counter() {
        let generation = Generation::default();
        let clone = generation.clone();
        clone.bump();
        assert_eq!(generation.current(), 1);
        generation.bump();
        assert_eq!(clone.current(), 2);
    }
}

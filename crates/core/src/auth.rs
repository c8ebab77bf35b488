//! Authentication: password login, token verification into a [`Principal`], the caller's own
//! password change, and the bootstrap of the built-in roles and the `admin` user.

use uuid::Uuid;

use crate::error::{AuthFailure, CoreError, CoreResult, PolicyBreach, Rejection};
use crate::mfa::flows::SecondStep;
use crate::mfa::{MfaChallenge, MfaScope};
use crate::model::{
    GrantMethod, IdentityProvider, Profile, Session, SessionKind, Tenancy, TokenPurpose, User,
    UserCredentials,
};
use crate::names::Username;
use crate::password::PlainPassword;
use crate::permission::{Permission, PermissionSet};
use crate::roles::{builtin_roles, ADMIN_ROLE};
use crate::service::Gatehouse;
use crate::store::{NewUser, RoleQuery, UserUpdate};
use crate::tokens::{digest_hex, TokenSubject};

/// Setting that records that the bootstrap administrator was created.
const ADMIN_CREATED_SETTING: &str = "bootstrap.admin_created";

/// Name of the bootstrap administrator.
pub const ADMIN_USERNAME: &str = "admin";

/// The same answer for an unknown user, a wrong password and a user who may not log in with a
/// password, so that responses do not reveal which usernames exist.
pub(crate) const BAD_CREDENTIALS: CoreError =
    CoreError::Unauthenticated(AuthFailure::BadCredentials);

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user: User,
    /// The session its token belongs to; `None` for API-key callers.
    pub session: Option<Session>,
    /// The API key it authenticated with, if any.
    pub api_key_id: Option<Uuid>,
    /// The permissions of all its roles, as stored (with ids); shared, so that a clone copies
    /// none of them.
    pub permissions: std::sync::Arc<[Permission]>,
    /// The same permissions compiled for checks.
    pub permission_set: PermissionSet,
    /// A signed-up account that has not accepted the privacy policy yet (while acceptance is
    /// required): the dialects let it call only the sign-up endpoints.
    pub privacy_policy_pending: bool,
}

/// A verified token presented for authentication, with what its session must satisfy.
struct PresentedToken<'a> {
    token: &'a str,
    subject: TokenSubject,
    kind: SessionKind,
    allow_enrolment: bool,
    now: i64,
}

impl PresentedToken<'_> {
    /// Whether `session` admits this token: the same user, the token's kind (or an enrolment
    /// session where enrolment tokens are allowed), not expired, and for a Connectware token
    /// its exact token.
    fn admits(&self, session: &Session) -> bool {
        // A token session is bound to exactly its token (defence in depth should the signing
        // key leak); both are SHA-256 hex digests, compared in constant time. Pair sessions
        // are bound to their refresh token; their access tokens live while the session does.
        let fingerprint_matches = self.kind == SessionKind::Pair
            || bool::from(subtle::ConstantTimeEq::ct_eq(
                digest_hex(self.token).as_bytes(),
                session.fingerprint.as_bytes(),
            ));
        let kind_matches = session.kind == self.kind
            || (self.allow_enrolment
                && self.kind == SessionKind::Token
                && session.kind == SessionKind::Enrolment);
        session.user_id == self.subject.user_id
            && kind_matches
            && session.expires_at > self.now
            && fingerprint_matches
    }
}

/// Sessions cached at most; beyond it the cache is emptied (bounds memory: an entry holds
/// the user and its permissions).
const MAX_CACHED_SESSIONS: usize = 10_000;

/// The principals of token sessions, by session id, each with the generations of identity
/// data and sessions it was loaded under (see [`crate::changes`]): a warm token check reads
/// no database. Any change of identity data or any revocation, here or in another process,
/// makes every entry stale.
#[derive(Default)]
pub(crate) struct TokenCache {
    entries: std::sync::RwLock<std::collections::HashMap<Uuid, CachedSession>>,
}

/// A session's principal and the generations (identity, sessions) it was loaded under.
struct CachedSession {
    loaded_under: (u64, u64),
    principal: Principal,
}

impl TokenCache {
    /// The principal cached for `session_id`, if it was loaded under `generations`.
    fn get(&self, session_id: Uuid, generations: (u64, u64)) -> Option<Principal> {
        let entries = self.entries.read().ok()?;
        let cached = entries.get(&session_id)?;
        (cached.loaded_under == generations).then(|| cached.principal.clone())
    }

    /// Remembers `principal` for `session_id`, loaded under `generations`.
    fn put(&self, session_id: Uuid, generations: (u64, u64), principal: Principal) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_CACHED_SESSIONS {
                entries.clear();
            }
            entries.insert(
                session_id,
                CachedSession {
                    loaded_under: generations,
                    principal,
                },
            );
        }
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The signed access token. Shown once; only its digest is stored.
    pub token: String,
    /// The new session.
    pub session: Session,
    /// The user.
    pub user: User,
    /// The user's permissions.
    pub permissions: Vec<Permission>,
}

/// What a Connectware login produced.
#[derive(Debug, Clone)]
pub enum LoginResult {
    /// A usable token.
    Complete(LoginOutcome),
    /// A second factor is needed first; the challenge's token is Connectware's `secret`.
    NeedsMfa(MfaChallenge),
    /// MFA enrolment is due: the token opens only the enrolment endpoints until it is done.
    NeedsEnrolment(LoginOutcome),
}

/// A login request.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// The username as sent (not yet validated, so that malformed names fail like wrong ones).
    pub username: String,
    /// The password.
    pub password: PlainPassword,
    /// Token lifetime in hours; the configured default when absent.
    pub lifetime_hours: Option<u64>,
    /// A label for the token.
    pub label: Option<String>,
    /// The caller's network address, for the per-address rate limit.
    pub client: Option<std::net::IpAddr>,
    /// The client certificate (DER) the HTTPS listener verified on this connection, if any:
    /// it proves the certificate method for users who must present both.
    pub certificate: Option<Vec<u8>>,
}

/// How many former passwords are kept for the reuse rule, and checked at most.
pub(crate) const PASSWORD_HISTORY_KEEP: u32 = 10;

impl Gatehouse {
    /// Checks username and password and opens a session with a token, or the MFA step that
    /// must come first.
    pub async fn login(&self, request: LoginRequest) -> CoreResult<LoginResult> {
        let lifetime_hours = request
            .lifetime_hours
            .unwrap_or(u64::from(self.settings.default_token_hours));
        if lifetime_hours == 0 || lifetime_hours > u64::from(self.settings.max_token_hours) {
            return Err(CoreError::invalid(
                "expireTimeInHours",
                format!("must be between 1 and {}", self.settings.max_token_hours),
            ));
        }
        if let Some(label) = &request.label {
            if label.chars().count() > 256 {
                return Err(CoreError::invalid(
                    "label",
                    "must be at most 256 characters",
                ));
            }
        }
        let with_certificate = match &request.certificate {
            Some(der) => self
                .certificate_user(der)
                .await
                .is_ok_and(|user| user.username == request.username),
            None => false,
        };
        let user = self
            .verify_password_login(
                &request.username,
                &request.password,
                request.client,
                with_certificate,
            )
            .await?;
        match self.second_step(&user).await? {
            SecondStep::None => Ok(LoginResult::Complete(
                self.open_token_session(user, SessionKind::Token, lifetime_hours, request.label)
                    .await?,
            )),
            SecondStep::Verify => {
                // Connectware has no endpoint to ask for a mailed or texted code: it is sent now.
                if let Err(error) = self.send_login_code_if_needed(&user).await {
                    tracing::warn!(user_id = %user.id, %error, "no verification code sent");
                }
                let challenge = self
                    .open_mfa_challenge(
                        &user,
                        MfaScope::PreVerification,
                        Some(lifetime_hours),
                        request.label,
                    )
                    .await?;
                Ok(LoginResult::NeedsMfa(challenge))
            }
            SecondStep::Enrol => Ok(LoginResult::NeedsEnrolment(
                self.open_token_session(
                    user,
                    SessionKind::Enrolment,
                    lifetime_hours,
                    request.label,
                )
                .await?,
            )),
        }
    }

    /// Opens a Connectware token session of `kind` for a user who has proven who it is.
    pub async fn open_token_session(
        &self,
        user: User,
        kind: SessionKind,
        lifetime_hours: u64,
        label: Option<String>,
    ) -> CoreResult<LoginOutcome> {
        let now = self.clock.now_millis();
        let lifetime_millis = i64::try_from(lifetime_hours)
            .unwrap_or(i64::MAX)
            .saturating_mul(3_600_000);
        let session_id = Uuid::new_v4();
        let expires_at = now.saturating_add(lifetime_millis);
        let token = self.keys.issue(
            TokenSubject {
                user_id: user.id,
                session_id,
            },
            now,
            expires_at,
        )?;
        let session = Session {
            id: session_id,
            user_id: user.id,
            kind,
            fingerprint: digest_hex(&token),
            label,
            created_at: now,
            expires_at,
        };
        self.store.insert_session(session.clone()).await?;
        let permissions = self.store.permissions_of_user(user.id).await?;
        tracing::info!(user_id = %user.id, session_id = %session.id, kind = kind.as_str(), "login succeeded");
        Ok(LoginOutcome {
            token,
            session,
            user,
            permissions,
        })
    }

    /// Connectware's `/api/mfa/login`: completes a login's second step and opens the token
    /// session the first step asked for.
    pub async fn login_second_factor(
        &self,
        username: &str,
        secret: &str,
        otp: Option<&str>,
        backup_code: Option<&str>,
    ) -> CoreResult<LoginOutcome> {
        let (user, challenge) = self
            .complete_connectware_mfa(username, secret, otp, backup_code)
            .await?;
        let hours = challenge
            .token_hours
            .unwrap_or(u64::from(self.settings.default_token_hours));
        self.open_token_session(user, SessionKind::Token, hours, challenge.label)
            .await
    }

    /// The password check of every dialect's login, in ThingsBoard's order: rate limits; the
    /// policy when it forces resets of passwords that break it; unknown users; disabled
    /// accounts; the lockout counter; the password; its expiry.
    ///
    /// The lockout counter is taken *before* the password is evaluated, in one atomic store
    /// operation: with `maxFailedLoginAttempts = N`, at most N passwords are ever evaluated
    /// between successes, however many requests arrive in parallel. The attempt after N
    /// consecutive failures locks the account without being evaluated.
    /// `with_certificate` says that a client certificate of this same user was verified on the
    /// request's connection (see [`User::grants_satisfied`]).
    pub async fn verify_password_login(
        &self,
        login: &str,
        password: &PlainPassword,
        client: Option<std::net::IpAddr>,
        with_certificate: bool,
    ) -> CoreResult<User> {
        // Every attempt counts against the caller's address; only failures count against the
        // account (a success gives its attempt back), so a flood of wrong passwords for one
        // user is slowed down without locking out a script that logs in often.
        if let Some(client) = client {
            self.login_limits
                .per_address
                .try_acquire(&client.to_string())
                .inspect_err(|_| count_login("rate_limited"))?;
        }
        self.login_limits
            .per_account
            .try_acquire(login)
            .inspect_err(|_| count_login("rate_limited"))?;
        let outcome = self
            .check_password_login(login, password, with_certificate)
            .await;
        match &outcome {
            Ok(_) => {
                self.login_limits.per_account.refund(login);
                count_login("success");
            }
            Err(CoreError::Unauthenticated(AuthFailure::LockedNow)) => count_login("locked"),
            Err(CoreError::Unauthenticated(_)) => count_login("failure"),
            Err(_) => {}
        }
        outcome
    }

    async fn check_password_login(
        &self,
        login: &str,
        password: &PlainPassword,
        with_certificate: bool,
    ) -> CoreResult<User> {
        let security = self.security_settings().await?;
        let policy = security.password_policy;
        if policy.force_reset_if_invalid && !policy.breaches(password).is_empty() {
            return Err(CoreError::unauthenticated(
                AuthFailure::PasswordViolatesPolicy,
            ));
        }
        let credentials = self.credentials_for_login(login).await?;
        // Unknown users and `ldap` users are the directory's, when one is configured; it keeps
        // its own lockout and expiry rules.
        if self.is_directory_login(credentials.as_ref()) {
            let user = self.directory_login(login, password, credentials).await?;
            if !user.grants_satisfied(true, with_certificate) {
                return Err(BAD_CREDENTIALS);
            }
            return Ok(user);
        }
        let credentials = credentials.filter(|credentials| {
            credentials.user.identity_provider == IdentityProvider::Local
                && credentials.user.allows_grant(GrantMethod::Password)
                && credentials.user.grants_satisfied(true, with_certificate)
        });
        let Some(credentials) = credentials else {
            // Verify against a decoy so that every failure costs the same.
            self.hasher.verify(password, None).await?;
            return Err(BAD_CREDENTIALS);
        };
        let user = credentials.user;
        if !user.credentials_enabled {
            self.hasher.verify(password, None).await?;
            return Err(CoreError::unauthenticated(AuthFailure::NotActive));
        }
        if self
            .store
            .reserve_login_attempt(user.id, security.lockout_limit())
            .await?
            .is_none()
        {
            // The allowed failures are used up: this attempt locks the account. Of several
            // parallel attempts exactly one flips the state and reports the lock.
            if self.store.lock_credentials(user.id).await? {
                tracing::warn!(user_id = %user.id, "account locked after failed logins");
                self.notify_lockout(&security, &user);
                return Err(CoreError::unauthenticated(AuthFailure::LockedNow));
            }
            return Err(CoreError::unauthenticated(AuthFailure::NotActive));
        }
        let password_ok = self
            .hasher
            .verify(password, credentials.password_hash.as_deref())
            .await?;
        if !password_ok {
            return Err(BAD_CREDENTIALS);
        }
        self.store.reset_login_attempts(user.id).await?;
        if policy.expiration_days > 0 {
            let period = i64::from(policy.expiration_days).saturating_mul(86_400_000);
            let changed = credentials.password_changed_at.unwrap_or(user.created_at);
            if changed.saturating_add(period) < self.clock.now_millis() {
                let reset_token = self
                    .issue_credential_token(
                        user.id,
                        TokenPurpose::PasswordReset,
                        security.password_reset_token_ttl_hours,
                    )
                    .await?;
                return Err(CoreError::unauthenticated(AuthFailure::PasswordExpired {
                    reset_token,
                }));
            }
        }
        Ok(user)
    }

    /// The user a login name names: by username, else (for names with `@`) by email.
    async fn credentials_for_login(&self, login: &str) -> CoreResult<Option<UserCredentials>> {
        let Ok(name) = Username::parse(login) else {
            return Ok(None);
        };
        if let Some(found) = self.store.credentials_by_username(name.as_str()).await? {
            return Ok(Some(found));
        }
        if login.contains('@') {
            return self.store.credentials_by_email(login).await;
        }
        Ok(None)
    }

    /// Verifies a token of either kind (a Connectware access token or the access token of a
    /// ThingsBoard pair) and loads its principal. A token whose session was revoked (logout,
    /// password change, an administrator disabling the user), whose user was deleted, or that
    /// has expired is refused.
    pub async fn authenticate(&self, token: &str) -> CoreResult<Principal> {
        self.authenticate_token(token, false).await
    }

    /// Like [`Gatehouse::authenticate`], but also accepts the Connectware token of a user who
    /// must enrol MFA first (its session is of kind [`SessionKind::Enrolment`]): for the
    /// enrolment endpoints only.
    pub async fn authenticate_enrolling(&self, token: &str) -> CoreResult<Principal> {
        self.authenticate_token(token, true).await
    }

    async fn authenticate_token(
        &self,
        token: &str,
        allow_enrolment: bool,
    ) -> CoreResult<Principal> {
        const REJECTED: CoreError = CoreError::Unauthenticated(AuthFailure::TokenExpired);
        let now = self.clock.now_millis();
        let (subject, kind) = match self.keys.verify(token, now) {
            Ok(subject) => (subject, SessionKind::Token),
            Err(_) => (self.verify_pair_access(token, now)?, SessionKind::Pair),
        };
        let presented = PresentedToken {
            token,
            subject,
            kind,
            allow_enrolment,
            now,
        };
        // Read before the database, so that a change racing with the load leaves a stale
        // entry behind, never a fresh-looking one.
        let generations = (
            self.generations.identity.current(),
            self.generations.sessions.current(),
        );
        let caching = self.settings.broker.caching();
        let cached = caching
            .then(|| self.token_cache.get(subject.session_id, generations))
            .flatten();
        if let Some(principal) = cached {
            // A cached session that fails a check (expired as cached, promoted or rotated
            // since) is asked of the database again: only the database may refuse.
            if principal
                .session
                .as_ref()
                .is_some_and(|s| presented.admits(s))
            {
                return Ok(principal);
            }
        }
        let session = self
            .store
            .session(subject.session_id)
            .await?
            .ok_or(REJECTED)?;
        if !presented.admits(&session) {
            return Err(REJECTED);
        }
        // A user disabled by an administrator has no sessions left; a locked user keeps its
        // live sessions (a lockout stops password guessing), but cannot refresh them.
        let user = self.store.user(subject.user_id).await?.ok_or(REJECTED)?;
        let principal = self.principal(user, Some(session), None).await?;
        if caching {
            self.token_cache
                .put(subject.session_id, generations, principal.clone());
        }
        Ok(principal)
    }

    /// Assembles a principal with the user's permissions.
    pub(crate) async fn principal(
        &self,
        user: User,
        session: Option<Session>,
        api_key_id: Option<Uuid>,
    ) -> CoreResult<Principal> {
        let permissions = self.store.permissions_of_user(user.id).await?;
        let permission_set = PermissionSet::new(permissions.iter().map(|p| p.grant.clone()));
        let privacy_policy_pending = self.privacy_policy_pending(&user).await?;
        Ok(Principal {
            user,
            session,
            api_key_id,
            permissions: permissions.into(),
            permission_set,
            privacy_policy_pending,
        })
    }

    /// The caller changes its own password, proving the current one. Its sessions stay valid
    /// (Connectware's behaviour); see [`Gatehouse::change_password_pair`] for ThingsBoard's.
    pub async fn change_own_password(
        &self,
        user_id: Uuid,
        current: &PlainPassword,
        new: &PlainPassword,
    ) -> CoreResult<()> {
        let password_hash = self
            .accept_password_change(user_id, current, new, "newPassword")
            .await?;
        self.store
            .update_user(
                user_id,
                UserUpdate {
                    password_hash: Some(password_hash),
                    password_changed_at: Some(self.clock.now_millis()),
                    ..UserUpdate::default()
                },
            )
            .await
    }

    /// The checks of a password change by its owner: the current password, a different new
    /// one, the policy and the reuse rule. Returns the new hash.
    pub(crate) async fn accept_password_change(
        &self,
        user_id: Uuid,
        current: &PlainPassword,
        new: &PlainPassword,
        field: &str,
    ) -> CoreResult<String> {
        let credentials = self
            .store
            .credentials(user_id)
            .await?
            .ok_or(CoreError::not_found("user"))?;
        if credentials.user.identity_provider != IdentityProvider::Local {
            return Err(CoreError::Rejected(Rejection::ExternallyManaged));
        }
        let current_hash = credentials.password_hash.as_deref();
        if !self.hasher.verify(current, current_hash).await? {
            return Err(CoreError::Rejected(Rejection::WrongCurrentPassword));
        }
        if self.hasher.verify(new, current_hash).await? {
            return Err(CoreError::Rejected(Rejection::PasswordUnchanged));
        }
        self.accept_new_password(user_id, new, field, true).await
    }

    /// The policy and (when `check_reuse`) the reuse rule for a new password; returns its hash.
    pub(crate) async fn accept_new_password(
        &self,
        user_id: Uuid,
        password: &PlainPassword,
        field: &str,
        check_reuse: bool,
    ) -> CoreResult<String> {
        let policy = self.password_policy().await?;
        policy.check(password, field)?;
        if check_reuse && policy.reuse_days > 0 {
            let period = i64::from(policy.reuse_days).saturating_mul(86_400_000);
            let since = self.clock.now_millis().saturating_sub(period);
            let former = self.store.password_history(user_id, since).await?;
            for hash in former.iter().take(PASSWORD_HISTORY_KEEP as usize) {
                if self.hasher.verify(password, Some(hash)).await? {
                    return Err(CoreError::PolicyViolation {
                        field: field.to_owned(),
                        breaches: vec![PolicyBreach::Reused {
                            days: policy.reuse_days,
                        }],
                    });
                }
            }
        }
        self.hasher.hash(password).await
    }

    /// Creates the built-in roles and the `admin` user if they do not exist. Returns the
    /// generated admin password when one was generated (no password given, admin created now).
    /// Safe to run on several replicas at once: a lost race is not an error.
    pub async fn bootstrap(
        &self,
        admin_password: Option<PlainPassword>,
    ) -> CoreResult<Option<String>> {
        for role in builtin_roles() {
            let query = RoleQuery {
                names: Some(vec![role.name.clone()]),
                limit: 1,
                ..RoleQuery::default()
            };
            let (existing, _) = self.store.roles(&query).await?;
            if !existing.iter().any(|role| role.owner_user_id.is_none()) {
                ignore_conflict(self.store.insert_role(role).await)?;
            }
        }
        // The admin is created once per installation: deleting or renaming it later is an
        // administrator's decision that a restart must not undo.
        let marker = self.store.setting(ADMIN_CREATED_SETTING).await?;
        if marker.is_some()
            || self
                .store
                .credentials_by_username(ADMIN_USERNAME)
                .await?
                .is_some()
        {
            self.store
                .setting_or_insert(ADMIN_CREATED_SETTING, "true")
                .await?;
            return Ok(None);
        }
        let (password, generated) = match admin_password {
            Some(password) => (password, None),
            None => {
                let text = self.password_policy().await?.generate();
                (PlainPassword::parse(&text, "password")?, Some(text))
            }
        };
        self.password_policy()
            .await?
            .check(&password, "GATEHOUSE_ADMIN_PASSWORD")?;
        let admin_role = self
            .store
            .roles(&RoleQuery {
                names: Some(vec![ADMIN_ROLE.to_owned()]),
                limit: u64::MAX,
                ..RoleQuery::default()
            })
            .await?
            .0
            .into_iter()
            .find(|role| role.builtin)
            .ok_or(CoreError::internal("the built-in admin role is missing"))?;
        let user = User::local(
            ADMIN_USERNAME.to_owned(),
            self.clock.now_millis(),
            Profile::default(),
            Tenancy::system_admin(),
            true,
        );
        let new_user = NewUser {
            user,
            password_hash: Some(self.hasher.hash(&password).await?),
            own_role: None,
            role_ids: vec![admin_role.id],
            certificates: Vec::new(),
        };
        let outcome = match self.store.insert_users(vec![new_user]).await {
            Ok(()) => generated,
            // Another replica created it first.
            Err(CoreError::Conflict { .. }) => None,
            Err(error) => return Err(error),
        };
        self.store
            .setting_or_insert(ADMIN_CREATED_SETTING, "true")
            .await?;
        Ok(outcome)
    }
}

/// Counts a login outcome for `/metrics`.
fn count_login(outcome: &'static str) {
    metrics::counter!("gatehouse_logins_total", "outcome" => outcome).increment(1);
}

fn ignore_conflict(result: CoreResult<()>) -> CoreResult<()> {
    match result {
        Err(CoreError::Conflict { .. }) => Ok(()),
        other => other,
    }
}

//! Authentication: password login, token verification into a [`Principal`], the caller's own
//! password change, and the bootstrap of the built-in roles and the `admin` user.

use uuid::Uuid;

use crate::error::{CoreError, CoreResult};
use crate::model::{GrantMethod, GrantType, IdentityProvider, Session, User};
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
const BAD_CREDENTIALS: CoreError = CoreError::Unauthenticated {
    reason: "invalid username or password",
};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user: User,
    /// The session its token belongs to.
    pub session: Session,
    /// The permissions of all its roles, as stored (with ids).
    pub permissions: Vec<Permission>,
    /// The same permissions compiled for checks.
    pub permission_set: PermissionSet,
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
}

impl Gatehouse {
    /// Checks username and password and opens a session with a token.
    pub async fn login(&self, request: LoginRequest) -> CoreResult<LoginOutcome> {
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
        // Every attempt counts against the caller's address; only failures count against the
        // account (a success gives its attempt back), so a flood of wrong passwords for one
        // user is slowed down without locking out a script that logs in often.
        if let Some(client) = request.client {
            self.login_limits
                .per_address
                .try_acquire(&client.to_string())
                .inspect_err(|_| count_login("rate_limited"))?;
        }
        self.login_limits
            .per_account
            .try_acquire(&request.username)
            .inspect_err(|_| count_login("rate_limited"))?;
        let credentials = match Username::parse(&request.username) {
            Ok(name) => self.store.credentials_by_username(name.as_str()).await?,
            Err(_) => None,
        };
        let hash = credentials
            .as_ref()
            .and_then(|c| c.password_hash.as_deref());
        // Always verify (against a decoy when there is no hash) so every failure costs the same.
        let password_ok = self.hasher.verify(&request.password, hash).await?;
        let user = match credentials {
            Some(credentials)
                if password_ok
                    && credentials.user.identity_provider == IdentityProvider::Local
                    && credentials.user.allows_grant(GrantMethod::Password) =>
            {
                credentials.user
            }
            _ => {
                count_login("failure");
                return Err(BAD_CREDENTIALS);
            }
        };
        self.login_limits.per_account.refund(&request.username);
        count_login("success");
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
            fingerprint: digest_hex(&token),
            label: request.label,
            created_at: now,
            expires_at,
        };
        self.store.insert_session(session.clone()).await?;
        let permissions = self.store.permissions_of_user(user.id).await?;
        tracing::info!(user_id = %user.id, session_id = %session.id, "login succeeded");
        Ok(LoginOutcome {
            token,
            session,
            user,
            permissions,
        })
    }

    /// Verifies a token and loads its principal. A token whose session was revoked, whose user
    /// was deleted, or that has expired is refused.
    pub async fn authenticate(&self, token: &str) -> CoreResult<Principal> {
        const REJECTED: CoreError = CoreError::Unauthenticated {
            reason: "invalid or expired token",
        };
        let now = self.clock.now_millis();
        let subject = self.keys.verify(token, now)?;
        let session = self
            .store
            .session(subject.session_id)
            .await?
            .ok_or(REJECTED)?;
        // The stored fingerprint binds the session to exactly this token (defence in depth should
        // the signing key leak); both are SHA-256 hex digests, compared in constant time.
        let fingerprint_matches: bool = subtle::ConstantTimeEq::ct_eq(
            digest_hex(token).as_bytes(),
            session.fingerprint.as_bytes(),
        )
        .into();
        if session.user_id != subject.user_id || session.expires_at <= now || !fingerprint_matches {
            return Err(REJECTED);
        }
        let user = self.store.user(subject.user_id).await?.ok_or(REJECTED)?;
        let permissions = self.store.permissions_of_user(user.id).await?;
        let permission_set = PermissionSet::new(permissions.iter().map(|p| p.grant.clone()));
        Ok(Principal {
            user,
            session,
            permissions,
            permission_set,
        })
    }

    /// The caller changes its own password, proving the current one.
    pub async fn change_own_password(
        &self,
        user_id: Uuid,
        current: &PlainPassword,
        new: &PlainPassword,
    ) -> CoreResult<()> {
        let credentials = self
            .store
            .credentials(user_id)
            .await?
            .ok_or(CoreError::not_found("user"))?;
        if credentials.user.identity_provider != IdentityProvider::Local {
            return Err(CoreError::invalid(
                "password",
                "the password of an externally managed user cannot be changed here",
            ));
        }
        if !self
            .hasher
            .verify(current, credentials.password_hash.as_deref())
            .await?
        {
            return Err(CoreError::invalid(
                "password",
                "is not the current password",
            ));
        }
        self.settings.password_policy.check(new, "newPassword")?;
        let password_hash = Some(self.hasher.hash(new).await?);
        self.store
            .update_user(
                user_id,
                UserUpdate {
                    password_hash,
                    ..UserUpdate::default()
                },
            )
            .await
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
                let text = self.settings.password_policy.generate();
                (PlainPassword::parse(&text, "password")?, Some(text))
            }
        };
        self.settings
            .password_policy
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
        let user = User {
            id: Uuid::new_v4(),
            username: ADMIN_USERNAME.to_owned(),
            auto_generated: false,
            mqtt_publish_prefix: None,
            identity_provider: IdentityProvider::Local,
            grant_types: vec![GrantType {
                method: GrantMethod::Password,
                is_required: false,
            }],
            enforce_mfa_enrollment: false,
            mfa_enrolled: false,
            created_at: self.clock.now_millis(),
        };
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

//! Accounts managed through mailed links and by tenancy: ThingsBoard-style users created
//! without a password and activated by a link, password resets by mail, enabling and
//! disabling credentials, and the tenancy rule that decides who may manage whom.

use uuid::Uuid;

use crate::auth::PASSWORD_HISTORY_KEEP;
use crate::error::{CoreError, CoreResult, Rejection};
use crate::mail::Mail;
use crate::model::{
    Authority, CredentialToken, IdentityProvider, Profile, Tenancy, TokenPurpose, User, NULL_UUID,
};
use crate::names::Email;
use crate::password::PlainPassword;
use crate::security::SecuritySettings;
use crate::service::Gatehouse;
use crate::store::{NewUser, PasswordChange, UserUpdate};
use crate::tokens::{digest_hex, random_token};

/// Random bytes of activation and reset tokens (ThingsBoard: 30, giving 40 characters).
const CREDENTIAL_TOKEN_BYTES: usize = 30;

/// Whether an action reads or changes what it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading.
    Read,
    /// Changing.
    Write,
}

/// ThingsBoard's rule of who may manage which user (and that user's API keys):
/// system administrators manage system and tenant administrators and the users of no tenant
/// (those created through other dialects); tenant administrators
/// manage the non-system users of their tenant; customer users change only themselves and
/// read the users of their own customer.
pub fn may_manage(actor: &User, target: &User, access: Access) -> bool {
    if actor.id == target.id {
        return true;
    }
    let (a, t) = (&actor.tenancy, &target.tenancy);
    match a.authority {
        // Users of no tenant (e.g. created through the Connectware dialect) belong to the
        // installation, so its administrators can unlock them.
        Authority::SysAdmin => {
            matches!(t.authority, Authority::SysAdmin | Authority::TenantAdmin)
                || t.tenant_id == NULL_UUID
        }
        Authority::TenantAdmin => {
            a.tenant_id != NULL_UUID
                && t.tenant_id == a.tenant_id
                && t.authority != Authority::SysAdmin
        }
        Authority::CustomerUser => {
            access == Access::Read
                && a.customer_id != NULL_UUID
                && t.customer_id == a.customer_id
                && t.tenant_id == a.tenant_id
        }
    }
}

/// Longest name or phone number accepted, in characters (also each sign-up form field).
pub const MAX_PROFILE_FIELD_CHARS: usize = 255;
/// Largest `additional_info` accepted, in bytes of JSON.
const MAX_ADDITIONAL_INFO_BYTES: usize = 16 * 1024;

/// Checks the descriptive fields of a user: names and phone bounded and free of control
/// characters, additional info bounded.
pub fn check_profile(profile: &Profile) -> CoreResult<()> {
    for (field, value) in [
        ("firstName", &profile.first_name),
        ("lastName", &profile.last_name),
        ("phone", &profile.phone),
    ] {
        if let Some(text) = value {
            if text.chars().count() > MAX_PROFILE_FIELD_CHARS || text.chars().any(char::is_control)
            {
                return Err(CoreError::invalid(
                    field,
                    "must be at most 255 characters without control characters",
                ));
            }
        }
    }
    if profile
        .additional_info
        .as_ref()
        .is_some_and(|info| info.len() > MAX_ADDITIONAL_INFO_BYTES)
    {
        return Err(CoreError::invalid(
            "additionalInfo",
            "must be at most 16384 bytes of JSON",
        ));
    }
    Ok(())
}

/// A user to create through the ThingsBoard dialect (no password: activation by link).
#[derive(Debug, Clone)]
pub struct AccountDraft {
    /// Email, also the login name.
    pub email: Email,
    /// Authority, tenant and customer as requested.
    pub tenancy: Tenancy,
    /// Names, phone, additional info (email is taken from `email`).
    pub profile: Profile,
}

/// What a mailed link's token is worth right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Usable.
    Valid,
    /// Known but past its lifetime.
    Expired,
}

impl Gatehouse {
    /// Issues a one-time link token for a user, valid for `hours`; only its digest is stored.
    pub(crate) async fn issue_credential_token(
        &self,
        user_id: Uuid,
        purpose: TokenPurpose,
        hours: u32,
    ) -> CoreResult<String> {
        let token = random_token(CREDENTIAL_TOKEN_BYTES);
        let now = self.clock.now_millis();
        self.store
            .insert_credential_token(CredentialToken {
                digest: digest_hex(&token),
                user_id,
                purpose,
                created_at: now,
                expires_at: now.saturating_add(i64::from(hours) * 3_600_000),
            })
            .await?;
        Ok(token)
    }

    /// The link under this server's public URL that carries a token.
    pub(crate) fn link(&self, purpose: TokenPurpose, token: &str) -> String {
        let (path, parameter) = match purpose {
            TokenPurpose::Activation => ("activate", "activateToken"),
            TokenPurpose::PasswordReset => ("resetPassword", "resetToken"),
            TokenPurpose::EmailVerification => ("activateEmail", "emailCode"),
        };
        format!("{}/api/noauth/{path}?{parameter}={token}", self.public_url)
    }

    async fn stored_token(
        &self,
        token: &str,
        purpose: TokenPurpose,
    ) -> CoreResult<Option<CredentialToken>> {
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        self.store
            .credential_token(&digest_hex(token), purpose)
            .await
    }

    /// Checks a link token without using it. Reset-link checks are rate limited per user.
    pub async fn check_link(&self, token: &str, purpose: TokenPurpose) -> CoreResult<LinkState> {
        let unknown = unknown_token(purpose);
        let stored = self
            .stored_token(token, purpose)
            .await?
            .ok_or(CoreError::Rejected(unknown))?;
        if purpose == TokenPurpose::PasswordReset {
            self.login_limits
                .reset_checks
                .try_acquire(&stored.user_id.to_string())?;
        }
        Ok(if stored.expires_at <= self.clock.now_millis() {
            LinkState::Expired
        } else {
            LinkState::Valid
        })
    }

    /// Sets a password through a link token (activation or reset) and returns the user. The
    /// token works once; every session of the user is revoked.
    pub async fn complete_link(
        &self,
        token: &str,
        purpose: TokenPurpose,
        password: &PlainPassword,
    ) -> CoreResult<User> {
        let (unknown, expired) = match purpose {
            TokenPurpose::Activation => (
                Rejection::ActivationTokenUnknown,
                Rejection::ActivationTokenExpired,
            ),
            TokenPurpose::PasswordReset => {
                (Rejection::ResetTokenUnknown, Rejection::ResetTokenExpired)
            }
            // An email code sets no password: it is used by `verify_email`.
            TokenPurpose::EmailVerification => {
                return Err(CoreError::Rejected(Rejection::EmailCodeUnknown))
            }
        };
        let stored = self
            .stored_token(token, purpose)
            .await?
            .ok_or(CoreError::Rejected(unknown.clone()))?;
        if stored.expires_at <= self.clock.now_millis() {
            return Err(CoreError::Rejected(expired));
        }
        let credentials = self
            .store
            .credentials(stored.user_id)
            .await?
            .ok_or(CoreError::Rejected(unknown.clone()))?;
        if purpose == TokenPurpose::Activation && credentials.password_hash.is_some() {
            return Err(CoreError::Rejected(Rejection::AlreadyActivated));
        }
        // ThingsBoard checks reuse on reset, not on activation (there is no history yet).
        let check_reuse = purpose == TokenPurpose::PasswordReset;
        let password_hash = self
            .accept_new_password(stored.user_id, password, "password", check_reuse)
            .await?;
        let change = PasswordChange {
            user_id: stored.user_id,
            password_hash,
            changed_at: self.clock.now_millis(),
            history_keep: PASSWORD_HISTORY_KEEP,
            consume_token: Some((stored.digest.clone(), purpose)),
            enable_credentials: purpose == TokenPurpose::Activation,
        };
        match self.store.set_password(change).await {
            Err(CoreError::NotFound { .. }) => return Err(CoreError::Rejected(unknown)),
            other => other?,
        }
        tracing::info!(user_id = %stored.user_id, purpose = purpose.as_str(), "password set by link");
        self.store
            .user(stored.user_id)
            .await?
            .ok_or(CoreError::not_found("user"))
    }

    /// Mails a password-reset link if `email` belongs to an active local user. Returns at
    /// once: the lookup and the mail happen in the background, so the answer and its timing
    /// say nothing about which addresses exist. A flood from one client address is refused
    /// with `RateLimited` (the login limit per address); requests for one email beyond a few
    /// a minute are dropped silently, so nobody can bomb a mailbox.
    pub fn request_password_reset(
        &self,
        email: String,
        client: Option<std::net::IpAddr>,
    ) -> CoreResult<()> {
        if let Some(client) = client {
            self.login_limits
                .per_address
                .try_acquire(&client.to_string())?;
        }
        if self.login_limits.reset_mails.try_acquire(&email).is_err() {
            tracing::warn!("password reset mails for one address are rate limited");
            return Ok(());
        }
        let core = self.clone();
        tokio::spawn(async move {
            if let Err(error) = core.send_reset_mail(&email).await {
                tracing::warn!(error = %error, "password reset mail not sent");
            }
        });
        Ok(())
    }

    async fn send_reset_mail(&self, email: &str) -> CoreResult<()> {
        if Email::parse(email, "email").is_err() {
            return Ok(());
        }
        let Some(credentials) = self.store.credentials_by_email(email).await? else {
            return Ok(());
        };
        let user = credentials.user;
        if !user.credentials_enabled || user.identity_provider != IdentityProvider::Local {
            return Ok(());
        }
        let security = self.security_settings().await?;
        let token = self
            .issue_credential_token(
                user.id,
                TokenPurpose::PasswordReset,
                security.password_reset_token_ttl_hours,
            )
            .await?;
        let link = self.link(TokenPurpose::PasswordReset, &token);
        self.mailer
            .send(Mail {
                to: email.to_owned(),
                subject: "Reset your password".to_owned(),
                text: format!(
                    "Someone asked to reset the password of your account {email}.\n\n\
                     To choose a new password, open this link within {} hours:\n\n{link}\n\n\
                     If it was not you, ignore this message; your password stays as it is.\n",
                    security.password_reset_token_ttl_hours
                ),
            })
            .await
    }

    /// Tells the lockout notification address, in the background, that an account locked.
    pub(crate) fn notify_lockout(&self, security: &SecuritySettings, user: &User) {
        let Some(to) = security.user_lockout_notification_email.clone() else {
            return;
        };
        let mailer = self.mailer.clone();
        let name = user.email_or_username().to_owned();
        let attempts = security.lockout_limit().unwrap_or(0);
        tokio::spawn(async move {
            let mail = Mail {
                to,
                subject: format!("Account {name} locked"),
                text: format!(
                    "The account {name} was locked after {attempts} failed login attempts.\n\
                     An administrator can enable it again.\n"
                ),
            };
            if let Err(error) = mailer.send(mail).await {
                tracing::warn!(error = %error, "lockout notification not sent");
            }
        });
    }

    /// Creates a user without a password, to be activated by link; mails the link when asked.
    /// The tenancy must be one the actor may manage (see [`may_manage`]).
    pub async fn create_account(
        &self,
        actor: &User,
        draft: AccountDraft,
        send_activation_mail: bool,
    ) -> CoreResult<User> {
        check_profile(&draft.profile)?;
        if send_activation_mail && !self.mailer.is_configured() {
            // The request asks for something this installation cannot do: a client error.
            return Err(CoreError::invalid(
                "sendActivationMail",
                "needs a mail server, and none is configured",
            ));
        }
        let tenancy = placed_tenancy(actor, draft.tenancy)?;
        let mut profile = draft.profile;
        profile.email = Some(draft.email.as_str().to_owned());
        let user = User::local(
            draft.email.to_username().as_str().to_owned(),
            self.clock.now_millis(),
            profile,
            tenancy,
            false,
        );
        if !may_manage(actor, &user, Access::Write) {
            return Err(forbidden());
        }
        self.store
            .insert_users(vec![NewUser {
                user: user.clone(),
                password_hash: None,
                own_role: None,
                role_ids: Vec::new(),
                certificates: Vec::new(),
            }])
            .await?;
        tracing::info!(user_id = %user.id, authority = user.tenancy.authority.as_str(), "account created");
        if send_activation_mail {
            if let Err(error) = self.send_activation_mail(&user).await {
                // Without the mail nobody can activate the account: undo it.
                self.store.delete_user(user.id).await?;
                return Err(error);
            }
        }
        Ok(user)
    }

    async fn send_activation_mail(&self, user: &User) -> CoreResult<()> {
        let security = self.security_settings().await?;
        let token = self
            .issue_credential_token(
                user.id,
                TokenPurpose::Activation,
                security.user_activation_token_ttl_hours,
            )
            .await?;
        let link = self.link(TokenPurpose::Activation, &token);
        let to = user.email_or_username().to_owned();
        self.mailer
            .send(Mail {
                to: to.clone(),
                subject: "Activate your account".to_owned(),
                text: format!(
                    "An account {to} was created for you.\n\n\
                     To activate it and choose your password, open this link within {} hours:\n\n\
                     {link}\n",
                    security.user_activation_token_ttl_hours
                ),
            })
            .await
    }

    /// Mails an activated user that its account is ready (ThingsBoard's `sendActivationMail`
    /// on activation). Failures are logged, not returned: the account is active either way.
    pub async fn send_activated_mail(&self, user: &User) {
        if !self.mailer.is_configured() {
            return;
        }
        let to = user.email_or_username().to_owned();
        let mail = Mail {
            to: to.clone(),
            subject: "Your account is active".to_owned(),
            text: format!(
                "Your account {to} is active. Log in at {}\n",
                self.public_url
            ),
        };
        if let Err(error) = self.mailer.send(mail).await {
            tracing::warn!(error = %error, "account activated mail not sent");
        }
    }

    /// A user the actor may see (`Access::Read`) or change (`Access::Write`).
    pub async fn managed_user(&self, actor: &User, id: Uuid, access: Access) -> CoreResult<User> {
        let user = self
            .store
            .user(id)
            .await?
            .ok_or(CoreError::not_found("user"))?;
        if !may_manage(actor, &user, access) {
            return Err(forbidden());
        }
        Ok(user)
    }

    /// Replaces a managed user's email, names, phone and additional info; authority, tenant
    /// and customer cannot change.
    pub async fn update_account(
        &self,
        actor: &User,
        id: Uuid,
        email: Email,
        tenancy: Option<Tenancy>,
        profile: Profile,
    ) -> CoreResult<User> {
        check_profile(&profile)?;
        let mut user = self.managed_user(actor, id, Access::Write).await?;
        if tenancy.is_some_and(|requested| requested.authority != user.tenancy.authority) {
            return Err(CoreError::invalid("authority", "cannot be changed"));
        }
        let old_email = user.profile.email.clone();
        if let Some(holder) = self.store.credentials_by_username(email.as_str()).await? {
            if holder.user.id != id {
                return Err(CoreError::conflict(format!(
                    "a user named '{}' already exists",
                    email.as_str()
                )));
            }
        }
        user.profile = Profile {
            email: Some(email.as_str().to_owned()),
            ..profile
        };
        self.store.update_profile(&user).await?;
        // A user whose login name is its email keeps logging in with its (new) email.
        if old_email.as_deref() == Some(user.username.as_str()) && user.username != email.as_str() {
            user.username = email.as_str().to_owned();
            let update = UserUpdate {
                user: Some(user.clone()),
                ..UserUpdate::default()
            };
            self.store.update_user(id, update).await?;
        }
        Ok(user)
    }

    /// Deletes a managed user (not oneself).
    pub async fn delete_account(&self, actor: &User, id: Uuid) -> CoreResult<()> {
        if actor.id == id {
            return Err(CoreError::Forbidden {
                reason: "nobody deletes itself".to_owned(),
            });
        }
        self.managed_user(actor, id, Access::Write).await?;
        self.store.delete_user(id).await?;
        tracing::info!(user_id = %id, "account deleted");
        Ok(())
    }

    /// A fresh activation link for a managed user who has not activated yet. Each call issues
    /// a new token (tokens are stored as digests and cannot be shown again); earlier links
    /// stay valid until they expire or one of them is used.
    pub async fn activation_link(&self, actor: &User, id: Uuid) -> CoreResult<String> {
        self.managed_user(actor, id, Access::Write).await?;
        let credentials = self
            .store
            .credentials(id)
            .await?
            .ok_or(CoreError::not_found("user"))?;
        if credentials.password_hash.is_some() {
            return Err(CoreError::Rejected(Rejection::AlreadyActivated));
        }
        let security = self.security_settings().await?;
        let token = self
            .issue_credential_token(
                id,
                TokenPurpose::Activation,
                security.user_activation_token_ttl_hours,
            )
            .await?;
        Ok(self.link(TokenPurpose::Activation, &token))
    }

    /// Enables (unlocking, clearing failures) or disables (revoking every session) a managed
    /// user's credentials. Nobody disables itself.
    pub async fn set_account_enabled(
        &self,
        actor: &User,
        id: Uuid,
        enabled: bool,
    ) -> CoreResult<()> {
        if actor.id == id && !enabled {
            return Err(CoreError::Forbidden {
                reason: "nobody disables itself".to_owned(),
            });
        }
        self.managed_user(actor, id, Access::Write).await?;
        self.store.set_credentials_enabled(id, enabled).await?;
        if enabled {
            // An administrator who enables a pending sign-up vouches for it: it is no longer
            // pending (never renewed nor purged), whatever happens to it later.
            self.store
                .activate_signup(id, self.clock.now_millis())
                .await?;
        }
        tracing::info!(user_id = %id, enabled, "credentials enabled state set");
        Ok(())
    }
}

/// The rejection of a link token that no link of `purpose` has.
fn unknown_token(purpose: TokenPurpose) -> Rejection {
    match purpose {
        TokenPurpose::Activation => Rejection::ActivationTokenUnknown,
        TokenPurpose::PasswordReset => Rejection::ResetTokenUnknown,
        TokenPurpose::EmailVerification => Rejection::EmailCodeUnknown,
    }
}

/// The tenancy a new user gets: a tenant administrator's users land in its own tenant.
fn placed_tenancy(actor: &User, requested: Tenancy) -> CoreResult<Tenancy> {
    let mut tenancy = requested;
    if actor.tenancy.authority == Authority::TenantAdmin {
        tenancy.tenant_id = actor.tenancy.tenant_id;
    }
    match tenancy.authority {
        Authority::SysAdmin => {
            tenancy.tenant_id = NULL_UUID;
            tenancy.customer_id = NULL_UUID;
        }
        Authority::TenantAdmin => {
            if tenancy.tenant_id == NULL_UUID {
                return Err(CoreError::invalid(
                    "tenantId",
                    "must be given for a tenant administrator",
                ));
            }
            tenancy.customer_id = NULL_UUID;
        }
        Authority::CustomerUser => {
            if tenancy.tenant_id == NULL_UUID || tenancy.customer_id == NULL_UUID {
                return Err(CoreError::invalid(
                    "customerId",
                    "must be given for a customer user",
                ));
            }
        }
    }
    Ok(tenancy)
}

fn forbidden() -> CoreError {
    CoreError::Forbidden {
        reason: "the user is outside your tenancy".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(authority: Authority, tenant: u128, customer: u128) -> User {
        let id = |n: u128| {
            if n == 0 {
                NULL_UUID
            } else {
                Uuid::from_u128(n)
            }
        };
        User {
            id: Uuid::new_v4(),
            username: "someone".into(),
            auto_generated: false,
            mqtt_publish_prefix: None,
            identity_provider: IdentityProvider::Local,
            grant_types: Vec::new(),
            enforce_mfa_enrollment: false,
            mfa_enrolled: false,
            created_at: 0,
            profile: Profile::default(),
            tenancy: Tenancy {
                authority,
                tenant_id: id(tenant),
                customer_id: id(customer),
            },
            credentials_enabled: true,
        }
    }

    #[test]
    fn tenancy_rule() {
        let sys = user(Authority::SysAdmin, 0, 0);
        let t1 = user(Authority::TenantAdmin, 1, 0);
        let t1b = user(Authority::TenantAdmin, 1, 0);
        let t2 = user(Authority::TenantAdmin, 2, 0);
        let c1 = user(Authority::CustomerUser, 1, 10);
        let c1b = user(Authority::CustomerUser, 1, 10);
        let c2 = user(Authority::CustomerUser, 1, 11);
        let loose = user(Authority::CustomerUser, 0, 0);
        let loose2 = user(Authority::CustomerUser, 0, 0);
        assert!(may_manage(&sys, &t1, Access::Write));
        assert!(!may_manage(&sys, &c1, Access::Read));
        assert!(may_manage(&sys, &loose, Access::Write));
        assert!(may_manage(&t1, &t1b, Access::Write));
        assert!(may_manage(&t1, &c1, Access::Write));
        assert!(!may_manage(&t1, &t2, Access::Read));
        assert!(!may_manage(&t1, &sys, Access::Read));
        assert!(may_manage(&c1, &c1b, Access::Read));
        assert!(!may_manage(&c1, &c1b, Access::Write));
        assert!(!may_manage(&c1, &c2, Access::Read));
        assert!(may_manage(&c1, &c1, Access::Write));
        // Users of no customer are not each other's customer.
        assert!(!may_manage(&loose, &loose2, Access::Read));
    }

    #[test]
    fn placement() {
        let t1 = user(Authority::TenantAdmin, 1, 0);
        let requested = Tenancy {
            authority: Authority::CustomerUser,
            tenant_id: Uuid::from_u128(99),
            customer_id: Uuid::from_u128(5),
        };
        let placed = placed_tenancy(&t1, requested).unwrap();
        assert_eq!(placed.tenant_id, Uuid::from_u128(1));
        let sys = user(Authority::SysAdmin, 0, 0);
        assert!(placed_tenancy(
            &sys,
            Tenancy {
                authority: Authority::TenantAdmin,
                tenant_id: NULL_UUID,
                customer_id: NULL_UUID
            }
        )
        .is_err());
    }
}

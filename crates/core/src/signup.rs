//! Self-service sign-up (ThingsBoard's T12–T21): a visitor creates an account with email and
//! password, proves the mailbox with a mailed code, accepts the privacy policy, and may delete
//! the account again.
//!
//! The rules, in one place:
//! - Sign-up is off unless configured; a reCAPTCHA answer is checked on every sign-up.
//! - A sign-up creates an inactive user (a tenant administrator of a new tenant, or a customer
//!   user of a new customer of a configured tenant) whose password is set but whose credentials
//!   stay disabled until the email code is used. The code is high-entropy, mailed, stored as a
//!   digest, works once and expires.
//! - Answers reveal no more than ThingsBoard's contract: `SUCCESS`, or `INACTIVE_USER_EXISTS`
//!   for an unverified sign-up. An address that belongs to any other account answers `SUCCESS`
//!   too, and its owner gets a notice instead of a code. Every path hashes the password and
//!   mails in the background, so timing tells nothing either.
//! - A repeated sign-up of an unverified address replaces the pending password and names and
//!   voids the earlier codes: the newest request wins, so whoever squats an address first cannot
//!   make its owner activate the squatter's password by verifying.
//! - Until the privacy policy is accepted (when required), a signed-up account may only call the
//!   sign-up endpoints (see [`Principal::privacy_policy_pending`]).
//! - The owner deletes its account (its whole tenant, or its customer) after re-authenticating:
//!   with its password, or with a session opened by a login a few minutes ago.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::accounts::check_profile;
use crate::auth::Principal;
use crate::error::{CoreError, CoreResult, Rejection};
use crate::mail::Mail;
use crate::model::{Authority, Profile, Tenancy, TokenPurpose, User, NULL_UUID};
use crate::names::Email;
use crate::pairs::TokenPair;
use crate::password::PlainPassword;
use crate::ratelimit::{RateLimit, RateLimiter};
use crate::service::Gatehouse;
use crate::store::{NewUser, SignupRecord};
use crate::tokens::digest_hex;

/// Why a signed-up account that has not accepted the privacy policy is refused (both dialects).
pub const PRIVACY_POLICY_PENDING: &str =
    "You must accept the privacy policy first (POST /api/signup/acceptPrivacyPolicy)";

/// Unverified sign-ups deleted per purge (each sign-up purges; the bound keeps it short).
const PURGE_BATCH: u32 = 100;

/// Asks a CAPTCHA verification service whether a client's answer is genuine.
#[async_trait]
pub trait CaptchaVerifier: Send + Sync + 'static {
    /// `Ok(true)` when the service accepts `response` (and, for score-based versions, the score
    /// and action pass), `Ok(false)` when it refuses, `Unavailable` when it cannot be asked.
    async fn verify(&self, response: &str, client: Option<IpAddr>) -> CoreResult<bool>;
}

/// The verifier of an installation whose sign-up is off: refuses everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCaptcha;

#[async_trait]
impl CaptchaVerifier for NoCaptcha {
    async fn verify(&self, _response: &str, _client: Option<IpAddr>) -> CoreResult<bool> {
        Ok(false)
    }
}

/// What kind of account a sign-up creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupAccount {
    /// A tenant administrator of a new tenant (ThingsBoard Cloud's self-registration).
    Tenant,
    /// A customer user of a new customer of this tenant (ThingsBoard PE's white-labelled
    /// self-registration).
    Customer {
        /// The tenant the customers are created in.
        tenant_id: Uuid,
    },
}

/// What the sign-up page needs to show the CAPTCHA (`CaptchaClientParams`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CaptchaClientParams {
    /// `v2`, `v3` or `enterprise`.
    pub version: String,
    /// The public site key.
    pub site_key: String,
    /// The action name score-based versions expect, if any.
    pub action: Option<String>,
}

/// A mobile application allowed to sign users up and to receive links in its own URL scheme.
#[derive(Debug, Clone)]
pub struct MobileApp {
    /// Its package name (`pkgName`).
    pub package: String,
    /// The secret it sends as `appSecret`.
    pub secret: SecretString,
    /// The URL scheme links to the app use (`<scheme>://…`).
    pub callback_scheme: String,
}

/// The sign-up settings.
#[derive(Debug, Clone)]
pub struct SignupSettings {
    /// Whether visitors may sign up at all (T12–T18).
    pub enabled: bool,
    /// What a sign-up creates.
    pub account: SignupAccount,
    /// Hours an email code stays valid.
    pub email_code_ttl_hours: u32,
    /// Hours after which an account whose email was never verified is deleted.
    pub unverified_retention_hours: u32,
    /// Unverified sign-ups kept at most; more are refused with 429 until some are verified or
    /// purged.
    pub max_unverified: u64,
    /// Sign-ups and resends per client address.
    pub per_address: RateLimit,
    /// Mails per email address and hour (codes and notices); more are dropped silently.
    pub mails_per_address_hour: u32,
    /// Whether signed-up accounts must accept the privacy policy before using the API.
    pub privacy_policy_required: bool,
    /// Seconds a login counts as recent enough to delete the account without the password.
    pub reauthentication_secs: u32,
    /// What the sign-up page shows.
    pub captcha: CaptchaClientParams,
    /// The mobile applications that may sign users up.
    pub mobile_apps: Vec<MobileApp>,
}

impl Default for SignupSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            account: SignupAccount::Tenant,
            email_code_ttl_hours: 24,
            unverified_retention_hours: 72,
            max_unverified: 10_000,
            per_address: RateLimit {
                burst: 10,
                per_minute: 1,
            },
            mails_per_address_hour: 3,
            privacy_policy_required: true,
            reauthentication_secs: 300,
            captcha: CaptchaClientParams::default(),
            mobile_apps: Vec::new(),
        }
    }
}

/// Sign-up as configured, with its verifier and limiters.
pub(crate) struct Signup {
    settings: SignupSettings,
    verifier: Arc<dyn CaptchaVerifier>,
    per_address: RateLimiter,
    mails: RateLimiter,
}

impl Signup {
    pub(crate) fn new(
        settings: SignupSettings,
        verifier: Arc<dyn CaptchaVerifier>,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Self {
        Self {
            per_address: RateLimiter::new(settings.per_address, clock.clone()),
            mails: RateLimiter::per_period(settings.mails_per_address_hour, 3600, clock),
            settings,
            verifier,
        }
    }
}

/// A mobile application's credentials as a sign-up request carries them.
#[derive(Debug, Clone)]
pub struct MobileCredentials {
    /// `pkgName`.
    pub package: String,
    /// `appSecret`.
    pub secret: String,
}

/// A parsed sign-up request.
#[derive(Debug)]
pub struct SignUpForm {
    /// The email, also the login name.
    pub email: Email,
    /// The password chosen.
    pub password: PlainPassword,
    /// Names, phone and additional info (the address fields, as a JSON object).
    pub profile: Profile,
    /// The CAPTCHA answer.
    pub captcha_response: String,
    /// Set when a mobile application signs the user up.
    pub mobile: Option<MobileCredentials>,
}

/// ThingsBoard's `SignUpResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignUpOutcome {
    /// Accepted (a code or a notice is on its way).
    Success,
    /// An unverified sign-up of this address exists; a new code is on its way.
    InactiveUserExists,
}

impl SignUpOutcome {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            SignUpOutcome::Success => "SUCCESS",
            SignUpOutcome::InactiveUserExists => "INACTIVE_USER_EXISTS",
        }
    }
}

/// What a signed-up account owner deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedAccount {
    /// Users deleted (the owner included).
    pub users: u64,
}

fn disabled() -> CoreError {
    CoreError::not_found("sign-up")
}

impl Gatehouse {
    /// Serves sign-up with `settings`, checking CAPTCHA answers with `verifier`.
    pub fn with_signup(
        mut self,
        settings: SignupSettings,
        verifier: Arc<dyn CaptchaVerifier>,
    ) -> Self {
        self.signup = Arc::new(Signup::new(settings, verifier, self.clock.clone()));
        self
    }

    /// The sign-up settings in force.
    pub fn signup_settings(&self) -> &SignupSettings {
        &self.signup.settings
    }

    /// The settings when sign-up is on; `NotFound` when it is off (T12–T18 then do not exist).
    pub fn enabled_signup(&self) -> CoreResult<&SignupSettings> {
        let settings = &self.signup.settings;
        if settings.enabled {
            Ok(settings)
        } else {
            Err(disabled())
        }
    }

    /// The configured mobile application `package`; `Invalid` for an unknown one.
    pub fn mobile_app(&self, package: &str) -> CoreResult<&MobileApp> {
        self.signup
            .settings
            .mobile_apps
            .iter()
            .find(|app| app.package == package)
            .ok_or_else(|| CoreError::invalid("pkgName", "is not a known mobile application"))
    }

    /// Signs a visitor up (T12). See the module documentation for the rules.
    pub async fn sign_up(
        &self,
        form: SignUpForm,
        client: Option<IpAddr>,
    ) -> CoreResult<SignUpOutcome> {
        let settings = self.enabled_signup()?;
        if let Some(client) = client {
            self.signup.per_address.try_acquire(&client.to_string())?;
        }
        check_profile(&form.profile)?;
        let package = match &form.mobile {
            Some(mobile) => {
                let app = self.mobile_app(&mobile.package)?;
                let matches: bool = subtle::ConstantTimeEq::ct_eq(
                    app.secret.expose_secret().as_bytes(),
                    mobile.secret.as_bytes(),
                )
                .into();
                if !matches {
                    return Err(CoreError::invalid(
                        "appSecret",
                        "does not match the application",
                    ));
                }
                Some(app.package.clone())
            }
            None => None,
        };
        if form.captcha_response.is_empty()
            || form.captcha_response.len() > 8192
            || !self
                .signup
                .verifier
                .verify(&form.captcha_response, client)
                .await?
        {
            return Err(CoreError::invalid(
                "recaptchaResponse",
                "was not accepted by the CAPTCHA verification",
            ));
        }
        let policy = self.password_policy().await?;
        policy.check(&form.password, "password")?;
        // Every path below hashes, so the answer's timing does not tell which one ran.
        let password_hash = self.hasher.hash(&form.password).await?;
        let now = self.clock.now_millis();
        self.purge_unverified_signups(settings, now).await?;
        // The cap comes before the address lookup, so that its answer is the same for taken
        // and free addresses (the insert checks it again, serialized with other sign-ups).
        if self.store.count_unverified_signups().await? >= settings.max_unverified {
            tracing::warn!("sign-up refused: too many pending sign-ups");
            return Err(CoreError::RateLimited {
                retry_after_secs: 600,
            });
        }

        let email = form.email.as_str().to_owned();
        let mut profile = form.profile;
        profile.email = Some(email.clone());
        // Mailboxes rarely tell case apart: an address taken in another case is taken, and the
        // mail goes to the address of record.
        if let Some(user) = self.store.user_by_address_any_case(&email).await? {
            let email = user.email_or_username().to_owned();
            if !self.is_pending_signup(&user).await? {
                self.mail_in_background(email, MailKind::AccountExists);
                return Ok(SignUpOutcome::Success);
            }
            match self
                .store
                .renew_pending_signup(user.id, &password_hash, &profile, now)
                .await
            {
                Ok(()) => {}
                // Activated (or deleted) since the lookup: the address is taken.
                Err(CoreError::NotFound { .. }) => {
                    self.mail_in_background(email, MailKind::AccountExists);
                    return Ok(SignUpOutcome::Success);
                }
                Err(error) => return Err(error),
            }
            tracing::info!(user_id = %user.id, "unverified sign-up renewed");
            self.mail_in_background(email, MailKind::Verification { package });
            return Ok(SignUpOutcome::InactiveUserExists);
        }
        let (tenancy, owns_tenant) = match settings.account {
            SignupAccount::Tenant => (
                Tenancy {
                    authority: Authority::TenantAdmin,
                    tenant_id: Uuid::new_v4(),
                    customer_id: NULL_UUID,
                },
                true,
            ),
            SignupAccount::Customer { tenant_id } => (
                Tenancy {
                    authority: Authority::CustomerUser,
                    tenant_id,
                    customer_id: Uuid::new_v4(),
                },
                false,
            ),
        };
        let user = User::local(
            form.email.to_username().as_str().to_owned(),
            now,
            profile,
            tenancy,
            false,
        );
        let new_user = NewUser {
            user: user.clone(),
            password_hash: Some(password_hash),
            own_role: None,
            role_ids: Vec::new(),
            certificates: Vec::new(),
        };
        let record = SignupRecord {
            user_id: user.id,
            owns_tenant,
            created_at: now,
            activated_at: None,
            privacy_policy_accepted_at: None,
        };
        match self
            .store
            .insert_signup(new_user, record, settings.max_unverified)
            .await
        {
            Ok(()) => {}
            // A parallel sign-up of the address (in any case) won the race: it is pending now.
            Err(CoreError::Conflict { .. }) => return Ok(SignUpOutcome::InactiveUserExists),
            Err(error) => return Err(error),
        }
        tracing::info!(user_id = %user.id, authority = user.tenancy.authority.as_str(), "signed up");
        self.mail_in_background(email, MailKind::Verification { package });
        Ok(SignUpOutcome::Success)
    }

    /// Deletes unverified sign-ups older than the retention, a batch at a time.
    async fn purge_unverified_signups(
        &self,
        settings: &SignupSettings,
        now: i64,
    ) -> CoreResult<()> {
        let cutoff = now.saturating_sub(i64::from(settings.unverified_retention_hours) * 3_600_000);
        let purged = self
            .store
            .purge_unverified_signups(cutoff, PURGE_BATCH)
            .await?;
        if purged > 0 {
            tracing::info!(purged, "unverified sign-ups purged");
        }
        Ok(())
    }

    /// Mails a new email code to an unverified sign-up (T15). Always `Ok` whether or not the
    /// address signed up; a flood from one client address is `RateLimited`.
    pub fn resend_email_verification(
        &self,
        email: String,
        package: Option<String>,
        client: Option<IpAddr>,
    ) -> CoreResult<()> {
        self.enabled_signup()?;
        if let Some(client) = client {
            self.signup.per_address.try_acquire(&client.to_string())?;
        }
        let package = match package {
            Some(package) => Some(self.mobile_app(&package)?.package.clone()),
            None => None,
        };
        if Email::parse(&email, "email").is_ok() {
            self.mail_in_background(email, MailKind::Verification { package });
        }
        Ok(())
    }

    /// Uses an email code (T14): the account's credentials are enabled and its email counts as
    /// verified. The code works once; every other code of the account is voided.
    pub async fn verify_email(&self, code: &str) -> CoreResult<User> {
        self.enabled_signup()?;
        if code.is_empty() || code.len() > 256 {
            return Err(CoreError::Rejected(Rejection::EmailCodeUnknown));
        }
        let now = self.clock.now_millis();
        let user_id = self
            .store
            .verify_signup_email(&digest_hex(code), now)
            .await?
            .map_err(CoreError::Rejected)?;
        tracing::info!(user_id = %user_id, "sign-up email verified");
        self.store
            .user(user_id)
            .await?
            .ok_or(CoreError::Rejected(Rejection::EmailCodeUnknown))
    }

    /// Whether `user` still has to accept the privacy policy before using the API: a
    /// signed-up account that has not, while acceptance is required.
    pub(crate) async fn privacy_policy_pending(&self, user: &User) -> CoreResult<bool> {
        // Signed-up accounts always belong to a tenant: users of none (those of the Connectware
        // dialect, devices) need no lookup.
        if !self.signup.settings.privacy_policy_required || user.tenancy.tenant_id == NULL_UUID {
            return Ok(false);
        }
        Ok(self
            .store
            .signup(user.id)
            .await?
            .is_some_and(|record| record.privacy_policy_accepted_at.is_none()))
    }

    /// Whether `user` has accepted the privacy policy (T20). Accounts that did not sign up
    /// themselves were never asked: true.
    pub async fn privacy_policy_accepted(&self, user_id: Uuid) -> CoreResult<bool> {
        Ok(self
            .store
            .signup(user_id)
            .await?
            .is_none_or(|record| record.privacy_policy_accepted_at.is_some()))
    }

    /// Records the caller's acceptance of the privacy policy (T19) and answers a new token
    /// pair, whose session replaces the caller's pair session.
    pub async fn accept_privacy_policy(&self, principal: &Principal) -> CoreResult<TokenPair> {
        // Only a pair session is replaced by a pair: an API key or a Connectware token must not
        // turn into a refreshable pair that outlives it.
        let Some(session) = principal
            .session
            .as_ref()
            .filter(|session| session.kind == crate::model::SessionKind::Pair)
        else {
            return Err(CoreError::Forbidden {
                reason: "accept the privacy policy with a ThingsBoard token pair (log in with \
                         POST /api/auth/login)"
                    .to_owned(),
            });
        };
        let now = self.clock.now_millis();
        self.store
            .accept_privacy_policy(principal.user.id, now)
            .await?;
        tracing::info!(user_id = %principal.user.id, "privacy policy accepted");
        // The new session continues the caller's login: it keeps the login's time, so that
        // accepting is no re-authentication (see `delete_signed_up_account`).
        let pair = self
            .open_pair_session_since(&principal.user, session.created_at)
            .await?;
        self.store
            .revoke_sessions(principal.user.id, Some(&session.id.to_string()))
            .await?;
        Ok(pair)
    }

    /// Deletes the caller's signed-up account (T21): its tenant with every user and OAuth2
    /// client in it when the sign-up created the tenant, else its customer's users. The caller
    /// re-authenticates with `password`, or holds a session a login opened within
    /// `reauthentication_secs`.
    pub async fn delete_signed_up_account(
        &self,
        principal: &Principal,
        password: Option<&PlainPassword>,
    ) -> CoreResult<DeletedAccount> {
        let user = &principal.user;
        let record = self
            .store
            .signup(user.id)
            .await?
            .ok_or_else(|| CoreError::Forbidden {
                reason: "only an account created by sign-up can be deleted this way".to_owned(),
            })?;
        match password {
            Some(password) => {
                // Guesses share the login budget of the account (a success gives it back), so
                // a stolen session cannot try passwords here faster than at the login.
                let limiter = &self.login_limits.per_account;
                limiter.try_acquire(&user.username)?;
                let stored = self
                    .store
                    .credentials(user.id)
                    .await?
                    .ok_or(CoreError::not_found("user"))?;
                if !self
                    .hasher
                    .verify(password, stored.password_hash.as_deref())
                    .await?
                {
                    return Err(CoreError::Rejected(Rejection::WrongCurrentPassword));
                }
                limiter.refund(&user.username);
            }
            None => {
                let window = i64::from(self.signup.settings.reauthentication_secs) * 1000;
                let now = self.clock.now_millis();
                let recent = principal
                    .session
                    .as_ref()
                    .is_some_and(|session| now.saturating_sub(session.created_at) <= window);
                if !recent {
                    return Err(CoreError::Forbidden {
                        reason: "re-authenticate first: log in again, or send your password"
                            .to_owned(),
                    });
                }
            }
        }
        let scope = deletion_scope(user, &record)?;
        let users = self.store.delete_tenancy(scope).await?;
        tracing::info!(user_id = %user.id, users, owns_tenant = record.owns_tenant, "signed-up account deleted");
        Ok(DeletedAccount { users })
    }

    /// Whether `user` is a sign-up still waiting for its email code: never activated, neither
    /// by a code nor by an administrator. An account that was ever enabled is in use: a sign-up
    /// never changes it and it is never purged, even once locked or disabled.
    async fn is_pending_signup(&self, user: &User) -> CoreResult<bool> {
        Ok(self
            .store
            .signup(user.id)
            .await?
            .is_some_and(|record| record.activated_at.is_none()))
    }

    /// Takes one mail from the hourly budget of `email`; false (and a warning) when it is spent.
    /// Only mails really sent count, so requests that mail nothing cannot use up an address's
    /// budget and keep its owner's codes away.
    fn mail_budget(&self, email: &str) -> bool {
        let available = self.signup.mails.try_acquire(&email.to_lowercase()).is_ok();
        if !available {
            tracing::warn!("sign-up mails for one address are rate limited");
        }
        available
    }

    /// Sends a sign-up mail in the background (within the address's mail budget).
    fn mail_in_background(&self, email: String, kind: MailKind) {
        let core = self.clone();
        tokio::spawn(async move {
            if let Err(error) = core.send_signup_mail(&email, kind).await {
                tracing::warn!(error = %error, "sign-up mail not sent");
            }
        });
    }

    async fn send_signup_mail(&self, email: &str, kind: MailKind) -> CoreResult<()> {
        let package = match kind {
            MailKind::AccountExists => return self.send_account_exists_mail(email).await,
            MailKind::Verification { package } => package,
        };
        let Some(user) = self.store.user_by_address_any_case(email).await? else {
            return Ok(());
        };
        // The mail goes to the address of record, whatever case the request used.
        let email = user.email_or_username().to_owned();
        let email = email.as_str();
        if !self.is_pending_signup(&user).await? || !self.mail_budget(email) {
            return Ok(());
        }
        let hours = self.signup.settings.email_code_ttl_hours;
        let code = self
            .issue_credential_token(user.id, TokenPurpose::EmailVerification, hours)
            .await?;
        let mut link = self.link(TokenPurpose::EmailVerification, &code);
        if let Some(package) = &package {
            link.push_str("&pkgName=");
            link.push_str(&form_encode(package));
        }
        self.mailer
            .send(Mail {
                to: email.to_owned(),
                subject: "Verify your email".to_owned(),
                text: format!(
                    "Someone signed up with this address ({email}).\n\n\
                     To activate the account, open this link within {hours} hours:\n\n{link}\n\n\
                     or enter this code in the app: {code}\n\n\
                     Only the newest sign-up's link works. If you did not sign up, ignore this \
                     message: the account stays inactive and is deleted after a while.\n"
                ),
            })
            .await
    }

    async fn send_account_exists_mail(&self, email: &str) -> CoreResult<()> {
        if !self.mail_budget(email) {
            return Ok(());
        }
        self.mailer
            .send(Mail {
                to: email.to_owned(),
                subject: "You already have an account".to_owned(),
                text: format!(
                    "Someone tried to sign up with this address ({email}), which already has an \
                     account. Nothing was changed.\n\n\
                     If it was you and you forgot your password, reset it at {}/login/resetPasswordRequest\n\
                     If it was not you, ignore this message.\n",
                    self.public_url
                ),
            })
            .await
    }
}

/// Which mail a sign-up sends.
#[derive(Debug, Clone)]
enum MailKind {
    /// A code for a pending sign-up, with links into the mobile application `package`.
    Verification { package: Option<String> },
    /// A notice to the owner of an existing account.
    AccountExists,
}

/// Percent-encodes a query value.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Which users a signed-up account's deletion removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionScope {
    /// Every user, OAuth2 client and domain of the tenant.
    Tenant(Uuid),
    /// The users of one customer of a tenant.
    Customer {
        /// The tenant.
        tenant_id: Uuid,
        /// The customer.
        customer_id: Uuid,
    },
}

/// What deleting `user`'s signed-up account removes. Never the null tenant or customer, which
/// hold every user created outside a tenancy.
fn deletion_scope(user: &User, record: &SignupRecord) -> CoreResult<DeletionScope> {
    let tenancy = user.tenancy;
    let refuse = || CoreError::Forbidden {
        reason: "this account has no tenancy of its own to delete".to_owned(),
    };
    if tenancy.tenant_id == NULL_UUID {
        return Err(refuse());
    }
    if record.owns_tenant {
        if tenancy.authority != Authority::TenantAdmin {
            return Err(refuse());
        }
        return Ok(DeletionScope::Tenant(tenancy.tenant_id));
    }
    if tenancy.customer_id == NULL_UUID {
        return Err(refuse());
    }
    Ok(DeletionScope::Customer {
        tenant_id: tenancy.tenant_id,
        customer_id: tenancy.customer_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IdentityProvider;

    fn user(authority: Authority, tenant: Uuid, customer: Uuid) -> User {
        let mut user = User::local(
            "x@example.com".into(),
            0,
            Profile::default(),
            Tenancy {
                authority,
                tenant_id: tenant,
                customer_id: customer,
            },
            true,
        );
        user.identity_provider = IdentityProvider::Local;
        user
    }

    fn record(owns_tenant: bool) -> SignupRecord {
        SignupRecord {
            user_id: Uuid::new_v4(),
            owns_tenant,
            created_at: 0,
            activated_at: Some(1),
            privacy_policy_accepted_at: None,
        }
    }

    #[test]
    fn deletion_never_reaches_the_null_tenancy() {
        let t = Uuid::new_v4();
        let c = Uuid::new_v4();
        assert_eq!(
            deletion_scope(&user(Authority::TenantAdmin, t, NULL_UUID), &record(true)).unwrap(),
            DeletionScope::Tenant(t)
        );
        assert_eq!(
            deletion_scope(&user(Authority::CustomerUser, t, c), &record(false)).unwrap(),
            DeletionScope::Customer {
                tenant_id: t,
                customer_id: c
            }
        );
        // The null tenant holds every user created outside the ThingsBoard tenancy.
        assert!(deletion_scope(
            &user(Authority::TenantAdmin, NULL_UUID, NULL_UUID),
            &record(true)
        )
        .is_err());
        assert!(
            deletion_scope(&user(Authority::CustomerUser, t, NULL_UUID), &record(false)).is_err()
        );
        assert!(
            deletion_scope(&user(Authority::CustomerUser, NULL_UUID, c), &record(false)).is_err()
        );
        // Only a tenant administrator deletes a tenant.
        assert!(deletion_scope(&user(Authority::CustomerUser, t, c), &record(true)).is_err());
        assert!(deletion_scope(&user(Authority::SysAdmin, t, NULL_UUID), &record(true)).is_err());
    }

    #[test]
    fn outcomes_have_thingsboards_names() {
        assert_eq!(SignUpOutcome::Success.as_str(), "SUCCESS");
        assert_eq!(
            SignUpOutcome::InactiveUserExists.as_str(),
            "INACTIVE_USER_EXISTS"
        );
    }
}

//! The MFA flows of both dialects over one set of factors.
//!
//! **Second step of a login.** When a user with an active factor passes the password check,
//! no usable token is issued. Instead the login opens an MFA *challenge*: a session of kind
//! [`SessionKind::MfaPending`] and a signed token naming it (ThingsBoard's
//! `PRE_VERIFICATION_TOKEN` claims, which Connectware returns as its `secret`). The challenge
//! opens only the verification endpoints, lives `totalAllowedTimeForVerification` seconds, and
//! is consumed when the second factor succeeds (of two parallel completions one wins). A user
//! who must enrol first gets ThingsBoard's `MFA_CONFIGURATION_TOKEN` (same mechanism) or a
//! Connectware token of kind [`SessionKind::Enrolment`], which opens only the enrolment
//! endpoints and becomes a full token once enrolment succeeds.
//!
//! **Enrolment.** Connectware stores a pending TOTP seed (`/api/mfa/enable`) and confirms it
//! with a code (`/api/mfa/validate`); ThingsBoard hands the generated configuration to the
//! client and takes it back with a code (`POST /api/2fa/account/config`). Both end in the same
//! enrolled factor.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{AuthFailure, CoreError, CoreResult, Rejection};
use crate::model::{Session, SessionKind, User};
use crate::names::Email;
use crate::service::Gatehouse;
use crate::tokens::digest_hex;

use super::settings::{PlatformMfaSettings, ProviderConfig};
use super::verify::{
    is_backup_code, new_backup_codes, new_totp_seed, parse_seed_base32, seed_base32, SendPurpose,
};
use super::{MfaFactor, MfaProvider};

/// What an MFA token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaScope {
    /// The second step of a login (`PRE_VERIFICATION_TOKEN`).
    PreVerification,
    /// Enrolling a factor before the first login completes (`MFA_CONFIGURATION_TOKEN`).
    Configuration,
}

impl MfaScope {
    /// ThingsBoard's scope name.
    pub fn as_str(self) -> &'static str {
        match self {
            MfaScope::PreVerification => "PRE_VERIFICATION_TOKEN",
            MfaScope::Configuration => "MFA_CONFIGURATION_TOKEN",
        }
    }
}

/// Claims of MFA tokens: ThingsBoard's `createMfaToken` claims, plus the lifetime a Connectware
/// login asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MfaTokenClaims {
    sub: String,
    user_id: String,
    scopes: Vec<String>,
    session_id: String,
    exp: i64,
    iss: String,
    iat: i64,
    tenant_id: String,
    customer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_hours: Option<u64>,
}

/// An MFA step in progress.
#[derive(Debug, Clone)]
pub struct MfaChallenge {
    /// The signed token (shown once).
    pub token: String,
    /// The user.
    pub user: User,
    /// The pending session.
    pub session_id: Uuid,
    /// What the token may be used for.
    pub scope: MfaScope,
    /// The token lifetime a Connectware login asked for.
    pub token_hours: Option<u64>,
    /// The label a Connectware login gave.
    pub label: Option<String>,
    /// Expiry, Unix ms.
    pub expires_at: i64,
}

/// What must follow a successful password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondStep {
    /// Nothing: the login is complete.
    None,
    /// A second factor.
    Verify,
    /// Enrolment of a factor (it is enforced and the user has none).
    Enrol,
}

/// The start of a Connectware TOTP enrolment.
#[derive(Debug, Clone)]
pub struct EnrolmentStart {
    /// The `otpauth://` URI with the new seed.
    pub uri: String,
    /// The same URI as a QR code: an SVG image in a `data:` URI.
    pub qr_code: String,
}

/// One 2FA configuration of an account in ThingsBoard's polymorphic shape
/// (`TwoFaAccountConfig`, tagged by `providerType`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountConfig {
    /// The provider.
    pub provider_type: MfaProvider,
    /// Whether a login asks for this provider first.
    #[serde(default)]
    pub use_by_default: bool,
    /// TOTP: the otpauth URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    /// EMAIL: the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// SMS: the phone number (E.164).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// BACKUP_CODE: the codes, only when just generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes: Option<Vec<String>>,
    /// BACKUP_CODE: codes left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes_left: Option<u32>,
}

impl AccountConfig {
    fn empty(provider: MfaProvider) -> Self {
        Self {
            provider_type: provider,
            use_by_default: false,
            auth_url: None,
            email: None,
            phone_number: None,
            codes: None,
            codes_left: None,
        }
    }
}

/// The account's 2FA configurations, in enum order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountMfa {
    /// One per configured provider.
    pub configs: Vec<AccountConfig>,
}

/// A provider a login may continue with (ThingsBoard's `TwoFaProviderInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginProvider {
    /// The provider.
    pub provider: MfaProvider,
    /// Whether it is the user's default.
    pub is_default: bool,
    /// Where codes go (EMAIL, SMS), unmasked: the dialect masks it.
    pub contact: Option<String>,
    /// Seconds between two code sends.
    pub min_verification_code_send_period: u32,
}

/// Stands for the seed in the otpauth URI of an enrolled TOTP (never shown again).
pub const SEED_PLACEHOLDER: &str = "REDACTED";

/// Percent-encodes a label part of an otpauth URI.
fn encode_label(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~@".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The otpauth URI of a TOTP seed. ThingsBoard's form (`otpauth://totp/<issuer>:<account>?
/// issuer=<issuer>&secret=<BASE32>`) when `explicit_parameters` is false; Connectware's form
/// adds `algorithm`, `digits` and `period`.
pub fn otpauth_uri(issuer: &str, account: &str, seed: &[u8], explicit_parameters: bool) -> String {
    let issuer = encode_label(issuer);
    let mut uri = format!(
        "otpauth://totp/{issuer}:{}?issuer={issuer}&secret={}",
        encode_label(account),
        seed_base32(seed)
    );
    if explicit_parameters {
        uri.push_str("&algorithm=SHA1&digits=6&period=30");
    }
    uri
}

/// The seed of an otpauth URI (its `secret` parameter), at least 128 bits; what a ThingsBoard
/// client sends back in `authUrl`, so untrusted text.
pub fn seed_of_uri(uri: &str) -> CoreResult<Vec<u8>> {
    const FIELD: &str = "authUrl";
    let query = uri
        .strip_prefix("otpauth://totp/")
        .and_then(|rest| rest.split_once('?'))
        .map(|(_, query)| query)
        .ok_or_else(|| CoreError::invalid(FIELD, "must be an otpauth://totp/ URI"))?;
    let secret = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("secret="))
        .ok_or_else(|| CoreError::invalid(FIELD, "has no secret"))?;
    parse_seed_base32(secret, FIELD)
}

/// A QR code of `text` as an SVG image in a `data:` URI.
pub fn qr_code_data_uri(text: &str) -> CoreResult<String> {
    use base64::Engine as _;
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(CoreError::internal)?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

/// A phone number in E.164 form (`+` and 2 to 15 digits, not starting with 0).
pub fn parse_phone_number(text: &str) -> CoreResult<String> {
    let digits = text.strip_prefix('+').unwrap_or("");
    if (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
    {
        Ok(text.to_owned())
    } else {
        Err(CoreError::invalid(
            "phoneNumber",
            "must be in E.164 form, e.g. +4915123456789",
        ))
    }
}

impl Gatehouse {
    /// What must follow a successful password check of `user`.
    pub async fn second_step(&self, user: &User) -> CoreResult<SecondStep> {
        let settings = self.platform_mfa_settings().await?;
        let active = self.active_mfa_factors(user.id, &settings).await?;
        if active.iter().any(|factor| factor.provider.is_primary()) {
            return Ok(SecondStep::Verify);
        }
        if user.enforce_mfa_enrollment || settings.enforced_for(user) {
            return Ok(SecondStep::Enrol);
        }
        Ok(SecondStep::None)
    }

    /// Opens an MFA challenge for `user` after its password was checked.
    pub async fn open_mfa_challenge(
        &self,
        user: &User,
        scope: MfaScope,
        token_hours: Option<u64>,
        label: Option<String>,
    ) -> CoreResult<MfaChallenge> {
        let settings = self.platform_mfa_settings().await?;
        let now = self.clock.now_millis();
        let iat = now.div_euclid(1000);
        let exp = iat + i64::from(settings.total_allowed_time_for_verification);
        let session_id = Uuid::new_v4();
        let token = self.keys.sign(&MfaTokenClaims {
            sub: user.email_or_username().to_owned(),
            user_id: user.id.to_string(),
            scopes: vec![scope.as_str().to_owned()],
            session_id: session_id.to_string(),
            exp,
            iss: self.settings.token_pair.issuer.clone(),
            iat,
            tenant_id: user.tenancy.tenant_id.to_string(),
            customer_id: user.tenancy.customer_id.to_string(),
            token_hours,
        })?;
        let expires_at = exp.saturating_mul(1000);
        self.store
            .insert_session(Session {
                id: session_id,
                user_id: user.id,
                kind: SessionKind::MfaPending,
                fingerprint: digest_hex(&token),
                label: label.clone(),
                created_at: now,
                expires_at,
            })
            .await?;
        tracing::info!(user_id = %user.id, scope = scope.as_str(), "MFA challenge opened");
        Ok(MfaChallenge {
            token,
            user: user.clone(),
            session_id,
            scope,
            token_hours,
            label,
            expires_at,
        })
    }

    /// Verifies an MFA token of `scope` and loads its challenge. Expired, consumed, revoked or
    /// foreign tokens, and tokens of the other scope, are refused.
    pub async fn mfa_challenge(&self, token: &str, scope: MfaScope) -> CoreResult<MfaChallenge> {
        const REJECTED: CoreError = CoreError::Unauthenticated(AuthFailure::TokenExpired);
        if jsonwebtoken::decode_header(token).is_err() {
            return Err(REJECTED);
        }
        let claims: MfaTokenClaims = self
            .keys
            .decode(token, &self.settings.token_pair.issuer)
            .ok_or(REJECTED)?;
        let now = self.clock.now_millis();
        if claims.scopes.first().map(String::as_str) != Some(scope.as_str())
            || claims.exp.saturating_mul(1000) <= now
        {
            return Err(REJECTED);
        }
        let session_id = Uuid::parse_str(&claims.session_id).map_err(|_| REJECTED)?;
        let user_id = Uuid::parse_str(&claims.user_id).map_err(|_| REJECTED)?;
        let session = self.store.session(session_id).await?.ok_or(REJECTED)?;
        let bound: bool = subtle::ConstantTimeEq::ct_eq(
            digest_hex(token).as_bytes(),
            session.fingerprint.as_bytes(),
        )
        .into();
        if session.kind != SessionKind::MfaPending
            || session.user_id != user_id
            || session.expires_at <= now
            || !bound
        {
            return Err(REJECTED);
        }
        let user = self.store.user(user_id).await?.ok_or(REJECTED)?;
        if !user.credentials_enabled {
            return Err(CoreError::unauthenticated(AuthFailure::NotActive));
        }
        Ok(MfaChallenge {
            token: token.to_owned(),
            user,
            session_id,
            scope,
            token_hours: claims.token_hours,
            label: session.label,
            expires_at: session.expires_at,
        })
    }

    /// The scope of `token` when it is a live MFA token (signed here, unexpired, its challenge
    /// still open); `None` for anything else. Lets a dialect answer "wrong kind of token"
    /// (403) rather than "invalid token" (401) when an MFA token is used elsewhere.
    pub async fn mfa_token_scope(&self, token: &str) -> Option<MfaScope> {
        for scope in [MfaScope::PreVerification, MfaScope::Configuration] {
            if self.mfa_challenge(token, scope).await.is_ok() {
                return Some(scope);
            }
        }
        None
    }

    /// Ends a challenge; fails when it was completed already (by a parallel request).
    async fn consume_challenge(&self, challenge: &MfaChallenge) -> CoreResult<()> {
        let removed = self
            .store
            .revoke_sessions(challenge.user.id, Some(&challenge.session_id.to_string()))
            .await?;
        if removed == 0 {
            return Err(CoreError::unauthenticated(AuthFailure::TokenExpired));
        }
        Ok(())
    }

    /// Completes the second step of a login with a code: checks it (see
    /// [`Gatehouse::check_second_factor`]) and consumes the challenge. The caller opens the
    /// session of its dialect for the returned (reloaded) user.
    pub async fn complete_mfa_challenge(
        &self,
        challenge: &MfaChallenge,
        provider: MfaProvider,
        code: &str,
    ) -> CoreResult<User> {
        self.check_second_factor(&challenge.user, provider, code)
            .await?;
        self.consume_challenge(challenge).await?;
        tracing::info!(user_id = %challenge.user.id, provider = provider.as_str(), "MFA login completed");
        self.store
            .user(challenge.user.id)
            .await?
            .ok_or(CoreError::unauthenticated(AuthFailure::TokenExpired))
    }

    /// Completes a login that had to enrol first (ThingsBoard's `/api/auth/2fa/login`): the
    /// user must have a factor by now.
    pub async fn complete_mfa_configuration(&self, challenge: &MfaChallenge) -> CoreResult<User> {
        if self.second_step(&challenge.user).await? != SecondStep::Verify {
            return Err(CoreError::Rejected(Rejection::MfaNotConfigured));
        }
        self.consume_challenge(challenge).await?;
        self.store
            .user(challenge.user.id)
            .await?
            .ok_or(CoreError::unauthenticated(AuthFailure::TokenExpired))
    }

    /// The providers a login may continue with: the user's active factors.
    pub async fn login_providers(&self, user: &User) -> CoreResult<Vec<LoginProvider>> {
        let settings = self.platform_mfa_settings().await?;
        let factors = self.active_mfa_factors(user.id, &settings).await?;
        Ok(factors
            .into_iter()
            .map(|factor| LoginProvider {
                provider: factor.provider,
                is_default: factor.use_by_default,
                contact: factor.contact,
                min_verification_code_send_period: settings.min_verification_code_send_period,
            })
            .collect())
    }

    /// ThingsBoard's `verification/send`: sends a code for EMAIL and SMS; for TOTP and backup
    /// codes it only counts against the send rate limit.
    pub async fn request_mfa_code(&self, user: &User, provider: MfaProvider) -> CoreResult<()> {
        let settings = self.platform_mfa_settings().await?;
        let factor = self.active_factor(user, &settings, provider).await?;
        self.limit_code_sends(user, provider, SendPurpose::Login, &settings)?;
        if provider.is_sent() {
            let contact = factor
                .contact
                .ok_or(CoreError::Rejected(Rejection::MfaNotConfigured))?;
            self.send_mfa_code(user, provider, &contact, true, &settings)
                .await?;
        }
        Ok(())
    }

    /// The provider a Connectware `otp` answers: TOTP when enrolled, else the user's default
    /// mailed or texted factor.
    async fn otp_provider(&self, user: &User) -> CoreResult<MfaProvider> {
        let settings = self.platform_mfa_settings().await?;
        let factors = self.active_mfa_factors(user.id, &settings).await?;
        factors
            .iter()
            .find(|factor| factor.provider == MfaProvider::Totp)
            .or_else(|| {
                factors
                    .iter()
                    .filter(|factor| factor.provider.is_sent())
                    .max_by_key(|factor| factor.use_by_default)
            })
            .map(|factor| factor.provider)
            .ok_or(CoreError::Rejected(Rejection::MfaNotConfigured))
    }

    /// Sends a code when a Connectware login continues with a mailed or texted factor (there is
    /// no endpoint to ask for one).
    pub async fn send_login_code_if_needed(&self, user: &User) -> CoreResult<()> {
        let provider = self.otp_provider(user).await?;
        if provider.is_sent() {
            self.request_mfa_code(user, provider).await?;
        }
        Ok(())
    }

    /// Checks Connectware's proof (`otp` or `backupCode`) of `user`.
    pub async fn check_otp_or_backup_code(
        &self,
        user: &User,
        otp: Option<&str>,
        backup_code: Option<&str>,
    ) -> CoreResult<()> {
        match (
            otp.filter(|otp| !otp.is_empty()),
            backup_code.filter(|code| !code.is_empty()),
        ) {
            (Some(otp), _) => {
                let provider = self.otp_provider(user).await?;
                self.check_second_factor(user, provider, otp).await
            }
            (None, Some(code)) => {
                self.check_second_factor(user, MfaProvider::BackupCode, code)
                    .await
            }
            (None, None) => Err(CoreError::invalid("otp", "otp or backupCode is required")),
        }
    }

    /// Connectware's `/api/mfa/login`: completes the challenge named by `secret` for
    /// `username` and returns the user, whose token session the caller opens.
    pub async fn complete_connectware_mfa(
        &self,
        username: &str,
        secret: &str,
        otp: Option<&str>,
        backup_code: Option<&str>,
    ) -> CoreResult<(User, MfaChallenge)> {
        let challenge = self
            .mfa_challenge(secret, MfaScope::PreVerification)
            .await?;
        let names_user = challenge.user.username == username
            || challenge.user.profile.email.as_deref() == Some(username);
        if !names_user {
            return Err(CoreError::unauthenticated(AuthFailure::TokenExpired));
        }
        self.check_otp_or_backup_code(&challenge.user, otp, backup_code)
            .await?;
        self.consume_challenge(&challenge).await?;
        tracing::info!(user_id = %challenge.user.id, "MFA login completed");
        let user = self
            .store
            .user(challenge.user.id)
            .await?
            .ok_or(CoreError::unauthenticated(AuthFailure::TokenExpired))?;
        Ok((user, challenge))
    }

    /// The quantity of backup codes to generate.
    fn backup_code_quantity(&self, settings: &PlatformMfaSettings) -> u32 {
        match settings.provider(MfaProvider::BackupCode) {
            Some(ProviderConfig::BackupCode { codes_quantity }) => *codes_quantity,
            _ => self.settings.mfa.backup_codes,
        }
    }

    /// The TOTP issuer name.
    fn totp_issuer(&self, settings: &PlatformMfaSettings) -> CoreResult<String> {
        match settings.provider(MfaProvider::Totp) {
            Some(ProviderConfig::Totp { issuer_name }) => Ok(issuer_name.clone()),
            _ => Err(CoreError::Rejected(Rejection::MfaProviderDisabled)),
        }
    }

    /// Whether the user has an enrolled factor of `provider`.
    async fn has_enrolled(&self, user_id: Uuid, provider: MfaProvider) -> CoreResult<bool> {
        Ok(self
            .store
            .mfa_factors(user_id)
            .await?
            .iter()
            .any(|factor| factor.enrolled && factor.provider == provider))
    }

    /// Whether the user has an enrolled factor marked default.
    async fn has_default(&self, user_id: Uuid) -> CoreResult<bool> {
        Ok(self
            .store
            .mfa_factors(user_id)
            .await?
            .iter()
            .any(|factor| factor.enrolled && factor.use_by_default))
    }

    fn new_factor(&self, user_id: Uuid, provider: MfaProvider, enrolled: bool) -> MfaFactor {
        MfaFactor {
            user_id,
            provider,
            enrolled,
            use_by_default: false,
            sealed_secret: None,
            contact: None,
            codes_left: 0,
            created_at: self.clock.now_millis(),
        }
    }

    /// Stores new backup codes for the user (replacing any) and returns them, shown once.
    async fn issue_backup_codes(&self, user_id: Uuid, quantity: u32) -> CoreResult<Vec<String>> {
        let codes = new_backup_codes(quantity);
        self.store_backup_codes(user_id, &codes, false).await?;
        Ok(codes)
    }

    async fn store_backup_codes(
        &self,
        user_id: Uuid,
        codes: &[String],
        use_by_default: bool,
    ) -> CoreResult<()> {
        let digests = codes
            .iter()
            .map(|code| self.backup_code_digest(user_id, code))
            .collect();
        let mut factor = self.new_factor(user_id, MfaProvider::BackupCode, true);
        factor.use_by_default = use_by_default;
        self.store.save_mfa_factor(factor, Some(digests)).await
    }

    // --- Connectware (C41–C45)

    /// `/api/mfa/enable`: starts a TOTP enrolment with a new seed (replacing an unfinished
    /// one). Refused when the user is enrolled already.
    pub async fn start_totp_enrolment(&self, user: &User) -> CoreResult<EnrolmentStart> {
        let settings = self.platform_mfa_settings().await?;
        let issuer = self.totp_issuer(&settings)?;
        if self.has_enrolled(user.id, MfaProvider::Totp).await? {
            return Err(CoreError::Rejected(Rejection::MfaAlreadyConfigured));
        }
        let seed = new_totp_seed();
        let mut factor = self.new_factor(user.id, MfaProvider::Totp, false);
        factor.sealed_secret = Some(self.seal_totp_seed(user.id, &seed)?);
        self.store.save_mfa_factor(factor, None).await?;
        let uri = otpauth_uri(&issuer, &user.username, &seed, true);
        let qr_code = qr_code_data_uri(&uri)?;
        tracing::info!(user_id = %user.id, "TOTP enrolment started");
        Ok(EnrolmentStart { uri, qr_code })
    }

    /// `/api/mfa/validate`: confirms the pending TOTP seed with a code, enrols it, and returns
    /// new backup codes. A caller holding an enrolment-only token gets a full one.
    pub async fn confirm_totp_enrolment(
        &self,
        principal: &Principal,
        otp: &str,
    ) -> CoreResult<Vec<String>> {
        let user = &principal.user;
        let settings = self.platform_mfa_settings().await?;
        if self.has_enrolled(user.id, MfaProvider::Totp).await? {
            return Err(CoreError::Rejected(Rejection::MfaAlreadyConfigured));
        }
        let pending = self
            .store
            .mfa_factors(user.id)
            .await?
            .into_iter()
            .find(|factor| !factor.enrolled && factor.provider == MfaProvider::Totp)
            .and_then(|factor| factor.sealed_secret)
            .ok_or(CoreError::Rejected(Rejection::NoEnrolmentInProgress))?;
        // A wrong enrolment code counts like a wrong login code (Connectware answers "Too many
        // failed login attempts" here too).
        let matched = self.totp_step(user.id, &pending, otp)?;
        let correct = self
            .counted_attempt(user, &settings, async { Ok(matched.is_some()) })
            .await?;
        let step = matched
            .filter(|_| correct)
            .ok_or(CoreError::Rejected(Rejection::InvalidVerificationCode))?;
        let mut factor = self.new_factor(user.id, MfaProvider::Totp, true);
        factor.sealed_secret = Some(pending);
        factor.use_by_default = !self.has_default(user.id).await?;
        self.store.save_mfa_factor(factor, None).await?;
        // The enrolment code cannot be used again to log in.
        self.store.accept_totp_step(user.id, step).await?;
        let codes = self
            .issue_backup_codes(user.id, self.backup_code_quantity(&settings))
            .await?;
        if let Some(session) = &principal.session {
            if session.kind == SessionKind::Enrolment {
                self.store
                    .promote_session(session.id, SessionKind::Enrolment, SessionKind::Token)
                    .await?;
            }
        }
        tracing::info!(user_id = %user.id, "TOTP enrolled");
        Ok(codes)
    }

    /// `/api/mfa/disable`: the caller proves a factor and removes all of its factors.
    pub async fn disable_own_mfa(
        &self,
        user: &User,
        otp: Option<&str>,
        backup_code: Option<&str>,
    ) -> CoreResult<()> {
        self.check_otp_or_backup_code(user, otp, backup_code)
            .await?;
        self.store
            .delete_mfa_factors(user.id, &MfaProvider::ALL)
            .await?;
        tracing::info!(user_id = %user.id, "MFA disabled by its user");
        Ok(())
    }

    /// An administrator removes every factor of a user (`disableMfa`).
    pub async fn remove_mfa_factors(&self, user_id: Uuid) -> CoreResult<()> {
        self.store
            .delete_mfa_factors(user_id, &MfaProvider::ALL)
            .await?;
        tracing::info!(user_id = %user_id, "MFA disabled by an administrator");
        Ok(())
    }

    /// `/api/mfa/regenerate/backupcodes`: the caller proves a factor and gets new codes.
    pub async fn regenerate_backup_codes(
        &self,
        user: &User,
        otp: Option<&str>,
        backup_code: Option<&str>,
    ) -> CoreResult<Vec<String>> {
        let settings = self.platform_mfa_settings().await?;
        self.check_otp_or_backup_code(user, otp, backup_code)
            .await?;
        self.issue_backup_codes(user.id, self.backup_code_quantity(&settings))
            .await
    }

    // --- ThingsBoard account configuration (T30–T35)

    /// The account's configurations whose provider is enabled.
    pub async fn account_mfa(&self, user: &User) -> CoreResult<AccountMfa> {
        let settings = self.platform_mfa_settings().await?;
        let factors = self.active_mfa_factors(user.id, &settings).await?;
        let configs = factors
            .into_iter()
            .map(|factor| {
                let mut config = AccountConfig::empty(factor.provider);
                config.use_by_default = factor.use_by_default;
                match factor.provider {
                    // The seed is never shown again: the URI names the account, and a
                    // placeholder stands where the secret was.
                    MfaProvider::Totp => {
                        let issuer = encode_label(&self.totp_issuer(&settings).unwrap_or_default());
                        config.auth_url = Some(format!(
                            "otpauth://totp/{issuer}:{}?issuer={issuer}&secret={SEED_PLACEHOLDER}",
                            encode_label(user.email_or_username()),
                        ));
                    }
                    MfaProvider::Email => config.email = factor.contact,
                    MfaProvider::Sms => config.phone_number = factor.contact,
                    MfaProvider::BackupCode => config.codes_left = Some(factor.codes_left),
                }
                config
            })
            .collect();
        Ok(AccountMfa { configs })
    }

    /// `config/generate`: a new configuration for the client to confirm.
    pub async fn generate_account_config(
        &self,
        user: &User,
        provider: MfaProvider,
    ) -> CoreResult<AccountConfig> {
        let settings = self.platform_mfa_settings().await?;
        if settings.provider(provider).is_none() {
            return Err(CoreError::Rejected(Rejection::MfaProviderDisabled));
        }
        let mut config = AccountConfig::empty(provider);
        match provider {
            MfaProvider::Totp => {
                let issuer = self.totp_issuer(&settings)?;
                let seed = new_totp_seed();
                config.auth_url =
                    Some(otpauth_uri(&issuer, user.email_or_username(), &seed, false));
            }
            MfaProvider::Email => config.email = user.profile.email.clone(),
            MfaProvider::Sms => {}
            MfaProvider::BackupCode => {
                let codes = new_backup_codes(self.backup_code_quantity(&settings));
                config.codes_left = Some(codes.len() as u32);
                config.codes = Some(codes);
            }
        }
        Ok(config)
    }

    /// `config/submit`: sends a code to the contact of an EMAIL or SMS configuration (stored
    /// as pending until confirmed); nothing for TOTP and backup codes.
    pub async fn submit_account_config(
        &self,
        user: &User,
        config: &AccountConfig,
    ) -> CoreResult<()> {
        let settings = self.platform_mfa_settings().await?;
        let provider = config.provider_type;
        if settings.provider(provider).is_none() {
            return Err(CoreError::Rejected(Rejection::MfaProviderDisabled));
        }
        if !provider.is_sent() {
            return Ok(());
        }
        let contact = self.contact_of(config)?;
        // ThingsBoard does not limit these sends; one per period keeps a signed-in user from
        // mailing or texting codes to arbitrary contacts in a loop.
        self.limit_code_sends(user, provider, SendPurpose::Enrolment, &settings)?;
        let mut factor = self.new_factor(user.id, provider, false);
        factor.contact = Some(contact.clone());
        self.store.save_mfa_factor(factor, None).await?;
        self.send_mfa_code(user, provider, &contact, false, &settings)
            .await
    }

    /// The validated contact of an EMAIL or SMS configuration.
    fn contact_of(&self, config: &AccountConfig) -> CoreResult<String> {
        match config.provider_type {
            MfaProvider::Email => {
                let email = config
                    .email
                    .as_deref()
                    .ok_or_else(|| CoreError::invalid("email", "is required"))?;
                Ok(Email::parse(email, "email")?.as_str().to_owned())
            }
            MfaProvider::Sms => parse_phone_number(
                config
                    .phone_number
                    .as_deref()
                    .ok_or_else(|| CoreError::invalid("phoneNumber", "is required"))?,
            ),
            _ => Err(CoreError::internal("contact of a provider without one")),
        }
    }

    /// `POST config`: checks the code for the configuration and enrols it.
    pub async fn verify_and_save_account_config(
        &self,
        user: &User,
        config: &AccountConfig,
        code: Option<&str>,
    ) -> CoreResult<AccountMfa> {
        let settings = self.platform_mfa_settings().await?;
        let provider = config.provider_type;
        if settings.provider(provider).is_none() {
            return Err(CoreError::Rejected(Rejection::MfaProviderDisabled));
        }
        if self.has_enrolled(user.id, provider).await? {
            return Err(CoreError::Rejected(Rejection::MfaAlreadyConfigured));
        }
        let code = code.map(str::trim).filter(|code| !code.is_empty());
        let wrong_code = CoreError::Rejected(Rejection::InvalidVerificationCode);
        let mut factor = self.new_factor(user.id, provider, true);
        let mut totp_step = None;
        match provider {
            MfaProvider::Totp => {
                let uri = config
                    .auth_url
                    .as_deref()
                    .ok_or_else(|| CoreError::invalid("authUrl", "is required"))?;
                let seed = seed_of_uri(uri)?;
                let code = code.ok_or_else(|| wrong_code.clone())?;
                totp_step = Some(
                    self.totp_step_for_seed(seed.clone(), code)?
                        .ok_or_else(|| wrong_code.clone())?,
                );
                factor.sealed_secret = Some(self.seal_totp_seed(user.id, &seed)?);
            }
            MfaProvider::Email | MfaProvider::Sms => {
                let contact = self.contact_of(config)?;
                let pending = self
                    .store
                    .mfa_factors(user.id)
                    .await?
                    .into_iter()
                    .find(|factor| !factor.enrolled && factor.provider == provider);
                // The code proves the contact it was sent to, not another one.
                if pending.and_then(|factor| factor.contact).as_deref() != Some(contact.as_str()) {
                    return Err(wrong_code);
                }
                let code = code.ok_or_else(|| wrong_code.clone())?;
                if !self.check_pending_code(user, provider, code).await? {
                    return Err(wrong_code);
                }
                factor.contact = Some(contact);
            }
            MfaProvider::BackupCode => {
                let has_primary = self
                    .active_mfa_factors(user.id, &settings)
                    .await?
                    .iter()
                    .any(|factor| factor.provider.is_primary());
                if !has_primary {
                    return Err(CoreError::Rejected(Rejection::MfaNeedsPrimary));
                }
                let codes = config.codes.clone().unwrap_or_default();
                let mut distinct = codes.clone();
                distinct.sort();
                distinct.dedup();
                if codes.is_empty()
                    || codes.len() > 100
                    || distinct.len() != codes.len()
                    || !codes.iter().all(|code| is_backup_code(code))
                {
                    return Err(CoreError::invalid(
                        "codes",
                        "must be the generated backup codes (distinct, 8 hex characters)",
                    ));
                }
                let use_by_default = config.use_by_default;
                self.store_backup_codes(user.id, &codes, use_by_default)
                    .await?;
                return self.account_mfa(user).await;
            }
        }
        factor.use_by_default = config.use_by_default || !self.has_default(user.id).await?;
        self.store.save_mfa_factor(factor, None).await?;
        if let Some(step) = totp_step {
            self.store.accept_totp_step(user.id, step).await?;
        }
        tracing::info!(user_id = %user.id, provider = provider.as_str(), "2FA provider configured");
        self.account_mfa(user).await
    }

    /// `PUT config`: changes whether a configured provider is the default (an account with
    /// factors always keeps one default).
    pub async fn update_account_config(
        &self,
        user: &User,
        provider: MfaProvider,
        use_by_default: bool,
    ) -> CoreResult<AccountMfa> {
        let mut factor = self
            .store
            .mfa_factors(user.id)
            .await?
            .into_iter()
            .find(|factor| factor.enrolled && factor.provider == provider)
            .ok_or(CoreError::Rejected(Rejection::MfaNotConfigured))?;
        factor.use_by_default = use_by_default;
        self.store.save_mfa_factor(factor, None).await?;
        // As ThingsBoard: an account with factors always has a default; when the caller took
        // it away, the first real provider gets it back.
        if !self.has_default(user.id).await? {
            if let Some(mut first) = self
                .store
                .mfa_factors(user.id)
                .await?
                .into_iter()
                .filter(|factor| factor.enrolled)
                .min_by_key(|factor| (!factor.provider.is_primary(), factor.provider))
            {
                first.use_by_default = true;
                self.store.save_mfa_factor(first, None).await?;
            }
        }
        self.account_mfa(user).await
    }

    /// `DELETE config`: removes a provider with ThingsBoard's rules (backup codes do not stay
    /// alone; the default moves to the lowest provider left; enforced users keep one).
    pub async fn delete_account_config(
        &self,
        user: &User,
        provider: MfaProvider,
    ) -> CoreResult<AccountMfa> {
        let settings = self.platform_mfa_settings().await?;
        let factors: Vec<MfaFactor> = self
            .store
            .mfa_factors(user.id)
            .await?
            .into_iter()
            .filter(|factor| factor.enrolled)
            .collect();
        if !factors.iter().any(|factor| factor.provider == provider) {
            return Err(CoreError::Rejected(Rejection::MfaNotConfigured));
        }
        let mut removed = vec![provider];
        let primary_left = factors
            .iter()
            .any(|factor| factor.provider != provider && factor.provider.is_primary());
        if !primary_left {
            removed.push(MfaProvider::BackupCode);
        }
        let anything_left = factors
            .iter()
            .any(|factor| !removed.contains(&factor.provider));
        if !anything_left && (user.enforce_mfa_enrollment || settings.enforced_for(user)) {
            return Err(CoreError::Rejected(Rejection::MfaRequired));
        }
        self.store.delete_mfa_factors(user.id, &removed).await?;
        let default_left = factors
            .iter()
            .any(|factor| !removed.contains(&factor.provider) && factor.use_by_default);
        if !default_left {
            if let Some(mut lowest) = factors
                .into_iter()
                .filter(|factor| !removed.contains(&factor.provider))
                .min_by_key(|factor| factor.provider)
            {
                lowest.use_by_default = true;
                self.store.save_mfa_factor(lowest, None).await?;
            }
        }
        tracing::info!(user_id = %user.id, provider = provider.as_str(), "2FA provider removed");
        self.account_mfa(user).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otpauth_uris_in_both_forms_and_back() {
        let seed = b"12345678901234567890";
        let thingsboard = otpauth_uri("TB", "tenant@thingsboard.org", seed, false);
        assert_eq!(
            thingsboard,
            "otpauth://totp/TB:tenant@thingsboard.org?issuer=TB&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let connectware = otpauth_uri("My Co", "a b", seed, true);
        assert!(connectware.starts_with("otpauth://totp/My%20Co:a%20b?issuer=My%20Co&secret="));
        assert!(connectware.ends_with("&algorithm=SHA1&digits=6&period=30"));
        assert_eq!(seed_of_uri(&thingsboard).unwrap(), seed);
        assert_eq!(seed_of_uri(&connectware).unwrap(), seed);
        assert!(seed_of_uri("otpauth://hotp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").is_err());
        assert!(seed_of_uri("otpauth://totp/x?issuer=y").is_err());
    }

    #[test]
    fn qr_codes_are_svg_data_uris() {
        let uri = qr_code_data_uri("otpauth://totp/a:b?secret=GEZDGNBV").unwrap();
        assert!(uri.starts_with("data:image/svg+xml;base64,"));
    }

    #[test]
    fn phone_numbers_must_be_e164() {
        assert!(parse_phone_number("+4915123456789").is_ok());
        for bad in [
            "4915123456789",
            "+0123",
            "+1",
            "+12345678901234567",
            "+49 151",
        ] {
            assert!(parse_phone_number(bad).is_err(), "{bad}");
        }
    }
}

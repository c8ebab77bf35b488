//! Checking a second factor, sending codes, and the rules shared by every check:
//!
//! - **Failure counter.** Each check first reserves one attempt in one atomic store operation;
//!   with a limit of N, at most N wrong codes are evaluated between successes, however many
//!   requests arrive in parallel. The check that uses up the limit, or any check while the
//!   limit is used up, bans the user for `mfa.ban_minutes` (or disables the account when that
//!   is 0). The counter is the MFA's own: a correct password does not reset it, so a guesser
//!   who knows the password cannot log in again to earn new guesses.
//! - **TOTP** (RFC 6238: HMAC-SHA1, 30 s, 6 digits, one step of skew either way): the matched
//!   step must be later than the last accepted one (an atomic compare in the store), so a code
//!   works once, even on two replicas at the same moment.
//! - **Backup codes** and **mailed/texted codes** are stored as keyed digests and deleted by
//!   the check that uses them (atomically: of two parallel uses one wins).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use totp_rs::{Algorithm, Builder, Secret, Totp};
use uuid::Uuid;

use crate::error::{AuthFailure, CoreError, CoreResult, Rejection};
use crate::mail::Mail;
use crate::model::User;
use crate::ratelimit::RateLimiter;
use crate::service::Gatehouse;
use crate::store::MfaAttempt;

use super::settings::{PlatformMfaSettings, ProviderConfig};
use super::{MfaFactor, MfaProvider, Sms};

/// TOTP step, seconds.
pub const TOTP_STEP_SECONDS: u64 = 30;

/// Bytes of a TOTP seed (160 bits, as RFC 4226 recommends and ThingsBoard uses).
const TOTP_SECRET_BYTES: usize = 20;

/// Characters of a backup code (ThingsBoard: 8 lower-case hex characters).
const BACKUP_CODE_LENGTH: usize = 8;

/// Digits of mailed and texted codes.
const SENT_CODE_DIGITS: usize = 6;

/// Per-user rate limiters whose budget comes from the stored settings (which may change at any
/// time): one limiter per budget, created on first use.
#[derive(Default)]
pub(crate) struct MfaLimiters {
    limiters: Mutex<HashMap<(u32, u32), Arc<RateLimiter>>>,
}

impl MfaLimiters {
    fn limiter(&self, count: u32, seconds: u32, gatehouse: &Gatehouse) -> Arc<RateLimiter> {
        let mut limiters = self
            .limiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        limiters
            .entry((count, seconds))
            .or_insert_with(|| {
                Arc::new(RateLimiter::per_period(
                    count,
                    seconds,
                    gatehouse.clock.clone(),
                ))
            })
            .clone()
    }
}

/// The rate limiters of code checks and code sends.
#[derive(Default)]
pub(crate) struct MfaLimits {
    pub(crate) checks: MfaLimiters,
    pub(crate) sends: MfaLimiters,
}

/// Why a code is sent, for the send rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendPurpose {
    /// The second step of a login.
    Login,
    /// Confirming the contact of a factor being set up.
    Enrolment,
}

/// The storage owner of a sealed TOTP seed (its associated data).
fn totp_owner(user_id: Uuid) -> String {
    format!("{user_id}:TOTP")
}

/// A TOTP generator for a seed, with Gatehouse's fixed parameters.
pub(crate) fn totp(seed: Vec<u8>) -> CoreResult<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(TOTP_STEP_SECONDS)
        .with_secret(seed)
        .build()
        .map_err(|error| {
            CoreError::invalid("secret", format!("is not a usable TOTP seed: {error}"))
        })
}

/// A new random TOTP seed.
pub(crate) fn new_totp_seed() -> Vec<u8> {
    use rand::RngCore;
    let mut seed = vec![0u8; TOTP_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed
}

/// The base32 text of a seed (as shown in otpauth URIs).
pub(crate) fn seed_base32(seed: &[u8]) -> String {
    Secret::from(seed.to_vec()).to_base32()
}

/// A seed from its base32 text, at least 128 bits (RFC 4226).
pub(crate) fn parse_seed_base32(text: &str, field: &str) -> CoreResult<Vec<u8>> {
    let seed = Secret::try_from_base32(text.to_ascii_uppercase())
        .map_err(|_| CoreError::invalid(field, "the secret is not base32"))?
        .as_bytes()
        .to_vec();
    if seed.len() < 16 {
        return Err(CoreError::invalid(
            field,
            "the secret must be at least 128 bits",
        ));
    }
    Ok(seed)
}

/// `count` new distinct backup codes.
pub(crate) fn new_backup_codes(count: u32) -> Vec<String> {
    use rand::Rng;
    let mut codes: Vec<String> = Vec::with_capacity(count as usize);
    let mut rng = rand::rngs::OsRng;
    while codes.len() < count as usize {
        let code: String = (0..BACKUP_CODE_LENGTH)
            .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
            .collect();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

/// Whether `code` has the shape of a backup code.
pub(crate) fn is_backup_code(code: &str) -> bool {
    code.len() == BACKUP_CODE_LENGTH
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new 6-digit code to mail or text.
fn new_sent_code() -> String {
    use rand::Rng;
    format!(
        "{:0width$}",
        rand::rngs::OsRng.gen_range(0..1_000_000u32),
        width = SENT_CODE_DIGITS
    )
}

impl Gatehouse {
    /// Keyed digest of a backup code of `user_id`.
    pub(crate) fn backup_code_digest(&self, user_id: Uuid, code: &str) -> String {
        self.sealing.digest(
            "backup code",
            &user_id.to_string(),
            &code.to_ascii_lowercase(),
        )
    }

    /// Keyed digest of a mailed or texted code.
    fn sent_code_digest(&self, user_id: Uuid, provider: MfaProvider, code: &str) -> String {
        self.sealing
            .digest(provider.as_str(), &user_id.to_string(), code)
    }

    /// Seals a TOTP seed of `user_id`.
    pub(crate) fn seal_totp_seed(&self, user_id: Uuid, seed: &[u8]) -> CoreResult<String> {
        self.sealing.seal(seed, &totp_owner(user_id))
    }

    /// The TOTP step a code matches for a sealed seed at the clock's time, if any.
    pub(crate) fn totp_step(
        &self,
        user_id: Uuid,
        sealed: &str,
        code: &str,
    ) -> CoreResult<Option<u64>> {
        let seed = self.sealing.open(sealed, &totp_owner(user_id))?;
        self.totp_step_for_seed(seed, code)
    }

    /// The TOTP step a code matches for a seed at the clock's time, if any.
    pub(crate) fn totp_step_for_seed(&self, seed: Vec<u8>, code: &str) -> CoreResult<Option<u64>> {
        let now_secs = u64::try_from(self.clock.now_millis().div_euclid(1000)).unwrap_or(0);
        Ok(totp(seed)?.check(code.trim(), now_secs))
    }

    /// The user's enrolled factors whose provider is enabled platform-wide (ThingsBoard prunes
    /// the others when it reads them), in enum order.
    pub async fn active_mfa_factors(
        &self,
        user_id: Uuid,
        settings: &PlatformMfaSettings,
    ) -> CoreResult<Vec<MfaFactor>> {
        let enabled = settings.enabled_providers();
        let mut factors: Vec<MfaFactor> = self
            .store
            .mfa_factors(user_id)
            .await?
            .into_iter()
            .filter(|factor| factor.enrolled && enabled.contains(&factor.provider))
            .collect();
        factors.sort_by_key(|factor| factor.provider);
        Ok(factors)
    }

    /// The user's active factor of `provider`; `MfaNotConfigured` without one.
    pub(crate) async fn active_factor(
        &self,
        user: &User,
        settings: &PlatformMfaSettings,
        provider: MfaProvider,
    ) -> CoreResult<MfaFactor> {
        self.active_mfa_factors(user.id, settings)
            .await?
            .into_iter()
            .find(|factor| factor.provider == provider)
            .ok_or(CoreError::Rejected(Rejection::MfaNotConfigured))
    }

    /// Checks a second-factor `code` of `user` for `provider`, counting failures and banning
    /// (see the module documentation). `Ok` means the code was right and is now used up.
    pub async fn check_second_factor(
        &self,
        user: &User,
        provider: MfaProvider,
        code: &str,
    ) -> CoreResult<()> {
        let settings = self.platform_mfa_settings().await?;
        let factor = self.active_factor(user, &settings, provider).await?;
        let code = code.trim();
        let well_formed = match provider {
            MfaProvider::BackupCode => !code.is_empty() && code.len() <= 64,
            _ => code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        };
        if !well_formed {
            return Err(CoreError::invalid(
                "verificationCode",
                "must be a 6-digit code (or a backup code)",
            ));
        }
        let correct = self
            .counted_attempt(user, &settings, async {
                Ok(match provider {
                    MfaProvider::Totp => match factor.sealed_secret.as_deref() {
                        Some(sealed) => match self.totp_step(user.id, sealed, code)? {
                            Some(step) => self.store.accept_totp_step(user.id, step).await?,
                            None => false,
                        },
                        None => false,
                    },
                    MfaProvider::BackupCode => {
                        self.store
                            .consume_backup_code(user.id, &self.backup_code_digest(user.id, code))
                            .await?
                    }
                    MfaProvider::Email | MfaProvider::Sms => {
                        let digest = self.sent_code_digest(user.id, provider, code);
                        let now = self.clock.now_millis();
                        self.store
                            .consume_mfa_code(user.id, provider, true, &digest, now)
                            .await?
                    }
                })
            })
            .await?;
        if correct {
            Ok(())
        } else {
            Err(CoreError::Rejected(Rejection::InvalidVerificationCode))
        }
    }

    /// Runs one second-factor `check` of `user` under the shared rules: the check rate limit,
    /// one reserved attempt of the failure counter (refused while banned or when the limit is
    /// used up), the counter cleared on success, and the ban when this failure uses up the
    /// limit. Returns whether the code was right; a wrong code under the limit is `Ok(false)`.
    pub(crate) async fn counted_attempt(
        &self,
        user: &User,
        settings: &PlatformMfaSettings,
        check: impl std::future::Future<Output = CoreResult<bool>>,
    ) -> CoreResult<bool> {
        if let Some((count, seconds)) = settings.check_rate_limit() {
            self.mfa_limits
                .checks
                .limiter(count, seconds, self)
                .try_acquire(&user.id.to_string())?;
        }
        let now = self.clock.now_millis();
        let limit = settings.failure_limit();
        let count = match self.store.reserve_mfa_attempt(user.id, limit, now).await? {
            MfaAttempt::Counted(count) => count,
            MfaAttempt::Exhausted => return Err(self.ban_after_failures(user, now).await?),
            MfaAttempt::BannedUntil(until) => return Err(banned(until, now)),
        };
        if check.await? {
            self.store.reset_mfa_attempts(user.id).await?;
            metrics::counter!("gatehouse_mfa_checks_total", "outcome" => "success").increment(1);
            return Ok(true);
        }
        metrics::counter!("gatehouse_mfa_checks_total", "outcome" => "failure").increment(1);
        if limit.is_some_and(|limit| count >= limit) {
            return Err(self.ban_after_failures(user, now).await?);
        }
        Ok(false)
    }

    /// Bans `user` after too many wrong codes (or disables it when `mfa.ban_minutes` is 0) and
    /// returns the error to answer.
    async fn ban_after_failures(&self, user: &User, now: i64) -> CoreResult<CoreError> {
        let minutes = self.settings.mfa.ban_minutes;
        if minutes == 0 {
            if self.store.lock_credentials(user.id).await? {
                tracing::warn!(user_id = %user.id, "account disabled after too many wrong MFA codes");
            }
            self.store.reset_mfa_attempts(user.id).await?;
            return Ok(CoreError::unauthenticated(AuthFailure::MfaBanned {
                retry_after_secs: None,
            }));
        }
        let until = now.saturating_add(i64::from(minutes) * 60_000);
        // Of parallel checks that use up the limit, one bans; the others see its ban.
        let in_force = self.store.ban_mfa(user.id, until, now).await?;
        if in_force == until {
            tracing::warn!(user_id = %user.id, minutes, "user banned after too many wrong MFA codes");
            metrics::counter!("gatehouse_mfa_checks_total", "outcome" => "banned").increment(1);
        }
        Ok(banned(in_force, now))
    }

    /// Sends a new code for `provider` (EMAIL or SMS) to `contact` and stores its digest on the
    /// user's factor (enrolled, or pending when `enrolled` is false), replacing any earlier code.
    pub(crate) async fn send_mfa_code(
        &self,
        user: &User,
        provider: MfaProvider,
        contact: &str,
        enrolled: bool,
        settings: &PlatformMfaSettings,
    ) -> CoreResult<()> {
        let lifetime = match settings.provider(provider) {
            Some(ProviderConfig::Email {
                verification_code_lifetime,
            })
            | Some(ProviderConfig::Sms {
                verification_code_lifetime,
                ..
            }) => *verification_code_lifetime,
            _ => return Err(CoreError::Rejected(Rejection::MfaProviderDisabled)),
        };
        let code = new_sent_code();
        let now = self.clock.now_millis();
        let expires_at = now.saturating_add(i64::from(lifetime) * 1000);
        let digest = self.sent_code_digest(user.id, provider, &code);
        if !self
            .store
            .set_mfa_code(user.id, provider, enrolled, &digest, expires_at)
            .await?
        {
            return Err(CoreError::Rejected(Rejection::MfaNotConfigured));
        }
        match settings.provider(provider) {
            Some(ProviderConfig::Sms {
                sms_verification_message_template,
                ..
            }) => {
                self.sms
                    .send(Sms {
                        phone_number: contact.to_owned(),
                        message: sms_verification_message_template.replace("${code}", &code),
                        code,
                    })
                    .await?;
            }
            _ => {
                self.mailer
                    .send(Mail {
                        to: contact.to_owned(),
                        subject: "Your verification code".to_owned(),
                        text: format!(
                            "Your verification code is {code}\n\nIt expires in {} minutes. If \
                             you did not try to sign in, change your password.\n",
                            lifetime.div_ceil(60)
                        ),
                    })
                    .await?;
            }
        }
        tracing::info!(user_id = %user.id, provider = provider.as_str(), "verification code sent");
        Ok(())
    }

    /// The rate limit of code sends: one per `minVerificationCodeSendPeriod` per user,
    /// provider and purpose (when that period is above 4 seconds, as in ThingsBoard). Codes for
    /// a login and codes that confirm a new contact (`enrolment`) have separate budgets, so
    /// setting up a factor does not hold up the next login.
    pub(crate) fn limit_code_sends(
        &self,
        user: &User,
        provider: MfaProvider,
        purpose: SendPurpose,
        settings: &PlatformMfaSettings,
    ) -> CoreResult<()> {
        let period = settings.min_verification_code_send_period;
        if period > 4 {
            self.mfa_limits
                .sends
                .limiter(1, period, self)
                .try_acquire(&format!("{}:{}:{purpose:?}", user.id, provider.as_str()))?;
        }
        Ok(())
    }

    /// Checks a code mailed or texted to a pending factor (enrolment), using it up.
    pub(crate) async fn check_pending_code(
        &self,
        user: &User,
        provider: MfaProvider,
        code: &str,
    ) -> CoreResult<bool> {
        let digest = self.sent_code_digest(user.id, provider, code.trim());
        self.store
            .consume_mfa_code(user.id, provider, false, &digest, self.clock.now_millis())
            .await
    }
}

/// The error of a banned user.
fn banned(until: i64, now: i64) -> CoreError {
    let seconds = (until.saturating_sub(now).max(0) as u64)
        .div_ceil(1000)
        .max(1);
    CoreError::unauthenticated(AuthFailure::MfaBanned {
        retry_after_secs: Some(seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vector_sha1() {
        // RFC 6238 appendix B, SHA1 seed "12345678901234567890", T = 59 s → 94287082 (8 digits);
        // its last 6 digits are the 6-digit code.
        let totp = totp(b"12345678901234567890".to_vec()).unwrap();
        assert_eq!(totp.generate(59).to_string(), "287082");
        assert_eq!(totp.check("287082", 59), Some(1));
        assert_eq!(totp.check("287082", 59 + 30), Some(1), "one step of skew");
        assert_eq!(totp.check("287082", 59 + 60), None);
    }

    #[test]
    fn seeds_and_codes_have_their_shapes() {
        let seed = new_totp_seed();
        let text = seed_base32(&seed);
        assert_eq!(text.len(), 32);
        assert_eq!(parse_seed_base32(&text, "s").unwrap(), seed);
        assert_eq!(parse_seed_base32(&text.to_lowercase(), "s").unwrap(), seed);
        assert!(parse_seed_base32("GEZDGNBV", "s").is_err(), "too short");
        assert!(parse_seed_base32("not base32!", "s").is_err());
        let codes = new_backup_codes(10);
        assert_eq!(codes.len(), 10);
        assert!(codes.iter().all(|code| is_backup_code(code)));
        let code = new_sent_code();
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
    }
}

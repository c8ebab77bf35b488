//! Multi-factor authentication: one set of factors per user, shared by every dialect (a TOTP
//! enrolled through Connectware is asked for by a ThingsBoard login and the other way round).
//!
//! - [`settings`]: the platform settings (ThingsBoard's `PlatformTwoFaSettings`), stored in the
//!   database, with defaults from the configuration's `[mfa]` section.
//! - [`verify`]: checking a second factor (TOTP without replay, single-use backup codes, mailed
//!   and texted codes), with the failure counter and the ban.
//! - [`flows`]: the second step of a login (challenge tokens), enrolment, and the account
//!   configuration operations of both dialects.

pub mod flows;
pub mod settings;
pub mod verify;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{CoreError, CoreResult};

pub use flows::{AccountMfa, EnrolmentStart, MfaChallenge, MfaScope};
pub use settings::{MfaSettings, PlatformMfaSettings, ProviderConfig, UsersFilter};

/// A kind of second factor, in ThingsBoard's enum order (which decides the fallback default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MfaProvider {
    /// Time-based one-time passwords from an authenticator app (RFC 6238).
    Totp,
    /// A 6-digit code sent by SMS.
    Sms,
    /// A 6-digit code sent by mail.
    Email,
    /// Single-use backup codes.
    BackupCode,
}

impl MfaProvider {
    /// Every provider, in enum order.
    pub const ALL: [MfaProvider; 4] = [
        MfaProvider::Totp,
        MfaProvider::Sms,
        MfaProvider::Email,
        MfaProvider::BackupCode,
    ];

    /// The wire and storage name (`TOTP`, `SMS`, `EMAIL`, `BACKUP_CODE`).
    pub fn as_str(self) -> &'static str {
        match self {
            MfaProvider::Totp => "TOTP",
            MfaProvider::Sms => "SMS",
            MfaProvider::Email => "EMAIL",
            MfaProvider::BackupCode => "BACKUP_CODE",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|provider| provider.as_str() == text)
    }

    /// Parses the wire name of a request field, or says it is invalid.
    pub fn parse_field(text: &str, field: &str) -> CoreResult<Self> {
        Self::parse(text).ok_or_else(|| {
            CoreError::invalid(field, "must be one of TOTP, SMS, EMAIL, BACKUP_CODE")
        })
    }

    /// Whether the provider counts as a second factor on its own (backup codes only back up
    /// another factor).
    pub fn is_primary(self) -> bool {
        self != MfaProvider::BackupCode
    }

    /// Whether codes of this provider are sent to the user (mail or SMS).
    pub fn is_sent(self) -> bool {
        matches!(self, MfaProvider::Sms | MfaProvider::Email)
    }
}

/// One factor of a user as stored. A user has at most one enrolled and one pending factor per
/// provider; a pending factor waits for its first code (enrolment in progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaFactor {
    /// The user.
    pub user_id: Uuid,
    /// The provider.
    pub provider: MfaProvider,
    /// False while enrolment waits for the first code.
    pub enrolled: bool,
    /// Whether this is the factor a login asks for first.
    pub use_by_default: bool,
    /// TOTP: the seed, sealed with the installation's key (see [`crate::sealing`]).
    pub sealed_secret: Option<String>,
    /// EMAIL: the address; SMS: the phone number (E.164).
    pub contact: Option<String>,
    /// BACKUP_CODE: unused codes left (filled in by the store).
    pub codes_left: u32,
    /// When it was stored, Unix ms.
    pub created_at: i64,
}

/// One text message with a verification code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// The recipient, E.164.
    pub phone_number: String,
    /// The message (the platform's template with the code filled in).
    pub message: String,
    /// The code alone, for gateways whose request carries it separately.
    pub code: String,
}

/// Sends SMS through the configured gateway. Implementations must not log the message: it
/// carries a one-time code.
#[async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Whether a gateway is configured at all.
    fn is_configured(&self) -> bool {
        true
    }

    /// Sends one message; `Unavailable` when the gateway fails.
    async fn send(&self, sms: Sms) -> CoreResult<()>;
}

/// The sender of an installation without an SMS gateway: every send fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSmsSender;

#[async_trait]
impl SmsSender for NoSmsSender {
    fn is_configured(&self) -> bool {
        false
    }

    async fn send(&self, _sms: Sms) -> CoreResult<()> {
        Err(CoreError::Unavailable {
            reason: "no SMS gateway is configured".to_owned(),
        })
    }
}

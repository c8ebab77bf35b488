//! Outgoing mail: the core decides what to send (activation and reset links, lockout notices);
//! a [`Mailer`] delivers it. The binary wires an SMTP mailer when `[mail]` is configured;
//! without one, operations that must send mail fail with [`CoreError::Unavailable`].

use async_trait::async_trait;

use crate::error::{CoreError, CoreResult};

/// One plain-text message to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

/// Delivers mail. Implementations must not log the body: it carries one-time links.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Whether a mail server is configured at all (checked before work that would need one).
    fn is_configured(&self) -> bool {
        true
    }

    /// Sends one message; `Unavailable` when the server refuses or cannot be reached.
    async fn send(&self, mail: Mail) -> CoreResult<()>;
}

/// The mailer of an installation without a mail server: every send fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMailer;

#[async_trait]
impl Mailer for NoMailer {
    fn is_configured(&self) -> bool {
        false
    }

    async fn send(&self, _mail: Mail) -> CoreResult<()> {
        Err(CoreError::Unavailable {
            reason: "no mail server is configured".to_owned(),
        })
    }
}

//! Outgoing mail over SMTP: the `[mail]` settings and the [`SmtpMailer`] that delivers the core's
//! [`Mail`] through them. Without `mail.host` the installation has no mail server and gets
//! [`NoMailer`], so operations that must send mail fail cleanly instead of pretending to.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::mail::{Mail, Mailer, NoMailer};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTls {
    /// Plain SMTP, nothing encrypted (only for a relay on the same host or a test server).
    None,
    /// Connect in plain text, then upgrade with `STARTTLS`; the upgrade is required, so nothing
    /// (credentials included) is sent if the server does not offer it. Port 587 by default.
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", implicit TLS). Port 465 by default.
    Tls,
}

impl MailTls {
    /// The port this mode conventionally uses: 25, 587 or 465.
    pub fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::Starttls => 587,
            Self::Tls => 465,
        }
    }
}

/// The `[mail]` section: which SMTP server delivers Gatehouse's mail (activation and reset
/// links, notices). `host` unset means there is no mail server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    /// SMTP server host name (also the name its TLS certificate must carry); unset or blank =
    /// mail off.
    pub host: Option<String>,
    /// SMTP port; unset = the port of the TLS mode (25, 587 or 465).
    pub port: Option<u16>,
    /// User name for SMTP authentication; authentication is used when both it and `password`
    /// are set.
    pub username: Option<String>,
    /// Password for SMTP authentication. A secret: never logged nor shown by `Debug`.
    pub password: Option<String>,
    /// Connection protection.
    pub tls: MailTls,
    /// Sender, as `addr@example.com` or `Gatehouse <addr@example.com>`.
    pub from: String,
    /// Longest wait for the server to connect or answer one command, in seconds (`0` counts
    /// as 1).
    pub timeout_secs: u64,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            host: None,
            port: None,
            username: None,
            password: None,
            tls: MailTls::default(),
            from: "gatehouse@localhost".to_owned(),
            timeout_secs: 10,
        }
    }
}

impl MailSettings {
    /// The port in force: `port` if set, else the default of the TLS mode.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.tls.default_port())
    }
}

/// Redacts the password, so that printing the settings can never leak it.
impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Delivers mail through one SMTP server. The transport is built once from the settings and
/// reused for every message; each message opens its own connection (mail is rare).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    port: u16,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// Builds the mailer from `[mail]`; fails (with a message naming the setting) when `host`
    /// is unset or a setting is malformed, so a bad configuration stops start-up rather than the
    /// first send.
    pub fn new(settings: &MailSettings) -> Result<Self, String> {
        let host = settings
            .host
            .as_deref()
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .ok_or_else(|| "mail.host: not set".to_owned())?;
        if !is_host(host) {
            return Err(format!(
                "mail.host: {host:?} is neither a host name nor an IP address (the port goes \
                 into mail.port)"
            ));
        }
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|error| format!("mail.from: not a valid address: {error}"))?;
        let port = settings.effective_port();
        let tls = match settings.tls {
            MailTls::None => Tls::None,
            MailTls::Starttls => Tls::Required(tls_parameters(host)?),
            MailTls::Tls => Tls::Wrapper(tls_parameters(host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(settings.timeout_secs.max(1))));
        match (&settings.username, &settings.password) {
            (Some(username), Some(password)) => {
                if settings.tls == MailTls::None {
                    tracing::warn!(
                        host,
                        "mail.tls is none: the SMTP password is sent unencrypted"
                    );
                }
                builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
            }
            (None, None) => {}
            (Some(_), None) => return Err("mail.username is set but mail.password is not".into()),
            (None, Some(_)) => return Err("mail.password is set but mail.username is not".into()),
        }
        Ok(Self {
            transport: builder.build(),
            from,
            host: host.to_owned(),
            port,
        })
    }
}

/// Whether `host` is an IP address or a syntactically valid DNS name.
fn is_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn tls_parameters(host: &str) -> Result<TlsParameters, String> {
    TlsParameters::new(host.to_owned())
        .map_err(|error| format!("mail.host: cannot set up TLS for {host:?}: {error}"))
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> CoreResult<()> {
        let Mail { to, subject, text } = mail;
        let to: Address = to.trim().parse().map_err(|error| {
            CoreError::invalid("email", format!("not a valid address: {error}"))
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to.clone()))
            .subject(subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|error| CoreError::internal(format!("cannot build a mail: {error}")))?;
        match self.transport.send(message).await {
            Ok(_) => {
                tracing::debug!(to = %to, subject = %subject, "mail sent");
                Ok(())
            }
            Err(error) => {
                // Never the body: it carries one-time links.
                tracing::warn!(
                    %error,
                    to = %to,
                    subject = %subject,
                    host = %self.host,
                    port = self.port,
                    "mail could not be sent"
                );
                Err(CoreError::Unavailable {
                    reason: "the mail server could not take the message".to_owned(),
                })
            }
        }
    }
}

/// The mailer the settings call for: [`NoMailer`] when `mail.host` is unset (or blank, so an
/// empty `GATEHOUSE_MAIL__HOST=` turns mail off too), else an [`SmtpMailer`]. An error names
/// the malformed setting; start-up should stop on it.
pub fn mailer(settings: &MailSettings) -> Result<Arc<dyn Mailer>, String> {
    if settings
        .host
        .as_deref()
        .is_none_or(|host| host.trim().is_empty())
    {
        return Ok(Arc::new(NoMailer));
    }
    Ok(Arc::new(SmtpMailer::new(settings)?))
}

//! Configuration: defaults, then a TOML file, then `GATEHOUSE_*` environment variables (`__`
//! separates nested keys, e.g. `GATEHOUSE_AUTH__PASSWORD_POLICY__MIN=8`), then command-line
//! flags. Every key is documented in `docs/configuration.md`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use gatehouse_core::broker::BrokerSettings;
use gatehouse_core::hashing::Argon2Config;
use gatehouse_core::mfa::MfaSettings;
use gatehouse_core::pki::IssuanceProfile;
use gatehouse_core::registry::RegistrySettings;
use gatehouse_core::service::CoreSettings;
use serde::{Deserialize, Serialize};

pub use crate::ldap::LdapConfig;
use crate::mail::MailSettings;
pub use crate::oidc::EntraConfig;
use crate::sms::SmsSettings;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `gatehouse=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".to_owned(),
        }
    }
}

/// Password hashing pool settings.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingSettings {
    /// Hashes computed at once (default: the number of CPU cores).
    pub workers: usize,
    /// Hash requests allowed to wait; beyond that requests fail fast with 503.
    pub queue_limit: usize,
    /// Argon2id cost.
    pub argon2: Argon2Config,
}

impl Default for HashingSettings {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
            queue_limit: 256,
            argon2: Argon2Config::default(),
        }
    }
}

/// HTTP settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// Longest time a request may take, in seconds.
    pub request_timeout_secs: u64,
    /// Origins allowed to call the API from a browser (CORS); empty = CORS off; `*` = any.
    pub cors_allowed_origins: Vec<String>,
    /// Take the client address from the right-most `X-Forwarded-For` entry (only behind a
    /// reverse proxy that sets it).
    pub trust_forwarded_for: bool,
    /// The URL under which clients reach this server, e.g. `https://iam.example.com`; the
    /// base of the links in activation and password-reset mails. Default: `http://<listen>`.
    pub public_url: Option<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            cors_allowed_origins: Vec::new(),
            trust_forwarded_for: false,
            public_url: None,
        }
    }
}

/// Database settings beyond the URL.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Connections in the pool.
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
        }
    }
}

/// The MQTT broker hooks (`[broker]`): the hot-path caches of the core and who may call the
/// hooks.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Seconds between two readings of the database's change counters (bounds how long a
    /// change made by another process takes to reach this one's caches); 0 turns the caches
    /// off.
    pub cache_ttl_secs: u64,
    /// Seconds a verified username/password pair is remembered (0 turns the cache off).
    pub credential_cache_secs: u64,
    /// IP addresses and CIDR networks allowed to call the hooks (default: loopback).
    pub hook_allowed_addresses: Vec<String>,
    /// A shared secret that opens the hooks from any address when sent in the header
    /// `X-Gatehouse-Broker-Secret`. A secret: never logged nor shown by `Debug`.
    pub hook_secret: Option<String>,
    /// The broker listeners that verify client certificates, so that a certificate they pass
    /// may authenticate a user: VerneMQ `listener_addr:listener_port` (or `*:port`), or the
    /// `listener` field of EMQX requests. Empty (default): certificates are never trusted.
    pub certificate_listeners: Vec<String>,
}

impl BrokerConfig {
    /// The core's part of these settings.
    pub fn core(&self) -> BrokerSettings {
        BrokerSettings {
            cache_ttl_secs: self.cache_ttl_secs,
            credential_cache_secs: self.credential_cache_secs,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let core = BrokerSettings::default();
        Self {
            cache_ttl_secs: core.cache_ttl_secs,
            credential_cache_secs: core.credential_cache_secs,
            hook_allowed_addresses: gatehouse_server::dialect::broker::DEFAULT_ALLOWED_ADDRESSES
                .iter()
                .map(|address| (*address).to_owned())
                .collect(),
            hook_secret: None,
            certificate_listeners: Vec::new(),
        }
    }
}

/// Redacts the secret, so that printing the settings can never leak it.
impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("cache_ttl_secs", &self.cache_ttl_secs)
            .field("credential_cache_secs", &self.credential_cache_secs)
            .field("hook_allowed_addresses", &self.hook_allowed_addresses)
            .field(
                "hook_secret",
                &self.hook_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("certificate_listeners", &self.certificate_listeners)
            .finish()
    }
}

/// The `[mfa]` section: the key that seals MFA secrets, the defaults of the platform MFA
/// settings, the ban after too many wrong codes, and the SMS gateway.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaConfig {
    /// Base64 of 32 random bytes (`openssl rand -base64 32`) that seals TOTP seeds and keys
    /// the digests of one-time codes; the same on every replica. Unset: a key is generated
    /// into `<data_dir>/mfa.key` at first start. A secret: never logged nor shown by `Debug`.
    pub encryption_key: Option<String>,
    /// Issuer shown by authenticator apps.
    pub issuer: String,
    /// Backup codes generated at a time.
    pub backup_codes: u32,
    /// Wrong second-factor codes allowed before the user is banned (0: no limit).
    pub max_failures: u32,
    /// Minutes of the ban; 0 disables the account until an administrator enables it.
    pub ban_minutes: u32,
    /// Seconds a login may take between the password and the second factor.
    pub verification_seconds: u32,
    /// The HTTP SMS gateway for SMS codes.
    pub sms: SmsSettings,
}

impl MfaConfig {
    /// The core's part of these settings.
    pub fn core(&self) -> MfaSettings {
        MfaSettings {
            issuer: self.issuer.clone(),
            backup_codes: self.backup_codes,
            max_failures: self.max_failures,
            ban_minutes: self.ban_minutes,
            verification_seconds: self.verification_seconds,
        }
    }
}

impl Default for MfaConfig {
    fn default() -> Self {
        let core = MfaSettings::default();
        Self {
            encryption_key: None,
            issuer: core.issuer,
            backup_codes: core.backup_codes,
            max_failures: core.max_failures,
            ban_minutes: core.ban_minutes,
            verification_seconds: core.verification_seconds,
            sms: SmsSettings::default(),
        }
    }
}

/// Redacts the key.
impl fmt::Debug for MfaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaConfig")
            .field(
                "encryption_key",
                &self.encryption_key.as_ref().map(|_| "[redacted]"),
            )
            .field("issuer", &self.issuer)
            .field("backup_codes", &self.backup_codes)
            .field("max_failures", &self.max_failures)
            .field("ban_minutes", &self.ban_minutes)
            .field("verification_seconds", &self.verification_seconds)
            .field("sms", &self.sms)
            .finish()
    }
}

/// The `[pki]` section: the built-in certificate authority and what it issues to devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PkiConfig {
    /// PEM file of the CA certificate to use instead of the generated one (with `ca_key`).
    pub ca_certificate: Option<PathBuf>,
    /// PEM file of the CA's PKCS#8 private key (with `ca_certificate`).
    pub ca_key: Option<PathBuf>,
    /// Common name of a generated CA.
    pub ca_common_name: String,
    /// Validity of a generated CA, days.
    pub ca_days: u32,
    /// What device certificates carry: validity, key usage, extended key usage.
    #[serde(flatten)]
    pub issuance: IssuanceProfile,
}

impl Default for PkiConfig {
    fn default() -> Self {
        Self {
            ca_certificate: None,
            ca_key: None,
            ca_common_name: "Gatehouse Device CA".to_owned(),
            ca_days: 3650,
            issuance: IssuanceProfile::default(),
        }
    }
}

/// The `[tls]` section: the optional HTTPS listener that asks for client certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Address of the HTTPS listener; unset (default): no HTTPS listener.
    pub listen: Option<SocketAddr>,
    /// PEM file of the server certificate chain (with `key`). Unset: a certificate for
    /// `server_names` is issued by the built-in CA at each start.
    pub certificate: Option<PathBuf>,
    /// PEM file of the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// DNS names and IP addresses of an issued server certificate.
    pub server_names: Vec<String>,
    /// Seconds a change of the trusted certificates takes to reach the listener at most.
    pub trust_refresh_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            listen: None,
            certificate: None,
            key: None,
            server_names: vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ],
            trust_refresh_secs: 5,
        }
    }
}

/// The `[backup]` section: where the server keeps database archives (C39), how large an
/// archive uploaded for restore (C40) may be, and the passphrase that encrypts archives.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Directory of the archives; unset (default): `<data_dir>/backups`.
    pub directory: Option<PathBuf>,
    /// How many archives are kept; older ones are deleted after each backup (1–1000).
    pub keep: usize,
    /// Largest archive accepted by `POST /api/maintenance/db/restore`, in bytes.
    pub max_upload_bytes: u64,
    /// Encrypts the archives the server and `gatehouse backup` write, and opens encrypted ones
    /// on restore; unset or empty: archives are written in plain text. A secret: never logged
    /// nor shown by `Debug`.
    pub passphrase: Option<String>,
}

impl BackupConfig {
    /// Largest accepted value of `keep`.
    pub const MAX_KEEP: usize = 1000;

    /// The directory of the archives for the data directory `data_dir`.
    pub fn directory(&self, data_dir: &Path) -> PathBuf {
        self.directory
            .clone()
            .unwrap_or_else(|| data_dir.join("backups"))
    }

    /// The passphrase, when one is set (an empty one counts as unset).
    pub fn passphrase(&self) -> Option<secrecy::SecretString> {
        self.passphrase
            .as_deref()
            .filter(|passphrase| !passphrase.is_empty())
            .map(secrecy::SecretString::from)
    }

    /// Checks the ranges; the message names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=Self::MAX_KEEP).contains(&self.keep) {
            return Err(format!(
                "backup.keep must be between 1 and {}, not {}",
                Self::MAX_KEEP,
                self.keep
            ));
        }
        if self.max_upload_bytes == 0 {
            return Err("backup.max_upload_bytes must be at least 1".to_owned());
        }
        if self
            .directory
            .as_ref()
            .is_some_and(|directory| directory.as_os_str().is_empty())
        {
            return Err(
                "backup.directory must not be empty (leave it unset for the default)".to_owned(),
            );
        }
        Ok(())
    }
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            directory: None,
            keep: 5,
            max_upload_bytes: 1024 * 1024 * 1024,
            passphrase: None,
        }
    }
}

/// Redacts the passphrase.
impl fmt::Debug for BackupConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupConfig")
            .field("directory", &self.directory)
            .field("keep", &self.keep)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Everything Gatehouse can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the SQLite database (and other local state).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: `sqlite://<data_dir>/gatehouse.db`.
    pub database_url: Option<String>,
    /// Password of the bootstrap `admin` user, used only when that user is created.
    pub admin_password: Option<String>,
    /// Identity core settings (password policy, token lifetimes).
    pub auth: CoreSettings,
    /// Password hashing.
    pub hashing: HashingSettings,
    /// HTTP limits.
    pub http: HttpSettings,
    /// Database pool.
    pub database: DatabaseSettings,
    /// Logging.
    pub log: LogSettings,
    /// Outgoing mail (SMTP); off unless `mail.host` is set. Its `Debug` hides the password.
    pub mail: MailSettings,
    /// MQTT broker hooks. Its `Debug` hides the secret.
    pub broker: BrokerConfig,
    /// Multi-factor authentication. Its `Debug` hides the key and the gateway's headers.
    pub mfa: MfaConfig,
    /// The built-in certificate authority.
    pub pki: PkiConfig,
    /// The HTTPS listener with client certificates.
    pub tls: TlsConfig,
    /// The client registry.
    pub registry: RegistrySettings,
    /// LDAP login; off unless `ldap.url` is set. Its `Debug` hides the bind password.
    pub ldap: LdapConfig,
    /// Microsoft Entra ID login; off unless `entra.client_id` is set. Its `Debug` hides the
    /// client secret.
    pub entra: EntraConfig,
    /// Database backups and restores. Its `Debug` hides the passphrase.
    pub backup: BackupConfig,
    /// Self-service sign-up (ThingsBoard), off by default. Its `Debug` hides the secrets.
    pub signup: crate::signup::SignupConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            admin_password: None,
            auth: CoreSettings::default(),
            hashing: HashingSettings::default(),
            http: HttpSettings::default(),
            database: DatabaseSettings::default(),
            log: LogSettings::default(),
            mail: MailSettings::default(),
            broker: BrokerConfig::default(),
            mfa: MfaConfig::default(),
            pki: PkiConfig::default(),
            tls: TlsConfig::default(),
            registry: RegistrySettings::default(),
            ldap: LdapConfig::default(),
            entra: EntraConfig::default(),
            backup: BackupConfig::default(),
            signup: crate::signup::SignupConfig::default(),
        }
    }
}

/// Flags that override the configuration.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

/// Top-level settings, as named after `GATEHOUSE_` (lower case, before any `__`).
const SETTING_NAMES: [&str; 19] = [
    "listen",
    "data_dir",
    "database_url",
    "admin_password",
    "auth",
    "hashing",
    "http",
    "database",
    "log",
    "mail",
    "broker",
    "mfa",
    "pki",
    "tls",
    "registry",
    "ldap",
    "entra",
    "backup",
    "signup",
];

/// Settings taken verbatim from their environment variable (after the `__` split), so that a
/// secret such as `12345678` or `true` is not parsed as a number or a boolean.
const VERBATIM_SETTINGS: [&str; 13] = [
    "admin_password",
    "mail.username",
    "mail.password",
    "broker.hook_secret",
    "mfa.encryption_key",
    "ldap.bind_dn",
    "ldap.bind_password",
    "entra.client_id",
    "entra.client_secret",
    "entra.tenant_id",
    "backup.passphrase",
    "signup.captcha.site_key",
    "signup.captcha.secret_key",
];

/// The environment variable of a setting key: `mail.password` → `GATEHOUSE_MAIL__PASSWORD`.
fn environment_variable(key: &str) -> String {
    format!("GATEHOUSE_{}", key.replace('.', "__").to_ascii_uppercase())
}

/// `GATEHOUSE_*` variables that are not settings but are read elsewhere (by the CLI, the tests
/// and the scripts).
const OTHER_VARIABLES: [&str; 4] = ["config", "test_database_url", "test_python", "venv"];

fn is_setting(key: &str) -> bool {
    // Nested keys arrive as `auth__x` from the environment or `auth.x` once split.
    let top = key.split(['.']).next().unwrap_or(key);
    let top = top.split("__").next().unwrap_or(top).to_ascii_lowercase();
    SETTING_NAMES.contains(&top.as_str())
}

/// `GATEHOUSE_*` variables that name no setting (likely typos), for a warning.
fn unknown_environment_variables() -> Vec<String> {
    std::env::vars()
        .filter_map(|(name, _)| {
            let key = name.strip_prefix("GATEHOUSE_")?.to_ascii_lowercase();
            (!is_setting(&key) && !OTHER_VARIABLES.contains(&key.as_str())).then_some(name)
        })
        .collect()
}

impl Settings {
    /// Loads settings: defaults ← `file` (if given) ← environment ← `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        for name in unknown_environment_variables() {
            eprintln!("gatehouse: warning: ignoring unknown environment variable {name}");
        }
        figment = figment.merge(Env::prefixed("GATEHOUSE_").split("__").filter(|key| {
            is_setting(key.as_str())
                && !VERBATIM_SETTINGS
                    .iter()
                    .any(|verbatim| key.as_str().eq_ignore_ascii_case(verbatim))
        }));
        // Taken verbatim: a password such as `12345678` must not be read as a number.
        // Names compared as the `Env` provider does: without regard to case.
        for (name, value) in std::env::vars_os() {
            let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                continue;
            };
            if let Some(key) = VERBATIM_SETTINGS
                .iter()
                .find(|key| environment_variable(key).eq_ignore_ascii_case(name))
            {
                figment = figment.merge(Serialized::default(key, value.to_owned()));
            }
        }
        figment
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(Box::new)
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("gatehouse.db").display()
            )
        })
    }
}

//! Builds a running application from [`Settings`]: connects and migrates the database, loads or
//! creates the token signing key, bootstraps the built-in roles and the `admin` user, and binds
//! the listener. `main.rs` only parses the command line and calls this; tests call it directly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use gatehouse_core::changes::ChangeFollower;
use gatehouse_core::clock::{Clock, SystemClock};
use gatehouse_core::hashing::PasswordHasher;
use gatehouse_core::password::PlainPassword;
use gatehouse_core::pki::CertificateAuthority;
use gatehouse_core::sealing::SealingKey;
use gatehouse_core::service::CoreSettings;
use gatehouse_core::tokens::TokenKeys;
use gatehouse_core::Gatehouse;
use gatehouse_server::dialect::broker::{CertificateListeners, HookAccess};
use gatehouse_server::{AppState, HttpLimits, SharedState};
use gatehouse_store::SqlStore;
use tokio::net::TcpListener;

use crate::config::Settings;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] gatehouse_store::StoreError),
    /// A core operation failed during start-up.
    #[error("{0}")]
    Core(#[from] gatehouse_core::CoreError),
    /// The `[mail]` or `http.public_url` settings are unusable.
    #[error("invalid mail settings: {0}")]
    Mail(String),
    /// The `[mfa]` settings or the MFA key are unusable.
    #[error("invalid MFA settings: {0}")]
    Mfa(String),
    /// The `[broker]` settings are unusable.
    #[error("invalid broker settings: {0}")]
    Broker(String),
    /// The `[pki]` settings or the CA files are unusable.
    #[error("invalid PKI settings: {0}")]
    Pki(String),
    /// The `[ldap]` settings are unusable.
    #[error("invalid LDAP settings: {0}")]
    Ldap(String),
    /// The `[entra]` settings or the OpenID relying party are unusable.
    #[error("invalid federated-login settings: {0}")]
    Federation(String),
    /// The `[backup]` settings are unusable.
    #[error("invalid backup settings: {0}")]
    Backup(String),
    /// The `[signup]` settings are unusable.
    #[error("invalid sign-up settings: {0}")]
    Signup(String),
    /// The `[tls]` settings or the HTTPS listener are unusable.
    #[error("invalid TLS settings: {0}")]
    Tls(String),
    /// The listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A started application, ready to serve.
pub struct Application {
    listener: TcpListener,
    tls: Option<crate::tls::TlsListener>,
    router: axum::Router,
    store: SqlStore,
    /// Brings changes made by other processes into this one's caches (see [`follow_changes`]).
    follower: ChangeFollower,
    follow_every: std::time::Duration,
    /// The admin password generated at first start, to be shown once.
    pub generated_admin_password: Option<String>,
}

impl Application {
    /// Builds the application with the system clock.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Builds the application with the given clock (tests move time with a manual clock).
    pub async fn build_with_clock(
        settings: &Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        CoreSettings {
            mfa: settings.mfa.core(),
            registry: settings.registry,
            ..settings.auth.clone()
        }
        .validate()?;
        settings.backup.validate().map_err(StartupError::Backup)?;
        let mailer = crate::mail::mailer(&settings.mail).map_err(StartupError::Mail)?;
        let broker_access = HookAccess::new(
            &settings.broker.hook_allowed_addresses,
            settings.broker.hook_secret.as_deref(),
        )
        .map_err(StartupError::Broker)?;
        // Bound first so that links in mails can name the real port when none is configured.
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    address: settings.listen,
                    source,
                })?;
        let bound = listener.local_addr().unwrap_or(settings.listen);
        let public_url = public_url(settings, bound)?;
        let store = connect_store(settings).await?;
        let hashing = settings.hashing;
        let hasher = PasswordHasher::new(hashing.argon2, hashing.workers, hashing.queue_limit)?;
        let keys = signing_keys(&store).await?;
        let sealing = sealing_key(settings)?;
        let sms = crate::sms::sms_sender(&settings.mfa.sms).map_err(StartupError::Mfa)?;
        let core = Gatehouse::new(
            Arc::new(store.clone()),
            hasher,
            keys,
            sealing,
            clock,
            CoreSettings {
                broker: settings.broker.core(),
                mfa: settings.mfa.core(),
                registry: settings.registry,
                ..settings.auth.clone()
            },
        )
        .with_mail(mailer, &public_url)
        .with_sms(sms);
        core.verify_sealing_key().await?;
        settings
            .pki
            .issuance
            .validate()
            .map_err(|error| StartupError::Pki(error.to_string()))?;
        let authority = certificate_authority(settings, &store, core.now_millis()).await?;
        let mut core = core.with_pki(authority, settings.pki.issuance.clone());
        if let Some(directory) =
            crate::ldap::directory(&settings.ldap).map_err(StartupError::Ldap)?
        {
            core = core.with_directory(directory);
        }
        let relying_party = crate::oidc::OidcRelyingParty::new()
            .map_err(|error| StartupError::Federation(error.to_string()))?;
        let entra = settings
            .entra
            .core(&public_url, u64::from(settings.auth.default_token_hours))
            .map_err(StartupError::Federation)?;
        core = core.with_federation(Arc::new(relying_party), entra);
        let (signup, captcha) = settings
            .signup
            .core(core.mailer_configured())
            .map_err(StartupError::Signup)?;
        core = core.with_signup(signup, captcha);
        core = core.with_maintenance(
            Arc::new(store.clone()),
            settings.backup.directory(&settings.data_dir),
            settings.backup.keep,
            settings.backup.passphrase(),
        );
        if let Some(maintenance) = core.maintenance() {
            maintenance.sweep_leftovers();
        }
        let admin_password = settings
            .admin_password
            .as_deref()
            .map(|password| PlainPassword::parse(password, "admin_password"))
            .transpose()?;
        let generated_admin_password = core.bootstrap(admin_password).await?;
        let limits = HttpLimits {
            body_limit_bytes: settings.http.body_limit_bytes,
            request_timeout: std::time::Duration::from_secs(
                settings.http.request_timeout_secs.max(1),
            ),
            cors_allowed_origins: settings.http.cors_allowed_origins.clone(),
            max_upload_bytes: settings.backup.max_upload_bytes,
        };
        let state = AppState::new(SharedState {
            core,
            trust_forwarded_for: settings.http.trust_forwarded_for,
            broker_access,
            broker_certificates: CertificateListeners::new(&settings.broker.certificate_listeners),
        });
        let tls = match settings.tls.listen {
            Some(address) => Some(tls_listener(settings, address, &state.core).await?),
            None => None,
        };
        let follower = state.core.change_follower();
        let router = gatehouse_server::app(state, limits);
        Ok(Self {
            listener,
            tls,
            router,
            store,
            follower,
            follow_every: std::time::Duration::from_secs(settings.broker.cache_ttl_secs.max(1)),
            generated_admin_password,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address of the HTTPS listener, when `tls.listen` is set.
    pub fn tls_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.tls.as_ref().map(crate::tls::TlsListener::local_addr)
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and closes the
    /// database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let follower = tokio::spawn(follow_changes(
            self.follower,
            self.follow_every,
            stopped.clone(),
        ));
        let tls = self
            .tls
            .map(|tls| tokio::spawn(tls.serve(self.router.clone(), stopped.clone())));
        // Peer addresses feed the per-address rate limits.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(self.listener, service)
            .with_graceful_shutdown(async move {
                shutdown.await;
                // The receivers live as long as the listeners; none gone is no error.
                let _ = stop.send(true);
            })
            .await;
        if let Some(tls) = tls {
            if let Err(error) = tls.await {
                tracing::error!(%error, "the HTTPS listener failed");
            }
        }
        follower.abort();
        self.store.close().await;
        result
    }
}

/// Reads the database's change counters every `every` until `stopped` changes, so that changes
/// made by other processes on the database (replicas, `gatehouse restore`) reach this
/// process's caches (see [`gatehouse_core::changes`]).
async fn follow_changes(
    mut follower: ChangeFollower,
    every: std::time::Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if let Err(error) = follower.poll().await {
                    tracing::warn!(%error, "cannot read the change counters; the caches ask the database until a reading succeeds");
                }
            }
            _ = stopped.changed() => break,
        }
    }
}

/// Connects to the configured database (creating the data directory first for SQLite) and
/// applies pending migrations.
pub async fn connect_store(settings: &Settings) -> Result<SqlStore, StartupError> {
    let url = settings.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartupError::DataDir {
            path: settings.data_dir.display().to_string(),
            source,
        })?;
    }
    Ok(SqlStore::connect(&url, settings.database.max_connections).await?)
}

/// The base of links in mails: `http.public_url`, else the listen address.
fn public_url(settings: &Settings, bound: SocketAddr) -> Result<String, StartupError> {
    match &settings.http.public_url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => Ok(url.clone()),
        Some(url) => Err(StartupError::Mail(format!(
            "http.public_url must start with http:// or https://, not {url:?}"
        ))),
        None => Ok(format!("http://{bound}")),
    }
}

/// Names of the generated CA files in the data directory.
const CA_CERTIFICATE_FILE: &str = "ca.crt";
/// See above; readable by the owner only.
const CA_KEY_FILE: &str = "ca.key";

/// The CA: `pki.ca_certificate` and `pki.ca_key`, else the files in the data directory,
/// generated at first start. Every replica must use the same CA: its fingerprint is recorded in
/// the database at first start, and a server with another CA refuses to start.
async fn certificate_authority(
    settings: &Settings,
    store: &SqlStore,
    now_millis: i64,
) -> Result<CertificateAuthority, StartupError> {
    use gatehouse_core::store::Store;
    let pki = &settings.pki;
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map_err(|error| StartupError::Pki(format!("{}: {error}", path.display())))
    };
    let invalid = |error: gatehouse_core::CoreError| StartupError::Pki(error.to_string());
    let authority = match (&pki.ca_certificate, &pki.ca_key) {
        (Some(certificate), Some(key)) => {
            CertificateAuthority::from_pem(&read(certificate)?, &read(key)?).map_err(invalid)?
        }
        (None, None) => {
            let certificate_path = settings.data_dir.join(CA_CERTIFICATE_FILE);
            let key_path = settings.data_dir.join(CA_KEY_FILE);
            match (certificate_path.exists(), key_path.exists()) {
                (true, true) => {
                    CertificateAuthority::from_pem(&read(&certificate_path)?, &read(&key_path)?)
                        .map_err(invalid)?
                }
                (false, false) => {
                    let generated = CertificateAuthority::generate(
                        &pki.ca_common_name,
                        pki.ca_days,
                        now_millis,
                    )
                    .map_err(invalid)?;
                    let data_dir_error = |source| StartupError::DataDir {
                        path: settings.data_dir.display().to_string(),
                        source,
                    };
                    std::fs::create_dir_all(&settings.data_dir).map_err(data_dir_error)?;
                    write_private_file(&key_path, &generated.key_pem).map_err(data_dir_error)?;
                    std::fs::write(&certificate_path, &generated.certificate_pem)
                        .map_err(data_dir_error)?;
                    tracing::info!(path = %certificate_path.display(), "generated the device CA");
                    generated.authority
                }
                _ => {
                    return Err(StartupError::Pki(format!(
                        "{} and {} must both exist or both be absent",
                        certificate_path.display(),
                        key_path.display()
                    )))
                }
            }
        }
        _ => {
            return Err(StartupError::Pki(
                "pki.ca_certificate and pki.ca_key must be set together".to_owned(),
            ))
        }
    };
    let fingerprint = authority.fingerprint();
    let recorded = store
        .setting_or_insert(gatehouse_core::pki::CA_FINGERPRINT_SETTING, &fingerprint)
        .await?;
    if recorded != fingerprint {
        return Err(StartupError::Pki(format!(
            "this server's CA (SHA-256 {fingerprint}) is not the one the database was set up \
             with ({recorded}); give every replica the same pki.ca_certificate and pki.ca_key"
        )));
    }
    Ok(authority)
}

/// Binds the HTTPS listener with `tls.certificate`/`tls.key`, or with a certificate for
/// `tls.server_names` issued by the CA now.
async fn tls_listener(
    settings: &Settings,
    address: SocketAddr,
    core: &Gatehouse,
) -> Result<crate::tls::TlsListener, StartupError> {
    let tls = &settings.tls;
    let identity = match (&tls.certificate, &tls.key) {
        (Some(certificate), Some(key)) => {
            let read = |path: &std::path::Path| {
                std::fs::read(path)
                    .map_err(|error| StartupError::Tls(format!("{}: {error}", path.display())))
            };
            crate::tls::ServerIdentity::from_pem(&read(certificate)?, &read(key)?)
                .map_err(StartupError::Tls)?
        }
        (None, None) => {
            let pki = core
                .pki()
                .ok_or_else(|| StartupError::Tls("no certificate authority".to_owned()))?;
            let (certificate, key) = pki
                .authority
                .issue_server(&tls.server_names, 365, core.now_millis())
                .map_err(|error| StartupError::Tls(error.to_string()))?;
            crate::tls::ServerIdentity::from_pem(certificate.as_bytes(), key.as_bytes())
                .map_err(StartupError::Tls)?
        }
        _ => {
            return Err(StartupError::Tls(
                "tls.certificate and tls.key must be set together".to_owned(),
            ))
        }
    };
    crate::tls::TlsListener::bind(
        address,
        core.clone(),
        identity,
        std::time::Duration::from_secs(tls.trust_refresh_secs),
    )
    .await
    .map_err(StartupError::Tls)
}

/// Name of the generated MFA key file in the data directory.
const MFA_KEY_FILE: &str = "mfa.key";

/// The key that seals MFA secrets: `mfa.encryption_key`, else the key file in the data
/// directory, generated (readable by the owner only) at first start.
fn sealing_key(settings: &Settings) -> Result<SealingKey, StartupError> {
    if let Some(key) = &settings.mfa.encryption_key {
        return Ok(SealingKey::parse_base64(key)?);
    }
    let path = settings.data_dir.join(MFA_KEY_FILE);
    let data_dir_error = |source| StartupError::DataDir {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => SealingKey::parse_base64(&text)
            .map_err(|error| StartupError::Mfa(format!("{}: {error}", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&settings.data_dir).map_err(data_dir_error)?;
            let key = SealingKey::generate_base64();
            write_private_file(&path, &key).map_err(data_dir_error)?;
            tracing::info!(path = %path.display(), "generated the MFA key");
            Ok(SealingKey::parse_base64(&key)?)
        }
        Err(error) => Err(data_dir_error(error)),
    }
}

/// Creates `path` with `contents`, readable and writable by the owner only; fails if it exists
/// (another process created it first: then that key is the one to use, and the start fails
/// loudly rather than sealing with two keys).
fn write_private_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

async fn signing_keys(store: &SqlStore) -> Result<TokenKeys, StartupError> {
    use gatehouse_core::store::Store;
    let engine = base64::engine::general_purpose::STANDARD;
    let candidate = engine.encode(TokenKeys::generate_secret());
    // Every replica ends up with the first stored key.
    let stored = store
        .setting_or_insert(gatehouse_core::tokens::SIGNING_KEY_SETTING, &candidate)
        .await?;
    let secret = engine
        .decode(stored)
        .map_err(|_| gatehouse_core::CoreError::internal("the stored signing key is not base64"))?;
    Ok(TokenKeys::from_secret(&secret)?)
}

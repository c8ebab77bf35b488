//! The identity core's entry point: [`Gatehouse`] owns the store, the hasher, the token keys
//! and the clock, and offers every operation the dialects call. Operations live in
//! `users.rs`, `roles.rs` and `auth.rs`; this file holds what they share.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::changes::{CacheGenerations, ChangeFollower, NotifyingStore};
use crate::clock::Clock;
use crate::error::{CoreError, CoreResult};
use crate::hashing::PasswordHasher;
use crate::mail::{Mailer, NoMailer};
use crate::mfa::verify::MfaLimits;
use crate::mfa::{MfaSettings, NoSmsSender, SmsSender};
use crate::password::PasswordPolicy;
use crate::ratelimit::{RateLimit, RateLimiter};
use crate::sealing::SealingKey;
use crate::store::Store;
use crate::tokens::TokenKeys;

/// Lifetimes and issuer of access/refresh token pairs (ThingsBoard's JWT settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenPairSettings {
    /// Lifetime of an access token, seconds.
    pub access_token_seconds: u32,
    /// Lifetime of a refresh token (and of its login session), seconds.
    pub refresh_token_seconds: u32,
    /// The `iss` claim.
    pub issuer: String,
}

impl Default for TokenPairSettings {
    /// ThingsBoard's defaults: 9000 s, 604800 s, `thingsboard.io`.
    fn default() -> Self {
        Self {
            access_token_seconds: 9000,
            refresh_token_seconds: 604_800,
            issuer: "thingsboard.io".to_owned(),
        }
    }
}

/// Settings of the identity core, from the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoreSettings {
    /// Password policy in Connectware's form.
    pub password_policy: PasswordPolicy,
    /// Lifetime of a login token when the caller does not ask for one, in hours.
    pub default_token_hours: u32,
    /// Longest lifetime a caller may ask for, in hours.
    pub max_token_hours: u32,
    /// Login attempts per client address (all attempts count).
    pub login_per_address: RateLimit,
    /// Failed login attempts per account name (successful ones are given back).
    pub login_per_account: RateLimit,
    /// Access/refresh token pairs.
    pub token_pair: TokenPairSettings,
    /// The broker hot path (caches). Configured in the file's `[broker]` section, not under
    /// `[auth]`.
    #[serde(skip)]
    pub broker: crate::broker::BrokerSettings,
    /// MFA defaults and the ban. Configured in the file's `[mfa]` section.
    #[serde(skip)]
    pub mfa: MfaSettings,
    /// Client registry limits. Configured in the file's `[registry]` section.
    #[serde(skip)]
    pub registry: crate::registry::RegistrySettings,
}

impl Default for CoreSettings {
    fn default() -> Self {
        Self {
            password_policy: PasswordPolicy::default(),
            default_token_hours: 24,
            // Connectware's documentation shows `expireTimeInHours: 99999` for long-lived tokens.
            max_token_hours: 100_000,
            login_per_address: RateLimit {
                burst: 60,
                per_minute: 60,
            },
            login_per_account: RateLimit {
                burst: 10,
                per_minute: 2,
            },
            token_pair: TokenPairSettings::default(),
            broker: crate::broker::BrokerSettings::default(),
            mfa: MfaSettings::default(),
            registry: crate::registry::RegistrySettings::default(),
        }
    }
}

impl CoreSettings {
    /// Checks the settings for contradictions; run at start-up.
    pub fn validate(&self) -> CoreResult<()> {
        if self.default_token_hours == 0 || self.max_token_hours == 0 {
            return Err(CoreError::invalid(
                "auth",
                "token lifetimes must be at least 1 hour",
            ));
        }
        let pair = &self.token_pair;
        if pair.access_token_seconds == 0 || pair.access_token_seconds >= pair.refresh_token_seconds
        {
            return Err(CoreError::invalid(
                "auth.token_pair",
                "access_token_seconds must be at least 1 and below refresh_token_seconds",
            ));
        }
        if pair.issuer.is_empty() {
            return Err(CoreError::invalid(
                "auth.token_pair.issuer",
                "must not be empty",
            ));
        }
        let mfa = &self.mfa;
        if mfa.backup_codes == 0 || mfa.backup_codes > 100 {
            return Err(CoreError::invalid(
                "mfa.backup_codes",
                "must be between 1 and 100",
            ));
        }
        if !(60..=crate::mfa::settings::MAX_SECONDS).contains(&mfa.verification_seconds) {
            return Err(CoreError::invalid(
                "mfa.verification_seconds",
                "must be between 60 and 86400",
            ));
        }
        if mfa.max_failures > crate::mfa::settings::MAX_FAILURE_LIMIT {
            return Err(CoreError::invalid(
                "mfa.max_failures",
                "must be at most 1000000",
            ));
        }
        if mfa.issuer.trim().is_empty() || mfa.issuer.contains(':') {
            return Err(CoreError::invalid(
                "mfa.issuer",
                "must not be empty nor contain ':'",
            ));
        }
        if self.default_token_hours > self.max_token_hours {
            return Err(CoreError::invalid(
                "auth.default_token_hours",
                "must not exceed auth.max_token_hours",
            ));
        }
        Ok(())
    }
}

/// The identity core.
#[derive(Clone)]
pub struct Gatehouse {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) hasher: PasswordHasher,
    pub(crate) keys: TokenKeys,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: CoreSettings,
    pub(crate) login_limits: Arc<LoginLimits>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) broker: Arc<crate::broker::BrokerCaches>,
    pub(crate) token_cache: Arc<crate::auth::TokenCache>,
    pub(crate) user_counts: Arc<crate::users::UserCounts>,
    pub(crate) public_url: String,
    pub(crate) generations: CacheGenerations,
    pub(crate) sealing: SealingKey,
    pub(crate) sms: Arc<dyn SmsSender>,
    pub(crate) mfa_limits: Arc<MfaLimits>,
    pub(crate) pki: Option<Arc<crate::registry::Pki>>,
    pub(crate) directory: Option<Arc<dyn crate::directory::Directory>>,
    pub(crate) federation: Option<crate::federation::Federation>,
    pub(crate) maintenance: Option<crate::maintenance::Maintenance>,
    pub(crate) signup: Arc<crate::signup::Signup>,
}

/// The login rate limiters, and the limits on password-reset link checks and mails.
pub(crate) struct LoginLimits {
    pub(crate) per_address: RateLimiter,
    pub(crate) per_account: RateLimiter,
    pub(crate) reset_checks: RateLimiter,
    pub(crate) reset_mails: RateLimiter,
    pub(crate) registry: RateLimiter,
}

impl Gatehouse {
    /// Assembles the core from its parts. The store is wrapped in a [`NotifyingStore`], so
    /// every write of identity data bumps [`Gatehouse::identity_generation`]. `sealing` seals
    /// TOTP seeds and keys the digests of one-time codes (see [`crate::sealing`]).
    pub fn new(
        store: Arc<dyn Store>,
        hasher: PasswordHasher,
        keys: TokenKeys,
        sealing: SealingKey,
        clock: Arc<dyn Clock>,
        settings: CoreSettings,
    ) -> Self {
        let login_limits = Arc::new(LoginLimits {
            per_address: RateLimiter::new(settings.login_per_address, clock.clone()),
            per_account: RateLimiter::new(settings.login_per_account, clock.clone()),
            // Close to ThingsBoard's `reset_password_per_user` (5 per hour): 5 at once, then
            // one a minute.
            reset_checks: RateLimiter::new(
                RateLimit {
                    burst: 5,
                    per_minute: 1,
                },
                clock.clone(),
            ),
            // Reset mails per email address: 3 at once, then one a minute.
            reset_mails: RateLimiter::new(
                RateLimit {
                    burst: 3,
                    per_minute: 1,
                },
                clock.clone(),
            ),
            registry: RateLimiter::new(settings.registry.per_address, clock.clone()),
        });
        let generations = CacheGenerations::default();
        let signup = Arc::new(crate::signup::Signup::new(
            crate::signup::SignupSettings::default(),
            Arc::new(crate::signup::NoCaptcha),
            clock.clone(),
        ));
        Self {
            store: Arc::new(NotifyingStore::new(store, generations.clone())),
            hasher,
            keys,
            clock,
            settings,
            login_limits,
            mailer: Arc::new(NoMailer),
            broker: Arc::new(crate::broker::BrokerCaches::new()),
            token_cache: Arc::default(),
            user_counts: Arc::default(),
            public_url: "http://127.0.0.1:8080".to_owned(),
            generations,
            sealing,
            sms: Arc::new(NoSmsSender),
            mfa_limits: Arc::new(MfaLimits::default()),
            pki: None,
            directory: None,
            federation: None,
            maintenance: None,
            signup,
        }
    }

    /// Serves backup and restore through `archiver`, keeping the newest `keep` archives in
    /// `directory`, encrypted with `passphrase` when one is given.
    pub fn with_maintenance(
        mut self,
        archiver: Arc<dyn crate::maintenance::DatabaseArchiver>,
        directory: std::path::PathBuf,
        keep: usize,
        passphrase: Option<secrecy::SecretString>,
    ) -> Self {
        self.maintenance = Some(crate::maintenance::Maintenance::new(
            archiver,
            directory,
            keep,
            passphrase,
            self.clock.clone(),
            self.generations.clone(),
        ));
        self
    }

    /// Backup and restore, when configured (always by `gatehouse serve`).
    pub fn maintenance(&self) -> Option<&crate::maintenance::Maintenance> {
        self.maintenance.as_ref()
    }

    /// Sends MFA codes by SMS through `sms`.
    pub fn with_sms(mut self, sms: Arc<dyn SmsSender>) -> Self {
        self.sms = sms;
        self
    }

    /// Uses `mailer` for outgoing mail, with links under `public_url` (the externally visible
    /// base URL of this server, without a trailing slash).
    pub fn with_mail(mut self, mailer: Arc<dyn Mailer>, public_url: &str) -> Self {
        self.mailer = mailer;
        self.public_url = public_url.trim_end_matches('/').to_owned();
        self
    }

    /// Whether a mail server is configured (features that mail codes need one).
    pub fn mailer_configured(&self) -> bool {
        self.mailer.is_configured()
    }

    /// The settings in force.
    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    /// The password hasher (for metrics such as its queue depth).
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// The current generation of identity data: it changes after every write of users,
    /// credentials, roles, permissions or certificates (for caches and tests).
    pub fn identity_generation(&self) -> u64 {
        self.generations.identity.current()
    }

    /// A follower of the database's change counters for this process's caches: the server
    /// polls it (see [`crate::changes`]) so that changes made by other processes reach them.
    pub fn change_follower(&self) -> ChangeFollower {
        ChangeFollower::new(self.store.clone(), self.generations.clone())
    }

    /// Now, in Unix milliseconds, from the injected clock.
    pub fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    /// Whether the store answers (for readiness checks).
    pub async fn ping(&self) -> CoreResult<()> {
        self.store
            .setting_or_insert("schema.ping", "ok")
            .await
            .map(|_| ())
    }
}

/// A page request: 1-based page number and page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page_number: u64,
    /// Rows per page, 1 to [`PageRequest::MAX_ROWS`].
    pub rows_per_page: u64,
}

impl PageRequest {
    /// Largest page size accepted.
    pub const MAX_ROWS: u64 = 1000;
    /// Page size when the caller gives none.
    pub const DEFAULT_ROWS: u64 = 10;

    /// Validates page number and size.
    pub fn new(page_number: Option<u64>, rows_per_page: Option<u64>) -> CoreResult<Self> {
        let page_number = page_number.unwrap_or(1);
        let rows_per_page = rows_per_page.unwrap_or(Self::DEFAULT_ROWS);
        if page_number == 0 || page_number > i64::MAX as u64 / Self::MAX_ROWS {
            return Err(CoreError::invalid(
                "pageNumber",
                "must be a page number from 1",
            ));
        }
        if rows_per_page == 0 || rows_per_page > Self::MAX_ROWS {
            return Err(CoreError::invalid(
                "rowsPerPage",
                "must be between 1 and 1000",
            ));
        }
        Ok(Self {
            page_number,
            rows_per_page,
        })
    }

    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        (self.page_number - 1) * self.rows_per_page
    }
}

/// One page of results and the numbers needed to render pagination.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Rows matching the query across all pages.
    pub total_rows: u64,
    /// The request that produced the page.
    pub request: PageRequest,
}

impl<T> Page<T> {
    /// Number of pages (0 when nothing matches).
    pub fn total_pages(&self) -> u64 {
        self.total_rows.div_ceil(self.request.rows_per_page)
    }

    /// The next page number, if there is one.
    pub fn next_page(&self) -> Option<u64> {
        (self.request.page_number < self.total_pages()).then_some(self.request.page_number + 1)
    }

    /// Slices an in-memory list into the requested page.
    pub fn from_all(all: Vec<T>, request: PageRequest) -> Self {
        let total_rows = all.len() as u64;
        let items = all
            .into_iter()
            .skip(request.offset() as usize)
            .take(request.rows_per_page as usize)
            .collect();
        Self {
            items,
            total_rows,
            request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_numbers() {
        let request = PageRequest::new(Some(2), Some(3)).unwrap();
        let page = Page::from_all((0..7).collect::<Vec<_>>(), request);
        assert_eq!(page.items, vec![3, 4, 5]);
        assert_eq!(page.total_pages(), 3);
        assert_eq!(page.next_page(), Some(3));
        let last = Page::from_all(
            (0..7).collect::<Vec<_>>(),
            PageRequest::new(Some(3), Some(3)).unwrap(),
        );
        assert_eq!(last.next_page(), None);
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(None, Some(1001)).is_err());
        let empty = Page::from_all(Vec::<u8>::new(), PageRequest::new(None, None).unwrap());
        assert_eq!((empty.total_pages(), empty.next_page()), (0, None));
    }
}

//! The identity core's entry point: [`Gatehouse`] owns the store, the hasher, the token keys
//! and the clock, and offers every operation the dialects call. Operations live in
//! `users.rs`, `roles.rs` and `auth.rs`; this file holds what they share.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::{CoreError, CoreResult};
use crate::hashing::PasswordHasher;
use crate::password::PasswordPolicy;
use crate::ratelimit::{RateLimit, RateLimiter};
use crate::store::Store;
use crate::tokens::TokenKeys;

/// Settings of the identity core, from the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// The login rate limiters.
pub(crate) struct LoginLimits {
    pub(crate) per_address: RateLimiter,
    pub(crate) per_account: RateLimiter,
}

impl Gatehouse {
    /// Assembles the core from its parts.
    pub fn new(
        store: Arc<dyn Store>,
        hasher: PasswordHasher,
        keys: TokenKeys,
        clock: Arc<dyn Clock>,
        settings: CoreSettings,
    ) -> Self {
        let login_limits = Arc::new(LoginLimits {
            per_address: RateLimiter::new(settings.login_per_address, clock.clone()),
            per_account: RateLimiter::new(settings.login_per_account, clock.clone()),
        });
        Self {
            store,
            hasher,
            keys,
            clock,
            settings,
            login_limits,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    /// The password hasher (for metrics such as its queue depth).
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
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

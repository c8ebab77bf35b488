//! Token-bucket rate limiting for abuse-prone endpoints (login now; MFA, password reset and the
//! device registry later). Buckets live in memory, per replica: with several replicas behind a
//! load balancer each enforces its own budget (documented in `docs/operations.md`). Time comes
//! from the injected [`Clock`], so tests move it instead of sleeping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::CoreError;

/// Buckets kept before idle, full ones are forgotten; bounds memory under random keys.
const PRUNE_ABOVE: usize = 50_000;

/// A budget: `burst` attempts at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Attempts allowed in a burst (0 disables the limit).
    pub burst: u32,
    /// Attempts regained per minute.
    pub per_minute: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated_millis: i64,
}

/// Per-key token buckets.
pub struct RateLimiter {
    limit: RateLimit,
    /// Attempts regained per minute (fractional for budgets such as "3 per 900 s").
    refill_per_minute: f64,
    clock: Arc<dyn Clock>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter enforcing `limit`.
    pub fn new(limit: RateLimit, clock: Arc<dyn Clock>) -> Self {
        Self {
            limit,
            refill_per_minute: f64::from(limit.per_minute),
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// A limiter of `count` attempts per `seconds`, refilled evenly (ThingsBoard's `N:S`
    /// budgets, whose rates may be below one a minute).
    pub fn per_period(count: u32, seconds: u32, clock: Arc<dyn Clock>) -> Self {
        Self {
            limit: RateLimit {
                burst: count,
                per_minute: 0,
            },
            refill_per_minute: f64::from(count) * 60.0 / f64::from(seconds.max(1)),
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, bucket: Bucket, now: i64) -> Bucket {
        let elapsed_minutes = (now - bucket.updated_millis).max(0) as f64 / 60_000.0;
        Bucket {
            tokens: (bucket.tokens + elapsed_minutes * self.refill_per_minute)
                .min(f64::from(self.limit.burst)),
            updated_millis: now,
        }
    }

    /// Takes one attempt from `key`'s budget, or says how many seconds until one is available.
    pub fn try_acquire(&self, key: &str) -> Result<(), CoreError> {
        if self.limit.burst == 0 {
            return Ok(());
        }
        let now = self.clock.now_millis();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            let full = f64::from(self.limit.burst);
            buckets.retain(|_, bucket| self.refilled(*bucket, now).tokens < full);
        }
        let fresh = Bucket {
            tokens: f64::from(self.limit.burst),
            updated_millis: now,
        };
        let bucket = buckets
            .get(key)
            .map_or(fresh, |bucket| self.refilled(*bucket, now));
        if bucket.tokens >= 1.0 {
            buckets.insert(
                key.to_owned(),
                Bucket {
                    tokens: bucket.tokens - 1.0,
                    ..bucket
                },
            );
            return Ok(());
        }
        buckets.insert(key.to_owned(), bucket);
        let retry_after_secs = if self.refill_per_minute <= 0.0 {
            u64::MAX / 2
        } else {
            ((1.0 - bucket.tokens) * 60.0 / self.refill_per_minute).ceil() as u64
        };
        Err(CoreError::RateLimited {
            retry_after_secs: retry_after_secs.max(1),
        })
    }

    /// Gives back one attempt (e.g. a login that succeeded does not count against the account).
    pub fn refund(&self, key: &str) {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bucket) = buckets.get_mut(key) {
            bucket.tokens = (bucket.tokens + 1.0).min(f64::from(self.limit.burst));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn bursts_then_refills_with_time() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = RateLimiter::new(
            RateLimit {
                burst: 3,
                per_minute: 6,
            },
            clock.clone(),
        );
        for _ in 0..3 {
            assert!(limiter.try_acquire("k").is_ok());
        }
        match limiter.try_acquire("k") {
            Err(CoreError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 10),
            other => panic!("{other:?}"),
        }
        assert!(limiter.try_acquire("other").is_ok(), "keys are independent");
        clock.advance(10_000);
        assert!(limiter.try_acquire("k").is_ok());
        assert!(limiter.try_acquire("k").is_err());
    }

    #[test]
    fn refunds_and_disabled_limits() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = RateLimiter::new(
            RateLimit {
                burst: 1,
                per_minute: 1,
            },
            clock.clone(),
        );
        assert!(limiter.try_acquire("k").is_ok());
        limiter.refund("k");
        assert!(limiter.try_acquire("k").is_ok());
        let off = RateLimiter::new(
            RateLimit {
                burst: 0,
                per_minute: 0,
            },
            clock,
        );
        for _ in 0..100 {
            assert!(off.try_acquire("k").is_ok());
        }
    }

    #[test]
    fn budgets_per_period_refill_slower_than_one_a_minute() {
        // ThingsBoard's "3:900": three checks, then one more every 300 s.
        let clock = Arc::new(ManualClock::new(0));
        let limiter = RateLimiter::per_period(3, 900, clock.clone());
        for _ in 0..3 {
            assert!(limiter.try_acquire("k").is_ok());
        }
        match limiter.try_acquire("k") {
            Err(CoreError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 300),
            other => panic!("{other:?}"),
        }
        clock.advance(299_000);
        assert!(limiter.try_acquire("k").is_err());
        clock.advance(1_000);
        assert!(limiter.try_acquire("k").is_ok());
        assert!(limiter.try_acquire("k").is_err());
        // One send per 90 s.
        let sends = RateLimiter::per_period(1, 90, clock.clone());
        assert!(sends.try_acquire("k").is_ok());
        clock.advance(89_000);
        assert!(sends.try_acquire("k").is_err());
        clock.advance(1_000);
        assert!(sends.try_acquire("k").is_ok());
    }
}

//! Password hashing with argon2id on a bounded pool of blocking threads.
//!
//! Hashing is deliberately slow, so it never runs on the async executor: at most `workers`
//! hashes run at once on tokio's blocking threads, at most `queue_limit` more wait, and any
//! request beyond that fails fast with [`CoreError::Unavailable`] instead of piling up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::error::{CoreError, CoreResult};
use crate::password::PlainPassword;

/// Argon2id cost parameters. The defaults are OWASP's recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Config {
    /// Memory per hash in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashes and verifies passwords, bounded in concurrency and queue length.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    queue_limit: usize,
    /// A hash of a random password, verified against when a user does not exist so that both
    /// cases cost the same time (no user enumeration by timing).
    decoy_hash: Arc<String>,
}

impl PasswordHasher {
    /// Builds a hasher with `workers` concurrent hashes and `queue_limit` waiting requests.
    pub fn new(config: Argon2Config, workers: usize, queue_limit: usize) -> CoreResult<Self> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|error| CoreError::invalid("argon2", error.to_string()))?;
        let decoy = SaltString::generate(&mut OsRng);
        let decoy_hash = argon2id(&params)
            .hash_password(decoy.as_str().as_bytes(), &SaltString::generate(&mut OsRng))
            .map_err(CoreError::internal)?
            .to_string();
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(workers.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue_limit,
            decoy_hash: Arc::new(decoy_hash),
        })
    }

    /// How many hashing requests are waiting for a worker now (for metrics).
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Hashes a password into a PHC string with a fresh salt.
    pub async fn hash(&self, password: &PlainPassword) -> CoreResult<String> {
        let params = self.params.clone();
        let secret = password.clone();
        self.run(move || {
            argon2id(&params)
                .hash_password(
                    secret.expose().as_bytes(),
                    &SaltString::generate(&mut OsRng),
                )
                .map(|hash| hash.to_string())
                .map_err(CoreError::internal)
        })
        .await
    }

    /// Verifies a password against a PHC string; `None` verifies against the decoy so that a
    /// missing user costs as much as a wrong password, and always yields false.
    pub async fn verify(&self, password: &PlainPassword, phc: Option<&str>) -> CoreResult<bool> {
        let known = phc.is_some();
        let phc = phc.unwrap_or(&self.decoy_hash).to_owned();
        let secret = password.clone();
        let matches = self
            .run(move || {
                let parsed = PasswordHash::new(&phc).map_err(CoreError::internal)?;
                // The parameters stored in the PHC string govern verification, so hashes made
                // with older settings keep working.
                Ok(Argon2::default()
                    .verify_password(secret.expose().as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> CoreResult<T> + Send + 'static,
    ) -> CoreResult<T> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue_limit {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(CoreError::Unavailable {
                        reason: "password hashing is overloaded, retry shortly".to_owned(),
                    });
                }
                let acquired = self.permits.clone().acquire_owned().await;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                acquired.map_err(CoreError::internal)?
            }
        };
        let result = tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(CoreError::internal)?;
        result
    }
}

fn argon2id(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        let config = Argon2Config {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        };
        PasswordHasher::new(config, 2, 8).unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = cheap();
        let password = PlainPassword::parse("correct horse", "p").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
        let wrong = PlainPassword::parse("wrong horse", "p").unwrap();
        assert!(!hasher.verify(&wrong, Some(&hash)).await.unwrap());
        assert!(!hasher.verify(&password, None).await.unwrap());
    }

    #[tokio::test]
    async fn overload_fails_fast() {
        let config = Argon2Config {
            memory_kib: 8 * 1024,
            iterations: 3,
            parallelism: 1,
        };
        let hasher = PasswordHasher::new(config, 1, 1).unwrap();
        let password = PlainPassword::parse("correct horse", "p").unwrap();
        let attempts: Vec<_> = (0..6)
            .map(|_| {
                let (hasher, password) = (hasher.clone(), password.clone());
                tokio::spawn(async move { hasher.hash(&password).await })
            })
            .collect();
        let mut unavailable = 0;
        for attempt in attempts {
            if let Err(CoreError::Unavailable { .. }) = attempt.await.unwrap() {
                unavailable += 1;
            }
        }
        assert!(
            unavailable >= 1,
            "a queue of one must refuse some of six parallel hashes"
        );
        assert_eq!(hasher.queue_depth(), 0);
    }
}

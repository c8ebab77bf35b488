//! Password hashing with argon2id on a bounded pool of blocking threads.
//!
//! Hashing is deliberately slow, so it never runs on the async executor: at most `workers`
//! hashes run at once on tokio's blocking threads, at most `queue_limit` more wait, and any
//! request beyond that fails fast with [`CoreError::Unavailable`] instead of piling up.
//!
//! Each hash needs its cost in memory (19 MiB by default). Allocating and faulting in that
//! memory for every hash cost about a third of a login, so the hashes reuse buffers kept in a
//! [`MemoryPool`] (at most one per worker), which gives them back to the system once no hash
//! has used them for [`IDLE_RELEASE`]. The hashes themselves are argon2's
//! (`hash_password_into_with_memory`), in the PHC string format of its `PasswordHasher`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::error::{CoreError, CoreResult};
use crate::password::PlainPassword;

/// How long a hashing buffer may stay unused before it is freed.
pub const IDLE_RELEASE: Duration = Duration::from_secs(2);

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
    memory: Arc<MemoryPool>,
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
        // Its memory is freed at once: an idle server keeps no buffer.
        let decoy_hash = hash_phc(&params, decoy.as_str().as_bytes(), &mut Vec::new())?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(workers.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue_limit,
            memory: Arc::new(MemoryPool::default()),
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
        self.run(move |memory| hash_phc(&params, secret.expose().as_bytes(), memory))
            .await
    }

    /// Verifies a password against a PHC string; `None` verifies against the decoy so that a
    /// missing user costs as much as a wrong password, and always yields false.
    pub async fn verify(&self, password: &PlainPassword, phc: Option<&str>) -> CoreResult<bool> {
        let known = phc.is_some();
        let phc = phc.unwrap_or(&self.decoy_hash).to_owned();
        let secret = password.clone();
        let matches = self
            .run(move |memory| {
                let parsed = PasswordHash::new(&phc).map_err(CoreError::internal)?;
                // The parameters stored in the PHC string govern verification, so hashes made
                // with older settings keep working. A hash it cannot recompute matches nothing.
                Ok(verify_phc(&parsed, secret.expose().as_bytes(), memory).unwrap_or(false))
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> CoreResult<T> + Send + 'static,
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
        let pool = self.memory.clone();
        let result = tokio::task::spawn_blocking(move || {
            // One buffer per permit: the pool never holds more than `workers` of them.
            let mut memory = pool.take();
            let result = work(&mut memory);
            pool.give_back(memory);
            drop(permit);
            result
        })
        .await
        .map_err(CoreError::internal)?;
        self.memory.release_when_idle();
        result
    }
}

/// Argon2 memory kept between hashes, freed after `idle` without use ([`IDLE_RELEASE`]).
struct MemoryPool {
    spare: Mutex<Vec<(Vec<Block>, Instant)>>,
    /// Whether a task that frees idle buffers is scheduled.
    sweeping: AtomicBool,
    idle: Duration,
}

impl Default for MemoryPool {
    fn default() -> Self {
        Self::freeing_after(IDLE_RELEASE)
    }
}

impl MemoryPool {
    /// A pool that frees buffers unused for `idle`.
    fn freeing_after(idle: Duration) -> Self {
        Self {
            spare: Mutex::new(Vec::new()),
            sweeping: AtomicBool::new(false),
            idle,
        }
    }

    /// A spare buffer, or an empty one (grown by the hash).
    fn take(&self) -> Vec<Block> {
        self.spare
            .lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .map(|(memory, _)| memory)
            .unwrap_or_default()
    }

    /// Keeps `memory` for the next hash.
    fn give_back(&self, memory: Vec<Block>) {
        if let Ok(mut spare) = self.spare.lock() {
            spare.push((memory, Instant::now()));
        }
    }

    /// Frees the buffers unused for `idle`; true when none is left.
    fn free_idle(&self) -> bool {
        self.spare.lock().map_or(true, |mut spare| {
            spare.retain(|(_, used)| used.elapsed() < self.idle);
            spare.is_empty()
        })
    }

    /// Makes sure a task frees the buffers once they are idle (one task at a time, ending
    /// when no buffer is left).
    fn release_when_idle(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(pool.idle).await;
                if pool.free_idle() {
                    pool.sweeping.store(false, Ordering::Release);
                    // A buffer given back after the check but before the flag was cleared
                    // found the flag set; look once more so it is not kept forever.
                    if pool.free_idle() || pool.sweeping.swap(true, Ordering::AcqRel) {
                        return;
                    }
                }
            }
        });
    }
}

/// A new argon2id PHC string of `password` with `params` and a fresh salt, computed in
/// `memory`.
fn hash_phc(params: &Params, password: &[u8], memory: &mut Vec<Block>) -> CoreResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    let (algorithm, version) = (Algorithm::Argon2id, Version::V0x13);
    let hash = argon2_output(algorithm, version, params, salt.as_salt(), password, memory)
        .map_err(CoreError::internal)?;
    let phc = PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(version.into()),
        params: ParamsString::try_from(params).map_err(CoreError::internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(hash),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC hash `parsed` (any argon2 variant and version it names),
/// computed in `memory`; the outputs are compared in constant time (`Output`'s equality).
fn verify_phc(
    parsed: &PasswordHash<'_>,
    password: &[u8],
    memory: &mut Vec<Block>,
) -> argon2::password_hash::Result<bool> {
    let (Some(salt), Some(expected)) = (parsed.salt, &parsed.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(parsed)?;
    let computed = argon2_output(algorithm, version, &params, salt, password, memory)?;
    Ok(computed == *expected)
}

/// The argon2 output of `password` and `salt`, of the length `params` ask (32 bytes by
/// default), computed in `memory`, which grows to the blocks `params` need and is kept.
fn argon2_output(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    salt: Salt<'_>,
    password: &[u8],
    memory: &mut Vec<Block>,
) -> argon2::password_hash::Result<Output> {
    let mut salt_buffer = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_buffer)?;
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let length = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    Output::init_with(length, |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt, out, memory.as_mut_slice())?)
    })
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

    /// Hashes made here verify with argon2's own verifier, and argon2's own hashes (any
    /// variant, other parameters) verify here: the PHC format is argon2's.
    #[tokio::test]
    async fn hashes_are_argon2s_own() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = cheap();
        let password = PlainPassword::parse("correct horse", "p").unwrap();
        let ours = hasher.hash(&password).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong horse", &parsed)
            .is_err());
        for (algorithm, memory_kib) in [
            (Algorithm::Argon2id, 512),
            (Algorithm::Argon2i, 128),
            (Algorithm::Argon2d, 64),
        ] {
            let params = Params::new(memory_kib, 2, 1, Some(24)).unwrap();
            let theirs = Argon2::new(algorithm, Version::V0x13, params)
                .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
                .unwrap()
                .to_string();
            assert!(hasher.verify(&password, Some(&theirs)).await.unwrap());
            let wrong = PlainPassword::parse("wrong horse", "p").unwrap();
            assert!(!hasher.verify(&wrong, Some(&theirs)).await.unwrap());
        }
    }

    /// The pool keeps one buffer per worker while hashes run, and frees them once idle.
    #[tokio::test]
    async fn buffers_are_kept_then_freed_when_idle() {
        let idle = Duration::from_millis(300);
        let mut hasher = cheap();
        hasher.memory = Arc::new(MemoryPool::freeing_after(idle));
        let password = PlainPassword::parse("correct horse", "p").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
        let spare = || hasher.memory.spare.lock().unwrap().len();
        assert_eq!(spare(), 1, "one buffer for sequential hashes");
        // Hashes at once take a buffer each, but never more than the two workers do.
        let (first, second, third, fourth) = tokio::join!(
            hasher.hash(&password),
            hasher.hash(&password),
            hasher.hash(&password),
            hasher.hash(&password)
        );
        assert!(first.is_ok() && second.is_ok() && third.is_ok() && fourth.is_ok());
        assert!((1..=2).contains(&spare()), "{} buffers", spare());
        let deadline = Instant::now() + idle * 10;
        while spare() > 0 && Instant::now() < deadline {
            tokio::time::sleep(idle / 3).await;
        }
        assert_eq!(spare(), 0, "freed once idle");
        tokio::time::sleep(idle / 3).await;
        assert!(
            !hasher.memory.sweeping.load(Ordering::Acquire),
            "the sweeper ended"
        );
        // And it comes back with the next hash.
        hasher.hash(&password).await.unwrap();
        assert_eq!(spare(), 1);
        assert!(hasher.memory.sweeping.load(Ordering::Acquire));
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

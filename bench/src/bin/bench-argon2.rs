//! The password-login baseline of `bench/run`: raw argon2id verifications per second with the
//! given parameters on the given number of threads, no HTTP and no database. Gatehouse's login
//! rate is measured as a ratio of this, in the same run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use clap::Parser;

/// Command line of the argon2id baseline.
#[derive(Parser)]
struct Args {
    /// Memory per hash in KiB (Gatehouse's `hashing.argon2.memory_kib`).
    #[arg(long, default_value_t = 19 * 1024)]
    memory_kib: u32,
    /// Passes (`hashing.argon2.iterations`).
    #[arg(long, default_value_t = 2)]
    iterations: u32,
    /// Lanes (`hashing.argon2.parallelism`).
    #[arg(long, default_value_t = 1)]
    parallelism: u32,
    /// Threads verifying at once (`hashing.workers`).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let params = Params::new(args.memory_kib, args.iterations, args.parallelism, None)
        .map_err(|error| error.to_string())?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::encode_b64(b"bench-argon2-salt").map_err(|error| error.to_string())?;
    let password = b"bench-password-1";
    let phc = argon2
        .hash_password(password, &salt)
        .map_err(|error| error.to_string())?
        .to_string();
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.threads.max(1))
        .map(|_| {
            let (argon2, phc, done, stop) =
                (argon2.clone(), phc.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                // The PHC string was produced just above, so it parses.
                let Ok(hash) = PasswordHash::new(&phc) else {
                    return;
                };
                while !stop.load(Ordering::Relaxed) {
                    if argon2.verify_password(password, &hash).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(args.seconds.max(0.1)));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let verifications = done.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "verifications": verifications,
            "seconds": elapsed,
            "per_second": verifications as f64 / elapsed,
        })
    );
    Ok(())
}

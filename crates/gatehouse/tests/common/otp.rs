//! One-time codes for tests: TOTP codes computed from an enrolled secret (RFC 6238, HMAC-SHA1,
//! 30 s, 6 digits, the parameters authenticator apps use) at a given time, and the secret of an
//! `otpauth://` URI. The e2e suites compute the same codes with `oathtool`.

use totp_rs::{Algorithm, Builder, Secret};

/// The `secret` parameter of an `otpauth://totp/…` URI.
pub fn secret_of(uri: &str) -> String {
    let (_, query) = uri
        .split_once('?')
        .unwrap_or_else(|| panic!("no query in {uri}"));
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("secret="))
        .unwrap_or_else(|| panic!("no secret in {uri}"))
        .to_owned()
}

/// The TOTP code of a base32 `secret` at Unix time `millis`.
pub fn code_at(secret: &str, millis: i64) -> String {
    let seed = Secret::try_from_base32(secret)
        .unwrap_or_else(|_| panic!("{secret} is not base32"))
        .as_bytes()
        .to_vec();
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(seed)
        .build()
        .expect("a valid TOTP");
    totp.generate(u64::try_from(millis / 1000).expect("time after 1970"))
        .to_string()
}

/// A 6-digit code that is not the right one at `millis` (nor in the steps beside it).
pub fn wrong_code_at(secret: &str, millis: i64) -> String {
    let near: Vec<String> = [-30_000, 0, 30_000]
        .iter()
        .map(|offset| code_at(secret, millis + offset))
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|code| !near.contains(code))
        .expect("a wrong code")
}

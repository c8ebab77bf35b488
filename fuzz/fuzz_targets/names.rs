//! Usernames, role names, certificate fingerprints and password-policy checks from untrusted
//! text: never panic; accepted usernames keep their documented shape.
#![no_main]

use gatehouse_core::names::{RoleName, Username};
use gatehouse_core::password::{PasswordPolicy, PlainPassword};
use gatehouse_core::users::parse_fingerprint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(name) = Username::parse(text) {
        let count = name.as_str().chars().count();
        assert!((3..=128).contains(&count));
        assert!(name.as_str().chars().all(|c| c.is_ascii_alphanumeric() || "_.@+-".contains(c)));
    }
    let _ = RoleName::parse(text);
    if let Ok(fingerprint) = parse_fingerprint(text) {
        assert!(fingerprint.len() == 40 || fingerprint.len() == 64);
    }
    if let Ok(password) = PlainPassword::parse(text, "p") {
        let strict = PasswordPolicy { min: 8, lower: 1, upper: 1, numeric: 1, symbol: 1, ..PasswordPolicy::default() };
        let _ = strict.check(&password, "p");
        let _ = PasswordPolicy::default().check(&password, "p");
    }
});

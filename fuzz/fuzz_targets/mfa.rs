//! MFA input from untrusted text: otpauth URIs and phone numbers sent back by ThingsBoard
//! clients, platform 2FA settings and account configs as JSON, and codes checked against a
//! TOTP. Never panic; accepted values keep their documented shape.
#![no_main]

use gatehouse_core::mfa::flows::{parse_phone_number, seed_of_uri, AccountConfig};
use gatehouse_core::mfa::PlatformMfaSettings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(seed) = seed_of_uri(text) {
        assert!(seed.len() >= 16, "seeds of at least 128 bits");
    }
    if let Ok(number) = parse_phone_number(text) {
        assert!(number.starts_with('+') && number[1..].bytes().all(|b| b.is_ascii_digit()));
        assert!((3..=16).contains(&number.len()));
    }
    if let Ok(settings) = serde_json::from_str::<PlatformMfaSettings>(text) {
        let _ = settings.validate(true, true);
        let _ = settings.check_rate_limit();
        let _ = settings.enabled_providers();
    }
    let _ = serde_json::from_str::<AccountConfig>(text);
});

//! Access tokens from untrusted text: verification never panics and never accepts a token that
//! was not signed with the key (the fuzzer cannot forge HS512).
#![no_main]

use gatehouse_core::tokens::TokenKeys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let keys = TokenKeys::from_secret(&[7u8; 64]).expect("64-byte key");
    assert!(keys.verify(text, 0).is_err(), "an unsigned input was accepted");
});

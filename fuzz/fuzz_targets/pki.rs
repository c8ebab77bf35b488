//! Certificates and certificate signing requests from untrusted input: the `csr` of a device's
//! registration and the PEM bundles added as trusted certificates, as text and as DER inside
//! valid armour. Never panic; an accepted request names a subject and an accepted bundle holds
//! certificates whose id is their SHA-256.
#![no_main]

use base64::Engine as _;
use gatehouse_core::pki::{CertificateInfo, DeviceCsr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(request) = DeviceCsr::parse_pem(text, "csr") {
            assert!(!request.common_name.is_empty());
        }
        if let Ok(certificates) = CertificateInfo::parse_bundle(text) {
            assert!(!certificates.is_empty());
        }
    }
    let body = base64::engine::general_purpose::STANDARD.encode(data);
    let _ = DeviceCsr::parse_pem(
        &format!("-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"),
        "csr",
    );
    if let Ok(info) = CertificateInfo::from_der(data) {
        assert_eq!(info.id, info.sha256);
        assert_eq!(info.id.len(), 64);
    }
});

//! Client certificates passed by brokers: which broker listeners are trusted to pass them
//! (`broker.certificate_listeners`), and reading a certificate the broker sent (VerneMQ's
//! base64 `client_cert`, DER or PEM) into the names the core checks.
//!
//! A certificate is only evidence when the broker verified it against its CA on a TLS listener
//! that requires client certificates. Gatehouse cannot see how a listener is configured, so the
//! operator names the listeners that do; a certificate from any other listener is ignored and
//! the client must present a password or token instead.

use std::sync::Arc;

use base64::Engine;
use gatehouse_core::broker::PresentedCertificate;

/// The broker listeners whose client certificates are trusted. Entries are compared with what
/// the broker says about the listener: VerneMQ's `listener_addr:listener_port` (an entry
/// `*:8883` matches any address), or the `listener` field of an EMQX request (its listener id,
/// e.g. `ssl:default`).
#[derive(Debug, Clone, Default)]
pub struct CertificateListeners(Arc<[String]>);

impl CertificateListeners {
    /// The listeners named by `entries` (empty: certificates are never trusted).
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        Self(
            entries
                .iter()
                .map(|entry| entry.as_ref().trim().to_owned())
                .filter(|entry| !entry.is_empty())
                .collect(),
        )
    }

    /// Whether the VerneMQ listener at `address:port` is trusted.
    pub fn trusts_address(&self, address: Option<&str>, port: Option<u16>) -> bool {
        let Some(port) = port else {
            return false;
        };
        let any = format!("*:{port}");
        let exact = address.map(|address| format!("{address}:{port}"));
        self.0
            .iter()
            .any(|entry| *entry == any || exact.as_deref() == Some(entry.as_str()))
    }

    /// Whether the listener named `name` (EMQX listener id) is trusted.
    pub fn trusts_name(&self, name: &str) -> bool {
        !name.is_empty() && self.0.iter().any(|entry| entry == name)
    }
}

/// Reads a certificate sent as base64 of its DER or PEM bytes: the subject's common name and
/// the SHA-256 fingerprint of the DER encoding. `Err` names what is wrong.
pub fn read_client_cert(base64_text: &str) -> Result<PresentedCertificate, &'static str> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_text.trim())
        .map_err(|_| "client_cert is not base64")?;
    let der = if bytes.starts_with(b"-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes)
            .map_err(|_| "client_cert is not a PEM certificate")?;
        pem.contents
    } else {
        bytes
    };
    let (_, certificate) = x509_parser::parse_x509_certificate(&der)
        .map_err(|_| "client_cert is not an X.509 certificate")?;
    let common_name = certificate
        .subject()
        .iter_common_name()
        .next()
        .and_then(|name| name.as_str().ok())
        .ok_or("client_cert has no common name")?
        .to_owned();
    Ok(PresentedCertificate {
        common_name,
        fingerprint: Some(gatehouse_core::users::certificate_fingerprint(&der)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_match_exactly_or_by_port() {
        let listeners = CertificateListeners::new(&["0.0.0.0:8883", "*:9883", " ssl:default ", ""]);
        assert!(listeners.trusts_address(Some("0.0.0.0"), Some(8883)));
        assert!(!listeners.trusts_address(Some("127.0.0.1"), Some(8883)));
        assert!(listeners.trusts_address(Some("10.1.1.1"), Some(9883)));
        assert!(listeners.trusts_address(None, Some(9883)));
        assert!(!listeners.trusts_address(Some("0.0.0.0"), None));
        assert!(listeners.trusts_name("ssl:default"));
        assert!(!listeners.trusts_name("tcp:default"));
        assert!(!listeners.trusts_name(""));
        let none = CertificateListeners::default();
        assert!(!none.trusts_address(Some("0.0.0.0"), Some(8883)));
    }

    #[test]
    fn malformed_certificates_are_named() {
        assert_eq!(
            read_client_cert("%%%").unwrap_err(),
            "client_cert is not base64"
        );
        assert_eq!(
            read_client_cert("aGVsbG8=").unwrap_err(),
            "client_cert is not an X.509 certificate"
        );
        let pem =
            base64::engine::general_purpose::STANDARD.encode("-----BEGIN CERTIFICATE-----\nxx\n");
        assert_eq!(
            read_client_cert(&pem).unwrap_err(),
            "client_cert is not a PEM certificate"
        );
    }
}

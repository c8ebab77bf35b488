//! The built-in certificate authority and certificate parsing: creates or loads the CA, signs
//! device certificate signing requests, issues the HTTPS listener's server certificate, and
//! reads certificates for the trusted-certificate store (Connectware's `/api/certificates`).
//!
//! X.509 is never hand-rolled: rcgen writes certificates and x509-parser reads certificates and
//! requests (and verifies the signature of a request). A request only proves who holds the key
//! and which name it asks for; everything else in the issued certificate (validity, key usage,
//! basic constraints) comes from the [`IssuanceProfile`], so a request that asks to become a CA
//! gets a plain device certificate.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};
use x509_parser::public_key::PublicKey;

use crate::error::{CoreError, CoreResult};

/// Setting key of the fingerprint of the CA the database was set up with (every replica must
/// use that CA).
pub const CA_FINGERPRINT_SETTING: &str = "pki.ca_fingerprint";

/// Largest PEM text accepted for a request or a certificate bundle (bytes).
pub const MAX_PEM_BYTES: usize = 256 * 1024;
/// Most certificates one bundle may hold.
pub const MAX_BUNDLE_CERTIFICATES: usize = 100;
/// Backdating of `notBefore`, so that devices whose clock is a little behind accept a new
/// certificate at once.
const BACKDATE_SECONDS: i64 = 300;

/// What an issued device certificate carries, from the `[pki]` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuanceProfile {
    /// Validity of a device certificate, days (clamped to the CA's own expiry).
    pub certificate_days: u32,
    /// Key usages: `digitalSignature`, `nonRepudiation`, `keyEncipherment`, `dataEncipherment`,
    /// `keyAgreement`.
    pub key_usage: Vec<String>,
    /// Extended key usages: `clientAuth`, `serverAuth`.
    pub extended_key_usage: Vec<String>,
}

impl Default for IssuanceProfile {
    /// A year, `digitalSignature` + `keyEncipherment`, `clientAuth`.
    fn default() -> Self {
        Self {
            certificate_days: 365,
            key_usage: vec!["digitalSignature".to_owned(), "keyEncipherment".to_owned()],
            extended_key_usage: vec!["clientAuth".to_owned()],
        }
    }
}

impl IssuanceProfile {
    /// Checks the profile; run at start-up.
    pub fn validate(&self) -> CoreResult<()> {
        if !(1..=36_500).contains(&self.certificate_days) {
            return Err(CoreError::invalid(
                "pki.certificate_days",
                "must be between 1 and 36500",
            ));
        }
        self.key_usages()?;
        self.extended_key_usages()?;
        Ok(())
    }

    fn key_usages(&self) -> CoreResult<Vec<KeyUsagePurpose>> {
        self.key_usage
            .iter()
            .map(|name| match name.as_str() {
                "digitalSignature" => Ok(KeyUsagePurpose::DigitalSignature),
                "nonRepudiation" | "contentCommitment" => Ok(KeyUsagePurpose::ContentCommitment),
                "keyEncipherment" => Ok(KeyUsagePurpose::KeyEncipherment),
                "dataEncipherment" => Ok(KeyUsagePurpose::DataEncipherment),
                "keyAgreement" => Ok(KeyUsagePurpose::KeyAgreement),
                other => Err(CoreError::invalid(
                    "pki.key_usage",
                    format!("unknown key usage {other:?}"),
                )),
            })
            .collect()
    }

    fn extended_key_usages(&self) -> CoreResult<Vec<ExtendedKeyUsagePurpose>> {
        self.extended_key_usage
            .iter()
            .map(|name| match name.as_str() {
                "clientAuth" => Ok(ExtendedKeyUsagePurpose::ClientAuth),
                "serverAuth" => Ok(ExtendedKeyUsagePurpose::ServerAuth),
                other => Err(CoreError::invalid(
                    "pki.extended_key_usage",
                    format!("unknown extended key usage {other:?}"),
                )),
            })
            .collect()
    }
}

/// A certificate signing request whose signature was verified and whose key is acceptable.
#[derive(Debug, Clone)]
pub struct DeviceCsr {
    /// The subject's common name.
    pub common_name: String,
    /// The request in PEM form, as stored with a registration.
    pub pem: String,
    spki_der: Vec<u8>,
}

impl DeviceCsr {
    /// Parses a request given as PEM text, verifies its signature, and checks its key: RSA of
    /// 2048 bits or more, EC P-256 or P-384, or Ed25519. Requested extensions are ignored.
    pub fn parse_pem(pem: &str, field: &'static str) -> CoreResult<Self> {
        let bad = |reason: &str| CoreError::invalid(field, reason.to_owned());
        if pem.len() > MAX_PEM_BYTES {
            return Err(bad("is too large"));
        }
        let der = single_pem(pem, "CERTIFICATE REQUEST")
            .ok_or_else(|| bad("must be one PEM certificate signing request"))?;
        let (rest, csr) = X509CertificationRequest::from_der(&der)
            .map_err(|_| bad("is not a valid certificate signing request"))?;
        if !rest.is_empty() {
            return Err(bad("has trailing data"));
        }
        let info = &csr.certification_request_info;
        // The key first: a signature by a key type that is not accepted cannot be verified, and
        // the key's rule is the useful answer.
        check_key(&info.subject_pki).map_err(bad)?;
        csr.verify_signature()
            .map_err(|_| bad("has an invalid signature"))?;
        let common_name = common_name(&info.subject)
            .ok_or_else(|| bad("must name a subject common name (CN)"))?;
        Ok(Self {
            common_name,
            pem: pem.trim().to_owned(),
            spki_der: info.subject_pki.raw.to_vec(),
        })
    }
}

/// Accepts the key types devices use, with sizes that are still safe.
fn check_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<(), &'static str> {
    const ED25519: &str = "1.3.101.112";
    const P256: &str = "1.2.840.10045.3.1.7";
    const P384: &str = "1.3.132.0.34";
    if spki.algorithm.algorithm.to_id_string() == ED25519 {
        return Ok(());
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) if rsa.key_size() >= 2048 && rsa.key_size() <= 8192 => Ok(()),
        Ok(PublicKey::RSA(_)) => Err("must use an RSA key of 2048 to 8192 bits"),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|parameters| parameters.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some(P256 | P384) => Ok(()),
                _ => Err("must use the EC curve P-256 or P-384"),
            }
        }
        _ => Err("must use an RSA, EC (P-256, P-384) or Ed25519 key"),
    }
}

/// The PEM blocks of `text` as (label, DER). Strict: every `-----BEGIN ` must open a complete
/// block whose END line repeats its label, and the base64 must be sound; text between blocks
/// is ignored.
fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let blocks = pem::parse_many(text).map_err(|error| format!("is not sound PEM: {error}"))?;
    if blocks.len() != text.matches("-----BEGIN ").count() {
        return Err("holds an incomplete PEM block".to_owned());
    }
    Ok(blocks
        .into_iter()
        .map(|block| (block.tag().to_owned(), block.into_contents()))
        .collect())
}

/// The DER content of the only PEM block of `text`, which must carry `label`.
fn single_pem(text: &str, label: &str) -> Option<Vec<u8>> {
    let mut blocks = pem_blocks(text).ok()?;
    if blocks.len() != 1 || blocks[0].0 != label {
        return None;
    }
    blocks.pop().map(|(_, der)| der)
}

fn common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|attribute| attribute.as_str().ok())
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// A certificate issued to a device.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// PEM text.
    pub pem: String,
    /// Lower-case hex SHA-256 of the DER encoding (the fingerprint users are bound by).
    pub fingerprint: String,
    /// `notAfter`, Unix ms.
    pub expires_at: i64,
}

/// The certificate authority that signs device certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    certificate_pem: String,
    certificate_der: Vec<u8>,
    expires_at: i64,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// A newly generated CA: the authority and its key in PKCS#8 PEM (to be written to disk).
pub struct GeneratedAuthority {
    /// The authority.
    pub authority: CertificateAuthority,
    /// The CA certificate, PEM.
    pub certificate_pem: String,
    /// The CA key, PKCS#8 PEM.
    pub key_pem: String,
}

fn pki_error(error: rcgen::Error) -> CoreError {
    CoreError::internal(format!("certificate authority: {error}"))
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and without a leading zero byte: 127 random bits.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn datetime(millis: i64) -> CoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .map_err(|error| CoreError::internal(format!("time out of range: {error}")))
}

impl CertificateAuthority {
    /// Generates a self-signed ECDSA P-256 CA named `common_name`, valid `days` from `now`.
    pub fn generate(
        common_name: &str,
        days: u32,
        now_millis: i64,
    ) -> CoreResult<GeneratedAuthority> {
        let key = KeyPair::generate().map_err(pki_error)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        name.push(DnType::OrganizationName, "Gatehouse");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        params.not_before = datetime(now_millis - BACKDATE_SECONDS * 1000)?;
        params.not_after = datetime(now_millis + i64::from(days) * 86_400_000)?;
        let certificate = params.self_signed(&key).map_err(pki_error)?;
        let certificate_pem = certificate.pem();
        let key_pem = key.serialize_pem();
        let authority = Self::from_pem(&certificate_pem, &key_pem)?;
        Ok(GeneratedAuthority {
            authority,
            certificate_pem,
            key_pem,
        })
    }

    /// Loads a CA from its certificate and PKCS#8 key (PEM). The key must belong to the
    /// certificate, and the certificate must be a CA.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> CoreResult<Self> {
        let invalid = |reason: String| CoreError::invalid("pki", reason);
        let key = KeyPair::from_pem(key_pem)
            .map_err(|error| invalid(format!("the CA key is not a usable PKCS#8 key: {error}")))?;
        let der = single_pem(certificate_pem, "CERTIFICATE")
            .ok_or_else(|| invalid("the CA certificate must be one PEM certificate".to_owned()))?;
        let (_, parsed) = X509Certificate::from_der(&der)
            .map_err(|error| invalid(format!("the CA certificate is unreadable: {error}")))?;
        if !parsed.is_ca() {
            return Err(invalid(
                "the CA certificate is not a CA (basicConstraints)".to_owned(),
            ));
        }
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(invalid(
                "the CA key does not belong to the CA certificate".to_owned(),
            ));
        }
        let expires_at = parsed.validity().not_after.timestamp().saturating_mul(1000);
        let issuer = Issuer::from_ca_cert_der(&der.clone().into(), key)
            .map_err(|error| invalid(format!("the CA certificate is unusable: {error}")))?;
        Ok(Self {
            issuer,
            certificate_pem: certificate_pem.trim().to_owned() + "\n",
            certificate_der: der,
            expires_at,
        })
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// Lower-case hex SHA-256 of the CA certificate.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(&self.certificate_der))
    }

    /// Signs a device certificate for `csr`: subject `CN=<csr common name>`, a random serial,
    /// and validity, key usage and extended key usage from `profile`.
    pub fn sign_device(
        &self,
        csr: &DeviceCsr,
        profile: &IssuanceProfile,
        now_millis: i64,
    ) -> CoreResult<IssuedCertificate> {
        let public_key = SubjectPublicKeyInfo::from_der(&csr.spki_der)
            .map_err(|_| CoreError::invalid("csr", "uses a key type that cannot be certified"))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, csr.common_name.as_str());
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = profile.key_usages()?;
        params.extended_key_usages = profile.extended_key_usages()?;
        params.use_authority_key_identifier_extension = true;
        let expires_at = self.sign_into(&mut params, profile.certificate_days, now_millis)?;
        let certificate = params
            .signed_by(&public_key, &self.issuer)
            .map_err(pki_error)?;
        Ok(IssuedCertificate {
            fingerprint: hex::encode(Sha256::digest(certificate.der())),
            pem: certificate.pem(),
            expires_at,
        })
    }

    /// Issues a server certificate (and its new key, PKCS#8 PEM) for `names` (DNS names or IP
    /// addresses), valid `days`: the HTTPS listener's certificate when none is configured.
    pub fn issue_server(
        &self,
        names: &[String],
        days: u32,
        now_millis: i64,
    ) -> CoreResult<(String, String)> {
        let key = KeyPair::generate().map_err(pki_error)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(
            DnType::CommonName,
            names.first().map(String::as_str).unwrap_or("gatehouse"),
        );
        params.distinguished_name = name;
        params.subject_alt_names = names
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(address) => Ok(SanType::IpAddress(address)),
                Err(_) => name
                    .as_str()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|_| CoreError::invalid("tls.server_names", format!("{name:?}"))),
            })
            .collect::<CoreResult<_>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        self.sign_into(&mut params, days, now_millis)?;
        let certificate = params.signed_by(&key, &self.issuer).map_err(pki_error)?;
        Ok((certificate.pem(), key.serialize_pem()))
    }

    /// Sets serial and validity (ending no later than the CA); returns `notAfter`, Unix ms.
    fn sign_into(
        &self,
        params: &mut CertificateParams,
        days: u32,
        now_millis: i64,
    ) -> CoreResult<i64> {
        let not_after = now_millis
            .saturating_add(i64::from(days).saturating_mul(86_400_000))
            .min(self.expires_at);
        if not_after <= now_millis {
            return Err(CoreError::Unavailable {
                reason: "the certificate authority has expired".to_owned(),
            });
        }
        params.serial_number = Some(random_serial());
        params.not_before = datetime(now_millis - BACKDATE_SECONDS * 1000)?;
        params.not_after = datetime(not_after)?;
        Ok(not_after.div_euclid(1000) * 1000)
    }
}

/// A name as Connectware shows it: common name, organization, organizational unit, and for
/// the subject the alternative names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameInfo {
    /// CN.
    pub common_name: Option<String>,
    /// O.
    pub organization: Option<String>,
    /// OU.
    pub organizational_unit: Option<String>,
    /// Subject alternative names (`DNS:…`, `IP:…`, `email:…`, `URI:…`); subject only.
    pub alternative_names: Vec<String>,
}

/// A certificate read for the trusted-certificate store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Id: the lower-case hex SHA-256 fingerprint.
    pub id: String,
    /// Issuer.
    pub issued_by: NameInfo,
    /// Subject.
    pub issued_to: NameInfo,
    /// Key usages, named as in RFC 5280 (`digitalSignature`, `keyCertSign`, …).
    pub key_usage: Vec<String>,
    /// Extended key usages (`serverAuth`, `clientAuth`, … or dotted OIDs).
    pub extended_key_usage: Vec<String>,
    /// `(isCA, pathLength)` from basicConstraints, when present.
    pub basic_constraints: Option<(bool, Option<u32>)>,
    /// `notBefore`, Unix ms.
    pub issued_on: i64,
    /// `notAfter`, Unix ms.
    pub expires_on: i64,
    /// Lower-case hex SHA-1 fingerprint.
    pub sha1: String,
    /// Lower-case hex SHA-256 fingerprint.
    pub sha256: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

fn first_text<'a>(
    values: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Option<String> {
    values
        .filter_map(|value| value.as_str().ok())
        .next()
        .map(str::to_owned)
}

fn name_info(name: &X509Name<'_>) -> NameInfo {
    NameInfo {
        common_name: first_text(name.iter_common_name()),
        organization: first_text(name.iter_organization()),
        organizational_unit: first_text(name.iter_organizational_unit()),
        alternative_names: Vec::new(),
    }
}

impl CertificateInfo {
    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        pem::encode_config(
            &pem::Pem::new("CERTIFICATE", self.der.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// Reads one DER certificate.
    pub fn from_der(der: &[u8]) -> CoreResult<Self> {
        let bad = |reason: String| CoreError::invalid("certificate", reason);
        let (rest, certificate) = X509Certificate::from_der(der)
            .map_err(|error| bad(format!("is not a readable X.509 certificate: {error}")))?;
        if !rest.is_empty() {
            return Err(bad("has trailing data".to_owned()));
        }
        let mut issued_to = name_info(certificate.subject());
        if let Ok(Some(names)) = certificate.subject_alternative_name() {
            issued_to.alternative_names = names
                .value
                .general_names
                .iter()
                .map(|name| match name {
                    GeneralName::DNSName(dns) => format!("DNS:{dns}"),
                    GeneralName::RFC822Name(mail) => format!("email:{mail}"),
                    GeneralName::URI(uri) => format!("URI:{uri}"),
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => format!(
                            "IP:{}",
                            std::net::Ipv4Addr::from(
                                <[u8; 4]>::try_from(*bytes).unwrap_or_default()
                            )
                        ),
                        16 => format!(
                            "IP:{}",
                            std::net::Ipv6Addr::from(
                                <[u8; 16]>::try_from(*bytes).unwrap_or_default()
                            )
                        ),
                        _ => format!("IP:{}", hex::encode(bytes)),
                    },
                    other => other.to_string(),
                })
                .collect();
        }
        let mut key_usage = Vec::new();
        if let Ok(Some(usage)) = certificate.key_usage() {
            let usage = usage.value;
            let named = [
                (usage.digital_signature(), "digitalSignature"),
                (usage.non_repudiation(), "nonRepudiation"),
                (usage.key_encipherment(), "keyEncipherment"),
                (usage.data_encipherment(), "dataEncipherment"),
                (usage.key_agreement(), "keyAgreement"),
                (usage.key_cert_sign(), "keyCertSign"),
                (usage.crl_sign(), "cRLSign"),
                (usage.encipher_only(), "encipherOnly"),
                (usage.decipher_only(), "decipherOnly"),
            ];
            key_usage = named
                .iter()
                .filter(|(set, _)| *set)
                .map(|(_, name)| (*name).to_owned())
                .collect();
        }
        let mut extended_key_usage = Vec::new();
        if let Ok(Some(extended)) = certificate.extended_key_usage() {
            let extended = extended.value;
            let named = [
                (extended.any, "anyExtendedKeyUsage"),
                (extended.server_auth, "serverAuth"),
                (extended.client_auth, "clientAuth"),
                (extended.code_signing, "codeSigning"),
                (extended.email_protection, "emailProtection"),
                (extended.time_stamping, "timeStamping"),
                (extended.ocsp_signing, "OCSPSigning"),
            ];
            extended_key_usage = named
                .iter()
                .filter(|(set, _)| *set)
                .map(|(_, name)| (*name).to_owned())
                .collect();
            extended_key_usage.extend(extended.other.iter().map(|oid| oid.to_id_string()));
        }
        let basic_constraints = certificate
            .basic_constraints()
            .ok()
            .flatten()
            .map(|constraints| (constraints.value.ca, constraints.value.path_len_constraint));
        Ok(Self {
            id: hex::encode(Sha256::digest(der)),
            issued_by: name_info(certificate.issuer()),
            issued_to,
            key_usage,
            extended_key_usage,
            basic_constraints,
            issued_on: certificate
                .validity()
                .not_before
                .timestamp()
                .saturating_mul(1000),
            expires_on: certificate
                .validity()
                .not_after
                .timestamp()
                .saturating_mul(1000),
            sha1: hex::encode(sha1::Sha1::digest(der)),
            sha256: hex::encode(Sha256::digest(der)),
            der: der.to_vec(),
        })
    }

    /// Reads a PEM bundle: one or more `CERTIFICATE` blocks (text between blocks is ignored).
    /// Anything unreadable — no certificate, another PEM label, a damaged block — fails the
    /// whole bundle, naming the block.
    pub fn parse_bundle(text: &str) -> CoreResult<Vec<Self>> {
        if text.len() > MAX_PEM_BYTES {
            return Err(CoreError::invalid("certificate", "the bundle is too large"));
        }
        let blocks =
            pem_blocks(text).map_err(|reason| CoreError::invalid("certificate", reason))?;
        if blocks.len() > MAX_BUNDLE_CERTIFICATES {
            return Err(CoreError::invalid(
                "certificate",
                format!("a bundle holds at most {MAX_BUNDLE_CERTIFICATES} certificates"),
            ));
        }
        let mut certificates = Vec::new();
        for (index, (label, der)) in blocks.into_iter().enumerate() {
            if label != "CERTIFICATE" {
                return Err(CoreError::invalid(
                    "certificate",
                    format!("PEM block {} is a {label}, not a CERTIFICATE", index + 1),
                ));
            }
            certificates.push(Self::from_der(&der).map_err(|error| match error {
                CoreError::Invalid { reason, .. } => {
                    CoreError::invalid("certificate", format!("PEM block {} {reason}", index + 1))
                }
                other => other,
            })?);
        }
        if certificates.is_empty() {
            return Err(CoreError::invalid(
                "certificate",
                "holds no PEM certificate",
            ));
        }
        Ok(certificates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_900_000_000_000;

    fn authority() -> CertificateAuthority {
        CertificateAuthority::generate("Test CA", 3650, NOW)
            .unwrap()
            .authority
    }

    fn csr(name: &str, algorithm: &'static rcgen::SignatureAlgorithm, ca: bool) -> String {
        let key = KeyPair::generate_for(algorithm).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn a_generated_authority_loads_back_from_its_files() {
        let generated = CertificateAuthority::generate("Test CA", 10, NOW).unwrap();
        let loaded =
            CertificateAuthority::from_pem(&generated.certificate_pem, &generated.key_pem).unwrap();
        assert_eq!(loaded.fingerprint(), generated.authority.fingerprint());
        let info = CertificateInfo::from_der(loaded.certificate_der()).unwrap();
        assert_eq!(info.basic_constraints, Some((true, Some(0))));
        assert_eq!(info.issued_to.common_name.as_deref(), Some("Test CA"));
        assert_eq!(info.expires_on, NOW / 1000 * 1000 + 10 * 86_400_000);
    }

    #[test]
    fn a_key_of_another_authority_or_a_leaf_is_refused() {
        let first = CertificateAuthority::generate("A", 10, NOW).unwrap();
        let second = CertificateAuthority::generate("B", 10, NOW).unwrap();
        assert!(CertificateAuthority::from_pem(&first.certificate_pem, &second.key_pem).is_err());
        let leaf = first
            .authority
            .sign_device(
                &DeviceCsr::parse_pem(&csr("dev", &rcgen::PKCS_ECDSA_P256_SHA256, false), "csr")
                    .unwrap(),
                &IssuanceProfile::default(),
                NOW,
            )
            .unwrap();
        assert!(CertificateAuthority::from_pem(&leaf.pem, &first.key_pem).is_err());
    }

    #[test]
    fn device_certificates_follow_the_profile_not_the_request() {
        let ca = authority();
        for algorithm in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let request = DeviceCsr::parse_pem(&csr("dev.1", algorithm, true), "csr").unwrap();
            assert_eq!(request.common_name, "dev.1");
            let issued = ca
                .sign_device(&request, &IssuanceProfile::default(), NOW)
                .unwrap();
            let der = x509_parser::pem::parse_x509_pem(issued.pem.as_bytes())
                .unwrap()
                .1
                .contents;
            let info = CertificateInfo::from_der(&der).unwrap();
            assert_eq!(info.sha256, issued.fingerprint);
            assert_eq!(info.issued_to.common_name.as_deref(), Some("dev.1"));
            assert_eq!(info.issued_by.common_name.as_deref(), Some("Test CA"));
            assert_eq!(info.basic_constraints, Some((false, None)));
            assert_eq!(info.key_usage, ["digitalSignature", "keyEncipherment"]);
            assert_eq!(info.extended_key_usage, ["clientAuth"]);
            assert_eq!(info.expires_on, issued.expires_at);
            assert_eq!(issued.expires_at, NOW / 1000 * 1000 + 365 * 86_400_000);
            let (_, parsed) = X509Certificate::from_der(&der).unwrap();
            let (_, ca_parsed) = X509Certificate::from_der(ca.certificate_der()).unwrap();
            parsed
                .verify_signature(Some(ca_parsed.public_key()))
                .unwrap();
        }
    }

    /// Extensions rcgen could not carry (an unknown OID) and ones it could (SANs) are both
    /// ignored: the certificate holds only what the profile says.
    #[test]
    fn requested_extensions_are_ignored() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "dev.x");
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 99999, 1],
                vec![0x05, 0x00],
            ));
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        let request = DeviceCsr::parse_pem(&pem, "csr").unwrap();
        let issued = authority()
            .sign_device(&request, &IssuanceProfile::default(), NOW)
            .unwrap();
        let der = x509_parser::pem::parse_x509_pem(issued.pem.as_bytes())
            .unwrap()
            .1
            .contents;
        let (_, certificate) = X509Certificate::from_der(&der).unwrap();
        let oids: Vec<String> = certificate
            .extensions()
            .iter()
            .map(|extension| extension.oid.to_id_string())
            .collect();
        assert!(
            !oids.contains(&"1.3.6.1.4.1.99999.1".to_owned()),
            "{oids:?}"
        );
        assert!(!oids.contains(&"2.5.29.17".to_owned()), "no SAN: {oids:?}");
    }

    #[test]
    fn validity_never_outlives_the_authority() {
        let ca = CertificateAuthority::generate("Short", 2, NOW)
            .unwrap()
            .authority;
        let request =
            DeviceCsr::parse_pem(&csr("dev", &rcgen::PKCS_ED25519, false), "csr").unwrap();
        let issued = ca
            .sign_device(&request, &IssuanceProfile::default(), NOW)
            .unwrap();
        assert_eq!(issued.expires_at, NOW / 1000 * 1000 + 2 * 86_400_000);
        let later = NOW + 3 * 86_400_000;
        assert!(matches!(
            ca.sign_device(&request, &IssuanceProfile::default(), later),
            Err(CoreError::Unavailable { .. })
        ));
    }

    #[test]
    fn serials_are_random() {
        let ca = authority();
        let request =
            DeviceCsr::parse_pem(&csr("dev", &rcgen::PKCS_ED25519, false), "csr").unwrap();
        let serial = |pem: &str| {
            let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
                .unwrap()
                .1
                .contents;
            X509Certificate::from_der(&der)
                .unwrap()
                .1
                .raw_serial()
                .to_vec()
        };
        let profile = IssuanceProfile::default();
        let first = serial(&ca.sign_device(&request, &profile, NOW).unwrap().pem);
        let second = serial(&ca.sign_device(&request, &profile, NOW).unwrap().pem);
        assert_ne!(first, second);
        assert_eq!(first.len(), 16);
    }

    #[test]
    fn a_tampered_request_is_refused() {
        let pem = csr("dev", &rcgen::PKCS_ECDSA_P256_SHA256, false);
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents;
        // Flip a byte of the subject name (inside the signed part).
        let mut tampered = der.clone();
        let at = tampered
            .windows(3)
            .position(|window| window == b"dev")
            .unwrap();
        tampered[at] = b'x';
        let armoured = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(&tampered)
            }
        );
        let error = DeviceCsr::parse_pem(&armoured, "csr").unwrap_err();
        assert!(error.to_string().contains("signature"), "{error}");
    }

    #[test]
    fn profiles_are_checked() {
        let mut profile = IssuanceProfile::default();
        assert!(profile.validate().is_ok());
        profile.key_usage.push("keyCertSign".to_owned());
        assert!(profile.validate().is_err());
        let profile = IssuanceProfile {
            certificate_days: 0,
            ..IssuanceProfile::default()
        };
        assert!(profile.validate().is_err());
    }

    #[test]
    fn bundles_name_the_bad_block() {
        let ca = authority();
        let good = ca.certificate_pem().to_owned();
        let bundle = format!("comment\n{good}\n{good}");
        assert_eq!(CertificateInfo::parse_bundle(&bundle).unwrap().len(), 2);
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let error = CertificateInfo::parse_bundle(&format!("{good}{key}")).unwrap_err();
        assert!(error.to_string().contains("block 2"), "{error}");
        assert!(CertificateInfo::parse_bundle("no pem here").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random text never panics the parsers of untrusted PEM.
        #[test]
        fn random_text_is_refused_calmly(text in ".{0,2000}") {
            let _ = DeviceCsr::parse_pem(&text, "csr");
            let _ = CertificateInfo::parse_bundle(&text);
        }

        /// Random bytes inside valid armour never panic either.
        #[test]
        fn random_der_in_armour_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            use base64::Engine as _;
            let body = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let request = format!("-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n");
            prop_assert!(DeviceCsr::parse_pem(&request, "csr").is_err());
            let certificate = format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n");
            prop_assert!(CertificateInfo::parse_bundle(&certificate).is_err());
        }
    }

    /// A real request or certificate cut at every point is refused or read, never a panic.
    #[test]
    fn truncated_pem_is_refused_calmly() {
        let request = csr("dev", &rcgen::PKCS_ECDSA_P256_SHA256, false);
        for cut in 0..request.len() {
            let _ = DeviceCsr::parse_pem(&request[..cut], "csr");
        }
        let certificate = authority().certificate_pem().to_owned();
        // Every cut before the END line's last dash leaves an incomplete block.
        let complete = certificate.trim_end().len();
        for cut in 0..complete {
            assert!(
                CertificateInfo::parse_bundle(&certificate[..cut]).is_err(),
                "{:?}",
                &certificate[cut.saturating_sub(30)..cut]
            );
        }
        assert!(CertificateInfo::parse_bundle(&certificate[..complete]).is_ok());
        let mislabelled = certificate.replace("END CERTIFICATE", "END PRIVATE KEY");
        assert!(CertificateInfo::parse_bundle(&mislabelled).is_err());
    }
}

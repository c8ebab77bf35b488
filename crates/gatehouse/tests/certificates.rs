//! Trusted certificates (C33–C36), the HTTPS listener with client certificates, certificate
//! login in the Connectware dialect (`grantTypes[].isRequired` included), and the robustness of
//! the PEM and CSR parsers against random and damaged input.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{assert_error, TestApp};
use gatehouse::config::Settings;
use gatehouse_core::ratelimit::RateLimit;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    list_starts_with_the_builtin_ca,
    listed_fields_match_the_added_certificate,
    basic_constraints_are_null_when_absent,
    add_accepts_json_strings_and_plain_pem,
    add_skips_trusted_certificates_and_the_builtin_ca,
    add_rejects_unreadable_bundles_and_stores_nothing,
    add_limits_a_bundle_to_100_certificates,
    add_refuses_other_media_types,
    add_refuses_bodies_over_the_limit,
    content_answers_the_pem_of_a_certificate,
    content_needs_a_known_id,
    delete_removes_an_added_certificate,
    delete_refuses_the_builtin_ca_and_unknown_ids,
    certificate_endpoints_require_a_token,
    certificate_endpoints_require_permission,
    registered_device_authenticates_with_its_certificate,
    untrusted_client_certificate_fails_the_handshake,
    added_ca_is_trusted_until_removed,
    certificate_login_needs_the_grant_and_a_known_user,
    bound_fingerprint_excludes_other_certificates,
    required_certificate_is_enforced_at_login,
    required_password_is_not_replaced_by_a_certificate,
    add_survives_random_and_damaged_pem,
    add_refuses_every_truncation_of_a_certificate,
    register_survives_random_and_damaged_csrs,
    near_limit_bodies_are_refused_cleanly,
);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Longest time any single answer may take in the robustness loops.
const PROMPT: Duration = Duration::from_secs(5);

/// Permissions of test users: read their own session.
fn session_permission() -> Value {
    json!([{"resource": "/api/session", "operation": "read", "context": "http"}])
}

/// A certificate made by the test: PEM (LF line ends), DER and its private key (PKCS#8 PEM).
#[derive(Clone)]
struct Credential {
    pem: String,
    der: Vec<u8>,
    key_pem: String,
}

impl Credential {
    fn identity(&self) -> (&str, &str) {
        (&self.pem, &self.key_pem)
    }

    /// Lower-case hex SHA-256 fingerprint (computed by openssl).
    fn sha256(&self) -> String {
        openssl_fingerprint(&self.pem, "sha256")
    }
}

/// A certificate authority made by the test.
struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    certificate: Credential,
}

impl TestCa {
    fn new(common_name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(1));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2045, 1, 1);
        let certificate = params.self_signed(&key).expect("self-signed CA");
        let der = certificate.der().to_vec();
        let certificate = Credential {
            pem: pem_of(&der),
            der,
            key_pem: key.serialize_pem(),
        };
        Self {
            params,
            key,
            certificate,
        }
    }

    /// A client certificate `CN=<common_name>` signed by this CA.
    fn issue(&self, common_name: &str) -> Credential {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let params = leaf_params(common_name);
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let certificate = params.signed_by(&key, &issuer).expect("signed leaf");
        let der = certificate.der().to_vec();
        Credential {
            pem: pem_of(&der),
            der,
            key_pem: key.serialize_pem(),
        }
    }
}

/// Parameters of a client certificate named `common_name`.
fn leaf_params(common_name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2021, 1, 1);
    params.not_after = rcgen::date_time_ymd(2040, 1, 1);
    params
}

/// A self-signed client certificate named `common_name` (trusted by nobody).
fn self_signed_leaf(common_name: &str) -> Credential {
    let key = rcgen::KeyPair::generate().expect("key");
    let certificate = leaf_params(common_name)
        .self_signed(&key)
        .expect("self-signed");
    let der = certificate.der().to_vec();
    Credential {
        pem: pem_of(&der),
        der,
        key_pem: key.serialize_pem(),
    }
}

/// PEM armour of a DER certificate, 64 characters a line, LF line ends.
fn pem_of(der: &[u8]) -> String {
    armour("CERTIFICATE", der)
}

fn armour(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// The DER contents of every `label` block of a PEM text (read by the test, not the server).
fn pem_blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line == begin {
            current = Some(String::new());
        } else if line == end {
            let body = current
                .take()
                .unwrap_or_else(|| panic!("END without BEGIN"));
            blocks.push(
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .expect("PEM body is base64"),
            );
        } else if let Some(body) = current.as_mut() {
            body.push_str(line);
        }
    }
    assert!(current.is_none(), "unterminated PEM block in {text}");
    blocks
}

/// A fingerprint computed by `openssl x509 -fingerprint`, lower-case hex without colons.
fn openssl_fingerprint(pem: &str, digest: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", &format!("-{digest}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pem.as_bytes())
        .expect("write to openssl");
    let output = child.wait_with_output().expect("openssl output");
    assert!(
        output.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    text.trim()
        .split_once('=')
        .unwrap_or_else(|| panic!("openssl output {text}"))
        .1
        .replace(':', "")
        .to_ascii_lowercase()
}

/// Stops `app` and starts a fresh one on the same engine with `adjust`ed settings.
async fn restart(app: TestApp, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let engine = app.engine;
    app.stop().await;
    TestApp::spawn_with(engine, adjust, None).await
}

/// C33 as admin; panics unless 200 with an array.
async fn list(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/api/certificates", &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "GET /api/certificates: {body}");
    body.as_array()
        .unwrap_or_else(|| panic!("not an array: {body}"))
        .clone()
}

/// The ids of C33, in order.
async fn listed_ids(app: &TestApp) -> Vec<String> {
    list(app)
        .await
        .iter()
        .map(|entry| entry["id"].as_str().expect("id").to_owned())
        .collect()
}

/// C34 with raw bytes and a content type, as admin.
async fn add_raw(app: &TestApp, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
    app.send_raw(
        Method::POST,
        "/api/certificates",
        &app.admin_token,
        content_type,
        body,
    )
    .await
}

/// C34 with a JSON string, as admin.
async fn add_json(app: &TestApp, pem: &str) -> (StatusCode, Value) {
    add_raw(
        app,
        "application/json",
        serde_json::to_vec(&json!(pem)).expect("JSON"),
    )
    .await
}

/// C34 with a JSON string; panics unless 200; returns the added ids.
async fn add_ok(app: &TestApp, pem: &str) -> Vec<String> {
    let (status, body) = add_json(app, pem).await;
    assert_eq!(status, StatusCode::OK, "POST /api/certificates: {body}");
    ids_of(&body)
}

fn ids_of(body: &Value) -> Vec<String> {
    body.as_array()
        .unwrap_or_else(|| panic!("not an array: {body}"))
        .iter()
        .map(|entry| entry["id"].as_str().expect("id").to_owned())
        .collect()
}

fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}

fn strings(value: &Value) -> Vec<String> {
    sorted(
        value
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {value}"))
            .iter()
            .map(|item| item.as_str().expect("string").to_owned())
            .collect(),
    )
}

fn names(list: &[&str]) -> Vec<String> {
    sorted(list.iter().map(|name| (*name).to_owned()).collect())
}

/// Sends a request over the HTTPS listener with a fresh client (so a fresh handshake),
/// presenting `identity` when given; `Err` when TLS or the connection fails.
async fn tls_send(
    app: &TestApp,
    identity: Option<&Credential>,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let client = app.https_client(identity.map(Credential::identity));
    let mut request = client
        .request(method, app.tls_url(path))
        .timeout(Duration::from_secs(20));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, value))
}

/// `GET path` over HTTPS with a certificate and no token; panics if TLS fails.
async fn tls_get(app: &TestApp, identity: Option<&Credential>, path: &str) -> (StatusCode, Value) {
    tls_send(app, identity, Method::GET, path, None, None)
        .await
        .unwrap_or_else(|error| panic!("HTTPS GET {path} failed: {error:?}"))
}

/// `POST /api/login` over HTTPS, presenting `identity`; panics if TLS fails.
async fn tls_login(
    app: &TestApp,
    identity: Option<&Credential>,
    username: &str,
    password: &str,
) -> (StatusCode, Value) {
    tls_send(
        app,
        identity,
        Method::POST,
        "/api/login",
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await
    .unwrap_or_else(|error| panic!("HTTPS login failed: {error:?}"))
}

/// Asserts that a request presenting `identity` is refused during the TLS handshake.
async fn assert_refused_at_tls(app: &TestApp, identity: &Credential, what: &str) {
    let outcome = tls_send(app, Some(identity), Method::GET, "/api/session", None, None).await;
    assert!(
        outcome.is_err(),
        "{what}: expected a TLS failure, got {outcome:?}"
    );
}

/// Opens the client registry for a minute.
async fn open_registry(app: &TestApp) {
    let (status, body) = app
        .post(
            "/api/client-registry/open",
            &app.admin_token,
            json!({"duration": 60000}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "open registry: {body}");
}

/// `POST /api/client-registry/register` without a token.
async fn register(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.request(
        Method::POST,
        "/api/client-registry/register",
        None,
        Some(body),
    )
    .await
}

/// C29 with any bytes as a JSON body (no token).
async fn register_raw(app: &TestApp, body: Vec<u8>) -> (StatusCode, Value) {
    app.send_raw(
        Method::POST,
        "/api/client-registry/register",
        "",
        "application/json",
        body,
    )
    .await
}

/// A CSR `CN=<name>` and its key (PKCS#8 PEM).
fn csr_for(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let csr = params
        .serialize_request(&key)
        .expect("CSR")
        .pem()
        .expect("CSR PEM");
    (csr, key.serialize_pem())
}

/// Gets a certificate for a new user `name` through the client registry: register a CSR (with
/// `password` when given), confirm with `grant_types` (default when `None`) and read-session
/// permission, collect the certificate. Returns (user id, credential).
async fn register_device(
    app: &TestApp,
    name: &str,
    password: Option<&str>,
    grant_types: Option<Value>,
) -> (String, Credential) {
    open_registry(app).await;
    let (csr, key_pem) = csr_for(name);
    let mut request = json!({
        "username": name,
        "csr": base64::engine::general_purpose::STANDARD.encode(csr.as_bytes()),
    });
    if let Some(password) = password {
        request["password"] = json!(password);
    }
    let (status, body) = register(app, request.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "register {name}: {body}");
    let mut confirm = json!({"username": name, "initialPermissions": session_permission()});
    if let Some(grant_types) = grant_types {
        confirm["grantTypes"] = grant_types;
    }
    let (status, user) = app
        .post("/api/client-registry/confirm", &app.admin_token, confirm)
        .await;
    assert_eq!(status, StatusCode::OK, "confirm {name}: {user}");
    let (status, body) = register(app, request).await;
    assert_eq!(status, StatusCode::CREATED, "collect {name}: {body}");
    let encoded = body["certificate"]
        .as_str()
        .unwrap_or_else(|| panic!("no certificate in {body}"));
    let pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("certificate is base64"),
    )
    .expect("certificate PEM is UTF-8");
    let der = pem_blocks(&pem, "CERTIFICATE")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no certificate in {pem}"));
    let id = user["id"].as_str().expect("user id").to_owned();
    (
        id,
        Credential {
            pem: pem_of(&der),
            der,
            key_pem,
        },
    )
}

/// Creates a user through C1 with `grantTypes` and an optional password; returns its id.
async fn create_grant_user(
    app: &TestApp,
    name: &str,
    password: Option<&str>,
    grant_types: Value,
) -> String {
    let mut body = json!({
        "username": name,
        "grantTypes": grant_types,
        "initialPermissions": session_permission(),
    });
    if let Some(password) = password {
        body["password"] = json!(password);
    }
    let (status, user) = app.post("/api/users", &app.admin_token, body).await;
    assert_eq!(status, StatusCode::CREATED, "create {name}: {user}");
    user["id"].as_str().expect("user id").to_owned()
}

/// Asserts a 401 in the Connectware shape.
fn assert_unauthorized(status: StatusCode, body: &Value) {
    assert_error(status, body, StatusCode::UNAUTHORIZED);
}

/// Asserts that an answer came promptly, in the Connectware error shape, with a status in
/// `allowed`; otherwise records why in `failures`.
fn check_refusal(
    failures: &mut Vec<String>,
    case: &str,
    elapsed: Duration,
    status: StatusCode,
    body: &Value,
    allowed: &[StatusCode],
) {
    if elapsed > PROMPT {
        failures.push(format!("{case}: took {elapsed:?}"));
    }
    if !allowed.contains(&status) {
        failures.push(format!("{case}: status {status}, body {body}"));
        return;
    }
    let shaped = body["statusCode"] == json!(status.as_u16())
        && body["error"].is_string()
        && body["message"].is_string();
    if !shaped {
        failures.push(format!("{case}: not the Connectware error shape: {body}"));
    }
}

fn assert_no_failures(failures: &[String], what: &str) {
    assert!(
        failures.is_empty(),
        "{what}: {} failing case(s), first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `GET /healthz` answers 200 and the admin token still works.
async fn assert_healthy(app: &TestApp) {
    let response = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.get("/api/session", &app.admin_token).await.0,
        StatusCode::OK
    );
}

/// Damaged versions of a certificate's PEM whose base64 is wrong: an invalid character,
/// a character removed, padding in the middle.
fn wrong_base64_variants(rng: &mut StdRng, der: &[u8], count: usize) -> Vec<String> {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut variants = Vec::new();
    for index in 0..count {
        let mut chars: Vec<char> = body.chars().collect();
        let at = rng.gen_range(0..chars.len());
        match index % 4 {
            0 => {
                let bad = ['!', '*', '~', '%', '$', '&', '?', '#', 'é', '.'];
                chars.insert(at, bad[rng.gen_range(0..bad.len())]);
            }
            1 => {
                chars.remove(at);
            }
            2 => {
                // `=` inside the text (and never at the very end, where padding may be legal).
                let at = at.min(chars.len() - 8);
                chars.insert(at, '=');
            }
            _ => {
                let bad = ['!', '@', '^', '_', '-', '\\', '"', '<'];
                chars[at] = bad[rng.gen_range(0..bad.len())];
            }
        }
        let text: String = chars.into_iter().collect();
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in text.chars().collect::<Vec<_>>().chunks(64) {
            pem.push_str(&line.iter().collect::<String>());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        variants.push(pem);
    }
    variants
}

/// Random text: printable ASCII, PEM-like fragments and arbitrary Unicode.
fn random_text(rng: &mut StdRng) -> String {
    let length = rng.gen_range(0..1200);
    let fragments = [
        "-----BEGIN CERTIFICATE-----\n",
        "-----END CERTIFICATE-----\n",
        "-----BEGIN ",
        "-----END ",
        "MIIB",
        "====",
        "\n",
        "\r\n",
    ];
    let mut text = String::new();
    while text.len() < length {
        match rng.gen_range(0..10) {
            0 => text.push_str(fragments[rng.gen_range(0..fragments.len())]),
            1 => text.push(char::from_u32(rng.gen_range(0x80..0xD7FF)).unwrap_or('x')),
            _ => text.push(char::from(rng.gen_range(0x20u8..0x7f))),
        }
    }
    text
}

/// Armour around base64 of random bytes (decodes, but is no certificate).
fn armoured_random(rng: &mut StdRng) -> String {
    let mut bytes = vec![0u8; rng.gen_range(0..700)];
    rng.fill(&mut bytes[..]);
    if rng.gen_bool(0.5) && !bytes.is_empty() {
        // A DER SEQUENCE header in front, so that the parser goes further.
        bytes[0] = 0x30;
    }
    pem_of(&bytes)
}

// ---------------------------------------------------------------------------------------------
// C33 GET /api/certificates
// ---------------------------------------------------------------------------------------------

/// The built-in CA is listed first, not removable, with fingerprints matching `ca.crt`.
async fn list_starts_with_the_builtin_ca(app: TestApp) {
    let ca_pem = app.ca_pem();
    let sha256 = openssl_fingerprint(&ca_pem, "sha256");
    let sha1 = openssl_fingerprint(&ca_pem, "sha1");
    let entries = list(&app).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let ca = &entries[0];
    assert_eq!(ca["id"], json!(sha256), "{ca}");
    assert_eq!(ca["fingerprints"], json!({"sha1": sha1, "sha256": sha256}));
    assert_eq!(ca["removable"], json!(false));
    assert_eq!(ca["basicConstraints"]["isCA"], json!(true), "{ca}");
    assert!(
        strings(&ca["keyUsage"]).contains(&"keyCertSign".to_owned()),
        "{ca}"
    );
    assert!(ca["issuedTo"]["commonName"].is_string(), "{ca}");
    for field in ["commonName", "organization", "organizationalUnit"] {
        assert_eq!(
            ca["issuedBy"][field], ca["issuedTo"][field],
            "self-signed: {ca}"
        );
    }
    let issued_on = ca["issuedOn"].as_i64().expect("issuedOn ms");
    let expires_on = ca["expiresOn"].as_i64().expect("expiresOn ms");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(issued_on <= now && now < expires_on, "{ca}");
    assert!(issued_on > now - 86_400_000, "issuedOn is in ms: {ca}");

    // Still first after others are added.
    let added = self_signed_leaf("another-issuer");
    add_ok(&app, &added.pem).await;
    let entries = list(&app).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["id"], json!(sha256));
    assert_eq!(entries[0]["removable"], json!(false));
    assert_eq!(entries[1]["id"], json!(added.sha256()));
    assert_eq!(entries[1]["removable"], json!(true));
}

/// Every listed field equals what the added rcgen certificate holds.
async fn listed_fields_match_the_added_certificate(app: TestApp) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["device.example".to_owned(), "192.0.2.7".to_owned()])
            .expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Device Test CA");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Example Org");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationalUnitName, "Test Unit");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(1));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 2);
    params.not_after = rcgen::date_time_ymd(2034, 5, 6);
    let certificate = params.self_signed(&key).expect("certificate");
    let pem = certificate.pem();
    let sha256 = openssl_fingerprint(&pem, "sha256");
    let sha1 = openssl_fingerprint(&pem, "sha1");

    let (status, added) = add_json(&app, &pem).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let expected_name = json!({
        "commonName": "Device Test CA",
        "organization": "Example Org",
        "organizationalUnit": "Test Unit",
    });
    let check = |entry: &Value| {
        assert_eq!(entry["id"], json!(sha256), "{entry}");
        assert_eq!(
            entry["fingerprints"],
            json!({"sha1": sha1, "sha256": sha256})
        );
        assert_eq!(entry["issuedBy"], expected_name, "{entry}");
        assert_eq!(
            entry["issuedTo"]["commonName"], expected_name["commonName"],
            "{entry}"
        );
        assert_eq!(
            entry["issuedTo"]["organization"],
            expected_name["organization"]
        );
        assert_eq!(
            entry["issuedTo"]["organizationalUnit"],
            expected_name["organizationalUnit"]
        );
        assert_eq!(
            strings(&entry["issuedTo"]["alternativeNames"]),
            names(&["DNS:device.example", "IP:192.0.2.7"]),
            "{entry}"
        );
        assert_eq!(
            strings(&entry["keyUsage"]),
            names(&["digitalSignature", "keyCertSign", "cRLSign"]),
            "{entry}"
        );
        assert_eq!(
            strings(&entry["extendedKeyUsage"]),
            names(&["serverAuth", "clientAuth"]),
            "{entry}"
        );
        assert_eq!(
            entry["basicConstraints"],
            json!({"isCA": true, "pathLength": 1})
        );
        assert_eq!(
            entry["issuedOn"],
            json!(rcgen::date_time_ymd(2024, 1, 2).unix_timestamp() * 1000)
        );
        assert_eq!(
            entry["expiresOn"],
            json!(rcgen::date_time_ymd(2034, 5, 6).unix_timestamp() * 1000)
        );
        assert_eq!(entry["removable"], json!(true));
    };
    let added = added.as_array().expect("array");
    assert_eq!(added.len(), 1, "{added:?}");
    check(&added[0]);
    let entries = list(&app).await;
    assert_eq!(entries.len(), 2);
    check(&entries[1]);
}

/// `basicConstraints` is null without the extension and `{isCA:false}` with `cA = false`.
async fn basic_constraints_are_null_when_absent(app: TestApp) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut without = leaf_params("no-constraints");
    without.is_ca = rcgen::IsCa::NoCa;
    without.extended_key_usages = Vec::new();
    without.key_usages = Vec::new();
    let without = without.self_signed(&key).expect("certificate").pem();
    let mut explicit = leaf_params("explicit-no-ca");
    explicit.is_ca = rcgen::IsCa::ExplicitNoCa;
    let explicit = explicit.self_signed(&key).expect("certificate").pem();
    let without_id = openssl_fingerprint(&without, "sha256");
    let explicit_id = openssl_fingerprint(&explicit, "sha256");
    add_ok(&app, &format!("{without}{explicit}")).await;
    let entries = list(&app).await;
    let find = |id: &str| {
        entries
            .iter()
            .find(|entry| entry["id"] == json!(id))
            .unwrap_or_else(|| panic!("{id} not listed: {entries:?}"))
            .clone()
    };
    let entry = find(&without_id);
    assert!(entry["basicConstraints"].is_null(), "{entry}");
    assert_eq!(entry["keyUsage"], json!([]), "{entry}");
    assert_eq!(entry["extendedKeyUsage"], json!([]), "{entry}");
    assert_eq!(entry["issuedTo"]["alternativeNames"], json!([]), "{entry}");
    assert!(entry["issuedTo"]["organization"].is_null(), "{entry}");
    assert!(entry["issuedTo"]["organizationalUnit"].is_null(), "{entry}");
    let entry = find(&explicit_id);
    assert_eq!(
        entry["basicConstraints"],
        json!({"isCA": false, "pathLength": null})
    );
    assert_eq!(entry["extendedKeyUsage"], json!(["clientAuth"]), "{entry}");
}

// ---------------------------------------------------------------------------------------------
// C34 POST /api/certificates
// ---------------------------------------------------------------------------------------------

/// A JSON string bundle, `text/plain` and `application/x-pem-file` PEM are all added.
async fn add_accepts_json_strings_and_plain_pem(app: TestApp) {
    let first = self_signed_leaf("bundle-one");
    let second = self_signed_leaf("bundle-two");
    let bundle = format!("{}{}", first.pem, second.pem);
    let added = add_ok(&app, &bundle).await;
    assert_eq!(sorted(added), sorted(vec![first.sha256(), second.sha256()]));

    // CRLF line ends and text around the blocks (rcgen's own PEM uses CRLF).
    let third = self_signed_leaf("plain-three");
    let text = format!(
        "subject=CN = plain-three\r\n{}",
        third.pem.replace('\n', "\r\n")
    );
    let (status, body) = add_raw(&app, "text/plain; charset=utf-8", text.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids_of(&body), vec![third.sha256()]);

    let fourth = self_signed_leaf("pem-file-four");
    let (status, body) = add_raw(
        &app,
        "application/x-pem-file",
        fourth.pem.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids_of(&body), vec![fourth.sha256()]);

    let listed = listed_ids(&app).await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    for id in [
        first.sha256(),
        second.sha256(),
        third.sha256(),
        fourth.sha256(),
    ] {
        assert!(listed.contains(&id), "{id} missing from {listed:?}");
    }
}

/// Certificates already trusted, duplicates within a bundle and the built-in CA are skipped.
async fn add_skips_trusted_certificates_and_the_builtin_ca(app: TestApp) {
    let first = self_signed_leaf("skip-one");
    let second = self_signed_leaf("skip-two");
    let bundle = format!("{}{}", first.pem, second.pem);
    assert_eq!(add_ok(&app, &bundle).await.len(), 2);
    assert_eq!(add_ok(&app, &bundle).await, Vec::<String>::new());
    let (status, body) = add_raw(&app, "text/plain", bundle.clone().into_bytes()).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    assert_eq!(add_ok(&app, &app.ca_pem()).await, Vec::<String>::new());

    // One known and one new: only the new one; the same one twice in a bundle: once.
    let third = self_signed_leaf("skip-three");
    let added = add_ok(&app, &format!("{}{}{}", first.pem, third.pem, third.pem)).await;
    assert_eq!(added, vec![third.sha256()]);
    let listed = listed_ids(&app).await;
    assert_eq!(listed.len(), 4, "{listed:?}");
    let mut unique = listed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), listed.len(), "duplicates listed: {listed:?}");
}

/// Bad PEM, damaged blocks, key blocks, non-strings and empty input are 400; nothing is stored.
async fn add_rejects_unreadable_bundles_and_stores_nothing(app: TestApp) {
    let good = self_signed_leaf("never-stored");
    let key = rcgen::KeyPair::generate().expect("key").serialize_pem();
    let truncated = good.pem[..good.pem.len() / 2].to_owned();
    let garbage_block =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let csr = csr_for("not-a-certificate").0;
    let before = listed_ids(&app).await;
    let strings_cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("no certificate", "hello, world".to_owned()),
        ("truncated", truncated.clone()),
        ("not DER", garbage_block.to_owned()),
        ("private key", key.clone()),
        ("certificate then key", format!("{}{}", good.pem, key)),
        (
            "certificate then damaged",
            format!("{}{}", good.pem, truncated),
        ),
        (
            "certificate then not DER",
            format!("{}{}", good.pem, garbage_block),
        ),
        ("CSR", csr.clone()),
    ];
    for (case, text) in &strings_cases {
        let (status, body) = add_json(&app, text).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        let (status, body) = add_raw(&app, "text/plain", text.clone().into_bytes()).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(listed_ids(&app).await, before, "{case} stored something");
    }
    let json_cases = [
        json!(42),
        json!({"certificate": good.pem}),
        json!([good.pem]),
        json!(null),
        json!(true),
    ];
    for value in json_cases {
        let (status, body) = add_raw(
            &app,
            "application/json",
            serde_json::to_vec(&value).expect("JSON"),
        )
        .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    for raw in [&b"\"unterminated"[..], b"{", b"", b"\xff\xfe"] {
        let (status, body) = add_raw(&app, "application/json", raw.to_vec()).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    let (status, body) = add_raw(&app, "text/plain", vec![0xff, 0xfe, 0x00, 0x80]).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(listed_ids(&app).await, before);
}

/// A bundle of 101 certificates is refused whole; 100 are added.
async fn add_limits_a_bundle_to_100_certificates(app: TestApp) {
    let key = rcgen::KeyPair::generate().expect("key");
    let pems: Vec<String> = (0..101)
        .map(|index| {
            leaf_params(&format!("bulk-{index}"))
                .self_signed(&key)
                .expect("certificate")
                .pem()
        })
        .collect();
    let (status, body) = add_json(&app, &pems.concat()).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(listed_ids(&app).await.len(), 1);
    let added = add_ok(&app, &pems[..100].concat()).await;
    assert_eq!(added.len(), 100);
    assert_eq!(listed_ids(&app).await.len(), 101);
}

/// Media types other than JSON and PEM text are 415, also without a content type.
async fn add_refuses_other_media_types(app: TestApp) {
    let certificate = self_signed_leaf("wrong-media-type");
    for content_type in [
        "application/xml",
        "application/octet-stream",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
    ] {
        let (status, body) =
            add_raw(&app, content_type, certificate.pem.clone().into_bytes()).await;
        let message = assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(!message.is_empty(), "{content_type}");
    }
    let response = app
        .client
        .post(app.url("/api/certificates"))
        .bearer_auth(&app.admin_token)
        .body(certificate.pem.clone())
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(listed_ids(&app).await.len(), 1);
}

/// A body over `http.body_limit_bytes` is 413 in the Connectware shape; nothing is stored.
async fn add_refuses_bodies_over_the_limit(app: TestApp) {
    let app = restart(app, |settings| settings.http.body_limit_bytes = 4096).await;
    let certificate = self_signed_leaf("too-large");
    // A valid certificate followed by filler text (ignored between blocks) past the limit.
    let text = format!("{}{}", certificate.pem, "#".repeat(5000));
    let (status, body) = add_json(&app, &text).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body) = add_raw(&app, "text/plain", text.into_bytes()).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(listed_ids(&app).await.len(), 1);
    assert_healthy(&app).await;
}

// ---------------------------------------------------------------------------------------------
// C35 GET /api/certificates/content
// ---------------------------------------------------------------------------------------------

/// The PEM of an added certificate and of the CA parse back to the same DER.
async fn content_answers_the_pem_of_a_certificate(app: TestApp) {
    let certificate = self_signed_leaf("content-check");
    add_ok(&app, &certificate.pem).await;
    let ca_der = pem_blocks(&app.ca_pem(), "CERTIFICATE").remove(0);
    let ca_id = openssl_fingerprint(&app.ca_pem(), "sha256");
    for (id, der) in [(certificate.sha256(), &certificate.der), (ca_id, &ca_der)] {
        let response = app
            .client
            .get(app.url(&format!("/api/certificates/content?id={id}")))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("application/x-pem-file"),
            "{content_type}"
        );
        let text = response.text().await.expect("PEM text");
        let blocks = pem_blocks(&text, "CERTIFICATE");
        assert_eq!(blocks.len(), 1, "{text}");
        assert_eq!(&blocks[0], der, "{text}");
        assert_eq!(openssl_fingerprint(&text, "sha256"), id);
    }
}

/// A missing, empty or malformed id is 400 (`field: "id"`); an unknown id is 404; any case
/// of a known id is found.
async fn content_needs_a_known_id(app: TestApp) {
    for path in [
        "/api/certificates/content",
        "/api/certificates/content?id=",
        "/api/certificates/content?other=1",
    ] {
        let (status, body) = app.get(path, &app.admin_token).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    for id in [
        "not-a-fingerprint".to_owned(),
        "ab".repeat(31),
        "zz".repeat(32),
    ] {
        let (status, body) = app
            .get(
                &format!("/api/certificates/content?id={id}"),
                &app.admin_token,
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(body["field"], json!("id"), "{body}");
    }
    let (status, body) = app
        .get(
            &format!("/api/certificates/content?id={}", "ab".repeat(32)),
            &app.admin_token,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let ca_id = openssl_fingerprint(&app.ca_pem(), "sha256");
    let (status, body) = app
        .get(
            &format!(
                "/api/certificates/content?id={}",
                ca_id.to_ascii_uppercase()
            ),
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------------------------------------
// C36 DELETE /api/certificates/{id}
// ---------------------------------------------------------------------------------------------

/// An added certificate is removed (204) and is gone from list and content afterwards.
async fn delete_removes_an_added_certificate(app: TestApp) {
    let kept = self_signed_leaf("kept");
    let removed = self_signed_leaf("removed");
    add_ok(&app, &format!("{}{}", kept.pem, removed.pem)).await;
    let (status, body) = app
        .delete(
            &format!("/api/certificates/{}", removed.sha256()),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let listed = listed_ids(&app).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&kept.sha256()));
    assert!(!listed.contains(&removed.sha256()));
    let (status, body) = app
        .get(
            &format!("/api/certificates/content?id={}", removed.sha256()),
            &app.admin_token,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = app
        .delete(
            &format!("/api/certificates/{}", removed.sha256()),
            &app.admin_token,
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    // It can be added again.
    assert_eq!(add_ok(&app, &removed.pem).await, vec![removed.sha256()]);
}

/// The built-in CA cannot be removed (403, in any case of its id); unknown ids are 404,
/// malformed ones 400; an upper-case id removes an added certificate.
async fn delete_refuses_the_builtin_ca_and_unknown_ids(app: TestApp) {
    let ca_id = openssl_fingerprint(&app.ca_pem(), "sha256");
    for id in [ca_id.clone(), ca_id.to_ascii_uppercase()] {
        let (status, body) = app
            .delete(&format!("/api/certificates/{id}"), &app.admin_token, None)
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN);
    }
    let (status, body) = app
        .delete(
            &format!("/api/certificates/{}", "cd".repeat(32)),
            &app.admin_token,
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    for id in ["unknown".to_owned(), "cd".repeat(33), "gg".repeat(32)] {
        let (status, body) = app
            .delete(&format!("/api/certificates/{id}"), &app.admin_token, None)
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(body["field"], json!("id"), "{body}");
    }
    let entries = list(&app).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["id"], json!(ca_id));

    let added = self_signed_leaf("upper-case-delete");
    add_ok(&app, &added.pem).await;
    let (status, body) = app
        .delete(
            &format!("/api/certificates/{}", added.sha256().to_ascii_uppercase()),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(listed_ids(&app).await, vec![ca_id]);
}

// ---------------------------------------------------------------------------------------------
// Authentication and permission
// ---------------------------------------------------------------------------------------------

/// Every certificate endpoint answers 401 without a token, and nothing changes.
async fn certificate_endpoints_require_a_token(app: TestApp) {
    let certificate = self_signed_leaf("anonymous");
    let ca_id = openssl_fingerprint(&app.ca_pem(), "sha256");
    let requests = [
        (Method::GET, "/api/certificates".to_owned(), None),
        (
            Method::POST,
            "/api/certificates".to_owned(),
            Some(json!(certificate.pem)),
        ),
        (
            Method::GET,
            format!("/api/certificates/content?id={ca_id}"),
            None,
        ),
        (Method::DELETE, format!("/api/certificates/{ca_id}"), None),
    ];
    for (method, path, body) in requests {
        let (status, answer) = app.request(method.clone(), &path, None, body).await;
        assert_error(status, &answer, StatusCode::UNAUTHORIZED);
        let (status, answer) = app.request(method, &path, Some("not-a-token"), None).await;
        assert_error(status, &answer, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(listed_ids(&app).await, vec![ca_id]);
}

/// A user without the http permissions gets 403 on every certificate endpoint.
async fn certificate_endpoints_require_permission(app: TestApp) {
    let minimum = app.role_id("minimum-access").await;
    app.create_user("plain-user", "plain-password-1", &[&minimum])
        .await;
    let token = app.login("plain-user", "plain-password-1").await;
    let certificate = self_signed_leaf("forbidden");
    add_ok(&app, &certificate.pem).await;
    let before = listed_ids(&app).await;
    let id = certificate.sha256();
    let requests = [
        (Method::GET, "/api/certificates".to_owned(), None),
        (
            Method::POST,
            "/api/certificates".to_owned(),
            Some(json!(self_signed_leaf("other").pem)),
        ),
        (
            Method::GET,
            format!("/api/certificates/content?id={id}"),
            None,
        ),
        (Method::DELETE, format!("/api/certificates/{id}"), None),
    ];
    for (method, path, body) in requests {
        let (status, answer) = app.request(method, &path, Some(&token), body).await;
        assert_error(status, &answer, StatusCode::FORBIDDEN);
    }
    assert_eq!(listed_ids(&app).await, before);
}

// ---------------------------------------------------------------------------------------------
// HTTPS listener and certificate login
// ---------------------------------------------------------------------------------------------

/// A certificate from the client registry authenticates its user over HTTPS without a token.
async fn registered_device_authenticates_with_its_certificate(app: TestApp) {
    let app = app.with_tls(|s| s.tls.trust_refresh_secs = 0).await;
    let (user_id, device) = register_device(&app, "device-0001", None, None).await;

    // The issued certificate is bound to the new user and chains to the built-in CA.
    let (status, user) = app
        .get(&format!("/api/users/{user_id}"), &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(
        user["certificates"][0]["fingerprint"],
        json!(device.sha256()),
        "{user}"
    );

    let (status, session) = tls_get(&app, Some(&device), "/api/session").await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["username"], json!("device-0001"), "{session}");

    let (status, body) = tls_get(&app, Some(&device), "/api/certificates").await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = tls_get(&app, Some(&device), "/api/listUsers").await;
    assert_error(status, &body, StatusCode::FORBIDDEN);

    let (status, body) = tls_get(&app, None, "/api/session").await;
    assert_unauthorized(status, &body);

    // A token still works over HTTPS, with or without a certificate, and wins over it.
    let (status, session) = tls_send(
        &app,
        Some(&device),
        Method::GET,
        "/api/session",
        Some(&app.admin_token),
        None,
    )
    .await
    .expect("HTTPS");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(session["username"], json!("admin"), "{session}");
    let (status, _) = tls_send(
        &app,
        None,
        Method::GET,
        "/api/certificates",
        Some(&app.admin_token),
        None,
    )
    .await
    .expect("HTTPS");
    assert_eq!(status, StatusCode::OK);
}

/// A client certificate no trusted issuer signed fails the handshake; the server carries on.
async fn untrusted_client_certificate_fails_the_handshake(app: TestApp) {
    let app = app.with_tls(|s| s.tls.trust_refresh_secs = 0).await;
    let (_, device) = register_device(&app, "device-0002", None, None).await;
    let impostor = self_signed_leaf("device-0002");
    for _ in 0..3 {
        assert_refused_at_tls(&app, &impostor, "self-signed, same CN").await;
        let (status, session) = tls_get(&app, Some(&device), "/api/session").await;
        assert_eq!(status, StatusCode::OK, "{session}");
        assert_eq!(session["username"], json!("device-0002"));
    }
    // A certificate of another CA with the same name.
    let foreign = TestCa::new("Foreign CA").issue("device-0002");
    assert_refused_at_tls(&app, &foreign, "foreign CA").await;
    let (status, _) = tls_get(&app, Some(&device), "/api/session").await;
    assert_eq!(status, StatusCode::OK);
    assert_healthy(&app).await;
}

/// Certificates of a CA added through C34 are accepted until that CA is removed.
async fn added_ca_is_trusted_until_removed(app: TestApp) {
    let app = app.with_tls(|s| s.tls.trust_refresh_secs = 0).await;
    create_grant_user(
        &app,
        "sensor-ca-1",
        None,
        json!([{"method": "certificate", "isRequired": false}]),
    )
    .await;
    let ca = TestCa::new("Plant CA");
    let leaf = ca.issue("sensor-ca-1");
    assert_refused_at_tls(&app, &leaf, "before the CA is added").await;

    let added = add_ok(&app, &ca.certificate.pem).await;
    assert_eq!(added, vec![ca.certificate.sha256()]);
    let (status, session) = tls_get(&app, Some(&leaf), "/api/session").await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["username"], json!("sensor-ca-1"));

    let (status, body) = app
        .delete(
            &format!("/api/certificates/{}", ca.certificate.sha256()),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_refused_at_tls(&app, &leaf, "after the CA is removed").await;
    // The built-in CA's devices are not affected.
    let (_, device) = register_device(&app, "device-0003", None, None).await;
    let (status, _) = tls_get(&app, Some(&device), "/api/session").await;
    assert_eq!(status, StatusCode::OK);
}

/// A verified certificate is refused (401) when its CN names no user, or a user without the
/// certificate grant.
async fn certificate_login_needs_the_grant_and_a_known_user(app: TestApp) {
    let app = app.with_tls(|s| s.tls.trust_refresh_secs = 0).await;
    let ca = TestCa::new("Grant CA");
    add_ok(&app, &ca.certificate.pem).await;
    create_grant_user(
        &app,
        "password-only",
        Some("Password-only-1"),
        json!([{"method": "password", "isRequired": false}]),
    )
    .await;
    let (status, body) = tls_get(&app, Some(&ca.issue("password-only")), "/api/session").await;
    assert_unauthorized(status, &body);
    let (status, body) = tls_get(&app, Some(&ca.issue("nobody-here")), "/api/session").await;
    assert_unauthorized(status, &body);
    // The common name is matched exactly (case-sensitive usernames).
    create_grant_user(
        &app,
        "Sensor-Case",
        None,
        json!([{"method": "certificate", "isRequired": false}]),
    )
    .await;
    let (status, body) = tls_get(&app, Some(&ca.issue("sensor-case")), "/api/session").await;
    assert_unauthorized(status, &body);
    let (status, body) = tls_get(&app, Some(&ca.issue("Sensor-Case")), "/api/session").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The certificate grant alone gives no password login.
    let (status, body) = tls_login(&app, Some(&ca.issue("Sensor-Case")), "Sensor-Case", "x").await;
    assert_unauthorized(status, &body);
}

/// Once a fingerprint is bound to a user, other trusted certificates with its name are 401.
async fn bound_fingerprint_excludes_other_certificates(app: TestApp) {
    let app = app.with_tls(|s| s.tls.trust_refresh_secs = 0).await;
    let user_id = create_grant_user(
        &app,
        "bound-sensor",
        None,
        json!([{"method": "certificate", "isRequired": false}]),
    )
    .await;
    let ca = TestCa::new("Binding CA");
    add_ok(&app, &ca.certificate.pem).await;
    let first = ca.issue("bound-sensor");
    let second = ca.issue("bound-sensor");
    for credential in [&first, &second] {
        let (status, body) = tls_get(&app, Some(credential), "/api/session").await;
        assert_eq!(status, StatusCode::OK, "unbound user: {body}");
    }
    let (status, body) = app
        .post(
            &format!("/api/users/{user_id}/certificates"),
            &app.admin_token,
            json!({"fingerprint": first.sha256()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = tls_get(&app, Some(&second), "/api/session").await;
    assert_unauthorized(status, &body);
    let (status, body) = tls_get(&app, Some(&first), "/api/session").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], json!("bound-sensor"));

    // A registered device (its certificate bound at grant) refuses a same-name certificate too.
    let (_, device) = register_device(&app, "device-0004", None, None).await;
    let (status, body) = tls_get(&app, Some(&ca.issue("device-0004")), "/api/session").await;
    assert_unauthorized(status, &body);
    let (status, _) = tls_get(&app, Some(&device), "/api/session").await;
    assert_eq!(status, StatusCode::OK);
}

/// A user whose certificate is required cannot log in by password alone; with its certificate
/// on the HTTPS connection it can, and the certificate alone authenticates it.
async fn required_certificate_is_enforced_at_login(app: TestApp) {
    let app = app.with_tls(|s| s.tls.trust_refresh_secs = 0).await;
    let password = "Device-pass-1234!";
    let (_, device) = register_device(
        &app,
        "device-0005",
        Some(password),
        Some(json!([
            {"method": "password", "isRequired": false},
            {"method": "certificate", "isRequired": true}
        ])),
    )
    .await;
    let (status, body) = app.try_login("device-0005", password).await;
    assert_unauthorized(status, &body);
    let (status, body) = tls_login(&app, None, "device-0005", password).await;
    assert_unauthorized(status, &body);

    let (status, body) = tls_login(&app, Some(&device), "device-0005", password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {body}"));
    let (status, session) = app.get("/api/session", token).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["username"], json!("device-0005"));

    let (status, body) = tls_login(&app, Some(&device), "device-0005", "Wrong-pass-1234!").await;
    assert_unauthorized(status, &body);
    let (status, session) = tls_get(&app, Some(&device), "/api/session").await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["username"], json!("device-0005"));

    // Another user's certificate does not prove this user's certificate method.
    let (_, other) = register_device(&app, "device-0006", None, None).await;
    let (status, body) = tls_login(&app, Some(&other), "device-0005", password).await;
    assert_unauthorized(status, &body);
}

/// A user whose password is required is not authenticated by its certificate alone, but logs
/// in with the password (over HTTPS with its certificate, or over HTTP); both required: both.
async fn required_password_is_not_replaced_by_a_certificate(app: TestApp) {
    let app = app.with_tls(|s| s.tls.trust_refresh_secs = 0).await;
    let ca = TestCa::new("Password CA");
    add_ok(&app, &ca.certificate.pem).await;
    let password = "Both-pass-12345!";
    let user_id = create_grant_user(
        &app,
        "pw-required",
        Some(password),
        json!([
            {"method": "password", "isRequired": true},
            {"method": "certificate", "isRequired": false}
        ]),
    )
    .await;
    let leaf = ca.issue("pw-required");
    let (status, body) = tls_get(&app, Some(&leaf), "/api/session").await;
    assert_unauthorized(status, &body);
    let (status, body) = tls_login(&app, Some(&leaf), "pw-required", password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string(), "{body}");
    let (status, body) = app.try_login("pw-required", password).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Both required: neither alone suffices.
    let (status, body) = app
        .put(
            &format!("/api/users/{user_id}"),
            &app.admin_token,
            json!({"grantTypes": [
                {"method": "password", "isRequired": true},
                {"method": "certificate", "isRequired": true}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.try_login("pw-required", password).await;
    assert_unauthorized(status, &body);
    let (status, body) = tls_get(&app, Some(&leaf), "/api/session").await;
    assert_unauthorized(status, &body);
    let (status, body) = tls_login(&app, Some(&leaf), "pw-required", password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    assert_eq!(app.get("/api/session", &token).await.0, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------------------------

/// Random bytes, random text, armoured random data and wrong base64 are 400, promptly, and
/// leave the trusted list unchanged.
async fn add_survives_random_and_damaged_pem(app: TestApp) {
    let mut rng = StdRng::seed_from_u64(0x00C3_4CE7);
    let certificate = self_signed_leaf("fuzz-target");
    let before = listed_ids(&app).await;
    let mut failures = Vec::new();
    let bad = [StatusCode::BAD_REQUEST];

    for case in 0..150 {
        let mut bytes = vec![0u8; rng.gen_range(0..1500)];
        rng.fill(&mut bytes[..]);
        let started = Instant::now();
        let (status, body) = add_raw(&app, "text/plain", bytes.clone()).await;
        check_refusal(
            &mut failures,
            &format!("random bytes #{case} as text"),
            started.elapsed(),
            status,
            &body,
            &bad,
        );
        let started = Instant::now();
        let (status, body) = add_raw(&app, "application/json", bytes.clone()).await;
        check_refusal(
            &mut failures,
            &format!("random bytes #{case} as JSON"),
            started.elapsed(),
            status,
            &body,
            &bad,
        );
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let started = Instant::now();
        let (status, body) = add_json(&app, &text).await;
        check_refusal(
            &mut failures,
            &format!("random string #{case}"),
            started.elapsed(),
            status,
            &body,
            &bad,
        );
    }
    for case in 0..150 {
        let text = random_text(&mut rng);
        let started = Instant::now();
        let (status, body) = add_json(&app, &text).await;
        check_refusal(
            &mut failures,
            &format!("random text #{case} {text:?}"),
            started.elapsed(),
            status,
            &body,
            &bad,
        );
        let armoured = armoured_random(&mut rng);
        let started = Instant::now();
        let (status, body) = add_raw(&app, "text/plain", armoured.clone().into_bytes()).await;
        check_refusal(
            &mut failures,
            &format!("armoured random #{case}"),
            started.elapsed(),
            status,
            &body,
            &bad,
        );
    }
    for (case, pem) in wrong_base64_variants(&mut rng, &certificate.der, 200)
        .into_iter()
        .enumerate()
    {
        let started = Instant::now();
        let (status, body) = if case % 2 == 0 {
            add_json(&app, &pem).await
        } else {
            add_raw(&app, "text/plain", pem.clone().into_bytes()).await
        };
        check_refusal(
            &mut failures,
            &format!("wrong base64 #{case}:\n{pem}"),
            started.elapsed(),
            status,
            &body,
            &bad,
        );
    }
    // DER damaged below valid base64: cut short, or with trailing bytes.
    for cut in (0..certificate.der.len()).step_by(3) {
        let pem = pem_of(&certificate.der[..cut]);
        let started = Instant::now();
        let (status, body) = add_json(&app, &pem).await;
        check_refusal(
            &mut failures,
            &format!("DER cut at {cut}"),
            started.elapsed(),
            status,
            &body,
            &bad,
        );
    }
    for extra in [&[0u8][..], &[0x30, 0x00], &[0xff; 17]] {
        let mut der = certificate.der.clone();
        der.extend_from_slice(extra);
        let started = Instant::now();
        let (status, body) = add_json(&app, &pem_of(&der)).await;
        check_refusal(
            &mut failures,
            &format!("DER with {} trailing bytes", extra.len()),
            started.elapsed(),
            status,
            &body,
            &bad,
        );
    }
    assert_no_failures(&failures, "POST /api/certificates");
    assert_eq!(listed_ids(&app).await, before, "the trusted list changed");
    assert_healthy(&app).await;
    // The server still adds a good certificate.
    assert_eq!(
        add_ok(&app, &certificate.pem).await,
        vec![certificate.sha256()]
    );
}

/// Every strict prefix of a certificate's PEM (shorter than its complete END line) is 400, as
/// a JSON string and as text/plain, and nothing is stored.
async fn add_refuses_every_truncation_of_a_certificate(app: TestApp) {
    let certificate = self_signed_leaf("truncation-target");
    let pem = certificate.pem.clone();
    let complete = pem.trim_end().len();
    let before = listed_ids(&app).await;
    let mut failures = Vec::new();
    for cut in 0..complete {
        let prefix = &pem[..cut];
        let started = Instant::now();
        let (status, body) = add_json(&app, prefix).await;
        let tail = &prefix[prefix.len().saturating_sub(30)..];
        check_refusal(
            &mut failures,
            &format!("JSON cut at {cut}/{complete} (…{tail:?})"),
            started.elapsed(),
            status,
            &body,
            &[StatusCode::BAD_REQUEST],
        );
        let started = Instant::now();
        let (status, body) = add_raw(&app, "text/plain", prefix.as_bytes().to_vec()).await;
        check_refusal(
            &mut failures,
            &format!("text cut at {cut}/{complete} (…{tail:?})"),
            started.elapsed(),
            status,
            &body,
            &[StatusCode::BAD_REQUEST],
        );
    }
    let stored = listed_ids(&app).await;
    assert_no_failures(&failures, "truncated PEM");
    assert_eq!(stored, before, "a truncated PEM was stored");
    // The complete text (with or without its final line break) is accepted.
    assert_eq!(
        add_ok(&app, &pem[..complete]).await,
        vec![certificate.sha256()]
    );
    assert_healthy(&app).await;
}

/// Random, truncated and damaged CSRs sent to the open registry are refused (4xx in the
/// Connectware shape, promptly); nothing is recorded and the registry keeps working.
async fn register_survives_random_and_damaged_csrs(app: TestApp) {
    let app = restart(app, |settings| {
        settings.registry.per_address = RateLimit {
            burst: 0,
            per_minute: 0,
        };
    })
    .await;
    open_registry(&app).await;
    let mut rng = StdRng::seed_from_u64(0xC5_2029);
    let name = "fuzz-device-01";
    let (csr, _) = csr_for(name);
    let certificate = self_signed_leaf(name);
    let allowed = [
        StatusCode::BAD_REQUEST,
        StatusCode::CONFLICT,
        StatusCode::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::UNPROCESSABLE_ENTITY,
        StatusCode::LOCKED,
    ];
    let trusted_before = listed_ids(&app).await;
    let mut failures = Vec::new();
    let mut cases: Vec<(String, String)> = Vec::new();
    for case in 0..100 {
        let mut bytes = vec![0u8; rng.gen_range(0..1200)];
        rng.fill(&mut bytes[..]);
        cases.push((
            format!("random bytes #{case} (lossy)"),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
        cases.push((
            format!("base64 of random bytes #{case}"),
            base64::engine::general_purpose::STANDARD.encode(&bytes),
        ));
        cases.push((format!("random text #{case}"), random_text(&mut rng)));
    }
    let cert_complete = certificate.pem.trim_end().len();
    for cut in 0..=cert_complete {
        cases.push((
            format!("certificate cut at {cut}"),
            certificate.pem[..cut].to_owned(),
        ));
    }
    let csr_complete = csr.trim_end().len();
    for cut in 0..csr_complete {
        let prefix = csr[..cut].to_owned();
        let tail = prefix[prefix.len().saturating_sub(30)..].to_owned();
        cases.push((
            format!("CSR cut at {cut}/{csr_complete} as base64 (…{tail:?})"),
            base64::engine::general_purpose::STANDARD.encode(prefix.as_bytes()),
        ));
        cases.push((
            format!("CSR cut at {cut}/{csr_complete} (…{tail:?})"),
            prefix,
        ));
    }
    let csr_der = pem_blocks(&csr, "CERTIFICATE REQUEST").remove(0);
    for (index, damaged) in wrong_base64_variants(&mut rng, &csr_der, 100)
        .into_iter()
        .enumerate()
    {
        cases.push((
            format!("CSR with wrong base64 #{index}"),
            damaged.replace("CERTIFICATE", "CERTIFICATE REQUEST"),
        ));
    }
    for cut in (0..csr_der.len()).step_by(5) {
        cases.push((
            format!("CSR DER cut at {cut}"),
            armour("CERTIFICATE REQUEST", &csr_der[..cut]),
        ));
    }
    for (case, csr_text) in &cases {
        let started = Instant::now();
        let (status, body) = register(&app, json!({"username": name, "csr": csr_text})).await;
        check_refusal(
            &mut failures,
            case,
            started.elapsed(),
            status,
            &body,
            &allowed,
        );
    }
    // Non-string CSRs and raw non-JSON bodies.
    for value in [json!(42), json!({"pem": csr}), json!([csr]), json!(true)] {
        let started = Instant::now();
        let (status, body) = register(&app, json!({"username": name, "csr": value})).await;
        check_refusal(
            &mut failures,
            &format!("csr {value}"),
            started.elapsed(),
            status,
            &body,
            &allowed,
        );
    }
    for _ in 0..50 {
        let mut bytes = vec![0u8; rng.gen_range(0..800)];
        rng.fill(&mut bytes[..]);
        let started = Instant::now();
        let (status, body) = register_raw(&app, bytes).await;
        check_refusal(
            &mut failures,
            "raw random body",
            started.elapsed(),
            status,
            &body,
            &allowed,
        );
    }
    let (status, recorded) = app.get("/api/client-registry", &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{recorded}");
    assert_no_failures(&failures, "POST /api/client-registry/register");
    assert_eq!(recorded, json!([]), "a damaged request was recorded");
    assert_eq!(listed_ids(&app).await, trusted_before);
    assert_healthy(&app).await;
    // The intact CSR is still recorded.
    let (status, body) = register(&app, json!({"username": name, "csr": csr})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// Inputs around `http.body_limit_bytes`: at or under the limit 400, over it 413, for C34 (JSON
/// and text) and for a CSR; the server stays healthy and stores nothing.
async fn near_limit_bodies_are_refused_cleanly(app: TestApp) {
    const LIMIT: usize = 8192;
    let app = restart(app, |settings| {
        settings.http.body_limit_bytes = LIMIT;
        settings.registry.per_address = RateLimit {
            burst: 0,
            per_minute: 0,
        };
    })
    .await;
    open_registry(&app).await;
    let mut rng = StdRng::seed_from_u64(0x0B0D_71E5);
    let before = listed_ids(&app).await;
    let mut failures = Vec::new();
    let expected = |size: usize| {
        if size > LIMIT {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        }
    };
    /// Text of exactly `size` bytes: an armoured block of valid base64 filler (random bytes,
    /// so not DER) or plain filler.
    fn filler(rng: &mut StdRng, size: usize, armoured: bool) -> String {
        let head = "-----BEGIN CERTIFICATE-----\n";
        let foot = "\n-----END CERTIFICATE-----\n";
        if !armoured || size < head.len() + foot.len() + 4 {
            return (0..size)
                .map(|_| char::from(rng.gen_range(b'A'..=b'Z')))
                .collect();
        }
        let room = size - head.len() - foot.len();
        let mut bytes = vec![0u8; room / 4 * 3];
        rng.fill(&mut bytes[..]);
        let body = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let pad = "\n".repeat(room - body.len());
        format!("{head}{body}{pad}{foot}")
    }
    for delta in -3i64..=3 {
        for armoured in [false, true] {
            let size = (LIMIT as i64 + delta) as usize;
            // text/plain: the body is the text.
            let text = filler(&mut rng, size, armoured);
            assert_eq!(text.len(), size);
            let started = Instant::now();
            let (status, body) = add_raw(&app, "text/plain", text.into_bytes()).await;
            check_refusal(
                &mut failures,
                &format!("text/plain of {size} bytes (armoured {armoured})"),
                started.elapsed(),
                status,
                &body,
                &[expected(size)],
            );
            // JSON: the quotes and escaped line breaks count.
            let mut inner = filler(&mut rng, size, armoured);
            let mut encoded = serde_json::to_vec(&json!(inner)).expect("JSON");
            while encoded.len() > size {
                inner.remove(0);
                encoded = serde_json::to_vec(&json!(inner)).expect("JSON");
            }
            let started = Instant::now();
            let length = encoded.len();
            let (status, body) = add_raw(&app, "application/json", encoded).await;
            check_refusal(
                &mut failures,
                &format!("JSON string of {length} bytes (armoured {armoured})"),
                started.elapsed(),
                status,
                &body,
                &[expected(length)],
            );
            // A CSR of the same size.
            let head = json!({"username": "near-limit-device", "csr": ""}).to_string();
            let room = size.saturating_sub(head.len());
            let csr = filler(&mut rng, room, false);
            let request = json!({"username": "near-limit-device", "csr": csr}).to_string();
            assert_eq!(request.len(), size);
            let started = Instant::now();
            let (status, body) = register_raw(&app, request.into()).await;
            check_refusal(
                &mut failures,
                &format!("register of {size} bytes"),
                started.elapsed(),
                status,
                &body,
                &[expected(size)],
            );
        }
    }
    assert_no_failures(&failures, "near-limit bodies");
    assert_eq!(listed_ids(&app).await, before);
    let (status, recorded) = app.get("/api/client-registry", &app.admin_token).await;
    assert_eq!((status, recorded), (StatusCode::OK, json!([])));
    assert_healthy(&app).await;
}

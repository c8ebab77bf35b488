//! The Connectware client registry (C29–C32) end to end over HTTP: opening the registration
//! window (held in the database, so shared by replicas, and closing after its duration), devices
//! registering with a password or a certificate signing request, polling their request, the
//! administrator's list and grant (the certificate signed by the built-in CA), the implicit flow
//! through the broker's CONNECT hook, and the limits and refusals around all of it.

mod common;

use std::sync::Arc;

use base64::Engine as _;
use common::replica::Replica;
use common::{assert_error, TestApp, ADMIN_PASSWORD};
use gatehouse_core::clock::ManualClock;
use gatehouse_core::ratelimit::RateLimit;
use rcgen::PublicKeyData as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    open_validates_its_body_and_needs_an_administrator,
    the_window_is_shared_by_replicas_and_closes_after_its_duration,
    a_password_request_is_pending_until_granted_then_logs_in,
    a_csr_request_collects_a_certificate_signed_by_the_ca,
    a_certificate_is_never_a_ca_and_each_has_its_own_serial,
    the_list_shows_requests_oldest_first_to_administrators_only,
    requests_for_a_taken_name_or_with_other_credentials_conflict,
    invalid_requests_are_refused_and_not_recorded,
    polls_work_after_the_window_closed_but_new_requests_do_not,
    pending_requests_are_capped,
    requests_are_limited_per_address,
    parallel_confirms_create_exactly_one_user,
    an_mqtt_connect_records_a_request_while_the_registry_is_open,
    deleting_a_granted_user_frees_its_username,
);

const REGISTER: &str = "/api/client-registry/register";
const LIST: &str = "/api/client-registry";
const OPEN: &str = "/api/client-registry/open";
const CONFIRM: &str = "/api/client-registry/confirm";
const BROKER_USER: &str = "/api/broker/http/user";

/// The manual clock's start (`on_manual_clock`), as the wire writes it.
const CLOCK_START: &str = "2030-03-17T17:46:40.000Z";
/// A day in seconds.
const DAY_SECS: i64 = 86_400;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// `POST /api/client-registry/register` (no token).
async fn register(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.request(Method::POST, REGISTER, None, Some(body)).await
}

/// A password request.
fn password_request(username: &str, password: &str) -> Value {
    json!({"username": username, "password": password})
}

/// A CSR request (the CSR as base64 of its PEM, the seed's form).
fn csr_request(username: &str, csr_pem: &str) -> Value {
    json!({"username": username, "csr": b64(csr_pem)})
}

/// Opens the registry for `millis` as admin.
async fn open(app: &TestApp, millis: u64) {
    let (status, body) = app
        .post(OPEN, &app.admin_token, json!({"duration": millis}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null, "204 has no body");
}

/// `POST /api/client-registry/confirm` as admin.
async fn confirm(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.post(CONFIRM, &app.admin_token, body).await
}

/// Confirms `username` with defaults; returns the new user.
async fn grant(app: &TestApp, username: &str) -> Value {
    let (status, user) = confirm(app, json!({"username": username})).await;
    assert_eq!(status, StatusCode::OK, "confirm {username}: {user}");
    user
}

/// The registry's list, as admin.
async fn registrations(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get(LIST, &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .unwrap_or_else(|| panic!("not an array: {body}"))
        .clone()
}

/// The usernames in the registry's list, in its order.
async fn listed_names(app: &TestApp) -> Vec<String> {
    registrations(app)
        .await
        .iter()
        .map(|entry| entry["username"].as_str().expect("username").to_owned())
        .collect()
}

/// Whether a fresh request is accepted now (202) or refused as closed (423).
async fn accepts_new_requests(app: &TestApp) -> bool {
    let name = format!("probe-{}", uuid::Uuid::new_v4().simple());
    let (status, body) = register(app, password_request(&name, "probe-password")).await;
    match status {
        StatusCode::ACCEPTED => true,
        StatusCode::LOCKED => {
            assert_error(status, &body, StatusCode::LOCKED);
            false
        }
        other => panic!("unexpected answer {other}: {body}"),
    }
}

/// The users named `username` (`GET /api/listUsers`).
async fn users_named(app: &TestApp, username: &str) -> Vec<Value> {
    let (status, page) = app
        .get(
            &format!("/api/listUsers?usernames={username}"),
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["users"].as_array().expect("users").clone()
}

/// A user holding only `minimum-access` (no right to the registry); returns its token.
async fn plain_user_token(app: &TestApp) -> String {
    let minimum = app.role_id("minimum-access").await;
    app.create_user("plain-user", "plain-password", &[&minimum])
        .await;
    app.login("plain-user", "plain-password").await
}

/// Restarts `app` on a manual clock with a per-address budget large enough for many calls.
async fn restart_unlimited(
    app: TestApp,
    adjust: impl FnOnce(&mut gatehouse::config::Settings),
) -> (TestApp, Arc<ManualClock>) {
    app.on_manual_clock(|settings| {
        settings.registry.per_address = RateLimit {
            burst: 0,
            per_minute: 0,
        };
        adjust(settings);
    })
    .await
}

/// Base64 (standard, one line).
fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

/// Base64 broken into lines of 64 characters, as `base64` tools write it.
fn b64_lines(text: &str) -> String {
    let one_line = b64(text);
    one_line
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("ASCII"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A fresh key of `algorithm`.
fn key(algorithm: &'static rcgen::SignatureAlgorithm) -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(algorithm).expect("key pair")
}

/// A CSR (PEM) for `CN=common_name` signed by `key`; asking to be a CA when `ca`.
fn csr_with(key: &rcgen::KeyPair, common_name: &str, ca: bool) -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params
        .serialize_request(key)
        .expect("CSR")
        .pem()
        .expect("CSR PEM")
}

/// A CSR (PEM) for `CN=common_name` with a fresh P-256 key.
fn csr(common_name: &str) -> String {
    csr_with(&key(&rcgen::PKCS_ECDSA_P256_SHA256), common_name, false)
}

/// A CSR (PEM) made by the `openssl` CLI with a fresh RSA key of `bits`.
fn openssl_rsa_csr(common_name: &str, bits: u32) -> String {
    let output = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            &format!("rsa:{bits}"),
            "-nodes",
            "-keyout",
            "/dev/null",
            "-subj",
            &format!("/CN={common_name}"),
        ])
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("PEM text")
}

/// The DER inside a PEM text.
fn der_of(pem: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
    pem.contents
}

/// A PEM text of `der` under `label`.
fn pem_of(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Lower-case hex SHA-256 of `bytes` (rustls' ring provider, independent of the server).
fn sha256_hex(bytes: &[u8]) -> String {
    let rustls::SupportedCipherSuite::Tls13(suite) =
        rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
    else {
        unreachable!("a TLS 1.3 suite");
    };
    suite
        .common
        .hash_provider
        .hash(bytes)
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The certificate (PEM) of a 201 answer: base64 of the PEM text.
fn certificate_of(answer: &Value) -> String {
    let encoded = answer["certificate"]
        .as_str()
        .unwrap_or_else(|| panic!("no certificate in {answer}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("certificate is base64");
    let pem = String::from_utf8(bytes).expect("certificate is PEM text");
    assert!(
        pem.trim_start().starts_with("-----BEGIN CERTIFICATE-----"),
        "{pem}"
    );
    pem
}

/// Polls a request that must have been granted; returns the answer.
async fn collect(app: &TestApp, request: Value) -> Value {
    let (status, answer) = register(app, request).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer
}

/// `(resource, operation, context)` of every permission in a list, sorted.
fn triples(permissions: &Value) -> Vec<(String, String, String)> {
    let mut list: Vec<(String, String, String)> = permissions
        .as_array()
        .unwrap_or_else(|| panic!("not a permission list: {permissions}"))
        .iter()
        .map(|p| {
            (
                p["resource"].as_str().expect("resource").to_owned(),
                p["operation"].as_str().expect("operation").to_owned(),
                p["context"].as_str().expect("context").to_owned(),
            )
        })
        .collect();
    list.sort();
    list
}

/// The broker's CONNECT check (mosquitto-go-auth user hook): true when allowed.
async fn mqtt_connect(app: &TestApp, username: &str, password: &str) -> bool {
    let body = json!({"username": username, "password": password, "clientid": "c1"});
    let answer = app
        .tb_send(
            Method::POST,
            BROKER_USER,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&body).expect("JSON")),
        )
        .await;
    let reply = answer.json();
    match answer.status {
        StatusCode::OK => {
            assert_eq!(reply, json!({"ok": true}), "allow answer");
            true
        }
        StatusCode::FORBIDDEN => {
            assert_eq!(reply["ok"], false, "deny answer: {reply}");
            false
        }
        other => panic!("unexpected hook answer {other}: {}", answer.text),
    }
}

// ---------------------------------------------------------------------------------------------
// C31: the window.

/// `open` answers 204 for a duration, `{}` or no body (30 s), and 0 (closes); it refuses
/// durations over a day, bodies that are not a JSON object and ill-typed durations (400,
/// leaving the registry closed), callers without a token (401) or without the right (403).
async fn open_validates_its_body_and_needs_an_administrator(app: TestApp) {
    let (mut app, clock) = restart_unlimited(app, |_| {}).await;
    assert!(!accepts_new_requests(&app).await, "closed at first");

    let (status, body) = app
        .request(Method::POST, OPEN, None, Some(json!({"duration": 1000})))
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    let plain = plain_user_token(&app).await;
    let (status, body) = app.post(OPEN, &plain, json!({"duration": 1000})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);

    let (status, body) = app
        .post(OPEN, &app.admin_token, json!({"duration": 86_400_001}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "duration", "{body}");
    for bad in [
        json!([]),
        json!("30000"),
        json!(30000),
        json!(true),
        json!({"duration": -1}),
        json!({"duration": "30000"}),
        json!({"duration": 1.5}),
    ] {
        let (status, body) = app.post(OPEN, &app.admin_token, bad.clone()).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    let (status, body) = app
        .send_raw(
            Method::POST,
            OPEN,
            &app.admin_token,
            "application/json",
            b"{\"duration\": ".to_vec(),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert!(
        !accepts_new_requests(&app).await,
        "refused calls open nothing"
    );

    // The longest window: a day.
    open(&app, 86_400_000).await;
    clock.advance(86_399_999);
    assert!(accepts_new_requests(&app).await);
    clock.advance(1);
    assert!(!accepts_new_requests(&app).await, "closed after a day");
    // A day later the admin's token has expired.
    app.admin_token = app.login("admin", ADMIN_PASSWORD).await;

    // No body at all, and an empty object: 30 seconds.
    let response = app
        .client
        .post(app.url(OPEN))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.text().await.expect("body"), "");
    clock.advance(29_999);
    assert!(accepts_new_requests(&app).await);
    clock.advance(1);
    assert!(!accepts_new_requests(&app).await, "closed after 30 s");

    let (status, body) = app.post(OPEN, &app.admin_token, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    clock.advance(29_999);
    assert!(accepts_new_requests(&app).await);
    clock.advance(1);
    assert!(!accepts_new_requests(&app).await, "closed after 30 s");

    // 0 closes a window at once.
    open(&app, 60_000).await;
    assert!(accepts_new_requests(&app).await);
    open(&app, 0).await;
    assert!(!accepts_new_requests(&app).await, "0 closes");
}

/// The window lives in the database: opened on one replica it is open on another (same
/// database, same data directory), and it closes on both after its duration; either replica
/// may open it.
async fn the_window_is_shared_by_replicas_and_closes_after_its_duration(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let replica = Replica::start(&app, clock.clone()).await;

    let (status, body) = replica
        .post(
            &app,
            REGISTER,
            false,
            password_request("device-a", "device-pass-a"),
        )
        .await;
    assert_error(status, &body, StatusCode::LOCKED);

    open(&app, 60_000).await;
    let (status, body) = replica
        .post(
            &app,
            REGISTER,
            false,
            password_request("device-a", "device-pass-a"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "open on the other replica: {body}"
    );
    assert_eq!(body, json!({}));
    clock.advance(59_999);
    let (status, body) = register(&app, password_request("device-b", "device-pass-b")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    clock.advance(1);
    let (status, body) = replica
        .post(
            &app,
            REGISTER,
            false,
            password_request("device-c", "device-pass-c"),
        )
        .await;
    assert_error(status, &body, StatusCode::LOCKED);
    let (status, body) = register(&app, password_request("device-c", "device-pass-c")).await;
    assert_error(status, &body, StatusCode::LOCKED);

    // Opened (with the default duration) on the second replica, open on the first.
    let (status, body) = replica.post(&app, OPEN, true, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = register(&app, password_request("device-c", "device-pass-c")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Closed on the second replica, closed on the first.
    let (status, body) = replica.post(&app, OPEN, true, json!({"duration": 0})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = register(&app, password_request("device-d", "device-pass-d")).await;
    assert_error(status, &body, StatusCode::LOCKED);

    assert_eq!(
        listed_names(&app).await,
        ["device-a", "device-b", "device-c"],
        "requests of both replicas in one list"
    );
    replica.stop().await;
}

// ---------------------------------------------------------------------------------------------
// C29 and C32: requests and grants.

/// A password request answers 202 `{}` (also when sent again) until the administrator grants
/// it; the grant answers the new Connectware user (auto-generated, password grant type, the
/// given prefix, roles and own role with the initial permissions); then the device's request
/// answers 201 `{}`, the device logs in with its password, and a second grant is 404.
async fn a_password_request_is_pending_until_granted_then_logs_in(app: TestApp) {
    open(&app, 60_000).await;
    let request = password_request("device-1", "device-pass-1");
    for _ in 0..2 {
        let (status, body) = register(&app, request.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body, json!({}));
    }
    let (status, body) = app.try_login("device-1", "device-pass-1").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);

    let minimum = app.role_id("minimum-access").await;
    let permissions = json!([
        {"resource": "plant/dev1/#", "operation": "write", "context": "mqtt"},
        {"resource": "cmd/dev1", "operation": "read", "context": "mqtt"}
    ]);
    let (status, user) = confirm(
        &app,
        json!({
            "username": "device-1",
            "mqttPublishPrefix": "plant/dev1",
            "initialPermissions": permissions,
            "roles": [minimum]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert!(
        uuid::Uuid::parse_str(user["id"].as_str().expect("id")).is_ok(),
        "{user}"
    );
    assert_eq!(user["username"], "device-1");
    assert_eq!(user["autoGenerated"], true);
    assert_eq!(user["mqttPublishPrefix"], "plant/dev1");
    assert_eq!(
        user["grantTypes"],
        json!([{"method": "password", "isRequired": false}])
    );
    assert_eq!(user["certificates"], json!([]));
    let roles = user["roles"].as_array().expect("roles");
    assert!(
        roles.iter().any(|role| role["id"] == minimum.as_str()),
        "{user}"
    );
    let own = roles
        .iter()
        .find(|role| role["name"] == "device-1")
        .unwrap_or_else(|| panic!("own role: {user}"));
    assert_eq!(triples(&own["permissions"]), triples(&permissions));
    assert_eq!(users_named(&app, "device-1").await.len(), 1);

    let answer = collect(&app, request.clone()).await;
    assert_eq!(answer, json!({}), "no certificate for a password request");
    app.login("device-1", "device-pass-1").await;
    let (status, body) = app.try_login("device-1", "wrong-password").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);

    let (status, body) = confirm(&app, json!({"username": "device-1"})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = confirm(&app, json!({"username": "never-asked"})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    // The granted request still conflicts with other credentials.
    let (status, body) = register(&app, password_request("device-1", "other-pass-1")).await;
    assert_error(status, &body, StatusCode::CONFLICT);
}

/// Checks a certificate the registry issued for `username` with `key` and returns its DER:
/// signed by the built-in CA, subject CN = username, the device's public key, not a CA,
/// `clientAuth`, valid for about 365 days from the server's now (`now_secs`).
fn check_device_certificate(
    app: &TestApp,
    pem: &str,
    username: &str,
    key: &rcgen::KeyPair,
    now_secs: i64,
) -> Vec<u8> {
    let der = der_of(pem);
    let (rest, certificate) =
        x509_parser::parse_x509_certificate(&der).expect("an X.509 certificate");
    assert!(rest.is_empty());
    let ca_der = der_of(&app.ca_pem());
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).expect("CA certificate");
    assert_eq!(
        certificate.issuer().as_raw(),
        ca.subject().as_raw(),
        "issued by the built-in CA"
    );
    certificate
        .verify_signature(Some(ca.public_key()))
        .expect("signed by the CA's key");
    let common_names: Vec<&str> = certificate
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().expect("CN text"))
        .collect();
    assert_eq!(common_names, [username]);
    assert_eq!(
        certificate.public_key().raw,
        key.subject_public_key_info().as_slice(),
        "the device's own key"
    );
    let constraints = certificate
        .basic_constraints()
        .expect("one basicConstraints")
        .expect("basicConstraints present");
    assert!(!constraints.value.ca, "never a CA");
    let usage = certificate
        .extended_key_usage()
        .expect("one extendedKeyUsage")
        .expect("extendedKeyUsage present");
    assert!(usage.value.client_auth, "clientAuth");
    let validity = certificate.validity();
    let (from, to) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    assert!(from <= now_secs && now_secs < to, "valid now: {from}..{to}");
    assert!(
        (364 * DAY_SECS..=366 * DAY_SECS).contains(&(to - from)),
        "about a year: {} s",
        to - from
    );
    der
}

/// A CSR request (P-256, base64 with line breaks; and Ed25519 as raw PEM with a password)
/// is granted with the certificate grant type (plus password when one was sent) and the
/// signed certificate bound; the device collects the certificate with its request, and the
/// bound fingerprint is the SHA-256 of its DER.
async fn a_csr_request_collects_a_certificate_signed_by_the_ca(app: TestApp) {
    let (app, _clock) = app.on_manual_clock(|_| {}).await;
    let now_secs = 1_900_000_000;
    open(&app, 60_000).await;

    let p256 = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let p256_csr = csr_with(&p256, "sensor-p256", false);
    let p256_request = json!({"username": "sensor-p256", "csr": b64_lines(&p256_csr)});
    let ed25519 = key(&rcgen::PKCS_ED25519);
    let ed25519_csr = csr_with(&ed25519, "sensor-ed", false);
    let ed25519_request =
        json!({"username": "sensor-ed", "csr": ed25519_csr, "password": "sensor-ed-pass"});
    for request in [&p256_request, &ed25519_request] {
        let (status, body) = register(&app, request.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body, json!({}));
    }
    let listed = registrations(&app).await;
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|entry| entry["credentialType"] == "certificate"),
        "{listed:?}"
    );

    let user = grant(&app, "sensor-p256").await;
    assert_eq!(user["autoGenerated"], true);
    assert_eq!(
        user["grantTypes"],
        json!([{"method": "certificate", "isRequired": false}])
    );
    let answer = collect(&app, p256_request.clone()).await;
    let pem = certificate_of(&answer);
    let der = check_device_certificate(&app, &pem, "sensor-p256", &p256, now_secs);
    let certificates = user["certificates"].as_array().expect("certificates");
    assert_eq!(certificates.len(), 1, "{user}");
    assert_eq!(certificates[0]["fingerprint"], sha256_hex(&der));
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).expect("certificate");
    assert_eq!(
        certificates[0]["expiresAt"],
        gatehouse_core::clock::format_millis(parsed.validity().not_after.timestamp() * 1000)
    );
    assert!(certificates[0]["createdAt"].is_string(), "{user}");
    // Collecting again gives the same certificate.
    assert_eq!(collect(&app, p256_request).await, answer);

    let user = grant(&app, "sensor-ed").await;
    assert_eq!(
        user["grantTypes"],
        json!([
            {"method": "password", "isRequired": false},
            {"method": "certificate", "isRequired": false}
        ])
    );
    let pem = certificate_of(&collect(&app, ed25519_request).await);
    let der = check_device_certificate(&app, &pem, "sensor-ed", &ed25519, now_secs);
    assert_eq!(user["certificates"][0]["fingerprint"], sha256_hex(&der));
    app.login("sensor-ed", "sensor-ed-pass").await;
}

/// A CSR that asks to be a CA (P-384) still gets an end-entity certificate (CA false), and
/// two certificates have different serial numbers.
async fn a_certificate_is_never_a_ca_and_each_has_its_own_serial(app: TestApp) {
    let (app, _clock) = app.on_manual_clock(|_| {}).await;
    open(&app, 60_000).await;
    let ca_key = key(&rcgen::PKCS_ECDSA_P384_SHA384);
    let ca_request = csr_request("wants-ca", &csr_with(&ca_key, "wants-ca", true));
    let other_key = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let other_request = csr_request("other-dev", &csr_with(&other_key, "other-dev", false));
    for request in [&ca_request, &other_request] {
        let (status, body) = register(&app, request.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    grant(&app, "wants-ca").await;
    grant(&app, "other-dev").await;
    let first = certificate_of(&collect(&app, ca_request).await);
    let second = certificate_of(&collect(&app, other_request).await);
    let first = check_device_certificate(&app, &first, "wants-ca", &ca_key, 1_900_000_000);
    let second = check_device_certificate(&app, &second, "other-dev", &other_key, 1_900_000_000);
    let serial = |der: &[u8]| {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).expect("certificate");
        certificate.raw_serial().to_vec()
    };
    assert_ne!(serial(&first), serial(&second));
}

// ---------------------------------------------------------------------------------------------
// C30: the list.

/// The list holds every request, oldest first, with exactly the documented fields (no
/// password hash, no CSR), marks granted ones, and is for administrators only (401 without a
/// token, 403 for a user without the right, who cannot confirm either).
async fn the_list_shows_requests_oldest_first_to_administrators_only(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    open(&app, 60_000).await;
    assert_eq!(registrations(&app).await, Vec::<Value>::new());
    let (status, body) = register(
        &app,
        json!({
            "username": "zz-first",
            "password": "first-password",
            "roles": ["sensors", "readers"],
            "permissions": [
                {"resource": "sensors/#", "operation": "write", "context": "mqtt"},
                {"resource": "/api/session", "operation": "read", "context": "http"}
            ],
            "context": "IoT Device Serial Number <0123456>"
        }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    clock.advance(1_500);
    let (status, body) = register(&app, csr_request("aa-second", &csr("aa-second"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let listed = registrations(&app).await;
    assert_eq!(
        listed,
        [
            json!({
                "timestamp": CLOCK_START,
                "username": "zz-first",
                "credentialType": "password",
                "roles": ["sensors", "readers"],
                "context": "IoT Device Serial Number <0123456>",
                "permissions": [
                    {"resource": "sensors/#", "operation": "write", "context": "mqtt"},
                    {"resource": "/api/session", "operation": "read", "context": "http"}
                ],
                "granted": false
            }),
            json!({
                "timestamp": "2030-03-17T17:46:41.500Z",
                "username": "aa-second",
                "credentialType": "certificate",
                "roles": [],
                "context": null,
                "permissions": [],
                "granted": false
            }),
        ]
    );

    grant(&app, "aa-second").await;
    let granted: Vec<(String, bool)> = registrations(&app)
        .await
        .iter()
        .map(|entry| {
            (
                entry["username"].as_str().expect("username").to_owned(),
                entry["granted"].as_bool().expect("granted"),
            )
        })
        .collect();
    assert_eq!(
        granted,
        [
            ("zz-first".to_owned(), false),
            ("aa-second".to_owned(), true)
        ]
    );

    let (status, body) = app.request(Method::GET, LIST, None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    let plain = plain_user_token(&app).await;
    let (status, body) = app.get(LIST, &plain).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = app
        .post(CONFIRM, &plain, json!({"username": "zz-first"}))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = app
        .request(
            Method::POST,
            CONFIRM,
            None,
            Some(json!({"username": "zz-first"})),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    assert_eq!(
        registrations(&app).await[0]["granted"],
        false,
        "refused confirms grant nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// C29: refusals.

/// A request for a name with a stored request is answered only when it carries the same
/// credentials (the same password, the same CSR in any accepted encoding); other credentials
/// are 409, as is a request for an existing user.
async fn requests_for_a_taken_name_or_with_other_credentials_conflict(app: TestApp) {
    let (app, clock) = restart_unlimited(app, |_| {}).await;
    open(&app, 60_000).await;
    let (status, body) = register(&app, password_request("dev-pass", "right-pass-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let dev_pass_csr = csr("dev-pass");
    for other in [
        password_request("dev-pass", "other-pass-1"),
        csr_request("dev-pass", &dev_pass_csr),
        json!({"username": "dev-pass", "password": "right-pass-1", "csr": b64(&dev_pass_csr)}),
    ] {
        let (status, body) = register(&app, other.clone()).await;
        assert_error(status, &body, StatusCode::CONFLICT);
    }
    let (status, body) = register(&app, password_request("dev-pass", "right-pass-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "the same request: {body}");

    clock.advance(1);
    let stored_csr = csr("dev-csr");
    let (status, body) = register(&app, csr_request("dev-csr", &stored_csr)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for other in [
        csr_request("dev-csr", &csr("dev-csr")),
        json!({"username": "dev-csr", "csr": b64(&stored_csr), "password": "some-pass-1"}),
        password_request("dev-csr", "some-pass-1"),
    ] {
        let (status, body) = register(&app, other.clone()).await;
        assert_error(status, &body, StatusCode::CONFLICT);
    }
    for same in [
        json!({"username": "dev-csr", "csr": stored_csr}),
        json!({"username": "dev-csr", "csr": b64_lines(&stored_csr)}),
    ] {
        let (status, body) = register(&app, same.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "the same CSR: {body}");
    }

    for existing in [
        password_request("admin", "whatever-pass"),
        csr_request("admin", &csr("admin")),
    ] {
        let (status, body) = register(&app, existing.clone()).await;
        assert_error(status, &body, StatusCode::CONFLICT);
        // While closed, an existing user's name is not revealed: locked like any new name.
        open(&app, 0).await;
        let (status, body) = register(&app, existing).await;
        assert_error(status, &body, StatusCode::LOCKED);
        open(&app, 60_000).await;
    }
    assert_eq!(listed_names(&app).await, ["dev-pass", "dev-csr"]);
}

/// Malformed requests are 400 (no credentials, empty password, CN other than the username,
/// bad base64, unreadable CSR, broken signature, RSA-1024), rule breaches are 422 (username
/// rules, password policy); each names its field, and none is recorded. An RSA-2048 CSR from
/// the same tool is fine.
async fn invalid_requests_are_refused_and_not_recorded(app: TestApp) {
    let (app, _clock) = restart_unlimited(app, |_| {}).await;
    open(&app, 60_000).await;

    let ed_key = key(&rcgen::PKCS_ED25519);
    let mut broken = der_of(&csr_with(&ed_key, "broken-sig", false));
    *broken.last_mut().expect("signature") ^= 0x01;
    let broken = pem_of("CERTIFICATE REQUEST", &broken);
    let rsa_small = openssl_rsa_csr("rsa-small", 1024);

    let cases = [
        (
            json!({"username": "no-creds"}),
            StatusCode::BAD_REQUEST,
            "password",
        ),
        (
            password_request("empty-pw", ""),
            StatusCode::BAD_REQUEST,
            "password",
        ),
        (
            csr_request("cn-mismatch", &csr("someone-else")),
            StatusCode::BAD_REQUEST,
            "csr",
        ),
        (
            json!({"username": "bad-b64", "csr": "not base64 at all!"}),
            StatusCode::BAD_REQUEST,
            "csr",
        ),
        (
            json!({"username": "not-pem", "csr": b64("hello, I am no CSR")}),
            StatusCode::BAD_REQUEST,
            "csr",
        ),
        (
            json!({
                "username": "bad-pem",
                "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            }),
            StatusCode::BAD_REQUEST,
            "csr",
        ),
        (
            csr_request("broken-sig", &broken),
            StatusCode::BAD_REQUEST,
            "csr",
        ),
        (
            csr_request("rsa-small", &rsa_small),
            StatusCode::BAD_REQUEST,
            "csr",
        ),
        (
            password_request("ab", "good-password"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "username",
        ),
        (
            password_request("-bad", "good-password"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "username",
        ),
        (
            password_request("short-pw", "abcd"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "password",
        ),
    ];
    for (request, expected, field) in cases {
        let (status, body) = register(&app, request.clone()).await;
        assert_error(status, &body, expected);
        assert_eq!(body["field"], field, "{request} → {body}");
    }
    // A key that is not accepted is named as such (not as a bad signature).
    let (_, body) = register(&app, csr_request("rsa-small", &rsa_small)).await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("RSA key of 2048 to 8192 bits"), "{body}");
    let (_, body) = register(&app, csr_request("broken-sig", &broken)).await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("invalid signature"), "{body}");
    assert_eq!(registrations(&app).await, Vec::<Value>::new());

    let (status, body) = register(
        &app,
        csr_request("rsa-big", &openssl_rsa_csr("rsa-big", 2048)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = register(&app, password_request("five-pw", "abcde")).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "five characters meet the default policy: {body}"
    );
}

/// After the window closed a new request is 423, but a recorded request can still be polled
/// (202), granted, and collected (201 with the certificate).
async fn polls_work_after_the_window_closed_but_new_requests_do_not(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let closed = password_request("late-dev", "late-pass-1");
    let (status, body) = register(&app, closed.clone()).await;
    assert_error(status, &body, StatusCode::LOCKED);

    open(&app, 10_000).await;
    let password = password_request("dev-a", "dev-pass-a");
    let csr_key = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let certificate = csr_request("dev-b", &csr_with(&csr_key, "dev-b", false));
    for request in [&password, &certificate] {
        let (status, body) = register(&app, request.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    clock.advance(10_000);

    let (status, body) = register(&app, closed).await;
    assert_error(status, &body, StatusCode::LOCKED);
    for request in [&password, &certificate] {
        let (status, body) = register(&app, request.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "a poll after closing: {body}");
    }
    grant(&app, "dev-a").await;
    grant(&app, "dev-b").await;
    assert_eq!(collect(&app, password).await, json!({}));
    let pem = certificate_of(&collect(&app, certificate).await);
    check_device_certificate(&app, &pem, "dev-b", &csr_key, 1_900_000_010);
    app.login("dev-a", "dev-pass-a").await;
}

/// With `registry.max_pending` requests waiting, new requests are 423 (polls still answer);
/// a grant makes room again.
async fn pending_requests_are_capped(app: TestApp) {
    let (app, _clock) = app
        .on_manual_clock(|settings| settings.registry.max_pending = 2)
        .await;
    open(&app, 60_000).await;
    for name in ["cap-1", "cap-2"] {
        let (status, body) = register(&app, password_request(name, "cap-password")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, body) = register(&app, password_request("cap-3", "cap-password")).await;
    assert_error(status, &body, StatusCode::LOCKED);
    let (status, body) = register(&app, password_request("cap-1", "cap-password")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "a poll is not new: {body}");

    grant(&app, "cap-1").await;
    let (status, body) = register(&app, password_request("cap-3", "cap-password")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "room after a grant: {body}");
    let (status, body) = register(&app, password_request("cap-4", "cap-password")).await;
    assert_error(status, &body, StatusCode::LOCKED);
    assert_eq!(listed_names(&app).await, ["cap-1", "cap-2", "cap-3"]);
}

/// `registry.per_address` limits every registration call of an address (new, poll, or
/// invalid): past the burst the answer is 429 with Retry-After; time refills the budget.
async fn requests_are_limited_per_address(app: TestApp) {
    let (app, clock) = app
        .on_manual_clock(|settings| {
            settings.registry.per_address = RateLimit {
                burst: 3,
                per_minute: 1,
            };
        })
        .await;
    open(&app, 3_600_000).await;
    let request = password_request("rate-dev", "rate-password");
    let (status, body) = register(&app, request.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = register(&app, request.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = register(&app, password_request("ab", "rate-password")).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY);

    let response = app
        .client
        .post(app.url(REGISTER))
        .json(&request)
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .expect("Retry-After")
            .to_str()
            .expect("text"),
        "60"
    );
    let body: Value = response.json().await.expect("JSON");
    assert_error(
        StatusCode::TOO_MANY_REQUESTS,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
    );
    // The administrator's calls are not limited by it.
    assert_eq!(listed_names(&app).await, ["rate-dev"]);

    clock.advance(60_000);
    let (status, body) = register(&app, request.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "refilled: {body}");
    let (status, body) = register(&app, request).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS);
}

/// Two administrators granting the same request at once: one 200, one 404, and exactly one
/// user (with one bound certificate for a CSR request, the one the device collects).
async fn parallel_confirms_create_exactly_one_user(app: TestApp) {
    open(&app, 60_000).await;
    let csr_request = csr_request("race-csr", &csr("race-csr"));
    for request in [
        password_request("race-pw", "race-password"),
        csr_request.clone(),
    ] {
        let (status, body) = register(&app, request).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let mut answers = Vec::new();
    for username in ["race-pw", "race-csr"] {
        let body = json!({"username": username});
        let (first, second) =
            tokio::join!(confirm(&app, body.clone()), confirm(&app, body.clone()));
        let users = users_named(&app, username).await;
        assert_eq!(users.len(), 1, "exactly one {username}: {users:?}");
        answers.push((username, first, second));
    }
    let user = &users_named(&app, "race-csr").await[0];
    let der = der_of(&certificate_of(&collect(&app, csr_request).await));
    assert_eq!(
        user["certificates"],
        json!([{
            "fingerprint": sha256_hex(&der),
            "createdAt": user["certificates"][0]["createdAt"],
            "expiresAt": user["certificates"][0]["expiresAt"],
        }])
    );
    app.login("race-pw", "race-password").await;

    for (username, (first, first_body), (second, second_body)) in answers {
        let mut statuses = [first, second];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::NOT_FOUND],
            "{username}: {first_body} / {second_body}"
        );
        let loser = if first == StatusCode::NOT_FOUND {
            &first_body
        } else {
            &second_body
        };
        assert_error(StatusCode::NOT_FOUND, loser, StatusCode::NOT_FOUND);
    }
}

// ---------------------------------------------------------------------------------------------
// The implicit flow and the request's life with its user.

/// While the registry is open, a CONNECT with an unknown username and a password records a
/// pending password request ("MQTT CONNECT") and is refused; once granted, the same CONNECT
/// is allowed. While closed nothing is recorded; passwords that break the policy are not
/// recorded either.
async fn an_mqtt_connect_records_a_request_while_the_registry_is_open(app: TestApp) {
    assert!(!mqtt_connect(&app, "sensor-7", "sensor-pass-7").await);
    assert_eq!(
        registrations(&app).await,
        Vec::<Value>::new(),
        "closed: nothing recorded"
    );

    open(&app, 60_000).await;
    assert!(
        !mqtt_connect(&app, "sensor-7", "sensor-pass-7").await,
        "still refused"
    );
    assert!(
        !mqtt_connect(&app, "sensor-7", "sensor-pass-7").await,
        "still refused"
    );
    assert!(
        !mqtt_connect(&app, "sensor-8", "abc").await,
        "short password"
    );
    let listed = registrations(&app).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["username"], "sensor-7");
    assert_eq!(listed[0]["credentialType"], "password");
    assert_eq!(listed[0]["context"], "MQTT CONNECT");
    assert_eq!(listed[0]["roles"], json!([]));
    assert_eq!(listed[0]["permissions"], json!([]));
    assert_eq!(listed[0]["granted"], false);
    assert!(listed[0]["timestamp"].is_string());

    // The explicit flow sees the same request.
    let (status, body) = register(&app, password_request("sensor-7", "sensor-pass-7")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = register(&app, password_request("sensor-7", "other-pass-7")).await;
    assert_error(status, &body, StatusCode::CONFLICT);

    let user = grant(&app, "sensor-7").await;
    assert_eq!(
        user["grantTypes"],
        json!([{"method": "password", "isRequired": false}])
    );
    assert!(
        mqtt_connect(&app, "sensor-7", "sensor-pass-7").await,
        "allowed once granted"
    );
    assert!(!mqtt_connect(&app, "sensor-7", "other-pass-7").await);
    assert_eq!(registrations(&app).await[0]["granted"], true);
}

/// Deleting the user a grant created removes its granted request from the list, so the
/// username can register again (with new credentials).
async fn deleting_a_granted_user_frees_its_username(app: TestApp) {
    open(&app, 60_000).await;
    let (status, body) = register(&app, password_request("gone-dev", "gone-pass-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = register(&app, password_request("kept-dev", "kept-pass-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let user = grant(&app, "gone-dev").await;
    let id = user["id"].as_str().expect("id");

    let (status, body) = app
        .delete(&format!("/api/users/{id}"), &app.admin_token, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(listed_names(&app).await, ["kept-dev"]);

    let (status, body) = register(&app, password_request("gone-dev", "new-pass-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "a new request: {body}");
    let listed = registrations(&app).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[1]["username"], "gone-dev");
    assert_eq!(listed[1]["granted"], false);
    grant(&app, "gone-dev").await;
    app.login("gone-dev", "new-pass-1").await;
    let (status, body) = app.try_login("gone-dev", "gone-pass-1").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
}

//! Database backup and restore (C38–C40) end to end over HTTP: a dataset that touches every
//! archived table survives backup, wipe and restore unchanged, with every kind of credential
//! working again and every earlier session ended; archives move between SQLite and PostgreSQL
//! with byte-identical content; backups taken while writers are busy are consistent snapshots
//! that restore cleanly; and the status reports the restore.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backup::{backup, carried, dump, manifest, restore, wait_idle, Dump, SharedKeys};
use common::broker::{mqtt_user, perm};
use common::otp::{code_at, secret_of};
use common::{tb_id, tb_pair, Engine, TestApp, ADMIN_PASSWORD};
use gatehouse::config::Settings;
use gatehouse_core::clock::{Clock, ManualClock};
use gatehouse_core::ratelimit::RateLimit;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

both_engines!(
    round_trip_brings_back_every_table_and_credential,
    backups_under_write_load_restore_consistently,
);

/// Every table an archive holds (the store's `ARCHIVED_TABLES`).
const ARCHIVED_TABLES: [&str; 19] = [
    "users",
    "roles",
    "role_permissions",
    "user_roles",
    "user_certificates",
    "settings",
    "password_history",
    "credential_tokens",
    "api_keys",
    "mfa_factors",
    "mfa_backup_codes",
    "registry_requests",
    "trusted_certificates",
    "oauth2_clients",
    "oauth2_templates",
    "domains",
    "domain_oauth2_clients",
    "federated_identities",
    "signups",
];

/// Where the manual clocks of these tests start (2030-03-17).
const CLOCK_START: i64 = 1_900_000_000_000;

const ALICE: &str = "alice";
const ALICE_PASSWORD: &str = "alice-password-1";
const MFA_USER: &str = "mfa-user";
const MFA_PASSWORD: &str = "mfa-password-1";
const DEVICE: &str = "device-1";
const DEVICE_PASSWORD: &str = "device-password-1";
const TENANT_ADMIN: &str = "tenant.admin@example.com";
const TENANT_ADMIN_PASSWORD: &str = "Tenant-pass-1";
const PENDING: &str = "pending@example.com";
const PENDING_PASSWORD: &str = "Pending-pass-1";
const REGISTERED: &str = "registry-device";
const REGISTERED_PASSWORD: &str = "registry-pass-1";

/// Login limits out of the way: these tests log in far more often than a minute allows, on a
/// clock that does not move by itself.
fn generous(settings: &mut Settings) {
    let plenty = RateLimit {
        burst: 10_000,
        per_minute: 10_000,
    };
    settings.auth.login_per_address = plenty;
    settings.auth.login_per_account = plenty;
}

/// What the checks need of the dataset: every credential it holds, in clear.
struct Dataset {
    alice_id: String,
    /// TOTP seed of `MFA_USER` (base32).
    totp_secret: String,
    /// One unused backup code of `MFA_USER`.
    backup_code: String,
    tenant_admin_id: String,
    /// The tenant administrator's API key.
    api_key: String,
    /// The activation token of `PENDING`, never used.
    activation_token: String,
    /// The password policy the dataset set (ThingsBoard security settings).
    password_policy: Value,
    oauth2_client_id: String,
    domain_id: String,
    trusted_certificate_ids: Vec<String>,
    template_ids: Vec<String>,
    /// Shared roles made for the dataset.
    role_ids: Vec<String>,
    /// The security settings before the dataset changed them.
    default_security: Value,
}

fn id_field(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

fn tb_id_field(value: &Value) -> String {
    value["id"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

/// A self-signed CA certificate (PEM) to trust.
fn ca_pem(common_name: &str) -> String {
    let key = rcgen::KeyPair::generate().expect("CA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    params.self_signed(&key).expect("self-signed CA").pem()
}

/// Builds, through the API wherever there is an endpoint, a dataset with at least one row in
/// every archived table; `clock` is the app's (TOTP steps move with it).
async fn build_dataset(app: &TestApp, clock: &ManualClock) -> Dataset {
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let minimum = app.role_id("minimum-access").await;

    // settings: a password policy of our own.
    let (status, default_security) = app.tb_get("/api/admin/securitySettings", &sys).await;
    assert_eq!(status, StatusCode::OK, "{default_security}");
    let saved = app
        .tb_update_security(&sys, |settings| {
            settings["passwordPolicy"]["minimumLength"] = json!(8);
            settings["passwordPolicy"]["minimumDigits"] = json!(1);
            settings["userActivationTokenTtl"] = json!(12);
        })
        .await;
    let password_policy = saved["passwordPolicy"].clone();

    // users, roles, role_permissions, user_roles, user_certificates: a shared role, alice with
    // her own role (initial permissions) and a bound certificate.
    let operators = app
        .create_role(
            "operators",
            json!([
                {"resource": "/api/listUsers", "operation": "read", "context": "http"},
                perm("plant/#", "read")
            ]),
        )
        .await;
    let operators_id = id_field(&operators);
    let (status, alice) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({
                "username": ALICE,
                "password": ALICE_PASSWORD,
                "roles": [minimum, operators_id],
                "initialPermissions": [
                    {"resource": "/api/session", "operation": "read", "context": "http"}
                ],
                "certificates": [{"fingerprint": "ab".repeat(32)}]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alice}");
    let alice_id = id_field(&alice);

    // An MQTT device: `sensors/#` write, `cmd/+` read.
    let (_, sensors_id) = mqtt_user(
        app,
        DEVICE,
        DEVICE_PASSWORD,
        "sensors",
        json!([perm("sensors/#", "write"), perm("cmd/+", "read")]),
    )
    .await;

    // mfa_factors, mfa_backup_codes: a user enrolled in TOTP (C41/C42).
    app.create_user(MFA_USER, MFA_PASSWORD, &[&minimum]).await;
    let token = app.login(MFA_USER, MFA_PASSWORD).await;
    let (status, start) = app.post("/api/mfa/enable", &token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let totp_secret = secret_of(start["uri"].as_str().expect("uri"));
    let (status, done) = app
        .post(
            "/api/mfa/validate",
            &token,
            json!({"otp": code_at(&totp_secret, clock.now_millis())}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let backup_code = done["backupCodes"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no backup codes in {done}"))
        .to_owned();
    // The enrolment code's step is used up; later logins use the next one.
    clock.advance(30_000);

    // password_history: an activated tenant administrator (activation records the password).
    let tenant = uuid::Uuid::new_v4().to_string();
    let (tenant_admin_id, _, _) = app
        .tb_new_user(
            &sys,
            json!({"email": TENANT_ADMIN, "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant)}),
            TENANT_ADMIN_PASSWORD,
        )
        .await;

    // api_keys.
    let (status, key) = app
        .tb_post(
            "/api/apiKey",
            &sys,
            json!({"userId": tb_id("USER", &tenant_admin_id), "description": "backup test"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{key}");
    let api_key = key["value"].as_str().expect("key value").to_owned();

    // credential_tokens: a user whose activation link is pending.
    let pending = app
        .tb_create_user(
            &sys,
            json!({"email": PENDING, "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant)}),
        )
        .await;
    let activation_token = app.tb_activation_token(&sys, &tb_id_field(&pending)).await;

    // registry_requests: one granted request (its user logs in), one pending.
    let (status, body) = app
        .post(
            "/api/client-registry/open",
            &app.admin_token,
            json!({"duration": 600_000}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for (username, password) in [
        (REGISTERED, REGISTERED_PASSWORD),
        ("registry-pending", "pending-device-1"),
    ] {
        let (status, body) = app
            .request(
                Method::POST,
                "/api/client-registry/register",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "register {username}: {body}");
    }
    let (status, body) = app
        .post(
            "/api/client-registry/confirm",
            &app.admin_token,
            json!({"username": REGISTERED, "roles": [minimum]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "confirm: {body}");

    // trusted_certificates (C34).
    let (status, added) = app
        .send_raw(
            Method::POST,
            "/api/certificates",
            &app.admin_token,
            "application/json",
            serde_json::to_vec(&json!(ca_pem("Backup Test CA"))).expect("JSON"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let trusted_certificate_ids: Vec<String> = added
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {added}"))
        .iter()
        .map(id_field)
        .collect();
    assert_eq!(trusted_certificate_ids.len(), 1, "{added}");

    // oauth2_clients (T40), oauth2_templates (seeded on first read), domains and
    // domain_oauth2_clients.
    let (status, client) = app
        .tb_post(
            "/api/oauth2/client",
            &sys,
            json!({
                "title": "Google", "clientId": "cid", "clientSecret": "s3cret",
                "authorizationUri": "https://accounts.google.com/o/oauth2/v2/auth",
                "accessTokenUri": "https://oauth2.googleapis.com/token",
                "scope": ["email", "openid", "profile"], "userNameAttributeName": "email",
                "clientAuthenticationMethod": "BASIC", "loginButtonLabel": "Google",
                "loginButtonIcon": "google-logo",
                "additionalInfo": {"providerName": "Google"},
                "mapperConfig": {"type": "BASIC", "allowUserCreation": true, "activateUser": false,
                    "basic": {"emailAttributeKey": "email", "tenantNameStrategy": "DOMAIN"}}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{client}");
    let oauth2_client_id = tb_id_field(&client);
    let (status, templates) = app.tb_get("/api/oauth2/config/template", &sys).await;
    assert_eq!(status, StatusCode::OK, "{templates}");
    let template_ids: Vec<String> = templates
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {templates}"))
        .iter()
        .map(tb_id_field)
        .collect();
    assert!(!template_ids.is_empty(), "{templates}");
    let (status, domain) = app
        .tb_post(
            &format!("/api/domain?oauth2ClientIds={oauth2_client_id}"),
            &sys,
            json!({"name": "iot.example.com", "oauth2Enabled": true, "propagateToEdge": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{domain}");
    let domain_id = tb_id_field(&domain);

    // federated_identities: a real one needs a login at a provider; one row written directly.
    let url = app.settings.database_url();
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&url)
        .await
        .expect("connect to the database");
    sqlx::query(
        "INSERT INTO federated_identities (provider, subject, user_id, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(format!("oauth2:{oauth2_client_id}"))
    .bind("google-subject-of-alice")
    .bind(&alice_id)
    .bind(clock.now_millis())
    .execute(&mut connection)
    .await
    .expect("insert a federated identity");
    // signups: the tenant administrator as if it had signed up (verified, policy accepted), so
    // the dataset needs no CAPTCHA service; tests/signup.rs covers the sign-up itself.
    sqlx::query(
        "INSERT INTO signups (user_id, owns_tenant, created_at, activated_at, \
         privacy_policy_accepted_at) VALUES ($1, 1, $2, $2, $2)",
    )
    .bind(&tenant_admin_id)
    .bind(clock.now_millis())
    .execute(&mut connection)
    .await
    .expect("insert a sign-up record");
    let _ = connection.close().await;

    Dataset {
        alice_id,
        totp_secret,
        backup_code,
        tenant_admin_id,
        api_key,
        activation_token,
        password_policy,
        oauth2_client_id,
        domain_id,
        trusted_certificate_ids,
        template_ids,
        role_ids: vec![operators_id, sensors_id],
        default_security,
    }
}

/// Asserts that `dump` has at least one row in every archived table.
fn assert_every_table_filled(dump: &Dump) {
    for table in ARCHIVED_TABLES {
        let rows = dump
            .get(table)
            .unwrap_or_else(|| panic!("no table {table} in the dump"));
        assert!(!rows.is_empty(), "the dataset leaves {table} empty");
    }
}

/// The `(name, rows)` of every table in an archive's manifest.
fn manifest_rows(archive: &[u8]) -> Vec<(String, u64)> {
    manifest(archive)["tables"]
        .as_array()
        .expect("manifest tables")
        .iter()
        .map(|table| {
            (
                table["name"].as_str().expect("table name").to_owned(),
                table["rows"].as_u64().expect("row count"),
            )
        })
        .collect()
}

/// Asserts that the archive's manifest lists exactly the archived tables, with the row counts
/// of `carried` (a dump without what archives leave out).
fn assert_counts_match(archive: &[u8], carried: &Dump) {
    let rows = manifest_rows(archive);
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ARCHIVED_TABLES, "tables of the manifest");
    for (name, count) in rows {
        let dumped = carried.get(&name).map_or(0, Vec::len);
        assert_eq!(
            usize::try_from(count).expect("row count"),
            dumped,
            "rows of {name}: manifest {count}, database {dumped}"
        );
    }
}

/// Asserts two dumps are equal, naming the first table that differs.
fn assert_same_content(left: &Dump, right: &Dump, what: &str) {
    let names: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    for name in names {
        assert_eq!(
            left.get(name),
            right.get(name),
            "{what}: table {name} differs"
        );
    }
}

/// Deletes through the API what the dataset created, so that the data is really gone.
async fn wipe(app: &TestApp, data: &Dataset) {
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, page) = app
        .get("/api/listUsers?rowsPerPage=1000", &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for user in page["users"].as_array().expect("users") {
        if user["username"] == "admin" {
            continue;
        }
        let (status, body) = app
            .delete(
                &format!("/api/users/{}", id_field(user)),
                &app.admin_token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "delete {user}: {body}");
    }
    for role in &data.role_ids {
        let (status, body) = app
            .delete(&format!("/api/roles/{role}"), &app.admin_token, None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "delete role: {body}");
    }
    for id in &data.trusted_certificate_ids {
        let (status, body) = app
            .delete(&format!("/api/certificates/{id}"), &app.admin_token, None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "delete certificate: {body}");
    }
    let bearer = format!("Bearer {sys}");
    let mut paths = vec![
        format!("/api/domain/{}", data.domain_id),
        format!("/api/oauth2/client/{}", data.oauth2_client_id),
    ];
    paths.extend(
        data.template_ids
            .iter()
            .map(|id| format!("/api/oauth2/config/template/{id}")),
    );
    for path in paths {
        let (status, body) = app
            .tb_request(Method::DELETE, &path, Some(&bearer), None)
            .await;
        assert_eq!(status, StatusCode::OK, "DELETE {path}: {body}");
    }
    let (status, body) = app
        .tb_post(
            "/api/admin/securitySettings",
            &sys,
            data.default_security.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `POST /api/mfa/login` (C43).
async fn mfa_login(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.request(Method::POST, "/api/mfa/login", None, Some(body))
        .await
}

/// The `secret` of the first step of `MFA_USER`'s login.
async fn mfa_first_step(app: &TestApp) -> String {
    let (status, body) = app.try_login(MFA_USER, MFA_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["needsMfa"], true, "{body}");
    body["secret"].as_str().expect("secret").to_owned()
}

/// A broker hook answer in JSON mode: allowed (200) or denied (403).
async fn hook(app: &TestApp, path: &str, body: Value) -> bool {
    let answer = app
        .tb_send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&body).expect("JSON")),
        )
        .await;
    match answer.status {
        StatusCode::OK => true,
        StatusCode::FORBIDDEN => false,
        other => panic!("hook {path} answered {other}: {}", answer.text),
    }
}

/// Asserts that every credential of the dataset works on `app` (whose clock is `clock`). Uses
/// some of them up (a TOTP step, a backup code, the activation link).
async fn assert_credentials_work(app: &TestApp, clock: &ManualClock, data: &Dataset) {
    // Connectware password login.
    let token = app.login(ALICE, ALICE_PASSWORD).await;
    let (status, session) = app.get("/api/session", &token).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["username"], ALICE);
    let (status, body) = app.try_login(ALICE, "not-her-password-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The user of the granted registry request.
    app.login(REGISTERED, REGISTERED_PASSWORD).await;

    // ThingsBoard login.
    let (tb_token, _) = app.tb_login(TENANT_ADMIN, TENANT_ADMIN_PASSWORD).await;
    let me = app.tb_me(&tb_token).await;
    assert_eq!(me["id"]["id"], data.tenant_admin_id.as_str(), "{me}");
    assert_eq!(me["authority"], "TENANT_ADMIN");

    // The API key.
    let answer = app
        .tb_send(
            Method::GET,
            "/api/auth/user",
            &[("x-authorization", &format!("ApiKey {}", data.api_key))],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "API key: {}", answer.text);
    assert_eq!(
        answer.json()["id"]["id"],
        data.tenant_admin_id.as_str(),
        "{}",
        answer.text
    );

    // TOTP (C43) with a code computed from the secret, then a backup code.
    let secret = mfa_first_step(app).await;
    let (status, body) = mfa_login(
        app,
        json!({"username": MFA_USER, "otp": code_at(&data.totp_secret, clock.now_millis()), "secret": secret}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "TOTP login: {body}");
    assert_eq!(body["needsMfa"], false, "{body}");
    let full = body["token"].as_str().expect("token");
    assert_eq!(app.get("/api/session", full).await.0, StatusCode::OK);
    let secret = mfa_first_step(app).await;
    let (status, body) = mfa_login(
        app,
        json!({"username": MFA_USER, "backupCode": data.backup_code, "secret": secret}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "backup code login: {body}");

    // MQTT decisions through the broker hook: password, an allowed and a denied publish.
    assert!(
        hook(
            app,
            "/api/broker/http/user",
            json!({"username": DEVICE, "password": DEVICE_PASSWORD, "clientid": "c1"}),
        )
        .await,
        "the device's password"
    );
    assert!(
        !hook(
            app,
            "/api/broker/http/user",
            json!({"username": DEVICE, "password": "wrong-password-1", "clientid": "c1"}),
        )
        .await,
        "a wrong password"
    );
    let acl = |topic: &str| json!({"username": DEVICE, "clientid": "c1", "topic": topic, "acc": 2});
    assert!(
        hook(app, "/api/broker/http/acl", acl("sensors/t1")).await,
        "publish to sensors/t1"
    );
    assert!(
        !hook(app, "/api/broker/http/acl", acl("other/t1")).await,
        "publish to other/t1"
    );

    // The password policy of the dataset.
    let (status, policy) = app
        .tb_request(Method::GET, "/api/noauth/userPasswordPolicy", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy, data.password_policy);

    // The pending activation link still activates.
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/noauth/activate?sendActivationMail=false",
            None,
            Some(json!({"activateToken": data.activation_token, "password": PENDING_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "activation: {body}");
    let (token, _) = tb_pair(&body);
    assert_eq!(app.tb_me(&token).await["email"], PENDING);
    app.tb_login(PENDING, PENDING_PASSWORD).await;
}

/// Asserts the status after a successful restore of `archive` (C38).
fn assert_restore_reported(state: &Value, archive: &[u8]) {
    assert_eq!(state["running"], false, "{state}");
    let restore = &state["restore"];
    assert_eq!(restore["succeeded"], true, "{state}");
    let manifest = manifest(archive);
    let expected_id = format!(
        "{}_{}",
        manifest["gatehouseVersion"].as_str().expect("version"),
        manifest["createdAt"].as_str().expect("createdAt")
    );
    assert_eq!(restore["id"], expected_id.as_str(), "{state}");
    let start = restore["startDate"].as_str().expect("startDate");
    let end = restore["endDate"].as_str().expect("endDate");
    for date in [start, end] {
        assert!(
            date.len() == 24 && date.ends_with('Z') && date.as_bytes()[10] == b'T',
            "an ISO 8601 time with milliseconds: {date}"
        );
    }
    assert!(start <= end, "{state}");
    assert!(
        restore["statusMessage"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{state}"
    );
}

async fn round_trip_brings_back_every_table_and_credential(app: TestApp) {
    let (mut app, clock) = app.on_manual_clock(generous).await;
    let data = build_dataset(&app, &clock).await;
    let before = dump(&app).await;
    assert_every_table_filled(&before);

    let (backup_id, archive) = backup(&mut app).await;
    assert_counts_match(&archive, &carried(before.clone()));
    let head = manifest(&archive);
    let engine = match app.engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    };
    assert_eq!(head["sourceEngine"], engine, "{head}");

    // Wipe: the data is really gone.
    wipe(&app, &data).await;
    let wiped = dump(&app).await;
    assert_ne!(carried(wiped.clone()), carried(before.clone()));
    assert_eq!(wiped["users"].len(), 1, "only the admin is left");
    for table in [
        "user_certificates",
        "credential_tokens",
        "api_keys",
        "mfa_factors",
        "mfa_backup_codes",
        "trusted_certificates",
        "oauth2_clients",
        "oauth2_templates",
        "domains",
        "domain_oauth2_clients",
        "federated_identities",
        "signups",
    ] {
        assert_eq!(wiped[table], Vec::<String>::new(), "{table} after the wipe");
    }
    let (status, _) = app.try_login(ALICE, ALICE_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "alice is gone");

    // Sessions opened before the restore, of a user the wipe kept.
    let admin_before = app.login("admin", ADMIN_PASSWORD).await;
    let (tb_before, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    assert_eq!(
        app.get("/api/session", &admin_before).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.tb_get("/api/auth/user", &tb_before).await.0,
        StatusCode::OK
    );

    let state = restore(&mut app, archive.clone()).await;
    assert_restore_reported(&state, &archive);
    assert_eq!(state["backup"]["id"], backup_id.as_str(), "{state}");
    let after = dump(&app).await;
    assert_same_content(
        &carried(after.clone()),
        &carried(before.clone()),
        "restored",
    );
    assert_eq!(carried(after.clone()), carried(before));

    // Every session of before the restore has ended; the signing key stayed.
    let (status, body) = app.get("/api/session", &admin_before).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = app.tb_get("/api/auth/user", &tb_before).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let signing_key = |dump: &Dump| -> Vec<String> {
        dump["settings"]
            .iter()
            .filter(|row| row.contains("key=\"jwt.signing_key\""))
            .cloned()
            .collect()
    };
    assert_eq!(signing_key(&after), signing_key(&wiped));
    assert_eq!(signing_key(&after).len(), 1);

    assert_credentials_work(&app, &clock, &data).await;
    let (status, user) = app
        .get(&format!("/api/users/{}", data.alice_id), &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["certificates"][0]["fingerprint"], "ab".repeat(32));

    // C38 after the restore.
    let (status, state) = app.get("/api/maintenance/db", &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_restore_reported(&state, &archive);
}

/// A manual clock standing where `clock` stands.
fn clock_at(clock: &ManualClock) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(clock.now_millis()))
}

/// SQLite → PostgreSQL → SQLite: the same logical content at every step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_move_between_engines_unchanged() {
    if common::postgres_url().is_none() {
        eprintln!("GATEHOUSE_TEST_DATABASE_URL is not set: cross-engine test not run");
        return;
    }
    let clock = Arc::new(ManualClock::new(CLOCK_START));
    let mut a = TestApp::spawn_with(Engine::Sqlite, generous, Some(clock.clone())).await;
    let data = build_dataset(&a, &clock).await;
    let dump_a = carried(dump(&a).await);
    let (_, archive_1) = backup(&mut a).await;
    assert_counts_match(&archive_1, &dump_a);
    let keys = SharedKeys::of(&a);

    let mut b = TestApp::spawn_with(
        Engine::Postgres,
        |settings| {
            generous(settings);
            keys.apply(settings);
        },
        Some(clock_at(&clock)),
    )
    .await;
    restore(&mut b, archive_1.clone()).await;
    let dump_b = carried(dump(&b).await);
    let (_, archive_2) = backup(&mut b).await;

    let clock_c = clock_at(&clock);
    let mut c = TestApp::spawn_with(
        Engine::Sqlite,
        |settings| {
            generous(settings);
            keys.apply(settings);
        },
        Some(clock_c.clone()),
    )
    .await;
    restore(&mut c, archive_2.clone()).await;
    let dump_c = carried(dump(&c).await);
    let (_, archive_3) = backup(&mut c).await;

    let manifests = [
        manifest(&archive_1),
        manifest(&archive_2),
        manifest(&archive_3),
    ];
    for (head, engine) in manifests.iter().zip(["sqlite", "postgres", "sqlite"]) {
        assert_eq!(head["sourceEngine"], engine, "{head}");
        assert_eq!(head["schemaVersion"], manifests[0]["schemaVersion"]);
    }
    for (index, head) in manifests.iter().enumerate().skip(1) {
        for (ours, first) in head["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .zip(manifests[0]["tables"].as_array().expect("tables"))
        {
            assert_eq!(ours, first, "archive {} differs from archive 1", index + 1);
        }
        assert_eq!(head["tables"], manifests[0]["tables"]);
    }
    assert_same_content(
        &dump_b,
        &dump_a,
        "PostgreSQL after restoring the SQLite archive",
    );
    assert_same_content(
        &dump_c,
        &dump_b,
        "SQLite after restoring the PostgreSQL archive",
    );
    assert_eq!(dump_a, dump_b);
    assert_eq!(dump_b, dump_c);

    assert_credentials_work(&c, &clock_c, &data).await;
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

/// What a writer needs to call the API on its own.
#[derive(Clone)]
struct Caller {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Caller {
    /// Sends a request; `None` when it could not be sent because the test is over (`stop`).
    async fn call(
        &self,
        stop: &AtomicBool,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(StatusCode, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = async {
            let response = request.send().await?;
            let status = response.status();
            let text = response.text().await?;
            Ok::<_, reqwest::Error>((
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ))
        }
        .await;
        match answer {
            Ok(answer) => Some(answer),
            Err(_) if stop.load(Ordering::Relaxed) => None,
            Err(error) => panic!("{path}: {error}"),
        }
    }
}

/// Sets the flag when dropped: writers stop when the test ends, also when it fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Keeps creating users with roles and permissions (each with its own role) and shared roles,
/// and deleting every third user, until `stop`; returns (users created, users deleted).
async fn write_load(
    caller: Caller,
    worker: usize,
    stop: Arc<AtomicBool>,
    minimum: String,
) -> (usize, usize) {
    let mut created: Vec<String> = Vec::new();
    let mut deleted = 0;
    let mut shared = minimum.clone();
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        if round % 5 == 0 {
            let name = format!("load-role-{worker}-{round}");
            let Some((status, role)) = caller
                .call(
                    &stop,
                    Method::POST,
                    "/api/roles",
                    Some(
                        json!({"name": name, "permissions": [perm(&format!("{name}/#"), "read")]}),
                    ),
                )
                .await
            else {
                break;
            };
            assert_eq!(status, StatusCode::CREATED, "create role {name}: {role}");
            shared = id_field(&role);
        }
        let username = format!("load-{worker}-{round}");
        let Some((status, user)) = caller
            .call(
                &stop,
                Method::POST,
                "/api/users",
                Some(json!({
                    "username": username,
                    "roles": [minimum, shared],
                    "initialPermissions": [
                        perm(&format!("{username}/#"), "write"),
                        {"resource": "/api/session", "operation": "read", "context": "http"}
                    ]
                })),
            )
            .await
        else {
            break;
        };
        assert_eq!(status, StatusCode::CREATED, "create {username}: {user}");
        created.push(id_field(&user));
        if round % 3 == 2 {
            let victim = &created[created.len() - 2];
            let Some((status, body)) = caller
                .call(&stop, Method::DELETE, &format!("/api/users/{victim}"), None)
                .await
            else {
                break;
            };
            assert_eq!(status, StatusCode::NO_CONTENT, "delete {victim}: {body}");
            deleted += 1;
        }
        round += 1;
    }
    (created.len(), deleted)
}

/// One number of a query on the app's database.
async fn count(connection: &mut sqlx::AnyConnection, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(&mut *connection)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .try_get::<i64, _>(0)
        .expect("a number")
}

/// Asserts the restored content of `app` is internally consistent: references resolve, every
/// load user holds exactly its own role with its two permissions and the two shared roles.
/// Returns how many load users there are.
async fn assert_consistent(app: &TestApp) -> usize {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&app.settings.database_url())
        .await
        .expect("connect to the database");
    for (what, sql) in [
        (
            "user_roles rows without their user",
            "SELECT COUNT(*) FROM user_roles ur WHERE NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.id = ur.user_id)",
        ),
        (
            "user_roles rows without their role",
            "SELECT COUNT(*) FROM user_roles ur WHERE NOT EXISTS \
             (SELECT 1 FROM roles r WHERE r.id = ur.role_id)",
        ),
        (
            "own roles without their user",
            "SELECT COUNT(*) FROM roles r WHERE r.owner_user_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.id = r.owner_user_id)",
        ),
        (
            "permissions without their role",
            "SELECT COUNT(*) FROM role_permissions p WHERE NOT EXISTS \
             (SELECT 1 FROM roles r WHERE r.id = p.role_id)",
        ),
        (
            "load users without exactly one own role",
            "SELECT COUNT(*) FROM users u WHERE u.username LIKE 'load-%' AND \
             (SELECT COUNT(*) FROM roles r WHERE r.owner_user_id = u.id AND r.name = u.username) <> 1",
        ),
        (
            "load users not holding their own role",
            "SELECT COUNT(*) FROM users u WHERE u.username LIKE 'load-%' AND NOT EXISTS \
             (SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
              WHERE ur.user_id = u.id AND r.owner_user_id = u.id)",
        ),
        (
            "load users whose own role lacks its two permissions",
            "SELECT COUNT(*) FROM users u WHERE u.username LIKE 'load-%' AND \
             (SELECT COUNT(*) FROM role_permissions p JOIN roles r ON r.id = p.role_id \
              WHERE r.owner_user_id = u.id) <> 2",
        ),
        (
            "load users not holding exactly three roles",
            "SELECT COUNT(*) FROM users u WHERE u.username LIKE 'load-%' AND \
             (SELECT COUNT(*) FROM user_roles ur WHERE ur.user_id = u.id) <> 3",
        ),
        (
            "load roles without their permission",
            "SELECT COUNT(*) FROM roles r WHERE r.name LIKE 'load-role-%' AND \
             (SELECT COUNT(*) FROM role_permissions p WHERE p.role_id = r.id) <> 1",
        ),
    ] {
        assert_eq!(count(&mut connection, sql).await, 0, "{what}");
    }
    let users = count(
        &mut connection,
        "SELECT COUNT(*) FROM users WHERE username LIKE 'load-%'",
    )
    .await;
    let _ = connection.close().await;
    usize::try_from(users).expect("a count")
}

async fn backups_under_write_load_restore_consistently(mut app: TestApp) {
    const WRITERS: usize = 4;
    let minimum = app.role_id("minimum-access").await;
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let caller = Caller {
        client: app.client.clone(),
        base: app.base.clone(),
        token: app.admin_token.clone(),
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|worker| {
            tokio::spawn(write_load(
                caller.clone(),
                worker,
                stop.clone(),
                minimum.clone(),
            ))
        })
        .collect();
    // Let the writers get going, then back up three times while they write.
    let deadline = Instant::now() + Duration::from_secs(30);
    while dump(&app).await["users"].len() < 20 {
        assert!(Instant::now() < deadline, "the writers make no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut archives = Vec::new();
    for _ in 0..3 {
        let (_, archive) = backup(&mut app).await;
        archives.push(archive);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut created = 0;
    for writer in writers {
        let (made, _) = writer.await.expect("a writer panicked");
        assert!(made > 0);
        created += made;
    }
    let counts: Vec<u64> = archives
        .iter()
        .map(|archive| manifest_rows(archive)[0].1)
        .collect();
    eprintln!("users created: {created}; users in the archives: {counts:?}");
    assert!(
        counts[0] < counts[2],
        "the writers wrote while the backups ran: {counts:?}"
    );

    // Each archive restores (its scratch load checks references and uniqueness) to a content
    // that is consistent and has the archive's row counts; backing it up again gives the same
    // tables.
    for (index, archive) in archives.into_iter().enumerate() {
        let state = restore(&mut app, archive.clone()).await;
        assert_restore_reported(&state, &archive);
        let restored = carried(dump(&app).await);
        assert_counts_match(&archive, &restored);
        let load_users = assert_consistent(&app).await;
        assert!(load_users > 0, "archive {} holds load users", index + 1);
        let (_, again) = backup(&mut app).await;
        assert_eq!(
            manifest(&again)["tables"],
            manifest(&archive)["tables"],
            "archive {} backed up again after its restore",
            index + 1
        );
    }
    let state = wait_idle(&mut app).await;
    assert_eq!(state["running"], false);
}

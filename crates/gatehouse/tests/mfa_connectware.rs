//! Connectware MFA (C41–C45) end to end over HTTP: TOTP enrolment with backup codes, logins that
//! need a second factor, replay protection, the ban after too many wrong codes (also under
//! parallel guessing), enforced enrolment, administrators turning a user's MFA off, and the
//! secrets kept unreadable in the database. TOTP steps move with a manual clock.

mod common;

use std::sync::Arc;

use base64::Engine as _;
use common::otp::{code_at, secret_of, wrong_code_at};
use common::{assert_error, TestApp, ADMIN_PASSWORD};
use gatehouse_core::clock::{Clock, ManualClock};
use reqwest::StatusCode;
use serde_json::{json, Value};

both_engines!(
    enrolment_then_logins_with_codes_and_backup_codes,
    a_code_works_once,
    regenerate_and_disable_need_a_factor,
    enforced_enrolment_limits_the_token_until_enrolled,
    administrators_turn_mfa_off,
    wrong_codes_ban_the_user_for_the_configured_time,
    parallel_guesses_cannot_exceed_the_failure_limit,
    wrong_enrolment_codes_count_too,
    secrets_and_backup_codes_are_unreadable_in_the_database,
    hostile_mfa_input_is_a_clear_4xx,
    the_login_secret_opens_nothing_else,
);

const PASSWORD: &str = "alice-password-1";

/// A user with the minimum-access role; returns its id.
async fn new_user(app: &TestApp, username: &str) -> String {
    let role = app.role_id("minimum-access").await;
    let user = app.create_user(username, PASSWORD, &[&role]).await;
    user["id"].as_str().expect("user id").to_owned()
}

/// A user enrolled in TOTP.
struct Enrolled {
    id: String,
    secret: String,
    backup_codes: Vec<String>,
}

/// Enrols `token`'s user in TOTP at the clock's time; moves the clock to the next step so the
/// enrolment code is not the next login's code.
async fn enrol(app: &TestApp, clock: &ManualClock, token: &str) -> (String, Vec<String>) {
    let (status, start) = app.post("/api/mfa/enable", token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let secret = secret_of(start["uri"].as_str().expect("uri"));
    let otp = code_at(&secret, clock.now_millis());
    let (status, done) = app
        .post("/api/mfa/validate", token, json!({"otp": otp}))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let codes = done["backupCodes"]
        .as_array()
        .expect("backup codes")
        .iter()
        .map(|code| code.as_str().expect("code").to_owned())
        .collect();
    clock.advance(30_000);
    (secret, codes)
}

async fn enrolled_user(app: &TestApp, clock: &ManualClock, username: &str) -> Enrolled {
    let id = new_user(app, username).await;
    let token = app.login(username, PASSWORD).await;
    let (secret, backup_codes) = enrol(app, clock, &token).await;
    Enrolled {
        id,
        secret,
        backup_codes,
    }
}

/// The `secret` of a password login that needs a second factor.
async fn mfa_secret(app: &TestApp, username: &str) -> String {
    let (status, body) = app.try_login(username, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["needsMfa"], true, "{body}");
    assert!(body.get("token").is_none(), "no usable token yet: {body}");
    assert_eq!(body["permissions"], json!([]), "{body}");
    body["secret"].as_str().expect("secret").to_owned()
}

async fn mfa_login(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.request(reqwest::Method::POST, "/api/mfa/login", None, Some(body))
        .await
}

async fn enrolment_then_logins_with_codes_and_backup_codes(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let alice_id = new_user(&app, "alice").await;
    let token = app.login("alice", PASSWORD).await;
    let (_, session) = app.get("/api/session", &token).await;
    assert_eq!(session["mfa"], json!({"enabled": false, "enforced": false}));

    let (status, start) = app.post("/api/mfa/enable", &token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let uri = start["uri"].as_str().expect("uri");
    assert!(
        uri.starts_with("otpauth://totp/Gatehouse:alice?issuer=Gatehouse&secret=")
            && uri.ends_with("&algorithm=SHA1&digits=6&period=30"),
        "{uri}"
    );
    let secret = secret_of(uri);
    assert_eq!(secret.len(), 32, "160-bit secret in base32");
    let qr = start["qrCode"].as_str().expect("qrCode");
    let svg = base64::engine::general_purpose::STANDARD
        .decode(
            qr.strip_prefix("data:image/svg+xml;base64,")
                .expect("an SVG data URI"),
        )
        .expect("base64");
    assert!(String::from_utf8_lossy(&svg).contains("<svg"));

    // A wrong code is refused; the right one enrols and answers ten single-use codes.
    let now = clock.now_millis();
    let (status, body) = app
        .post(
            "/api/mfa/validate",
            &token,
            json!({"otp": wrong_code_at(&secret, now)}),
        )
        .await;
    assert_eq!(
        assert_error(status, &body, StatusCode::UNAUTHORIZED),
        "Invalid OTP"
    );
    let (status, done) = app
        .post(
            "/api/mfa/validate",
            &token,
            json!({"otp": code_at(&secret, now)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let codes: Vec<&str> = done["backupCodes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|code| code.as_str().expect("code"))
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|code| code.len() == 8
        && code
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())));
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);
    let (_, session) = app.get("/api/session", &token).await;
    assert_eq!(session["mfa"], json!({"enabled": true, "enforced": false}));
    let (status, body) = app.post("/api/mfa/enable", &token, json!({})).await;
    assert_eq!(
        assert_error(status, &body, StatusCode::CONFLICT),
        "User is already enrolled"
    );

    // The password alone gives the secret; a code of the next step completes the login with
    // the lifetime the first step asked for.
    clock.advance(30_000);
    let (status, first) = app
        .request(
            reqwest::Method::POST,
            "/api/login",
            None,
            Some(json!({"username": "alice", "password": PASSWORD, "expireTimeInHours": 2, "label": "with mfa"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["needsMfa"], true);
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "otp": code_at(&secret, clock.now_millis()), "secret": first["secret"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["needsMfa"], false);
    assert!(body["permissions"]
        .as_array()
        .is_some_and(|p| !p.is_empty()));
    let expected_expiry = gatehouse_core::clock::format_millis(clock.now_millis() + 2 * 3_600_000);
    assert_eq!(body["expiresAt"], expected_expiry.as_str());
    let full = body["token"].as_str().expect("token");
    let (status, session) = app.get("/api/session", full).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["username"], "alice");
    let (_, tokens) = app
        .get(&format!("/api/users/{alice_id}/tokens"), &app.admin_token)
        .await;
    let tokens = tokens.as_array().expect("tokens");
    assert!(
        tokens.iter().any(|token| token["label"] == "with mfa"),
        "the label of the first step: {tokens:?}"
    );
    // Logins waiting for their second factor are no tokens: the pending one is not listed.
    mfa_secret(&app, "alice").await;
    let (_, listed) = app
        .get(&format!("/api/users/{alice_id}/tokens"), &app.admin_token)
        .await;
    assert_eq!(listed.as_array().expect("tokens").len(), tokens.len());

    // A backup code works once.
    let secret_2 = mfa_secret(&app, "alice").await;
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "backupCode": codes[0], "secret": secret_2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secret_3 = mfa_secret(&app, "alice").await;
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "backupCode": codes[0], "secret": secret_3}),
    )
    .await;
    assert_eq!(
        assert_error(status, &body, StatusCode::UNAUTHORIZED),
        "Invalid OTP"
    );
    // The secret of a completed login is used up.
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "backupCode": codes[1], "secret": secret_2}),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    // A secret names its user: another username does not complete it.
    new_user(&app, "bob").await;
    let (status, body) = mfa_login(
        &app,
        json!({"username": "bob", "backupCode": codes[1], "secret": secret_3}),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
}

async fn a_code_works_once(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let alice = enrolled_user(&app, &clock, "alice").await;
    let code = code_at(&alice.secret, clock.now_millis());
    let secret = mfa_secret(&app, "alice").await;
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "otp": code, "secret": secret}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The same code again, within its step and the step after (the skew window): refused.
    for advance in [0, 29_000] {
        clock.advance(advance);
        let secret = mfa_secret(&app, "alice").await;
        let (status, body) = mfa_login(
            &app,
            json!({"username": "alice", "otp": code, "secret": secret}),
        )
        .await;
        assert_eq!(
            assert_error(status, &body, StatusCode::UNAUTHORIZED),
            "Invalid OTP",
            "a replay"
        );
    }
    // An older step's code is refused too once a later one was used (steps only grow).
    clock.advance(30_000);
    let secret = mfa_secret(&app, "alice").await;
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "otp": code_at(&alice.secret, clock.now_millis()), "secret": secret}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secret = mfa_secret(&app, "alice").await;
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "otp": code_at(&alice.secret, clock.now_millis() - 30_000), "secret": secret}),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
}

async fn regenerate_and_disable_need_a_factor(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let alice = enrolled_user(&app, &clock, "alice").await;
    let secret = mfa_secret(&app, "alice").await;
    let (_, body) = mfa_login(
        &app,
        json!({"username": "alice", "backupCode": alice.backup_codes[0], "secret": secret}),
    )
    .await;
    let token = body["token"].as_str().expect("token").to_owned();

    let (status, body) = app
        .post("/api/mfa/regenerate/backupcodes", &token, json!({}))
        .await;
    let message = assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert!(message.contains("otp or backupCode"), "{message}");
    let now = clock.now_millis();
    let (status, body) = app
        .post(
            "/api/mfa/regenerate/backupcodes",
            &token,
            json!({"otp": wrong_code_at(&alice.secret, now)}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    let (status, fresh) = app
        .post(
            "/api/mfa/regenerate/backupcodes",
            &token,
            json!({"backupCode": alice.backup_codes[1]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let fresh: Vec<String> = fresh["backupCodes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|code| code.as_str().expect("code").to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    // The old codes are gone, the new ones work.
    let secret = mfa_secret(&app, "alice").await;
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "backupCode": alice.backup_codes[2], "secret": secret}),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);

    let (status, body) = app
        .post(
            "/api/mfa/disable",
            &token,
            json!({"otp": wrong_code_at(&alice.secret, now)}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .post("/api/mfa/disable", &token, json!({"backupCode": fresh[0]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, session) = app.get("/api/session", &token).await;
    assert_eq!(session["mfa"]["enabled"], false);
    // A plain login again; MFA can be enabled anew, and disabling twice says it is off.
    let token = app.login("alice", PASSWORD).await;
    let (status, body) = app
        .post("/api/mfa/disable", &token, json!({"backupCode": fresh[1]}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let (status, _) = app.post("/api/mfa/enable", &token, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, user) = app
        .get(&format!("/api/users/{}", alice.id), &app.admin_token)
        .await;
    assert_eq!(
        user["mfa_is_enrolled"], false,
        "a started enrolment is no MFA"
    );
}

async fn enforced_enrolment_limits_the_token_until_enrolled(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let admin_role = app.role_id("connectware-admin").await;
    let (status, user) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "carol", "password": PASSWORD, "roles": [admin_role], "enforceMFAEnrollment": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["enforceMFAEnrollment"], true);
    let (status, login) = app.try_login("carol", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["needsMfa"], false);
    assert_eq!(login["enforceMFAEnrollment"], true);
    let token = login["token"].as_str().expect("token").to_owned();

    // Only enrolment (and the session) is open to this token.
    let (status, body) = app.get("/api/listUsers", &token).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    let (status, session) = app.get("/api/session", &token).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["mfa"], json!({"enabled": false, "enforced": true}));
    let (secret, _) = enrol(&app, &clock, &token).await;
    // Enrolment turned the same token into a full one.
    let (status, body) = app.get("/api/listUsers", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The next login needs the second factor.
    let login_secret = mfa_secret(&app, "carol").await;
    let (status, body) = mfa_login(
        &app,
        json!({"username": "carol", "otp": code_at(&secret, clock.now_millis()), "secret": login_secret}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["enforceMFAEnrollment"], true);
}

async fn administrators_turn_mfa_off(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let alice = enrolled_user(&app, &clock, "alice").await;
    let path = format!("/api/users/{}", alice.id);
    let (_, user) = app.get(&path, &app.admin_token).await;
    assert_eq!(user["mfa_is_enrolled"], true, "{user}");
    let (status, user) = app
        .put(
            &path,
            &app.admin_token,
            json!({"disableMfa": true, "enforceMFAEnrollment": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["mfa_is_enrolled"], false, "{user}");
    assert_eq!(user["enforceMFAEnrollment"], true, "{user}");
    // The old secret and backup codes are gone: the next login must enrol anew.
    let (status, login) = app.try_login("alice", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["needsMfa"], false);
    assert_eq!(login["enforceMFAEnrollment"], true);
    let token = login["token"].as_str().expect("token");
    let (status, body) = app
        .post(
            "/api/mfa/regenerate/backupcodes",
            token,
            json!({"backupCode": alice.backup_codes[0]}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    // Lifting the enforcement gives plain logins again.
    let (status, _) = app
        .put(
            &path,
            &app.admin_token,
            json!({"enforceMFAEnrollment": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, login) = app.try_login("alice", PASSWORD).await;
    assert_eq!(login["enforceMFAEnrollment"], false, "{login}");
    let token = login["token"].as_str().expect("token");
    let (status, _) = app.get("/api/session", token).await;
    assert_eq!(status, StatusCode::OK);
}

async fn wrong_codes_ban_the_user_for_the_configured_time(app: TestApp) {
    let (app, clock) = app
        .on_manual_clock(|settings| {
            settings.mfa.max_failures = 3;
            settings.mfa.ban_minutes = 2;
        })
        .await;
    let alice = enrolled_user(&app, &clock, "alice").await;
    let secret = mfa_secret(&app, "alice").await;
    let wrong = wrong_code_at(&alice.secret, clock.now_millis());
    for _ in 0..2 {
        let (status, body) = mfa_login(
            &app,
            json!({"username": "alice", "otp": wrong, "secret": secret}),
        )
        .await;
        assert_eq!(
            assert_error(status, &body, StatusCode::UNAUTHORIZED),
            "Invalid OTP"
        );
    }
    let response = app
        .client
        .post(app.url("/api/mfa/login"))
        .json(&json!({"username": "alice", "otp": wrong, "secret": secret}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert_eq!(retry_after, 120);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["message"], "Too many failed login attempts");
    // Banned: even the right code and a backup code are refused.
    let right = json!({"username": "alice", "otp": code_at(&alice.secret, clock.now_millis()), "secret": secret});
    let (status, body) = mfa_login(&app, right.clone()).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS);
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "backupCode": alice.backup_codes[0], "secret": secret}),
    )
    .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS);
    // After the ban the right code works (the secret lives 10 minutes).
    clock.advance(121_000);
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "otp": code_at(&alice.secret, clock.now_millis()), "secret": secret}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A success clears the counter: two more wrong codes do not ban.
    let secret = mfa_secret(&app, "alice").await;
    for _ in 0..2 {
        let (status, body) = mfa_login(
            &app,
            json!({"username": "alice", "otp": wrong, "secret": secret}),
        )
        .await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED);
    }
}

async fn parallel_guesses_cannot_exceed_the_failure_limit(app: TestApp) {
    const LIMIT: u32 = 5;
    let (app, clock) = app
        .on_manual_clock(|settings| {
            settings.mfa.max_failures = LIMIT;
        })
        .await;
    let alice = enrolled_user(&app, &clock, "alice").await;
    let secret = mfa_secret(&app, "alice").await;
    let now = clock.now_millis();
    let app = Arc::new(app);
    let guesses: Vec<_> = (0..40)
        .map(|n| {
            let app = app.clone();
            // Distinct wrong codes, none of them right near now.
            let near: Vec<String> = [-30_000, 0, 30_000]
                .iter()
                .map(|offset| code_at(&alice.secret, now + offset))
                .collect();
            let code = (n..)
                .map(|k| format!("{:06}", 100_000 + k * 7_919))
                .find(|code| !near.contains(code))
                .expect("a wrong code");
            let body = json!({"username": "alice", "otp": code, "secret": secret});
            tokio::spawn(async move { mfa_login(&app, body).await })
        })
        .collect();
    let mut wrong = 0;
    let mut banned = 0;
    for guess in guesses {
        let (status, body) = guess.await.expect("task");
        match status {
            StatusCode::UNAUTHORIZED => {
                assert_eq!(body["message"], "Invalid OTP");
                wrong += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => banned += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        wrong < LIMIT,
        "{wrong} wrong codes evaluated below the limit of {LIMIT}"
    );
    assert_eq!(wrong + banned, 40);
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "otp": code_at(&alice.secret, now), "secret": secret}),
    )
    .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS);
}

async fn wrong_enrolment_codes_count_too(app: TestApp) {
    let (app, clock) = app
        .on_manual_clock(|settings| {
            settings.mfa.max_failures = 2;
        })
        .await;
    new_user(&app, "alice").await;
    let token = app.login("alice", PASSWORD).await;
    let (_, start) = app.post("/api/mfa/enable", &token, json!({})).await;
    let secret = secret_of(start["uri"].as_str().expect("uri"));
    let wrong = wrong_code_at(&secret, clock.now_millis());
    let (status, body) = app
        .post("/api/mfa/validate", &token, json!({"otp": wrong}))
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .post("/api/mfa/validate", &token, json!({"otp": wrong}))
        .await;
    assert_eq!(
        assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS),
        "Too many failed login attempts"
    );
    let (status, body) = app
        .post(
            "/api/mfa/validate",
            &token,
            json!({"otp": code_at(&secret, clock.now_millis())}),
        )
        .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS);
}

async fn secrets_and_backup_codes_are_unreadable_in_the_database(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let alice = enrolled_user(&app, &clock, "alice").await;
    assert!(
        app.database_contains("alice").await,
        "the search does see stored text"
    );
    assert!(!app.database_contains(&alice.secret).await, "base32 secret");
    assert!(
        !app.database_contains(&alice.secret.to_lowercase()).await,
        "base32 secret"
    );
    for code in &alice.backup_codes {
        assert!(!app.database_contains(code).await, "backup code {code}");
    }
    // A secret whose enrolment was started but not confirmed is sealed too.
    let token = app.login("admin", ADMIN_PASSWORD).await;
    let (_, start) = app.post("/api/mfa/enable", &token, json!({})).await;
    let pending = secret_of(start["uri"].as_str().expect("uri"));
    assert!(!app.database_contains(&pending).await);
}

async fn hostile_mfa_input_is_a_clear_4xx(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let alice = enrolled_user(&app, &clock, "alice").await;
    let token = app.login("admin", ADMIN_PASSWORD).await;
    let long = "9".repeat(10_000);
    for (path, body) in [
        ("/api/mfa/validate", json!({"otp": 123456})),
        ("/api/mfa/validate", json!(["123456"])),
        ("/api/mfa/validate", json!({})),
        ("/api/mfa/disable", json!({"otp": null, "backupCode": 5})),
        ("/api/mfa/regenerate/backupcodes", json!("otp")),
        ("/api/mfa/login", json!({"username": "alice"})),
        (
            "/api/mfa/login",
            json!({"username": "alice", "otp": "1", "secret": 7}),
        ),
    ] {
        let (status, answer) = app
            .request(
                reqwest::Method::POST,
                path,
                Some(&token),
                Some(body.clone()),
            )
            .await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST);
    }
    // Malformed or foreign secrets and codes: 401, never 500.
    let secret = mfa_secret(&app, "alice").await;
    let admin_login = app.login("admin", ADMIN_PASSWORD).await;
    for body in [
        json!({"username": "alice", "otp": "123456", "secret": "not-a-jwt"}),
        json!({"username": "alice", "otp": "123456", "secret": ""}),
        json!({"username": "alice", "otp": "123456", "secret": admin_login}),
        json!({"username": "alice", "otp": "12345a", "secret": secret}),
        json!({"username": "alice", "otp": long, "secret": secret}),
        json!({"username": "alice", "backupCode": "'; DROP TABLE users; --", "secret": secret}),
    ] {
        let (status, answer) = mfa_login(&app, body.clone()).await;
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST,
            "{body}: {status} {answer}"
        );
        assert!(answer["statusCode"].is_number(), "{answer}");
    }
    // Nothing stored was harmed: alice still logs in with a code.
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "otp": code_at(&alice.secret, clock.now_millis()), "secret": secret}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Without a token the self-service endpoints are 401.
    for path in [
        "/api/mfa/enable",
        "/api/mfa/validate",
        "/api/mfa/disable",
        "/api/mfa/regenerate/backupcodes",
    ] {
        let (status, body) = app
            .request(reqwest::Method::POST, path, None, Some(json!({})))
            .await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED);
    }
}

async fn the_login_secret_opens_nothing_else(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    enrolled_user(&app, &clock, "alice").await;
    let secret = mfa_secret(&app, "alice").await;
    for path in ["/api/session", "/api/listUsers", "/api/roles"] {
        let (status, body) = app.get(path, &secret).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = app.post("/api/mfa/enable", &secret, json!({})).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    // It expires after `mfa.verification_seconds` (600 by default).
    clock.advance(601_000);
    let (status, body) = mfa_login(
        &app,
        json!({"username": "alice", "backupCode": "00000000", "secret": secret}),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
}

/// The key that seals MFA secrets: generated into the data directory (owner-only) at first
/// start and reused; a server started later with another key refuses to start instead of
/// locking every MFA user out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_mfa_key_stops_the_start() {
    use gatehouse::startup::Application;
    use gatehouse_core::clock::SystemClock;
    let data_dir = tempfile::tempdir().expect("temporary directory");
    let settings = common::test_settings(data_dir.path().to_path_buf());
    let build = |settings: gatehouse::config::Settings| async move {
        Application::build_with_clock(&settings, Arc::new(SystemClock)).await
    };
    build(settings.clone()).await.expect("first start");
    let key_file = data_dir.path().join("mfa.key");
    let generated = std::fs::read_to_string(&key_file).expect("generated key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner reads the key");
    }
    build(settings.clone())
        .await
        .expect("a restart with the same key");
    // The same key given in the configuration is accepted too.
    let mut configured = settings.clone();
    configured.mfa.encryption_key = Some(generated.trim().to_owned());
    build(configured).await.expect("the same key, configured");
    // Another key: the start fails and says why.
    let mut other = settings.clone();
    other.mfa.encryption_key = Some(base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
    let error = match build(other).await {
        Ok(_) => panic!("a server with another MFA key started"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("mfa.encryption_key"), "{error}");
    // A malformed key, and a damaged key file, fail as well.
    let mut malformed = settings.clone();
    malformed.mfa.encryption_key = Some("c2hvcnQ=".to_owned());
    assert!(build(malformed).await.is_err());
    std::fs::write(&key_file, "not a key").expect("write");
    assert!(build(settings).await.is_err());
}

//! Account lockout of the ThingsBoard dialect (`maxFailedLoginAttempts`): the sequence of
//! answers, unlocking, resetting the count on success, and the guarantee that parallel
//! attempts never evaluate more than N passwords.

mod common;

use common::{assert_tb_error, tb_id, TestApp, ADMIN_PASSWORD};
use gatehouse_core::ratelimit::RateLimit;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    lockout_answers_in_thingsboards_sequence,
    successful_login_resets_the_count,
    unlocked_account_starts_counting_again,
    lockout_applies_to_the_connectware_login_too,
    no_lockout_without_a_limit,
    parallel_wrong_passwords_evaluate_at_most_n,
);

const INVALID: &str = "Invalid username or password";
const LOCKED: &str = "User account is locked due to security policy";
const INACTIVE: &str = "User account is not active";

/// The app again with login rate limits out of the way.
async fn without_rate_limits(app: TestApp) -> TestApp {
    let engine = app.engine;
    app.stop().await;
    TestApp::spawn_with(
        engine,
        |settings| {
            settings.auth.login_per_account = RateLimit {
                burst: 1000,
                per_minute: 1000,
            };
            settings.auth.login_per_address = RateLimit {
                burst: 1000,
                per_minute: 1000,
            };
        },
        None,
    )
    .await
}

/// Sets `maxFailedLoginAttempts` and creates an activated tenant administrator; returns
/// (system administrator token, user id).
async fn setup(app: &TestApp, max: u64, email: &str) -> (String, String) {
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    app.tb_update_security(&sys, |settings| {
        settings["maxFailedLoginAttempts"] = json!(max);
    })
    .await;
    let (id, _, _) = app
        .tb_new_user(
            &sys,
            json!({"email": email, "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &uuid::Uuid::new_v4().to_string())}),
            "right-pass-1",
        )
        .await;
    (sys, id)
}

async fn expect_login(app: &TestApp, user: &str, password: &str, message: &str) {
    let (status, body) = app.tb_try_login(user, password).await;
    assert_tb_error(status, &body, StatusCode::UNAUTHORIZED, 10, message);
}

async fn set_enabled(app: &TestApp, sys: &str, id: &str, enabled: bool) {
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled={enabled}"),
            sys,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn lockout_answers_in_thingsboards_sequence(app: TestApp) {
    let app = without_rate_limits(app).await;
    let (sys, id) = setup(&app, 3, "victim@example.com").await;
    let (live_token, live_refresh) = app.tb_login("victim@example.com", "right-pass-1").await;
    for _ in 0..3 {
        expect_login(&app, "victim@example.com", "wrong-pass-1", INVALID).await;
    }
    // The 4th attempt locks, whatever the password.
    expect_login(&app, "victim@example.com", "right-pass-1", LOCKED).await;
    expect_login(&app, "victim@example.com", "right-pass-1", INACTIVE).await;
    expect_login(&app, "victim@example.com", "wrong-pass-1", INACTIVE).await;
    let (status, user) = app.tb_get(&format!("/api/user/{id}"), &sys).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        user["additionalInfo"]["userCredentialsEnabled"], false,
        "{user}"
    );
    // The lockout stops password guessing; it does not end the live session (a guesser must
    // not be able to log the user out), but the session cannot be refreshed.
    let me = app.tb_me(&live_token).await;
    assert_eq!(me["email"], "victim@example.com");
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": live_refresh})),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "User account is not active",
    );
    // Other accounts are unaffected.
    app.tb_login("admin", ADMIN_PASSWORD).await;
    // Unlock.
    set_enabled(&app, &sys, &id, true).await;
    let (token, _) = app.tb_login("victim@example.com", "right-pass-1").await;
    let me = app.tb_me(&token).await;
    assert_eq!(me["additionalInfo"]["userCredentialsEnabled"], true);
}

async fn successful_login_resets_the_count(app: TestApp) {
    let app = without_rate_limits(app).await;
    setup(&app, 3, "flaky@example.com").await;
    for _ in 0..2 {
        expect_login(&app, "flaky@example.com", "wrong-pass-1", INVALID).await;
    }
    app.tb_login("flaky@example.com", "right-pass-1").await;
    for _ in 0..3 {
        expect_login(&app, "flaky@example.com", "wrong-pass-1", INVALID).await;
    }
    expect_login(&app, "flaky@example.com", "wrong-pass-1", LOCKED).await;
}

async fn unlocked_account_starts_counting_again(app: TestApp) {
    let app = without_rate_limits(app).await;
    let (sys, id) = setup(&app, 2, "again@example.com").await;
    for _ in 0..2 {
        expect_login(&app, "again@example.com", "wrong-pass-1", INVALID).await;
    }
    expect_login(&app, "again@example.com", "wrong-pass-1", LOCKED).await;
    set_enabled(&app, &sys, &id, true).await;
    // The count starts from zero: two more wrong passwords are merely wrong.
    for _ in 0..2 {
        expect_login(&app, "again@example.com", "wrong-pass-1", INVALID).await;
    }
    expect_login(&app, "again@example.com", "right-pass-1", LOCKED).await;
    // Enabling an enabled account also clears the count.
    set_enabled(&app, &sys, &id, true).await;
    expect_login(&app, "again@example.com", "wrong-pass-1", INVALID).await;
    set_enabled(&app, &sys, &id, true).await;
    // Without the clearing, the second of these would lock.
    expect_login(&app, "again@example.com", "wrong-pass-1", INVALID).await;
    expect_login(&app, "again@example.com", "wrong-pass-1", INVALID).await;
    set_enabled(&app, &sys, &id, true).await;
    app.tb_login("again@example.com", "right-pass-1").await;
}

async fn lockout_applies_to_the_connectware_login_too(app: TestApp) {
    let app = without_rate_limits(app).await;
    setup(&app, 2, "both@example.com").await;
    for _ in 0..2 {
        let (status, _) = app.try_login("both@example.com", "wrong-pass-1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = app.try_login("both@example.com", "right-pass-1").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the 3rd attempt locks in any dialect"
    );
    expect_login(&app, "both@example.com", "right-pass-1", INACTIVE).await;
}

async fn no_lockout_without_a_limit(app: TestApp) {
    let app = without_rate_limits(app).await;
    setup(&app, 0, "free@example.com").await;
    for _ in 0..12 {
        expect_login(&app, "free@example.com", "wrong-pass-1", INVALID).await;
    }
    app.tb_login("free@example.com", "right-pass-1").await;
}

async fn parallel_wrong_passwords_evaluate_at_most_n(app: TestApp) {
    let app = without_rate_limits(app).await;
    let (sys, id) = setup(&app, 5, "crowd@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let client = app.client.clone();
        let url = app.url("/api/auth/login");
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .json(&json!({"username": "crowd@example.com", "password": "wrong-pass-1"}))
                .send()
                .await
                .expect("request sent");
            let status = response.status();
            let body: Value = response.json().await.expect("JSON answer");
            (status, body)
        }));
    }
    let mut invalid = 0;
    let mut locked = 0;
    let mut inactive = 0;
    for task in tasks {
        let (status, body) = task.await.expect("task");
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["errorCode"], 10, "{body}");
        match body["message"].as_str().unwrap_or_default() {
            INVALID => invalid += 1,
            LOCKED => locked += 1,
            INACTIVE => inactive += 1,
            other => panic!("unexpected answer {other}: {body}"),
        }
    }
    assert_eq!(
        (invalid, locked, inactive),
        (5, 1, 54),
        "exactly 5 passwords evaluated, one lock"
    );
    expect_login(&app, "crowd@example.com", "right-pass-1", INACTIVE).await;
    let (_, user) = app.tb_get(&format!("/api/user/{id}"), &sys).await;
    assert_eq!(
        user["additionalInfo"]["userCredentialsEnabled"], false,
        "{user}"
    );
    set_enabled(&app, &sys, &id, true).await;
    app.tb_login("crowd@example.com", "right-pass-1").await;
}

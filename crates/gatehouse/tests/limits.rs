//! Abuse limits and HTTP hygiene: login rate limits (per account, per address), no user
//! enumeration by answer or by timing, security headers, CORS, and `/metrics`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_error, Engine, TestApp, ADMIN_PASSWORD};
use gatehouse_core::clock::ManualClock;
use gatehouse_core::hashing::Argon2Config;
use gatehouse_core::ratelimit::RateLimit;
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    failed_logins_are_limited_per_account_and_recover_with_time,
    logins_are_limited_per_address,
    forwarded_addresses_count_only_when_trusted,
    security_headers_are_on_every_answer,
    cors_is_off_by_default_and_follows_configuration,
    metrics_count_routes_logins_and_the_hashing_queue,
);

async fn with_clock(
    engine: Engine,
    adjust: impl FnOnce(&mut gatehouse::config::Settings),
) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_900_000_000_000));
    let app = TestApp::spawn_with(engine, adjust, Some(clock.clone())).await;
    (app, clock)
}

async fn failed_logins_are_limited_per_account_and_recover_with_time(app: TestApp) {
    let engine = app.engine;
    app.stop().await;
    let (app, clock) = with_clock(engine, |settings| {
        settings.auth.login_per_account = RateLimit {
            burst: 3,
            per_minute: 2,
        };
    })
    .await;
    // Successful logins give their attempt back: many in a row are fine.
    for _ in 0..5 {
        app.login("admin", ADMIN_PASSWORD).await;
    }
    for _ in 0..3 {
        assert_eq!(
            app.try_login("admin", "wrong-password").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let response = app
        .client
        .post(app.url("/api/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert_eq!(response.headers().get("retry-after").unwrap(), "30");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_error(
        StatusCode::TOO_MANY_REQUESTS,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
    );
    // Another account is not affected.
    app.create_user("bystander", "secret1", &[]).await;
    app.login("bystander", "secret1").await;
    // After the refill time one attempt is available again.
    clock.advance(30_000);
    app.login("admin", ADMIN_PASSWORD).await;
}

async fn logins_are_limited_per_address(app: TestApp) {
    let engine = app.engine;
    app.stop().await;
    let (app, _clock) = with_clock(engine, |settings| {
        settings.auth.login_per_address = RateLimit {
            burst: 6,
            per_minute: 1,
        };
    })
    .await;
    // The harness used one attempt to log the admin in.
    for index in 0..5 {
        let status = app.try_login(&format!("user-{index}"), "whatever1").await.0;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = app.try_login("admin", ADMIN_PASSWORD).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS);
    // Authenticated calls with an existing token are not login attempts.
    assert_eq!(
        app.get("/api/session", &app.admin_token).await.0,
        StatusCode::OK
    );
}

async fn forwarded_addresses_count_only_when_trusted(app: TestApp) {
    let login_from = |app: &TestApp, forwarded: &str| {
        app.client
            .post(app.url("/api/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"username": "admin", "password": "wrong-password"}))
            .send()
    };
    let engine = app.engine;
    app.stop().await;
    let limit = RateLimit {
        burst: 2,
        per_minute: 1,
    };
    // Trusted proxy: the right-most entry is the client; spoofed entries to its left are ignored.
    let (app, _clock) = with_clock(engine, |settings| {
        settings.auth.login_per_address = limit;
        settings.http.trust_forwarded_for = true;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            login_from(&app, "1.1.1.1, 10.0.0.1")
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&app, "9.9.9.9, 10.0.0.1")
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from(&app, "10.0.0.2").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
    // Untrusted (default): the header is ignored, everything comes from the loopback peer.
    let (app, _clock) = with_clock(engine, |settings| {
        settings.auth.login_per_address = RateLimit {
            burst: 3,
            per_minute: 1,
        };
    })
    .await;
    assert_eq!(
        login_from(&app, "1.1.1.1").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(&app, "2.2.2.2").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(&app, "3.3.3.3").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn security_headers_are_on_every_answer(app: TestApp) {
    for (path, token) in [
        ("/healthz", None),
        ("/api/session", Some(app.admin_token.as_str())),
        ("/api/nowhere", None),
        ("/api/session", None),
    ] {
        let mut request = app.client.get(app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let headers = response.headers();
        assert_eq!(
            headers.get("x-content-type-options").unwrap(),
            "nosniff",
            "{path}"
        );
        assert_eq!(headers.get("x-frame-options").unwrap(), "DENY", "{path}");
        assert_eq!(
            headers.get("referrer-policy").unwrap(),
            "no-referrer",
            "{path}"
        );
        assert_eq!(headers.get("cache-control").unwrap(), "no-store", "{path}");
        assert!(headers
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
    }
}

async fn cors_is_off_by_default_and_follows_configuration(app: TestApp) {
    let preflight = |app: &TestApp, origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/session"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let response = preflight(&app, "https://ui.example").await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "off by default"
    );
    let engine = app.engine;
    app.stop().await;
    let app = TestApp::spawn_with(
        engine,
        |settings| settings.http.cors_allowed_origins = vec!["https://ui.example".to_owned()],
        None,
    )
    .await;
    let response = preflight(&app, "https://ui.example").await.unwrap();
    assert!(response.status().is_success());
    assert_eq!(
        response
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://ui.example"
    );
    let response = preflight(&app, "https://evil.example").await.unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

async fn metrics_count_routes_logins_and_the_hashing_queue(app: TestApp) {
    let user = app.create_user("metered", "secret1", &[]).await;
    let id = user["id"].as_str().unwrap();
    let route =
        r#"gatehouse_http_requests_total{method="GET",route="/api/users/{id}",status="200"}"#;
    let before = app.metric_value(route).await;
    let failures_before = app
        .metric_value(r#"gatehouse_logins_total{outcome="failure"}"#)
        .await;
    for _ in 0..3 {
        assert_eq!(
            app.get(&format!("/api/users/{id}"), &app.admin_token)
                .await
                .0,
            StatusCode::OK
        );
    }
    assert_eq!(
        app.try_login("metered", "wrong-one").await.0,
        StatusCode::UNAUTHORIZED
    );
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert!(response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    // Other tests in this process share the recorder, so counts only grow by at least ours.
    assert!(app.metric_value(route).await >= before + 3.0, "{text}");
    assert!(
        app.metric_value(r#"gatehouse_logins_total{outcome="failure"}"#)
            .await
            >= failures_before + 1.0
    );
    assert!(
        !text.contains(id),
        "route templates, never raw ids, label the series"
    );
    assert!(
        text.contains("gatehouse_http_request_duration_seconds_bucket"),
        "latency histograms"
    );
    assert!(text.contains("gatehouse_password_hash_queue_depth"));
}

/// Unknown users and wrong passwords give the same answer in about the same time: the login
/// verifies a decoy hash when the user does not exist. Uses the production argon2id cost so the
/// difference would be large (a hash vs none) if the decoy were missing; compares medians of
/// interleaved samples with a wide tolerance so a loaded machine does not make it flaky.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_and_wrong_passwords_take_the_same_time() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        |settings| {
            settings.hashing.argon2 = Argon2Config::default();
            // Many failures in a row: the rate limits are not under test here.
            settings.auth.login_per_account = RateLimit {
                burst: 0,
                per_minute: 0,
            };
        },
        None,
    )
    .await;
    app.create_user("timed-user", "secret1", &[]).await;
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for round in 0..16 {
        for (username, samples) in [("no-such-user", &mut unknown), ("timed-user", &mut wrong)] {
            let started = Instant::now();
            let (status, body) = app
                .try_login(username, &format!("bad-password-{round}"))
                .await;
            samples.push(started.elapsed());
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(body["message"], "invalid username or password");
        }
    }
    let median = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2].as_secs_f64()
    };
    let (unknown, wrong) = (median(&mut unknown), median(&mut wrong));
    let ratio = unknown / wrong;
    assert!(
        (0.5..=2.0).contains(&ratio),
        "unknown user {unknown:.4}s vs wrong password {wrong:.4}s"
    );
}

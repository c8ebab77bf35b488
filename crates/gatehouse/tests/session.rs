//! Login, session and token lifecycle (C25, C26, C8, C9), authentication transports, and the
//! HTTP permission check that guards every Connectware endpoint.

mod common;

use common::{assert_error, TestApp, ADMIN_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::json;

both_engines!(
    admin_logs_in_and_sees_its_permissions,
    wrong_password_unknown_user_and_malformed_names_get_the_same_answer,
    token_is_accepted_as_bearer_and_as_api_token,
    missing_and_forged_tokens_are_refused,
    login_honours_lifetime_and_label,
    login_rejects_bad_lifetimes_and_bodies,
    deleting_a_token_revokes_it_immediately,
    deleting_all_tokens_revokes_every_session,
    deleted_user_token_is_refused,
    http_permissions_decide_access,
    minimum_access_reads_own_session_only,
    readonly_permission_allows_get_but_not_write,
    expired_token_is_refused,
);

async fn admin_logs_in_and_sees_its_permissions(app: TestApp) {
    let (status, session) = app.get("/api/session", &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["username"], "admin");
    assert_eq!(session["mfa"], json!({"enabled": false, "enforced": false}));
    let permissions = session["permissions"].as_array().unwrap();
    for context in ["http", "mqtt"] {
        assert!(
            permissions.iter().any(|p| p["resource"] == "#"
                && p["operation"] == "readWrite"
                && p["context"] == context),
            "admin lacks # readWrite {context}: {session}"
        );
    }
    assert!(session["expiresAt"].as_str().unwrap().ends_with('Z'));
}

async fn wrong_password_unknown_user_and_malformed_names_get_the_same_answer(app: TestApp) {
    let mut answers = Vec::new();
    for (username, password) in [
        ("admin", "wrong-password"),
        ("nobody-here", "whatever1"),
        ("x", "whatever1"),
    ] {
        let (status, body) = app.try_login(username, password).await;
        let message = assert_error(status, &body, StatusCode::UNAUTHORIZED);
        answers.push(message);
    }
    assert!(
        answers.windows(2).all(|pair| pair[0] == pair[1]),
        "answers differ: {answers:?}"
    );
}

async fn token_is_accepted_as_bearer_and_as_api_token(app: TestApp) {
    let (status, _) = app.get("/api/session", &app.admin_token).await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/api/session?apiToken={}", app.admin_token);
    let (status, body) = app.request(Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "admin");
}

async fn missing_and_forged_tokens_are_refused(app: TestApp) {
    let (status, body) = app.request(Method::GET, "/api/session", None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    let mut forged = app.admin_token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for token in [forged.as_str(), "garbage", "a.b.c", ""] {
        let (status, body) = app.get("/api/session", token).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED);
    }
    let response = app
        .client
        .get(app.url("/api/session"))
        .header("authorization", format!("Basic {}", app.admin_token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn login_honours_lifetime_and_label(app: TestApp) {
    let (status, body) = app
        .request(
            Method::POST,
            "/api/login",
            None,
            Some(json!({"username": "admin", "password": ADMIN_PASSWORD, "expireTimeInHours": 99999, "label": "ci-token"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["needsMfa"], false);
    assert_eq!(body["enforceMFAEnrollment"], false);
    assert!(
        body.get("secret").is_none(),
        "no MFA step, no secret: {body}"
    );
    let expires = body["expiresAt"].as_str().unwrap();
    let year: i32 = expires[..4].parse().unwrap();
    assert!(year >= 2037, "99999 hours is over 11 years: {expires}");
    let admin = app
        .get("/api/listUsers?usernames=admin", &app.admin_token)
        .await
        .1;
    let admin_id = admin["users"][0]["id"].as_str().unwrap().to_owned();
    let (status, tokens) = app
        .get(&format!("/api/users/{admin_id}/tokens"), &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let labelled: Vec<_> = tokens
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["label"] == "ci-token")
        .collect();
    assert_eq!(labelled.len(), 1, "{tokens}");
    assert_eq!(labelled[0]["expiresAt"], body["expiresAt"]);
    assert_eq!(labelled[0]["fingerprint"].as_str().unwrap().len(), 64);
}

async fn login_rejects_bad_lifetimes_and_bodies(app: TestApp) {
    for hours in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!("ten"),
        json!(100_000_000),
    ] {
        let (status, body) = app
            .request(
                Method::POST,
                "/api/login",
                None,
                Some(json!({"username": "admin", "password": ADMIN_PASSWORD, "expireTimeInHours": hours})),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    for body in [
        json!({}),
        json!({"username": "admin"}),
        json!([]),
        json!("admin"),
    ] {
        let (status, answer) = app
            .request(Method::POST, "/api/login", None, Some(body))
            .await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST);
    }
    let response = app
        .client
        .post(app.url("/api/login"))
        .header("content-type", "application/json")
        .body("{\"username\": \"admin\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

async fn deleting_a_token_revokes_it_immediately(app: TestApp) {
    let role = app.role_id("minimum-access").await;
    let user = app.create_user("device-a", "secret1", &[&role]).await;
    let user_id = user["id"].as_str().unwrap();
    let first = app.login("device-a", "secret1").await;
    let second = app.login("device-a", "secret1").await;
    let (_, tokens) = app
        .get(&format!("/api/users/{user_id}/tokens"), &app.admin_token)
        .await;
    assert_eq!(tokens.as_array().unwrap().len(), 2, "{tokens}");
    let token_id = tokens[0]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .delete(
            &format!("/api/users/{user_id}/tokens?id={token_id}"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let statuses = [
        app.get("/api/session", &first).await.0,
        app.get("/api/session", &second).await.0,
    ];
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        1,
        "exactly the deleted token is refused: {statuses:?}"
    );
    // By fingerprint too, and unknown ids are 404.
    let (_, tokens) = app
        .get(&format!("/api/users/{user_id}/tokens"), &app.admin_token)
        .await;
    let fingerprint = tokens[0]["fingerprint"].as_str().unwrap().to_owned();
    let (status, _) = app
        .delete(
            &format!("/api/users/{user_id}/tokens?id={fingerprint}"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/session", &first).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/session", &second).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = app
        .delete(
            &format!("/api/users/{user_id}/tokens?id=nope"),
            &app.admin_token,
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
}

async fn deleting_all_tokens_revokes_every_session(app: TestApp) {
    let role = app.role_id("minimum-access").await;
    let user = app.create_user("device-b", "secret1", &[&role]).await;
    let user_id = user["id"].as_str().unwrap();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(app.login("device-b", "secret1").await);
    }
    let (status, _) = app
        .delete(
            &format!("/api/users/{user_id}/tokens"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for token in &tokens {
        assert_eq!(
            app.get("/api/session", token).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (_, listed) = app
        .get(&format!("/api/users/{user_id}/tokens"), &app.admin_token)
        .await;
    assert_eq!(listed, json!([]));
    // The admin's own token is untouched.
    assert_eq!(
        app.get("/api/session", &app.admin_token).await.0,
        StatusCode::OK
    );
    let unknown = uuid::Uuid::new_v4();
    let (status, body) = app
        .get(&format!("/api/users/{unknown}/tokens"), &app.admin_token)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
}

async fn deleted_user_token_is_refused(app: TestApp) {
    let role = app.role_id("minimum-access").await;
    let user = app.create_user("leaver", "secret1", &[&role]).await;
    let token = app.login("leaver", "secret1").await;
    assert_eq!(app.get("/api/session", &token).await.0, StatusCode::OK);
    let (status, _) = app
        .delete(
            &format!("/api/users/{}", user["id"].as_str().unwrap()),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/session", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn http_permissions_decide_access(app: TestApp) {
    let role = app
        .create_role(
            "user-readers",
            json!([{"resource": "/api/listUsers", "operation": "read", "context": "http"},
                   {"resource": "/api/users/+", "operation": "read", "context": "http"}]),
        )
        .await;
    app.create_user("reader", "secret1", &[role["id"].as_str().unwrap()])
        .await;
    let token = app.login("reader", "secret1").await;
    assert_eq!(app.get("/api/listUsers", &token).await.0, StatusCode::OK);
    let (status, body) = app.get("/api/roles", &token).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    // `+` covers one level only.
    let admin_id = app.get("/api/listUsers?usernames=admin", &token).await.1["users"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get(&format!("/api/users/{admin_id}"), &token).await.0,
        StatusCode::OK
    );
    let (status, body) = app
        .get(&format!("/api/users/{admin_id}/tokens"), &token)
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    // Read does not grant write.
    let (status, body) = app
        .post(
            "/api/users",
            &token,
            json!({"username": "sneaky", "password": "secret1"}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    // And the refused request changed nothing.
    let (_, users) = app
        .get("/api/listUsers?usernames=sneaky", &app.admin_token)
        .await;
    assert_eq!(users["users"], json!([]));
}

async fn minimum_access_reads_own_session_only(app: TestApp) {
    let role = app.role_id("minimum-access").await;
    app.create_user("minimal", "secret1", &[&role]).await;
    let token = app.login("minimal", "secret1").await;
    let (status, session) = app.get("/api/session", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(session["username"], "minimal");
    for path in ["/api/listUsers", "/api/roles", "/api/permissions/ids"] {
        let (status, body) = app.get(path, &token).await;
        assert_error(status, &body, StatusCode::FORBIDDEN);
    }
    // minimum-access includes changing one's own password.
    let (status, body) = app
        .put(
            "/api/users/change-password",
            &token,
            json!({"password": "secret1", "newPassword": "secret2"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    app.login("minimal", "secret2").await;
}

async fn readonly_permission_allows_get_but_not_write(app: TestApp) {
    let role = app
        .create_role(
            "roles-read",
            json!([{"resource": "/api/roles/#", "operation": "read", "context": "http"}]),
        )
        .await;
    app.create_user("roles-reader", "secret1", &[role["id"].as_str().unwrap()])
        .await;
    let token = app.login("roles-reader", "secret1").await;
    assert_eq!(
        app.get("/api/roles", &token).await.0,
        StatusCode::OK,
        "`/api/roles/#` covers the parent `/api/roles`"
    );
    assert_eq!(app.get("/api/roles/page", &token).await.0, StatusCode::OK);
    let (status, body) = app
        .post("/api/roles", &token, json!({"name": "mine"}))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
}

async fn expired_token_is_refused(app: TestApp) {
    // Tokens live at least an hour; a manual clock moves past it without sleeping.
    let engine = app.engine;
    app.stop().await;
    let clock = std::sync::Arc::new(gatehouse_core::clock::ManualClock::new(1_900_000_000_000));
    let app = TestApp::spawn_with(engine, |_| {}, Some(clock.clone())).await;
    let (status, body) = app
        .request(
            Method::POST,
            "/api/login",
            None,
            Some(json!({"username": "admin", "password": ADMIN_PASSWORD, "expireTimeInHours": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = body["token"].as_str().unwrap().to_owned();
    clock.advance(3_599_000);
    assert_eq!(app.get("/api/session", &token).await.0, StatusCode::OK);
    clock.advance(1_000);
    assert_eq!(
        app.get("/api/session", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
}

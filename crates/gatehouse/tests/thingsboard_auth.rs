//! The ThingsBoard dialect's authentication (T1–T6): login, JWT claims, transports, refresh
//! with rotation, logout, password change, the password policy and the security settings,
//! password expiry and forced resets.

mod common;

use common::{
    assert_error, assert_tb_error, assert_tb_shape, jwt_claims, jwt_payload_text, tb_id, tb_pair,
    Engine, TestApp, ADMIN_PASSWORD, TB_NULL_UUID,
};
use gatehouse_core::pairs::PairAccessClaims;
use gatehouse_core::tokens::TokenKeys;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    admin_login_answers_a_pair_with_thingsboard_claims,
    login_lifetimes_and_issuer_follow_the_settings,
    wrong_password_and_unknown_user_get_identical_answers,
    login_refuses_other_methods_and_bad_bodies,
    login_by_email_after_the_email_changed,
    connectware_user_logs_in_as_customer_user,
    auth_user_describes_the_caller,
    x_authorization_wins_and_authorization_is_the_fallback,
    missing_garbage_and_forged_tokens_are_refused,
    connectware_token_works_as_bearer,
    refresh_rotates_and_reuse_revokes_the_session,
    parallel_refreshes_with_one_token_have_one_winner,
    access_token_is_not_a_refresh_token,
    refresh_token_expires_with_the_clock,
    access_token_expires_with_the_clock,
    logout_ends_only_that_session,
    change_password_answers_a_pair_and_outdates_every_older_token,
    change_password_refusals,
    change_password_follows_the_policy_and_the_reuse_rule,
    security_settings_round_trip_for_the_system_administrator,
    security_settings_are_for_system_administrators_only,
    security_settings_refuse_out_of_range_values,
    password_policy_is_public_and_applies_to_connectware,
    expired_password_answers_a_reset_token_that_works,
    forced_reset_refuses_passwords_that_break_the_policy,
);

const ACCESS_ORDER: [&str; 12] = [
    "\"sub\"",
    "\"userId\"",
    "\"scopes\"",
    "\"sessionId\"",
    "\"exp\"",
    "\"iss\"",
    "\"iat\"",
    "\"enabled\"",
    "\"isPublic\"",
    "\"tenantId\"",
    "\"customerId\"",
    "}",
];

/// Creates a tenant administrator (activated) in a fresh tenant; returns (id, token).
async fn tenant_admin(
    app: &TestApp,
    sys_token: &str,
    email: &str,
    password: &str,
) -> (String, String) {
    let tenant = uuid::Uuid::new_v4().to_string();
    let (id, token, _) = app
        .tb_new_user(
            sys_token,
            json!({"email": email, "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant)}),
            password,
        )
        .await;
    (id, token)
}

async fn admin_login_answers_a_pair_with_thingsboard_claims(app: TestApp) {
    let (status, body) = app.tb_try_login("admin", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2, "only token and refreshToken: {body}");
    let (token, refresh) = tb_pair(&body);

    // HS512, like ThingsBoard.
    let header = {
        use base64::Engine as _;
        let part = token.split('.').next().unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    assert_eq!(header["alg"], "HS512", "{header}");

    let me = app.tb_me(&token).await;
    let admin_id = me["id"]["id"].as_str().unwrap().to_owned();
    let claims = jwt_claims(&token);
    assert_eq!(claims["sub"], "admin", "{claims}");
    assert_eq!(claims["userId"], admin_id.as_str());
    assert_eq!(claims["scopes"], json!(["SYS_ADMIN"]));
    assert_eq!(claims["iss"], "thingsboard.io");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        9000,
        "{claims}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (claims["iat"].as_i64().unwrap() - now).abs() <= 5,
        "iat in seconds: {claims}"
    );
    assert_eq!(claims["enabled"], true);
    assert_eq!(claims["isPublic"], false);
    assert_eq!(claims["tenantId"], TB_NULL_UUID);
    assert_eq!(claims["customerId"], TB_NULL_UUID);
    assert!(
        claims.get("firstName").is_none(),
        "no firstName when unset: {claims}"
    );
    assert!(
        claims.get("lastName").is_none(),
        "no lastName when unset: {claims}"
    );
    let session_id = claims["sessionId"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(session_id).is_ok(), "{claims}");

    // Claims in ThingsBoard's order.
    let text = jwt_payload_text(&token);
    let positions: Vec<usize> = ACCESS_ORDER
        .iter()
        .map(|key| {
            text.find(key)
                .unwrap_or_else(|| panic!("{key} missing in {text}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "claim order: {text}"
    );

    let refresh_claims = jwt_claims(&refresh);
    assert_eq!(
        refresh_claims["scopes"],
        json!(["REFRESH_TOKEN"]),
        "{refresh_claims}"
    );
    assert_eq!(refresh_claims["sessionId"], session_id);
    assert_eq!(refresh_claims["userId"], admin_id.as_str());
    assert_eq!(refresh_claims["sub"], "admin");
    assert_eq!(refresh_claims["iss"], "thingsboard.io");
    assert_eq!(refresh_claims["isPublic"], false);
    assert!(refresh_claims["jti"].is_string());
    assert_eq!(
        refresh_claims["exp"].as_i64().unwrap() - refresh_claims["iat"].as_i64().unwrap(),
        604_800
    );

    // Every login is a new session.
    let (second, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    assert_ne!(jwt_claims(&second)["sessionId"], claims["sessionId"]);

    // Names appear in the claims once set.
    let (status, updated) = app
        .tb_post(
            "/api/user",
            &token,
            json!({"id": tb_id("USER", &admin_id), "email": "root@example.com", "authority": "SYS_ADMIN", "firstName": "Ada", "lastName": "Lovelace"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let (named, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let claims = jwt_claims(&named);
    assert_eq!(claims["firstName"], "Ada", "{claims}");
    assert_eq!(claims["lastName"], "Lovelace", "{claims}");
    assert_eq!(
        claims["sub"], "root@example.com",
        "sub is the email: {claims}"
    );
}

async fn login_lifetimes_and_issuer_follow_the_settings(app: TestApp) {
    let engine = app.engine;
    app.stop().await;
    let app = TestApp::spawn_with(
        engine,
        |settings| {
            settings.auth.token_pair.access_token_seconds = 120;
            settings.auth.token_pair.refresh_token_seconds = 3600;
            settings.auth.token_pair.issuer = "gatehouse.test".to_owned();
        },
        None,
    )
    .await;
    let (token, refresh) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let claims = jwt_claims(&token);
    assert_eq!(claims["iss"], "gatehouse.test");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
    let claims = jwt_claims(&refresh);
    assert_eq!(claims["iss"], "gatehouse.test");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    app.tb_me(&token).await;
}

async fn wrong_password_and_unknown_user_get_identical_answers(app: TestApp) {
    let mut bodies = Vec::new();
    for (username, password) in [
        ("admin", "wrong-password"),
        ("nobody@example.com", "whatever1"),
        ("no-such-user", "whatever1"),
        ("x", "whatever1"),
    ] {
        let (status, mut body) = app.tb_try_login(username, password).await;
        assert_tb_error(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            10,
            "Invalid username or password",
        );
        body.as_object_mut().unwrap().remove("timestamp");
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    // Login names are case-sensitive, like ThingsBoard's default.
    let (status, body) = app.tb_try_login("ADMIN", ADMIN_PASSWORD).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
    // The admin still logs in.
    app.tb_login("admin", ADMIN_PASSWORD).await;
}

async fn login_refuses_other_methods_and_bad_bodies(app: TestApp) {
    // 405 with ThingsBoard's login-filter message (ThingsBoard says 401; see docs/thingsboard.md).
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::TRACE] {
        let (status, body) = app
            .tb_request(method.clone(), "/api/auth/login", None, None)
            .await;
        assert_tb_error(
            status,
            &body,
            StatusCode::METHOD_NOT_ALLOWED,
            10,
            "Authentication method not supported",
        );
    }
    let (status, body) = app
        .tb_request(Method::GET, "/api/auth/token", None, None)
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        10,
        "Authentication method not supported",
    );

    let raw_bodies: [&[u8]; 9] = [
        b"hello",
        b"",
        b"{",
        b"[]",
        b"[{\"username\":\"admin\",\"password\":\"admin-test-password\"}]",
        b"null",
        b"{\"username\":\"admin\"}",
        b"{\"password\":\"admin-test-password\"}",
        b"{\"username\":5,\"password\":\"admin-test-password\"}",
    ];
    for raw in raw_bodies {
        for path in ["/api/auth/login", "/api/auth/token"] {
            let answer = app
                .tb_send(
                    Method::POST,
                    path,
                    &[("content-type", "application/json")],
                    Some(raw.to_vec()),
                )
                .await;
            assert_tb_error(
                answer.status,
                &answer.json(),
                StatusCode::UNAUTHORIZED,
                10,
                "Authentication failed",
            );
        }
    }
    // Right body, wrong content type: still JSON to ThingsBoard clients; must not be 500.
    let answer = app
        .tb_send(
            Method::POST,
            "/api/auth/login",
            &[("content-type", "text/plain")],
            Some(
                serde_json::to_vec(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
                    .unwrap(),
            ),
        )
        .await;
    assert!(
        answer.status == StatusCode::OK || answer.status.is_client_error(),
        "{} {}",
        answer.status,
        answer.text
    );
    app.tb_login("admin", ADMIN_PASSWORD).await;
}

async fn login_by_email_after_the_email_changed(app: TestApp) {
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let tenant = uuid::Uuid::new_v4().to_string();
    let (id, _, _) = app
        .tb_new_user(
            &sys,
            json!({"email": "first@example.com", "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant)}),
            "tenant-pass-1",
        )
        .await;
    // The login name is the email given at creation.
    app.tb_login("first@example.com", "tenant-pass-1").await;
    let (status, body) = app
        .tb_post(
            "/api/user",
            &sys,
            json!({"id": tb_id("USER", &id), "email": "second@example.com", "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], "second@example.com");
    // The new email logs in; the old one is nobody's any more (as in ThingsBoard).
    let (token, _) = app.tb_login("second@example.com", "tenant-pass-1").await;
    let claims = jwt_claims(&token);
    assert_eq!(claims["sub"], "second@example.com");
    assert_eq!(claims["scopes"], json!(["TENANT_ADMIN"]));
    assert_eq!(claims["tenantId"], tenant.as_str());
    assert_eq!(claims["customerId"], TB_NULL_UUID);
    let (status, body) = app.tb_try_login("first@example.com", "tenant-pass-1").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
    let (status, body) = app.tb_try_login("second@example.com", "wrong-pass-1").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );

    // A user whose login name is not an email (the bootstrap `admin`) gives itself an email:
    // it then logs in by login name or by email.
    let admin_id = app.tb_me(&sys).await["id"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .tb_post(
            "/api/user",
            &sys,
            json!({"id": tb_id("USER", &admin_id), "email": "root@example.com", "authority": "SYS_ADMIN"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], "root@example.com");
    let (by_email, _) = app.tb_login("root@example.com", ADMIN_PASSWORD).await;
    assert_eq!(jwt_claims(&by_email)["sub"], "root@example.com");
    assert_eq!(jwt_claims(&by_email)["userId"], admin_id.as_str());
    let (by_name, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    assert_eq!(jwt_claims(&by_name)["userId"], admin_id.as_str());
    let (status, body) = app.tb_try_login("root@example.com", "wrong-pass-1").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
}

async fn connectware_user_logs_in_as_customer_user(app: TestApp) {
    let created = app.create_user("cw-user", "cw-password-1", &[]).await;
    let (token, _) = app.tb_login("cw-user", "cw-password-1").await;
    let claims = jwt_claims(&token);
    assert_eq!(claims["scopes"], json!(["CUSTOMER_USER"]), "{claims}");
    assert_eq!(claims["sub"], "cw-user");
    assert_eq!(claims["tenantId"], TB_NULL_UUID);
    assert_eq!(claims["customerId"], TB_NULL_UUID);
    let me = app.tb_me(&token).await;
    assert_eq!(me["authority"], "CUSTOMER_USER", "{me}");
    assert_eq!(me["id"]["id"], created["id"], "{me} vs {created}");
    assert_eq!(me["email"], "cw-user");
    assert_eq!(me["name"], "cw-user");
}

async fn auth_user_describes_the_caller(app: TestApp) {
    let (token, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let me = app.tb_me(&token).await;
    assert_eq!(me["id"]["entityType"], "USER", "{me}");
    assert!(uuid::Uuid::parse_str(me["id"]["id"].as_str().unwrap()).is_ok());
    assert!(me["createdTime"].is_i64(), "{me}");
    assert_eq!(me["tenantId"], tb_id("TENANT", TB_NULL_UUID));
    assert_eq!(me["customerId"], tb_id("CUSTOMER", TB_NULL_UUID));
    assert_eq!(me["email"], "admin");
    assert_eq!(me["name"], "admin");
    assert_eq!(me["authority"], "SYS_ADMIN");
    assert_eq!(me["firstName"], Value::Null);
    assert_eq!(me["lastName"], Value::Null);
    assert_eq!(me["phone"], Value::Null);
    assert_eq!(me["additionalInfo"]["userCredentialsEnabled"], true, "{me}");
    // Without a token: 401 "Authentication failed".
    let (status, body) = app
        .tb_request(Method::GET, "/api/auth/user", None, None)
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Authentication failed",
    );
}

async fn x_authorization_wins_and_authorization_is_the_fallback(app: TestApp) {
    let (token, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let good = format!("Bearer {token}");
    // X-Authorization wins over Authorization.
    let answer = app
        .tb_send(
            Method::GET,
            "/api/auth/user",
            &[
                ("x-authorization", &good),
                ("authorization", "Bearer garbage"),
            ],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let answer = app
        .tb_send(
            Method::GET,
            "/api/auth/user",
            &[
                ("x-authorization", "Bearer garbage"),
                ("authorization", &good),
            ],
            None,
        )
        .await;
    assert_tb_error(
        answer.status,
        &answer.json(),
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
    // Authorization alone.
    let answer = app
        .tb_send(
            Method::GET,
            "/api/auth/user",
            &[("authorization", &good)],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["authority"], "SYS_ADMIN");
    // A blank X-Authorization is no credential: the request is not served on Authorization.
    let answer = app
        .tb_send(
            Method::GET,
            "/api/auth/user",
            &[("x-authorization", ""), ("authorization", &good)],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    assert_eq!(answer.json()["message"], "Authentication failed");
    // The scheme is not case-sensitive.
    let answer = app
        .tb_send(
            Method::GET,
            "/api/auth/user",
            &[("x-authorization", &format!("bearer {token}"))],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

async fn missing_garbage_and_forged_tokens_are_refused(app: TestApp) {
    let (token, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    // No header, and headers without a usable scheme.
    for headers in [
        vec![],
        vec![("x-authorization", "Bearer")],
        vec![("x-authorization", "Basic YWRtaW46YWRtaW4=")],
        vec![("x-authorization", token.as_str())],
    ] {
        let answer = app
            .tb_send(Method::GET, "/api/auth/user", &headers, None)
            .await;
        assert_tb_error(
            answer.status,
            &answer.json(),
            StatusCode::UNAUTHORIZED,
            10,
            "Authentication failed",
        );
    }
    // Not a JWT at all: like a bad password.
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJIUzUxMiJ9"] {
        let (status, body) = app.tb_get("/api/auth/user", garbage).await;
        assert_tb_error(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            10,
            "Invalid username or password",
        );
    }
    // Tampered payload (signature no longer matches): "expired", code 11.
    let mut claims = jwt_claims(&token);
    claims["scopes"] = json!(["SYS_ADMIN"]);
    claims["userId"] = json!(uuid::Uuid::new_v4().to_string());
    let tampered = {
        use base64::Engine as _;
        let parts: Vec<&str> = token.split('.').collect();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims).unwrap());
        format!("{}.{}.{}", parts[0], payload, parts[2])
    };
    let (status, body) = app.tb_get("/api/auth/user", &tampered).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    // Broken signature.
    let mut broken = token.clone();
    let last = broken.pop().unwrap();
    broken.push(if last == 'A' { 'B' } else { 'A' });
    let (status, body) = app.tb_get("/api/auth/user", &broken).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    // Well-formed claims of a real user, signed with another key.
    let real = jwt_claims(&token);
    let foreign = TokenKeys::from_secret(&TokenKeys::generate_secret()).unwrap();
    let forged = foreign
        .sign(&PairAccessClaims {
            sub: "admin".into(),
            user_id: real["userId"].as_str().unwrap().into(),
            scopes: vec!["SYS_ADMIN".into()],
            session_id: real["sessionId"].as_str().unwrap().into(),
            exp: real["exp"].as_i64().unwrap(),
            iss: "thingsboard.io".into(),
            iat: real["iat"].as_i64().unwrap(),
            first_name: None,
            last_name: None,
            enabled: true,
            is_public: false,
            tenant_id: TB_NULL_UUID.into(),
            customer_id: TB_NULL_UUID.into(),
        })
        .unwrap();
    let (status, body) = app.tb_get("/api/auth/user", &forged).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    // A refresh token is not an access token.
    let (_, refresh) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, body) = app.tb_get("/api/auth/user", &refresh).await;
    let (code, _) = assert_tb_shape(status, &body, StatusCode::UNAUTHORIZED);
    assert!(code == 10 || code == 11, "{body}");
    // A token of another installation (same claims shape, other key).
    let other = TestApp::spawn(Engine::Sqlite).await;
    let (foreign_token, _) = other.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, body) = app.tb_get("/api/auth/user", &foreign_token).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    other.stop().await;
    // The genuine token still works.
    app.tb_me(&token).await;
}

async fn connectware_token_works_as_bearer(app: TestApp) {
    let me = app.tb_me(&app.admin_token).await;
    assert_eq!(me["authority"], "SYS_ADMIN", "{me}");
    assert_eq!(me["email"], "admin");
    let answer = app
        .tb_send(
            Method::GET,
            "/api/auth/user",
            &[("authorization", &format!("Bearer {}", app.admin_token))],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // A Connectware token can also administer: read the security settings.
    let (status, body) = app
        .tb_get("/api/admin/securitySettings", &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn refresh(app: &TestApp, refresh_token: &str) -> (StatusCode, Value) {
    app.tb_request(
        Method::POST,
        "/api/auth/token",
        None,
        Some(json!({"refreshToken": refresh_token})),
    )
    .await
}

async fn refresh_rotates_and_reuse_revokes_the_session(app: TestApp) {
    let (token1, refresh1) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (other_token, other_refresh) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, body) = refresh(&app, &refresh1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (token2, refresh2) = tb_pair(&body);
    assert_ne!(refresh2, refresh1);
    // Same session, same claims shape.
    let claims = jwt_claims(&token2);
    assert_eq!(claims["sessionId"], jwt_claims(&token1)["sessionId"]);
    assert_eq!(claims["scopes"], json!(["SYS_ADMIN"]));
    assert_eq!(jwt_claims(&refresh2)["sessionId"], claims["sessionId"]);
    app.tb_me(&token2).await;
    // The used refresh token is refused, and that revokes the session.
    let (status, body) = refresh(&app, &refresh1).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Token is outdated",
    );
    let (status, body) = app.tb_get("/api/auth/user", &token2).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    let (status, body) = app.tb_get("/api/auth/user", &token1).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    let (status, body) = refresh(&app, &refresh2).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Token is outdated",
    );
    // The other login's session is untouched.
    app.tb_me(&other_token).await;
    let (status, body) = refresh(&app, &other_refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Garbage refresh tokens.
    let (status, body) = refresh(&app, "garbage").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
}

async fn parallel_refreshes_with_one_token_have_one_winner(app: TestApp) {
    let (_, refresh_token) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let client = app.client.clone();
        let url = app.url("/api/auth/token");
        let body = json!({"refreshToken": refresh_token});
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.expect("sent");
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON"))
        }));
    }
    let mut winners = 0;
    for task in tasks {
        let (status, body) = task.await.expect("task");
        if status == StatusCode::OK {
            winners += 1;
            tb_pair(&body);
        } else {
            assert_tb_error(
                status,
                &body,
                StatusCode::UNAUTHORIZED,
                10,
                "Token is outdated",
            );
        }
    }
    assert_eq!(winners, 1, "exactly one refresh wins");
    // Other sessions are untouched.
    let (token, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    app.tb_me(&token).await;
}

async fn access_token_is_not_a_refresh_token(app: TestApp) {
    let (token, refresh_token) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, body) = refresh(&app, &token).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid refresh token",
    );
    // A Connectware token neither.
    let (status, body) = refresh(&app, &app.admin_token).await;
    let (code, _) = assert_tb_shape(status, &body, StatusCode::UNAUTHORIZED);
    assert!(code == 10 || code == 11, "{body}");
    // Nothing was revoked by that.
    app.tb_me(&token).await;
    let (status, body) = refresh(&app, &refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn refresh_token_expires_with_the_clock(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let (_, refresh1) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (_, refresh2) = app.tb_login("admin", ADMIN_PASSWORD).await;
    clock.advance(604_799_000);
    let (status, body) = refresh(&app, &refresh1).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "still valid one second before expiry: {body}"
    );
    clock.advance(2_000);
    let (status, body) = refresh(&app, &refresh2).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
}

async fn access_token_expires_with_the_clock(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let (token, refresh_token) = app.tb_login("admin", ADMIN_PASSWORD).await;
    clock.advance(8_999_000);
    app.tb_me(&token).await;
    clock.advance(2_000);
    let (status, body) = app.tb_get("/api/auth/user", &token).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    // The refresh token still gives a working pair.
    let (status, body) = refresh(&app, &refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (fresh, _) = tb_pair(&body);
    app.tb_me(&fresh).await;
}

async fn logout_ends_only_that_session(app: TestApp) {
    let (token, refresh_token) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (other, other_refresh) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let answer = app
        .tb_send(
            Method::POST,
            "/api/auth/logout",
            &[("x-authorization", &format!("Bearer {token}"))],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "", "logout answers an empty body");
    let (status, body) = app.tb_get("/api/auth/user", &token).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    let (status, body) = refresh(&app, &refresh_token).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Token is outdated",
    );
    app.tb_me(&other).await;
    let (status, body) = refresh(&app, &other_refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The Connectware token of the same user is another session: untouched.
    app.tb_me(&app.admin_token).await;
    // Logout without a token.
    let (status, body) = app
        .tb_request(Method::POST, "/api/auth/logout", None, None)
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Authentication failed",
    );
}

async fn change_password(
    app: &TestApp,
    token: &str,
    current: &str,
    new: &str,
) -> (StatusCode, Value) {
    app.tb_post(
        "/api/auth/changePassword",
        token,
        json!({"currentPassword": current, "newPassword": new}),
    )
    .await
}

async fn change_password_answers_a_pair_and_outdates_every_older_token(app: TestApp) {
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (_, token) = tenant_admin(&app, &sys, "changer@example.com", "first-pass-1").await;
    let (other, other_refresh) = app.tb_login("changer@example.com", "first-pass-1").await;
    let connectware = app.login("changer@example.com", "first-pass-1").await;
    app.tb_me(&connectware).await;
    let (status, body) = change_password(&app, &token, "first-pass-1", "second-pass-2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (fresh, fresh_refresh) = tb_pair(&body);
    app.tb_me(&fresh).await;
    for old in [&token, &other, &connectware] {
        let (status, body) = app.tb_get("/api/auth/user", old).await;
        assert_tb_error(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            11,
            "Token has expired",
        );
    }
    let (status, body) = refresh(&app, &other_refresh).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Token is outdated",
    );
    let (status, body) = refresh(&app, &fresh_refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .tb_try_login("changer@example.com", "first-pass-1")
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
    app.tb_login("changer@example.com", "second-pass-2").await;
    // Other users keep their sessions.
    app.tb_me(&sys).await;
}

async fn change_password_refusals(app: TestApp) {
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (_, token) = tenant_admin(&app, &sys, "refused@example.com", "first-pass-1").await;
    let (status, body) = change_password(&app, &token, "not-the-password", "second-pass-2").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Current password doesn't match!",
    );
    let (status, body) = change_password(&app, &token, "first-pass-1", "first-pass-1").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "New password should be different from existing!",
    );
    let (status, body) = change_password(&app, &token, "first-pass-1", "abc").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Password must be 5 or more characters in length.",
    );
    // Bad bodies are 400 in the same shape.
    for bad in [
        json!({}),
        json!([]),
        json!({"currentPassword": "first-pass-1"}),
        json!({"currentPassword": 1, "newPassword": 2}),
    ] {
        let (status, body) = app.tb_post("/api/auth/changePassword", &token, bad).await;
        let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(code, 31);
    }
    // Nothing changed: the token works, the password is the old one.
    app.tb_me(&token).await;
    app.tb_login("refused@example.com", "first-pass-1").await;
    // Without a token.
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/auth/changePassword",
            None,
            Some(json!({"currentPassword": "first-pass-1", "newPassword": "second-pass-2"})),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Authentication failed",
    );
}

async fn change_password_follows_the_policy_and_the_reuse_rule(app: TestApp) {
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (_, mut token) = tenant_admin(&app, &sys, "policy@example.com", "Start-Pass-1").await;
    app.tb_update_security(&sys, |settings| {
        settings["passwordPolicy"] = json!({
            "minimumLength": 8,
            "maximumLength": 20,
            "minimumUppercaseLetters": 1,
            "minimumLowercaseLetters": 1,
            "minimumDigits": 2,
            "minimumSpecialCharacters": 1,
            "allowWhitespaces": false,
            "forceUserToResetPasswordIfNotValid": false,
            "passwordExpirationPeriodDays": 0,
            "passwordReuseFrequencyDays": 30
        });
    })
    .await;
    let (status, body) = change_password(&app, &token, "Start-Pass-1", "ab cd").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Password must be 8 or more characters in length.\n\
         Password must contain 1 or more uppercase characters.\n\
         Password must contain 2 or more digit characters.\n\
         Password must contain 1 or more special characters.\n\
         Password contains a whitespace character.",
    );
    let (status, body) =
        change_password(&app, &token, "Start-Pass-1", "Aa-345678901234567890x").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Password must be no more than 20 characters in length.",
    );
    let (status, body) = change_password(&app, &token, "Start-Pass-1", "lower-only-12").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Password must contain 1 or more uppercase characters.",
    );
    // Two good changes, then back to the first one: refused by the reuse rule.
    let (status, body) = change_password(&app, &token, "Start-Pass-1", "Second-Pass-22").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    token = tb_pair(&body).0;
    let (status, body) = change_password(&app, &token, "Second-Pass-22", "Third-Pass-33").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    token = tb_pair(&body).0;
    let (status, body) = change_password(&app, &token, "Third-Pass-33", "Second-Pass-22").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Password was already used for the last 30 days",
    );
    app.tb_me(&token).await;
    app.tb_login("policy@example.com", "Third-Pass-33").await;
}

fn full_settings() -> Value {
    json!({
        "passwordPolicy": {
            "minimumLength": 7,
            "maximumLength": 64,
            "minimumUppercaseLetters": 1,
            "minimumLowercaseLetters": 2,
            "minimumDigits": 1,
            "minimumSpecialCharacters": 0,
            "allowWhitespaces": false,
            "forceUserToResetPasswordIfNotValid": false,
            "passwordExpirationPeriodDays": 90,
            "passwordReuseFrequencyDays": 10
        },
        "maxFailedLoginAttempts": 5,
        "userLockoutNotificationEmail": "security@example.com",
        "mobileSecretKeyLength": 64,
        "userActivationTokenTtl": 12,
        "passwordResetTokenTtl": 6
    })
}

async fn security_settings_round_trip_for_the_system_administrator(app: TestApp) {
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, defaults) = app.tb_get("/api/admin/securitySettings", &sys).await;
    assert_eq!(status, StatusCode::OK, "{defaults}");
    assert_eq!(defaults["passwordPolicy"]["minimumLength"], 5, "{defaults}");
    assert_eq!(defaults["passwordPolicy"]["allowWhitespaces"], true);
    assert_eq!(
        defaults["passwordPolicy"]["forceUserToResetPasswordIfNotValid"],
        false
    );
    assert_eq!(defaults["userActivationTokenTtl"], 24);
    assert_eq!(defaults["passwordResetTokenTtl"], 24);
    assert!(
        defaults["maxFailedLoginAttempts"].is_null() || defaults["maxFailedLoginAttempts"] == 0,
        "no lockout by default: {defaults}"
    );
    let wanted = full_settings();
    let (status, saved) = app
        .tb_post("/api/admin/securitySettings", &sys, wanted.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved, wanted);
    let (status, read) = app.tb_get("/api/admin/securitySettings", &sys).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, wanted);
    // The public policy shows the same.
    let (status, policy) = app
        .tb_request(Method::GET, "/api/noauth/userPasswordPolicy", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(policy, wanted["passwordPolicy"]);
    // Stored, not per-token: another system administrator token reads the same.
    let (status, read) = app
        .tb_get("/api/admin/securitySettings", &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, wanted);
}

async fn security_settings_are_for_system_administrators_only(app: TestApp) {
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (_, tenant_token) = tenant_admin(&app, &sys, "ta@example.com", "tenant-pass-1").await;
    app.create_user("cw-customer", "cw-password-1", &[]).await;
    let (customer_token, _) = app.tb_login("cw-customer", "cw-password-1").await;
    for token in [&tenant_token, &customer_token] {
        let (status, body) = app.tb_get("/api/admin/securitySettings", token).await;
        assert_tb_error(
            status,
            &body,
            StatusCode::FORBIDDEN,
            20,
            "You don't have permission to perform this operation!",
        );
        let (status, body) = app
            .tb_post("/api/admin/securitySettings", token, full_settings())
            .await;
        assert_tb_error(
            status,
            &body,
            StatusCode::FORBIDDEN,
            20,
            "You don't have permission to perform this operation!",
        );
    }
    let (status, body) = app
        .tb_request(Method::GET, "/api/admin/securitySettings", None, None)
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Authentication failed",
    );
    // Nothing was saved.
    let (_, settings) = app.tb_get("/api/admin/securitySettings", &sys).await;
    assert_eq!(settings["passwordPolicy"]["minimumLength"], 5, "{settings}");
}

async fn security_settings_refuse_out_of_range_values(app: TestApp) {
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (_, before) = app.tb_get("/api/admin/securitySettings", &sys).await;
    for (field, value) in [
        ("userActivationTokenTtl", 0),
        ("userActivationTokenTtl", 25),
        ("passwordResetTokenTtl", 0),
        ("passwordResetTokenTtl", 25),
    ] {
        let mut settings = full_settings();
        settings[field] = json!(value);
        let (status, body) = app
            .tb_post("/api/admin/securitySettings", &sys, settings)
            .await;
        assert_tb_error(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            31,
            &format!("{field} must be between 1 and 24 hours"),
        );
    }
    let mut bad_values = Vec::new();
    let mut settings = full_settings();
    settings["passwordPolicy"]["minimumLength"] = json!(-1);
    bad_values.push(settings);
    let mut settings = full_settings();
    settings["maxFailedLoginAttempts"] = json!(-3);
    bad_values.push(settings);
    let mut settings = full_settings();
    settings["userLockoutNotificationEmail"] = json!("not an email");
    bad_values.push(settings);
    let mut settings = full_settings();
    settings["passwordPolicy"]["minimumLength"] = json!("eight");
    bad_values.push(settings);
    let mut settings = full_settings();
    settings.as_object_mut().unwrap().remove("passwordPolicy");
    bad_values.push(settings);
    bad_values.push(json!([]));
    for settings in bad_values {
        let (status, body) = app
            .tb_post("/api/admin/securitySettings", &sys, settings.clone())
            .await;
        let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(code, 31, "{settings} -> {body}");
    }
    let (_, after) = app.tb_get("/api/admin/securitySettings", &sys).await;
    assert_eq!(after, before, "nothing was saved");
}

async fn password_policy_is_public_and_applies_to_connectware(app: TestApp) {
    let (status, policy) = app
        .tb_request(Method::GET, "/api/noauth/userPasswordPolicy", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy["minimumLength"], 5, "{policy}");
    for key in [
        "minimumLength",
        "maximumLength",
        "minimumUppercaseLetters",
        "minimumLowercaseLetters",
        "minimumDigits",
        "minimumSpecialCharacters",
        "allowWhitespaces",
        "forceUserToResetPasswordIfNotValid",
        "passwordExpirationPeriodDays",
        "passwordReuseFrequencyDays",
    ] {
        assert!(policy.get(key).is_some(), "{key} missing: {policy}");
    }
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    app.tb_update_security(&sys, |settings| {
        settings["passwordPolicy"]["minimumLength"] = json!(12);
    })
    .await;
    let (status, policy) = app
        .tb_request(Method::GET, "/api/noauth/userPasswordPolicy", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(policy["minimumLength"], 12, "{policy}");
    // The Connectware dialect applies the same policy.
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "short-pw-user", "password": "short-pw1"}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "long-pw-user", "password": "long-enough-pw1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn expired_password_answers_a_reset_token_that_works(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let tenant = uuid::Uuid::new_v4().to_string();
    let (_, _, old_refresh) = app
        .tb_new_user(
            &sys,
            json!({"email": "expiring@example.com", "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant)}),
            "first-pass-1",
        )
        .await;
    app.tb_update_security(&sys, |settings| {
        settings["passwordPolicy"]["passwordExpirationPeriodDays"] = json!(1);
    })
    .await;
    // Within the period: fine.
    app.tb_login("expiring@example.com", "first-pass-1").await;
    clock.advance(2 * 86_400_000);
    let (status, body) = app
        .tb_try_login("expiring@example.com", "first-pass-1")
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        15,
        "User password expired!",
    );
    let reset_token = body["resetToken"]
        .as_str()
        .unwrap_or_else(|| panic!("resetToken missing: {body}"))
        .to_owned();
    // A session opened before the expiry lives on (refresh does not check the password)...
    let (status, body) = refresh(&app, &old_refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (old_token, _) = tb_pair(&body);
    app.tb_me(&old_token).await;
    // The wrong password is still just wrong (no reset token for it).
    let (status, body) = app
        .tb_try_login("expiring@example.com", "wrong-pass-1")
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
    assert!(body.get("resetToken").is_none(), "{body}");
    // The token is a reset link token.
    let answer = app
        .tb_send(
            Method::GET,
            &format!("/api/noauth/resetPassword?resetToken={reset_token}"),
            &[],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    assert_eq!(
        answer.header("location").as_deref(),
        Some(format!("/login/resetPassword?resetToken={reset_token}").as_str())
    );
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/noauth/resetPassword",
            None,
            Some(json!({"resetToken": reset_token, "password": "second-pass-2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, Value::Null, "empty body");
    // ...until the reset, which ends every session of the user.
    let (status, body) = app.tb_get("/api/auth/user", &old_token).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    let (token, _) = app.tb_login("expiring@example.com", "second-pass-2").await;
    app.tb_me(&token).await;
    // The admin's own password is older than a day too.
    let (status, body) = app.tb_try_login("admin", ADMIN_PASSWORD).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        15,
        "User password expired!",
    );
}

async fn forced_reset_refuses_passwords_that_break_the_policy(app: TestApp) {
    app.create_user("weak-user", "weak1", &[]).await;
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    app.tb_login("weak-user", "weak1").await;
    app.tb_update_security(&sys, |settings| {
        settings["passwordPolicy"]["minimumLength"] = json!(10);
        settings["passwordPolicy"]["forceUserToResetPasswordIfNotValid"] = json!(true);
    })
    .await;
    let violation =
        "The entered password violates our policies. If this is your real password, please reset it.";
    let (status, body) = app.tb_try_login("weak-user", "weak1").await;
    assert_tb_error(status, &body, StatusCode::UNAUTHORIZED, 45, violation);
    // Checked before the lookup, like ThingsBoard: unknown users get the same answer.
    let (status, body) = app.tb_try_login("nobody-here", "weak1").await;
    assert_tb_error(status, &body, StatusCode::UNAUTHORIZED, 45, violation);
    // A compliant password is checked normally.
    app.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, body) = app.tb_try_login("weak-user", "long-but-wrong").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
}

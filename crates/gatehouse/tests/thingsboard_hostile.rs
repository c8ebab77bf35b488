//! Hostile and malformed input on every endpoint of the ThingsBoard dialect: malformed JSON,
//! wrong types, huge and odd strings, oversized bodies, odd headers and queries, unknown paths
//! and methods. Every answer is a 4xx in ThingsBoard's shape `{status, message, errorCode,
//! timestamp}` (never a 500), and nothing stored is lost.

mod common;

use common::{assert_tb_error, assert_tb_shape, tb_id, RawAnswer, TestApp, ADMIN_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    malformed_json_is_refused_in_shape_everywhere,
    wrong_types_are_refused_in_shape_everywhere,
    huge_strings_are_refused_or_harmless,
    control_characters_are_refused_or_stored_never_500,
    oversized_bodies_are_413_in_shape,
    unknown_paths_and_methods_answer_in_shape,
    hostile_headers_are_401_in_shape,
    hostile_queries_and_path_ids_are_4xx_in_shape,
);

/// What a hostile test starts with and checks at its end: the system administrator, a
/// tenant administrator with a key, and a customer user.
struct World {
    sys: String,
    sys_id: String,
    ta: String,
    ta_id: String,
    key_id: String,
    key_value: String,
}

async fn world(app: &TestApp) -> World {
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let sys_id = app.tb_me(&sys).await["id"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ta_id, ta, _) = app
        .tb_new_user(
            &sys,
            json!({"email": "ta@example.com", "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &uuid::Uuid::new_v4().to_string()), "firstName": "Tara"}),
            "tenant-pass-1",
        )
        .await;
    let (status, key) = app
        .tb_post(
            "/api/apiKey",
            &ta,
            json!({"userId": tb_id("USER", &ta_id), "description": "kept"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{key}");
    World {
        sys,
        sys_id,
        ta,
        ta_id,
        key_id: key["id"]["id"].as_str().unwrap().to_owned(),
        key_value: key["value"].as_str().unwrap().to_owned(),
    }
}

impl World {
    /// Everything stored at the start is still there and works.
    async fn intact(&self, app: &TestApp) {
        let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
        app.tb_me(&sys).await;
        let (ta, _) = app.tb_login("ta@example.com", "tenant-pass-1").await;
        let me = app.tb_me(&ta).await;
        assert_eq!(me["firstName"], "Tara", "{me}");
        assert_eq!(me["id"]["id"], self.ta_id.as_str());
        let answer = app
            .tb_send(
                Method::GET,
                "/api/auth/user",
                &[("x-authorization", &format!("ApiKey {}", self.key_value))],
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let (status, page) = app
            .tb_get(
                &format!("/api/apiKeys/{}?pageSize=100&page=0", self.ta_id),
                &ta,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["totalElements"], 1, "no key added or lost: {page}");
        assert_eq!(page["data"][0]["description"], "kept");
        assert_eq!(page["data"][0]["id"]["id"], self.key_id.as_str());
        let (status, settings) = app.tb_get("/api/admin/securitySettings", &sys).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(settings["passwordPolicy"]["minimumLength"], 5, "{settings}");
        assert!(settings["maxFailedLoginAttempts"].is_null(), "{settings}");
    }

    /// Every endpoint that takes a body, with the caller it needs: (method, path, token).
    fn body_endpoints(&self) -> Vec<(Method, String, Option<String>)> {
        let ta = Some(self.ta.clone());
        let sys = Some(self.sys.clone());
        vec![
            (Method::POST, "/api/auth/login".into(), None),
            (Method::POST, "/api/auth/token".into(), None),
            (Method::POST, "/api/auth/changePassword".into(), ta.clone()),
            (
                Method::POST,
                "/api/admin/securitySettings".into(),
                sys.clone(),
            ),
            (Method::POST, "/api/noauth/activate".into(), None),
            (Method::POST, "/api/noauth/resetPassword".into(), None),
            (
                Method::POST,
                "/api/noauth/resetPasswordByEmail".into(),
                None,
            ),
            (Method::POST, "/api/user".into(), sys.clone()),
            (
                Method::POST,
                "/api/user?sendActivationMail=false".into(),
                ta.clone(),
            ),
            (Method::POST, "/api/apiKey".into(), ta.clone()),
        ]
    }
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> RawAnswer {
    let auth = token.map(|token| format!("Bearer {token}"));
    let mut headers: Vec<(&str, &str)> = vec![("content-type", content_type)];
    if let Some(auth) = auth.as_deref() {
        headers.push(("x-authorization", auth));
    }
    app.tb_send(method, path, &headers, Some(body)).await
}

/// Asserts a 4xx in ThingsBoard's shape; the login endpoints answer 401 "Authentication
/// failed" for anything they cannot read, the others 400 code 31.
fn assert_refused(path: &str, what: &str, answer: &RawAnswer) {
    let body = answer.json();
    assert!(
        answer.status.is_client_error(),
        "{path} {what}: {} {}",
        answer.status,
        answer.text
    );
    let (code, _) = assert_tb_shape(answer.status, &body, answer.status);
    if path == "/api/auth/login" || path == "/api/auth/token" {
        assert_tb_error(
            answer.status,
            &body,
            StatusCode::UNAUTHORIZED,
            10,
            "Authentication failed",
        );
    } else {
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path} {what}: {body}"
        );
        assert_eq!(code, 31, "{path} {what}: {body}");
    }
}

async fn malformed_json_is_refused_in_shape_everywhere(app: TestApp) {
    let world = world(&app).await;
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        ("open brace", b"{".to_vec()),
        ("truncated", b"{\"username\":".to_vec()),
        ("trailing comma", b"{\"a\":1,}".to_vec()),
        ("array", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("number", b"42".to_vec()),
        ("string", b"\"text\"".to_vec()),
        ("empty", Vec::new()),
        ("nul byte", b"\0".to_vec()),
        ("invalid utf-8", vec![0x7b, 0xff, 0xfe, 0x7d]),
        ("two objects", b"{}{}".to_vec()),
        ("deep array", deep_array.into_bytes()),
        ("deep object", deep_object.into_bytes()),
        ("single quotes", b"{'a':'b'}".to_vec()),
    ];
    for (method, path, token) in world.body_endpoints() {
        for (what, body) in &malformed {
            for content_type in ["application/json", "text/plain"] {
                let answer = send(
                    &app,
                    method.clone(),
                    &path,
                    token.as_deref(),
                    content_type,
                    body.clone(),
                )
                .await;
                assert_refused(&path, what, &answer);
            }
        }
    }
    world.intact(&app).await;
}

async fn wrong_types_are_refused_in_shape_everywhere(app: TestApp) {
    let world = world(&app).await;
    let user = tb_id("USER", &world.ta_id);
    let cases: Vec<(&str, Value)> = vec![
        ("/api/auth/login", json!({"username": 1, "password": "x"})),
        (
            "/api/auth/login",
            json!({"username": "admin", "password": ["admin-test-password"]}),
        ),
        (
            "/api/auth/login",
            json!({"username": null, "password": null}),
        ),
        ("/api/auth/token", json!({"refreshToken": 5})),
        ("/api/auth/token", json!({"refreshToken": {"token": "x"}})),
        (
            "/api/auth/changePassword",
            json!({"currentPassword": true, "newPassword": "new-pass-1"}),
        ),
        (
            "/api/auth/changePassword",
            json!({"currentPassword": "tenant-pass-1", "newPassword": 12345678}),
        ),
        (
            "/api/admin/securitySettings",
            json!({"passwordPolicy": "strict"}),
        ),
        (
            "/api/admin/securitySettings",
            json!({"passwordPolicy": {"minimumLength": 1.5}}),
        ),
        (
            "/api/admin/securitySettings",
            json!({"passwordPolicy": {"minimumLength": 99_999_999_999_i64}}),
        ),
        (
            "/api/admin/securitySettings",
            json!({"passwordPolicy": {"minimumLength": 2000}}),
        ),
        (
            "/api/admin/securitySettings",
            json!({"passwordPolicy": {"passwordExpirationPeriodDays": 1_000_000}}),
        ),
        (
            "/api/admin/securitySettings",
            json!({"passwordPolicy": {"allowWhitespaces": "no"}}),
        ),
        (
            "/api/admin/securitySettings",
            json!({"passwordPolicy": {}, "maxFailedLoginAttempts": "3"}),
        ),
        (
            "/api/admin/securitySettings",
            json!({"passwordPolicy": {}, "userActivationTokenTtl": 1e40}),
        ),
        (
            "/api/admin/securitySettings",
            json!({"passwordPolicy": {}, "userLockoutNotificationEmail": 7}),
        ),
        (
            "/api/noauth/activate",
            json!({"activateToken": ["x"], "password": "pass-word-1"}),
        ),
        (
            "/api/noauth/resetPassword",
            json!({"resetToken": 1, "password": "pass-word-1"}),
        ),
        ("/api/noauth/resetPasswordByEmail", json!({"email": 5})),
        (
            "/api/noauth/resetPasswordByEmail",
            json!({"email": ["a@example.com"]}),
        ),
        (
            "/api/user",
            json!({"email": 5, "authority": "TENANT_ADMIN"}),
        ),
        (
            "/api/user",
            json!({"email": "a@example.com", "authority": 1}),
        ),
        (
            "/api/user",
            json!({"email": "a@example.com", "authority": "TENANT_ADMIN", "tenantId": "just-a-string"}),
        ),
        (
            "/api/user",
            json!({"email": "a@example.com", "authority": "TENANT_ADMIN", "tenantId": {"id": 5}}),
        ),
        (
            "/api/user",
            json!({"email": "a@example.com", "authority": "SYS_ADMIN", "additionalInfo": "text"}),
        ),
        (
            "/api/user",
            json!({"email": "a@example.com", "authority": "SYS_ADMIN", "phone": {"n": 1}}),
        ),
        (
            "/api/user",
            json!({"id": "not-an-entity-id", "email": "a@example.com"}),
        ),
        ("/api/apiKey", json!({"userId": user, "description": ["x"]})),
        (
            "/api/apiKey",
            json!({"userId": user, "description": "x", "enabled": 1}),
        ),
        (
            "/api/apiKey",
            json!({"userId": user, "description": "x", "expirationTime": 1.5}),
        ),
        (
            "/api/apiKey",
            json!({"userId": user, "description": "x", "expirationTime": 99_999_999_999_999_999_999_f64}),
        ),
        ("/api/apiKey", json!({"userId": [user], "description": "x"})),
        ("/api/apiKey", json!({"id": 7, "description": "x"})),
    ];
    for (path, body) in cases {
        let token = match path {
            "/api/auth/changePassword" | "/api/apiKey" => Some(world.ta.as_str()),
            "/api/admin/securitySettings" | "/api/user" => Some(world.sys.as_str()),
            _ => None,
        };
        let answer = send(
            &app,
            Method::POST,
            path,
            token,
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_refused(path, &body.to_string(), &answer);
    }
    world.intact(&app).await;
}

async fn huge_strings_are_refused_or_harmless(app: TestApp) {
    let world = world(&app).await;
    let huge = "h".repeat(10_000);
    let huge_email = format!("{}@example.com", "e".repeat(10_000));
    let user = tb_id("USER", &world.ta_id);
    // (path, token, body, expected status)
    let cases: Vec<(&str, Option<&str>, Value, StatusCode)> = vec![
        (
            "/api/auth/login",
            None,
            json!({"username": huge, "password": "x-pass-1"}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/api/auth/login",
            None,
            json!({"username": "ta@example.com", "password": huge}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/api/auth/login",
            None,
            json!({"username": huge_email, "password": huge}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/api/auth/token",
            None,
            json!({"refreshToken": huge}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/api/auth/changePassword",
            Some(&world.ta),
            json!({"currentPassword": huge, "newPassword": "new-pass-1"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/auth/changePassword",
            Some(&world.ta),
            json!({"currentPassword": "tenant-pass-1", "newPassword": huge}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/noauth/activate",
            None,
            json!({"activateToken": huge, "password": "pass-word-1"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/noauth/activate",
            None,
            json!({"activateToken": "x", "password": huge}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/noauth/resetPassword",
            None,
            json!({"resetToken": huge, "password": "pass-word-1"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/noauth/resetPassword",
            None,
            json!({"resetToken": "x", "password": huge}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/noauth/resetPasswordByEmail",
            None,
            json!({"email": huge_email}),
            StatusCode::OK,
        ),
        (
            "/api/admin/securitySettings",
            Some(&world.sys),
            json!({"passwordPolicy": {}, "userLockoutNotificationEmail": huge_email}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/user",
            Some(&world.sys),
            json!({"email": huge_email, "authority": "SYS_ADMIN"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/user",
            Some(&world.sys),
            json!({"email": "n1@example.com", "authority": "SYS_ADMIN", "firstName": huge}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/user",
            Some(&world.sys),
            json!({"email": "n2@example.com", "authority": "SYS_ADMIN", "lastName": huge}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/user",
            Some(&world.sys),
            json!({"email": "n3@example.com", "authority": "SYS_ADMIN", "phone": huge}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/user",
            Some(&world.sys),
            json!({"email": "n4@example.com", "authority": huge}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/user",
            Some(&world.sys),
            json!({"email": "n5@example.com", "authority": "SYS_ADMIN", "additionalInfo": {"blob": "b".repeat(20_000)}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/user",
            Some(&world.sys),
            json!({"id": tb_id("USER", &world.ta_id), "email": "ta@example.com", "authority": "TENANT_ADMIN", "firstName": huge}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/apiKey",
            Some(&world.ta),
            json!({"userId": user, "description": huge}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/apiKey",
            Some(&world.ta),
            json!({"id": tb_id("API_KEY", &world.key_id), "description": huge}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (path, token, body, expected) in cases {
        let answer = send(
            &app,
            Method::POST,
            path,
            token,
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        let short: String = body.to_string().chars().take(120).collect();
        if expected == StatusCode::OK {
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{path} {short}: {}",
                answer.text
            );
        } else {
            assert_eq!(answer.status, expected, "{path} {short}: {}", answer.text);
            assert_tb_shape(answer.status, &answer.json(), expected);
            assert!(
                answer.text.len() < 40_000,
                "{path}: the answer echoes too much ({} bytes)",
                answer.text.len()
            );
        }
    }
    // Raw-text description and query values.
    let answer = send(
        &app,
        Method::PUT,
        &format!("/api/apiKey/{}/description", world.key_id),
        Some(&world.ta),
        "text/plain",
        huge.clone().into_bytes(),
    )
    .await;
    assert_tb_shape(answer.status, &answer.json(), StatusCode::BAD_REQUEST);
    let answer = app
        .tb_send(
            Method::GET,
            &format!("/api/noauth/activate?activateToken={huge}"),
            &[],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let answer = app
        .tb_send(
            Method::GET,
            &format!("/api/noauth/resetPassword?resetToken={huge}"),
            &[],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let (status, page) = app
        .tb_get(
            &format!(
                "/api/apiKeys/{}?pageSize=10&page=0&textSearch={huge}",
                world.ta_id
            ),
            &world.ta,
        )
        .await;
    assert!(
        status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
        "{status} {page}"
    );
    if status == StatusCode::OK {
        assert_eq!(page["totalElements"], 0);
    } else {
        assert_tb_shape(status, &page, status);
    }
    // Unicode in the fields is kept as it is.
    let (status, body) = app
        .tb_post(
            "/api/user",
            &world.sys,
            json!({"email": "uni@example.com", "authority": "SYS_ADMIN", "firstName": "Zoë 🦀 عربى", "lastName": "\u{202e}reversed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["firstName"], "Zoë 🦀 عربى");
    let (_, read) = app
        .tb_get(
            &format!("/api/user/{}", body["id"]["id"].as_str().unwrap()),
            &world.sys,
        )
        .await;
    assert_eq!(read["lastName"], "\u{202e}reversed");
    world.intact(&app).await;
}

async fn control_characters_are_refused_or_stored_never_500(app: TestApp) {
    let world = world(&app).await;
    let user = tb_id("USER", &world.ta_id);
    // Every problem is collected, so that one run names them all.
    let mut problems: Vec<String> = Vec::new();
    fn check(
        problems: &mut Vec<String>,
        what: &str,
        status: StatusCode,
        body: &Value,
        accept_ok: bool,
    ) {
        let fine = (accept_ok && status == StatusCode::OK)
            || (status.is_client_error()
                && body["status"] == json!(status.as_u16())
                && body["errorCode"].is_u64()
                && body["message"].is_string());
        if !fine {
            problems.push(format!("{what}: {status} {body}"));
        }
    }
    // NUL cannot be stored in PostgreSQL text: these must be refused (or stored intact), never 500.
    let (status, body) = app
        .tb_post(
            "/api/apiKey",
            &world.ta,
            json!({"userId": user, "description": "nul\u{0}here"}),
        )
        .await;
    check(
        &mut problems,
        "POST /api/apiKey description \"nul\\u0000here\"",
        status,
        &body,
        true,
    );
    let created_key =
        (status == StatusCode::OK).then(|| body["id"]["id"].as_str().unwrap().to_owned());
    if created_key.is_some() {
        assert_eq!(body["description"], "nul\u{0}here");
    }
    let answer = send(
        &app,
        Method::PUT,
        &format!("/api/apiKey/{}/description", world.key_id),
        Some(&world.ta),
        "text/plain",
        b"nul\0there".to_vec(),
    )
    .await;
    check(
        &mut problems,
        "PUT /api/apiKey/{id}/description raw \"nul\\0there\"",
        answer.status,
        &answer.json(),
        true,
    );
    let described = answer.status == StatusCode::OK;
    let (status, page) = app
        .tb_get(
            &format!(
                "/api/apiKeys/{}?pageSize=10&page=0&textSearch=%00",
                world.ta_id
            ),
            &world.ta,
        )
        .await;
    check(
        &mut problems,
        "GET /api/apiKeys/{userId}?pageSize=10&page=0&textSearch=%00",
        status,
        &page,
        true,
    );
    for body in [
        json!({"email": "ctl1@example.com", "authority": "SYS_ADMIN", "firstName": "a\u{0}b"}),
        json!({"email": "ctl2@example.com", "authority": "SYS_ADMIN", "phone": "1\u{7}2"}),
        json!({"email": "ctl3\u{0}@example.com", "authority": "SYS_ADMIN"}),
    ] {
        let (status, answer) = app.tb_post("/api/user", &world.sys, body.clone()).await;
        check(
            &mut problems,
            &format!("POST /api/user {body}"),
            status,
            &answer,
            false,
        );
    }
    let body = json!({"email": "ctl4@example.com", "authority": "SYS_ADMIN", "additionalInfo": {"k\u{0}": "v\u{0}"}});
    let (status, answer) = app.tb_post("/api/user", &world.sys, body.clone()).await;
    check(
        &mut problems,
        &format!("POST /api/user {body}"),
        status,
        &answer,
        true,
    );
    let (status, answer) = app
        .tb_try_login("ta@example.com\u{0}", "tenant-pass-1")
        .await;
    check(
        &mut problems,
        "login with NUL in the username",
        status,
        &answer,
        false,
    );
    let (status, answer) = app
        .tb_try_login("ta@example.com", "tenant-pass-1\u{0}")
        .await;
    check(
        &mut problems,
        "login with NUL in the password",
        status,
        &answer,
        false,
    );
    let (status, answer) = app
        .tb_request(
            Method::POST,
            "/api/noauth/resetPasswordByEmail",
            None,
            Some(json!({"email": "ta@example.com\u{0}"})),
        )
        .await;
    check(
        &mut problems,
        "resetPasswordByEmail with NUL",
        status,
        &answer,
        true,
    );
    let (status, answer) = app
        .tb_request(
            Method::POST,
            "/api/noauth/activate",
            None,
            Some(json!({"activateToken": "t\u{0}", "password": "pass-word-1"})),
        )
        .await;
    check(
        &mut problems,
        "activate with NUL in the token",
        status,
        &answer,
        false,
    );
    let (status, answer) = app
        .tb_request(
            Method::POST,
            "/api/noauth/resetPassword",
            None,
            Some(json!({"resetToken": "t\u{0}", "password": "pass-word-1"})),
        )
        .await;
    check(
        &mut problems,
        "resetPassword with NUL in the token",
        status,
        &answer,
        false,
    );
    let answer = app
        .tb_send(
            Method::GET,
            "/api/noauth/activate?activateToken=%00",
            &[],
            None,
        )
        .await;
    if answer.status.is_server_error() {
        problems.push(format!(
            "GET /api/noauth/activate?activateToken=%00: {} {}",
            answer.status, answer.text
        ));
    }
    let answer = app
        .tb_send(
            Method::GET,
            "/api/noauth/resetPassword?resetToken=%00",
            &[],
            None,
        )
        .await;
    if answer.status.is_server_error() {
        problems.push(format!(
            "GET /api/noauth/resetPassword?resetToken=%00: {} {}",
            answer.status, answer.text
        ));
    }
    let (status, answer) = app
        .tb_post(
            "/api/auth/changePassword",
            &world.ta,
            json!({"currentPassword": "tenant-pass-1\u{0}", "newPassword": "x-pass-word-1"}),
        )
        .await;
    check(
        &mut problems,
        "changePassword with NUL in the current password",
        status,
        &answer,
        false,
    );
    let (status, answer) = app
        .tb_post("/api/admin/securitySettings", &world.sys, json!({"passwordPolicy": {"minimumLength": 5}, "userLockoutNotificationEmail": "a\u{0}@example.com"}))
        .await;
    check(
        &mut problems,
        "securitySettings with NUL in the notification email",
        status,
        &answer,
        false,
    );
    assert!(
        problems.is_empty(),
        "answers that are neither a stored value nor a 4xx in shape:\n{}",
        problems.join("\n")
    );
    // Clean up what was accepted, then check nothing else changed.
    if let Some(id) = created_key {
        let answer = app
            .tb_send(
                Method::DELETE,
                &format!("/api/apiKey/{id}"),
                &[("x-authorization", &format!("Bearer {}", world.ta))],
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    if described {
        let answer = send(
            &app,
            Method::PUT,
            &format!("/api/apiKey/{}/description", world.key_id),
            Some(&world.ta),
            "text/plain",
            b"kept".to_vec(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    world.intact(&app).await;
}

async fn oversized_bodies_are_413_in_shape(app: TestApp) {
    // A small limit and bodies just over it, so that the client always finishes sending
    // before the server answers (see hostile.rs).
    let engine = app.engine;
    app.stop().await;
    let app = TestApp::spawn_with(
        engine,
        |settings| settings.http.body_limit_bytes = 4096,
        None,
    )
    .await;
    let world = world(&app).await;
    let big = vec![b'a'; 8 * 1024];
    let mut json_big = b"{\"username\":\"".to_vec();
    json_big.extend_from_slice(&big);
    json_big.extend_from_slice(b"\",\"password\":\"x\"}");
    let mut problems = Vec::new();
    for (method, path, token) in world.body_endpoints() {
        let answer = send(
            &app,
            method,
            &path,
            token.as_deref(),
            "application/json",
            json_big.clone(),
        )
        .await;
        let body = answer.json();
        if answer.status != StatusCode::PAYLOAD_TOO_LARGE
            || body["status"] != json!(413)
            || !body["errorCode"].is_u64()
        {
            problems.push(format!("POST {path}: {} {}", answer.status, answer.text));
        }
    }
    let answer = send(
        &app,
        Method::PUT,
        &format!("/api/apiKey/{}/description", world.key_id),
        Some(&world.ta),
        "text/plain",
        big,
    )
    .await;
    let body = answer.json();
    if answer.status != StatusCode::PAYLOAD_TOO_LARGE
        || body["status"] != json!(413)
        || !body["errorCode"].is_u64()
    {
        problems.push(format!(
            "PUT /api/apiKey/{{id}}/description: {} {}",
            answer.status, answer.text
        ));
    }
    assert!(
        problems.is_empty(),
        "not a 413 in ThingsBoard's shape:\n{}",
        problems.join("\n")
    );
    world.intact(&app).await;
}

async fn unknown_paths_and_methods_answer_in_shape(app: TestApp) {
    let world = world(&app).await;
    let token = format!("Bearer {}", world.sys);
    for path in [
        "/api/auth/unknown",
        "/api/auth/user/extra",
        "/api/noauth/nothing",
        "/api/noauth/signup/nothing",
        "/api/signup/acceptTermsOfUse",
        "/api/admin/jwtSettings",
        "/api/apiKey/x/y/z",
        "/api/apiKeys",
        "/api/2fa/nothing",
        "/api/oauth2/nothing",
        "/api/domain/info/x/y",
        &format!("/api/user/{}/nothing", world.ta_id),
    ] {
        for auth in [None, Some(token.as_str())] {
            let headers: Vec<(&str, &str)> = auth
                .map(|a| vec![("x-authorization", a)])
                .unwrap_or_default();
            let answer = app.tb_send(Method::GET, path, &headers, None).await;
            let body = answer.json();
            assert!(
                answer.status.is_client_error(),
                "{path}: {} {}",
                answer.status,
                answer.text
            );
            assert_tb_shape(answer.status, &body, answer.status);
            if auth.is_some() {
                assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {body}");
                assert_eq!(body["errorCode"], 32, "{path}: {body}");
            }
        }
    }
    for (method, path) in [
        (Method::DELETE, "/api/auth/user".to_owned()),
        (Method::PUT, "/api/auth/logout".to_owned()),
        (Method::PATCH, "/api/apiKey".to_owned()),
        (Method::GET, "/api/noauth/resetPasswordByEmail".to_owned()),
        (Method::GET, "/api/noauth/signup".to_owned()),
        (Method::PUT, "/api/signup/tenantAccount".to_owned()),
        (Method::PUT, "/api/admin/securitySettings".to_owned()),
        (
            Method::POST,
            format!("/api/apiKey/{}/enabled/true", world.key_id),
        ),
        (Method::GET, format!("/api/apiKey/{}", world.key_id)),
        (Method::PUT, format!("/api/user/{}", world.ta_id)),
    ] {
        let answer = app
            .tb_send(method.clone(), &path, &[("x-authorization", &token)], None)
            .await;
        let body = answer.json();
        assert!(
            answer.status.is_client_error(),
            "{method} {path}: {} {}",
            answer.status,
            answer.text
        );
        assert_tb_shape(answer.status, &body, answer.status);
        assert_eq!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {body}"
        );
    }
    // The Connectware paths keep their own shape.
    let answer = app
        .tb_send(Method::GET, "/api/users/nothing/here", &[], None)
        .await;
    assert!(answer.json().get("statusCode").is_some(), "{}", answer.text);
    world.intact(&app).await;
}

async fn hostile_headers_are_401_in_shape(app: TestApp) {
    let world = world(&app).await;
    let long_bearer = format!("Bearer {}", "a".repeat(8_000));
    let long_key = format!("ApiKey tb_{}", "a".repeat(8_000));
    let dotted = format!(
        "Bearer {}.{}.{}",
        "a".repeat(100),
        "b".repeat(100),
        "c".repeat(100)
    );
    let headers = [
        "Bearer",
        "Bearer ",
        "ApiKey",
        "ApiKey ",
        "Bearer  ",
        "Basic dXNlcjpwYXNz",
        "Digest x",
        "Bearer a b c",
        long_bearer.as_str(),
        long_key.as_str(),
        dotted.as_str(),
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
    ];
    for path in [
        "/api/auth/user",
        "/api/admin/securitySettings",
        "/api/auth/logout",
    ] {
        let method = if path.ends_with("logout") {
            Method::POST
        } else {
            Method::GET
        };
        for value in headers {
            for name in ["x-authorization", "authorization"] {
                let answer = app
                    .tb_send(method.clone(), path, &[(name, value)], None)
                    .await;
                let short: String = value.chars().take(40).collect();
                assert_eq!(
                    answer.status,
                    StatusCode::UNAUTHORIZED,
                    "{name}: {short}: {}",
                    answer.text
                );
                let (code, _) =
                    assert_tb_shape(answer.status, &answer.json(), StatusCode::UNAUTHORIZED);
                assert!(code == 10 || code == 11, "{short}: {}", answer.text);
            }
        }
    }
    // An "alg: none" token with the admin's real claims is refused.
    let (token, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let payload = token.split('.').nth(1).unwrap();
    let none = format!("eyJhbGciOiJub25lIn0.{payload}.");
    let (status, body) = app.tb_get("/api/auth/user", &none).await;
    let (code, _) = assert_tb_shape(status, &body, StatusCode::UNAUTHORIZED);
    assert!(code == 10 || code == 11, "{body}");
    // Header bytes that are not UTF-8.
    let response = app
        .client
        .get(app.url("/api/auth/user"))
        .header(
            "x-authorization",
            reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        )
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Authentication failed",
    );
    world.intact(&app).await;
}

async fn hostile_queries_and_path_ids_are_4xx_in_shape(app: TestApp) {
    let world = world(&app).await;
    let token = format!("Bearer {}", world.sys);
    let ta = format!("Bearer {}", world.ta);
    let requests: Vec<(Method, String, &str)> = vec![
        (Method::GET, "/api/user/not-a-uuid".into(), &token),
        (Method::GET, "/api/user/%00".into(), &token),
        (
            Method::GET,
            "/api/user/00000000-0000-0000-0000-00000000000g".into(),
            &token,
        ),
        (Method::DELETE, "/api/user/..%2F..%2Fetc".into(), &token),
        (
            Method::GET,
            "/api/user/'%20OR%201=1--/activationLink".into(),
            &token,
        ),
        (
            Method::POST,
            format!(
                "/api/user/{}/userCredentialsEnabled?userCredentialsEnabled=yes%00",
                world.ta_id
            ),
            &token,
        ),
        (
            Method::POST,
            "/api/user?sendActivationMail=maybe".into(),
            &token,
        ),
        (Method::DELETE, "/api/apiKey/123".into(), &ta),
        (
            Method::PUT,
            format!("/api/apiKey/{}/enabled/%FF", world.key_id),
            &ta,
        ),
        (
            Method::PUT,
            format!("/api/apiKey/{}/enabled/truee", world.key_id),
            &ta,
        ),
        (Method::PUT, "/api/apiKey/zzz/description".into(), &ta),
        (
            Method::GET,
            format!(
                "/api/apiKeys/{}?pageSize=10&page=0&sortOrder=%FF",
                world.ta_id
            ),
            &ta,
        ),
        (
            Method::GET,
            format!("/api/apiKeys/{}?pageSize=%FF&page=0", world.ta_id),
            &ta,
        ),
        (
            Method::GET,
            format!(
                "/api/apiKeys/{}?pageSize=10&pageSize=20&page=0",
                world.ta_id
            ),
            &ta,
        ),
        (Method::GET, "/api/noauth/activate?activateToken".into(), ""),
        (
            Method::POST,
            "/api/noauth/activate?sendActivationMail=perhaps".into(),
            "",
        ),
    ];
    for (method, path, auth) in requests {
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        if !auth.is_empty() {
            headers.push(("x-authorization", auth));
        }
        let body = if method == Method::GET || method == Method::DELETE {
            None
        } else {
            Some(b"{\"email\":\"q@example.com\",\"authority\":\"SYS_ADMIN\",\"activateToken\":\"x\",\"password\":\"pass-word-1\"}".to_vec())
        };
        let answer = app.tb_send(method.clone(), &path, &headers, body).await;
        assert!(
            answer.status.is_client_error(),
            "{method} {path}: {} {}",
            answer.status,
            answer.text
        );
        // 409 of a link check has an empty body by design; everything else is in shape.
        if answer.status != StatusCode::CONFLICT {
            assert_tb_shape(answer.status, &answer.json(), answer.status);
        }
    }
    let (status, _) = app.tb_try_login("q@example.com", "pass-word-1").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "q@example.com was not created"
    );
    world.intact(&app).await;
    let _ = &world.sys_id;
}

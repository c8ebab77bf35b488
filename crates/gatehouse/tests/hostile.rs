//! Hostile and malformed input: every such request gets a clear 4xx in the Connectware error
//! shape (never a 500 or a hang), and nothing already stored is lost. Parallel requests cannot
//! bypass uniqueness rules.

mod common;

use common::{assert_error, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    oversized_body_is_413_and_stores_nothing,
    malformed_json_and_wrong_types_are_400,
    wrong_content_type_is_415,
    deeply_nested_json_is_400,
    unknown_routes_and_methods_answer_in_shape,
    non_uuid_path_ids_are_400,
    hostile_strings_are_refused_without_harm,
    parallel_creates_of_one_username_store_one_user,
    parallel_permission_adds_store_one_permission,
    responses_carry_a_request_id,
    empty_or_malformed_query_values_are_400,
);

async fn user_count(app: &TestApp) -> u64 {
    let (status, body) = app
        .get("/api/listUsers?rowsPerPage=1000", &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK);
    body["pagination"]["totalRows"].as_u64().unwrap()
}

async fn oversized_body_is_413_and_stores_nothing(app: TestApp) {
    // A small limit and a body just over it: the whole body fits in the socket buffers, so the
    // client always finishes sending before the server answers 413 and closes (with megabytes
    // the client could see a reset instead of the answer).
    let engine = app.engine;
    app.stop().await;
    let app = TestApp::spawn_with(
        engine,
        |settings| settings.http.body_limit_bytes = 4096,
        None,
    )
    .await;
    let before = user_count(&app).await;
    let huge = json!({"username": "big-user", "password": "x".repeat(8 * 1024)});
    let (status, body) = app.post("/api/users", &app.admin_token, huge).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(user_count(&app).await, before);
    // The server is still healthy afterwards.
    assert_eq!(
        app.get("/api/session", &app.admin_token).await.0,
        StatusCode::OK
    );
}

async fn malformed_json_and_wrong_types_are_400(app: TestApp) {
    let before = user_count(&app).await;
    for raw in [
        "{",
        "{\"username\": }",
        "[1,2",
        "nul",
        "\u{0}",
        "{\"username\": \"abc\", \"password\": \"abcdef\",}",
    ] {
        let (status, body) = app
            .send_raw(
                Method::POST,
                "/api/users",
                &app.admin_token,
                "application/json",
                raw.as_bytes().to_vec(),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    let (status, body) = app
        .send_raw(
            Method::POST,
            "/api/users",
            &app.admin_token,
            "application/json",
            vec![0xff, 0xfe, 0x7b],
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    for wrong in [
        json!({"username": ["a"], "password": "secret1"}),
        json!({"username": "typed", "password": 12345}),
        json!({"username": "typed", "password": "secret1", "roles": "not-a-list"}),
        json!({"username": "typed", "password": "secret1", "grantTypes": [{"method": "magic", "isRequired": false}]}),
        json!({"username": "typed", "password": "secret1", "initialPermissions": [{"resource": "a", "operation": "read"}]}),
        json!({"username": "typed", "password": "secret1", "enforceMFAEnrollment": "yes"}),
        json!(null),
        json!(42),
        // serde would read an array into a struct field by field; bodies must be objects.
        json!(["array-user", "secret1"]),
        json!({"username": "typed", "password": "secret1", "initialPermissions": [["a/#", "read", "mqtt"]]}),
        json!({"username": "typed", "password": "secret1", "grantTypes": [["password", false]]}),
        json!({"username": "typed", "password": "secret1", "certificates": [["ab".repeat(32)]]}),
    ] {
        let (status, body) = app
            .post("/api/users", &app.admin_token, wrong.clone())
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    for batch in [
        json!([["array-user", "secret1"]]),
        json!({"username": "x"}),
        json!([1]),
    ] {
        let (status, body) = app.post("/api/users/batch", &app.admin_token, batch).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    let (status, body) = app
        .request(
            Method::POST,
            "/api/login",
            None,
            Some(json!(["admin", common::ADMIN_PASSWORD])),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(user_count(&app).await, before);
}

async fn wrong_content_type_is_415(app: TestApp) {
    let body = br#"{"username": "formy", "password": "secret1"}"#.to_vec();
    let (status, answer) = app
        .send_raw(
            Method::POST,
            "/api/users",
            &app.admin_token,
            "text/plain",
            body,
        )
        .await;
    assert_error(status, &answer, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (_, users) = app
        .get("/api/listUsers?usernames=formy", &app.admin_token)
        .await;
    assert_eq!(users["users"], json!([]));
}

async fn deeply_nested_json_is_400(app: TestApp) {
    let depth = 100_000;
    let raw = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let (status, body) = app
        .send_raw(
            Method::POST,
            "/api/roles",
            &app.admin_token,
            "application/json",
            raw.into_bytes(),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let nested_field = format!(
        "{{\"name\": \"deep\", \"permissions\": {}{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let (status, body) = app
        .send_raw(
            Method::POST,
            "/api/roles",
            &app.admin_token,
            "application/json",
            nested_field.into_bytes(),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
}

async fn unknown_routes_and_methods_answer_in_shape(app: TestApp) {
    let (status, body) = app.get("/api/does-not-exist", &app.admin_token).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = app
        .request(
            Method::PATCH,
            "/api/users",
            Some(&app.admin_token),
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED);
    let (status, body) = app.get("/api/users/batch", &app.admin_token).await;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED);
}

async fn non_uuid_path_ids_are_400(app: TestApp) {
    for path in [
        "/api/users/not-a-uuid",
        "/api/users/1/tokens",
        "/api/roles/%00",
        "/api/roles/x/permissions",
        "/api/roles/00000000-0000-0000-0000-000000000000/permissions/nope",
    ] {
        let (status, body) = app.get(path, &app.admin_token).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
}

async fn hostile_strings_are_refused_without_harm(app: TestApp) {
    let before = user_count(&app).await;
    let names = [
        "robert'); DROP TABLE users;--".to_owned(),
        "a\u{0}b".to_owned(),
        "../../etc/passwd".to_owned(),
        "x".repeat(10_000),
        "emoji\u{1F600}".to_owned(),
        " admin".to_owned(),
    ];
    for name in &names {
        let (status, body) = app
            .post(
                "/api/users",
                &app.admin_token,
                json!({"username": name, "password": "secret1"}),
            )
            .await;
        let message = assert_error(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(body["field"], "username", "{message}");
    }
    // Quotes in filters are data, not SQL.
    let (status, body) = app
        .get(
            "/api/listUsers?usernames=a'%20OR%20'1'='1",
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["users"], json!([]));
    let (status, body) = app
        .get("/api/roles?name=x'%20OR%201=1--", &app.admin_token)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    // A topic filter with a NUL or a misplaced wildcard is refused.
    for resource in ["a/\u{0}", "a/#/b", "a+/b", ""] {
        let (status, body) = app
            .post(
                "/api/roles",
                &app.admin_token,
                json!({"name": "bad-filter", "permissions": [{"resource": resource, "operation": "read", "context": "mqtt"}]}),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    assert_eq!(user_count(&app).await, before);
    let (_, roles) = app
        .get("/api/roles?name=bad-filter", &app.admin_token)
        .await;
    assert_eq!(roles, json!([]));
}

async fn parallel_creates_of_one_username_store_one_user(app: TestApp) {
    let attempts = (0..12).map(|_| {
        app.post(
            "/api/users",
            &app.admin_token,
            json!({"username": "racer", "password": "secret1"}),
        )
    });
    let results: Vec<(StatusCode, Value)> = join_all(attempts).await;
    let created = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let conflicts = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 11), "{results:?}");
    let (_, users) = app
        .get("/api/listUsers?usernames=racer", &app.admin_token)
        .await;
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
}

async fn parallel_permission_adds_store_one_permission(app: TestApp) {
    let role = app.create_role("racing-role", json!([])).await;
    let path = format!("/api/roles/{}/permissions", role["id"].as_str().unwrap());
    let attempts = (0..12).map(|index| {
        let operation = if index % 2 == 0 { "read" } else { "write" };
        app.post(
            &path,
            &app.admin_token,
            json!({"resource": "race/#", "operation": operation, "context": "mqtt"}),
        )
    });
    let results = join_all(attempts).await;
    let created = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{results:?}");
    assert!(results
        .iter()
        .all(|(status, _)| *status == StatusCode::CREATED || *status == StatusCode::CONFLICT));
    let (_, permissions) = app.get(&path, &app.admin_token).await;
    assert_eq!(permissions.as_array().unwrap().len(), 1);
}

async fn responses_carry_a_request_id(app: TestApp) {
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "caller-chosen-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("x-request-id").unwrap(),
        "caller-chosen-1"
    );
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Runs futures concurrently on the current task (no extra dependency).
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => {
                        *result = Some(output);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.extend(results.into_iter().flatten());
    outputs
}

async fn empty_or_malformed_query_values_are_400(app: TestApp) {
    for path in [
        "/api/listUsers?pageNumber=",
        "/api/listUsers?rowsPerPage=",
        "/api/listUsers?excludeAutoGenerated=",
        "/api/listUsers?excludeAutoGenerated=yes",
        "/api/listUsers?pageNumber=1&pageNumber=2",
        "/api/roles/page?rowsPerPage=",
        "/api/roles/page?isShared=",
        "/api/roles/page?autoGenerated=TRUE",
        "/api/permissions/page?pageNumber=",
        "/api/permissions/page?rowsPerPage=-1",
    ] {
        let (status, body) = app.get(path, &app.admin_token).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    // Empty items in list filters are refused too.
    for path in [
        "/api/listUsers?usernames=",
        "/api/roles/page?names=a,,b",
        "/api/permissions/page?ids=",
    ] {
        let (status, body) = app.get(path, &app.admin_token).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    // Well-formed values still work.
    for path in [
        "/api/listUsers?pageNumber=1&rowsPerPage=5&excludeAutoGenerated=true",
        "/api/listUsers?usernames=admin,nobody",
    ] {
        let (status, body) = app.get(path, &app.admin_token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
}

//! API keys of the ThingsBoard dialect (T22–T26): creation (value shown once, stored only as a
//! digest), `ApiKey` authentication, listing, enabling, descriptions, updates, expiry,
//! deletion, and who may manage whose keys.

mod common;

use std::sync::Arc;

use common::{
    assert_tb_error, assert_tb_shape, tb_id, Engine, TestApp, ADMIN_PASSWORD, TB_NULL_UUID,
};
use gatehouse_core::clock::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

both_engines!(
    created_key_is_shown_once_and_stored_as_a_digest,
    key_authenticates_through_both_headers,
    unknown_and_malformed_keys_are_refused,
    keys_are_listed_paged_searched_and_sorted,
    list_refuses_bad_parameters,
    keys_are_enabled_and_disabled,
    description_takes_raw_text_and_json_strings,
    update_by_save_changes_description_and_enabled_only,
    creation_refuses_bad_input,
    key_expires_with_the_clock,
    deleted_key_is_gone,
    customer_user_cannot_touch_other_users_keys,
    tenant_administrator_manages_its_tenants_keys,
    disabled_owner_disables_its_keys,
);

const DENIED: &str = "You don't have permission to perform this operation!";

async fn sys(app: &TestApp) -> (String, String) {
    let (token, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let id = app.tb_me(&token).await["id"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (token, id)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn create_key(app: &TestApp, token: &str, user_id: &str, description: &str) -> Value {
    let (status, body) = app
        .tb_post(
            "/api/apiKey",
            token,
            json!({"userId": tb_id("USER", user_id), "description": description}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "create key: {body}");
    body
}

fn key_id(key: &Value) -> String {
    key["id"]["id"].as_str().unwrap().to_owned()
}

async fn with_key(app: &TestApp, path: &str, header: &str, value: &str) -> (StatusCode, Value) {
    let answer = app
        .tb_send(
            Method::GET,
            path,
            &[(header, &format!("ApiKey {value}"))],
            None,
        )
        .await;
    (answer.status, answer.json())
}

/// The stored digests of the api_keys table.
async fn stored_digests(app: &TestApp) -> Vec<String> {
    let url = app.settings.database_url();
    let sql = "SELECT digest FROM api_keys";
    match app.engine {
        Engine::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&mut connection).await.unwrap();
            let _ = connection.close().await;
            rows.iter()
                .map(|row| row.get::<String, _>("digest"))
                .collect()
        }
        Engine::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&mut connection).await.unwrap();
            let _ = connection.close().await;
            rows.iter()
                .map(|row| row.get::<String, _>("digest"))
                .collect()
        }
    }
}

async fn created_key_is_shown_once_and_stored_as_a_digest(app: TestApp) {
    let (token, admin_id) = sys(&app).await;
    let key = create_key(&app, &token, &admin_id, "ci pipeline").await;
    let value = key["value"].as_str().unwrap().to_owned();
    assert!(value.starts_with("tb_"), "{value}");
    assert_eq!(value.len(), 89, "{value}");
    assert!(
        value[3..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "base64url: {value}"
    );
    assert_eq!(key["id"]["entityType"], "API_KEY", "{key}");
    assert!(uuid::Uuid::parse_str(&key_id(&key)).is_ok());
    assert!(key["createdTime"].is_i64());
    assert_eq!(key["tenantId"], tb_id("TENANT", TB_NULL_UUID));
    assert_eq!(key["userId"], tb_id("USER", &admin_id));
    assert_eq!(key["expirationTime"], 0);
    assert_eq!(key["description"], "ci pipeline");
    assert_eq!(key["enabled"], true);
    assert_eq!(key["expired"], false);
    // Two keys never share a value.
    let other = create_key(&app, &token, &admin_id, "second").await;
    assert_ne!(other["value"], key["value"]);
    // Only a digest is stored: the value is nowhere in the database.
    let digests = stored_digests(&app).await;
    assert_eq!(digests.len(), 2);
    assert!(
        digests.contains(&gatehouse_core::tokens::digest_hex(&value)),
        "{digests:?}"
    );
    assert!(!digests.contains(&value));
    assert!(
        !app.database_contains(&value).await,
        "the key value is stored"
    );
    assert!(
        !app.database_contains(&value[3..]).await,
        "the key value is stored"
    );
    assert!(
        app.database_contains("ci pipeline").await,
        "the scan finds stored text"
    );
    // The list never shows values.
    let (status, page) = app
        .tb_get(
            &format!("/api/apiKeys/{admin_id}?pageSize=10&page=0"),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for entry in page["data"].as_array().unwrap() {
        assert!(
            entry.get("value").is_none() || entry["value"].is_null(),
            "{entry}"
        );
    }
}

async fn key_authenticates_through_both_headers(app: TestApp) {
    let (token, admin_id) = sys(&app).await;
    let key = create_key(&app, &token, &admin_id, "headers").await;
    let value = key["value"].as_str().unwrap();
    for header in ["x-authorization", "authorization"] {
        let (status, body) = with_key(&app, "/api/auth/user", header, value).await;
        assert_eq!(status, StatusCode::OK, "{header}: {body}");
        assert_eq!(body["id"]["id"], admin_id.as_str());
        assert_eq!(body["authority"], "SYS_ADMIN");
    }
    // The key carries its owner's authority: a system administrator's key reads the settings.
    let (status, body) = with_key(
        &app,
        "/api/admin/securitySettings",
        "x-authorization",
        value,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // X-Authorization wins.
    let answer = app
        .tb_send(
            Method::GET,
            "/api/auth/user",
            &[
                ("x-authorization", "ApiKey tb_wrong"),
                ("authorization", &format!("ApiKey {value}")),
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
    // Logout with a key does nothing harmful.
    let answer = app
        .tb_send(
            Method::POST,
            "/api/auth/logout",
            &[("x-authorization", &format!("ApiKey {value}"))],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let (status, _) = with_key(&app, "/api/auth/user", "x-authorization", value).await;
    assert_eq!(status, StatusCode::OK);
    app.tb_me(&token).await;
}

async fn unknown_and_malformed_keys_are_refused(app: TestApp) {
    let (token, admin_id) = sys(&app).await;
    let key = create_key(&app, &token, &admin_id, "real").await;
    let value = key["value"].as_str().unwrap().to_owned();
    let mut altered = value.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let long = format!("tb_{}", "a".repeat(10_000));
    for bad in [
        altered.as_str(),
        "tb_",
        "garbage",
        &value[3..],
        long.as_str(),
    ] {
        let (status, body) = with_key(&app, "/api/auth/user", "x-authorization", bad).await;
        assert_tb_error(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            10,
            "Invalid username or password",
        );
    }
    // A key as a bearer token is not a token.
    let (status, body) = app.tb_get("/api/auth/user", &value).await;
    let (code, _) = assert_tb_shape(status, &body, StatusCode::UNAUTHORIZED);
    assert!(code == 10 || code == 11, "{body}");
    let (status, _) = with_key(&app, "/api/auth/user", "x-authorization", &value).await;
    assert_eq!(status, StatusCode::OK);
}

async fn list(app: &TestApp, token: &str, user_id: &str, query: &str) -> (StatusCode, Value) {
    app.tb_get(&format!("/api/apiKeys/{user_id}?{query}"), token)
        .await
}

fn descriptions(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|entry| entry["description"].as_str().unwrap().to_owned())
        .collect()
}

async fn keys_are_listed_paged_searched_and_sorted(app: TestApp) {
    let (token, admin_id) = sys(&app).await;
    let (status, empty) = list(&app, &token, &admin_id, "pageSize=10&page=0").await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(
        empty,
        json!({"data": [], "totalPages": 0, "totalElements": 0, "hasNext": false})
    );
    for description in ["beta", "Alpha", "gamma key", "delta 100%_x"] {
        create_key(&app, &token, &admin_id, description).await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (status, page) = list(&app, &token, &admin_id, "pageSize=3&page=0").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["totalPages"], 2);
    assert_eq!(page["totalElements"], 4);
    assert_eq!(page["hasNext"], true);
    // Default order: creation time, ascending.
    assert_eq!(descriptions(&page), ["beta", "Alpha", "gamma key"]);
    let (_, page) = list(&app, &token, &admin_id, "pageSize=3&page=1").await;
    assert_eq!(descriptions(&page), ["delta 100%_x"]);
    assert_eq!(page["hasNext"], false);
    assert_eq!(page["totalPages"], 2);
    let (_, page) = list(&app, &token, &admin_id, "pageSize=3&page=7").await;
    assert_eq!(descriptions(&page), Vec::<String>::new());
    assert_eq!(page["hasNext"], false);
    assert_eq!(page["totalElements"], 4);
    // Text search ignores case; LIKE wildcards are literal.
    let (_, page) = list(&app, &token, &admin_id, "pageSize=10&page=0&textSearch=ALP").await;
    assert_eq!(descriptions(&page), ["Alpha"]);
    assert_eq!(page["totalElements"], 1);
    let (_, page) = list(&app, &token, &admin_id, "pageSize=10&page=0&textSearch=%25").await;
    assert_eq!(descriptions(&page), ["delta 100%_x"], "{page}");
    let (_, page) = list(&app, &token, &admin_id, "pageSize=10&page=0&textSearch=_").await;
    assert_eq!(descriptions(&page), ["delta 100%_x"], "{page}");
    let (_, page) = list(&app, &token, &admin_id, "pageSize=10&page=0&textSearch=zzz").await;
    assert_eq!(page["totalElements"], 0);
    // Sorting.
    let (_, page) = list(
        &app,
        &token,
        &admin_id,
        "pageSize=10&page=0&sortProperty=description&sortOrder=DESC",
    )
    .await;
    let sorted = descriptions(&page);
    assert_eq!(sorted.len(), 4);
    assert_eq!(
        sorted.first().map(String::as_str),
        Some("gamma key"),
        "{sorted:?}"
    );
    let (_, page) = list(
        &app,
        &token,
        &admin_id,
        "pageSize=10&page=0&sortProperty=createdTime&sortOrder=DESC",
    )
    .await;
    assert_eq!(
        descriptions(&page),
        ["delta 100%_x", "gamma key", "Alpha", "beta"]
    );
    let (_, page) = list(
        &app,
        &token,
        &admin_id,
        "pageSize=10&page=0&sortProperty=createdTime&sortOrder=asc",
    )
    .await;
    assert_eq!(
        descriptions(&page),
        ["beta", "Alpha", "gamma key", "delta 100%_x"]
    );
    for property in ["expirationTime", "enabled"] {
        let (status, page) = list(
            &app,
            &token,
            &admin_id,
            &format!("pageSize=10&page=0&sortProperty={property}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["totalElements"], 4);
    }
    // Another user's list is separate.
    let (status, page) = list(
        &app,
        &token,
        &uuid::Uuid::new_v4().to_string(),
        "pageSize=10&page=0",
    )
    .await;
    assert_eq!(
        assert_tb_shape(status, &page, StatusCode::NOT_FOUND).0,
        32,
        "{page}"
    );
}

async fn list_refuses_bad_parameters(app: TestApp) {
    let (token, admin_id) = sys(&app).await;
    create_key(&app, &token, &admin_id, "one").await;
    let mut problems = Vec::new();
    for query in [
        "page=0",
        "pageSize=10",
        "",
        "pageSize=0&page=0",
        "pageSize=1001&page=0",
        "pageSize=-1&page=0",
        "pageSize=abc&page=0",
        "pageSize=10&page=-1",
        "pageSize=10&page=x",
        "pageSize=99999999999999999999999&page=0",
        "pageSize=10&page=18446744073709551615",
        "pageSize=10&page=0&sortProperty=value",
        "pageSize=10&page=0&sortProperty=digest",
        "pageSize=10&page=0&sortProperty=description;DROP TABLE api_keys",
        "pageSize=10&page=0&sortOrder=SIDEWAYS",
    ] {
        let (status, body) = list(&app, &token, &admin_id, query).await;
        let in_shape = status == StatusCode::BAD_REQUEST
            && body["status"] == 400
            && body["errorCode"] == 31
            && body["message"].is_string();
        if !in_shape {
            problems.push(format!("?{query}: {status} {body}"));
        }
    }
    assert!(
        problems.is_empty(),
        "expected 400 code 31:\n{}",
        problems.join("\n")
    );
    let (status, body) = app
        .tb_get("/api/apiKeys/not-a-uuid?pageSize=10&page=0", &token)
        .await;
    assert_eq!(
        assert_tb_shape(status, &body, StatusCode::BAD_REQUEST).0,
        31
    );
    let (status, page) = list(&app, &token, &admin_id, "pageSize=10&page=0").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["totalElements"], 1, "nothing lost: {page}");
}

async fn enable(app: &TestApp, token: &str, id: &str, flag: &str) -> (StatusCode, Value) {
    app.tb_request(
        Method::PUT,
        &format!("/api/apiKey/{id}/enabled/{flag}"),
        Some(&bearer(token)),
        None,
    )
    .await
}

async fn keys_are_enabled_and_disabled(app: TestApp) {
    let (token, admin_id) = sys(&app).await;
    let key = create_key(&app, &token, &admin_id, "toggle").await;
    let id = key_id(&key);
    let value = key["value"].as_str().unwrap().to_owned();
    for (flag, enabled) in [
        ("false", false),
        ("true", true),
        ("False", false),
        ("True", true),
        ("FALSE", false),
        ("1", true),
    ] {
        let (status, body) = enable(&app, &token, &id, flag).await;
        assert_eq!(status, StatusCode::OK, "{flag}: {body}");
        assert_eq!(body["enabled"], enabled, "{flag}: {body}");
        assert_eq!(body["description"], "toggle");
        assert!(
            body.get("value").is_none() || body["value"].is_null(),
            "{body}"
        );
        let (status, answer) = with_key(&app, "/api/auth/user", "x-authorization", &value).await;
        if enabled {
            assert_eq!(status, StatusCode::OK, "{answer}");
        } else {
            assert_tb_error(
                status,
                &answer,
                StatusCode::UNAUTHORIZED,
                10,
                "User account is not active",
            );
        }
    }
    let (status, body) = enable(&app, &token, &id, "maybe").await;
    assert_eq!(
        assert_tb_shape(status, &body, StatusCode::BAD_REQUEST).0,
        31
    );
    let missing = uuid::Uuid::new_v4();
    let (status, body) = enable(&app, &token, &missing.to_string(), "true").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        32,
        &format!("Api key with id [{missing}] is not found"),
    );
    let (status, body) = enable(&app, &token, "abc", "true").await;
    assert_eq!(
        assert_tb_shape(status, &body, StatusCode::BAD_REQUEST).0,
        31
    );
    // The list shows the state.
    enable(&app, &token, &id, "False").await;
    let (_, page) = list(&app, &token, &admin_id, "pageSize=10&page=0").await;
    assert_eq!(page["data"][0]["enabled"], false, "{page}");
    // A disabled key cannot re-enable itself.
    let (status, _) = app
        .tb_request(
            Method::PUT,
            &format!("/api/apiKey/{id}/enabled/true"),
            Some(&format!("ApiKey {value}")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn describe(
    app: &TestApp,
    token: &str,
    id: &str,
    content_type: &str,
    body: &[u8],
) -> (StatusCode, Value) {
    let answer = app
        .tb_send(
            Method::PUT,
            &format!("/api/apiKey/{id}/description"),
            &[
                ("x-authorization", &bearer(token)),
                ("content-type", content_type),
            ],
            Some(body.to_vec()),
        )
        .await;
    (answer.status, answer.json())
}

async fn description_takes_raw_text_and_json_strings(app: TestApp) {
    let (token, admin_id) = sys(&app).await;
    let key = create_key(&app, &token, &admin_id, "original").await;
    let id = key_id(&key);
    let (status, body) = describe(&app, &token, &id, "text/plain", b"renamed by the UI").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["description"], "renamed by the UI");
    assert_eq!(body["id"]["id"], id.as_str());
    // tb-ce-client sends a JSON string: stored without the quotes.
    let (status, body) = describe(&app, &token, &id, "application/json", b"\"x\"").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["description"], "x");
    let (status, body) = describe(
        &app,
        &token,
        &id,
        "application/json",
        b"\"with \\\"escapes\\\" \\u00e9\"",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["description"], "with \"escapes\" \u{e9}");
    let (_, page) = list(&app, &token, &admin_id, "pageSize=10&page=0").await;
    assert_eq!(page["data"][0]["description"], "with \"escapes\" \u{e9}");
    // Blank or empty: 400, nothing changed.
    for blank in [&b""[..], b"   ", b"\"\"", b"\"  \""] {
        let (status, body) = describe(&app, &token, &id, "text/plain", blank).await;
        assert_tb_error(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            31,
            "description must not be blank",
        );
    }
    let (status, body) = describe(&app, &token, &id, "text/plain", &[0xff, 0xfe, 0x41]).await;
    assert_eq!(
        assert_tb_shape(status, &body, StatusCode::BAD_REQUEST).0,
        31
    );
    let (status, body) = describe(
        &app,
        &token,
        &id,
        "text/plain",
        "d".repeat(10_000).as_bytes(),
    )
    .await;
    assert_eq!(
        assert_tb_shape(status, &body, StatusCode::BAD_REQUEST).0,
        31
    );
    let (_, page) = list(&app, &token, &admin_id, "pageSize=10&page=0").await;
    assert_eq!(page["data"][0]["description"], "with \"escapes\" \u{e9}");
    let missing = uuid::Uuid::new_v4();
    let (status, body) = describe(&app, &token, &missing.to_string(), "text/plain", b"x").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        32,
        &format!("Api key with id [{missing}] is not found"),
    );
}

async fn update_by_save_changes_description_and_enabled_only(app: TestApp) {
    let app = {
        let engine = app.engine;
        app.stop().await;
        let clock = Arc::new(ManualClock::new(1_900_000_000_000));
        TestApp::spawn_with(engine, |_| {}, Some(clock)).await
    };
    let (token, admin_id) = sys(&app).await;
    let expiry = 1_900_000_000_000_i64 + 86_400_000;
    let (status, key) = app
        .tb_post(
            "/api/apiKey",
            &token,
            json!({"userId": tb_id("USER", &admin_id), "description": "before", "enabled": true, "expirationTime": expiry}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{key}");
    assert_eq!(key["expirationTime"], expiry);
    let id = key_id(&key);
    let value = key["value"].as_str().unwrap().to_owned();
    let (status, updated) = app
        .tb_post(
            "/api/apiKey",
            &token,
            json!({"id": tb_id("API_KEY", &id), "userId": tb_id("USER", &admin_id), "description": "after", "enabled": false, "expirationTime": expiry}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["value"], "", "{updated}");
    assert_eq!(updated["description"], "after");
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["expirationTime"], expiry);
    assert_eq!(updated["createdTime"], key["createdTime"]);
    // The whole ApiKeyInfo as tb-ce-client sends it back (read-only fields included).
    let mut echoed = updated.clone();
    echoed["enabled"] = json!(true);
    let (status, again) = app.tb_post("/api/apiKey", &token, echoed).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["enabled"], true);
    let (status, _) = with_key(&app, "/api/auth/user", "x-authorization", &value).await;
    assert_eq!(status, StatusCode::OK, "the key survived the updates");
    // Expiry and owner cannot change.
    let (status, body) = app
        .tb_post(
            "/api/apiKey",
            &token,
            json!({"id": tb_id("API_KEY", &id), "description": "after", "expirationTime": expiry + 1}),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "expirationTime cannot be changed",
    );
    let (status, body) = app
        .tb_post(
            "/api/apiKey",
            &token,
            json!({"id": tb_id("API_KEY", &id), "description": "after", "expirationTime": 0}),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "expirationTime cannot be changed",
    );
    let (status, body) = app
        .tb_post(
            "/api/apiKey",
            &token,
            json!({"id": tb_id("API_KEY", &id), "userId": tb_id("USER", &uuid::Uuid::new_v4().to_string()), "description": "after"}),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "userId cannot be changed",
    );
    let (status, body) = app
        .tb_post(
            "/api/apiKey",
            &token,
            json!({"id": tb_id("API_KEY", &id), "description": "  "}),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "description must not be blank",
    );
    let missing = uuid::Uuid::new_v4();
    let (status, body) = app
        .tb_post(
            "/api/apiKey",
            &token,
            json!({"id": tb_id("API_KEY", &missing.to_string()), "description": "x"}),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        32,
        &format!("Api key with id [{missing}] is not found"),
    );
    // Nothing of that was stored.
    let (_, page) = list(&app, &token, &admin_id, "pageSize=10&page=0").await;
    assert_eq!(page["totalElements"], 1);
    assert_eq!(page["data"][0]["description"], "after");
    assert_eq!(page["data"][0]["expirationTime"], expiry);
}

async fn creation_refuses_bad_input(app: TestApp) {
    let (token, admin_id) = sys(&app).await;
    let owner = tb_id("USER", &admin_id);
    let past = 1_000_i64;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let cases = [
        (
            json!({"userId": owner, "description": "old", "expirationTime": past}),
            Some("expirationTime must be 0 (never) or a time in the future, in epoch milliseconds"),
        ),
        (
            json!({"userId": owner, "description": "old", "expirationTime": now_ms - 1000}),
            Some("expirationTime must be 0 (never) or a time in the future, in epoch milliseconds"),
        ),
        (
            json!({"userId": owner, "description": "neg", "expirationTime": -5}),
            Some("expirationTime must be 0 (never) or a time in the future, in epoch milliseconds"),
        ),
        (
            json!({"userId": owner, "description": ""}),
            Some("description must not be blank"),
        ),
        (
            json!({"userId": owner, "description": "   "}),
            Some("description must not be blank"),
        ),
        (
            json!({"userId": owner}),
            Some("description must not be blank"),
        ),
        (
            json!({"description": "no owner"}),
            Some("userId must be given"),
        ),
        (
            json!({"userId": owner, "description": "d".repeat(10_000)}),
            Some("description must be at most 1024 characters"),
        ),
        (json!({"userId": owner, "description": 5}), None),
        (
            json!({"userId": owner, "description": "x", "enabled": "yes"}),
            None,
        ),
        (
            json!({"userId": owner, "description": "x", "expirationTime": "tomorrow"}),
            None,
        ),
        (
            json!({"userId": {"entityType": "USER", "id": "nope"}, "description": "x"}),
            None,
        ),
        (json!({"userId": "plain", "description": "x"}), None),
        (json!([]), None),
    ];
    for (body, message) in cases {
        let (status, answer) = app.tb_post("/api/apiKey", &token, body.clone()).await;
        match message {
            Some(message) => assert_tb_error(status, &answer, StatusCode::BAD_REQUEST, 31, message),
            None => assert_eq!(
                assert_tb_shape(status, &answer, StatusCode::BAD_REQUEST).0,
                31,
                "{body}"
            ),
        }
    }
    // A missing owner is 404 naming the user.
    let missing = uuid::Uuid::new_v4();
    let (status, answer) = app
        .tb_post(
            "/api/apiKey",
            &token,
            json!({"userId": tb_id("USER", &missing.to_string()), "description": "x"}),
        )
        .await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::NOT_FOUND,
        32,
        &format!("User with id [{missing}] is not found"),
    );
    let (_, page) = list(&app, &token, &admin_id, "pageSize=10&page=0").await;
    assert_eq!(page["totalElements"], 0, "nothing stored: {page}");
    // Without authentication.
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/apiKey",
            None,
            Some(json!({"userId": owner, "description": "x"})),
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

async fn key_expires_with_the_clock(app: TestApp) {
    let engine = app.engine;
    app.stop().await;
    let start = 1_900_000_000_000_i64;
    let clock = Arc::new(ManualClock::new(start));
    let app = TestApp::spawn_with(engine, |_| {}, Some(clock.clone())).await;
    let (token, admin_id) = sys(&app).await;
    let (status, key) = app
        .tb_post(
            "/api/apiKey",
            &token,
            json!({"userId": tb_id("USER", &admin_id), "description": "short", "expirationTime": start + 60_000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{key}");
    assert_eq!(key["expired"], false);
    let value = key["value"].as_str().unwrap().to_owned();
    let forever = create_key(&app, &token, &admin_id, "forever").await;
    clock.advance(59_000);
    let (status, _) = with_key(&app, "/api/auth/user", "x-authorization", &value).await;
    assert_eq!(status, StatusCode::OK);
    clock.advance(2_000);
    let (status, body) = with_key(&app, "/api/auth/user", "x-authorization", &value).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "API key is expired",
    );
    let (status, page) = list(
        &app,
        &token,
        &admin_id,
        "pageSize=10&page=0&sortProperty=description",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"][0]["description"], "forever");
    assert_eq!(page["data"][0]["expired"], false);
    assert_eq!(page["data"][1]["description"], "short");
    assert_eq!(page["data"][1]["expired"], true, "{page}");
    // Keys with expiry 0 never expire.
    clock.advance(10 * 365 * 86_400_000);
    let (status, _) = with_key(
        &app,
        "/api/auth/user",
        "x-authorization",
        forever["value"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

async fn delete_key(app: &TestApp, token: &str, id: &str) -> common::RawAnswer {
    app.tb_send(
        Method::DELETE,
        &format!("/api/apiKey/{id}"),
        &[("x-authorization", &bearer(token))],
        None,
    )
    .await
}

async fn deleted_key_is_gone(app: TestApp) {
    let (token, admin_id) = sys(&app).await;
    let key = create_key(&app, &token, &admin_id, "doomed").await;
    let keep = create_key(&app, &token, &admin_id, "kept").await;
    let id = key_id(&key);
    let answer = delete_key(&app, &token, &id).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "");
    let answer = delete_key(&app, &token, &id).await;
    assert_tb_error(
        answer.status,
        &answer.json(),
        StatusCode::NOT_FOUND,
        32,
        &format!("Api key with id [{id}] is not found"),
    );
    let (status, body) = with_key(
        &app,
        "/api/auth/user",
        "x-authorization",
        key["value"].as_str().unwrap(),
    )
    .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
    let answer = delete_key(&app, &token, "abc").await;
    assert_eq!(
        assert_tb_shape(answer.status, &answer.json(), StatusCode::BAD_REQUEST).0,
        31
    );
    let (_, page) = list(&app, &token, &admin_id, "pageSize=10&page=0").await;
    assert_eq!(descriptions(&page), ["kept"]);
    let (status, _) = with_key(
        &app,
        "/api/auth/user",
        "x-authorization",
        keep["value"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A key may delete itself; afterwards it is unknown.
    let keep_value = keep["value"].as_str().unwrap().to_owned();
    let answer = app
        .tb_send(
            Method::DELETE,
            &format!("/api/apiKey/{}", key_id(&keep)),
            &[("x-authorization", &format!("ApiKey {keep_value}"))],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let (status, _) = with_key(&app, "/api/auth/user", "x-authorization", &keep_value).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A tenant administrator with two customer users of one customer and one of another:
/// (ta token, ta id, [(id, token)] of c1, c2 (same customer), c3 (other customer)).
async fn tenancy(app: &TestApp, sys: &str) -> (String, String, Vec<(String, String)>) {
    let tenant = uuid::Uuid::new_v4().to_string();
    let (ta_id, ta, _) = app
        .tb_new_user(
            sys,
            json!({"email": "ta@example.com", "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant)}),
            "tenant-pass-1",
        )
        .await;
    let customer = uuid::Uuid::new_v4().to_string();
    let other_customer = uuid::Uuid::new_v4().to_string();
    let mut customers = Vec::new();
    for (email, customer) in [
        ("c1@example.com", &customer),
        ("c2@example.com", &customer),
        ("c3@example.com", &other_customer),
    ] {
        let (id, token, _) = app
            .tb_new_user(
                &ta,
                json!({"email": email, "authority": "CUSTOMER_USER", "customerId": tb_id("CUSTOMER", customer)}),
                "customer-pass-1",
            )
            .await;
        customers.push((id, token));
    }
    (ta, ta_id, customers)
}

async fn customer_user_cannot_touch_other_users_keys(app: TestApp) {
    let (sys_token, _) = sys(&app).await;
    let (_, ta_id, customers) = tenancy(&app, &sys_token).await;
    let (c1_id, c1) = &customers[0];
    let (c2_id, c2) = &customers[1];
    let (c3_id, _) = &customers[2];
    // Own keys: fine.
    let own = create_key(&app, c1, c1_id, "mine").await;
    assert_eq!(own["userId"], tb_id("USER", c1_id));
    let (status, _) = with_key(
        &app,
        "/api/auth/user",
        "x-authorization",
        own["value"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let theirs = create_key(&app, c2, c2_id, "theirs").await;
    let theirs_id = key_id(&theirs);
    // Creating a key for someone else: 403.
    for target in [c2_id, c3_id, &ta_id] {
        let (status, body) = app
            .tb_post(
                "/api/apiKey",
                c1,
                json!({"userId": tb_id("USER", target), "description": "sneaky"}),
            )
            .await;
        assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    }
    // Another user's key is as invisible as a missing one (404), for every change.
    let not_found = format!("Api key with id [{theirs_id}] is not found");
    let answer = delete_key(&app, c1, &theirs_id).await;
    assert_tb_error(
        answer.status,
        &answer.json(),
        StatusCode::NOT_FOUND,
        32,
        &not_found,
    );
    let (status, body) = enable(&app, c1, &theirs_id, "false").await;
    assert_tb_error(status, &body, StatusCode::NOT_FOUND, 32, &not_found);
    let (status, body) = describe(&app, c1, &theirs_id, "text/plain", b"hijacked").await;
    assert_tb_error(status, &body, StatusCode::NOT_FOUND, 32, &not_found);
    let (status, body) = app
        .tb_post(
            "/api/apiKey",
            c1,
            json!({"id": tb_id("API_KEY", &theirs_id), "description": "hijacked"}),
        )
        .await;
    assert_tb_error(status, &body, StatusCode::NOT_FOUND, 32, &not_found);
    // Listing: the same customer's users may be read; others not.
    let (status, page) = list(&app, c1, c2_id, "pageSize=10&page=0").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(descriptions(&page), ["theirs"]);
    for target in [c3_id, &ta_id] {
        let (status, body) = list(&app, c1, target, "pageSize=10&page=0").await;
        assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    }
    // The key is untouched.
    let (status, page) = list(&app, c2, c2_id, "pageSize=10&page=0").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"][0]["description"], "theirs");
    assert_eq!(page["data"][0]["enabled"], true);
    let (status, _) = with_key(
        &app,
        "/api/auth/user",
        "x-authorization",
        theirs["value"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A customer user's key cannot reach beyond its owner either.
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/apiKey",
            Some(&format!("ApiKey {}", own["value"].as_str().unwrap())),
            Some(json!({"userId": tb_id("USER", c2_id), "description": "via key"})),
        )
        .await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
}

async fn tenant_administrator_manages_its_tenants_keys(app: TestApp) {
    let (sys_token, sys_id) = sys(&app).await;
    let (ta, ta_id, customers) = tenancy(&app, &sys_token).await;
    let (c1_id, _) = &customers[0];
    let key = create_key(&app, &ta, c1_id, "by the tenant admin").await;
    assert_eq!(key["userId"], tb_id("USER", c1_id));
    let id = key_id(&key);
    let value = key["value"].as_str().unwrap().to_owned();
    let (status, me) = with_key(&app, "/api/auth/user", "x-authorization", &value).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me["id"]["id"],
        c1_id.as_str(),
        "the key acts as its owner: {me}"
    );
    assert_eq!(me["authority"], "CUSTOMER_USER");
    let tenant_id = me["tenantId"].clone();
    assert_eq!(
        key["tenantId"], tenant_id,
        "the key shows its owner's tenant"
    );
    let (status, page) = list(&app, &ta, c1_id, "pageSize=10&page=0").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["totalElements"], 1);
    let (status, body) = enable(&app, &ta, &id, "false").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = describe(&app, &ta, &id, "text/plain", b"renamed").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The system administrator manages tenant administrators' keys, not customers'.
    let ta_key = create_key(&app, &sys_token, &ta_id, "for the tenant admin").await;
    assert_eq!(ta_key["userId"], tb_id("USER", &ta_id));
    let (status, body) = app
        .tb_post(
            "/api/apiKey",
            &sys_token,
            json!({"userId": tb_id("USER", c1_id), "description": "x"}),
        )
        .await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    // The tenant administrator cannot reach the system administrator's keys.
    let sys_key = create_key(&app, &sys_token, &sys_id, "system").await;
    let (status, body) = app
        .tb_post(
            "/api/apiKey",
            &ta,
            json!({"userId": tb_id("USER", &sys_id), "description": "x"}),
        )
        .await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    let (status, body) = list(&app, &ta, &sys_id, "pageSize=10&page=0").await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    let answer = delete_key(&app, &ta, &key_id(&sys_key)).await;
    assert_tb_error(
        answer.status,
        &answer.json(),
        StatusCode::NOT_FOUND,
        32,
        &format!("Api key with id [{}] is not found", key_id(&sys_key)),
    );
    // Another tenant's administrator cannot reach this tenant's keys.
    let (_, other_ta, _) = app
        .tb_new_user(
            &sys_token,
            json!({"email": "other-ta@example.com", "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &uuid::Uuid::new_v4().to_string())}),
            "tenant-pass-2",
        )
        .await;
    let answer = delete_key(&app, &other_ta, &id).await;
    assert_tb_error(
        answer.status,
        &answer.json(),
        StatusCode::NOT_FOUND,
        32,
        &format!("Api key with id [{id}] is not found"),
    );
    let (status, body) = list(&app, &other_ta, c1_id, "pageSize=10&page=0").await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    // The tenant administrator deletes the key.
    let answer = delete_key(&app, &ta, &id).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let (_, page) = list(&app, &ta, c1_id, "pageSize=10&page=0").await;
    assert_eq!(page["totalElements"], 0);
    let (status, _) = with_key(
        &app,
        "/api/auth/user",
        "x-authorization",
        sys_key["value"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

async fn disabled_owner_disables_its_keys(app: TestApp) {
    let (sys_token, _) = sys(&app).await;
    let (ta, ta_id, customers) = tenancy(&app, &sys_token).await;
    let (c1_id, c1) = &customers[0];
    let key = create_key(&app, c1, c1_id, "owner's").await;
    let value = key["value"].as_str().unwrap().to_owned();
    let ta_key = create_key(&app, &ta, &ta_id, "admin's").await;
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{c1_id}/userCredentialsEnabled?userCredentialsEnabled=false"),
            &ta,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = with_key(&app, "/api/auth/user", "x-authorization", &value).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "User account is not active",
    );
    // Other users' keys keep working.
    let (status, _) = with_key(
        &app,
        "/api/auth/user",
        "x-authorization",
        ta_key["value"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{c1_id}/userCredentialsEnabled?userCredentialsEnabled=true"),
            &ta,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = with_key(&app, "/api/auth/user", "x-authorization", &value).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Deleting the owner deletes its keys.
    let answer = app
        .tb_send(
            Method::DELETE,
            &format!("/api/user/{c1_id}"),
            &[("x-authorization", &bearer(&ta))],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let (status, body) = with_key(&app, "/api/auth/user", "x-authorization", &value).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
    let digests = stored_digests(&app).await;
    assert_eq!(digests.len(), 1, "{digests:?}");
}

//! The mosquitto-go-auth / amqtt HTTP backend (`/api/broker/http/{user,superuser,acl}`): the
//! request formats both brokers send (JSON, form, query string; POST, GET and PUT; `clientid`
//! and `client_id`), the answers of every response mode, the decisions of the permission engine
//! as brokers see them, and who may call the hooks.

mod common;

use common::broker::{mqtt_user, perm};
use common::{TestApp, ADMIN_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    user_hook_checks_passwords_in_every_request_format,
    user_hook_refuses_disabled_and_locked_users,
    user_hook_accepts_the_users_own_tokens,
    acl_hook_decides_publish_subscribe_and_receive,
    acl_hook_applies_role_changes_at_once,
    acl_hook_refuses_publishes_it_cannot_prefix,
    superuser_hook_names_enabled_administrators,
    text_mode_answers_ok_or_denied,
    hostile_input_is_denied_never_a_server_error,
    hooks_are_open_to_loopback_by_default_and_never_to_tokens,
    address_list_closes_the_hooks_to_other_addresses,
    secret_opens_the_hooks_from_anywhere,
);

const USER: &str = "/api/broker/http/user";
const SUPERUSER: &str = "/api/broker/http/superuser";
const ACL: &str = "/api/broker/http/acl";

const DEVICE: &str = "device-1";
const DEVICE_PASSWORD: &str = "device-pass-1";

/// Request headers as (name, value).
type Headers<'a> = Vec<(&'a str, &'a str)>;

const JSON: (&str, &str) = ("content-type", "application/json");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// The device: `sensors/#` write, `cmd/+` read.
async fn device(app: &TestApp) -> (String, String) {
    mqtt_user(
        app,
        DEVICE,
        DEVICE_PASSWORD,
        "sensors",
        json!([perm("sensors/#", "write"), perm("cmd/+", "read")]),
    )
    .await
}

/// Sends a hook request with exactly these headers and body; returns (status, body text).
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (StatusCode, String) {
    let answer = app.tb_send(method, path, headers, body).await;
    (answer.status, answer.text)
}

/// POSTs a JSON body, as go-auth does by default.
async fn post_json(app: &TestApp, path: &str, body: Value) -> (StatusCode, String) {
    send(
        app,
        Method::POST,
        path,
        &[JSON],
        Some(serde_json::to_vec(&body).expect("JSON")),
    )
    .await
}

/// Interprets a JSON-mode answer: `true` for 200 `{"ok":true}`, `false` for 403
/// `{"ok":false,"error":…}`; anything else fails the test.
fn decision(status: StatusCode, text: &str) -> bool {
    let body: Value =
        serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {status} {text}"));
    match status {
        StatusCode::OK => {
            assert_eq!(body, json!({"ok": true}), "allow answer");
            true
        }
        StatusCode::FORBIDDEN => {
            assert_eq!(body["ok"], false, "deny answer: {body}");
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|error| !error.is_empty()),
                "deny answer with a reason: {body}"
            );
            assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
            false
        }
        other => panic!("unexpected answer {other}: {text}"),
    }
}

/// The reason of a deny answer.
fn reason(status: StatusCode, text: &str) -> String {
    assert!(!decision(status, text), "expected a denial");
    let body: Value = serde_json::from_str(text).expect("JSON");
    body["error"].as_str().expect("reason").to_owned()
}

async fn user_check(app: &TestApp, username: &str, password: &str) -> bool {
    let (status, text) = post_json(
        app,
        USER,
        json!({"username": username, "password": password, "clientid": "c1"}),
    )
    .await;
    decision(status, &text)
}

async fn acl(app: &TestApp, username: &str, topic: &str, acc: Value) -> bool {
    let (status, text) = post_json(
        app,
        ACL,
        json!({"username": username, "clientid": "c1", "topic": topic, "acc": acc}),
    )
    .await;
    decision(status, &text)
}

async fn user_hook_checks_passwords_in_every_request_format(app: TestApp) {
    device(&app).await;
    // go-auth: POST JSON with `clientid`.
    assert!(user_check(&app, DEVICE, DEVICE_PASSWORD).await);
    // amqtt: POST JSON with `client_id` (and a `null` it sends for absent values).
    let (status, text) = post_json(
        &app,
        USER,
        json!({"username": DEVICE, "password": DEVICE_PASSWORD, "client_id": null}),
    )
    .await;
    assert!(decision(status, &text));
    let (status, text) = post_json(
        &app,
        USER,
        json!({"username": DEVICE, "password": DEVICE_PASSWORD, "client_id": "c1"}),
    )
    .await;
    assert!(decision(status, &text));
    // Form bodies (go-auth `params_mode form`, amqtt `form` with POST or PUT).
    let form = format!("username={DEVICE}&password={DEVICE_PASSWORD}&clientid=c1");
    for method in [Method::POST, Method::PUT] {
        let (status, text) = send(
            &app,
            method.clone(),
            USER,
            &[FORM],
            Some(form.clone().into_bytes()),
        )
        .await;
        assert!(decision(status, &text), "{method} form");
    }
    // amqtt's default: GET with a JSON body; amqtt `form` with GET: the query string.
    for method in [Method::GET, Method::PUT] {
        let body = json!({"username": DEVICE, "password": DEVICE_PASSWORD, "client_id": "c1"});
        let (status, text) = send(
            &app,
            method.clone(),
            USER,
            &[JSON],
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
        assert!(decision(status, &text), "{method} JSON");
    }
    let (status, text) = send(
        &app,
        Method::GET,
        &format!("{USER}?username={DEVICE}&password={DEVICE_PASSWORD}&client_id=c1"),
        &[],
        None,
    )
    .await;
    assert!(decision(status, &text), "GET query");
    // A password with reserved characters survives form encoding.
    mqtt_user(&app, "dev-2", "p&ss=w+rd %x", "other", json!([])).await;
    let (status, text) = send(
        &app,
        Method::POST,
        USER,
        &[FORM],
        Some(b"username=dev-2&password=p%26ss%3Dw%2Brd+%25x&clientid=c2".to_vec()),
    )
    .await;
    assert!(decision(status, &text), "encoded form password");

    // Refusals: wrong password, unknown user, missing or empty password; each 403 with a
    // reason that does not say which half was wrong.
    let (status, text) = post_json(
        &app,
        USER,
        json!({"username": DEVICE, "password": "wrong-pass", "clientid": "c1"}),
    )
    .await;
    let wrong = reason(status, &text);
    let (status, text) = post_json(
        &app,
        USER,
        json!({"username": "nobody", "password": DEVICE_PASSWORD, "clientid": "c1"}),
    )
    .await;
    assert_eq!(reason(status, &text), wrong, "unknown and wrong read alike");
    let (status, text) = post_json(&app, USER, json!({"username": DEVICE, "clientid": "c1"})).await;
    assert!(!decision(status, &text), "missing password");
    let (status, text) = post_json(
        &app,
        USER,
        json!({"username": DEVICE, "password": null, "client_id": "c1"}),
    )
    .await;
    assert!(!decision(status, &text), "null password");
    assert!(!user_check(&app, DEVICE, "").await, "empty password");
    let (status, text) = send(
        &app,
        Method::GET,
        &format!("{USER}?username={DEVICE}&password=wrong&client_id=c1"),
        &[],
        None,
    )
    .await;
    assert!(!decision(status, &text), "GET query, wrong password");
    // Missing username: malformed, denied with a reason.
    let (status, text) = post_json(
        &app,
        USER,
        json!({"password": DEVICE_PASSWORD, "clientid": "c1"}),
    )
    .await;
    assert!(reason(status, &text).contains("username"), "{text}");
    // The right password still works after the failures.
    assert!(user_check(&app, DEVICE, DEVICE_PASSWORD).await);
}

async fn user_hook_refuses_disabled_and_locked_users(app: TestApp) {
    let (device_id, _) = device(&app).await;
    assert!(user_check(&app, DEVICE, DEVICE_PASSWORD).await);
    assert!(acl(&app, DEVICE, "sensors/t1", json!(2)).await);
    // Disabled by an administrator (ThingsBoard dialect): refused at once, although the
    // password was verified (and remembered) a moment ago; its ACL checks fail too.
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{device_id}/userCredentialsEnabled?userCredentialsEnabled=false"),
            &sys,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, text) = post_json(
        &app,
        USER,
        json!({"username": DEVICE, "password": DEVICE_PASSWORD, "clientid": "c1"}),
    )
    .await;
    assert_eq!(reason(status, &text), "account not active");
    assert!(!acl(&app, DEVICE, "sensors/t1", json!(2)).await);
    assert!(!acl(&app, DEVICE, "cmd/a", json!(8)).await, "unsubscribe");

    // Locked by failed attempts through the hook itself.
    app.tb_update_security(&sys, |settings| {
        settings["maxFailedLoginAttempts"] = json!(2);
    })
    .await;
    mqtt_user(
        &app,
        "victim",
        "victim-pass-1",
        "victim-role",
        json!([perm("v/#", "readWrite")]),
    )
    .await;
    assert!(acl(&app, "victim", "v/1", json!(2)).await);
    // A token taken before the lock stays valid for the HTTP API, but opens no MQTT connection.
    let victim_token = app.login("victim", "victim-pass-1").await;
    for _ in 0..2 {
        assert!(!user_check(&app, "victim", "wrong-pass").await);
    }
    let (status, text) = post_json(
        &app,
        USER,
        json!({"username": "victim", "password": "victim-pass-1", "clientid": "c1"}),
    )
    .await;
    assert_eq!(reason(status, &text), "account locked");
    assert!(!user_check(&app, "victim", "victim-pass-1").await);
    assert!(
        !acl(&app, "victim", "v/1", json!(2)).await,
        "locked: no ACL"
    );
    let (status, session) = app.get("/api/session", &victim_token).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a lockout keeps live sessions: {session}"
    );
    let (status, text) = post_json(
        &app,
        USER,
        json!({"username": "victim", "password": victim_token, "clientid": "c1"}),
    )
    .await;
    assert_eq!(reason(status, &text), "account not active");
}

async fn user_hook_accepts_the_users_own_tokens(app: TestApp) {
    device(&app).await;
    let device_token = app.login(DEVICE, DEVICE_PASSWORD).await;
    // EMQX style: an access token as the password.
    assert!(user_check(&app, DEVICE, &device_token).await);
    // A token of another user is refused, whoever's name comes with it.
    let (status, text) = post_json(
        &app,
        USER,
        json!({"username": DEVICE, "password": app.admin_token, "clientid": "c1"}),
    )
    .await;
    assert!(!decision(status, &text), "admin token for the device");
    assert!(!user_check(&app, "admin", &device_token).await);
    // A revoked token stops working.
    let (status, _) = app
        .request(Method::POST, "/api/auth/logout", Some(&device_token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "logout");
    assert!(!user_check(&app, DEVICE, &device_token).await, "revoked");
    // A malformed token-looking password is just a wrong password.
    assert!(!user_check(&app, DEVICE, "eyJhbGciOiJIUzI1NiJ9.e30.x").await);
}

async fn acl_hook_decides_publish_subscribe_and_receive(app: TestApp) {
    device(&app).await;
    // Publish (2): `sensors/#` write.
    assert!(acl(&app, DEVICE, "sensors/t1", json!(2)).await);
    assert!(acl(&app, DEVICE, "sensors/a/b/c", json!(2)).await);
    assert!(
        acl(&app, DEVICE, "sensors", json!(2)).await,
        "`#` covers the parent"
    );
    assert!(!acl(&app, DEVICE, "other/t1", json!(2)).await);
    assert!(
        !acl(&app, DEVICE, "cmd/a", json!(2)).await,
        "read is not write"
    );
    assert!(
        !acl(&app, DEVICE, "sensors/+", json!(2)).await,
        "no wildcards in names"
    );
    // Subscribe (4): the filter must be covered by a read permission.
    assert!(acl(&app, DEVICE, "cmd/a", json!(4)).await);
    assert!(acl(&app, DEVICE, "cmd/+", json!(4)).await);
    assert!(
        !acl(&app, DEVICE, "cmd/#", json!(4)).await,
        "wider than cmd/+"
    );
    assert!(!acl(&app, DEVICE, "cmd/a/b", json!(4)).await);
    assert!(!acl(&app, DEVICE, "#", json!(4)).await);
    assert!(
        !acl(&app, DEVICE, "sensors/#", json!(4)).await,
        "write is not read"
    );
    assert!(
        !acl(&app, DEVICE, "a/#/b", json!(4)).await,
        "malformed filter"
    );
    // Receive (1).
    assert!(acl(&app, DEVICE, "cmd/a", json!(1)).await);
    assert!(!acl(&app, DEVICE, "cmd/a/b", json!(1)).await);
    assert!(!acl(&app, DEVICE, "sensors/t1", json!(1)).await);
    // Read and write (3): both needed.
    assert!(!acl(&app, DEVICE, "sensors/t1", json!(3)).await);
    assert!(!acl(&app, DEVICE, "cmd/a", json!(3)).await);
    mqtt_user(
        &app,
        "rw-device",
        "rw-pass-1",
        "rw",
        json!([perm("both/#", "readWrite")]),
    )
    .await;
    assert!(acl(&app, "rw-device", "both/x", json!(3)).await);
    // Unsubscribe (8): allowed for known, enabled users.
    assert!(acl(&app, DEVICE, "anything/#", json!(8)).await);
    assert!(!acl(&app, "nobody", "anything/#", json!(8)).await);
    // `acc` as a string (forms, go-auth's README) and the amqtt field name.
    assert!(acl(&app, DEVICE, "sensors/t1", json!("2")).await);
    let (status, text) = post_json(
        &app,
        ACL,
        json!({"username": DEVICE, "client_id": "c1", "topic": "cmd/+", "acc": 4}),
    )
    .await;
    assert!(decision(status, &text));
    // Form and GET query.
    let (status, text) = send(
        &app,
        Method::POST,
        ACL,
        &[FORM],
        Some(format!("username={DEVICE}&clientid=c1&topic=sensors%2Ft1&acc=2").into_bytes()),
    )
    .await;
    assert!(decision(status, &text), "form");
    let (status, text) = send(
        &app,
        Method::GET,
        &format!("{ACL}?username={DEVICE}&client_id=c1&topic=cmd%2F%2B&acc=4"),
        &[],
        None,
    )
    .await;
    assert!(decision(status, &text), "GET query subscribe");
    let (status, text) = send(
        &app,
        Method::GET,
        &format!("{ACL}?username={DEVICE}&client_id=c1&topic=cmd%2F%23&acc=4"),
        &[],
        None,
    )
    .await;
    assert!(!decision(status, &text), "GET query subscribe, not covered");
    // Unknown users get nothing.
    assert!(!acl(&app, "nobody", "sensors/t1", json!(2)).await);

    // `$`-topics need explicit permissions: `#` does not cover them.
    mqtt_user(
        &app,
        "wide",
        "wide-pass-1",
        "wide",
        json!([perm("#", "readWrite")]),
    )
    .await;
    assert!(acl(&app, "wide", "a/b", json!(2)).await);
    assert!(acl(&app, "wide", "#", json!(4)).await);
    assert!(!acl(&app, "wide", "$SYS/#", json!(4)).await);
    assert!(!acl(&app, "wide", "$SYS/broker/load", json!(1)).await);
    assert!(!acl(&app, "wide", "$SYS/x", json!(2)).await);
}

async fn acl_hook_applies_role_changes_at_once(app: TestApp) {
    let (_, role_id) = device(&app).await;
    assert!(!acl(&app, DEVICE, "alerts/fire", json!(2)).await);
    let (status, added) = app
        .post(
            &format!("/api/roles/{role_id}/permissions"),
            &app.admin_token,
            perm("alerts/#", "write"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert!(
        acl(&app, DEVICE, "alerts/fire", json!(2)).await,
        "no restart"
    );
    // And back.
    let permission_id = added["id"].as_str().expect("permission id");
    let (status, body) = app
        .delete(
            &format!("/api/roles/{role_id}/permissions/{permission_id}"),
            &app.admin_token,
            None,
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert!(!acl(&app, DEVICE, "alerts/fire", json!(2)).await);
    // A password change applies to the next CONNECT, despite the remembered credential.
    assert!(user_check(&app, DEVICE, DEVICE_PASSWORD).await);
    let device_token = app.login(DEVICE, DEVICE_PASSWORD).await;
    let (status, body) = app
        .put(
            "/api/users/change-password",
            &device_token,
            json!({"password": DEVICE_PASSWORD, "newPassword": "device-pass-2"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "change-password: {body}");
    assert!(
        !user_check(&app, DEVICE, DEVICE_PASSWORD).await,
        "old password"
    );
    assert!(
        user_check(&app, DEVICE, "device-pass-2").await,
        "new password"
    );
}

async fn acl_hook_refuses_publishes_it_cannot_prefix(app: TestApp) {
    let role = app
        .create_role("site1", json!([perm("site1/#", "readWrite")]))
        .await;
    let minimum = app.role_id("minimum-access").await;
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({
                "username": "prefixed",
                "password": "prefixed-pass-1",
                "roles": [role["id"], minimum],
                "mqttPublishPrefix": "site1/",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The broker would deliver on `sensors/t1` (it cannot rewrite to `site1/sensors/t1`), which
    // the user's permissions do not cover.
    let (status, text) = post_json(
        &app,
        ACL,
        json!({"username": "prefixed", "clientid": "c", "topic": "sensors/t1", "acc": 2}),
    )
    .await;
    assert!(reason(status, &text).contains("prefix"), "{text}");
    assert!(!acl(&app, "prefixed", "site1/sensors/t1", json!(2)).await);
    assert!(!acl(&app, "prefixed", "x", json!(2)).await);
    // Subscriptions and deliveries are not prefixed.
    assert!(acl(&app, "prefixed", "site1/#", json!(4)).await);
    assert!(acl(&app, "prefixed", "site1/a", json!(1)).await);
}

async fn superuser_hook_names_enabled_administrators(app: TestApp) {
    device(&app).await;
    for (username, expected) in [("admin", true), (DEVICE, false), ("nobody", false)] {
        let (status, text) = post_json(&app, SUPERUSER, json!({"username": username})).await;
        assert_eq!(decision(status, &text), expected, "{username}");
        let (status, text) = send(
            &app,
            Method::GET,
            &format!("{SUPERUSER}?username={username}"),
            &[],
            None,
        )
        .await;
        assert_eq!(decision(status, &text), expected, "GET {username}");
        let (status, text) = send(
            &app,
            Method::PUT,
            SUPERUSER,
            &[FORM],
            Some(format!("username={username}").into_bytes()),
        )
        .await;
        assert_eq!(decision(status, &text), expected, "PUT form {username}");
    }
    // Administrators are allowed everything, `$SYS` included.
    assert!(acl(&app, "admin", "$SYS/broker/load", json!(1)).await);
    let (status, text) = post_json(&app, SUPERUSER, json!({})).await;
    assert!(reason(status, &text).contains("username"));
}

async fn text_mode_answers_ok_or_denied(app: TestApp) {
    device(&app).await;
    let cases = [
        (
            USER,
            json!({"username": DEVICE, "password": DEVICE_PASSWORD, "clientid": "c"}),
            true,
        ),
        (
            USER,
            json!({"username": DEVICE, "password": "wrong", "clientid": "c"}),
            false,
        ),
        (
            ACL,
            json!({"username": DEVICE, "clientid": "c", "topic": "sensors/x", "acc": 2}),
            true,
        ),
        (
            ACL,
            json!({"username": DEVICE, "clientid": "c", "topic": "x", "acc": 2}),
            false,
        ),
        (ACL, json!({"username": DEVICE, "acc": 2}), false),
        (SUPERUSER, json!({"username": "admin"}), true),
        (SUPERUSER, json!({"username": DEVICE}), false),
    ];
    for (path, body, allowed) in cases {
        let answer = app
            .tb_send(
                Method::POST,
                &format!("{path}?response=text"),
                &[JSON],
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await;
        let expected = if allowed {
            (StatusCode::OK, "ok")
        } else {
            (StatusCode::FORBIDDEN, "denied")
        };
        assert_eq!(
            (answer.status, answer.text.as_str()),
            expected,
            "{path} {body}"
        );
        assert!(
            answer
                .header("content-type")
                .is_some_and(|value| value.starts_with("text/plain")),
            "{:?}",
            answer.headers
        );
    }
    // JSON answers are JSON, uncached.
    let answer = app
        .tb_send(
            Method::POST,
            SUPERUSER,
            &[JSON],
            Some(br#"{"username":"admin"}"#.to_vec()),
        )
        .await;
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(answer.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(answer.text, r#"{"ok":true}"#);
    // An unknown format is refused rather than guessed.
    let answer = app
        .tb_send(
            Method::POST,
            &format!("{SUPERUSER}?response=xml"),
            &[JSON],
            Some(br#"{"username":"admin"}"#.to_vec()),
        )
        .await;
    assert!(!decision(answer.status, &answer.text));
}

async fn hostile_input_is_denied_never_a_server_error(app: TestApp) {
    device(&app).await;
    let huge = format!("sensors/{}", "x".repeat(200_000));
    let nul = "sensors/a\u{0}b";
    let cases: Vec<(&str, Headers, Vec<u8>)> = vec![
        (ACL, vec![JSON], b"not json".to_vec()),
        (ACL, vec![JSON], b"[1,2]".to_vec()),
        (ACL, vec![JSON], b"{\"username\":".to_vec()),
        (ACL, vec![], b"\xff\xfe".to_vec()),
        (ACL, vec![FORM], b"username=%FF&acc=2".to_vec()),
        (ACL, vec![FORM], b"username=a&username=b&acc=2".to_vec()),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(&json!({"username": DEVICE, "topic": "sensors/x", "acc": "abc"}))
                .unwrap(),
        ),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(&json!({"username": DEVICE, "topic": "sensors/x", "acc": 5}))
                .unwrap(),
        ),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(&json!({"username": DEVICE, "topic": "sensors/x", "acc": -2}))
                .unwrap(),
        ),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(&json!({"username": DEVICE, "topic": "sensors/x", "acc": 2.0}))
                .unwrap(),
        ),
        (
            ACL,
            vec![JSON],
            br#"{"username": "device-1", "topic": "sensors/x", "acc": 18446744073709551618}"#
                .to_vec(),
        ),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(&json!({"username": DEVICE, "topic": huge, "acc": 2})).unwrap(),
        ),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(&json!({"username": DEVICE, "topic": nul, "acc": 2})).unwrap(),
        ),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(&json!({"username": DEVICE, "topic": nul, "acc": 4})).unwrap(),
        ),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(&json!({"username": DEVICE, "topic": "", "acc": 2})).unwrap(),
        ),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(&json!({"username": DEVICE, "topic": ["sensors/x"], "acc": 2}))
                .unwrap(),
        ),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(&json!({"username": {"a": 1}, "topic": "sensors/x", "acc": 2}))
                .unwrap(),
        ),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(
                &json!({"username": DEVICE, "clientid": 7, "topic": "sensors/x", "acc": 2}),
            )
            .unwrap(),
        ),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(&json!({"username": "x".repeat(100_000), "topic": "a", "acc": 2}))
                .unwrap(),
        ),
        (
            ACL,
            vec![JSON],
            serde_json::to_vec(
                &json!({"username": "dev\u{0}ice-1", "topic": "sensors/x", "acc": 2}),
            )
            .unwrap(),
        ),
        (
            USER,
            vec![JSON],
            serde_json::to_vec(
                &json!({"username": DEVICE, "password": "x".repeat(300_000), "clientid": "c"}),
            )
            .unwrap(),
        ),
        (
            USER,
            vec![JSON],
            serde_json::to_vec(
                &json!({"username": DEVICE, "password": "a\u{0}b", "clientid": "c"}),
            )
            .unwrap(),
        ),
        (
            USER,
            vec![JSON],
            serde_json::to_vec(&json!({"username": DEVICE, "password": 12345, "clientid": "c"}))
                .unwrap(),
        ),
        (
            USER,
            vec![("content-type", "text/plain")],
            b"hello".to_vec(),
        ),
        (SUPERUSER, vec![JSON], b"null".to_vec()),
        (SUPERUSER, vec![JSON], b"\"admin\"".to_vec()),
        (
            SUPERUSER,
            vec![JSON],
            serde_json::to_vec(&json!({"username": ["admin"]})).unwrap(),
        ),
    ];
    for (path, headers, body) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        let (status, text) = send(&app, Method::POST, path, &headers, Some(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} {shown}: {text}");
        assert!(!decision(status, &text), "{path} {shown}");
    }
    // Hostile query strings.
    for query in [
        "username=%00&topic=a&acc=2",
        "username=device-1&topic=%ZZ&acc=2",
        "username=device-1&topic=a&acc=99999999999999999999999",
        "%%%%&&&===",
        "response=text&response=json",
    ] {
        let (status, text) = send(&app, Method::GET, &format!("{ACL}?{query}"), &[], None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{query}: {text}");
    }
    // A body over the configured limit is refused in the hook's shape.
    let oversized = vec![b'a'; app.settings.http.body_limit_bytes + 10];
    let (status, text) = send(&app, Method::POST, ACL, &[FORM], Some(oversized)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    let body: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(body["ok"], false);
    // Other methods are not served.
    let (status, _) = send(&app, Method::DELETE, ACL, &[], None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // The device is unharmed.
    assert!(acl(&app, DEVICE, "sensors/x", json!(2)).await);
}

async fn hooks_are_open_to_loopback_by_default_and_never_to_tokens(app: TestApp) {
    device(&app).await;
    // The test client connects from 127.0.0.1: allowed by default.
    assert!(user_check(&app, DEVICE, DEVICE_PASSWORD).await);
    // With the hooks closed to loopback, an administrator's token does not open them.
    let engine = app.engine;
    app.stop().await;
    let app = TestApp::spawn_with(
        engine,
        |settings| settings.broker.hook_allowed_addresses = vec!["10.1.2.3/32".to_owned()],
        None,
    )
    .await;
    device(&app).await;
    let body = serde_json::to_vec(&json!({"username": "admin"})).unwrap();
    let bearer = format!("Bearer {}", app.admin_token);
    for headers in [
        vec![JSON],
        vec![JSON, ("authorization", bearer.as_str())],
        vec![JSON, ("x-authorization", bearer.as_str())],
        vec![JSON, ("x-gatehouse-broker-secret", "anything")],
    ] {
        let (status, text) =
            send(&app, Method::POST, SUPERUSER, &headers, Some(body.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}: {text}");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"ok": false, "error": "not allowed to call the broker hooks"})
        );
    }
    let (status, _) = send(
        &app,
        Method::GET,
        &format!(
            "{USER}?username={DEVICE}&password={DEVICE_PASSWORD}&apiToken={}",
            app.admin_token
        ),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "apiToken does not open it");
    // The rest of the API is unaffected.
    let (status, _) = app.get("/api/session", &app.admin_token).await;
    assert_eq!(status, StatusCode::OK);
}

async fn address_list_closes_the_hooks_to_other_addresses(app: TestApp) {
    let engine = app.engine;
    app.stop().await;
    // Behind a trusted proxy the caller's address is the forwarded one.
    let app = TestApp::spawn_with(
        engine,
        |settings| {
            settings.broker.hook_allowed_addresses =
                vec!["10.1.2.3/32".to_owned(), "fd00::/8".to_owned()];
            settings.http.trust_forwarded_for = true;
        },
        None,
    )
    .await;
    device(&app).await;
    let body = serde_json::to_vec(
        &json!({"username": DEVICE, "password": DEVICE_PASSWORD, "clientid": "c"}),
    )
    .unwrap();
    for (forwarded, allowed) in [
        (None, false),
        (Some("10.1.2.3"), true),
        (Some("10.1.2.4"), false),
        (Some("fd00::17"), true),
        (Some("10.1.2.3, 192.0.2.1"), false),
        (Some("192.0.2.1, 10.1.2.3"), true),
    ] {
        let mut headers = vec![JSON];
        if let Some(forwarded) = forwarded {
            headers.push(("x-forwarded-for", forwarded));
        }
        let (status, text) = send(&app, Method::POST, USER, &headers, Some(body.clone())).await;
        assert_eq!(decision(status, &text), allowed, "{forwarded:?}: {text}");
    }
}

async fn secret_opens_the_hooks_from_anywhere(app: TestApp) {
    let engine = app.engine;
    app.stop().await;
    let app = TestApp::spawn_with(
        engine,
        |settings| {
            settings.broker.hook_allowed_addresses = Vec::new();
            settings.broker.hook_secret = Some("broker-s3cret".to_owned());
        },
        None,
    )
    .await;
    device(&app).await;
    let body = serde_json::to_vec(
        &json!({"username": DEVICE, "clientid": "c", "topic": "sensors/1", "acc": 2}),
    )
    .unwrap();
    let refused = json!({"ok": false, "error": "not allowed to call the broker hooks"});
    for (secret, allowed) in [
        (None, false),
        (Some("broker-s3cret"), true),
        (Some("broker-s3cre"), false),
        (Some("broker-s3cret2"), false),
        (Some("BROKER-S3CRET"), false),
        (Some(""), false),
    ] {
        let mut headers = vec![JSON];
        if let Some(secret) = secret {
            headers.push(("x-gatehouse-broker-secret", secret));
        }
        let (status, text) = send(&app, Method::POST, ACL, &headers, Some(body.clone())).await;
        if allowed {
            assert!(decision(status, &text), "{secret:?}");
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "{secret:?}");
            assert_eq!(
                serde_json::from_str::<Value>(&text).unwrap(),
                refused,
                "{secret:?}"
            );
        }
    }
    // The secret opens the hook, not the decision: a forbidden topic stays forbidden.
    let (status, text) = send(
        &app,
        Method::POST,
        ACL,
        &[JSON, ("x-gatehouse-broker-secret", "broker-s3cret")],
        Some(serde_json::to_vec(&json!({"username": DEVICE, "topic": "x", "acc": 2})).unwrap()),
    )
    .await;
    assert!(!decision(status, &text));
    assert_ne!(serde_json::from_str::<Value>(&text).unwrap(), refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_hook_address_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings(dir.path().to_path_buf());
    settings.broker.hook_allowed_addresses = vec!["127.0.0.1".to_owned(), "10.0.0.0/33".to_owned()];
    let error = match gatehouse::startup::Application::build(&settings).await {
        Ok(_) => panic!("started with an unparsable address"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("broker") && error.contains("10.0.0.0/33"),
        "{error}"
    );
}

#[test]
fn broker_section_is_read_from_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gatehouse.toml");
    std::fs::write(
        &file,
        "[broker]\ncache_ttl_secs = 7\ncredential_cache_secs = 0\nhook_allowed_addresses = [\"10.0.0.0/8\", \"::1\"]\n",
    )
    .unwrap();
    // A numeric secret stays a string; nothing else in this test binary reads the environment.
    std::env::set_var("GATEHOUSE_BROKER__HOOK_SECRET", "12345678");
    let loaded = gatehouse::config::Settings::load(Some(&file), &Default::default());
    std::env::remove_var("GATEHOUSE_BROKER__HOOK_SECRET");
    let settings = loaded.expect("settings load");
    assert_eq!(settings.broker.hook_secret.as_deref(), Some("12345678"));
    assert_eq!(
        settings.broker.hook_allowed_addresses,
        vec!["10.0.0.0/8".to_owned(), "::1".to_owned()]
    );
    let core = settings.broker.core();
    assert_eq!((core.cache_ttl_secs, core.credential_cache_secs), (7, 0));
    let shown = format!("{settings:?}");
    assert!(!shown.contains("12345678"), "{shown}");

    // Defaults: loopback only, no secret.
    let defaults = gatehouse::config::Settings::default();
    assert_eq!(
        defaults.broker.hook_allowed_addresses,
        vec!["127.0.0.0/8".to_owned(), "::1".to_owned()]
    );
    assert_eq!(defaults.broker.hook_secret, None);

    // Unknown keys are refused.
    std::fs::write(&file, "[broker]\nhook_secrets = \"x\"\n").unwrap();
    assert!(gatehouse::config::Settings::load(Some(&file), &Default::default()).is_err());
}

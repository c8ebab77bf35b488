//! VerneMQ webhooks (`POST /api/broker/vernemq`, dispatched on `vernemq-hook`) and MQTT 5
//! enhanced authentication (`POST /api/broker/auth/enhanced`, C37): the payloads of VerneMQ's
//! own webhook test handler (`apps/vmq_webhooks/test/webhooks_handler.erl`: peer 127.0.0.1:12345,
//! mountpoint `mountpoint`, base64 payloads, MQTT 5 properties) with Gatehouse users, and the
//! exact answers; client certificates made by openssl.

mod common;

use base64::Engine as _;
use common::broker::{mqtt_user, perm};
use common::{TestApp, ADMIN_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    register_checks_passwords_and_tokens,
    register_refuses_disabled_and_anonymous_clients,
    publish_applies_permissions_and_the_prefix,
    subscribe_marks_each_refused_filter,
    role_changes_apply_to_the_next_call,
    enhanced_auth_with_a_token_then_register,
    enhanced_auth_refuses_other_methods_and_bad_tokens,
    certificates_count_only_from_trusted_listeners,
    informational_hooks_answer_empty_objects,
    hostile_input_is_a_clear_400,
    answers_are_counted_and_timed_per_hook,
);

const WEBHOOK: &str = "/api/broker/vernemq";
const ENHANCED: &str = "/api/broker/auth/enhanced";

const DEVICE: &str = "test.user";
const PASSWORD: &str = "test-password";
const CLIENT: &str = "allowed-subscriber-id";

/// The device of these tests: publishes below `test/`, reads `cmd/+`.
async fn device(app: &TestApp) -> (String, String) {
    mqtt_user(
        app,
        DEVICE,
        PASSWORD,
        "test-writer",
        json!([perm("test/#", "write"), perm("cmd/+", "read")]),
    )
    .await
}

/// Calls hook `hook` with `body`; returns (status, JSON answer, cache-control).
async fn call(app: &TestApp, hook: &str, body: Value) -> (StatusCode, Value, String) {
    let answer = app
        .tb_send(
            Method::POST,
            WEBHOOK,
            &[("content-type", "application/json"), ("vernemq-hook", hook)],
            Some(serde_json::to_vec(&body).expect("JSON")),
        )
        .await;
    let cache = answer.header("cache-control").unwrap_or_default();
    (answer.status, answer.json(), cache)
}

/// Calls a decision hook that must answer 200; returns the body and cache-control.
async fn decide(app: &TestApp, hook: &str, body: Value) -> (Value, String) {
    let (status, answer, cache) = call(app, hook, body).await;
    assert_eq!(status, StatusCode::OK, "{hook}: {answer}");
    (answer, cache)
}

fn ok() -> Value {
    json!({"result": "ok"})
}

fn not_allowed() -> Value {
    json!({"result": {"error": "not_allowed"}})
}

/// `auth_on_register` exactly as VerneMQ's test handler expects it.
fn register(username: Value, password: Value) -> Value {
    json!({
        "peer_addr": "127.0.0.1", "peer_port": 12345, "mountpoint": "mountpoint",
        "client_id": CLIENT, "username": username, "password": password,
        "clean_session": true,
    })
}

/// `auth_on_register_m5` with the test handler's `with_properties` properties.
fn register_m5(client_id: &str, username: Value, password: Value) -> Value {
    json!({
        "peer_addr": "127.0.0.1", "peer_port": 12345, "mountpoint": "mountpoint",
        "client_id": client_id, "username": username, "password": password,
        "clean_start": true,
        "properties": {
            "p_session_expiry_interval": 5, "p_receive_max": 10, "p_topic_alias_max": 15,
            "p_request_response_info": true, "p_request_problem_info": true,
            "p_user_property": [{"key": "azE=", "val": "djE="}, {"key": "azE=", "val": "djI="},
                                {"key": "azI=", "val": "djI="}],
        },
    })
}

fn publish(username: &str, topic: &str) -> Value {
    json!({
        "username": username, "client_id": CLIENT, "mountpoint": "mountpoint", "qos": 1,
        "topic": topic, "payload": "aGVsbG8gd29ybGQ=", "retain": false,
    })
}

fn publish_m5(username: &str, topic: &str) -> Value {
    let mut body = publish(username, topic);
    body["properties"] = json!({
        "p_user_property": [{"key": "azE=", "val": "djE="}, {"key": "azI=", "val": "djI="}],
        "p_correlation_data": "correlation_data", "p_response_topic": "responsetopic",
        "p_payload_format_indicator": "utf8", "p_content_type": "content_type",
    });
    body
}

async fn register_refuses_disabled_and_anonymous_clients(app: TestApp) {
    let (device_id, _) = device(&app).await;
    // VerneMQ's `undefined_creds` client: no username, no password.
    let (answer, _) = decide(&app, "auth_on_register", register(Value::Null, Value::Null)).await;
    assert_eq!(answer, not_allowed());
    let (answer, _) = decide(
        &app,
        "auth_on_register",
        register(json!("nobody"), json!(PASSWORD)),
    )
    .await;
    assert_eq!(answer, not_allowed(), "unknown user");
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{device_id}/userCredentialsEnabled?userCredentialsEnabled=false"),
            &sys,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (answer, _) = decide(
        &app,
        "auth_on_register",
        register(json!(DEVICE), json!(PASSWORD)),
    )
    .await;
    assert_eq!(answer, not_allowed(), "disabled user");
    let (answer, _) = decide(&app, "auth_on_publish", publish(DEVICE, "test/topic")).await;
    assert_eq!(answer, not_allowed(), "disabled users publish nothing");
}

async fn register_checks_passwords_and_tokens(app: TestApp) {
    device(&app).await;
    let (answer, cache) = decide(
        &app,
        "auth_on_register",
        register(json!(DEVICE), json!(PASSWORD)),
    )
    .await;
    assert_eq!(answer, ok());
    assert_eq!(cache, "no-store", "register answers are never cached");
    let (answer, _) = decide(
        &app,
        "auth_on_register",
        register(json!(DEVICE), json!("wrong-password")),
    )
    .await;
    assert_eq!(answer, not_allowed());
    let (answer, _) = decide(
        &app,
        "auth_on_register_m5",
        register_m5("with_properties", json!(DEVICE), json!(PASSWORD)),
    )
    .await;
    assert_eq!(answer, ok());
    // An access token of the user as the password; without a username the answer names the
    // user, so that later hooks carry it.
    let token = app.login(DEVICE, PASSWORD).await;
    let (answer, _) = decide(
        &app,
        "auth_on_register",
        register(json!(DEVICE), json!(token)),
    )
    .await;
    assert_eq!(answer, ok());
    let (answer, _) = decide(
        &app,
        "auth_on_register_m5",
        register_m5(CLIENT, Value::Null, json!(token)),
    )
    .await;
    assert_eq!(
        answer,
        json!({"result": "ok", "modifiers": {"username": DEVICE}})
    );
    // Another user's token is refused.
    let (answer, _) = decide(
        &app,
        "auth_on_register",
        register(json!("admin"), json!(token)),
    )
    .await;
    assert_eq!(answer, not_allowed());
}

async fn publish_applies_permissions_and_the_prefix(app: TestApp) {
    device(&app).await;
    for hook in ["auth_on_publish", "auth_on_publish_m5"] {
        let body = |topic: &str| {
            if hook == "auth_on_publish" {
                publish(DEVICE, topic)
            } else {
                publish_m5(DEVICE, topic)
            }
        };
        let (answer, cache) = decide(&app, hook, body("test/topic")).await;
        assert_eq!(answer, ok(), "{hook}");
        assert_eq!(
            cache, "max-age=5",
            "{hook}: allowed publishes are cacheable"
        );
        let (answer, cache) = decide(&app, hook, body("cmd/x")).await;
        assert_eq!(answer, not_allowed(), "{hook}: read does not grant write");
        assert_eq!(cache, "no-store", "{hook}: denials are never cached");
        let (answer, _) = decide(&app, hook, body("test/#")).await;
        assert_eq!(answer, not_allowed(), "{hook}: a wildcard is not a topic");
    }
    // VerneMQ with `no_payload = on` sends no payload.
    let mut without_payload = publish(DEVICE, "test/topic");
    without_payload
        .as_object_mut()
        .expect("object")
        .remove("payload");
    assert_eq!(
        decide(&app, "auth_on_publish", without_payload).await.0,
        ok()
    );
    // A user with a publish prefix: the topic modifier carries it, and the permission is
    // checked on the prefixed topic.
    let role = app
        .create_role("site1", json!([perm("site1/#", "write")]))
        .await;
    let minimum = app.role_id("minimum-access").await;
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "prefixed", "password": "prefixed-pass-1",
                   "roles": [role["id"], minimum], "mqttPublishPrefix": "site1/"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for hook in ["auth_on_publish", "auth_on_publish_m5"] {
        let (answer, _) = decide(&app, hook, publish("prefixed", "sensors/t1")).await;
        assert_eq!(
            answer,
            json!({"result": "ok", "modifiers": {"topic": "site1/sensors/t1"}}),
            "{hook}"
        );
    }
    let (answer, _) = decide(&app, "auth_on_publish", publish("admin", "any/topic")).await;
    assert_eq!(answer, ok(), "administrators may publish anywhere");
}

async fn subscribe_marks_each_refused_filter(app: TestApp) {
    device(&app).await;
    let v3 = |topics: Value| {
        json!({"username": DEVICE, "client_id": CLIENT, "mountpoint": "mountpoint",
               "topics": topics})
    };
    let (answer, cache) = decide(
        &app,
        "auth_on_subscribe",
        v3(json!([{"topic": "cmd/+", "qos": 1}, {"topic": "cmd/a", "qos": 0}])),
    )
    .await;
    assert_eq!(answer, ok());
    assert_eq!(cache, "max-age=5");
    let (answer, _) = decide(
        &app,
        "auth_on_subscribe",
        v3(
            json!([{"topic": "cmd/+", "qos": 1}, {"topic": "cmd/#", "qos": 2},
                  {"topic": "$SYS/#", "qos": 0}]),
        ),
    )
    .await;
    assert_eq!(
        answer,
        json!({"result": "ok", "topics": [{"topic": "cmd/+", "qos": 1},
                                          {"topic": "cmd/#", "qos": 128},
                                          {"topic": "$SYS/#", "qos": 128}]})
    );
    let m5 = json!({
        "username": DEVICE, "client_id": CLIENT, "mountpoint": "mountpoint",
        "topics": [
            {"topic": "cmd/x", "qos": 1, "no_local": false, "rap": false,
             "retain_handling": "send_retain"},
            {"topic": "test/topic", "qos": 1, "no_local": true, "rap": true,
             "retain_handling": "dont_send"}],
        "properties": {"p_user_property": [{"key": "azE=", "val": "djE="}],
                       "p_subscription_id": [1, 2, 3]},
    });
    let (answer, _) = decide(&app, "auth_on_subscribe_m5", m5).await;
    assert_eq!(
        answer,
        json!({"result": "ok", "modifiers": {"topics": [
            {"topic": "cmd/x", "qos": 1, "no_local": false, "rap": false,
             "retain_handling": "send_retain"},
            {"topic": "test/topic", "qos": 135}]}}),
        "write does not grant subscribe"
    );
    let (answer, _) = decide(
        &app,
        "auth_on_subscribe",
        json!({"username": "nobody", "client_id": CLIENT, "mountpoint": "",
               "topics": [{"topic": "cmd/a", "qos": 0}]}),
    )
    .await;
    assert_eq!(answer, not_allowed(), "unknown users subscribe to nothing");
}

async fn role_changes_apply_to_the_next_call(app: TestApp) {
    let (_, role_id) = device(&app).await;
    let (answer, _) = decide(&app, "auth_on_publish", publish(DEVICE, "alerts/fire")).await;
    assert_eq!(answer, not_allowed());
    let (status, body) = app
        .post(
            &format!("/api/roles/{role_id}/permissions"),
            &app.admin_token,
            perm("alerts/#", "write"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (answer, _) = decide(&app, "auth_on_publish", publish(DEVICE, "alerts/fire")).await;
    assert_eq!(answer, ok(), "granted without a restart");
}

/// The body of `on_auth_m5` / C37.
fn auth(client_id: &str, username: Value, method: &str, data: &[u8]) -> Value {
    json!({
        "username": username, "mountpoint": "", "client_id": client_id,
        "properties": {
            "p_authentication_method": method,
            "p_authentication_data": base64::engine::general_purpose::STANDARD.encode(data),
        },
    })
}

async fn post_enhanced(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let answer = app
        .tb_send(
            Method::POST,
            ENHANCED,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&body).expect("JSON")),
        )
        .await;
    (answer.status, answer.json())
}

async fn enhanced_auth_with_a_token_then_register(app: TestApp) {
    device(&app).await;
    let token = app.login(DEVICE, PASSWORD).await;
    let success = json!({"result": "ok", "modifiers": {
        "properties": {"p_authentication_method": "GATEHOUSE-TOKEN"}, "reason_code": 0}});
    let (status, answer) = post_enhanced(
        &app,
        auth(
            "enhanced-1",
            Value::Null,
            "GATEHOUSE-TOKEN",
            token.as_bytes(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, success);
    // The register check that follows has no password; it names the token's user.
    let mut follow = register_m5("enhanced-1", Value::Null, Value::Null);
    follow["mountpoint"] = json!("");
    let (answer, _) = decide(&app, "auth_on_register_m5", follow.clone()).await;
    assert_eq!(
        answer,
        json!({"result": "ok", "modifiers": {"username": DEVICE}})
    );
    // Each success lets one register through.
    let (answer, _) = decide(&app, "auth_on_register_m5", follow).await;
    assert_eq!(answer, not_allowed());
    // The same through the webhook endpoint, with the username in the CONNECT; an API key
    // works as the data too.
    let (answer, _) = decide(
        &app,
        "on_auth_m5",
        auth(
            "enhanced-2",
            json!(DEVICE),
            "GATEHOUSE-TOKEN",
            token.as_bytes(),
        ),
    )
    .await;
    assert_eq!(answer, success);
    let mut follow = register_m5("enhanced-2", json!(DEVICE), Value::Null);
    follow["mountpoint"] = json!("");
    assert_eq!(decide(&app, "auth_on_register_m5", follow).await.0, ok());
    // Another client id did not authenticate.
    let mut other = register_m5("enhanced-3", json!(DEVICE), Value::Null);
    other["mountpoint"] = json!("");
    assert_eq!(
        decide(&app, "auth_on_register_m5", other).await.0,
        not_allowed()
    );
}

async fn enhanced_auth_refuses_other_methods_and_bad_tokens(app: TestApp) {
    device(&app).await;
    let token = app.login(DEVICE, PASSWORD).await;
    // VerneMQ's test handler's method and data.
    let (status, answer) = post_enhanced(
        &app,
        auth(CLIENT, json!(DEVICE), "AUTH_METHOD", b"AUTH_DATA0"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"result": {"error": "bad_authentication_method"}})
    );
    let (status, answer) = post_enhanced(
        &app,
        auth(CLIENT, json!(DEVICE), "GATEHOUSE-TOKEN", b"not-a-token"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, not_allowed());
    let (status, answer) = post_enhanced(
        &app,
        auth(CLIENT, json!("admin"), "GATEHOUSE-TOKEN", token.as_bytes()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        not_allowed(),
        "the username must be the token's user"
    );
    // A refused attempt lets no register through.
    let mut follow = register_m5(CLIENT, json!("admin"), Value::Null);
    follow["mountpoint"] = json!("");
    assert_eq!(
        decide(&app, "auth_on_register_m5", follow).await.0,
        not_allowed()
    );
    let (status, answer) = post_enhanced(
        &app,
        json!({"client_id": CLIENT, "properties": {"p_authentication_method": "GATEHOUSE-TOKEN",
               "p_authentication_data": "***"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["result"]["error"]
        .as_str()
        .is_some_and(|error| error.contains("base64")));
}

/// A self-signed certificate for `common_name` made by openssl: (DER bytes, PEM text, the
/// SHA-256 fingerprint openssl prints).
fn certificate(common_name: &str) -> (Vec<u8>, String, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let key = dir.path().join("key.pem");
    let pem = dir.path().join("cert.pem");
    let der = dir.path().join("cert.der");
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8")
    };
    let subject = format!("/CN={common_name}/O=Gatehouse tests");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        pem.to_str().unwrap(),
        "-subj",
        &subject,
        "-days",
        "2",
    ]);
    run(&[
        "x509",
        "-in",
        pem.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ]);
    let printed = run(&[
        "x509",
        "-in",
        pem.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    let fingerprint = printed
        .trim()
        .rsplit('=')
        .next()
        .expect("fingerprint")
        .to_owned();
    (
        std::fs::read(der).expect("DER"),
        std::fs::read_to_string(pem).expect("PEM"),
        fingerprint,
    )
}

async fn certificates_count_only_from_trusted_listeners(app: TestApp) {
    let engine = app.engine;
    app.stop().await;
    let app = TestApp::spawn_with(
        engine,
        |settings| settings.broker.certificate_listeners = vec!["*:8883".to_owned()],
        None,
    )
    .await;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let (der, pem, fingerprint) = certificate("meter.1");
    let (other_der, _, _) = certificate("meter.1");
    let minimum = app.role_id("minimum-access").await;
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "meter.1", "password": "meter-pass-1", "roles": [minimum],
                   "grantTypes": [{"method": "certificate", "isRequired": false},
                                  {"method": "password", "isRequired": false}],
                   "certificates": [{"fingerprint": fingerprint}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let connect = |cert: String, username: Value, port: u16| {
        json!({"peer_addr": "10.0.0.7", "peer_port": 40000, "mountpoint": "",
               "client_id": "meter-1", "username": username, "password": null,
               "clean_session": true, "client_cert": cert,
               "listener_addr": "0.0.0.0", "listener_port": port, "listener_type": "mqtts"})
    };
    // DER and PEM, without a username: the common name names the user.
    for cert in [b64(&der), b64(pem.as_bytes())] {
        let (answer, _) = decide(&app, "auth_on_register", connect(cert, Value::Null, 8883)).await;
        assert_eq!(
            answer,
            json!({"result": "ok", "modifiers": {"username": "meter.1"}})
        );
    }
    let (answer, _) = decide(
        &app,
        "auth_on_register",
        connect(b64(&der), json!("meter.1"), 8883),
    )
    .await;
    assert_eq!(answer, ok());
    // The listener on 1883 is not trusted: the certificate is ignored, and there is no
    // password.
    let (answer, _) = decide(
        &app,
        "auth_on_register",
        connect(b64(&der), Value::Null, 1883),
    )
    .await;
    assert_eq!(answer, not_allowed());
    // A username other than the common name, and a certificate with the same name that is
    // not the bound one, are refused.
    let (answer, _) = decide(
        &app,
        "auth_on_register",
        connect(b64(&der), json!("admin"), 8883),
    )
    .await;
    assert_eq!(answer, not_allowed());
    let (answer, _) = decide(
        &app,
        "auth_on_register",
        connect(b64(&other_der), Value::Null, 8883),
    )
    .await;
    assert_eq!(answer, not_allowed());
    // A user without the certificate grant cannot use one.
    mqtt_user(&app, "plain.user", "plain-pass-1", "plain", json!([])).await;
    let (plain, _, _) = certificate("plain.user");
    let (answer, _) = decide(
        &app,
        "auth_on_register",
        connect(b64(&plain), Value::Null, 8883),
    )
    .await;
    assert_eq!(answer, not_allowed());
    // A certificate that is not one is a malformed request.
    let (status, answer, _) = call(
        &app,
        "auth_on_register",
        connect(b64(b"not a certificate"), Value::Null, 8883),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        json!({"result": {"error": "client_cert is not an X.509 certificate"}})
    );
}

async fn informational_hooks_answer_empty_objects(app: TestApp) {
    device(&app).await;
    let informational = [
        (
            "on_register",
            json!({"peer_addr": "127.0.0.1", "peer_port": 12345,
            "mountpoint": "mountpoint", "client_id": CLIENT, "username": DEVICE}),
        ),
        ("on_publish", publish(DEVICE, "test/topic")),
        (
            "on_subscribe",
            json!({"username": DEVICE, "mountpoint": "mountpoint",
            "client_id": CLIENT, "topics": [{"topic": "test/topic", "qos": 1},
                                            {"topic": "test/topic", "qos": 128}]}),
        ),
        (
            "on_client_offline",
            json!({"mountpoint": "mountpoint", "client_id": CLIENT}),
        ),
        (
            "on_client_gone",
            json!({"mountpoint": "mountpoint", "client_id": CLIENT}),
        ),
        (
            "on_session_expired",
            json!({"mountpoint": "mountpoint", "client_id": CLIENT}),
        ),
        (
            "on_offline_message",
            json!({"mountpoint": "mountpoint", "client_id": CLIENT}),
        ),
        (
            "on_client_wakeup",
            json!({"mountpoint": "mountpoint", "client_id": CLIENT}),
        ),
    ];
    for (hook, body) in informational {
        let (answer, _) = decide(&app, hook, body).await;
        assert_eq!(answer, json!({}), "{hook}");
    }
    let (answer, _) = decide(
        &app,
        "on_unsubscribe",
        json!({"username": DEVICE, "mountpoint": "mountpoint", "client_id": CLIENT,
               "topics": ["cmd/a"]}),
    )
    .await;
    assert_eq!(answer, ok());
    let (answer, _) = decide(&app, "on_deliver", publish(DEVICE, "cmd/a")).await;
    assert_eq!(answer, ok());
}

async fn hostile_input_is_a_clear_400(app: TestApp) {
    device(&app).await;
    let malformed = |answer: &Value| {
        answer["result"]["error"]
            .as_str()
            .is_some_and(|error| !error.is_empty())
    };
    // No hook header, an unknown hook.
    for headers in [
        vec![("content-type", "application/json")],
        vec![
            ("content-type", "application/json"),
            ("vernemq-hook", "auth_on_everything"),
        ],
    ] {
        let answer = app
            .tb_send(Method::POST, WEBHOOK, &headers, Some(b"{}".to_vec()))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{headers:?}");
        assert_eq!(answer.json(), json!({"result": {"error": "unknown hook"}}));
    }
    let bodies = [
        ("auth_on_register", json!("not an object")),
        (
            "auth_on_register",
            json!({"username": DEVICE, "password": PASSWORD}),
        ),
        (
            "auth_on_register",
            json!({"client_id": 7, "username": DEVICE}),
        ),
        (
            "auth_on_publish",
            json!({"username": DEVICE, "client_id": CLIENT}),
        ),
        ("auth_on_publish", json!({"username": [1], "topic": "a"})),
        (
            "auth_on_subscribe",
            json!({"username": DEVICE, "topics": "cmd/a"}),
        ),
        (
            "auth_on_subscribe",
            json!({"username": DEVICE, "topics": [{"topic": "cmd/a"}]}),
        ),
        (
            "auth_on_subscribe",
            json!({"username": DEVICE, "topics": [{"topic": "cmd/a", "qos": 3}]}),
        ),
        (
            "auth_on_subscribe_m5",
            json!({"username": DEVICE, "topics": [{"qos": 1}]}),
        ),
        ("on_auth_m5", json!({"client_id": CLIENT})),
        (
            "on_auth_m5",
            json!({"client_id": CLIENT, "properties": {"p_authentication_data": "eA=="}}),
        ),
        ("on_register", json!([1, 2])),
    ];
    for (hook, body) in bodies {
        let (status, answer, _) = call(&app, hook, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{hook} {body}: {answer}");
        assert!(malformed(&answer), "{hook} {body}: {answer}");
    }
    let answer = app
        .tb_send(
            Method::POST,
            WEBHOOK,
            &[
                ("content-type", "application/json"),
                ("vernemq-hook", "auth_on_publish"),
            ],
            Some(b"{\"username\": \"x\", \"topic\": ".to_vec()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    // Hostile topics are decisions, not errors.
    for topic in ["", "a/#/b", "\u{0}", &"x/".repeat(5000)] {
        let (answer, _) = decide(&app, "auth_on_publish", publish(DEVICE, topic)).await;
        assert_eq!(answer, not_allowed(), "{topic:?}");
    }
    // Nothing stored was harmed.
    let (answer, _) = decide(
        &app,
        "auth_on_register",
        register(json!(DEVICE), json!(PASSWORD)),
    )
    .await;
    assert_eq!(answer, ok());
}

async fn answers_are_counted_and_timed_per_hook(app: TestApp) {
    device(&app).await;
    let series = |name: &str, result: &str| {
        format!(
            "gatehouse_broker_hook_{name}{{hook=\"vernemq_auth_on_publish\",result=\"{result}\""
        )
    };
    // Other tests in this process share the recorder, so counts only grow by at least ours.
    let allowed_before = app.metric_value(&series("answers_total", "allowed")).await;
    let denied_before = app.metric_value(&series("answers_total", "denied")).await;
    decide(&app, "auth_on_publish", publish(DEVICE, "test/topic")).await;
    decide(&app, "auth_on_publish", publish(DEVICE, "test/topic")).await;
    decide(&app, "auth_on_publish", publish(DEVICE, "elsewhere")).await;
    assert!(app.metric_value(&series("answers_total", "allowed")).await >= allowed_before + 2.0);
    assert!(app.metric_value(&series("answers_total", "denied")).await >= denied_before + 1.0);
    assert!(
        app.metric_value(&series("duration_seconds_count", "allowed"))
            .await
            >= 2.0,
        "a latency histogram per hook and result"
    );
}

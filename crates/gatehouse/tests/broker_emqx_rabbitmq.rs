//! EMQX 5 HTTP authentication and authorization (`/api/broker/emqx/{authn,authz}`) and the
//! RabbitMQ HTTP auth backend (`/api/broker/rabbitmq/{user,vhost,resource,topic}`): the requests
//! each broker sends (EMQX's JSON body template or GET query string, RabbitMQ's query string or
//! form body) and the exact answers.

mod common;

use common::broker::{mqtt_user, perm};
use common::{jwt_claims, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    emqx_authn_checks_passwords_tokens_and_superusers,
    emqx_authn_trusts_common_names_of_trusted_listeners_only,
    emqx_authz_decides_publish_and_subscribe,
    emqx_hostile_input_is_a_400,
    rabbitmq_user_vhost_and_resource,
    rabbitmq_topic_translates_routing_keys,
    rabbitmq_hostile_input_is_a_400_deny,
);

const AUTHN: &str = "/api/broker/emqx/authn";
const AUTHZ: &str = "/api/broker/emqx/authz";
const RABBIT: &str = "/api/broker/rabbitmq";

const DEVICE: &str = "device.7";
const PASSWORD: &str = "device-pass-7";

/// Publishes below `plant1/`, reads `cmd/device.7/#`.
async fn device(app: &TestApp) {
    mqtt_user(
        app,
        DEVICE,
        PASSWORD,
        "plant1",
        json!([perm("plant1/#", "write"), perm("cmd/device.7/#", "read")]),
    )
    .await;
}

/// POSTs JSON (EMQX `method = post`); returns status and JSON answer.
async fn emqx(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let answer = app
        .tb_send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&body).expect("JSON")),
        )
        .await;
    (answer.status, answer.json())
}

/// An EMQX decision that must be 200.
async fn emqx_ok(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, answer) = emqx(app, path, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

fn deny() -> Value {
    json!({"result": "deny"})
}

async fn emqx_authn_checks_passwords_tokens_and_superusers(app: TestApp) {
    device(&app).await;
    let login = |username: &str, password: &str| {
        json!({"username": username, "password": password, "clientid": "c-1",
               "peerhost": "10.0.0.9"})
    };
    assert_eq!(
        emqx_ok(&app, AUTHN, login(DEVICE, PASSWORD)).await,
        json!({"result": "allow", "is_superuser": false})
    );
    assert_eq!(emqx_ok(&app, AUTHN, login(DEVICE, "wrong")).await, deny());
    assert_eq!(
        emqx_ok(&app, AUTHN, login("nobody", PASSWORD)).await,
        deny()
    );
    assert_eq!(
        emqx_ok(&app, AUTHN, login("admin", common::ADMIN_PASSWORD)).await,
        json!({"result": "allow", "is_superuser": true})
    );
    // An access token as the password: the answer carries its expiry.
    let token = app.login(DEVICE, PASSWORD).await;
    let exp = jwt_claims(&token)["exp"].as_i64().expect("exp");
    assert_eq!(
        emqx_ok(&app, AUTHN, login(DEVICE, &token)).await,
        json!({"result": "allow", "is_superuser": false, "expire_at": exp})
    );
    // GET with the query string, and a form body.
    let answer = app
        .tb_send(
            Method::GET,
            &format!("{AUTHN}?username={DEVICE}&password={PASSWORD}&clientid=c-1"),
            &[],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"result": "allow", "is_superuser": false})
    );
    let answer = app
        .tb_send(
            Method::POST,
            AUTHN,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(format!("username={DEVICE}&password=wrong&clientid=c-1").into_bytes()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), deny());
}

async fn emqx_authn_trusts_common_names_of_trusted_listeners_only(app: TestApp) {
    let engine = app.engine;
    app.stop().await;
    let app = TestApp::spawn_with(
        engine,
        |settings| settings.broker.certificate_listeners = vec!["ssl:default".to_owned()],
        None,
    )
    .await;
    let minimum = app.role_id("minimum-access").await;
    for (username, grants) in [
        (
            "meter.2",
            json!([{"method": "certificate", "isRequired": false}]),
        ),
        (
            "pinned.2",
            json!([{"method": "certificate", "isRequired": false}]),
        ),
        (
            "plain.2",
            json!([{"method": "password", "isRequired": false}]),
        ),
    ] {
        let mut user = json!({"username": username, "password": "some-pass-1",
                              "roles": [minimum], "grantTypes": grants});
        if username == "pinned.2" {
            user["certificates"] = json!([{"fingerprint": "ab".repeat(32)}]);
        }
        let (status, body) = app.post("/api/users", &app.admin_token, user).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let by_certificate = |name: &str, listener: &str| {
        json!({"username": "", "password": "", "clientid": "m", "cert_common_name": name,
               "listener": listener})
    };
    assert_eq!(
        emqx_ok(&app, AUTHN, by_certificate("meter.2", "ssl:default")).await,
        json!({"result": "allow", "is_superuser": false})
    );
    // From another listener the name proves nothing.
    let (status, _) = emqx(&app, AUTHN, by_certificate("meter.2", "tcp:default")).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "no username and no trusted certificate"
    );
    // Without the grant, and with bound certificates (EMQX passes no fingerprint): refused.
    assert_eq!(
        emqx_ok(&app, AUTHN, by_certificate("plain.2", "ssl:default")).await,
        deny()
    );
    assert_eq!(
        emqx_ok(&app, AUTHN, by_certificate("pinned.2", "ssl:default")).await,
        deny()
    );
}

async fn emqx_authz_decides_publish_and_subscribe(app: TestApp) {
    device(&app).await;
    let check = |action: &str, topic: &str| {
        json!({"username": DEVICE, "clientid": "c-1", "action": action, "topic": topic,
               "qos": 1, "retain": false})
    };
    let allow = json!({"result": "allow"});
    for (action, topic, expected) in [
        ("publish", "plant1/line1/t", &allow),
        ("publish", "cmd/device.7/x", &deny()),
        ("subscribe", "cmd/device.7/#", &allow),
        ("subscribe", "cmd/#", &deny()),
        ("subscribe", "plant1/#", &deny()),
        ("all", "plant1/x", &deny()),
    ] {
        assert_eq!(
            &emqx_ok(&app, AUTHZ, check(action, topic)).await,
            expected,
            "{action} {topic}"
        );
    }
    let answer = app
        .tb_send(
            Method::GET,
            &format!("{AUTHZ}?username={DEVICE}&action=subscribe&topic=cmd%2Fdevice.7%2F%2B"),
            &[],
            None,
        )
        .await;
    assert_eq!(answer.json(), allow);
    // A publish prefix cannot be applied by EMQX: denied.
    let role = app
        .create_role("site9", json!([perm("site9/#", "readWrite")]))
        .await;
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "prefixed.9", "password": "prefixed-pass-9",
                   "roles": [role["id"]], "mqttPublishPrefix": "site9/"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut publish = check("publish", "a");
    publish["username"] = json!("prefixed.9");
    assert_eq!(emqx_ok(&app, AUTHZ, publish).await, deny());
}

async fn emqx_hostile_input_is_a_400(app: TestApp) {
    device(&app).await;
    for (path, body) in [
        (AUTHN, json!({"password": PASSWORD})),
        (AUTHN, json!({"username": 5, "password": PASSWORD})),
        (AUTHN, json!({"username": DEVICE, "password": ["x"]})),
        (AUTHZ, json!({"username": DEVICE, "topic": "a"})),
        (
            AUTHZ,
            json!({"username": DEVICE, "topic": "a", "action": "delete"}),
        ),
        (AUTHZ, json!({"username": DEVICE, "action": "publish"})),
        (AUTHZ, json!([1])),
    ] {
        let (status, answer) = emqx(&app, path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert_eq!(answer["result"], "deny", "{answer}");
        assert!(
            answer["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{answer}"
        );
    }
    assert_eq!(
        emqx_ok(
            &app,
            AUTHN,
            json!({"username": DEVICE, "password": PASSWORD})
        )
        .await["result"],
        "allow",
        "nothing stored was harmed"
    );
}

/// A RabbitMQ check by GET (its default); returns status and body text.
async fn rabbit(app: &TestApp, path: &str, query: &str) -> (StatusCode, String) {
    let answer = app
        .tb_send(Method::GET, &format!("{RABBIT}/{path}?{query}"), &[], None)
        .await;
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    (answer.status, answer.text)
}

/// A RabbitMQ decision that must be 200: `true` for `allow`, `false` for `deny`.
async fn rabbit_allows(app: &TestApp, path: &str, query: &str) -> bool {
    let (status, text) = rabbit(app, path, query).await;
    assert_eq!(status, StatusCode::OK, "{path}?{query}: {text}");
    match text.as_str() {
        "allow" => true,
        "deny" => false,
        other => panic!("{path}?{query}: unexpected answer {other:?}"),
    }
}

async fn rabbitmq_user_vhost_and_resource(app: TestApp) {
    device(&app).await;
    assert!(
        rabbit_allows(
            &app,
            "user",
            &format!("username={DEVICE}&password={PASSWORD}")
        )
        .await
    );
    assert!(!rabbit_allows(&app, "user", &format!("username={DEVICE}&password=nope")).await);
    assert!(!rabbit_allows(&app, "user", "username=nobody&password=x").await);
    // POST with a form body (http_method = post).
    let answer = app
        .tb_send(
            Method::POST,
            &format!("{RABBIT}/user"),
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(format!("username={DEVICE}&password={PASSWORD}").into_bytes()),
        )
        .await;
    assert_eq!(
        (answer.status, answer.text.as_str()),
        (StatusCode::OK, "allow")
    );
    assert!(
        rabbit_allows(
            &app,
            "vhost",
            &format!("username={DEVICE}&vhost=%2F&ip=10.0.0.1")
        )
        .await
    );
    assert!(!rabbit_allows(&app, "vhost", "username=nobody&vhost=%2F&ip=10.0.0.1").await);
    let resource = |kind: &str, name: &str, permission: &str| {
        format!("username={DEVICE}&vhost=%2F&resource={kind}&name={name}&permission={permission}")
    };
    for (kind, name, permission, expected) in [
        ("exchange", "amq.topic", "write", true),
        ("exchange", "amq.topic", "read", true),
        ("exchange", "amq.topic", "configure", false),
        ("queue", "mqtt-subscription-meter1qos1", "configure", true),
        ("queue", "mqtt-subscription-meter1qos1", "read", true),
        ("queue", "mqtt-will-meter1", "write", true),
        ("queue", "orders", "read", false),
    ] {
        assert_eq!(
            rabbit_allows(&app, "resource", &resource(kind, name, permission)).await,
            expected,
            "{kind} {name} {permission}"
        );
    }
    let unknown = "username=nobody&vhost=%2F&resource=exchange&name=amq.topic&permission=write";
    assert!(!rabbit_allows(&app, "resource", unknown).await);
}

async fn rabbitmq_topic_translates_routing_keys(app: TestApp) {
    let (_, role_id) = mqtt_user(
        &app,
        DEVICE,
        PASSWORD,
        "plant1",
        json!([perm("plant1/#", "write"), perm("cmd/device.7/#", "read")]),
    )
    .await;
    let topic = |permission: &str, key: &str| {
        format!(
            "username={DEVICE}&vhost=%2F&resource=topic&name=amq.topic&permission={permission}\
             &routing_key={key}"
        )
    };
    for (permission, key, expected) in [
        ("write", "plant1.line1.temp", true),
        ("write", "plant2.line1.temp", false),
        ("read", "cmd.device%2E7.%23", false),
        ("read", "cmd.device/7.*", true),
        ("read", "cmd.device/7.%23", true),
        ("read", "cmd.%23", false),
        ("write", "cmd.device/7.x", false),
        ("configure", "plant1.x", false),
    ] {
        assert_eq!(
            rabbit_allows(&app, "topic", &topic(permission, key)).await,
            expected,
            "{permission} {key}"
        );
    }
    // A role change applies to the next check.
    let (status, body) = app
        .post(
            &format!("/api/roles/{role_id}/permissions"),
            &app.admin_token,
            perm("plant2/#", "write"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(rabbit_allows(&app, "topic", &topic("write", "plant2.line1.temp")).await);
}

async fn rabbitmq_hostile_input_is_a_400_deny(app: TestApp) {
    device(&app).await;
    for (path, query) in [
        ("user", "password=x"),
        (
            "resource",
            "username=device.7&resource=table&name=x&permission=read",
        ),
        (
            "resource",
            "username=device.7&resource=queue&name=x&permission=own",
        ),
        ("topic", "username=device.7&permission=write"),
        ("topic", "username=device.7&permission=steal&routing_key=a"),
        (
            "topic",
            "username=a&username=b&permission=write&routing_key=a",
        ),
        ("vhost", "username=%FF"),
    ] {
        let (status, text) = rabbit(&app, path, query).await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::BAD_REQUEST, "deny"),
            "{path}?{query}"
        );
    }
}

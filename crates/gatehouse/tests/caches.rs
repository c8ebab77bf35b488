//! The hot-path caches and their change feed, end to end: broker checks and token checks are
//! served from memory (a change made behind the server's back is not seen), every change the
//! server makes applies at once, and a change made by another process on the same database (a
//! replica, `gatehouse restore`, or anything that counts a change in `change_counters`)
//! reaches the server within one reading of the counters (`broker.cache_ttl_secs`, 1 s here).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::{mqtt_user, perm};
use common::replica::Replica;
use common::{tb_pair, TestApp};
use gatehouse_core::clock::SystemClock;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    broker_checks_are_served_from_memory_until_the_database_counts_a_change,
    token_checks_are_served_from_memory_until_the_database_counts_a_revocation,
    changes_made_by_the_server_apply_at_once,
    a_change_on_one_replica_reaches_the_other,
    a_restore_by_the_command_reaches_the_running_server,
    the_user_count_is_kept_until_identity_data_changes,
);

const DEVICE: &str = "cached-device";
const DEVICE_PASSWORD: &str = "Cached-device-pw-1";
const ACL: &str = "/api/broker/http/acl";

/// Longer than two readings of the counters: a cache with a time-to-live of one reading would
/// have reloaded by then.
const LONGER_THAN_TWO_READINGS: Duration = Duration::from_millis(2_500);

/// Longer than one reading: a server also reads the counts of its own writes back (and drops
/// its caches once more), so a test that must see an entry survive waits this long after its
/// setup's writes before it fills the cache.
const ONE_READING_AND_MORE: Duration = Duration::from_millis(1_500);

/// How long a change may take to reach a cache through the counters (one reading is 1 s).
const WITHIN_READINGS: Duration = Duration::from_secs(10);

/// The app again, reading the change counters every second.
async fn reading_every_second(app: TestApp) -> TestApp {
    let engine = app.engine;
    app.stop().await;
    TestApp::spawn_with(engine, |settings| settings.broker.cache_ttl_secs = 1, None).await
}

/// Whether the go-auth ACL hook at `base` lets `DEVICE` publish on `topic`.
async fn may_publish(app: &TestApp, base: &str, topic: &str) -> bool {
    let response = app
        .client
        .post(format!("{base}{ACL}"))
        .json(&json!({"username": DEVICE, "clientid": "c1", "topic": topic, "acc": 2}))
        .send()
        .await
        .expect("hook answers");
    match response.status() {
        StatusCode::OK => true,
        StatusCode::FORBIDDEN => false,
        other => panic!("unexpected hook answer {other}"),
    }
}

/// Waits until `check` holds, for at most [`WITHIN_READINGS`]; false if it never did.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WITHIN_READINGS;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status of ThingsBoard's `GET /api/auth/user` at `base` with `token`.
async fn tb_user_status(app: &TestApp, base: &str, token: &str) -> StatusCode {
    app.client
        .get(format!("{base}/api/auth/user"))
        .header("x-authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("answer")
        .status()
}

/// The status of Connectware's `GET /api/session` at `base` with `token`.
async fn session_status(app: &TestApp, base: &str, token: &str) -> StatusCode {
    app.client
        .get(format!("{base}/api/session"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answer")
        .status()
}

/// A ThingsBoard access token of `DEVICE` (a pair session).
async fn pair_token(app: &TestApp) -> String {
    let (status, body) = app.tb_try_login(DEVICE, DEVICE_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tb_pair(&body).0
}

/// The id of `role`'s permission on `resource`.
fn permission_id(role: &Value, resource: &str) -> String {
    role["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .find(|permission| permission["resource"] == resource)
        .and_then(|permission| permission["id"].as_str())
        .unwrap_or_else(|| panic!("no permission on {resource}: {role}"))
        .to_owned()
}

/// The role `DEVICE` holds its MQTT permission through, as the API shows it.
async fn device_role(app: &TestApp, role_id: &str) -> Value {
    let (status, role) = app
        .get(&format!("/api/roles/{role_id}"), &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{role}");
    role
}

/// Creates `DEVICE`, allowed to publish on `sensors/#`; returns (user id, role id).
async fn sensor_device(app: &TestApp) -> (String, String) {
    mqtt_user(
        app,
        DEVICE,
        DEVICE_PASSWORD,
        "cached",
        json!([perm("sensors/#", "write")]),
    )
    .await
}

/// Removes the permission on `sensors/#` from `role_id` through the API.
async fn remove_sensor_permission(app: &TestApp, role_id: &str) {
    let permission = permission_id(&device_role(app, role_id).await, "sensors/#");
    let (status, body) = app
        .delete(
            &format!("/api/roles/{role_id}/permissions/{permission}"),
            &app.admin_token,
            None,
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
}

async fn broker_checks_are_served_from_memory_until_the_database_counts_a_change(app: TestApp) {
    let app = reading_every_second(app).await;
    let (_, role_id) = sensor_device(&app).await;
    let permission = permission_id(&device_role(&app, &role_id).await, "sensors/#");
    tokio::time::sleep(ONE_READING_AND_MORE).await;
    assert!(may_publish(&app, &app.base, "sensors/t1").await);

    // Behind the server's back: the permission is gone, but nothing counted the change.
    app.execute_sql(&format!(
        "DELETE FROM role_permissions WHERE id = '{permission}'"
    ))
    .await;
    tokio::time::sleep(LONGER_THAN_TWO_READINGS).await;
    assert!(
        may_publish(&app, &app.base, "sensors/t1").await,
        "served from memory: the cache has no time-to-live"
    );

    // Counted, as another process's write would be: the next reading drops the cache.
    app.execute_sql("UPDATE change_counters SET value = value + 1 WHERE feed = 'identity'")
        .await;
    assert!(
        eventually(|| async { !may_publish(&app, &app.base, "sensors/t1").await }).await,
        "the counted change reached the cache"
    );
}

async fn token_checks_are_served_from_memory_until_the_database_counts_a_revocation(app: TestApp) {
    let app = reading_every_second(app).await;
    mqtt_user(&app, DEVICE, DEVICE_PASSWORD, "cached", json!([])).await;
    let pair = pair_token(&app).await;
    let connectware = app.login(DEVICE, DEVICE_PASSWORD).await;
    tokio::time::sleep(ONE_READING_AND_MORE).await;
    assert_eq!(tb_user_status(&app, &app.base, &pair).await, StatusCode::OK);
    assert_eq!(
        session_status(&app, &app.base, &connectware).await,
        StatusCode::OK
    );

    // Behind the server's back: every session is gone, but nothing counted the revocation.
    app.execute_sql("DELETE FROM sessions").await;
    tokio::time::sleep(LONGER_THAN_TWO_READINGS).await;
    assert_eq!(tb_user_status(&app, &app.base, &pair).await, StatusCode::OK);
    assert_eq!(
        session_status(&app, &app.base, &connectware).await,
        StatusCode::OK
    );

    // Counted, as another process's revocation would be: the next reading drops the cache,
    // which then asks the database, where the sessions are gone.
    app.execute_sql("UPDATE change_counters SET value = value + 1 WHERE feed = 'sessions'")
        .await;
    assert!(
        eventually(|| async {
            tb_user_status(&app, &app.base, &pair).await == StatusCode::UNAUTHORIZED
                && session_status(&app, &app.base, &connectware).await == StatusCode::UNAUTHORIZED
        })
        .await,
        "the counted revocation reached the cache"
    );
}

async fn changes_made_by_the_server_apply_at_once(app: TestApp) {
    // The default reading interval (5 s) is left: nothing here may wait for it.
    let (user_id, role_id) = sensor_device(&app).await;
    let connectware = app.login(DEVICE, DEVICE_PASSWORD).await;
    let pair = pair_token(&app).await;
    let (status, session) = app.get("/api/session", &connectware).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert!(may_publish(&app, &app.base, "sensors/t1").await);

    // A permission added to the role shows in the session and the broker at once.
    let (status, body) = app
        .post(
            &format!("/api/roles/{role_id}/permissions"),
            &app.admin_token,
            perm("actuators/#", "write"),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (_, session) = app.get("/api/session", &connectware).await;
    assert!(
        session["permissions"]
            .as_array()
            .expect("permissions")
            .iter()
            .any(|permission| permission["resource"] == "actuators/#"),
        "{session}"
    );
    remove_sensor_permission(&app, &role_id).await;
    assert!(!may_publish(&app, &app.base, "sensors/t1").await);
    assert!(may_publish(&app, &app.base, "actuators/a").await);

    // A logout ends the pair's access token at once.
    assert_eq!(tb_user_status(&app, &app.base, &pair).await, StatusCode::OK);
    let answer = app
        .client
        .post(app.url("/api/auth/logout"))
        .header("x-authorization", format!("Bearer {pair}"))
        .send()
        .await
        .expect("logout");
    assert!(answer.status().is_success(), "{}", answer.status());
    assert_eq!(
        tb_user_status(&app, &app.base, &pair).await,
        StatusCode::UNAUTHORIZED
    );

    // Revoking the user's tokens (C9) ends its Connectware token at once.
    assert_eq!(
        session_status(&app, &app.base, &connectware).await,
        StatusCode::OK
    );
    let (status, body) = app
        .delete(
            &format!("/api/users/{user_id}/tokens"),
            &app.admin_token,
            None,
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(
        session_status(&app, &app.base, &connectware).await,
        StatusCode::UNAUTHORIZED
    );
}

async fn a_change_on_one_replica_reaches_the_other(app: TestApp) {
    let app = reading_every_second(app).await;
    let (_, role_id) = sensor_device(&app).await;
    let replica = Replica::start(&app, Arc::new(SystemClock)).await;
    let pair = pair_token(&app).await;
    // Both replicas cache the device and the session.
    for base in [&app.base, &replica.base] {
        assert!(may_publish(&app, base, "sensors/t1").await);
        assert_eq!(tb_user_status(&app, base, &pair).await, StatusCode::OK);
    }

    // A permission removed on the first replica: refused there at once, on the other within
    // a reading.
    remove_sensor_permission(&app, &role_id).await;
    assert!(!may_publish(&app, &app.base, "sensors/t1").await);
    assert!(
        eventually(|| async { !may_publish(&app, &replica.base, "sensors/t1").await }).await,
        "the other replica follows"
    );

    // A logout on the other replica: the access token ends there at once, here within a
    // reading.
    let (status, body) = replica
        .request(&app, Method::POST, "/api/auth/logout", Some(&pair), None)
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(
        tb_user_status(&app, &replica.base, &pair).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        eventually(|| async {
            tb_user_status(&app, &app.base, &pair).await == StatusCode::UNAUTHORIZED
        })
        .await,
        "this replica follows"
    );
    replica.stop().await;
}

async fn a_restore_by_the_command_reaches_the_running_server(app: TestApp) {
    let app = reading_every_second(app).await;
    let (_, role_id) = sensor_device(&app).await;
    let archive = tempfile::tempdir().expect("directory");
    let file = archive.path().join("before.tar");
    gatehouse::maintenance::back_up(&app.settings, &file, None)
        .await
        .expect("backup");
    remove_sensor_permission(&app, &role_id).await;
    assert!(!may_publish(&app, &app.base, "sensors/t1").await);
    let pair = pair_token(&app).await;
    assert_eq!(tb_user_status(&app, &app.base, &pair).await, StatusCode::OK);

    // `gatehouse restore` on the same database, from another connection pool.
    gatehouse::maintenance::restore(&app.settings, &file, None)
        .await
        .expect("restore");
    assert!(
        eventually(|| async {
            may_publish(&app, &app.base, "sensors/t1").await
                && tb_user_status(&app, &app.base, &pair).await == StatusCode::UNAUTHORIZED
        })
        .await,
        "the restored permission applies and the ended session is refused"
    );
}

/// `totalRows` of `listUsers` (with `excludeAutoGenerated`).
async fn listed_users(app: &TestApp) -> u64 {
    let (status, body) = app
        .get(
            "/api/listUsers?excludeAutoGenerated=true&pageNumber=1&rowsPerPage=1",
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["pagination"]["totalRows"]
        .as_u64()
        .unwrap_or_else(|| panic!("no totalRows: {body}"))
}

async fn the_user_count_is_kept_until_identity_data_changes(app: TestApp) {
    let app = reading_every_second(app).await;
    let before = listed_users(&app).await;
    // The server's own changes count at once.
    let user = app.create_user(DEVICE, DEVICE_PASSWORD, &[]).await;
    assert_eq!(listed_users(&app).await, before + 1);
    tokio::time::sleep(ONE_READING_AND_MORE).await;
    assert_eq!(listed_users(&app).await, before + 1);

    // Behind the server's back the user becomes system-made, which the listing leaves out;
    // the count is kept while nothing counted the change.
    let id = user["id"].as_str().expect("user id");
    app.execute_sql(&format!(
        "UPDATE users SET auto_generated = 1 WHERE id = '{id}'"
    ))
    .await;
    tokio::time::sleep(LONGER_THAN_TWO_READINGS).await;
    assert_eq!(listed_users(&app).await, before + 1, "the count is cached");

    app.execute_sql("UPDATE change_counters SET value = value + 1 WHERE feed = 'identity'")
        .await;
    assert!(
        eventually(|| async { listed_users(&app).await == before }).await,
        "the counted change reached the count"
    );
}

//! Helpers of the broker hook tests: MQTT permissions, and users holding them.

use serde_json::{json, Value};

use super::TestApp;

/// An `mqtt` permission.
pub fn perm(resource: &str, operation: &str) -> Value {
    json!({"resource": resource, "operation": operation, "context": "mqtt"})
}

/// Creates a role with `permissions` and a user holding it and `minimum-access`; returns
/// (user id, role id).
pub async fn mqtt_user(
    app: &TestApp,
    username: &str,
    password: &str,
    role: &str,
    permissions: Value,
) -> (String, String) {
    let role = app.create_role(role, permissions).await;
    let role_id = role["id"].as_str().expect("role id").to_owned();
    let minimum = app.role_id("minimum-access").await;
    let user = app
        .create_user(username, password, &[&role_id, &minimum])
        .await;
    (user["id"].as_str().expect("user id").to_owned(), role_id)
}

//! Safety rails: the administrator role's permissions cannot be edited away, a user's own role
//! (its direct permissions) stays that user's, and token transports beyond the Bearer header.

mod common;

use common::{assert_error, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

both_engines!(
    admin_role_permissions_are_locked_but_minimum_access_is_editable,
    own_roles_cannot_be_renamed_deleted_or_given_away,
    bare_authorization_token_and_basic_fallback,
    nobody_changes_their_own_roles_or_permissions,
);

async fn admin_role_permissions_are_locked_but_minimum_access_is_editable(app: TestApp) {
    let admin_role = app.role_id("connectware-admin").await;
    let (_, before) = app
        .get(&format!("/api/roles/{admin_role}"), &app.admin_token)
        .await;
    let permission_id = before["permissions"][0]["id"].as_str().unwrap().to_owned();
    let attempts = [
        (
            Method::PUT,
            format!("/api/roles/{admin_role}"),
            Some(json!({"permissions": []})),
        ),
        (
            Method::POST,
            format!("/api/roles/{admin_role}/permissions"),
            Some(json!({"resource": "x/#", "operation": "read", "context": "mqtt"})),
        ),
        (
            Method::PUT,
            format!("/api/roles/{admin_role}/permissions/{permission_id}"),
            Some(json!({"resource": "/nothing", "operation": "read"})),
        ),
        (
            Method::DELETE,
            format!("/api/roles/{admin_role}/permissions/{permission_id}"),
            None,
        ),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = app
            .request(method, &path, Some(&app.admin_token), body)
            .await;
        assert_error(status, &answer, StatusCode::CONFLICT);
    }
    let (_, after) = app
        .get(&format!("/api/roles/{admin_role}"), &app.admin_token)
        .await;
    assert_eq!(before, after, "nothing changed");
    // Its other fields may change.
    let (status, body) = app
        .put(
            &format!("/api/roles/{admin_role}"),
            &app.admin_token,
            json!({"ldapGroupDn": "cn=admins"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ldapGroupDn"], "cn=admins");
    // minimum-access is a template administrators adapt.
    let minimum = app.role_id("minimum-access").await;
    let (status, body) = app
        .post(
            &format!("/api/roles/{minimum}/permissions"),
            &app.admin_token,
            json!({"resource": "/api/roles/page", "operation": "read", "context": "http"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn own_roles_cannot_be_renamed_deleted_or_given_away(app: TestApp) {
    let (status, owner) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "owner", "password": "secret1",
                   "initialPermissions": [{"resource": "owner/#", "operation": "readWrite", "context": "mqtt"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{owner}");
    let own_role = owner["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|role| role["name"] == "owner")
        .expect("own role listed")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .put(
            &format!("/api/roles/{own_role}"),
            &app.admin_token,
            json!({"name": "hijacked"}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    let (status, body) = app
        .delete(&format!("/api/roles/{own_role}"), &app.admin_token, None)
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);

    let other = app.create_user("other", "secret1", &[]).await;
    let other_id = other["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/users/{other_id}/roles"),
            &app.admin_token,
            json!({"roleId": own_role}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) = app
        .put(
            &format!("/api/users/{other_id}"),
            &app.admin_token,
            json!({"roles": [own_role]}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "third", "password": "secret1", "roles": [own_role]}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let (_, other_now) = app
        .get(&format!("/api/users/{other_id}"), &app.admin_token)
        .await;
    assert_eq!(other_now["roles"], json!([]));
    let (_, third) = app
        .get("/api/listUsers?usernames=third", &app.admin_token)
        .await;
    assert_eq!(third["users"], json!([]));
    // Its permissions still act for its owner.
    let (_, role) = app
        .get(&format!("/api/roles/{own_role}"), &app.admin_token)
        .await;
    assert_eq!(role["name"], "owner");
    assert_eq!(role["permissions"][0]["resource"], "owner/#");
}

async fn bare_authorization_token_and_basic_fallback(app: TestApp) {
    let response = app
        .client
        .get(app.url("/api/session"))
        .header("authorization", app.admin_token.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the seed's `Authorization: <token>` form"
    );
    // A Basic header is not a token: ?apiToken= is used instead.
    let response = app
        .client
        .get(app.url(&format!("/api/session?apiToken={}", app.admin_token)))
        .header("authorization", "Basic YWRtaW46eA==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The header wins over the query.
    let response = app
        .client
        .get(app.url(&format!("/api/session?apiToken={}", app.admin_token)))
        .header("authorization", "Bearer not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn nobody_changes_their_own_roles_or_permissions(app: TestApp) {
    let admin = app
        .get("/api/listUsers?usernames=admin", &app.admin_token)
        .await
        .1["users"][0]
        .clone();
    let admin_id = admin["id"].as_str().unwrap().to_owned();
    let admin_role = app.role_id("connectware-admin").await;
    let minimum = app.role_id("minimum-access").await;
    let path = format!("/api/users/{admin_id}");
    // Taking away one's own admin role, in either way, is refused and changes nothing.
    let (status, body) = app
        .put(&path, &app.admin_token, json!({"roles": [minimum]}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "roles");
    let (status, body) = app
        .put(
            &path,
            &app.admin_token,
            json!({"permissions": [{"resource": "/x", "operation": "read", "context": "http"}]}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) = app
        .delete(
            &format!("{path}/roles"),
            &app.admin_token,
            Some(json!({"roleId": admin_role})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(app.get(&path, &app.admin_token).await.1, admin);
    assert_eq!(
        app.get("/api/roles", &app.admin_token).await.0,
        StatusCode::OK,
        "still an administrator"
    );
    // Sending one's roles unchanged (as a UI sending the whole user does) is fine.
    let (status, body) = app
        .put(
            &path,
            &app.admin_token,
            json!({"roles": [admin_role], "enforceMFAEnrollment": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Another administrator may change them.
    app.create_user("second-admin", "secret1", &[&admin_role])
        .await;
    let second = app.login("second-admin", "secret1").await;
    let (status, body) = app
        .delete(
            &format!("{path}/roles"),
            &second,
            Some(json!({"roleId": admin_role})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = app.get("/api/roles", &app.admin_token).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
}

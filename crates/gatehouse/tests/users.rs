//! Users (C1–C13): create, list, batch, change own password, get, update, delete, tokens,
//! certificates and roles of a user, with their validation, authentication and permission errors.

mod common;

use common::{assert_error, TestApp, ADMIN_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    create_user_answers_the_full_user,
    create_user_applies_defaults,
    initial_permissions_become_the_users_own_role,
    only_local_users_with_a_password_grant_log_in,
    create_user_validates_usernames,
    create_user_rejects_wrong_types_and_malformed_json,
    create_user_enforces_the_password_policy,
    create_user_validates_grant_types_provider_and_prefix,
    create_user_validates_certificates,
    create_user_validates_roles_and_permissions,
    create_user_conflicts_on_taken_username_and_bound_certificate,
    users_endpoints_require_a_token,
    users_endpoints_require_permission,
    list_users_filters_orders_and_paginates,
    list_users_rejects_bad_paging,
    batch_creates_all_users,
    batch_is_atomic,
    change_password_replaces_the_password,
    change_password_rejects_wrong_current_and_weak_new,
    get_user_and_path_id_errors,
    update_user_changes_fields,
    update_user_replaces_roles_and_permissions,
    update_user_renames_user_and_own_role,
    update_user_resets_the_password,
    update_user_rejects_bad_input,
    delete_user_removes_user_own_role_and_tokens,
    certificates_are_bound_and_unbound,
    certificate_endpoints_reject_bad_input,
    roles_are_given_and_taken,
    role_endpoints_reject_bad_input,
    users_sharing_a_role_all_show_its_permissions,
);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn is_uuid(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| uuid::Uuid::parse_str(text).is_ok())
}

/// The user as answered by C5; panics unless 200.
async fn get_user(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/users/{id}"), &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "GET user {id}: {body}");
    body
}

/// All usernames, as listed by C2 (one big page).
async fn all_usernames(app: &TestApp) -> Vec<String> {
    let (status, body) = app
        .get("/api/listUsers?rowsPerPage=1000", &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["username"].as_str().unwrap().to_owned())
        .collect()
}

/// Names of the roles a user holds.
fn role_names(user: &Value) -> Vec<String> {
    let mut names: Vec<String> = user["roles"]
        .as_array()
        .unwrap_or_else(|| panic!("no roles in {user}"))
        .iter()
        .map(|role| role["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The role named `name` among the roles a user holds.
fn held_role<'a>(user: &'a Value, name: &str) -> &'a Value {
    user["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|role| role["name"] == name)
        .unwrap_or_else(|| panic!("role {name} not held: {user}"))
}

/// `(resource, operation, context)` of every permission in a list.
fn triples(permissions: &Value) -> Vec<(String, String, String)> {
    let mut list: Vec<(String, String, String)> = permissions
        .as_array()
        .unwrap_or_else(|| panic!("not a permission list: {permissions}"))
        .iter()
        .map(|p| {
            (
                p["resource"].as_str().unwrap().to_owned(),
                p["operation"].as_str().unwrap().to_owned(),
                p["context"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    list.sort();
    list
}

fn triple(resource: &str, operation: &str, context: &str) -> (String, String, String) {
    (
        resource.to_owned(),
        operation.to_owned(),
        context.to_owned(),
    )
}

/// The permissions of a token's session (C26).
async fn session_permissions(app: &TestApp, token: &str) -> Vec<(String, String, String)> {
    let (status, session) = app.get("/api/session", token).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    triples(&session["permissions"])
}

/// Status of a login attempt.
async fn login_status(app: &TestApp, username: &str, password: &str) -> StatusCode {
    app.try_login(username, password).await.0
}

/// Creates a user holding only `minimum-access` and logs it in.
async fn minimal_user(app: &TestApp, username: &str, password: &str) -> (String, String) {
    let minimum = app.role_id("minimum-access").await;
    let user = app.create_user(username, password, &[&minimum]).await;
    let token = app.login(username, password).await;
    (id_of(&user), token)
}

/// The admin's user id.
async fn admin_id(app: &TestApp) -> String {
    let (status, body) = app
        .get("/api/listUsers?usernames=admin", &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id_of(&body["users"][0])
}

/// A user without tokens compared to another snapshot, ignoring nothing.
fn assert_unchanged(before: &Value, after: &Value, what: &str) {
    assert_eq!(before, after, "{what} changed the user");
}

// ---------------------------------------------------------------------------------------------
// C1 POST /api/users
// ---------------------------------------------------------------------------------------------

async fn create_user_answers_the_full_user(app: TestApp) {
    let minimum = app.role_id("minimum-access").await;
    let sha256 = "AB:".repeat(31) + "AB";
    let (status, created) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({
                "username": "sensor.01@plant-a.example",
                "password": "secret-1",
                "autoGenerated": true,
                "mqttPublishPrefix": "plant-a/line-1",
                "identityProvider": "local",
                "grantTypes": [
                    {"method": "password", "isRequired": false},
                    {"method": "certificate", "isRequired": true}
                ],
                "certificates": [{
                    "fingerprint": sha256,
                    "createdAt": "1999-01-01T00:00:00Z",
                    "expiresAt": "2031-02-03T04:05:06Z"
                }],
                "initialPermissions": [
                    {"id": "ignored", "resource": "plant-a/line-1/#", "operation": "write", "context": "mqtt"},
                    {"resource": "/api/listUsers", "operation": "read", "context": "http"}
                ],
                "roles": [minimum],
                "enforceMFAEnrollment": true
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(is_uuid(&created["id"]), "{created}");
    assert_eq!(created["username"], "sensor.01@plant-a.example");
    assert_eq!(created["autoGenerated"], true);
    assert_eq!(created["mqttPublishPrefix"], "plant-a/line-1");
    assert_eq!(created["identityProvider"], "local");
    assert_eq!(
        created["grantTypes"],
        json!([
            {"method": "password", "isRequired": false},
            {"method": "certificate", "isRequired": true}
        ])
    );
    assert_eq!(created["tokens"], json!([]));
    assert_eq!(created["mfa_is_enrolled"], false);
    assert_eq!(created["enforceMFAEnrollment"], true);
    assert!(
        created.get("password").is_none() && created.get("passwordHash").is_none(),
        "no password in the answer: {created}"
    );
    let certificates = created["certificates"].as_array().unwrap();
    assert_eq!(certificates.len(), 1, "{created}");
    assert_eq!(certificates[0]["fingerprint"], "ab".repeat(32));
    assert_eq!(certificates[0]["expiresAt"], "2031-02-03T04:05:06.000Z");
    let bound_at = certificates[0]["createdAt"].as_str().unwrap();
    assert!(
        !bound_at.starts_with("1999") && bound_at.ends_with('Z'),
        "binding time is the server's: {bound_at}"
    );
    assert_eq!(
        role_names(&created),
        vec!["minimum-access", "sensor.01@plant-a.example"]
    );
    let minimum_role = held_role(&created, "minimum-access");
    assert_eq!(minimum_role["id"], json!(minimum));
    let own = held_role(&created, "sensor.01@plant-a.example");
    assert!(is_uuid(&own["id"]));
    assert_eq!(own["autoGenerated"], true);
    assert_eq!(own["isShared"], false);
    assert_eq!(
        triples(&own["permissions"]),
        vec![
            triple("/api/listUsers", "read", "http"),
            triple("plant-a/line-1/#", "write", "mqtt"),
        ]
    );
    for permission in own["permissions"].as_array().unwrap() {
        assert!(
            is_uuid(&permission["id"]),
            "ids are assigned by the server: {own}"
        );
    }
    // C5 answers the same user.
    let read = get_user(&app, &id_of(&created)).await;
    assert_eq!(read, created);
}

async fn create_user_applies_defaults(app: TestApp) {
    let (status, created) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "plain-user", "password": "secret1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["username"], "plain-user");
    assert_eq!(created["autoGenerated"], false);
    assert_eq!(created["mqttPublishPrefix"], Value::Null);
    assert_eq!(created["identityProvider"], "local");
    assert_eq!(
        created["grantTypes"],
        json!([{"method": "password", "isRequired": false}])
    );
    assert_eq!(created["tokens"], json!([]));
    assert_eq!(created["certificates"], json!([]));
    assert_eq!(created["roles"], json!([]));
    assert_eq!(created["mfa_is_enrolled"], false);
    assert_eq!(created["enforceMFAEnrollment"], false);
    // The password works, and the new token shows up in the user's tokens.
    app.login("plain-user", "secret1").await;
    let read = get_user(&app, &id_of(&created)).await;
    assert_eq!(read["tokens"].as_array().unwrap().len(), 1, "{read}");
    // A user without a password is allowed but cannot log in.
    let (status, passwordless) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "no-password"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{passwordless}");
    assert_eq!(passwordless["username"], "no-password");
    assert_eq!(
        login_status(&app, "no-password", "anything1").await,
        StatusCode::UNAUTHORIZED
    );
}

async fn initial_permissions_become_the_users_own_role(app: TestApp) {
    let minimum = app.role_id("minimum-access").await;
    let (status, created) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({
                "username": "role-reader",
                "password": "secret1",
                "roles": [minimum],
                "initialPermissions": [
                    {"resource": "/api/roles/#", "operation": "read", "context": "http"},
                    {"resource": "sensors/#", "operation": "read", "context": "mqtt"},
                    {"resource": "/sensors/#", "operation": "read", "context": "http"}
                ]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let own = held_role(&created, "role-reader").clone();
    assert_eq!(own["autoGenerated"], true);
    assert_eq!(own["isShared"], false);
    // The own role is a real role.
    let (status, role) = app
        .get(&format!("/api/roles/{}", id_of(&own)), &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{role}");
    assert_eq!(role["name"], "role-reader");
    // Its permissions are the user's: visible in the session and effective.
    let token = app.login("role-reader", "secret1").await;
    let permissions = session_permissions(&app, &token).await;
    for expected in [
        triple("/api/roles/#", "read", "http"),
        triple("sensors/#", "read", "mqtt"),
        triple("/sensors/#", "read", "http"),
        triple("/api/session", "read", "http"),
    ] {
        assert!(
            permissions.contains(&expected),
            "{expected:?} missing: {permissions:?}"
        );
    }
    assert_eq!(app.get("/api/roles", &token).await.0, StatusCode::OK);
    let (status, body) = app.get("/api/listUsers", &token).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
}

async fn only_local_users_with_a_password_grant_log_in(app: TestApp) {
    for (username, extra) in [
        (
            "cert-only",
            json!({"grantTypes": [{"method": "certificate", "isRequired": false}]}),
        ),
        ("ldap-user", json!({"identityProvider": "ldap"})),
        ("entra-user", json!({"identityProvider": "entra"})),
        (
            "both-grants",
            json!({"grantTypes": [{"method": "certificate", "isRequired": false}, {"method": "password", "isRequired": false}]}),
        ),
    ] {
        let mut body = json!({"username": username, "password": "secret1"});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, created) = app.post("/api/users", &app.admin_token, body).await;
        assert_eq!(status, StatusCode::CREATED, "{username}: {created}");
        if let Some(provider) = extra.get("identityProvider") {
            assert_eq!(&created["identityProvider"], provider);
        }
        if let Some(grants) = extra.get("grantTypes") {
            assert_eq!(&created["grantTypes"], grants);
        }
    }
    assert_eq!(
        login_status(&app, "cert-only", "secret1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&app, "ldap-user", "secret1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&app, "entra-user", "secret1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&app, "both-grants", "secret1").await,
        StatusCode::OK
    );
}

async fn create_user_validates_usernames(app: TestApp) {
    let before = all_usernames(&app).await;
    let too_long = format!("a{}", "b".repeat(128));
    for username in [
        "",
        "ab",
        too_long.as_str(),
        "_abc",
        "-abc",
        ".abc",
        "@abc",
        "a b c",
        "bad/name",
        "bad:name",
        "bad#name",
        "bad name",
        "ümlaut",
        "abc\u{0}",
        "naïve",
    ] {
        let (status, body) = app
            .post(
                "/api/users",
                &app.admin_token,
                json!({"username": username, "password": "secret1"}),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(body["field"], "username", "{username:?}: {body}");
    }
    assert_eq!(all_usernames(&app).await, before, "nothing was created");
    let longest = format!("a{}", "b".repeat(127));
    for username in [
        "abc",
        "9lives",
        "john.doe+tag@example.com",
        "A_b-c.d@e+f",
        longest.as_str(),
    ] {
        let (status, body) = app
            .post(
                "/api/users",
                &app.admin_token,
                json!({"username": username, "password": "secret1"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{username}: {body}");
        assert_eq!(body["username"], username);
    }
    app.login("john.doe+tag@example.com", "secret1").await;
}

async fn create_user_rejects_wrong_types_and_malformed_json(app: TestApp) {
    let before = all_usernames(&app).await;
    for body in [
        json!({}),
        json!({"password": "secret1"}),
        json!({"username": 42, "password": "secret1"}),
        json!({"username": null}),
        json!({"username": "typed-1", "password": 12345}),
        json!({"username": "typed-2", "autoGenerated": "yes"}),
        json!({"username": "typed-3", "enforceMFAEnrollment": "true"}),
        json!({"username": "typed-4", "roles": "minimum-access"}),
        json!({"username": "typed-5", "roles": [1, 2]}),
        json!({"username": "typed-6", "grantTypes": {"method": "password"}}),
        json!({"username": "typed-7", "grantTypes": [{"method": "magic", "isRequired": false}]}),
        json!({"username": "typed-8", "grantTypes": [{"method": "password", "isRequired": "no"}]}),
        json!({"username": "typed-9", "certificates": "ab"}),
        json!({"username": "typed-10", "certificates": [{"expiresAt": "2031-01-01T00:00:00Z"}]}),
        json!({"username": "typed-11", "initialPermissions": {"resource": "a"}}),
        json!({"username": "typed-12", "mqttPublishPrefix": 7}),
        json!({"username": "typed-13", "identityProvider": true}),
        json!([{"username": "typed-14"}]),
        json!("typed-15"),
    ] {
        let (status, answer) = app.post("/api/users", &app.admin_token, body.clone()).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST);
    }
    for raw in [
        &b"{\"username\": \"raw-1\", "[..],
        &b"{username: raw-2}"[..],
        &b""[..],
        &b"\xff\xfe"[..],
    ] {
        let (status, answer) = app
            .send_raw(
                Method::POST,
                "/api/users",
                &app.admin_token,
                "application/json",
                raw.to_vec(),
            )
            .await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST);
    }
    assert_eq!(all_usernames(&app).await, before, "nothing was created");
    // The body is an object: a positional array is the wrong type, and creates nobody.
    let (status, answer) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!(["array-user", "secret1"]),
        )
        .await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST);
    assert_eq!(
        all_usernames(&app).await,
        before,
        "an array body created a user"
    );
}

async fn create_user_enforces_the_password_policy(app: TestApp) {
    let before = all_usernames(&app).await;
    for password in ["a", "abcd", "1234"] {
        let (status, body) = app
            .post(
                "/api/users",
                &app.admin_token,
                json!({"username": "weak-user", "password": password}),
            )
            .await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["field"], "password", "{body}");
    }
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "weak-user", "password": ""}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "password", "{body}");
    assert_eq!(all_usernames(&app).await, before, "nothing was created");
    // Exactly the minimum is enough.
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "weak-user", "password": "abcde"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.login("weak-user", "abcde").await;
}

async fn create_user_validates_grant_types_provider_and_prefix(app: TestApp) {
    let before = all_usernames(&app).await;
    for (extra, field) in [
        (json!({"grantTypes": []}), "grantTypes"),
        (
            json!({"grantTypes": [{"method": "password", "isRequired": false}, {"method": "password", "isRequired": true}]}),
            "grantTypes",
        ),
        (json!({"identityProvider": "google"}), "identityProvider"),
        (json!({"identityProvider": "LOCAL-ish"}), "identityProvider"),
        (json!({"mqttPublishPrefix": "a/+"}), "mqttPublishPrefix"),
        (json!({"mqttPublishPrefix": "a/#"}), "mqttPublishPrefix"),
        (json!({"mqttPublishPrefix": "+"}), "mqttPublishPrefix"),
        (json!({"mqttPublishPrefix": "a/b+c"}), "mqttPublishPrefix"),
    ] {
        let mut body = json!({"username": "checked-user", "password": "secret1"});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, answer) = app.post("/api/users", &app.admin_token, body).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST);
        assert_eq!(answer["field"], field, "{extra}: {answer}");
    }
    assert_eq!(all_usernames(&app).await, before, "nothing was created");
}

async fn create_user_validates_certificates(app: TestApp) {
    let before = all_usernames(&app).await;
    for certificate in [
        json!({"fingerprint": "xyz"}),
        json!({"fingerprint": ""}),
        json!({"fingerprint": "a".repeat(39)}),
        json!({"fingerprint": "a".repeat(41)}),
        json!({"fingerprint": "a".repeat(63)}),
        json!({"fingerprint": "a".repeat(65)}),
        json!({"fingerprint": "g".repeat(40)}),
        json!({"fingerprint": "a".repeat(40), "expiresAt": "tomorrow"}),
    ] {
        let (status, body) = app
            .post(
                "/api/users",
                &app.admin_token,
                json!({"username": "cert-user", "password": "secret1", "certificates": [certificate]}),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        assert!(
            body["field"]
                .as_str()
                .is_some_and(|field| field.starts_with("certificates[0]")),
            "{certificate}: {body}"
        );
    }
    assert_eq!(all_usernames(&app).await, before, "nothing was created");
    // SHA-1 with separators and upper case is accepted and normalised.
    let sha1 = "0A:".repeat(19) + "FF";
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "cert-user", "certificates": [{"fingerprint": sha1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["certificates"][0]["fingerprint"],
        "0a".repeat(19) + "ff"
    );
    assert_eq!(body["certificates"][0]["expiresAt"], Value::Null);
}

async fn create_user_validates_roles_and_permissions(app: TestApp) {
    let minimum = app.role_id("minimum-access").await;
    let before = all_usernames(&app).await;
    let (_, roles_before) = app.get("/api/roles", &app.admin_token).await;
    let unknown = random_id();
    for (extra, field) in [
        (json!({"roles": [unknown]}), "roles"),
        (json!({"roles": [minimum, unknown]}), "roles"),
        (json!({"roles": ["minimum-access"]}), "roles"),
        (json!({"roles": [""]}), "roles"),
    ] {
        let mut body = json!({"username": "bad-roles", "password": "secret1",
            "initialPermissions": [{"resource": "x/#", "operation": "read", "context": "mqtt"}]});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, answer) = app.post("/api/users", &app.admin_token, body).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST);
        assert_eq!(answer["field"], field, "{extra}: {answer}");
    }
    for permissions in [
        json!([{"resource": "a/b", "operation": "read", "context": "mqtt"},
               {"resource": "a/b", "operation": "write", "context": "mqtt"}]),
        json!([{"resource": "a/b", "operation": "delete", "context": "mqtt"}]),
        json!([{"resource": "a/b", "operation": "read", "context": "smtp"}]),
        json!([{"resource": "a/#/b", "operation": "read", "context": "mqtt"}]),
    ] {
        let (status, answer) = app
            .post(
                "/api/users",
                &app.admin_token,
                json!({"username": "bad-perms", "password": "secret1", "initialPermissions": permissions}),
            )
            .await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST);
        assert!(
            answer["field"]
                .as_str()
                .is_some_and(|field| field.starts_with("initialPermissions")),
            "{permissions}: {answer}"
        );
    }
    assert_eq!(all_usernames(&app).await, before, "no user was created");
    let (_, roles_after) = app.get("/api/roles", &app.admin_token).await;
    assert_eq!(roles_after, roles_before, "no own role was left behind");
    // The same resource in two contexts is two different permissions.
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "two-contexts", "initialPermissions": [
                {"resource": "/a/b", "operation": "read", "context": "mqtt"},
                {"resource": "/a/b", "operation": "read", "context": "http"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(role_names(&body), vec!["two-contexts"]);
    assert_eq!(
        triples(&held_role(&body, "two-contexts")["permissions"]),
        vec![
            triple("/a/b", "read", "http"),
            triple("/a/b", "read", "mqtt")
        ]
    );
}

async fn create_user_conflicts_on_taken_username_and_bound_certificate(app: TestApp) {
    // (Not a conflict: the same role listed twice is held once.)
    let admin_role = app.role_id("connectware-admin").await;
    let (status, twice) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "role-twice", "roles": [admin_role, admin_role]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{twice}");
    assert_eq!(role_names(&twice), vec!["connectware-admin"]);

    let minimum = app.role_id("minimum-access").await;
    let original = app.create_user("taken-name", "secret1", &[&minimum]).await;
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "taken-name", "password": "other-password", "autoGenerated": true,
                   "initialPermissions": [{"resource": "#", "operation": "readWrite", "context": "mqtt"}]}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "admin", "password": "other-password"}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    // The original is untouched: same record, old password still the one.
    assert_eq!(get_user(&app, &id_of(&original)).await, original);
    let (_, listed) = app
        .get("/api/listUsers?usernames=taken-name", &app.admin_token)
        .await;
    assert_eq!(listed["pagination"]["totalRows"], 1);
    assert_eq!(
        login_status(&app, "taken-name", "other-password").await,
        StatusCode::UNAUTHORIZED
    );
    app.login("admin", ADMIN_PASSWORD).await;
    // A certificate is bound to one user only.
    let fingerprint = "c".repeat(64);
    let (status, holder) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "cert-holder", "certificates": [{"fingerprint": fingerprint}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{holder}");
    let upper = "C".repeat(64);
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "cert-thief", "certificates": [{"fingerprint": upper}]}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    assert!(!all_usernames(&app).await.contains(&"cert-thief".to_owned()));
    assert_eq!(get_user(&app, &id_of(&holder)).await, holder);
}

// ---------------------------------------------------------------------------------------------
// Authentication and permission on every endpoint
// ---------------------------------------------------------------------------------------------

/// Every C1–C13 request (but C4) against `target` (a user id) with a valid body: `role` is
/// given, `held` (a role the target holds) is taken, a new certificate is bound and the
/// target's certificate `e…e` is unbound.
fn every_endpoint(target: &str, role: &str, held: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/api/users".to_owned(),
            Some(json!({"username": "intruder", "password": "secret1"})),
        ),
        (Method::GET, "/api/listUsers".to_owned(), None),
        (
            Method::POST,
            "/api/users/batch".to_owned(),
            Some(json!([{"username": "intruder-b", "password": "secret1"}])),
        ),
        (Method::GET, format!("/api/users/{target}"), None),
        (
            Method::PUT,
            format!("/api/users/{target}"),
            Some(json!({"username": "renamed-target", "enforceMFAEnrollment": true})),
        ),
        (Method::DELETE, format!("/api/users/{target}"), None),
        (Method::GET, format!("/api/users/{target}/tokens"), None),
        (Method::DELETE, format!("/api/users/{target}/tokens"), None),
        (
            Method::POST,
            format!("/api/users/{target}/certificates"),
            Some(json!({"fingerprint": "d".repeat(64)})),
        ),
        (
            Method::DELETE,
            format!("/api/users/{target}/certificates"),
            Some(json!({"fingerprint": "e".repeat(64)})),
        ),
        (
            Method::POST,
            format!("/api/users/{target}/roles"),
            Some(json!({"roleId": role})),
        ),
        (
            Method::DELETE,
            format!("/api/users/{target}/roles"),
            Some(json!({"roleId": held})),
        ),
    ]
}

/// A target user with a certificate, a held role and a live token, for the refusal sweeps.
async fn refusal_target(app: &TestApp) -> (String, String, String, String) {
    let minimum = app.role_id("minimum-access").await;
    let extra = app
        .create_role(
            "target-extra",
            json!([{"resource": "t/#", "operation": "read", "context": "mqtt"}]),
        )
        .await;
    let (status, target) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "target-user", "password": "secret1",
                   "roles": [minimum],
                   "certificates": [{"fingerprint": "e".repeat(64)}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{target}");
    let target_token = app.login("target-user", "secret1").await;
    (id_of(&target), id_of(&extra), minimum, target_token)
}

async fn assert_target_untouched(
    app: &TestApp,
    target: &str,
    before: &Value,
    users_before: &[String],
    target_token: &str,
) {
    assert_eq!(&get_user(app, target).await, before, "target changed");
    assert_eq!(all_usernames(app).await, users_before, "users changed");
    assert_eq!(
        app.get("/api/session", target_token).await.0,
        StatusCode::OK,
        "the target's token was revoked"
    );
}

async fn users_endpoints_require_a_token(app: TestApp) {
    let (target, extra_role, held, target_token) = refusal_target(&app).await;
    let before = get_user(&app, &target).await;
    let users_before = all_usernames(&app).await;
    let mut requests = every_endpoint(&target, &extra_role, &held);
    requests.push((
        Method::PUT,
        "/api/users/change-password".to_owned(),
        Some(json!({"password": "secret1", "newPassword": "secret2"})),
    ));
    for (method, path, body) in requests {
        let (status, answer) = app.request(method.clone(), &path, None, body.clone()).await;
        assert_error(status, &answer, StatusCode::UNAUTHORIZED);
        let (status, answer) = app
            .request(method.clone(), &path, Some("not-a-token"), body.clone())
            .await;
        assert_error(status, &answer, StatusCode::UNAUTHORIZED);
        let separator = if path.contains('?') { '&' } else { '?' };
        let (status, answer) = app
            .request(
                method.clone(),
                &format!("{path}{separator}apiToken=garbage"),
                None,
                body,
            )
            .await;
        assert_error(status, &answer, StatusCode::UNAUTHORIZED);
    }
    assert_target_untouched(&app, &target, &before, &users_before, &target_token).await;
    assert_eq!(
        login_status(&app, "target-user", "secret1").await,
        StatusCode::OK,
        "the password did not change"
    );
}

async fn users_endpoints_require_permission(app: TestApp) {
    let (target, extra_role, held, target_token) = refusal_target(&app).await;
    let (own_id, minimal_token) = minimal_user(&app, "minimal-caller", "secret1").await;
    let before = get_user(&app, &target).await;
    let users_before = all_usernames(&app).await;
    for (method, path, body) in every_endpoint(&target, &extra_role, &held) {
        let (status, answer) = app.request(method, &path, Some(&minimal_token), body).await;
        assert_error(status, &answer, StatusCode::FORBIDDEN);
    }
    // Not even on itself.
    for (method, path, body) in every_endpoint(&own_id, &extra_role, &held)
        .into_iter()
        .skip(3)
    {
        let (status, answer) = app.request(method, &path, Some(&minimal_token), body).await;
        assert_error(status, &answer, StatusCode::FORBIDDEN);
    }
    assert_target_untouched(&app, &target, &before, &users_before, &target_token).await;
    assert_eq!(
        app.get("/api/session", &minimal_token).await.0,
        StatusCode::OK
    );
    let own = get_user(&app, &own_id).await;
    assert_eq!(role_names(&own), vec!["minimum-access"]);
    assert_eq!(own["certificates"], json!([]));
}

// ---------------------------------------------------------------------------------------------
// C2 GET /api/listUsers
// ---------------------------------------------------------------------------------------------

fn listed_names(body: &Value) -> Vec<&str> {
    body["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users in {body}"))
        .iter()
        .map(|user| user["username"].as_str().unwrap())
        .collect()
}

async fn list_users_filters_orders_and_paginates(app: TestApp) {
    // Created out of order; `list-c` is auto-generated.
    for name in ["list-d", "list-b", "list-e", "list-a"] {
        app.create_user(name, "secret1", &[]).await;
    }
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "list-c", "password": "secret1", "autoGenerated": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let all = ["admin", "list-a", "list-b", "list-c", "list-d", "list-e"];

    let (status, body) = app.get("/api/listUsers", &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(listed_names(&body), all);
    assert_eq!(
        body["pagination"],
        json!({"totalPages": 1, "totalRows": 6, "totalRowsInPage": 6, "currentPage": 1,
               "nextPage": null, "rowsPerPage": 10})
    );
    // Listed users have the full shape of C5.
    let listed_c = body["users"][3].clone();
    assert_eq!(listed_c["autoGenerated"], true);
    assert_eq!(get_user(&app, &id_of(&listed_c)).await, listed_c);
    let listed_admin = &body["users"][0];
    assert_eq!(role_names(listed_admin), vec!["connectware-admin"]);

    let expected_pages = [
        (1, vec!["admin", "list-a"], json!(2)),
        (2, vec!["list-b", "list-c"], json!(3)),
        (3, vec!["list-d", "list-e"], Value::Null),
    ];
    for (page, names, next) in expected_pages {
        let (status, body) = app
            .get(
                &format!("/api/listUsers?pageNumber={page}&rowsPerPage=2"),
                &app.admin_token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(listed_names(&body), names, "page {page}");
        assert_eq!(
            body["pagination"],
            json!({"totalPages": 3, "totalRows": 6, "totalRowsInPage": 2, "currentPage": page,
                   "nextPage": next, "rowsPerPage": 2}),
            "page {page}"
        );
    }
    let (_, body) = app
        .get(
            "/api/listUsers?pageNumber=2&rowsPerPage=4",
            &app.admin_token,
        )
        .await;
    assert_eq!(listed_names(&body), ["list-d", "list-e"]);
    assert_eq!(body["pagination"]["totalRowsInPage"], 2);
    assert_eq!(body["pagination"]["totalPages"], 2);
    assert_eq!(body["pagination"]["nextPage"], Value::Null);
    let (_, body) = app
        .get(
            "/api/listUsers?pageNumber=9&rowsPerPage=4",
            &app.admin_token,
        )
        .await;
    assert_eq!(body["users"], json!([]));
    assert_eq!(body["pagination"]["totalRows"], 6);
    assert_eq!(body["pagination"]["totalRowsInPage"], 0);
    assert_eq!(body["pagination"]["currentPage"], 9);
    assert_eq!(body["pagination"]["nextPage"], Value::Null);

    // Filters: repeated and comma-separated names, auto-generated exclusion.
    let (status, body) = app
        .get(
            "/api/listUsers?usernames=list-d&usernames=list-b,list-a&usernames=nobody",
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(listed_names(&body), ["list-a", "list-b", "list-d"]);
    assert_eq!(body["pagination"]["totalRows"], 3);
    let (_, body) = app
        .get("/api/listUsers?usernames=nobody", &app.admin_token)
        .await;
    assert_eq!(body["users"], json!([]));
    assert_eq!(body["pagination"]["totalRows"], 0);
    let (_, body) = app
        .get("/api/listUsers?excludeAutoGenerated=true", &app.admin_token)
        .await;
    assert_eq!(
        listed_names(&body),
        ["admin", "list-a", "list-b", "list-d", "list-e"]
    );
    assert_eq!(body["pagination"]["totalRows"], 5);
    let (_, body) = app
        .get(
            "/api/listUsers?excludeAutoGenerated=false",
            &app.admin_token,
        )
        .await;
    assert_eq!(listed_names(&body), all);
    let (_, body) = app
        .get(
            "/api/listUsers?usernames=list-c,list-e&excludeAutoGenerated=true",
            &app.admin_token,
        )
        .await;
    assert_eq!(listed_names(&body), ["list-e"]);
    assert_eq!(body["pagination"]["totalRows"], 1);
    let (_, body) = app
        .get(
            "/api/listUsers?usernames=list-a,list-b,list-d,list-e&rowsPerPage=3&pageNumber=2",
            &app.admin_token,
        )
        .await;
    assert_eq!(listed_names(&body), ["list-e"]);
    assert_eq!(
        body["pagination"],
        json!({"totalPages": 2, "totalRows": 4, "totalRowsInPage": 1, "currentPage": 2,
               "nextPage": null, "rowsPerPage": 3})
    );
}

async fn list_users_rejects_bad_paging(app: TestApp) {
    for query in [
        "pageNumber=0",
        "rowsPerPage=0",
        "rowsPerPage=1001",
        "pageNumber=abc",
        "rowsPerPage=ten",
        "pageNumber=-1",
        "rowsPerPage=-5",
        "pageNumber=1.5",
        "excludeAutoGenerated=maybe",
    ] {
        let (status, body) = app
            .get(&format!("/api/listUsers?{query}"), &app.admin_token)
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    let (status, body) = app
        .get(
            "/api/listUsers?rowsPerPage=1000&pageNumber=1",
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pagination"]["rowsPerPage"], 1000);
    let (status, body) = app
        .get("/api/listUsers?rowsPerPage=1", &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(listed_names(&body), ["admin"]);
}

// ---------------------------------------------------------------------------------------------
// C3 POST /api/users/batch
// ---------------------------------------------------------------------------------------------

async fn batch_creates_all_users(app: TestApp) {
    let minimum = app.role_id("minimum-access").await;
    let (status, ids) = app
        .post(
            "/api/users/batch",
            &app.admin_token,
            json!([
                {"username": "batch-one", "password": "secret1", "roles": [minimum]},
                {"username": "batch-two", "autoGenerated": true, "mqttPublishPrefix": "dev/two",
                 "grantTypes": [{"method": "certificate", "isRequired": true}],
                 "certificates": [{"fingerprint": "1".repeat(40)}]},
                {"username": "batch-three", "password": "secret3",
                 "initialPermissions": [{"resource": "three/#", "operation": "readWrite", "context": "mqtt"}]}
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ids}");
    let ids = ids
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {ids}"));
    assert_eq!(ids.len(), 3);
    let users: Vec<Value> = {
        let mut users = Vec::new();
        for id in ids {
            assert!(is_uuid(id), "{id}");
            users.push(get_user(&app, id.as_str().unwrap()).await);
        }
        users
    };
    assert_eq!(users[0]["username"], "batch-one");
    assert_eq!(role_names(&users[0]), vec!["minimum-access"]);
    assert_eq!(users[1]["username"], "batch-two");
    assert_eq!(users[1]["autoGenerated"], true);
    assert_eq!(users[1]["mqttPublishPrefix"], "dev/two");
    assert_eq!(
        users[1]["grantTypes"],
        json!([{"method": "certificate", "isRequired": true}])
    );
    assert_eq!(users[1]["certificates"][0]["fingerprint"], "1".repeat(40));
    assert_eq!(users[2]["username"], "batch-three");
    let own = held_role(&users[2], "batch-three");
    assert_eq!(own["autoGenerated"], true);
    assert_eq!(
        triples(&own["permissions"]),
        vec![triple("three/#", "readWrite", "mqtt")]
    );
    app.login("batch-one", "secret1").await;
    app.login("batch-three", "secret3").await;
    // A batch of one works too.
    let (status, ids) = app
        .post(
            "/api/users/batch",
            &app.admin_token,
            json!([{"username": "batch-four"}]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ids}");
    assert_eq!(ids.as_array().unwrap().len(), 1);
    assert_eq!(
        get_user(&app, ids[0].as_str().unwrap()).await["username"],
        "batch-four"
    );
}

async fn batch_is_atomic(app: TestApp) {
    app.create_user("existing-user", "secret1", &[]).await;
    let (status, owner) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "cert-owner", "certificates": [{"fingerprint": "2".repeat(64)}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{owner}");
    let before = all_usernames(&app).await;
    let (_, roles_before) = app.get("/api/roles", &app.admin_token).await;
    let good = |name: &str| {
        json!({"username": name, "password": "secret1",
               "initialPermissions": [{"resource": format!("{name}/#"), "operation": "read", "context": "mqtt"}]})
    };
    let cases = [
        (
            json!([good("atomic-a"), good("atomic-b"), {"username": "x"}]),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!([good("atomic-a"), {"username": "atomic-b", "password": "abc"}]),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!([good("atomic-a"), {"username": "atomic-b", "roles": [random_id()]}]),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!([good("atomic-a"), {"username": "atomic-b", "mqttPublishPrefix": "a/#"}]),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!([good("atomic-a"), good("existing-user"), good("atomic-b")]),
            StatusCode::CONFLICT,
        ),
        (
            json!([good("atomic-a"), good("atomic-b"), good("atomic-a")]),
            StatusCode::CONFLICT,
        ),
        (
            json!([good("atomic-a"), {"username": "atomic-b", "certificates": [{"fingerprint": "2".repeat(64)}]}]),
            StatusCode::CONFLICT,
        ),
        (
            json!([good("atomic-a"), {"username": "atomic-b", "certificates": [{"fingerprint": "3".repeat(64)}]},
                   {"username": "atomic-c", "certificates": [{"fingerprint": "3".repeat(64)}]}]),
            StatusCode::CONFLICT,
        ),
        (json!([]), StatusCode::BAD_REQUEST),
        (
            json!({"username": "atomic-a", "password": "secret1"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!([good("atomic-a"), {"username": 5}]),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!([good("atomic-a"), "atomic-b"]),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = app
            .post("/api/users/batch", &app.admin_token, body.clone())
            .await;
        assert_error(status, &answer, expected);
        assert_eq!(
            all_usernames(&app).await,
            before,
            "{body} created users although it was refused"
        );
    }
    let (status, answer) = app
        .send_raw(
            Method::POST,
            "/api/users/batch",
            &app.admin_token,
            "application/json",
            b"[{\"username\": \"atomic-a\"},".to_vec(),
        )
        .await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST);
    let (_, roles_after) = app.get("/api/roles", &app.admin_token).await;
    assert_eq!(roles_after, roles_before, "no own role was left behind");
    assert_eq!(
        login_status(&app, "atomic-a", "secret1").await,
        StatusCode::UNAUTHORIZED
    );
    // The invalid entry is named.
    let (status, answer) = app
        .post(
            "/api/users/batch",
            &app.admin_token,
            json!([good("atomic-a"), good("atomic-b"), {"username": "x"}]),
        )
        .await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST);
    let field = answer["field"].as_str().unwrap_or_default();
    assert!(
        field.contains('2') && field.contains("username"),
        "{answer}"
    );
}

// ---------------------------------------------------------------------------------------------
// C4 PUT /api/users/change-password
// ---------------------------------------------------------------------------------------------

async fn change_password_replaces_the_password(app: TestApp) {
    let (_, old_token) = minimal_user(&app, "changer", "first-pass").await;
    let (status, body) = app
        .put(
            "/api/users/change-password",
            &old_token,
            json!({"password": "first-pass", "newPassword": "second-pass"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
    assert_eq!(
        login_status(&app, "changer", "first-pass").await,
        StatusCode::UNAUTHORIZED
    );
    let new_token = app.login("changer", "second-pass").await;
    assert_eq!(app.get("/api/session", &new_token).await.0, StatusCode::OK);
    assert_eq!(
        app.get("/api/session", &old_token).await.0,
        StatusCode::OK,
        "existing tokens keep working"
    );
    // The admin can change its own password too; it affects only the admin.
    let (status, body) = app
        .put(
            "/api/users/change-password",
            &app.admin_token,
            json!({"password": ADMIN_PASSWORD, "newPassword": "new-admin-pass"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    app.login("admin", "new-admin-pass").await;
    app.login("changer", "second-pass").await;
}

async fn change_password_rejects_wrong_current_and_weak_new(app: TestApp) {
    let (_, token) = minimal_user(&app, "careful", "right-pass").await;
    let (status, body) = app
        .put(
            "/api/users/change-password",
            &token,
            json!({"password": "wrong-pass", "newPassword": "other-pass"}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "password", "{body}");
    let (status, body) = app
        .put(
            "/api/users/change-password",
            &token,
            json!({"password": "right-pass", "newPassword": "abc"}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "newPassword", "{body}");
    for bad in [
        json!({}),
        json!({"password": "right-pass"}),
        json!({"newPassword": "other-pass"}),
        json!({"password": "right-pass", "newPassword": 12345}),
        json!({"password": ["right-pass"], "newPassword": "other-pass"}),
        json!({"password": "right-pass", "newPassword": ""}),
    ] {
        let (status, body) = app
            .put("/api/users/change-password", &token, bad.clone())
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    let (status, body) = app
        .send_raw(
            Method::PUT,
            "/api/users/change-password",
            &token,
            "application/json",
            b"{\"password\": \"right-pass\", \"newPassword\": ".to_vec(),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    // Nothing changed.
    app.login("careful", "right-pass").await;
    for refused in ["other-pass", "abc"] {
        assert_eq!(
            login_status(&app, "careful", refused).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.get("/api/session", &token).await.0, StatusCode::OK);
    // The body is an object: a positional array is the wrong type, and changes nothing.
    let (status, body) = app
        .put(
            "/api/users/change-password",
            &token,
            json!(["right-pass", "other-pass"]),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    app.login("careful", "right-pass").await;
    assert_eq!(
        login_status(&app, "careful", "other-pass").await,
        StatusCode::UNAUTHORIZED
    );
}

// ---------------------------------------------------------------------------------------------
// C5 GET /api/users/{id}, and path ids everywhere
// ---------------------------------------------------------------------------------------------

async fn get_user_and_path_id_errors(app: TestApp) {
    let admin = admin_id(&app).await;
    let user = get_user(&app, &admin).await;
    assert_eq!(user["id"], json!(admin));
    assert_eq!(user["username"], "admin");
    assert_eq!(user["identityProvider"], "local");
    assert_eq!(role_names(&user), vec!["connectware-admin"]);
    let admin_role = held_role(&user, "connectware-admin");
    assert!(triples(&admin_role["permissions"]).contains(&triple("#", "readWrite", "http")));
    assert!(
        !user["tokens"].as_array().unwrap().is_empty(),
        "the harness's admin token is live: {user}"
    );
    for token in user["tokens"].as_array().unwrap() {
        assert_eq!(token["fingerprint"].as_str().unwrap().len(), 64);
        assert!(token["expiresAt"].as_str().unwrap().ends_with('Z'));
    }

    let unknown = random_id();
    let minimum = app.role_id("minimum-access").await;
    let before = get_user(&app, &admin).await;
    for id in [unknown.as_str(), "not-a-uuid", "12345"] {
        let expected = if id == unknown {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        for (method, path, body) in [
            (Method::GET, format!("/api/users/{id}"), None),
            (
                Method::PUT,
                format!("/api/users/{id}"),
                Some(json!({"enforceMFAEnrollment": true})),
            ),
            (Method::DELETE, format!("/api/users/{id}"), None),
            (Method::GET, format!("/api/users/{id}/tokens"), None),
            (Method::DELETE, format!("/api/users/{id}/tokens"), None),
            (
                Method::POST,
                format!("/api/users/{id}/certificates"),
                Some(json!({"fingerprint": "4".repeat(64)})),
            ),
            (
                Method::DELETE,
                format!("/api/users/{id}/certificates"),
                Some(json!({"fingerprint": "4".repeat(64)})),
            ),
            (
                Method::POST,
                format!("/api/users/{id}/roles"),
                Some(json!({"roleId": minimum})),
            ),
            (
                Method::DELETE,
                format!("/api/users/{id}/roles"),
                Some(json!({"roleId": minimum})),
            ),
        ] {
            let (status, answer) = app
                .request(method.clone(), &path, Some(&app.admin_token), body)
                .await;
            assert_error(status, &answer, expected);
            if expected == StatusCode::BAD_REQUEST {
                assert_eq!(answer["field"], "id", "{method} {path}: {answer}");
            }
        }
    }
    // The refused writes changed nothing; the certificate went nowhere.
    assert_eq!(get_user(&app, &admin).await, before);
    let (status, body) = app
        .post(
            &format!("/api/users/{admin}/certificates"),
            &app.admin_token,
            json!({"fingerprint": "4".repeat(64)}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the fingerprint is still free: {body}"
    );
}

// ---------------------------------------------------------------------------------------------
// C6 PUT /api/users/{id}
// ---------------------------------------------------------------------------------------------

async fn update_user_changes_fields(app: TestApp) {
    let minimum = app.role_id("minimum-access").await;
    let created = app.create_user("editable", "secret1", &[&minimum]).await;
    let id = id_of(&created);
    let path = format!("/api/users/{id}");

    // An empty update changes nothing.
    let (status, body) = app.put(&path, &app.admin_token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, created);

    let (status, body) = app
        .put(
            &path,
            &app.admin_token,
            json!({"mqttPublishPrefix": "site/editable", "enforceMFAEnrollment": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], json!(id));
    assert_eq!(body["username"], "editable");
    assert_eq!(body["mqttPublishPrefix"], "site/editable");
    assert_eq!(body["enforceMFAEnrollment"], true);
    assert_eq!(body["roles"], created["roles"], "roles untouched");
    assert_eq!(get_user(&app, &id).await, body);

    // Absent fields are kept.
    let (status, body) = app
        .put(
            &path,
            &app.admin_token,
            json!({"enforceMFAEnrollment": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["enforceMFAEnrollment"], false);
    assert_eq!(body["mqttPublishPrefix"], "site/editable");

    // null and "" remove the prefix.
    let (status, body) = app
        .put(&path, &app.admin_token, json!({"mqttPublishPrefix": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mqttPublishPrefix"], Value::Null);
    assert_eq!(get_user(&app, &id).await["mqttPublishPrefix"], Value::Null);
    app.put(
        &path,
        &app.admin_token,
        json!({"mqttPublishPrefix": "again/set"}),
    )
    .await;
    let (status, body) = app
        .put(&path, &app.admin_token, json!({"mqttPublishPrefix": ""}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mqttPublishPrefix"], Value::Null);

    // Grant types and identity provider decide whether the password logs in.
    let (status, body) = app
        .put(
            &path,
            &app.admin_token,
            json!({"grantTypes": [{"method": "certificate", "isRequired": true}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["grantTypes"],
        json!([{"method": "certificate", "isRequired": true}])
    );
    assert_eq!(
        login_status(&app, "editable", "secret1").await,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = app
        .put(
            &path,
            &app.admin_token,
            json!({"grantTypes": [{"method": "password", "isRequired": false}], "identityProvider": "ldap"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["identityProvider"], "ldap");
    assert_eq!(
        login_status(&app, "editable", "secret1").await,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = app
        .put(
            &path,
            &app.admin_token,
            json!({"identityProvider": "local"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["identityProvider"], "local");
    app.login("editable", "secret1").await;
    // disableMfa on a user without MFA is harmless.
    let (status, body) = app
        .put(&path, &app.admin_token, json!({"disableMfa": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mfa_is_enrolled"], false);
}

async fn update_user_replaces_roles_and_permissions(app: TestApp) {
    let minimum = app.role_id("minimum-access").await;
    let readers = app
        .create_role(
            "role-readers",
            json!([{"resource": "/api/roles/#", "operation": "read", "context": "http"}]),
        )
        .await;
    let readers_id = id_of(&readers);
    let (status, created) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "shifting", "password": "secret1", "roles": [minimum],
                   "initialPermissions": [{"resource": "shifting/#", "operation": "readWrite", "context": "mqtt"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = id_of(&created);
    let own_id = id_of(held_role(&created, "shifting"));
    let path = format!("/api/users/{id}");
    let token = app.login("shifting", "secret1").await;
    let (status, body) = app.get("/api/roles", &token).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);

    // `roles` replaces the held roles; the own role stays.
    let (status, body) = app
        .put(
            &path,
            &app.admin_token,
            json!({"roles": [minimum, readers_id]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        role_names(&body),
        vec!["minimum-access", "role-readers", "shifting"]
    );
    assert_eq!(id_of(held_role(&body, "shifting")), own_id);
    assert_eq!(app.get("/api/roles", &token).await.0, StatusCode::OK);
    let permissions = session_permissions(&app, &token).await;
    assert!(permissions.contains(&triple("/api/roles/#", "read", "http")));
    assert!(permissions.contains(&triple("shifting/#", "readWrite", "mqtt")));

    let (status, body) = app
        .put(&path, &app.admin_token, json!({"roles": [minimum]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(role_names(&body), vec!["minimum-access", "shifting"]);
    let (status, answer) = app.get("/api/roles", &token).await;
    assert_error(status, &answer, StatusCode::FORBIDDEN);

    // `permissions` replaces the direct permissions, in the same own role.
    let (status, body) = app
        .put(
            &path,
            &app.admin_token,
            json!({"permissions": [
                {"resource": "/api/listUsers", "operation": "read", "context": "http"},
                {"resource": "other/+", "operation": "read", "context": "mqtt"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let own = held_role(&body, "shifting");
    assert_eq!(id_of(own), own_id);
    assert_eq!(own["autoGenerated"], true);
    assert_eq!(
        triples(&own["permissions"]),
        vec![
            triple("/api/listUsers", "read", "http"),
            triple("other/+", "read", "mqtt")
        ]
    );
    assert_eq!(role_names(&body), vec!["minimum-access", "shifting"]);
    let permissions = session_permissions(&app, &token).await;
    assert!(!permissions.contains(&triple("shifting/#", "readWrite", "mqtt")));
    assert!(permissions.contains(&triple("other/+", "read", "mqtt")));
    assert_eq!(app.get("/api/listUsers", &token).await.0, StatusCode::OK);

    // `roles: []` drops every shared role but keeps the own role.
    let (status, body) = app.put(&path, &app.admin_token, json!({"roles": []})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(role_names(&body), vec!["shifting"]);

    // A user without an own role gets one from `permissions`.
    let plain = app.create_user("no-own-role", "secret1", &[&minimum]).await;
    assert_eq!(role_names(&plain), vec!["minimum-access"]);
    let (status, body) = app
        .put(
            &format!("/api/users/{}", id_of(&plain)),
            &app.admin_token,
            json!({"permissions": [{"resource": "/api/roles/#", "operation": "read", "context": "http"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(role_names(&body), vec!["minimum-access", "no-own-role"]);
    let own = held_role(&body, "no-own-role");
    assert_eq!(own["autoGenerated"], true);
    assert_eq!(own["isShared"], false);
    let plain_token = app.login("no-own-role", "secret1").await;
    assert_eq!(app.get("/api/roles", &plain_token).await.0, StatusCode::OK);
}

async fn update_user_renames_user_and_own_role(app: TestApp) {
    let (status, created) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "old-name", "password": "secret1",
                   "initialPermissions": [{"resource": "old/#", "operation": "read", "context": "mqtt"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = id_of(&created);
    let own_id = id_of(held_role(&created, "old-name"));
    app.create_user("other-name", "secret2", &[]).await;
    let path = format!("/api/users/{id}");

    // Taken names conflict and change nothing.
    for taken in ["other-name", "admin"] {
        let (status, body) = app
            .put(&path, &app.admin_token, json!({"username": taken}))
            .await;
        assert_error(status, &body, StatusCode::CONFLICT);
    }
    assert_eq!(get_user(&app, &id).await, created);

    let (status, body) = app
        .put(&path, &app.admin_token, json!({"username": "new-name"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], json!(id));
    assert_eq!(body["username"], "new-name");
    assert_eq!(role_names(&body), vec!["new-name"]);
    assert_eq!(id_of(held_role(&body, "new-name")), own_id);
    let (status, role) = app
        .get(&format!("/api/roles/{own_id}"), &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{role}");
    assert_eq!(role["name"], "new-name");
    assert_eq!(
        triples(&role["permissions"]),
        vec![triple("old/#", "read", "mqtt")]
    );
    app.login("new-name", "secret1").await;
    assert_eq!(
        login_status(&app, "old-name", "secret1").await,
        StatusCode::UNAUTHORIZED
    );
    let names = all_usernames(&app).await;
    assert!(names.contains(&"new-name".to_owned()) && !names.contains(&"old-name".to_owned()));
    // The old name is free again.
    app.create_user("old-name", "secret3", &[]).await;
    // Renaming to its own name is not a conflict.
    let (status, body) = app
        .put(&path, &app.admin_token, json!({"username": "new-name"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(role_names(&body), vec!["new-name"]);
    // Renamed and given permissions at once: the new own role has the new name.
    let late = app.create_user("late-owner", "secret1", &[]).await;
    let (status, body) = app
        .put(
            &format!("/api/users/{}", id_of(&late)),
            &app.admin_token,
            json!({"username": "late-owner-2",
                   "permissions": [{"resource": "late/#", "operation": "read", "context": "mqtt"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "late-owner-2");
    assert_eq!(role_names(&body), vec!["late-owner-2"]);
    let own = held_role(&body, "late-owner-2");
    assert_eq!(own["autoGenerated"], true);
    assert_eq!(
        triples(&own["permissions"]),
        vec![triple("late/#", "read", "mqtt")]
    );
}

async fn update_user_resets_the_password(app: TestApp) {
    let user = app.create_user("forgetful", "secret1", &[]).await;
    let path = format!("/api/users/{}", id_of(&user));
    let (status, body) = app
        .put(&path, &app.admin_token, json!({"password": "abc"}))
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "password", "{body}");
    let (status, body) = app
        .put(&path, &app.admin_token, json!({"password": ""}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    app.login("forgetful", "secret1").await;
    assert_eq!(
        login_status(&app, "forgetful", "abc").await,
        StatusCode::UNAUTHORIZED
    );
    // A refused reset with other changes applies none of them.
    let (status, body) = app
        .put(
            &path,
            &app.admin_token,
            json!({"password": "abc", "mqttPublishPrefix": "p/q", "username": "renamed-forgetful"}),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let after = get_user(&app, &id_of(&user)).await;
    assert_eq!(after["username"], "forgetful");
    assert_eq!(after["mqttPublishPrefix"], Value::Null);

    let (status, body) = app
        .put(&path, &app.admin_token, json!({"password": "reset-pass"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "forgetful");
    app.login("forgetful", "reset-pass").await;
    assert_eq!(
        login_status(&app, "forgetful", "secret1").await,
        StatusCode::UNAUTHORIZED
    );
}

async fn update_user_rejects_bad_input(app: TestApp) {
    let minimum = app.role_id("minimum-access").await;
    let (status, created) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "steady", "password": "secret1", "roles": [minimum],
                   "mqttPublishPrefix": "steady/out",
                   "initialPermissions": [{"resource": "steady/#", "operation": "read", "context": "mqtt"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = id_of(&created);
    let path = format!("/api/users/{id}");
    let unknown = random_id();
    let cases = [
        (json!({"username": "x"}), Some("username")),
        (json!({"username": "bad name"}), Some("username")),
        (json!({"username": "_steady"}), Some("username")),
        (
            json!({"mqttPublishPrefix": "a/+"}),
            Some("mqttPublishPrefix"),
        ),
        (json!({"mqttPublishPrefix": "#"}), Some("mqttPublishPrefix")),
        (
            json!({"identityProvider": "github"}),
            Some("identityProvider"),
        ),
        (json!({"grantTypes": []}), Some("grantTypes")),
        (
            json!({"grantTypes": [{"method": "certificate", "isRequired": false}, {"method": "certificate", "isRequired": true}]}),
            Some("grantTypes"),
        ),
        (json!({"roles": [unknown]}), Some("roles")),
        (json!({"roles": [minimum, "not-a-uuid"]}), Some("roles")),
        (json!({"roles": [minimum, unknown]}), Some("roles")),
        (
            json!({"permissions": [
                {"resource": "dup/#", "operation": "read", "context": "mqtt"},
                {"resource": "dup/#", "operation": "write", "context": "mqtt"}]}),
            None,
        ),
        (
            json!({"permissions": [{"resource": "x", "operation": "fly", "context": "mqtt"}]}),
            None,
        ),
        (json!({"username": 7}), None),
        (json!({"roles": minimum}), None),
        (json!({"enforceMFAEnrollment": "yes"}), None),
        (
            json!({"grantTypes": [{"method": "sms", "isRequired": false}]}),
            None,
        ),
        (json!({"permissions": {"resource": "x"}}), None),
        (json!({"mqttPublishPrefix": ["a"]}), None),
        // A bad field spoils the good ones next to it.
        (
            json!({"enforceMFAEnrollment": true, "mqttPublishPrefix": "x/y", "roles": [unknown]}),
            Some("roles"),
        ),
        (
            json!({"enforceMFAEnrollment": true, "roles": [], "username": "!!"}),
            Some("username"),
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.put(&path, &app.admin_token, body.clone()).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST);
        if let Some(field) = field {
            assert_eq!(answer["field"], field, "{body}: {answer}");
        }
        assert_unchanged(&created, &get_user(&app, &id).await, &body.to_string());
    }
    let (status, answer) = app
        .send_raw(
            Method::PUT,
            &path,
            &app.admin_token,
            "application/json",
            b"{\"username\": ".to_vec(),
        )
        .await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST);
    assert_unchanged(&created, &get_user(&app, &id).await, "malformed JSON");
    app.login("steady", "secret1").await;
    // The login added a token; compare against the user as it is now.
    let logged_in = get_user(&app, &id).await;
    // The body is an object: arrays (even empty ones) are the wrong type and change nothing.
    for body in [json!([]), json!(["renamed-steady"])] {
        let (status, answer) = app.put(&path, &app.admin_token, body.clone()).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST);
        assert_unchanged(&logged_in, &get_user(&app, &id).await, &body.to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// C7 DELETE /api/users/{id}
// ---------------------------------------------------------------------------------------------

async fn delete_user_removes_user_own_role_and_tokens(app: TestApp) {
    let minimum = app.role_id("minimum-access").await;
    let (status, created) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "doomed", "password": "secret1", "roles": [minimum],
                   "certificates": [{"fingerprint": "5".repeat(64)}],
                   "initialPermissions": [{"resource": "doomed/#", "operation": "read", "context": "mqtt"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let survivor = app.create_user("survivor", "secret1", &[&minimum]).await;
    let survivor_token = app.login("survivor", "secret1").await;
    let id = id_of(&created);
    let own_id = id_of(held_role(&created, "doomed"));
    let token = app.login("doomed", "secret1").await;
    assert_eq!(app.get("/api/session", &token).await.0, StatusCode::OK);

    let (status, body) = app
        .delete(&format!("/api/users/{id}"), &app.admin_token, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);

    let (status, body) = app.get(&format!("/api/users/{id}"), &app.admin_token).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = app.get("/api/session", &token).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_status(&app, "doomed", "secret1").await,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = app
        .get(&format!("/api/roles/{own_id}"), &app.admin_token)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert!(!all_usernames(&app).await.contains(&"doomed".to_owned()));
    // The shared role and the other user are untouched.
    let (status, _) = app
        .get(&format!("/api/roles/{minimum}"), &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        get_user(&app, &id_of(&survivor)).await["roles"],
        survivor["roles"]
    );
    assert_eq!(
        app.get("/api/session", &survivor_token).await.0,
        StatusCode::OK
    );
    // Its certificate is free again, and its name.
    let (status, body) = app
        .post(
            &format!("/api/users/{}/certificates", id_of(&survivor)),
            &app.admin_token,
            json!({"fingerprint": "5".repeat(64)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.create_user("doomed", "secret2", &[]).await;

    // Deleting again: not found.
    let (status, body) = app
        .delete(&format!("/api/users/{id}"), &app.admin_token, None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);

    // A caller cannot delete itself.
    let admin = admin_id(&app).await;
    let admin_before = get_user(&app, &admin).await;
    let (status, body) = app
        .delete(&format!("/api/users/{admin}"), &app.admin_token, None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(get_user(&app, &admin).await, admin_before);
    app.login("admin", ADMIN_PASSWORD).await;
}

// ---------------------------------------------------------------------------------------------
// C10, C11 certificates of a user
// ---------------------------------------------------------------------------------------------

async fn certificates_are_bound_and_unbound(app: TestApp) {
    let first = app.create_user("cert-first", "secret1", &[]).await;
    let second = app.create_user("cert-second", "secret1", &[]).await;
    let (first_id, second_id) = (id_of(&first), id_of(&second));
    let first_path = format!("/api/users/{first_id}/certificates");
    let second_path = format!("/api/users/{second_id}/certificates");
    let sha256 = "AB:CD:".repeat(16);
    let sha256 = sha256.trim_end_matches(':');
    let normalised = "abcd".repeat(16);
    let sha1 = "F".repeat(40);

    let (status, body) = app
        .post(
            &first_path,
            &app.admin_token,
            json!({"fingerprint": sha256}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post(&first_path, &app.admin_token, json!({"fingerprint": sha1}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user = get_user(&app, &first_id).await;
    let mut fingerprints: Vec<&str> = user["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["fingerprint"].as_str().unwrap())
        .collect();
    fingerprints.sort_unstable();
    let expected_sha1 = "f".repeat(40);
    let mut expected = vec![normalised.as_str(), expected_sha1.as_str()];
    expected.sort_unstable();
    assert_eq!(fingerprints, expected);
    for certificate in user["certificates"].as_array().unwrap() {
        assert!(certificate["createdAt"].as_str().unwrap().ends_with('Z'));
        assert_eq!(certificate["expiresAt"], Value::Null);
    }

    // Bound once only: again to the same user, or to another, in any spelling.
    let first_before = get_user(&app, &first_id).await;
    for (path, fingerprint) in [
        (&first_path, normalised.clone()),
        (&second_path, sha256.to_owned()),
        (&second_path, normalised.to_uppercase()),
    ] {
        let (status, body) = app
            .post(path, &app.admin_token, json!({"fingerprint": fingerprint}))
            .await;
        assert_error(status, &body, StatusCode::CONFLICT);
    }
    assert_eq!(get_user(&app, &first_id).await, first_before);
    assert_eq!(get_user(&app, &second_id).await["certificates"], json!([]));

    // Unbinding from a user that does not hold it is 404 and leaves the holder alone.
    let (status, body) = app
        .delete(
            &second_path,
            &app.admin_token,
            Some(json!({"fingerprint": normalised})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(get_user(&app, &first_id).await, first_before);

    // Unbind with another spelling of the same fingerprint.
    let (status, body) = app
        .delete(
            &first_path,
            &app.admin_token,
            Some(json!({"fingerprint": normalised.to_uppercase()})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let user = get_user(&app, &first_id).await;
    assert_eq!(user["certificates"].as_array().unwrap().len(), 1, "{user}");
    assert_eq!(user["certificates"][0]["fingerprint"], expected_sha1);
    let (status, body) = app
        .delete(
            &first_path,
            &app.admin_token,
            Some(json!({"fingerprint": normalised})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    // Now free: another user may bind it.
    let (status, body) = app
        .post(
            &second_path,
            &app.admin_token,
            json!({"fingerprint": sha256}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        get_user(&app, &second_id).await["certificates"][0]["fingerprint"],
        normalised
    );
}

async fn certificate_endpoints_reject_bad_input(app: TestApp) {
    let user = app.create_user("cert-strict", "secret1", &[]).await;
    let id = id_of(&user);
    let path = format!("/api/users/{id}/certificates");
    app.post(
        &path,
        &app.admin_token,
        json!({"fingerprint": "6".repeat(64)}),
    )
    .await;
    let before = get_user(&app, &id).await;
    assert_eq!(before["certificates"].as_array().unwrap().len(), 1);
    for method in [Method::POST, Method::DELETE] {
        for fingerprint in [
            json!("xyz"),
            json!(""),
            json!("6".repeat(63)),
            json!("6".repeat(65)),
            json!("g".repeat(64)),
            json!("6".repeat(50)),
        ] {
            let (status, body) = app
                .request(
                    method.clone(),
                    &path,
                    Some(&app.admin_token),
                    Some(json!({"fingerprint": fingerprint})),
                )
                .await;
            assert_error(status, &body, StatusCode::BAD_REQUEST);
            assert_eq!(
                body["field"], "fingerprint",
                "{method} {fingerprint}: {body}"
            );
        }
        for bad in [
            json!({}),
            json!({"fingerprint": 42}),
            json!({"fingerprint": ["6".repeat(64)]}),
            json!("6".repeat(64)),
        ] {
            let (status, body) = app
                .request(method.clone(), &path, Some(&app.admin_token), Some(bad))
                .await;
            assert_error(status, &body, StatusCode::BAD_REQUEST);
        }
        let (status, body) = app
            .send_raw(
                method.clone(),
                &path,
                &app.admin_token,
                "application/json",
                b"{\"fingerprint\": \"66".to_vec(),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(
            get_user(&app, &id).await,
            before,
            "{method} changed the user"
        );
    }
    // Unknown user, valid fingerprint.
    let unknown = random_id();
    let (status, body) = app
        .post(
            &format!("/api/users/{unknown}/certificates"),
            &app.admin_token,
            json!({"fingerprint": "7".repeat(64)}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = app
        .delete(
            &format!("/api/users/{unknown}/certificates"),
            &app.admin_token,
            Some(json!({"fingerprint": "6".repeat(64)})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(get_user(&app, &id).await, before);
    // The fingerprint refused for the unknown user is still free.
    let (status, body) = app
        .post(
            &path,
            &app.admin_token,
            json!({"fingerprint": "7".repeat(64)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

// ---------------------------------------------------------------------------------------------
// C12, C13 roles of a user
// ---------------------------------------------------------------------------------------------

async fn roles_are_given_and_taken(app: TestApp) {
    let (id, token) = minimal_user(&app, "role-holder", "secret1").await;
    let path = format!("/api/users/{id}/roles");
    let readers = app
        .create_role(
            "user-listers",
            json!([{"resource": "/api/listUsers", "operation": "read", "context": "http"},
                   {"resource": "plant/#", "operation": "read", "context": "mqtt"}]),
        )
        .await;
    let readers_id = id_of(&readers);
    let (status, body) = app.get("/api/listUsers", &token).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);

    let (status, body) = app
        .post(&path, &app.admin_token, json!({"roleId": readers_id}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Idempotent.
    let (status, body) = app
        .post(&path, &app.admin_token, json!({"roleId": readers_id}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user = get_user(&app, &id).await;
    assert_eq!(role_names(&user), vec!["minimum-access", "user-listers"]);
    assert_eq!(
        triples(&held_role(&user, "user-listers")["permissions"]),
        vec![
            triple("/api/listUsers", "read", "http"),
            triple("plant/#", "read", "mqtt")
        ]
    );
    let permissions = session_permissions(&app, &token).await;
    assert!(permissions.contains(&triple("/api/listUsers", "read", "http")));
    assert!(permissions.contains(&triple("plant/#", "read", "mqtt")));
    assert_eq!(app.get("/api/listUsers", &token).await.0, StatusCode::OK);

    // The admin role can be given too.
    let admin_role = app.role_id("connectware-admin").await;
    let (status, body) = app
        .post(&path, &app.admin_token, json!({"roleId": admin_role}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(app.get("/api/roles", &token).await.0, StatusCode::OK);
    let (status, body) = app
        .delete(&path, &app.admin_token, Some(json!({"roleId": admin_role})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = app.get("/api/roles", &token).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);

    // Take it away.
    let (status, body) = app
        .delete(&path, &app.admin_token, Some(json!({"roleId": readers_id})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
    let user = get_user(&app, &id).await;
    assert_eq!(role_names(&user), vec!["minimum-access"]);
    let permissions = session_permissions(&app, &token).await;
    assert!(!permissions.contains(&triple("plant/#", "read", "mqtt")));
    let (status, body) = app.get("/api/listUsers", &token).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    // Not held any more: 404, nothing changes.
    let (status, body) = app
        .delete(&path, &app.admin_token, Some(json!({"roleId": readers_id})))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(get_user(&app, &id).await, user);
    // The role itself still exists.
    let (status, _) = app
        .get(&format!("/api/roles/{readers_id}"), &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn role_endpoints_reject_bad_input(app: TestApp) {
    let minimum = app.role_id("minimum-access").await;
    let (status, created) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "role-strict", "password": "secret1", "roles": [minimum],
                   "initialPermissions": [{"resource": "strict/#", "operation": "read", "context": "mqtt"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = id_of(&created);
    let own_id = id_of(held_role(&created, "role-strict"));
    let path = format!("/api/users/{id}/roles");
    let spare = app.create_role("spare-role", json!([])).await;
    let spare_id = id_of(&spare);

    // The own role cannot be taken away this way.
    let (status, body) = app
        .delete(&path, &app.admin_token, Some(json!({"roleId": own_id})))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "roleId", "{body}");
    assert_eq!(get_user(&app, &id).await, created);

    for method in [Method::POST, Method::DELETE] {
        // Unknown role: 404.
        let (status, body) = app
            .request(
                method.clone(),
                &path,
                Some(&app.admin_token),
                Some(json!({"roleId": random_id()})),
            )
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        // Unknown user with a real role: 404.
        let (status, body) = app
            .request(
                method.clone(),
                &format!("/api/users/{}/roles", random_id()),
                Some(&app.admin_token),
                Some(json!({"roleId": spare_id})),
            )
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        // Not a UUID.
        for role_id in ["spare-role", "", "1234"] {
            let (status, body) = app
                .request(
                    method.clone(),
                    &path,
                    Some(&app.admin_token),
                    Some(json!({"roleId": role_id})),
                )
                .await;
            assert_error(status, &body, StatusCode::BAD_REQUEST);
            assert_eq!(body["field"], "roleId", "{method} {role_id:?}: {body}");
        }
        // Wrong shapes.
        for bad in [
            json!({}),
            json!({"roleId": 17}),
            json!({"roleId": [spare_id]}),
            json!({"role": spare_id}),
        ] {
            let (status, body) = app
                .request(method.clone(), &path, Some(&app.admin_token), Some(bad))
                .await;
            assert_error(status, &body, StatusCode::BAD_REQUEST);
        }
        let (status, body) = app
            .send_raw(
                method.clone(),
                &path,
                &app.admin_token,
                "application/json",
                format!("{{\"roleId\": \"{spare_id}\"").into_bytes(),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(
            get_user(&app, &id).await,
            created,
            "{method} changed the user"
        );
    }
    // The spare role was never given.
    let (status, body) = app
        .delete(&path, &app.admin_token, Some(json!({"roleId": spare_id})))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    // The body is an object: a positional array is the wrong type, and gives nothing.
    let (status, body) = app.post(&path, &app.admin_token, json!([spare_id])).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(
        get_user(&app, &id).await,
        created,
        "an array body gave a role"
    );
}

async fn users_sharing_a_role_all_show_its_permissions(app: TestApp) {
    let role = app
        .create_role(
            "shared-readers",
            json!([{"resource": "plant/#", "operation": "read", "context": "mqtt"}]),
        )
        .await;
    let role_id = role["id"].as_str().unwrap();
    for name in ["sharer-a", "sharer-b", "sharer-c"] {
        app.create_user(name, "secret1", &[role_id]).await;
    }
    let (status, page) = app
        .get(
            "/api/listUsers?usernames=sharer-a,sharer-b,sharer-c",
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let users = page["users"].as_array().unwrap();
    assert_eq!(users.len(), 3);
    for user in users {
        let shared = user["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == role["id"])
            .unwrap_or_else(|| panic!("role missing: {user}"));
        assert_eq!(
            shared["permissions"], role["permissions"],
            "{}",
            user["username"]
        );
    }
}

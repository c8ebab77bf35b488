//! LDAP login (`[ldap]`) against a real OpenLDAP slapd per test (`common::ldap`): first logins
//! create `ldap` users, roles follow the directory's groups (group mode, roles' `ldapGroupDn`) and
//! a roles attribute (attribute mode, role names) at every login, local users stay local, the
//! directory being down is a 503, and the login names cannot inject LDAP filter or DN syntax.
//! Through Connectware's login, ThingsBoard's login and the broker's user hook.

mod common;

use std::time::{Duration, Instant};

use common::ldap::{
    LdapServer, SilentServer, ALICE_PASSWORD, BOB_EMPLOYEE_TYPE, BOB_PASSWORD, CAROL_PASSWORD,
    GROUPS_DN, PEOPLE_DN, PLACEHOLDER_MEMBER, PLANT_ADMINS, PLANT_VIEWERS, ROOT_DN,
};
use common::{assert_error, assert_tb_error, tb_pair, Engine, TestApp, ADMIN_PASSWORD};
use gatehouse::config::Settings;
use gatehouse_core::ratelimit::RateLimit;
use reqwest::StatusCode;
use serde_json::{json, Value};

both_engines!(
    group_members_get_the_roles_mapped_to_their_groups,
    roles_are_synced_from_the_directory_at_every_login,
    attribute_mode_gives_the_roles_the_attribute_names,
    group_and_attribute_roles_add_up,
    wrong_passwords_and_unknown_users_get_the_local_answer,
    local_users_keep_logging_in_locally,
    users_created_as_ldap_users_log_in_through_the_directory,
    directory_down_is_503_and_local_users_still_log_in,
    a_directory_that_never_answers_is_503_within_the_timeout,
    thingsboard_login_works_for_ldap_users,
    ldap_users_cannot_change_their_password_here,
    broker_connect_creates_the_ldap_user_with_its_roles,
    direct_bind_logs_in_with_the_dn_template,
    login_names_cannot_inject_ldap_syntax,
    a_name_found_twice_in_the_directory_logs_in_nobody,
    one_directory_account_is_one_user_whatever_the_case,
);

/// The harness itself, without Gatehouse: the tree, the changes tests make, stop and restart.
#[test]
fn the_test_directory_serves_its_tree_and_takes_changes() {
    let mut ldap = LdapServer::start();
    let alice = LdapServer::user_dn("alice");
    assert!(ldap.can_bind(ROOT_DN, ldap.root_password()));
    assert!(ldap.can_bind(&alice, ALICE_PASSWORD));
    assert!(!ldap.can_bind(&alice, "wrong-pass-1"));
    assert!(ldap.can_bind(&LdapServer::user_dn("bob"), BOB_PASSWORD));
    assert!(ldap.can_bind(&LdapServer::user_dn("carol"), CAROL_PASSWORD));
    let found = ldap.search("(uid=alice)", &["mail"]);
    assert_eq!(
        found.trim(),
        format!("dn: {alice}\nmail: alice@example.org")
    );
    let bob = ldap.search("(uid=bob)", &["employeeType"]);
    assert!(
        bob.contains(&format!("employeeType: {BOB_EMPLOYEE_TYPE}")),
        "{bob}"
    );
    let members = |group: &str| -> Vec<String> {
        ldap.search(&format!("(cn={group})"), &["member"])
            .lines()
            .filter_map(|line| line.strip_prefix("member: "))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        members(PLANT_ADMINS),
        [PLACEHOLDER_MEMBER.to_owned(), alice.clone()]
    );
    assert_eq!(
        members(PLANT_VIEWERS),
        [
            PLACEHOLDER_MEMBER.to_owned(),
            alice.clone(),
            LdapServer::user_dn("bob")
        ]
    );
    // What tests change at run time.
    ldap.remove_member(PLANT_ADMINS, "alice");
    assert_eq!(members(PLANT_ADMINS), [PLACEHOLDER_MEMBER]);
    ldap.add_member(PLANT_ADMINS, "carol");
    assert_eq!(
        members(PLANT_ADMINS),
        [PLACEHOLDER_MEMBER.to_owned(), LdapServer::user_dn("carol")]
    );
    ldap.set_password("alice", "alice-pass-2");
    assert!(!ldap.can_bind(&alice, ALICE_PASSWORD));
    assert!(ldap.can_bind(&alice, "alice-pass-2"));
    ldap.set_employee_types("alice", &["a", "b"]);
    let types = ldap.search("(uid=alice)", &["employeeType"]);
    assert!(
        types.contains("employeeType: a\nemployeeType: b"),
        "{types}"
    );
    ldap.set_employee_types("alice", &[]);
    assert!(!ldap
        .search("(uid=alice)", &["employeeType"])
        .contains("employeeType"));
    ldap.add_user("dave", "dave-pass-1", &["x"]);
    assert!(ldap.can_bind(&LdapServer::user_dn("dave"), "dave-pass-1"));
    // Down, then up again with the same data on the same port.
    ldap.stop();
    assert!(!ldap.can_bind(ROOT_DN, ldap.root_password()));
    ldap.restart();
    assert!(ldap.can_bind(&alice, "alice-pass-2"));
    assert!(ldap
        .log()
        .contains("BIND dn=\"uid=alice,ou=people,dc=example,dc=org\""));
}

/// Connectware's answer to every failed password login.
const BAD_CREDENTIALS: &str = "invalid username or password";
const ADMIN_GROUP_ROLE: &str = "plant-admin";
const VIEWER_GROUP_ROLE: &str = "plant-viewer";
const USER_HOOK: &str = "/api/broker/http/user";
const ACL_HOOK: &str = "/api/broker/http/acl";

/// An `http` permission.
fn http(resource: &str, operation: &str) -> Value {
    json!({"resource": resource, "operation": operation, "context": "http"})
}

/// An `mqtt` permission.
fn mqtt(resource: &str, operation: &str) -> Value {
    json!({"resource": resource, "operation": operation, "context": "mqtt"})
}

/// `[ldap]` for `ldap`: the root DN as service account, users searched under `ou=people`,
/// groups under `ou=groups`, role names in `employeeType`.
fn ldap_config(settings: &mut Settings, ldap: &LdapServer) {
    settings.ldap.url = Some(ldap.url());
    settings.ldap.bind_dn = Some(ROOT_DN.into());
    settings.ldap.bind_password = Some(ldap.root_password().into());
    settings.ldap.user_dn_template = None;
    settings.ldap.search_base = PEOPLE_DN.into();
    settings.ldap.user_attribute = "uid".into();
    settings.ldap.search_filter = Some("(objectClass=inetOrgPerson)".into());
    settings.ldap.roles_attribute = Some("employeeType".into());
    settings.ldap.group_search_base = Some(GROUPS_DN.into());
    settings.ldap.timeout_secs = 5;
}

/// Replaces `app` by one on the same engine with [`ldap_config`], then `adjust`.
async fn with_ldap(app: TestApp, ldap: &LdapServer, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let engine = app.engine;
    app.stop().await;
    spawn_with_ldap(engine, ldap, adjust).await
}

/// An app on `engine` with [`ldap_config`], then `adjust`.
async fn spawn_with_ldap(
    engine: Engine,
    ldap: &LdapServer,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    TestApp::spawn_with(
        engine,
        |settings| {
            ldap_config(settings, ldap);
            adjust(settings);
        },
        None,
    )
    .await
}

/// Direct bind: no service account, the user's DN from a template.
fn direct_bind(settings: &mut Settings) {
    settings.ldap.bind_dn = None;
    settings.ldap.bind_password = None;
    settings.ldap.user_dn_template = Some(format!("uid={{username}},{PEOPLE_DN}"));
}

/// Creates a role mapped to `ldap_group_dn`; returns its id.
async fn mapped_role(
    app: &TestApp,
    name: &str,
    ldap_group_dn: Option<&str>,
    permissions: Value,
) -> String {
    let mut body = json!({"name": name, "permissions": permissions});
    if let Some(dn) = ldap_group_dn {
        body["ldapGroupDn"] = json!(dn);
    }
    let (status, role) = app.post("/api/roles", &app.admin_token, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "create role {body}: {role}");
    if let Some(dn) = ldap_group_dn {
        assert_eq!(role["ldapGroupDn"], json!(dn), "{role}");
    }
    role["id"].as_str().expect("role id").to_owned()
}

/// The two group roles: `plant-admin` for `cn=plant-admins` (written as the directory writes it,
/// may read the caller's session) and `plant-viewer` for `cn=plant-viewers` (written in another
/// case and with blanks after the commas; may change the caller's password and read `plant/#`).
async fn group_roles(app: &TestApp) -> (String, String) {
    let admin = mapped_role(
        app,
        ADMIN_GROUP_ROLE,
        Some(&LdapServer::group_dn(PLANT_ADMINS)),
        json!([http("/api/session", "read")]),
    )
    .await;
    let viewer = mapped_role(
        app,
        VIEWER_GROUP_ROLE,
        Some("CN=Plant-Viewers, OU=groups, dc=example,dc=org"),
        json!([
            http("/api/users/change-password", "write"),
            mqtt("plant/#", "read")
        ]),
    )
    .await;
    (admin, viewer)
}

/// The user `username` as C5 shows it, if it exists (found through C2).
async fn find_user(app: &TestApp, username: &str) -> Option<Value> {
    let (status, page) = app
        .get(
            &format!("/api/listUsers?usernames={username}"),
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "listUsers: {page}");
    let users = page["users"].as_array().expect("users");
    assert!(users.len() <= 1, "one user per name: {page}");
    let id = users.first()?["id"].as_str().expect("user id").to_owned();
    let (status, user) = app.get(&format!("/api/users/{id}"), &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "GET user {id}: {user}");
    Some(user)
}

/// The user `username`; panics if it does not exist.
async fn user(app: &TestApp, username: &str) -> Value {
    find_user(app, username)
        .await
        .unwrap_or_else(|| panic!("no user {username}"))
}

/// The names of the roles `username` holds, in the answer's order (by name).
async fn role_names(app: &TestApp, username: &str) -> Vec<String> {
    names_of_roles(&user(app, username).await)
}

fn names_of_roles(user: &Value) -> Vec<String> {
    user["roles"]
        .as_array()
        .unwrap_or_else(|| panic!("roles of {user}"))
        .iter()
        .map(|role| role["name"].as_str().expect("role name").to_owned())
        .collect()
}

/// Every username, in order.
async fn all_usernames(app: &TestApp) -> Vec<String> {
    let (status, page) = app
        .get("/api/listUsers?rowsPerPage=1000", &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::OK, "listUsers: {page}");
    page["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|user| user["username"].as_str().expect("username").to_owned())
        .collect()
}

/// Asserts that the user is an `ldap` user created by a login.
fn assert_ldap_user(user: &Value) {
    assert_eq!(user["identityProvider"], "ldap", "{user}");
    assert_eq!(user["autoGenerated"], true, "{user}");
}

/// Asserts the 401 of a failed password login.
async fn assert_refused(app: &TestApp, username: &str, password: &str) {
    let (status, body) = app.try_login(username, password).await;
    let message = assert_error(status, &body, StatusCode::UNAUTHORIZED);
    assert_eq!(message, BAD_CREDENTIALS, "login of {username:?}");
}

/// Asserts the 503 of a login while the directory cannot be asked.
async fn assert_directory_unavailable(app: &TestApp, username: &str, password: &str) {
    let (status, body) = app.try_login(username, password).await;
    let message = assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        message.contains("LDAP"),
        "the 503 says what is unavailable: {message}"
    );
    assert!(!message.contains(password), "{message}");
}

/// Sends `body` to a broker hook as go-auth does (POST JSON); returns the decision.
async fn hook(app: &TestApp, path: &str, body: Value) -> bool {
    let (status, answer) = app
        .request(reqwest::Method::POST, path, None, Some(body))
        .await;
    match status {
        StatusCode::OK => {
            assert_eq!(answer, json!({"ok": true}), "allow answer");
            true
        }
        StatusCode::FORBIDDEN => {
            assert_eq!(answer["ok"], false, "deny answer: {answer}");
            false
        }
        other => panic!("unexpected hook answer {other}: {answer}"),
    }
}

async fn group_members_get_the_roles_mapped_to_their_groups(app: TestApp) {
    let ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |_| {}).await;
    group_roles(&app).await;
    // Near misses that must not match: a group whose DN starts like alice's, a role named like
    // her group without a mapping, and a role of another group.
    mapped_role(
        &app,
        "plant-admins-old",
        Some("cn=plant-admins-old,ou=groups,dc=example,dc=org"),
        json!([]),
    )
    .await;
    mapped_role(&app, PLANT_ADMINS, None, json!([])).await;
    // The same group, spelled differently.
    mapped_role(
        &app,
        "plant-admins-shouting",
        Some("CN=Plant-Admins, OU=groups,dc=example,dc=org"),
        json!([]),
    )
    .await;
    mapped_role(
        &app,
        "other-group",
        Some("cn=plant-admins,ou=other,dc=example,dc=org"),
        json!([]),
    )
    .await;
    assert_eq!(find_user(&app, "alice").await, None, "no user before login");

    let (status, login) = app.try_login("alice", ALICE_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "LDAP login of alice: {login}");
    let token = login["token"].as_str().expect("token").to_owned();
    let permissions = login["permissions"].as_array().expect("permissions");
    for expected in [
        http("/api/session", "read"),
        http("/api/users/change-password", "write"),
        mqtt("plant/#", "read"),
    ] {
        assert!(
            permissions.iter().any(|permission| {
                permission["resource"] == expected["resource"]
                    && permission["operation"] == expected["operation"]
                    && permission["context"] == expected["context"]
            }),
            "{expected} in {login}"
        );
    }
    assert_eq!(
        permissions.len(),
        3,
        "only the group roles' permissions: {login}"
    );
    let (status, session) = app.get("/api/session", &token).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["username"], "alice");

    let alice = user(&app, "alice").await;
    assert_ldap_user(&alice);
    assert_eq!(
        names_of_roles(&alice),
        [ADMIN_GROUP_ROLE, "plant-admins-shouting", VIEWER_GROUP_ROLE],
        "{alice}"
    );
    // A second login finds the same user.
    app.login("alice", ALICE_PASSWORD).await;
    assert_eq!(user(&app, "alice").await["id"], alice["id"]);
    assert_eq!(all_usernames(&app).await, ["admin", "alice"]);

    app.login("bob", BOB_PASSWORD).await;
    let bob = user(&app, "bob").await;
    assert_ldap_user(&bob);
    assert_eq!(names_of_roles(&bob), [VIEWER_GROUP_ROLE], "{bob}");

    // carol is in no group: she logs in, with no role and no permission.
    let (status, login) = app.try_login("carol", CAROL_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "LDAP login of carol: {login}");
    assert_eq!(login["permissions"], json!([]), "{login}");
    let carol = user(&app, "carol").await;
    assert_ldap_user(&carol);
    assert_eq!(names_of_roles(&carol), Vec::<String>::new(), "{carol}");
}

async fn roles_are_synced_from_the_directory_at_every_login(app: TestApp) {
    let ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |_| {}).await;
    group_roles(&app).await;
    let both = [ADMIN_GROUP_ROLE, VIEWER_GROUP_ROLE];
    app.login("alice", ALICE_PASSWORD).await;
    assert_eq!(role_names(&app, "alice").await, both);

    ldap.remove_member(PLANT_ADMINS, "alice");
    // Nothing changes until she logs in again.
    assert_eq!(role_names(&app, "alice").await, both);
    app.login("alice", ALICE_PASSWORD).await;
    assert_eq!(role_names(&app, "alice").await, [VIEWER_GROUP_ROLE]);

    ldap.add_member(PLANT_ADMINS, "alice");
    app.login("alice", ALICE_PASSWORD).await;
    assert_eq!(role_names(&app, "alice").await, both);

    // A role mapped later is given at the next login.
    ldap.add_member(PLANT_ADMINS, "carol");
    app.login("carol", CAROL_PASSWORD).await;
    assert_eq!(role_names(&app, "carol").await, [ADMIN_GROUP_ROLE]);
    let late = mapped_role(
        &app,
        "late",
        Some("cn=plant-admins,ou=groups,dc=example,dc=org"),
        json!([]),
    )
    .await;
    app.login("carol", CAROL_PASSWORD).await;
    assert_eq!(role_names(&app, "carol").await, ["late", ADMIN_GROUP_ROLE]);
    let (status, body) = app
        .put(
            &format!("/api/roles/{late}"),
            &app.admin_token,
            json!({"ldapGroupDn": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "unmap the role: {body}");

    // Observed design: the directory is the only source of an LDAP user's roles. A role given
    // by hand (C12) holds until the next login, which replaces the user's roles with the
    // directory's.
    let manual = mapped_role(&app, "manual", None, json!([])).await;
    let alice_id = user(&app, "alice").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, body) = app
        .post(
            &format!("/api/users/{alice_id}/roles"),
            &app.admin_token,
            json!({"roleId": manual}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "give a role by hand: {body}");
    assert_eq!(
        role_names(&app, "alice").await,
        ["manual", ADMIN_GROUP_ROLE, VIEWER_GROUP_ROLE]
    );
    app.login("alice", ALICE_PASSWORD).await;
    assert_eq!(role_names(&app, "alice").await, both, "replaced at login");
    app.login("carol", CAROL_PASSWORD).await;
    assert_eq!(
        role_names(&app, "carol").await,
        [ADMIN_GROUP_ROLE],
        "unmapped"
    );

    // A password changed in the directory counts at once: nothing is cached here.
    ldap.set_password("alice", "alice-pass-2");
    assert_refused(&app, "alice", ALICE_PASSWORD).await;
    app.login("alice", "alice-pass-2").await;
}

async fn attribute_mode_gives_the_roles_the_attribute_names(app: TestApp) {
    let ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |settings| {
        settings.ldap.group_search_base = None
    })
    .await;
    mapped_role(
        &app,
        BOB_EMPLOYEE_TYPE,
        None,
        json!([mqtt("plant/#", "write")]),
    )
    .await;
    mapped_role(&app, "ldap-viewers", None, json!([])).await;
    // Group mode is off: the mapping of bob's group gives nothing.
    mapped_role(
        &app,
        VIEWER_GROUP_ROLE,
        Some(&LdapServer::group_dn(PLANT_VIEWERS)),
        json!([]),
    )
    .await;
    // A local user with direct permissions has an own role named after it.
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "eve", "password": "eve-local-pass-1",
                   "initialPermissions": [mqtt("#", "readWrite")]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, login) = app.try_login("bob", BOB_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "LDAP login of bob: {login}");
    let bob = user(&app, "bob").await;
    assert_ldap_user(&bob);
    assert_eq!(names_of_roles(&bob), [BOB_EMPLOYEE_TYPE], "{bob}");

    // Changed in the directory: the next login follows. Names of no role are ignored, and a
    // user's own role is never given by name.
    ldap.set_employee_types(
        "bob",
        &["ldap-viewers", "no-such-role", "eve", "LDAP-Operators"],
    );
    app.login("bob", BOB_PASSWORD).await;
    assert_eq!(role_names(&app, "bob").await, ["ldap-viewers"]);
    ldap.set_employee_types("bob", &[]);
    app.login("bob", BOB_PASSWORD).await;
    assert_eq!(role_names(&app, "bob").await, Vec::<String>::new());
    // alice, in both groups but without the attribute, gets nothing.
    app.login("alice", ALICE_PASSWORD).await;
    assert_eq!(role_names(&app, "alice").await, Vec::<String>::new());
}

async fn group_and_attribute_roles_add_up(app: TestApp) {
    let ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |_| {}).await;
    group_roles(&app).await;
    mapped_role(&app, BOB_EMPLOYEE_TYPE, None, json!([])).await;
    app.login("bob", BOB_PASSWORD).await;
    assert_eq!(
        role_names(&app, "bob").await,
        [BOB_EMPLOYEE_TYPE, VIEWER_GROUP_ROLE]
    );
    // Named by the attribute and mapped to a group of hers: given once.
    ldap.set_employee_types("alice", &[ADMIN_GROUP_ROLE]);
    app.login("alice", ALICE_PASSWORD).await;
    assert_eq!(
        role_names(&app, "alice").await,
        [ADMIN_GROUP_ROLE, VIEWER_GROUP_ROLE]
    );
}

async fn wrong_passwords_and_unknown_users_get_the_local_answer(app: TestApp) {
    let ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |_| {}).await;
    // The local answer, for comparison.
    assert_refused(&app, "admin", "not-the-admin-password").await;

    assert_refused(&app, "alice", "wrong-pass-1").await;
    assert_refused(&app, "alice", BOB_PASSWORD).await;
    assert_refused(&app, "mallory", "mallory-pass-1").await;
    // Another user's entry, bound with its own password, does not open alice's account.
    assert_refused(&app, "alice", ldap.root_password()).await;
    // An empty password would be an unauthenticated bind, which LDAP accepts: refused before.
    let (status, body) = app.try_login("alice", "").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    // Failed logins create nobody.
    assert_eq!(all_usernames(&app).await, ["admin"]);
    // Then the right password works.
    app.login("alice", ALICE_PASSWORD).await;
    assert_refused(&app, "alice", "wrong-pass-1").await;
}

async fn local_users_keep_logging_in_locally(app: TestApp) {
    let ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |_| {}).await;
    group_roles(&app).await;
    let minimum = app.role_id("minimum-access").await;
    let dave = app
        .create_user("dave", "dave-local-pass-1", &[&minimum])
        .await;
    ldap.add_user("dave", "dave-ldap-pass-1", &[]);
    ldap.add_member(PLANT_ADMINS, "dave");
    ldap.add_user("admin", "admin-ldap-pass-1", &[]);
    assert!(ldap.can_bind(&LdapServer::user_dn("dave"), "dave-ldap-pass-1"));

    app.login("dave", "dave-local-pass-1").await;
    assert_refused(&app, "dave", "dave-ldap-pass-1").await;
    assert_refused(&app, "admin", "admin-ldap-pass-1").await;
    app.login("admin", ADMIN_PASSWORD).await;
    // Nothing of the directory rubbed off on the local user.
    let now = user(&app, "dave").await;
    assert_eq!(now["id"], dave["id"]);
    assert_eq!(now["identityProvider"], "local", "{now}");
    assert_eq!(names_of_roles(&now), ["minimum-access"], "{now}");
}

async fn users_created_as_ldap_users_log_in_through_the_directory(app: TestApp) {
    let ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |_| {}).await;
    group_roles(&app).await;
    // An administrator creates carol as an LDAP user before her first login, with a role and
    // a password of its own.
    let manual = mapped_role(&app, "manual", None, json!([])).await;
    let (status, created) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "carol", "identityProvider": "ldap",
                   "password": "carol-local-pass-1", "roles": [manual]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["identityProvider"], "ldap");
    // The directory decides: its password works, the one stored here does not.
    assert_refused(&app, "carol", "carol-local-pass-1").await;
    app.login("carol", CAROL_PASSWORD).await;
    let carol = user(&app, "carol").await;
    assert_eq!(carol["id"], created["id"], "the same user");
    assert_eq!(carol["identityProvider"], "ldap");
    assert_eq!(
        names_of_roles(&carol),
        Vec::<String>::new(),
        "synced: {carol}"
    );
    // An administrator's password reset (C6) on an LDAP user opens no local login either.
    let id = carol["id"].as_str().expect("id");
    let (status, body) = app
        .put(
            &format!("/api/users/{id}"),
            &app.admin_token,
            json!({"password": "carol-reset-pass-1"}),
        )
        .await;
    // Observed: C6 accepts the password (and stores it), but it is never asked for.
    assert_eq!(
        status,
        StatusCode::OK,
        "C6 password on an LDAP user: {body}"
    );
    assert_refused(&app, "carol", "carol-reset-pass-1").await;
    app.login("carol", CAROL_PASSWORD).await;
}

async fn directory_down_is_503_and_local_users_still_log_in(app: TestApp) {
    let mut ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |_| {}).await;
    group_roles(&app).await;
    app.login("alice", ALICE_PASSWORD).await;
    ldap.stop();

    let started = Instant::now();
    // alice exists here already; bob never logged in. Neither is let in, nor told "wrong
    // password": the directory cannot be asked.
    assert_directory_unavailable(&app, "alice", ALICE_PASSWORD).await;
    assert_directory_unavailable(&app, "alice", "wrong-pass-1").await;
    assert_directory_unavailable(&app, "bob", BOB_PASSWORD).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refused connection fails fast: {:?}",
        started.elapsed()
    );
    // Local users do not need the directory.
    app.login("admin", ADMIN_PASSWORD).await;
    let minimum = app.role_id("minimum-access").await;
    app.create_user("dave", "dave-local-pass-1", &[&minimum])
        .await;
    app.login("dave", "dave-local-pass-1").await;
    // alice's roles were not touched by the failed logins.
    assert_eq!(
        role_names(&app, "alice").await,
        [ADMIN_GROUP_ROLE, VIEWER_GROUP_ROLE]
    );
    assert_eq!(find_user(&app, "bob").await, None);

    ldap.restart();
    app.login("alice", ALICE_PASSWORD).await;
    app.login("bob", BOB_PASSWORD).await;
}

async fn a_directory_that_never_answers_is_503_within_the_timeout(app: TestApp) {
    let silent = SilentServer::start();
    let engine = app.engine;
    app.stop().await;
    let app = TestApp::spawn_with(
        engine,
        |settings| {
            settings.ldap.url = Some(silent.url());
            settings.ldap.bind_dn = Some(ROOT_DN.into());
            settings.ldap.bind_password = Some("irrelevant".into());
            settings.ldap.search_base = PEOPLE_DN.into();
            settings.ldap.timeout_secs = 2;
        },
        None,
    )
    .await;
    let started = Instant::now();
    assert_directory_unavailable(&app, "alice", ALICE_PASSWORD).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(6),
        "answered after ldap.timeout_secs (2 s): {elapsed:?}"
    );
    app.login("admin", ADMIN_PASSWORD).await;
}

async fn thingsboard_login_works_for_ldap_users(app: TestApp) {
    let ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |_| {}).await;
    group_roles(&app).await;
    // First login through ThingsBoard: the user is created there too.
    let (status, body) = app.tb_try_login("alice", ALICE_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "TB login of alice: {body}");
    let (token, refresh) = tb_pair(&body);
    assert!(!refresh.is_empty());
    let me = app.tb_me(&token).await;
    assert_eq!(me["name"], "alice", "{me}");
    let alice = user(&app, "alice").await;
    assert_ldap_user(&alice);
    assert_eq!(me["id"]["id"], alice["id"], "{me}");
    assert_eq!(
        names_of_roles(&alice),
        [ADMIN_GROUP_ROLE, VIEWER_GROUP_ROLE]
    );
    // The refresh token works like any other.
    let (status, body) = app
        .tb_request(
            reqwest::Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "refresh: {body}");
    // Failures in ThingsBoard's words.
    let (status, body) = app.tb_try_login("alice", "wrong-pass-1").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
    let (status, body) = app.tb_try_login("mallory", "mallory-pass-1").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
    // bob's first login is through ThingsBoard too.
    app.tb_login("bob", BOB_PASSWORD).await;
    assert_eq!(role_names(&app, "bob").await, [VIEWER_GROUP_ROLE]);
}

async fn ldap_users_cannot_change_their_password_here(app: TestApp) {
    let ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |_| {}).await;
    group_roles(&app).await;
    // plant-viewer grants write on /api/users/change-password.
    let token = app.login("alice", ALICE_PASSWORD).await;
    let (status, body) = app
        .put(
            "/api/users/change-password",
            &token,
            json!({"password": ALICE_PASSWORD, "newPassword": "alice-new-pass-1"}),
        )
        .await;
    let message = assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "newPassword", "{body}");
    assert_eq!(
        message,
        "newPassword: the password of an externally managed user cannot be changed here"
    );
    assert_refused(&app, "alice", "alice-new-pass-1").await;
    app.login("alice", ALICE_PASSWORD).await;
    assert!(ldap.can_bind(&LdapServer::user_dn("alice"), ALICE_PASSWORD));
    // ThingsBoard's password change (T5) refuses too.
    let (tb_token, _) = app.tb_login("alice", ALICE_PASSWORD).await;
    let (status, body) = app
        .tb_post(
            "/api/auth/changePassword",
            &tb_token,
            json!({"currentPassword": ALICE_PASSWORD, "newPassword": "alice-new-pass-1"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "T5 of an LDAP user: {body}"
    );
    assert_eq!(
        body["message"], "The password of an externally managed user cannot be changed here",
        "{body}"
    );
    app.login("alice", ALICE_PASSWORD).await;
}

async fn broker_connect_creates_the_ldap_user_with_its_roles(app: TestApp) {
    let mut ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |_| {}).await;
    group_roles(&app).await;
    mapped_role(
        &app,
        BOB_EMPLOYEE_TYPE,
        None,
        json!([mqtt("plant/#", "write")]),
    )
    .await;
    let connect = |username: &str, password: &str| json!({"username": username, "password": password, "clientid": "c1"});
    let publish =
        |topic: &str| json!({"username": "bob", "clientid": "c1", "topic": topic, "acc": 2});

    assert!(!hook(&app, USER_HOOK, connect("bob", "wrong-pass-1")).await);
    assert!(!hook(&app, USER_HOOK, connect("mallory", "mallory-pass-1")).await);
    assert_eq!(find_user(&app, "bob").await, None, "failures create nobody");
    // bob never logged in over HTTP.
    assert!(hook(&app, USER_HOOK, connect("bob", BOB_PASSWORD)).await);
    let bob = user(&app, "bob").await;
    assert_ldap_user(&bob);
    assert_eq!(
        names_of_roles(&bob),
        [BOB_EMPLOYEE_TYPE, VIEWER_GROUP_ROLE],
        "{bob}"
    );
    assert!(hook(&app, ACL_HOOK, publish("plant/line-1")).await);
    assert!(!hook(&app, ACL_HOOK, publish("other/line-1")).await);
    // Re-synced at the next CONNECT.
    ldap.set_employee_types("bob", &[]);
    assert!(hook(&app, USER_HOOK, connect("bob", BOB_PASSWORD)).await);
    assert_eq!(role_names(&app, "bob").await, [VIEWER_GROUP_ROLE]);
    assert!(!hook(&app, ACL_HOOK, publish("plant/line-1")).await);
    // The directory down. bob's pair was verified a moment ago and is remembered
    // (`broker.credential_cache_secs`, docs/brokers.md "Remembered verifications"), so his
    // reconnect does not ask the directory; alice, never verified, is not let in.
    ldap.stop();
    assert!(hook(&app, USER_HOOK, connect("bob", BOB_PASSWORD)).await);
    let (status, answer) = app
        .request(
            reqwest::Method::POST,
            USER_HOOK,
            None,
            Some(connect("alice", ALICE_PASSWORD)),
        )
        .await;
    // The documented answer when Gatehouse cannot decide (docs/brokers.md); brokers deny.
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer, json!({"ok": false, "error": "unavailable"}));
    assert_eq!(find_user(&app, "alice").await, None);
}

async fn direct_bind_logs_in_with_the_dn_template(app: TestApp) {
    let ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, direct_bind).await;
    group_roles(&app).await;
    mapped_role(&app, BOB_EMPLOYEE_TYPE, None, json!([])).await;
    let before = ldap.log().len();
    app.login("alice", ALICE_PASSWORD).await;
    let alice = user(&app, "alice").await;
    assert_ldap_user(&alice);
    assert_eq!(
        names_of_roles(&alice),
        [ADMIN_GROUP_ROLE, VIEWER_GROUP_ROLE]
    );
    app.login("bob", BOB_PASSWORD).await;
    assert_eq!(
        role_names(&app, "bob").await,
        [BOB_EMPLOYEE_TYPE, VIEWER_GROUP_ROLE]
    );
    app.login("carol", CAROL_PASSWORD).await;
    assert_eq!(role_names(&app, "carol").await, Vec::<String>::new());
    assert_refused(&app, "alice", "wrong-pass-1").await;
    assert_refused(&app, "mallory", "mallory-pass-1").await;
    // `+` is allowed in usernames and special in DNs: escaped, it names no entry.
    assert_refused(&app, "alice+cn", ALICE_PASSWORD).await;
    assert_eq!(
        all_usernames(&app).await,
        ["admin", "alice", "bob", "carol"]
    );
    // Only the users themselves bound: no service account is used.
    let log = ldap.log();
    let binds: Vec<&str> = log[before..]
        .lines()
        .filter(|line| line.contains(" BIND dn=") && line.ends_with("method=128"))
        .collect();
    assert!(!binds.is_empty(), "{log}");
    assert!(
        binds.iter().all(|line| !line.contains(ROOT_DN)),
        "no bind as the root DN: {binds:#?}"
    );
}

async fn login_names_cannot_inject_ldap_syntax(app: TestApp) {
    let ldap = LdapServer::start();
    let hostile = [
        "*",
        "al*",
        "alice*",
        "*)(uid=*",
        "alice)(uid=*",
        "alice)(|(uid=*",
        "*)(uid=*))(|(uid=*",
        "(uid=alice)",
        "alice\\2a",
        "alice\\",
        "alice\u{0}",
        "uid=alice,ou=people,dc=example,dc=org",
        "alice,ou=people,dc=example,dc=org",
        "alice+uid=bob",
        " alice",
        "alice ",
    ];
    let engine = app.engine;
    app.stop().await;
    for direct in [false, true] {
        let app = spawn_with_ldap(engine, &ldap, |settings| {
            if direct {
                direct_bind(settings);
            }
            // Many attempts from one address.
            settings.auth.login_per_address = RateLimit {
                burst: 1000,
                per_minute: 1000,
            };
        })
        .await;
        for name in hostile {
            for password in [ALICE_PASSWORD, BOB_PASSWORD, "*"] {
                let (status, body) = app.try_login(name, password).await;
                assert!(
                    status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST,
                    "login of {name:?} (direct bind: {direct}) must fail with 401 or 400: \
                     {status} {body}"
                );
                let (status, body) = app.tb_try_login(name, password).await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "TB login of {name:?} (direct bind: {direct}): {body}"
                );
            }
        }
        assert_eq!(
            all_usernames(&app).await,
            ["admin"],
            "direct bind: {direct}"
        );
        // The directory itself is fine: alice still logs in.
        app.login("alice", ALICE_PASSWORD).await;
        app.stop().await;
    }
}

async fn one_directory_account_is_one_user_whatever_the_case(app: TestApp) {
    let ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |_| {}).await;
    group_roles(&app).await;
    app.login("alice", ALICE_PASSWORD).await;
    let alice = user(&app, "alice").await;
    let id = alice["id"].as_str().expect("id").to_owned();
    // slapd matches `uid` without regard to case, so `ALICE` finds (and binds as) alice's entry.
    // An administrator disables alice here (ThingsBoard dialect): she stays out under every
    // spelling of her name.
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let enable = |enabled: bool| {
        format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled={enabled}")
    };
    let (status, body) = app.tb_post(&enable(false), &sys, json!({})).await;
    assert_eq!(status, StatusCode::OK, "disable alice: {body}");
    let (status, body) = app.try_login("alice", ALICE_PASSWORD).await;
    assert_eq!(
        assert_error(status, &body, StatusCode::UNAUTHORIZED),
        "the account is not active"
    );
    for name in ["ALICE", "Alice"] {
        let (status, body) = app.try_login(name, ALICE_PASSWORD).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "disabled alice logs in as {name:?}: {body}"
        );
    }
    assert_eq!(all_usernames(&app).await, ["admin", "alice"]);

    // Enabled again: another spelling is refused, or logs in as alice; never a second user.
    let (status, body) = app.tb_post(&enable(true), &sys, json!({})).await;
    assert_eq!(status, StatusCode::OK, "enable alice: {body}");
    for name in ["ALICE", "Alice"] {
        let (status, body) = app.try_login(name, ALICE_PASSWORD).await;
        if status == StatusCode::OK {
            let token = body["token"].as_str().expect("token");
            let (status, session) = app.get("/api/session", token).await;
            assert_eq!(status, StatusCode::OK, "{session}");
            assert_eq!(session["username"], "alice", "login as {name:?}: {session}");
        } else {
            assert_eq!(
                assert_error(status, &body, StatusCode::UNAUTHORIZED),
                BAD_CREDENTIALS
            );
        }
        assert_eq!(
            all_usernames(&app).await,
            ["admin", "alice"],
            "after the login of {name:?} ({status} {body})"
        );
    }
}

async fn a_name_found_twice_in_the_directory_logs_in_nobody(app: TestApp) {
    let ldap = LdapServer::start();
    let app = with_ldap(app, &ldap, |_| {}).await;
    group_roles(&app).await;
    // A second `uid=alice` elsewhere under the search base, with a password of its own.
    ldap.modify(&format!(
        "dn: ou=contractors,{PEOPLE_DN}\nchangetype: add\nobjectClass: organizationalUnit\n\
         ou: contractors\n\n\
         dn: uid=alice,ou=contractors,{PEOPLE_DN}\nchangetype: add\nobjectClass: inetOrgPerson\n\
         uid: alice\ncn: alice\nsn: Impostor\nuserPassword: impostor-pass-1\n"
    ));
    let found = ldap.search("(uid=alice)", &["1.1"]);
    assert_eq!(found.matches("dn: ").count(), 2, "{found}");
    // Which entry is meant is unknown: neither password logs in.
    assert_refused(&app, "alice", "impostor-pass-1").await;
    assert_refused(&app, "alice", ALICE_PASSWORD).await;
    assert_eq!(all_usernames(&app).await, ["admin"]);
    // Others are not affected.
    app.login("bob", BOB_PASSWORD).await;
}

//! Microsoft Entra ID login (C46–C47, `[entra]`) through a real OpenID provider
//! (`common::oidc`: npm's oidc-provider standing in for Entra through `entra.issuer`), driven by
//! a scripted browser: the first login creates an `entra` user whose roles follow its group
//! ids (`msEntraIdGroupIds`) at every login; the state is single-use and bound to the browser
//! that started the login; local users are never taken over; errors end at the UI with
//! `error`; an unconfigured server answers 404.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::oidc::{
    Browser, OidcProvider, ProviderConfig, ALICE, ALICE_EMAIL, ALICE_GROUP_ID, ALICE_OID,
    ALICE_PASSWORD, BOB, BOB_EMAIL, BOB_GROUP_ID, BOB_PASSWORD, CLIENT_ID, CLIENT_SECRET,
};
use common::ports::free_port;
use common::{assert_error, Engine, TestApp};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

both_engines!(
    the_first_login_creates_an_entra_user_with_the_roles_of_its_groups,
    roles_follow_the_groups_at_every_login,
    the_state_is_single_use_and_bound_to_the_browser,
    a_local_user_of_the_same_name_is_not_taken_over,
    the_referer_is_the_return_address_only_on_the_ui_origin,
    provider_errors_and_a_wrong_client_secret_end_at_the_ui,
    entra_users_have_no_password_here,
    a_disabled_entra_user_cannot_log_in,
);

/// An app with Entra ID login against a fresh provider, and the provider.
struct Entra {
    app: TestApp,
    _provider: OidcProvider,
    base: String,
}

impl Entra {
    fn ui(&self) -> String {
        format!("{}/admin/", self.base)
    }

    fn login_url(&self) -> String {
        format!("{}/api/msEntraId/login", self.base)
    }

    /// Logs `login` in through the provider; the URL the app finally sends the browser to.
    async fn log_in(&self, browser: &mut Browser, login: &str, password: &str) -> Url {
        browser
            .login_at_provider(&self.login_url(), login, password, &self.ui())
            .await
            .unwrap_or_else(|failure| panic!("login of {login}: {failure}"))
    }

    /// Logs `login` in and returns its Connectware token.
    async fn token_of(&self, login: &str, password: &str) -> String {
        let landed = self.log_in(&mut Browser::new(), login, password).await;
        query(&landed, "apiToken").unwrap_or_else(|| panic!("no apiToken in {landed}"))
    }
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

async fn with_entra(app: TestApp, adjust: impl FnOnce(&mut gatehouse::config::Settings)) -> Entra {
    let engine = app.engine;
    app.stop().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(ProviderConfig::default_for(vec![format!(
        "{base}/api/msEntraId/redirect"
    )]))
    .await;
    let issuer = provider.issuer().to_owned();
    let app = TestApp::spawn_with(
        engine,
        |settings| {
            settings.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            settings.entra.client_id = Some(CLIENT_ID.to_owned());
            settings.entra.client_secret = Some(CLIENT_SECRET.to_owned());
            settings.entra.issuer = Some(issuer);
            settings.entra.scopes = ["openid", "email", "profile", "groups"]
                .map(str::to_owned)
                .to_vec();
            adjust(settings);
        },
        None,
    )
    .await;
    Entra {
        app,
        _provider: provider,
        base,
    }
}

/// A role mapped to Entra group ids (comma-separated), allowed to read `plant/#`.
async fn group_role(app: &TestApp, name: &str, group_ids: &str) -> String {
    let (status, role) = app
        .post(
            "/api/roles",
            &app.admin_token,
            json!({"name": name, "msEntraIdGroupIds": group_ids, "permissions": [
                {"resource": "plant/#", "operation": "read", "context": "mqtt"},
                {"resource": "/api/session", "operation": "read", "context": "http"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "create role {name}: {role}");
    role["id"].as_str().expect("role id").to_owned()
}

/// The user `username` as the Connectware API shows it, if it exists.
async fn find_user(app: &TestApp, username: &str) -> Option<Value> {
    let (status, page) = app
        .get(
            &format!("/api/listUsers?usernames={username}"),
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "listUsers: {page}");
    let id = page["users"].as_array()?.first()?["id"]
        .as_str()?
        .to_owned();
    let (status, user) = app.get(&format!("/api/users/{id}"), &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "GET user {id}: {user}");
    Some(user)
}

fn role_names(user: &Value) -> Vec<String> {
    let mut names: Vec<String> = user["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter(|role| role["autoGenerated"] != json!(true))
        .filter_map(|role| role["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

async fn the_first_login_creates_an_entra_user_with_the_roles_of_its_groups(app: TestApp) {
    let entra = with_entra(app, |_| {}).await;
    let app = &entra.app;
    // alice's group (spelled in upper case, among others), bob's group, and no group.
    group_role(
        app,
        "plant-operators",
        &format!(
            "00000000-0000-0000-0000-000000000000, {}",
            ALICE_GROUP_ID.to_uppercase()
        ),
    )
    .await;
    group_role(app, "bob-only", BOB_GROUP_ID).await;
    group_role(app, "nobody", "").await;
    assert!(find_user(app, ALICE_EMAIL).await.is_none());

    let mut browser = Browser::new();
    let landed = entra.log_in(&mut browser, ALICE, ALICE_PASSWORD).await;
    assert!(landed.as_str().starts_with(&entra.ui()), "{landed}");
    assert_eq!(query(&landed, "error"), None, "{landed}");
    let token = query(&landed, "apiToken").expect("apiToken");
    // The binding cookie is gone once the login is over.
    assert_eq!(
        browser
            .cookie(&entra.base, "gatehouse_federated_login")
            .filter(|v| !v.is_empty()),
        None
    );

    let (status, session) = app.get("/api/session", &token).await;
    assert_eq!(status, StatusCode::OK, "session: {session}");
    assert_eq!(session["username"], json!(ALICE_EMAIL));
    let permissions = session["permissions"].to_string();
    assert!(permissions.contains("plant/#"), "{session}");

    let user = find_user(app, ALICE_EMAIL)
        .await
        .expect("alice was created");
    assert_eq!(user["identityProvider"], json!("entra"), "{user}");
    assert_eq!(user["autoGenerated"], json!(true), "{user}");
    assert_eq!(role_names(&user), ["plant-operators"], "{user}");

    // bob gets his own group's role, and is another user.
    let bob = entra.token_of(BOB, BOB_PASSWORD).await;
    let (_, session) = app.get("/api/session", &bob).await;
    assert_eq!(session["username"], json!(BOB_EMAIL));
    let bob_user = find_user(app, BOB_EMAIL).await.expect("bob");
    assert_eq!(role_names(&bob_user), ["bob-only"], "{bob_user}");

    // A second login is the same user.
    entra.token_of(ALICE, ALICE_PASSWORD).await;
    let again = find_user(app, ALICE_EMAIL).await.expect("alice");
    assert_eq!(again["id"], user["id"]);
    // The object id is the account's link: stored beside the user, never as its name.
    assert!(app.database_contains(ALICE_OID).await);
}

async fn roles_follow_the_groups_at_every_login(app: TestApp) {
    let entra = with_entra(app, |_| {}).await;
    let app = &entra.app;
    let role = group_role(app, "plant-operators", ALICE_GROUP_ID).await;
    entra.token_of(ALICE, ALICE_PASSWORD).await;
    let user = find_user(app, ALICE_EMAIL).await.expect("alice");
    assert_eq!(role_names(&user), ["plant-operators"]);

    // An administrator adds a role by hand: the next login takes it away again (the groups
    // decide), and the group's role is given back after it was unmapped and mapped again.
    let extra = group_role(app, "manual", "").await;
    let id = user["id"].as_str().expect("id");
    let (status, body) = app
        .post(
            &format!("/api/users/{id}/roles"),
            &app.admin_token,
            json!({"roleId": extra}),
        )
        .await;
    assert!(status.is_success(), "add role: {status} {body}");
    let (status, body) = app
        .put(
            &format!("/api/roles/{role}"),
            &app.admin_token,
            json!({"msEntraIdGroupIds": "other"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "unmap: {body}");
    entra.token_of(ALICE, ALICE_PASSWORD).await;
    let user = find_user(app, ALICE_EMAIL).await.expect("alice");
    assert!(role_names(&user).is_empty(), "{user}");

    let (status, body) = app
        .put(
            &format!("/api/roles/{role}"),
            &app.admin_token,
            json!({"msEntraIdGroupIds": ALICE_GROUP_ID}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "map again: {body}");
    let token = entra.token_of(ALICE, ALICE_PASSWORD).await;
    let user = find_user(app, ALICE_EMAIL).await.expect("alice");
    assert_eq!(role_names(&user), ["plant-operators"]);
    let (_, session) = app.get("/api/session", &token).await;
    assert!(session["permissions"].to_string().contains("plant/#"));
}

async fn the_state_is_single_use_and_bound_to_the_browser(app: TestApp) {
    let entra = with_entra(app, |_| {}).await;
    let callback = format!("{}/api/msEntraId/redirect", entra.base);
    // Stop where the provider sends the browser back, before the app sees the code.
    let mut browser = Browser::new();
    let back = browser
        .login_at_provider(&entra.login_url(), ALICE, ALICE_PASSWORD, &callback)
        .await
        .expect("login at the provider");
    assert!(
        query(&back, "code").is_some() && query(&back, "state").is_some(),
        "{back}"
    );

    // Another browser (no binding cookie) cannot use it, and that used it up.
    let stranger = Browser::new().get(back.as_str()).await.redirect();
    assert!(stranger.as_str().starts_with(&entra.ui()), "{stranger}");
    assert_eq!(query(&stranger, "apiToken"), None);
    let error = query(&stranger, "error").expect("error");
    assert!(error.contains("another browser"), "{error}");
    let late = browser.get(back.as_str()).await.redirect();
    assert_eq!(query(&late, "apiToken"), None, "{late}");
    assert!(
        query(&late, "error")
            .expect("error")
            .contains("used already"),
        "{late}"
    );
    assert!(find_user(&entra.app, ALICE_EMAIL).await.is_none());

    // A forged state is refused the same way; missing parameters are a 400.
    let forged = Browser::new()
        .get(&format!("{callback}?code=abc&state=forged"))
        .await
        .redirect();
    assert!(query(&forged, "error").is_some() && query(&forged, "apiToken").is_none());
    let (status, body) = entra.app.get("/api/msEntraId/redirect?state=x", "").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);

    // A successful login's callback replayed by the same browser: refused.
    let mut browser = Browser::new();
    let back = browser
        .login_at_provider(&entra.login_url(), ALICE, ALICE_PASSWORD, &callback)
        .await
        .expect("login at the provider");
    let first = browser.get(back.as_str()).await.redirect();
    assert!(query(&first, "apiToken").is_some(), "{first}");
    let replay = browser.get(back.as_str()).await.redirect();
    assert_eq!(query(&replay, "apiToken"), None, "{replay}");
}

async fn a_local_user_of_the_same_name_is_not_taken_over(app: TestApp) {
    let entra = with_entra(app, |_| {}).await;
    let app = &entra.app;
    let local = app.create_user(ALICE_EMAIL, "Local-pass-1!", &[]).await;
    let landed = entra
        .log_in(&mut Browser::new(), ALICE, ALICE_PASSWORD)
        .await;
    assert_eq!(query(&landed, "apiToken"), None, "{landed}");
    assert!(query(&landed, "error")
        .expect("error")
        .contains("does not log in with Entra"));
    let user = find_user(app, ALICE_EMAIL).await.expect("alice");
    assert_eq!(user["id"], local["id"]);
    assert_eq!(user["identityProvider"], json!("local"));
    let (status, _) = app.try_login(ALICE_EMAIL, "Local-pass-1!").await;
    assert_eq!(status, StatusCode::OK, "the local user still logs in");
}

async fn the_referer_is_the_return_address_only_on_the_ui_origin(app: TestApp) {
    let entra = with_entra(app, |_| {}).await;
    for (referer, expected) in [
        (
            format!("{}/admin/users?tab=2", entra.base),
            format!("{}/admin/users?tab=2&apiToken=", entra.base),
        ),
        (
            "https://evil.example/admin/".to_owned(),
            format!("{}?apiToken=", entra.ui()),
        ),
    ] {
        let mut browser = Browser::new();
        let start = browser
            .send_with_header(&entra.login_url(), ("referer", &referer))
            .await
            .redirect();
        let landed = browser
            .login_at_provider(
                start.as_str(),
                ALICE,
                ALICE_PASSWORD,
                &format!("{}/admin/", entra.base),
            )
            .await
            .expect("login");
        assert!(
            landed.as_str().starts_with(&expected),
            "{referer}: {landed}"
        );
    }
}

async fn provider_errors_and_a_wrong_client_secret_end_at_the_ui(app: TestApp) {
    let entra = with_entra(app, |_| {}).await;
    let landed = Browser::new()
        .get(&format!(
            "{}/api/msEntraId/redirect?error=access_denied&error_description=User%20cancelled",
            entra.base
        ))
        .await
        .redirect();
    assert!(landed.as_str().starts_with(&entra.ui()), "{landed}");
    assert_eq!(query(&landed, "error").as_deref(), Some("User cancelled"));

    // The same provider, but the app holds a wrong secret: the code exchange is refused.
    let Entra {
        app,
        _provider: provider,
        base,
    } = entra;
    let engine = app.engine;
    app.stop().await;
    let issuer = provider.issuer().to_owned();
    let wrong = TestApp::spawn_with(
        engine,
        |settings| {
            settings.listen = base
                .trim_start_matches("http://")
                .parse()
                .expect("listen address");
            settings.entra.client_id = Some(CLIENT_ID.to_owned());
            settings.entra.client_secret = Some("not-the-secret".to_owned());
            settings.entra.issuer = Some(issuer);
        },
        None,
    )
    .await;
    let landed = Browser::new()
        .login_at_provider(
            &format!("{base}/api/msEntraId/login"),
            ALICE,
            ALICE_PASSWORD,
            &format!("{base}/admin/"),
        )
        .await
        .expect("login at the provider");
    assert_eq!(query(&landed, "apiToken"), None, "{landed}");
    let error = query(&landed, "error").expect("error");
    assert!(error.contains("invalid_client"), "{error}");
    assert!(find_user(&wrong, ALICE_EMAIL).await.is_none());
}

async fn entra_users_have_no_password_here(app: TestApp) {
    let entra = with_entra(app, |_| {}).await;
    entra.token_of(ALICE, ALICE_PASSWORD).await;
    let (status, body) = entra.app.try_login(ALICE_EMAIL, ALICE_PASSWORD).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
}

async fn a_disabled_entra_user_cannot_log_in(app: TestApp) {
    let entra = with_entra(app, |_| {}).await;
    entra.token_of(ALICE, ALICE_PASSWORD).await;
    let user = find_user(&entra.app, ALICE_EMAIL).await.expect("alice");
    let id = user["id"].as_str().expect("id").to_owned();
    let (admin, _) = entra.app.tb_login("admin", common::ADMIN_PASSWORD).await;
    let (status, body) = entra
        .app
        .tb_request(
            reqwest::Method::POST,
            &format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled=false"),
            Some(&format!("Bearer {admin}")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "disable: {body}");
    let landed = entra
        .log_in(&mut Browser::new(), ALICE, ALICE_PASSWORD)
        .await;
    assert_eq!(query(&landed, "apiToken"), None, "{landed}");
    assert!(query(&landed, "error")
        .expect("error")
        .contains("not active"));
}

/// Without `[entra]` both endpoints answer 404 in the Connectware shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_entra_is_not_found() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    for path in [
        "/api/msEntraId/login",
        "/api/msEntraId/redirect?code=a&state=b",
    ] {
        let (status, body) = app.get(path, "").await;
        let message = assert_error(status, &body, StatusCode::NOT_FOUND);
        assert_eq!(message, "The feature is not enabled.", "{path}");
    }
}

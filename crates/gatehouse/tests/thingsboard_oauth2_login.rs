//! The ThingsBoard dialect's OAuth2 browser login (T54) end to end: OAuth2 clients saved through
//! the API (T40) point at a real OpenID provider (`common::oidc`: npm's oidc-provider), and a
//! scripted browser goes `GET /oauth2/authorization/{clientId}` → provider login → callback at
//! `/login/oauth2/code/` → `<base>[prevUri]?accessToken=…&refreshToken=…` (or
//! `<base>/login?loginError=…`). Covered: user creation by the BASIC mapper (tenant by name
//! strategy, customer by pattern), existing users found by email, `allowUserCreation`,
//! `activateUser`, unverified emails, the three client authentication methods, the binding to
//! the browser, single use and 180 s lifetime of a login, hostile `prevUri`s, a wrong client
//! secret, a client deleted during a login, no 2FA on these logins, the GITHUB mapper (emails from a fake GitHub) and the CUSTOM mapper (a fake
//! mapping service), and the public login buttons leading into the login.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use common::oidc::{
    Browser, OidcProvider, ProviderConfig, ALICE, ALICE_EMAIL, ALICE_PASSWORD, BOB, BOB_EMAIL,
    BOB_PASSWORD, CAROL, CAROL_EMAIL, CAROL_PASSWORD, CLIENT_ID, CLIENT_SECRET, PLANT_ADMINS,
    POST_CLIENT_ID, POST_CLIENT_SECRET, PUBLIC_CLIENT_ID,
};
use common::otp::{code_at, secret_of};
use common::{assert_tb_shape, jwt_claims, tb_id, tb_pair, TestApp, ADMIN_PASSWORD, TB_NULL_UUID};
use gatehouse_core::oauth2_login::{customer_id_of, tenant_id_of};
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};

both_engines!(
    a_new_user_logs_in_through_a_basic_client,
    an_existing_user_is_found_by_email_and_keeps_its_tenancy,
    unknown_users_are_not_created_without_allow_user_creation,
    an_unverified_email_is_refused,
    users_created_inactive_wait_for_an_administrator,
    customer_and_custom_tenant_patterns_name_the_tenancy,
    post_and_public_clients_log_in,
    the_login_is_bound_to_the_browser_and_single_use,
    a_login_expires_after_180_seconds,
    a_wrong_client_secret_ends_in_a_login_error,
    oauth2_logins_ask_no_second_factor,
    the_github_mapper_reads_the_primary_verified_email,
    the_custom_mapper_asks_an_external_service,
    the_public_login_buttons_lead_into_the_login,
    a_tenant_client_reaches_only_its_own_tenant,
    connectware_users_are_never_taken_over,
);

/// The login-processing URL.
const CALLBACK: &str = "/login/oauth2/code/";

/// An app, a provider that knows its redirect URI, and a system administrator's token.
struct Tb {
    app: TestApp,
    _provider: OidcProvider,
    discovery: Value,
    sys: String,
}

/// Where a login left the browser.
#[derive(Debug)]
enum Landing {
    /// `<base>[prevUri]?accessToken=…&refreshToken=…`.
    Pair {
        url: Url,
        token: String,
        refresh: String,
    },
    /// `<base>/login?loginError=…`, decoded.
    Error(String),
}

impl Landing {
    /// The pair; panics on a login error.
    fn pair(self) -> (String, String) {
        match self {
            Landing::Pair { token, refresh, .. } => (token, refresh),
            Landing::Error(message) => panic!("expected a token pair, got loginError {message:?}"),
        }
    }

    /// The login error; panics on a pair.
    fn error(self) -> String {
        match self {
            Landing::Error(message) => message,
            Landing::Pair { url, .. } => panic!("expected a loginError, got {url}"),
        }
    }
}

/// The starting app serves as is: OAuth2 clients are data, so the provider (started after the
/// app, with the app's callback as redirect URI) needs no restart of the app.
async fn setup(app: TestApp) -> Tb {
    let provider = OidcProvider::start(ProviderConfig::default_for(vec![format!(
        "{}{CALLBACK}",
        app.base
    )]))
    .await;
    let discovery = provider.discovery().await;
    let sys = app.tb_login("admin", ADMIN_PASSWORD).await.0;
    Tb {
        app,
        _provider: provider,
        discovery,
        sys,
    }
}

impl Tb {
    /// The BASIC client of the brief: `gatehouse` (client_secret_basic), `openid` with the
    /// provider's JWKS and userinfo, DOMAIN tenants, users created and activated.
    fn basic_client(&self) -> Value {
        let endpoint = |name: &str| self.discovery[name].clone();
        json!({
            "title": "Test OIDC",
            "additionalInfo": {"providerName": "TestOIDC"},
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "authorizationUri": endpoint("authorization_endpoint"),
            "accessTokenUri": endpoint("token_endpoint"),
            "scope": ["openid", "email", "profile", "groups"],
            "userInfoUri": endpoint("userinfo_endpoint"),
            "jwkSetUri": endpoint("jwks_uri"),
            "userNameAttributeName": "email",
            "clientAuthenticationMethod": "BASIC",
            "loginButtonLabel": "Test",
            "loginButtonIcon": "test-icon",
            "platforms": [],
            "mapperConfig": {
                "allowUserCreation": true,
                "activateUser": true,
                "type": "BASIC",
                "basic": {
                    "emailAttributeKey": "email",
                    "firstNameAttributeKey": "given_name",
                    "lastNameAttributeKey": "family_name",
                    "tenantNameStrategy": "DOMAIN"
                }
            }
        })
    }

    /// Saves a client through T40 as the system administrator; its id.
    async fn create_client(&self, body: Value) -> String {
        let (status, saved) = self
            .app
            .tb_post("/api/oauth2/client", &self.sys, body.clone())
            .await;
        assert_eq!(status, StatusCode::OK, "save client {body}: {saved}");
        saved["id"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {saved}"))
            .to_owned()
    }

    /// `GET /oauth2/authorization/{client}[?prevUri=…]` (the `prevUri` is URL-encoded here).
    fn start_url(&self, client: &str, prev_uri: Option<&str>) -> String {
        let mut url =
            Url::parse(&self.app.url(&format!("/oauth2/authorization/{client}"))).expect("a URL");
        if let Some(prev_uri) = prev_uri {
            url.query_pairs_mut().append_pair("prevUri", prev_uri);
        }
        url.to_string()
    }

    /// Whether the app has left the browser somewhere past the login: on its origin, neither
    /// the start nor the callback.
    fn past_the_login(&self, url: &Url) -> bool {
        url.as_str().starts_with(&format!("{}/", self.app.base))
            && !url.path().starts_with("/oauth2/authorization/")
            && url.path() != CALLBACK
    }

    /// Logs `login` in through `client` in `browser`; where the app left it.
    async fn log_in_with(
        &self,
        browser: &mut Browser,
        client: &str,
        prev_uri: Option<&str>,
        (login, password): (&str, &str),
    ) -> Landing {
        let url = browser
            .login_until(&self.start_url(client, prev_uri), login, password, |url| {
                self.past_the_login(url)
            })
            .await
            .unwrap_or_else(|failure| panic!("login of {login} through {client}: {failure}"));
        self.landing(url)
    }

    /// Logs `login` in through `client` in a fresh browser.
    async fn log_in(&self, client: &str, login: &str, password: &str) -> Landing {
        self.log_in_with(&mut Browser::new(), client, None, (login, password))
            .await
    }

    /// Reads a URL the app left the browser at.
    fn landing(&self, url: Url) -> Landing {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        if url.path() == "/login" {
            assert_eq!(pairs.len(), 1, "only loginError: {url}");
            return Landing::Error(value("loginError").unwrap_or_else(|| panic!("{url}")));
        }
        // The pair comes last, after any query of the prevUri.
        let names: Vec<&str> = pairs.iter().map(|(key, _)| key.as_str()).collect();
        assert!(
            names.ends_with(&["accessToken", "refreshToken"])
                && !names[..names.len() - 2].contains(&"accessToken")
                && !names[..names.len() - 2].contains(&"refreshToken"),
            "{url}"
        );
        Landing::Pair {
            token: value("accessToken").expect("accessToken"),
            refresh: value("refreshToken").expect("refreshToken"),
            url,
        }
    }

    /// The id of the user named `email` (through the Connectware API, which sees every user).
    async fn user_id(&self, email: &str) -> Option<String> {
        Some(self.user_entry(email).await?["id"].as_str()?.to_owned())
    }

    /// The Connectware view of the user named `email`, if there is one.
    async fn user_entry(&self, email: &str) -> Option<Value> {
        let (status, page) = self
            .app
            .get(
                &format!("/api/listUsers?usernames={email}"),
                &self.app.admin_token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "listUsers: {page}");
        let users = page["users"].as_array().expect("users");
        assert!(users.len() <= 1, "{page}");
        users.first().cloned()
    }

    /// `GET /api/user/{id}` as the system administrator.
    async fn tb_user(&self, id: &str) -> Value {
        let (status, user) = self.app.tb_get(&format!("/api/user/{id}"), &self.sys).await;
        assert_eq!(status, StatusCode::OK, "GET user {id}: {user}");
        user
    }

    /// Whether a provider access token is (still) good at the provider's userinfo; its `sub`.
    async fn provider_subject(&self, access_token: &str) -> String {
        let uri = self.discovery["userinfo_endpoint"]
            .as_str()
            .expect("userinfo_endpoint");
        let answer = reqwest::Client::new()
            .get(uri)
            .bearer_auth(access_token)
            .send()
            .await
            .expect("userinfo request");
        assert_eq!(answer.status(), StatusCode::OK, "userinfo");
        let claims: Value = answer.json().await.expect("userinfo JSON");
        claims["sub"].as_str().expect("sub").to_owned()
    }
}

fn entity_id(value: &Value, kind: &str) -> String {
    assert_eq!(value["entityType"], kind, "{value}");
    value["id"].as_str().expect("an id").to_owned()
}

/// Serves `router` on a free loopback port; its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------

async fn a_new_user_logs_in_through_a_basic_client(app: TestApp) {
    let tb = setup(app).await;
    let client = tb.create_client(tb.basic_client()).await;
    assert_eq!(tb.user_id(ALICE_EMAIL).await, None);

    // The start: a redirect to the provider with PKCE S256, a nonce, the client's scopes and the
    // callback on the origin the browser used; the login is bound to this browser's cookie.
    let mut browser = Browser::new();
    let start = browser
        .get(&tb.start_url(&client, Some("/dashboards")))
        .await;
    assert_eq!(start.status, StatusCode::FOUND, "{}", start.body);
    let to_provider = start.redirect();
    assert!(
        to_provider
            .as_str()
            .starts_with(tb.discovery["authorization_endpoint"].as_str().unwrap()),
        "{to_provider}"
    );
    let query = |name: &str| {
        to_provider
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    assert_eq!(query("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(query("response_type").as_deref(), Some("code"));
    assert_eq!(
        query("redirect_uri"),
        Some(format!("{}{CALLBACK}", tb.app.base))
    );
    assert_eq!(
        query("scope").as_deref(),
        Some("openid email profile groups")
    );
    assert_eq!(query("code_challenge_method").as_deref(), Some("S256"));
    assert!(query("code_challenge").is_some_and(|c| c.len() == 43));
    assert!(query("state").is_some_and(|s| s.len() >= 32));
    assert!(query("nonce").is_some_and(|n| n.len() >= 32));
    let binding = browser
        .cookie(&tb.app.base, "gatehouse_federated_login")
        .expect("the binding cookie");
    assert!(!binding.is_empty());

    // Through the provider back to /dashboards with a pair.
    let landed = browser
        .login_until(to_provider.as_str(), ALICE, ALICE_PASSWORD, |url| {
            tb.past_the_login(url)
        })
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(landed.path(), "/dashboards", "{landed}");
    let Landing::Pair {
        token,
        refresh,
        url,
    } = tb.landing(landed)
    else {
        panic!("no pair")
    };
    assert!(url
        .as_str()
        .starts_with(&format!("{}/dashboards?accessToken=", tb.app.base)));
    // The binding cookie is gone.
    assert_eq!(
        browser
            .cookie(&tb.app.base, "gatehouse_federated_login")
            .filter(|value| !value.is_empty()),
        None
    );

    let example = tenant_id_of("example.org").to_string();
    let me = tb.app.tb_me(&token).await;
    assert_eq!(me["authority"], "TENANT_ADMIN", "{me}");
    assert_eq!(me["email"], ALICE_EMAIL, "{me}");
    assert_eq!(me["firstName"], "Alice", "{me}");
    assert_eq!(me["lastName"], "Smith", "{me}");
    assert_eq!(entity_id(&me["tenantId"], "TENANT"), example, "{me}");
    assert_eq!(
        entity_id(&me["customerId"], "CUSTOMER"),
        TB_NULL_UUID,
        "{me}"
    );
    assert_eq!(me["additionalInfo"]["authProviderName"], "TestOIDC", "{me}");
    assert_eq!(me["additionalInfo"]["userCredentialsEnabled"], true, "{me}");
    let alice_id = entity_id(&me["id"], "USER");
    assert_eq!(jwt_claims(&token)["scopes"], json!(["TENANT_ADMIN"]));
    let entry = tb.user_entry(ALICE_EMAIL).await.expect("alice");
    assert_eq!(entry["identityProvider"], "oauth2", "{entry}");
    assert_eq!(entry["autoGenerated"], true, "{entry}");

    // The refresh token works.
    let (status, body) = tb
        .app
        .tb_request(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "refresh: {body}");
    let (refreshed, _) = tb_pair(&body);
    assert_eq!(tb.app.tb_me(&refreshed).await["id"]["id"], alice_id);

    // bob, of the same domain, lands in the same tenant as another tenant administrator.
    let (bob_token, _) = tb.log_in(&client, BOB, BOB_PASSWORD).await.pair();
    let bob = tb.app.tb_me(&bob_token).await;
    assert_eq!(bob["email"], BOB_EMAIL);
    assert_eq!(bob["authority"], "TENANT_ADMIN");
    assert_eq!(entity_id(&bob["tenantId"], "TENANT"), example);
    assert_ne!(bob["id"]["id"], alice_id);

    // alice again, in a fresh browser and in the same one: the same user.
    let (again, _) = tb.log_in(&client, ALICE, ALICE_PASSWORD).await.pair();
    assert_eq!(tb.app.tb_me(&again).await["id"]["id"], alice_id);
    let (again, _) = tb
        .log_in_with(&mut browser, &client, None, (ALICE, ALICE_PASSWORD))
        .await
        .pair();
    assert_eq!(tb.app.tb_me(&again).await["id"]["id"], alice_id);
}

async fn an_existing_user_is_found_by_email_and_keeps_its_tenancy(app: TestApp) {
    let tb = setup(app).await;
    // alice: a tenant administrator of some tenant; bob: a customer user of it.
    let tenant = uuid::Uuid::new_v4().to_string();
    let (alice_id, alice_admin, _) = tb
        .app
        .tb_new_user(
            &tb.sys,
            json!({"email": ALICE_EMAIL, "authority": "TENANT_ADMIN",
                "tenantId": tb_id("TENANT", &tenant), "firstName": "Local"}),
            "alice-local-1",
        )
        .await;
    let customer = uuid::Uuid::new_v4().to_string();
    let (bob_id, _, _) = tb
        .app
        .tb_new_user(
            &alice_admin,
            json!({"email": BOB_EMAIL, "authority": "CUSTOMER_USER",
                "customerId": tb_id("CUSTOMER", &customer)}),
            "bob-local-1",
        )
        .await;

    let mut body = tb.basic_client();
    body["mapperConfig"]["allowUserCreation"] = json!(false);
    let client = tb.create_client(body).await;

    let (token, _) = tb.log_in(&client, ALICE, ALICE_PASSWORD).await.pair();
    let me = tb.app.tb_me(&token).await;
    assert_eq!(me["id"]["id"], alice_id, "{me}");
    assert_eq!(me["authority"], "TENANT_ADMIN");
    assert_eq!(entity_id(&me["tenantId"], "TENANT"), tenant);
    // Nothing of the profile is overwritten, and no provider name is added.
    assert_eq!(me["firstName"], "Local", "{me}");
    assert!(
        me["additionalInfo"].get("authProviderName").is_none(),
        "{me}"
    );

    let (token, _) = tb.log_in(&client, BOB, BOB_PASSWORD).await.pair();
    let me = tb.app.tb_me(&token).await;
    assert_eq!(me["id"]["id"], bob_id, "{me}");
    assert_eq!(me["authority"], "CUSTOMER_USER");
    assert_eq!(entity_id(&me["tenantId"], "TENANT"), tenant);
    assert_eq!(entity_id(&me["customerId"], "CUSTOMER"), customer);
    assert_eq!(jwt_claims(&token)["scopes"], json!(["CUSTOMER_USER"]));

    // Their passwords still work: the OAuth2 login changed nothing of the local account.
    tb.app.tb_login(ALICE_EMAIL, "alice-local-1").await;
    tb.app.tb_login(BOB_EMAIL, "bob-local-1").await;
}

async fn unknown_users_are_not_created_without_allow_user_creation(app: TestApp) {
    let tb = setup(app).await;
    let mut body = tb.basic_client();
    body["mapperConfig"]["allowUserCreation"] = json!(false);
    let client = tb.create_client(body).await;
    let mut browser = Browser::new();
    let url = browser
        .login_until(
            &tb.start_url(&client, Some("/dashboards")),
            BOB,
            BOB_PASSWORD,
            |url| tb.past_the_login(url),
        )
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    // Exactly <base>/login?loginError=<encoded>, whatever prevUri said.
    assert!(
        url.as_str()
            .starts_with(&format!("{}/login?loginError=", tb.app.base)),
        "{url}"
    );
    assert_eq!(
        tb.landing(url).error(),
        format!("User not found: {BOB_EMAIL}")
    );
    assert_eq!(tb.user_id(BOB_EMAIL).await, None);
}

async fn an_unverified_email_is_refused(app: TestApp) {
    let tb = setup(app).await;
    let client = tb.create_client(tb.basic_client()).await;
    let message = tb.log_in(&client, CAROL, CAROL_PASSWORD).await.error();
    assert!(message.contains("not verified"), "{message}");
    assert_eq!(tb.user_id(CAROL_EMAIL).await, None);

    // Not even an existing, activated user of that email is found by it.
    let tenant = uuid::Uuid::new_v4().to_string();
    tb.app
        .tb_new_user(
            &tb.sys,
            json!({"email": CAROL_EMAIL, "authority": "TENANT_ADMIN",
                "tenantId": tb_id("TENANT", &tenant)}),
            "carol-local-1",
        )
        .await;
    let message = tb.log_in(&client, CAROL, CAROL_PASSWORD).await.error();
    assert!(message.contains("not verified"), "{message}");
}

async fn users_created_inactive_wait_for_an_administrator(app: TestApp) {
    let tb = setup(app).await;
    let mut body = tb.basic_client();
    body["mapperConfig"]["activateUser"] = json!(false);
    let client = tb.create_client(body).await;

    let message = tb.log_in(&client, ALICE, ALICE_PASSWORD).await.error();
    assert_eq!(message, "User is not active");
    let id = tb.user_id(ALICE_EMAIL).await.expect("alice was created");
    let user = tb.tb_user(&id).await;
    assert_eq!(user["authority"], "TENANT_ADMIN", "{user}");
    assert_eq!(
        user["additionalInfo"]["userCredentialsEnabled"], false,
        "{user}"
    );
    // Still not active at the next login; still one user.
    let message = tb.log_in(&client, ALICE, ALICE_PASSWORD).await.error();
    assert_eq!(message, "User is not active");
    assert_eq!(tb.user_id(ALICE_EMAIL).await.as_deref(), Some(id.as_str()));

    let (status, body) = tb
        .app
        .tb_request(
            Method::POST,
            &format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled=true"),
            Some(&format!("Bearer {}", tb.sys)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "enable: {body}");
    let (token, _) = tb.log_in(&client, ALICE, ALICE_PASSWORD).await.pair();
    assert_eq!(tb.app.tb_me(&token).await["id"]["id"], id);
}

async fn customer_and_custom_tenant_patterns_name_the_tenancy(app: TestApp) {
    let tb = setup(app).await;
    let mut body = tb.basic_client();
    body["mapperConfig"]["basic"]["customerNamePattern"] = json!("%{family_name} customers");
    let customers = tb.create_client(body).await;
    let mut body = tb.basic_client();
    body["title"] = json!("Custom tenants");
    body["mapperConfig"]["basic"]["tenantNameStrategy"] = json!("CUSTOM");
    body["mapperConfig"]["basic"]["tenantNamePattern"] = json!("%{given_name} corp");
    let custom = tb.create_client(body).await;

    let (token, _) = tb.log_in(&customers, ALICE, ALICE_PASSWORD).await.pair();
    let me = tb.app.tb_me(&token).await;
    let tenant = tenant_id_of("example.org");
    assert_eq!(me["authority"], "CUSTOMER_USER", "{me}");
    assert_eq!(entity_id(&me["tenantId"], "TENANT"), tenant.to_string());
    assert_eq!(
        entity_id(&me["customerId"], "CUSTOMER"),
        customer_id_of(tenant, "Smith customers").to_string()
    );
    assert_eq!(me["additionalInfo"]["authProviderName"], "TestOIDC", "{me}");
    assert_eq!(jwt_claims(&token)["scopes"], json!(["CUSTOMER_USER"]));

    let (token, _) = tb.log_in(&custom, BOB, BOB_PASSWORD).await.pair();
    let me = tb.app.tb_me(&token).await;
    assert_eq!(me["authority"], "TENANT_ADMIN", "{me}");
    assert_eq!(
        entity_id(&me["tenantId"], "TENANT"),
        tenant_id_of("Bob corp").to_string()
    );
    assert_eq!(entity_id(&me["customerId"], "CUSTOMER"), TB_NULL_UUID);
}

async fn post_and_public_clients_log_in(app: TestApp) {
    let tb = setup(app).await;
    let mut body = tb.basic_client();
    body["title"] = json!("Post");
    body["clientId"] = json!(POST_CLIENT_ID);
    body["clientSecret"] = json!(POST_CLIENT_SECRET);
    body["clientAuthenticationMethod"] = json!("POST");
    let post_client = tb.create_client(body).await;
    let mut body = tb.basic_client();
    body["title"] = json!("Public");
    body["clientId"] = json!(PUBLIC_CLIENT_ID);
    body.as_object_mut()
        .expect("an object")
        .remove("clientSecret");
    body["clientAuthenticationMethod"] = json!("NONE");
    let public_client = tb.create_client(body).await;

    let (token, _) = tb.log_in(&post_client, ALICE, ALICE_PASSWORD).await.pair();
    assert_eq!(tb.app.tb_me(&token).await["email"], ALICE_EMAIL);
    let (token, _) = tb.log_in(&public_client, BOB, BOB_PASSWORD).await.pair();
    assert_eq!(tb.app.tb_me(&token).await["email"], BOB_EMAIL);
    // One user per email, whichever client created it.
    let (token, _) = tb
        .log_in(&public_client, ALICE, ALICE_PASSWORD)
        .await
        .pair();
    assert_eq!(
        tb.app.tb_me(&token).await["id"]["id"],
        tb.user_id(ALICE_EMAIL).await.expect("alice").as_str()
    );
}

async fn the_login_is_bound_to_the_browser_and_single_use(app: TestApp) {
    let tb = setup(app).await;
    let client = tb.create_client(tb.basic_client()).await;

    // Stop at the callback and replay it elsewhere: refused, and the login is used up.
    let mut browser = Browser::new();
    let callback = browser
        .login_until(&tb.start_url(&client, None), ALICE, ALICE_PASSWORD, |url| {
            url.as_str().starts_with(&tb.app.url(CALLBACK))
        })
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    assert!(callback.query().is_some_and(|q| q.contains("code=")));
    let mut stranger = Browser::new();
    let page = stranger.get(callback.as_str()).await;
    let message = tb.landing(page.redirect()).error();
    assert!(message.contains("another browser"), "{message}");
    let page = browser.get(callback.as_str()).await;
    let message = tb.landing(page.redirect()).error();
    assert!(message.contains("used already"), "{message}");
    assert_eq!(tb.user_id(ALICE_EMAIL).await, None);

    // A callback without code and state, and a provider's error, end at the login page.
    let page = browser.get(&tb.app.url(CALLBACK)).await;
    tb.landing(page.redirect()).error();
    let page = browser
        .get(&tb.app.url(&format!(
            "{CALLBACK}?error=access_denied&error_description=denied+by+the+user&state=x"
        )))
        .await;
    assert_eq!(tb.landing(page.redirect()).error(), "denied by the user");

    // An unknown client: the login page with an error; a malformed id: ThingsBoard's 400.
    let page = browser
        .get(&tb.start_url(&uuid::Uuid::new_v4().to_string(), None))
        .await;
    let to = page.redirect();
    assert!(
        to.as_str()
            .starts_with(&format!("{}/login?loginError=", tb.app.base)),
        "{to}"
    );
    tb.landing(to).error();
    let (status, body) = tb
        .app
        .tb_request(Method::GET, "/oauth2/authorization/not-a-uuid", None, None)
        .await;
    assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);

    // prevUri must be a path here: other places are ignored.
    for hostile in [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "dashboards",
    ] {
        let landing = tb
            .log_in_with(
                &mut browser,
                &client,
                Some(hostile),
                (ALICE, ALICE_PASSWORD),
            )
            .await;
        let Landing::Pair { url, .. } = landing else {
            panic!("{hostile}: {landing:?}")
        };
        assert!(
            url.as_str()
                .starts_with(&format!("{}/?accessToken=", tb.app.base)),
            "{hostile}: {url}"
        );
    }
    // A path with its own query keeps it.
    let landing = tb
        .log_in_with(
            &mut browser,
            &client,
            Some("/dashboards/7?tab=2"),
            (ALICE, ALICE_PASSWORD),
        )
        .await;
    let Landing::Pair { url, .. } = landing else {
        panic!("{landing:?}")
    };
    assert!(
        url.as_str()
            .starts_with(&format!("{}/dashboards/7?tab=2&accessToken=", tb.app.base)),
        "{url}"
    );
}

async fn a_wrong_client_secret_ends_in_a_login_error(app: TestApp) {
    let tb = setup(app).await;
    let mut body = tb.basic_client();
    body["clientSecret"] = json!("not-the-secret");
    let client = tb.create_client(body).await;
    let message = tb.log_in(&client, ALICE, ALICE_PASSWORD).await.error();
    assert!(message.contains("invalid_client"), "{message}");
    assert_eq!(tb.user_id(ALICE_EMAIL).await, None);
}

async fn oauth2_logins_ask_no_second_factor(app: TestApp) {
    let tb = setup(app).await;
    let client = tb.create_client(tb.basic_client()).await;
    // A password user of the same kind, to show that 2FA is really enforced.
    let tenant = uuid::Uuid::new_v4().to_string();
    tb.app
        .tb_new_user(
            &tb.sys,
            json!({"email": "local@example.net", "authority": "TENANT_ADMIN",
                "tenantId": tb_id("TENANT", &tenant)}),
            "local-password-1",
        )
        .await;
    let settings = json!({
        "providers": [{"providerType": "TOTP", "issuerName": "Gatehouse"}],
        "minVerificationCodeSendPeriod": 30,
        "maxVerificationFailuresBeforeUserLockout": 10,
        "totalAllowedTimeForVerification": 3600,
        "enforceTwoFa": true,
        "enforcedUsersFilter": {"type": "TENANT_ADMINISTRATORS"},
    });
    let (status, saved) = tb.app.tb_post("/api/2fa/settings", &tb.sys, settings).await;
    assert_eq!(status, StatusCode::OK, "2FA settings: {saved}");
    let (status, body) = tb
        .app
        .tb_try_login("local@example.net", "local-password-1")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "MFA_CONFIGURATION_TOKEN", "{body}");

    // The OAuth2 login of an enforced tenant administrator gets a full pair.
    let (token, refresh) = tb.log_in(&client, ALICE, ALICE_PASSWORD).await.pair();
    assert_eq!(jwt_claims(&token)["scopes"], json!(["TENANT_ADMIN"]));
    assert!(!refresh.is_empty());
    assert_eq!(tb.app.tb_me(&token).await["email"], ALICE_EMAIL);

    // …also once alice has configured TOTP.
    let (status, config) = tb
        .app
        .tb_request(
            Method::POST,
            "/api/2fa/account/config/generate?providerType=TOTP",
            Some(&format!("Bearer {token}")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "generate: {config}");
    let secret = secret_of(config["authUrl"].as_str().expect("authUrl"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    let (status, body) = tb
        .app
        .tb_post(
            &format!(
                "/api/2fa/account/config?verificationCode={}",
                code_at(&secret, now)
            ),
            &token,
            config,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "configure TOTP: {body}");
    let (token, _) = tb.log_in(&client, ALICE, ALICE_PASSWORD).await.pair();
    assert_eq!(jwt_claims(&token)["scopes"], json!(["TENANT_ADMIN"]));
    assert_eq!(tb.app.tb_me(&token).await["email"], ALICE_EMAIL);
}

/// What a fake service saw: the path, the `Authorization` and `provider-access-token` headers,
/// and the body.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    provider_token: Option<String>,
    body: Value,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn record(log: &Log, path: &str, headers: &HeaderMap, body: Value) {
    log.lock().expect("the log").push(Seen {
        path: path.to_owned(),
        authorization: header_text(headers, "authorization"),
        provider_token: header_text(headers, "provider-access-token"),
        body,
    });
}

async fn the_github_mapper_reads_the_primary_verified_email(app: TestApp) {
    let tb = setup(app).await;
    let log: Log = Arc::default();
    let (user_log, emails_log) = (log.clone(), log.clone());
    let github = serve(
        Router::new()
            .route(
                "/user",
                get(move |headers: HeaderMap| {
                    record(&user_log, "/user", &headers, Value::Null);
                    async {
                        Json(json!({"login": "alice-gh", "id": 4242, "name": "Alice GH",
                            "email": null}))
                    }
                }),
            )
            .route(
                "/user/emails",
                get(move |headers: HeaderMap| {
                    record(&emails_log, "/user/emails", &headers, Value::Null);
                    async {
                        Json(json!([
                            {"email": "x@other.org", "primary": false, "verified": true},
                            {"email": "unverified@gh.example", "primary": true, "verified": false},
                            {"email": "alice@gh.example", "primary": true, "verified": true}
                        ]))
                    }
                }),
            ),
    )
    .await;
    let mut body = tb.basic_client();
    body["title"] = json!("GitHub");
    body["additionalInfo"] = json!({"providerName": "GitHub"});
    body["scope"] = json!(["openid", "email", "profile"]);
    body.as_object_mut().expect("an object").remove("jwkSetUri");
    body["userInfoUri"] = json!(format!("{github}/user"));
    body["userNameAttributeName"] = json!("login");
    body["mapperConfig"] = json!({
        "allowUserCreation": true, "activateUser": true, "type": "GITHUB",
        "basic": {"firstNameAttributeKey": "name", "tenantNameStrategy": "DOMAIN"}
    });
    let client = tb.create_client(body).await;

    let (token, _) = tb.log_in(&client, ALICE, ALICE_PASSWORD).await.pair();
    let me = tb.app.tb_me(&token).await;
    assert_eq!(me["email"], "alice@gh.example", "{me}");
    assert_eq!(me["firstName"], "Alice GH", "{me}");
    assert_eq!(me["authority"], "TENANT_ADMIN", "{me}");
    assert_eq!(
        entity_id(&me["tenantId"], "TENANT"),
        tenant_id_of("gh.example").to_string()
    );
    assert_eq!(me["additionalInfo"]["authProviderName"], "GitHub", "{me}");

    let seen = log.lock().expect("the log").clone();
    let paths: Vec<&str> = seen.iter().map(|seen| seen.path.as_str()).collect();
    assert_eq!(paths, ["/user", "/user/emails"], "{seen:?}");
    let authorization = seen[0].authorization.clone().expect("Authorization");
    assert_eq!(seen[1].authorization.as_ref(), Some(&authorization));
    let access_token = authorization
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a bearer token: {authorization}"));
    // The provider's own access token of alice.
    assert_eq!(tb.provider_subject(access_token).await, ALICE);

    // The next login is the same user (linked by the GitHub login).
    let (token, _) = tb.log_in(&client, ALICE, ALICE_PASSWORD).await.pair();
    assert_eq!(tb.app.tb_me(&token).await["id"]["id"], me["id"]["id"]);
}

async fn the_custom_mapper_asks_an_external_service(app: TestApp) {
    let tb = setup(app).await;
    let log: Log = Arc::default();
    let service_log = log.clone();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("mapper:mapper-pass")
    );
    let service = serve(Router::new().route(
        "/map",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            record(&service_log, "/map", &headers, body);
            let authorized =
                header_text(&headers, "authorization").as_deref() == Some(expected.as_str());
            async move {
                if !authorized {
                    return (StatusCode::UNAUTHORIZED, Json(json!({"error": "who?"})));
                }
                (
                    StatusCode::OK,
                    Json(json!({"email": "mapped@custom.example", "firstName": "M",
                        "tenantName": "Custom Tenant", "customerName": "Custom Customer"})),
                )
            }
        }),
    ))
    .await;
    let custom_client = |title: &str, password: &str, send_token: bool| {
        let mut body = tb.basic_client();
        body["title"] = json!(title);
        body["mapperConfig"] = json!({
            "allowUserCreation": true, "activateUser": true, "type": "CUSTOM",
            "custom": {"url": format!("{service}/map"), "username": "mapper",
                "password": password, "sendToken": send_token}
        });
        body
    };
    let plain = tb
        .create_client(custom_client("Custom", "mapper-pass", false))
        .await;
    let with_token = tb
        .create_client(custom_client("Custom with token", "mapper-pass", true))
        .await;
    let wrong = tb
        .create_client(custom_client("Custom wrong", "not-the-pass", false))
        .await;

    let (token, _) = tb.log_in(&plain, ALICE, ALICE_PASSWORD).await.pair();
    let me = tb.app.tb_me(&token).await;
    let tenant = tenant_id_of("Custom Tenant");
    assert_eq!(me["email"], "mapped@custom.example", "{me}");
    assert_eq!(me["firstName"], "M", "{me}");
    assert_eq!(me["authority"], "CUSTOMER_USER", "{me}");
    assert_eq!(entity_id(&me["tenantId"], "TENANT"), tenant.to_string());
    assert_eq!(
        entity_id(&me["customerId"], "CUSTOMER"),
        customer_id_of(tenant, "Custom Customer").to_string()
    );
    {
        let seen = log.lock().expect("the log");
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].body["email"], ALICE_EMAIL, "{:?}", seen[0]);
        let groups = seen[0].body["groups"].as_array().expect("groups");
        assert!(groups.contains(&json!(PLANT_ADMINS)), "{:?}", seen[0]);
        assert_eq!(seen[0].provider_token, None, "no sendToken: {:?}", seen[0]);
    }

    // With sendToken the service gets the provider's access token; the mapped email finds the
    // same user.
    let (token, _) = tb.log_in(&with_token, BOB, BOB_PASSWORD).await.pair();
    assert_eq!(tb.app.tb_me(&token).await["id"]["id"], me["id"]["id"]);
    let provider_token = {
        let seen = log.lock().expect("the log");
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[1].body["email"], BOB_EMAIL, "{:?}", seen[1]);
        seen[1]
            .provider_token
            .clone()
            .unwrap_or_else(|| panic!("no provider-access-token: {:?}", seen[1]))
    };
    assert_eq!(tb.provider_subject(&provider_token).await, BOB);

    // The service refusing the mapper's credentials is a failed login.
    let message = tb.log_in(&wrong, ALICE, ALICE_PASSWORD).await.error();
    assert!(message.contains("401"), "{message}");
    assert_eq!(log.lock().expect("the log").len(), 3);
}

async fn the_public_login_buttons_lead_into_the_login(app: TestApp) {
    let tb = setup(app).await;
    let client = tb.create_client(tb.basic_client()).await;
    let own = tb.app.base.trim_start_matches("http://").to_owned();
    let (status, domain) = tb
        .app
        .tb_post(
            &format!("/api/domain?oauth2ClientIds={client}"),
            &tb.sys,
            json!({"name": own, "oauth2Enabled": true, "propagateToEdge": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "save domain: {domain}");
    let (status, buttons) = tb
        .app
        .tb_request(Method::POST, "/api/noauth/oauth2Clients", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{buttons}");
    assert_eq!(
        buttons,
        json!([{"name": "Test", "icon": "test-icon",
            "url": format!("/oauth2/authorization/{client}")}])
    );
    let url = tb.app.url(buttons[0]["url"].as_str().expect("url"));
    let landed = Browser::new()
        .login_until(&url, ALICE, ALICE_PASSWORD, |url| tb.past_the_login(url))
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    let (token, _) = tb.landing(landed).pair();
    assert_eq!(tb.app.tb_me(&token).await["email"], ALICE_EMAIL);
}

async fn a_login_expires_after_180_seconds(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let tb = setup(app).await;
    let client = tb.create_client(tb.basic_client()).await;
    let mut browser = Browser::new();
    let at_callback = |url: &Url| url.as_str().starts_with(&tb.app.url(CALLBACK));

    // Back within 180 s: a pair.
    let callback = browser
        .login_until(
            &tb.start_url(&client, None),
            ALICE,
            ALICE_PASSWORD,
            at_callback,
        )
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    clock.advance(179_000);
    let page = browser.get(callback.as_str()).await;
    tb.landing(page.redirect()).pair();

    // Later: refused, and used up.
    let callback = browser
        .login_until(
            &tb.start_url(&client, None),
            ALICE,
            ALICE_PASSWORD,
            at_callback,
        )
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    clock.advance(180_001);
    let page = browser.get(callback.as_str()).await;
    let message = tb.landing(page.redirect()).error();
    assert!(message.contains("too long"), "{message}");
    let page = browser.get(callback.as_str()).await;
    let message = tb.landing(page.redirect()).error();
    assert!(message.contains("used already"), "{message}");

    // A client deleted while its login is under way fails that login.
    let callback = browser
        .login_until(
            &tb.start_url(&client, None),
            ALICE,
            ALICE_PASSWORD,
            at_callback,
        )
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    let (status, body) = tb
        .app
        .tb_request(
            Method::DELETE,
            &format!("/api/oauth2/client/{client}"),
            Some(&format!("Bearer {}", tb.sys)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "delete the client: {body}");
    let page = browser.get(callback.as_str()).await;
    let message = tb.landing(page.redirect()).error();
    assert!(message.contains("deleted"), "{message}");
    // And it cannot be started any more.
    let page = browser.get(&tb.start_url(&client, None)).await;
    assert_eq!(
        tb.landing(page.redirect()).error(),
        "OAuth2 client not found"
    );
}

/// A tenant administrator controls its clients' mappers (a CUSTOM mapper may answer any
/// email), so a tenant's client logs in only users of that tenant and places new users there:
/// another tenant's administrator and the system administrator stay out of reach.
async fn a_tenant_client_reaches_only_its_own_tenant(app: TestApp) {
    let tb = setup(app).await;
    let own_tenant = uuid::Uuid::new_v4().to_string();
    let (_, mallory, _) = tb
        .app
        .tb_new_user(
            &tb.sys,
            json!({"email": "mallory@tenant-a.example", "authority": "TENANT_ADMIN",
                "tenantId": tb_id("TENANT", &own_tenant)}),
            "mallory-pass-1",
        )
        .await;
    let other_tenant = uuid::Uuid::new_v4().to_string();
    let (victim_id, _, _) = tb
        .app
        .tb_new_user(
            &tb.sys,
            json!({"email": "victim@other.example", "authority": "TENANT_ADMIN",
                "tenantId": tb_id("TENANT", &other_tenant)}),
            "victim-pass-1",
        )
        .await;
    // mallory's mapping service names whoever she wants.
    let answer: Arc<Mutex<Value>> = Arc::new(Mutex::new(json!({})));
    let served = answer.clone();
    let service = serve(Router::new().route(
        "/map",
        post(move || {
            let body = served.lock().expect("answer").clone();
            async move { Json(body) }
        }),
    ))
    .await;
    let mut body = tb.basic_client();
    body["mapperConfig"] = json!({"allowUserCreation": true, "activateUser": true,
        "type": "CUSTOM", "custom": {"url": format!("{service}/map")}});
    let (status, saved) = tb.app.tb_post("/api/oauth2/client", &mallory, body).await;
    assert_eq!(status, StatusCode::OK, "tenant client: {saved}");
    let client = saved["id"]["id"].as_str().expect("client id").to_owned();

    for target in ["victim@other.example", "admin"] {
        *answer.lock().expect("answer") = json!({"email": target, "tenantName": "x"});
        let landing = tb.log_in(&client, ALICE, ALICE_PASSWORD).await;
        if target == "admin" {
            // "admin" is no email: refused before any lookup.
            assert!(matches!(landing, Landing::Error(_)), "{landing:?}");
        } else {
            let message = landing.error();
            assert!(message.contains("may not log in"), "{target}: {message}");
        }
    }
    // The victim is untouched and still logs in with its password.
    tb.app
        .tb_login("victim@other.example", "victim-pass-1")
        .await;
    assert_eq!(
        tb.user_id("victim@other.example").await.as_deref(),
        Some(victim_id.as_str())
    );

    // A new user lands in mallory's tenant, whatever tenant the mapper names.
    *answer.lock().expect("answer") =
        json!({"email": "new@tenant-a.example", "tenantName": "Other Tenant"});
    let (token, _) = tb.log_in(&client, ALICE, ALICE_PASSWORD).await.pair();
    let me = tb.app.tb_me(&token).await;
    assert_eq!(me["authority"], "TENANT_ADMIN", "{me}");
    assert_eq!(entity_id(&me["tenantId"], "TENANT"), own_tenant);
}

/// A Connectware user named like the mapped email (but with no email of its own) is not found
/// by an OAuth2 login, and no second user of that name can be made: the login fails and the
/// Connectware user keeps its password and permissions to itself.
async fn connectware_users_are_never_taken_over(app: TestApp) {
    let tb = setup(app).await;
    let ops = tb
        .app
        .create_user(ALICE_EMAIL, "Connectware-pass-1!", &[])
        .await;
    let client = tb.create_client(tb.basic_client()).await;
    let message = tb.log_in(&client, ALICE, ALICE_PASSWORD).await.error();
    assert!(message.contains("exists"), "{message}");
    let entry = tb
        .user_entry(ALICE_EMAIL)
        .await
        .expect("the Connectware user");
    assert_eq!(entry["id"], ops["id"]);
    assert_eq!(entry["identityProvider"], "local");
    let (status, _) = tb.app.try_login(ALICE_EMAIL, "Connectware-pass-1!").await;
    assert_eq!(status, StatusCode::OK);
}

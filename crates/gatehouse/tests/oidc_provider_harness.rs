//! Proves the OpenID provider harness (`tests/common/oidc.rs`) on its own, without Gatehouse's
//! relying-party code: the test plays the relying party by hand (a tiny HTTP endpoint that sets
//! a state cookie, redirects to the provider and takes the callback), logs users in through the
//! scripted browser, redeems the codes at the token endpoint and reads the tokens.

mod common;

use std::net::SocketAddr;

use axum::extract::RawQuery;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use common::oidc::*;
use reqwest::Url;
use serde_json::Value;

/// A stand-in relying party on a free loopback port.
///
/// - `GET /login?state=S&go=URL` sets the cookie `rp_state=S` and redirects to `URL` (the
///   authorization request the test built);
/// - `GET /callback?…` insists on that cookie matching `state` (else 400), then redirects with a
///   relative `Location` to `/ui/signed-in?<the callback's query>`, never served: the browser
///   stops there.
struct RelyingParty {
    address: SocketAddr,
}

impl RelyingParty {
    async fn start() -> RelyingParty {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let router = Router::new()
            .route("/login", get(rp_login))
            .route("/callback", get(rp_callback));
        tokio::spawn(async move { axum::serve(listener, router).await });
        RelyingParty { address }
    }

    fn base(&self) -> String {
        format!("http://{}", self.address)
    }

    fn redirect_uri(&self) -> String {
        format!("{}/callback", self.base())
    }

    /// Where the browser stops: the relying party's UI.
    fn ui(&self) -> String {
        format!("{}/ui/", self.base())
    }

    /// The relying party's login URL that starts `authorization_url`.
    fn login_url(&self, state: &str, authorization_url: &Url) -> String {
        let mut url = Url::parse(&format!("{}/login", self.base())).expect("a URL");
        url.query_pairs_mut()
            .append_pair("state", state)
            .append_pair("go", authorization_url.as_str());
        url.to_string()
    }
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let url = Url::parse(&format!("http://x/?{}", query.unwrap_or(""))).expect("a URL");
    url.query_pairs().into_owned().collect()
}

fn pair<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

async fn rp_login(RawQuery(query): RawQuery) -> Response {
    let pairs = query_pairs(query.as_deref());
    let (Some(state), Some(go)) = (pair(&pairs, "state"), pair(&pairs, "go")) else {
        return (StatusCode::BAD_REQUEST, "state and go needed").into_response();
    };
    (
        StatusCode::FOUND,
        [
            (
                header::SET_COOKIE,
                format!("rp_state={state}; Path=/; HttpOnly"),
            ),
            (header::LOCATION, go.to_owned()),
        ],
    )
        .into_response()
}

async fn rp_callback(headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let pairs = query_pairs(query.as_deref());
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "rp_state")
        .map(|(_, value)| value.to_owned());
    if cookie.is_none() || cookie.as_deref() != pair(&pairs, "state") {
        return (StatusCode::BAD_REQUEST, "state cookie missing or different").into_response();
    }
    let location = format!("/ui/signed-in?{}", query.unwrap_or_default());
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// The authorization request of `client_id` with `state`, `nonce` and optional PKCE.
fn authorization_url(
    discovery: &Value,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    nonce: &str,
    code_challenge: Option<&str>,
) -> Url {
    let endpoint = discovery["authorization_endpoint"]
        .as_str()
        .expect("authorization_endpoint");
    let mut url = Url::parse(endpoint).expect("a URL");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", SCOPES)
        .append_pair("state", state)
        .append_pair("nonce", nonce);
    if let Some(challenge) = code_challenge {
        url.query_pairs_mut()
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
    }
    url
}

/// The query parameters of the URL the browser stopped at.
fn final_query(url: &Url) -> Vec<(String, String)> {
    url.query_pairs().into_owned().collect()
}

/// Logs `login` in through the relying party with client `client_id`; returns the callback's
/// query as the relying party's UI got it.
#[allow(clippy::too_many_arguments)]
async fn sign_in(
    browser: &mut Browser,
    rp: &RelyingParty,
    discovery: &Value,
    client_id: &str,
    login: &str,
    password: &str,
    nonce: &str,
    code_challenge: Option<&str>,
) -> Result<Vec<(String, String)>, Failure> {
    let state = format!("state-{}", uuid::Uuid::new_v4().simple());
    let authorization = authorization_url(
        discovery,
        client_id,
        &rp.redirect_uri(),
        &state,
        nonce,
        code_challenge,
    );
    let url = browser
        .login_at_provider(
            &rp.login_url(&state, &authorization),
            login,
            password,
            &rp.ui(),
        )
        .await?;
    assert!(
        url.path().starts_with("/ui/signed-in"),
        "stopped at the UI: {url}"
    );
    let query = final_query(&url);
    assert_eq!(pair(&query, "state"), Some(state.as_str()), "state: {url}");
    Ok(query)
}

/// POSTs a token request; returns the status and the JSON body.
async fn token_request(
    discovery: &Value,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (reqwest::StatusCode, Value) {
    let endpoint = discovery["token_endpoint"]
        .as_str()
        .expect("token_endpoint");
    let mut request = reqwest::Client::new().post(endpoint).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.expect("the token endpoint answers");
    let status = response.status();
    let body = response.json().await.expect("a JSON token response");
    (status, body)
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|item| item.as_str().expect("a string"))
        .collect()
}

#[tokio::test]
async fn discovery_and_signing_keys() {
    let provider = OidcProvider::start(ProviderConfig::default_for(vec![
        "http://127.0.0.1:1/callback".to_owned(),
    ]))
    .await;
    let issuer = provider.issuer();
    assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");
    assert!(!issuer.ends_with('/'));
    let discovery = provider.discovery().await;
    assert_eq!(discovery["issuer"], issuer);
    for scope in ["openid", "email", "profile", "groups"] {
        assert!(
            strings(&discovery["scopes_supported"]).contains(&scope),
            "{scope}: {discovery}"
        );
    }
    for claim in ["email", "groups", "oid", "preferred_username"] {
        assert!(strings(&discovery["claims_supported"]).contains(&claim));
    }
    assert!(strings(&discovery["id_token_signing_alg_values_supported"]).contains(&"RS256"));
    assert!(strings(&discovery["code_challenge_methods_supported"]).contains(&"S256"));
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
    ] {
        let url = discovery[endpoint].as_str().expect(endpoint);
        assert!(url.starts_with(issuer), "{endpoint}: {url}");
    }

    let jwks_uri = discovery["jwks_uri"].as_str().expect("jwks_uri");
    let jwks: Value = reqwest::get(jwks_uri)
        .await
        .expect("the JWKS")
        .json()
        .await
        .expect("JSON");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS256");
    assert_eq!(keys[0]["use"], "sig");
    assert!(keys[0]["kid"].is_string());
    assert!(keys[0].get("d").is_none(), "no private parts published");
}

#[tokio::test]
async fn alice_signs_in_with_client_secret_basic() {
    let rp = RelyingParty::start().await;
    let provider = OidcProvider::start(ProviderConfig::default_for(vec![rp.redirect_uri()])).await;
    let discovery = provider.discovery().await;
    let mut browser = Browser::new();
    let nonce = format!("nonce-{}", uuid::Uuid::new_v4().simple());

    let query = sign_in(
        &mut browser,
        &rp,
        &discovery,
        CLIENT_ID,
        ALICE,
        ALICE_PASSWORD,
        &nonce,
        None,
    )
    .await
    .unwrap_or_else(|failure| panic!("alice's login: {failure}"));
    assert_eq!(pair(&query, "iss"), Some(provider.issuer()), "RFC 9207 iss");
    let code = pair(&query, "code").expect("a code").to_owned();
    // Both sides' cookies are in the jar, each for its own flow.
    assert!(browser.cookie(&rp.base(), "rp_state").is_some());
    assert!(browser.cookie(provider.issuer(), "_op_session").is_some());

    let redirect_uri = rp.redirect_uri();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
    ];
    let (status, tokens) = token_request(&discovery, Some((CLIENT_ID, CLIENT_SECRET)), &form).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let id_token = tokens["id_token"].as_str().expect("an ID token");
    let header = jwt_claims(&format!(
        "x.{}",
        id_token.split('.').next().expect("a header")
    ));
    assert_eq!(header["alg"], "RS256", "{header}");
    let claims = jwt_claims(id_token);
    assert_eq!(claims["iss"], provider.issuer(), "{claims}");
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["sub"], ALICE);
    assert_eq!(claims["nonce"], nonce.as_str());
    assert_eq!(claims["email"], ALICE_EMAIL);
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["preferred_username"], ALICE_EMAIL);
    assert_eq!(claims["oid"], ALICE_OID);
    assert_eq!(claims["given_name"], "Alice");
    assert_eq!(claims["family_name"], "Smith");
    assert_eq!(claims["name"], "Alice Smith");
    assert_eq!(strings(&claims["groups"]), ALICE_GROUPS);
    assert!(claims["exp"].as_u64() > claims["iat"].as_u64());

    // Userinfo with the access token.
    let access_token = tokens["access_token"].as_str().expect("an access token");
    let userinfo: Value = reqwest::Client::new()
        .get(discovery["userinfo_endpoint"].as_str().expect("userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(userinfo["sub"], ALICE, "{userinfo}");
    assert_eq!(userinfo["email"], ALICE_EMAIL);
    assert_eq!(userinfo["oid"], ALICE_OID);
    assert_eq!(strings(&userinfo["groups"]), ALICE_GROUPS);

    // The refresh token works (without offline_access).
    let refresh_token = tokens["refresh_token"].as_str().expect("a refresh token");
    let (status, refreshed) = token_request(
        &discovery,
        Some((CLIENT_ID, CLIENT_SECRET)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{refreshed}");
    assert!(refreshed["access_token"].is_string());

    // The provider session is kept: a second sign-in needs no password.
    let state = "second-state";
    let authorization =
        authorization_url(&discovery, CLIENT_ID, &rp.redirect_uri(), state, "n2", None);
    let url = browser
        .follow(&rp.login_url(state, &authorization), |url| {
            url.as_str().starts_with(&rp.ui())
        })
        .await
        .stopped();
    assert!(
        final_query(&url).iter().any(|(key, _)| key == "code"),
        "{url}"
    );

    // A code is single-use (and its reuse revokes the grant, refresh tokens included).
    let (status, error) = token_request(&discovery, Some((CLIENT_ID, CLIENT_SECRET)), &form).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_grant", "{error}");
    let latest = refreshed["refresh_token"].as_str().unwrap_or(refresh_token);
    let (status, error) = token_request(
        &discovery,
        Some((CLIENT_ID, CLIENT_SECRET)),
        &[("grant_type", "refresh_token"), ("refresh_token", latest)],
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_grant", "{error}");
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_are_refused() {
    let rp = RelyingParty::start().await;
    let provider = OidcProvider::start(ProviderConfig::default_for(vec![rp.redirect_uri()])).await;
    let discovery = provider.discovery().await;

    for (login, password) in [
        (ALICE, "wrong-password"),
        (ALICE, BOB_PASSWORD),
        ("mallory", "mallory-1"),
    ] {
        let mut browser = Browser::new();
        let result = sign_in(
            &mut browser,
            &rp,
            &discovery,
            CLIENT_ID,
            login,
            password,
            "n",
            None,
        )
        .await;
        assert!(
            matches!(result, Err(Failure::LoginRefused)),
            "{login}/{password}: {result:?}"
        );
    }

    // An unknown client: the provider shows an error page, reported precisely.
    let mut browser = Browser::new();
    let authorization = authorization_url(&discovery, "nobody", &rp.redirect_uri(), "s", "n", None);
    match browser
        .login_at_provider(
            &rp.login_url("s", &authorization),
            ALICE,
            ALICE_PASSWORD,
            &rp.ui(),
        )
        .await
    {
        Err(Failure::Unexpected { status, url, .. }) => {
            assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
            assert!(url.as_str().starts_with(provider.issuer()), "{url}");
        }
        other => panic!("an unknown client: {other:?}"),
    }
}

#[tokio::test]
async fn client_secret_post_and_public_client_with_pkce() {
    let rp = RelyingParty::start().await;
    let provider = OidcProvider::start(ProviderConfig::default_for(vec![rp.redirect_uri()])).await;
    let discovery = provider.discovery().await;
    let redirect_uri = rp.redirect_uri();

    // bob with client_secret_post.
    let query = sign_in(
        &mut Browser::new(),
        &rp,
        &discovery,
        POST_CLIENT_ID,
        BOB,
        BOB_PASSWORD,
        "bob-nonce",
        None,
    )
    .await
    .unwrap_or_else(|failure| panic!("bob's login: {failure}"));
    let code = pair(&query, "code").expect("a code");
    let (status, tokens) = token_request(
        &discovery,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("client_id", POST_CLIENT_ID),
            ("client_secret", POST_CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{tokens}");
    let claims = jwt_claims(tokens["id_token"].as_str().expect("an ID token"));
    assert_eq!(claims["aud"], POST_CLIENT_ID);
    assert_eq!(claims["email"], BOB_EMAIL);
    assert_eq!(claims["oid"], BOB_OID);
    assert_eq!(claims["nonce"], "bob-nonce");
    assert_eq!(strings(&claims["groups"]), BOB_GROUPS);

    // carol with the public client and PKCE S256.
    let verifier = format!(
        "verifier-{}-{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = pkce_s256(&verifier);
    let query = sign_in(
        &mut Browser::new(),
        &rp,
        &discovery,
        PUBLIC_CLIENT_ID,
        CAROL,
        CAROL_PASSWORD,
        "carol-nonce",
        Some(&challenge),
    )
    .await
    .unwrap_or_else(|failure| panic!("carol's login: {failure}"));
    let code = pair(&query, "code").expect("a code");
    let redeem = |verifier: String, code: String| {
        let discovery = &discovery;
        let redirect_uri = &redirect_uri;
        async move {
            token_request(
                discovery,
                None,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect_uri),
                    ("client_id", PUBLIC_CLIENT_ID),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    };
    // A wrong verifier is refused (and spends the code).
    let (status, error) = redeem(format!("{verifier}-wrong"), code.to_owned()).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_grant", "{error}");

    let query = sign_in(
        &mut Browser::new(),
        &rp,
        &discovery,
        PUBLIC_CLIENT_ID,
        CAROL,
        CAROL_PASSWORD,
        "carol-nonce",
        Some(&challenge),
    )
    .await
    .unwrap_or_else(|failure| panic!("carol's second login: {failure}"));
    let (status, tokens) = redeem(verifier, pair(&query, "code").expect("a code").to_owned()).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{tokens}");
    let claims = jwt_claims(tokens["id_token"].as_str().expect("an ID token"));
    assert_eq!(claims["aud"], PUBLIC_CLIENT_ID);
    assert_eq!(claims["sub"], CAROL);
    assert_eq!(claims["email"], CAROL_EMAIL);
    assert_eq!(claims["email_verified"], false);
    assert_eq!(claims["oid"], CAROL_OID);
    assert_eq!(strings(&claims["groups"]), CAROL_GROUPS);

    // Without PKCE the public client gets an error back at its redirect URI.
    let result = sign_in(
        &mut Browser::new(),
        &rp,
        &discovery,
        PUBLIC_CLIENT_ID,
        CAROL,
        CAROL_PASSWORD,
        "n",
        None,
    )
    .await
    .unwrap_or_else(|failure| panic!("the error redirect: {failure}"));
    assert_eq!(
        pair(&result, "error"),
        Some("invalid_request"),
        "{result:?}"
    );
    assert!(pair(&result, "code").is_none());
}

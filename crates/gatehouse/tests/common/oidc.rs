//! A real OpenID Connect provider for tests, and a small scripted browser to log in through it.
//!
//! [`OidcProvider`] runs `tests/oidc/provider.mjs`: npm's `oidc-provider` (pinned to 9.13.3 in
//! `tests/oidc/package.json`) on Node.js, plain HTTP on `127.0.0.1` and a free port, with its
//! built-in development login and consent forms (the script checks the password against its user
//! table). The ID token carries every claim its scopes grant; request [`SCOPES`]. Its cookies are
//! renamed (`_op_session`, `_op_interaction`, `_op_interaction_resume`) so they never clash with
//! the relying party's on the same host.
//!
//! [`ProviderConfig::default_for`] gives three clients and three users:
//!
//! ```text
//! client gatehouse          secret gatehouse-secret        client_secret_basic
//! client gatehouse-post     secret gatehouse-post-secret   client_secret_post
//! client gatehouse-public   (no secret)                    none (PKCE S256 required)
//!
//! alice  alice-oidc-1  alice@example.org (verified)    groups 11111111-…-000000000001, plant-admins
//! bob    bob-oidc-1    bob@example.org   (verified)    groups 11111111-…-000000000002
//! carol  carol-oidc-1  carol@example.org (unverified)  no groups
//! ```
//!
//! Every user also has `name`, `given_name`, `family_name`, `preferred_username` (the email) and
//! an Entra-style object id `oid` (scope `profile`). The `sub` is the login.
//!
//! The npm packages are installed by `scripts/test` (`npm ci` in `tests/oidc`). Without Node.js or
//! without them the test fails loudly: it is never skipped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{StatusCode, Url};
use serde_json::{json, Map, Value};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// The confidential client authenticating with HTTP Basic (`client_secret_basic`).
pub const CLIENT_ID: &str = "gatehouse";
/// The secret of [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "gatehouse-secret";
/// The confidential client authenticating in the form body (`client_secret_post`).
pub const POST_CLIENT_ID: &str = "gatehouse-post";
/// The secret of [`POST_CLIENT_ID`].
pub const POST_CLIENT_SECRET: &str = "gatehouse-post-secret";
/// The public client (`none`; the provider requires PKCE S256 from it).
pub const PUBLIC_CLIENT_ID: &str = "gatehouse-public";
/// The scopes that bring every claim of the users.
pub const SCOPES: &str = "openid email profile groups";

/// A group id (Entra style) of alice.
pub const ALICE_GROUP_ID: &str = "11111111-aaaa-4aaa-8aaa-000000000001";
/// A group name of alice.
pub const PLANT_ADMINS: &str = "plant-admins";
/// alice's login (and `sub`).
pub const ALICE: &str = "alice";
/// alice's password at the provider.
pub const ALICE_PASSWORD: &str = "alice-oidc-1";
/// alice's email (verified).
pub const ALICE_EMAIL: &str = "alice@example.org";
/// alice's `oid`.
pub const ALICE_OID: &str = "00000000-0000-4000-8000-00000000a11c";
/// alice's `groups`.
pub const ALICE_GROUPS: [&str; 2] = [ALICE_GROUP_ID, PLANT_ADMINS];

/// The group id of bob.
pub const BOB_GROUP_ID: &str = "11111111-aaaa-4aaa-8aaa-000000000002";
/// bob's login (and `sub`).
pub const BOB: &str = "bob";
/// bob's password at the provider.
pub const BOB_PASSWORD: &str = "bob-oidc-1";
/// bob's email (verified).
pub const BOB_EMAIL: &str = "bob@example.org";
/// bob's `oid`.
pub const BOB_OID: &str = "00000000-0000-4000-8000-00000000b0b0";
/// bob's `groups`.
pub const BOB_GROUPS: [&str; 1] = [BOB_GROUP_ID];

/// carol's login (and `sub`).
pub const CAROL: &str = "carol";
/// carol's password at the provider.
pub const CAROL_PASSWORD: &str = "carol-oidc-1";
/// carol's email (`email_verified` false).
pub const CAROL_EMAIL: &str = "carol@example.org";
/// carol's `oid`.
pub const CAROL_OID: &str = "00000000-0000-4000-8000-0000000ca201";
/// carol's `groups`: none (the claim is an empty array).
pub const CAROL_GROUPS: [&str; 0] = [];

/// Longest wait for the provider's READY line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Most requests one [`Browser::follow`] or [`Browser::login_at_provider`] makes.
const MAX_STEPS: usize = 30;

/// One client registered at the provider.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub client_id: String,
    /// `None` for a public client.
    pub client_secret: Option<String>,
    pub redirect_uris: Vec<String>,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    pub token_endpoint_auth_method: String,
    pub post_logout_redirect_uris: Vec<String>,
}

/// One user of the provider; `claims` are what `findAccount` answers (besides `sub` = `login`).
#[derive(Debug, Clone)]
pub struct UserConfig {
    pub login: String,
    pub password: String,
    pub claims: Map<String, Value>,
}

/// What the provider starts with.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// 0: a free port.
    pub port: u16,
    pub clients: Vec<ClientConfig>,
    pub users: Vec<UserConfig>,
    /// oidc-provider's `ttl` overrides in seconds (`AuthorizationCode`, `AccessToken`,
    /// `IdToken`, `RefreshToken`, `Session`, …); empty: its defaults (codes live 60 s).
    pub ttl: Vec<(String, u64)>,
    /// Seconds of clock skew the provider tolerates (its default is 15).
    pub clock_tolerance: Option<u64>,
}

impl ProviderConfig {
    /// The three clients (all with `redirect_uris`) and the three users of the module docs.
    pub fn default_for(redirect_uris: Vec<String>) -> ProviderConfig {
        let client = |id: &str, secret: Option<&str>, method: &str| ClientConfig {
            client_id: id.to_owned(),
            client_secret: secret.map(str::to_owned),
            redirect_uris: redirect_uris.clone(),
            token_endpoint_auth_method: method.to_owned(),
            post_logout_redirect_uris: Vec::new(),
        };
        ProviderConfig {
            port: 0,
            clients: vec![
                client(CLIENT_ID, Some(CLIENT_SECRET), "client_secret_basic"),
                client(
                    POST_CLIENT_ID,
                    Some(POST_CLIENT_SECRET),
                    "client_secret_post",
                ),
                client(PUBLIC_CLIENT_ID, None, "none"),
            ],
            users: vec![
                user(
                    ALICE,
                    ALICE_PASSWORD,
                    ALICE_EMAIL,
                    true,
                    ("Alice", "Smith"),
                    ALICE_OID,
                    &ALICE_GROUPS,
                ),
                user(
                    BOB,
                    BOB_PASSWORD,
                    BOB_EMAIL,
                    true,
                    ("Bob", "Jones"),
                    BOB_OID,
                    &BOB_GROUPS,
                ),
                user(
                    CAROL,
                    CAROL_PASSWORD,
                    CAROL_EMAIL,
                    false,
                    ("Carol", "White"),
                    CAROL_OID,
                    &CAROL_GROUPS,
                ),
            ],
            ttl: Vec::new(),
            clock_tolerance: None,
        }
    }

    fn to_json(&self) -> Value {
        let clients: Vec<Value> = self
            .clients
            .iter()
            .map(|client| {
                let mut value = json!({
                    "client_id": client.client_id,
                    "redirect_uris": client.redirect_uris,
                    "token_endpoint_auth_method": client.token_endpoint_auth_method,
                    "post_logout_redirect_uris": client.post_logout_redirect_uris,
                });
                if let Some(secret) = &client.client_secret {
                    value["client_secret"] = json!(secret);
                }
                value
            })
            .collect();
        let users: Vec<Value> = self
            .users
            .iter()
            .map(|user| json!({"login": user.login, "password": user.password, "claims": user.claims}))
            .collect();
        let mut value = json!({"port": self.port, "clients": clients, "users": users});
        if !self.ttl.is_empty() {
            let ttl: Map<String, Value> = self
                .ttl
                .iter()
                .map(|(name, seconds)| (name.clone(), json!(seconds)))
                .collect();
            value["ttl"] = Value::Object(ttl);
        }
        if let Some(tolerance) = self.clock_tolerance {
            value["clockTolerance"] = json!(tolerance);
        }
        value
    }
}

fn user(
    login: &str,
    password: &str,
    email: &str,
    email_verified: bool,
    (given, family): (&str, &str),
    oid: &str,
    groups: &[&str],
) -> UserConfig {
    let claims = json!({
        "email": email,
        "email_verified": email_verified,
        "name": format!("{given} {family}"),
        "given_name": given,
        "family_name": family,
        "preferred_username": email,
        "oid": oid,
        "groups": groups,
    });
    let Value::Object(claims) = claims else {
        unreachable!()
    };
    UserConfig {
        login: login.to_owned(),
        password: password.to_owned(),
        claims,
    }
}

/// The directory of `provider.mjs` and its npm packages.
pub fn provider_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// A running oidc-provider, killed on drop (and exiting by itself when this process dies: it
/// watches its stdin).
pub struct OidcProvider {
    issuer: String,
    child: Child,
    _stdin: ChildStdin,
    stderr_path: PathBuf,
    _directory: TempDir,
}

impl OidcProvider {
    /// Starts `node provider.mjs` and waits for its READY line. Panics (never skips) if Node.js
    /// or the npm packages are missing or the provider does not come up.
    pub async fn start(config: ProviderConfig) -> OidcProvider {
        let script_directory = provider_directory();
        let package = script_directory.join("node_modules/oidc-provider/package.json");
        let installed = std::fs::read_to_string(&package).unwrap_or_default();
        let installed: Value = serde_json::from_str(&installed).unwrap_or(Value::Null);
        assert!(
            installed["version"] == "9.13.3",
            "the OpenID provider's npm packages are missing or stale ({} has version {}): run \
             `npm ci` in {} (scripts/test does it; Node.js 20+ and npm are needed)",
            package.display(),
            installed["version"],
            script_directory.display()
        );

        let directory = tempfile::tempdir().expect("a temporary directory");
        let stderr_path = directory.path().join("provider.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("the provider's stderr file");
        let mut child = Command::new("node")
            .arg(script_directory.join("provider.mjs"))
            .arg(config.to_json().to_string())
            .current_dir(&script_directory)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run `node` (Node.js 20+ is needed for the OpenID provider; .ci/run \
                     installs nodejs and npm): {error}"
                )
            });
        let stdin = child.stdin.take().expect("the provider's stdin");
        let stdout = child.stdout.take().expect("the provider's stdout");

        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.transpose() {
                match line {
                    Ok(line) => {
                        if let Some(issuer) = line.strip_prefix("READY ") {
                            return Ok(issuer.trim().to_owned());
                        }
                    }
                    Err(error) => return Err(format!("reading its stdout: {error}")),
                }
            }
            Err("it exited before it was ready".to_owned())
        })
        .await
        .unwrap_or_else(|_| Err(format!("no READY line within {START_TIMEOUT:?}")));
        let issuer = match ready {
            Ok(issuer) => issuer,
            Err(reason) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                panic!("the OpenID provider did not start: {reason}; its stderr:\n{log}");
            }
        };
        // Keep reading stdout so the provider never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        OidcProvider {
            issuer,
            child,
            _stdin: stdin,
            stderr_path,
            _directory: directory,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash), exactly as the tokens' `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The port the provider listens on.
    pub fn port(&self) -> u16 {
        Url::parse(&self.issuer)
            .expect("the issuer is a URL")
            .port()
            .expect("the issuer has a port")
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// The discovery document.
    pub async fn discovery(&self) -> Value {
        let response = reqwest::get(self.discovery_url())
            .await
            .expect("fetch the discovery document");
        assert_eq!(response.status(), StatusCode::OK, "discovery document");
        response.json().await.expect("the discovery document")
    }

    /// What the provider wrote on stderr so far (its warnings and errors).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The payload of a JWT, decoded without any verification.
pub fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {jwt}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .unwrap_or_else(|error| panic!("the JWT payload is not base64url ({error}): {jwt}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|error| panic!("the JWT payload ({error})"))
}

/// The PKCE S256 `code_challenge` of `verifier`: base64url(SHA-256(verifier)).
pub fn pkce_s256(verifier: &str) -> String {
    let rustls::SupportedCipherSuite::Tls13(suite) =
        rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
    else {
        unreachable!("a TLS 1.3 suite")
    };
    let digest = suite.common.hash_provider.hash(verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// How a login through [`Browser::login_at_provider`] failed.
#[derive(Debug)]
pub enum Failure {
    /// The provider refused the login and password (it showed its login form again).
    LoginRefused,
    /// A response that is neither a redirect nor a form of the flow.
    Unexpected {
        status: StatusCode,
        url: Url,
        body: String,
    },
    /// No response at all.
    Transport { url: Url, error: String },
    /// More than 30 requests without reaching the destination.
    TooManySteps { url: Url },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::LoginRefused => write!(f, "the provider refused the login"),
            Failure::Unexpected { status, url, body } => {
                write!(f, "unexpected {status} from {url}: {body}")
            }
            Failure::Transport { url, error } => write!(f, "no response from {url}: {error}"),
            Failure::TooManySteps { url } => write!(f, "too many redirects, last {url}"),
        }
    }
}

/// One response as the browser saw it.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: StatusCode,
    /// The URL requested.
    pub url: Url,
    /// `Location`, joined to [`Page::url`].
    pub location: Option<Url>,
    pub body: String,
}

impl Page {
    /// `Location` of a redirect; panics with the page otherwise.
    pub fn redirect(&self) -> Url {
        match &self.location {
            Some(location) if self.status.is_redirection() => location.clone(),
            _ => panic!(
                "expected a redirect from {}, got {}: {}",
                self.url, self.status, self.body
            ),
        }
    }
}

/// Where [`Browser::follow`] ended.
#[derive(Debug, Clone)]
pub enum Followed {
    /// A URL the predicate accepted; it was not requested.
    Stopped(Url),
    /// A response that is not a redirect.
    Landed(Page),
}

impl Followed {
    /// The URL it stopped at; panics if it landed on a page.
    pub fn stopped(self) -> Url {
        match self {
            Followed::Stopped(url) => url,
            Followed::Landed(page) => panic!(
                "expected to stop at a redirect, landed on {} with {}: {}",
                page.url, page.status, page.body
            ),
        }
    }
}

/// A cookie in the jar.
#[derive(Debug, Clone)]
struct StoredCookie {
    name: String,
    value: String,
    domain: String,
    host_only: bool,
    path: String,
}

/// A scripted browser: follows redirects by hand, joins relative `Location`s and keeps cookies
/// like a browser does (per host, not per port, as RFC 6265 says; `Path` and `Domain` honoured,
/// expired cookies removed; `Secure` and `SameSite` ignored, as loopback is trustworthy and
/// all ports of one host are the same site).
pub struct Browser {
    client: reqwest::Client,
    cookies: Vec<StoredCookie>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    /// An empty cookie jar.
    pub fn new() -> Browser {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .expect("an HTTP client");
        Browser {
            client,
            cookies: Vec::new(),
        }
    }

    /// GET `url` with the jar's cookies; stores the response's cookies. Panics if nothing answers.
    pub async fn get(&mut self, url: &str) -> Page {
        let url = parse_url(url);
        self.send(reqwest::Method::GET, url, None)
            .await
            .unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// GET `url` with one more request header (`Referer`, `Accept`, …), like [`Browser::get`].
    pub async fn send_with_header(&mut self, url: &str, (name, value): (&str, &str)) -> Page {
        let url = parse_url(url);
        self.send_with(reqwest::Method::GET, url, None, &[(name, value)])
            .await
            .unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// POSTs a form (`application/x-www-form-urlencoded`) to `url`.
    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let url = parse_url(url);
        self.send(reqwest::Method::POST, url, Some(form))
            .await
            .unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// Follows redirects from `url` (requesting it first) until `until` accepts a URL, which is
    /// then not requested, or a response is not a redirect.
    pub async fn follow(&mut self, url: &str, until: impl Fn(&Url) -> bool) -> Followed {
        let mut url = parse_url(url);
        for _ in 0..MAX_STEPS {
            if until(&url) {
                return Followed::Stopped(url);
            }
            let page = self
                .send(reqwest::Method::GET, url, None)
                .await
                .unwrap_or_else(|failure| panic!("{failure}"));
            match &page.location {
                Some(location) if page.status.is_redirection() => url = location.clone(),
                _ => return Followed::Landed(page),
            }
        }
        panic!("more than {MAX_STEPS} redirects, last {url}");
    }

    /// Logs in through the provider as a user would: GETs `start_url` (the relying party's login
    /// endpoint, which redirects to the provider), follows to the login form, posts `login` and
    /// `password`, posts the consent form if it comes, follows back through the relying party's
    /// callback and on until a URL starts with `stop_at` (not requested). Returns that URL.
    pub async fn login_at_provider(
        &mut self,
        start_url: &str,
        login: &str,
        password: &str,
        stop_at: &str,
    ) -> Result<Url, Failure> {
        self.login_until(start_url, login, password, |url| {
            url.as_str().starts_with(stop_at)
        })
        .await
    }

    /// Like [`Browser::login_at_provider`], but stops at the first URL `until` accepts (not
    /// requested; `start_url` is checked too). Returns that URL.
    pub async fn login_until(
        &mut self,
        start_url: &str,
        login: &str,
        password: &str,
        until: impl Fn(&Url) -> bool,
    ) -> Result<Url, Failure> {
        let mut url = parse_url(start_url);
        let mut logged_in = false;
        for _ in 0..MAX_STEPS {
            if until(&url) {
                return Ok(url);
            }
            let page = self.send(reqwest::Method::GET, url, None).await?;
            if let Some(location) = redirect_of(&page) {
                url = location;
                continue;
            }
            if page.status != StatusCode::OK {
                return Err(unexpected(page));
            }
            let answer = match interaction_prompt(&page.body) {
                Some("login") if !logged_in => {
                    logged_in = true;
                    let action = form_action(&page);
                    let form = [
                        ("prompt", "login"),
                        ("login", login),
                        ("password", password),
                    ];
                    let answer = self
                        .send(reqwest::Method::POST, action, Some(&form))
                        .await?;
                    if matches!(
                        answer.status,
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                    ) || (answer.status == StatusCode::OK
                        && interaction_prompt(&answer.body) == Some("login"))
                    {
                        return Err(Failure::LoginRefused);
                    }
                    answer
                }
                // Asked to log in again after a successful login.
                Some("login") => return Err(Failure::LoginRefused),
                Some("consent") => {
                    let action = form_action(&page);
                    self.send(
                        reqwest::Method::POST,
                        action,
                        Some(&[("prompt", "consent")]),
                    )
                    .await?
                }
                _ => return Err(unexpected(page)),
            };
            match redirect_of(&answer) {
                Some(location) => url = location,
                None => return Err(unexpected(answer)),
            }
        }
        Err(Failure::TooManySteps { url })
    }

    /// The value of cookie `name` the browser would send to `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = parse_url(url);
        self.cookies
            .iter()
            .find(|cookie| cookie.name == name && cookie.matches(&url))
            .map(|cookie| cookie.value.clone())
    }

    /// Forgets every cookie (a fresh browser profile).
    pub fn clear_cookies(&mut self) {
        self.cookies.clear();
    }

    async fn send(
        &mut self,
        method: reqwest::Method,
        url: Url,
        form: Option<&[(&str, &str)]>,
    ) -> Result<Page, Failure> {
        self.send_with(method, url, form, &[]).await
    }

    async fn send_with(
        &mut self,
        method: reqwest::Method,
        url: Url,
        form: Option<&[(&str, &str)]>,
        headers: &[(&str, &str)],
    ) -> Result<Page, Failure> {
        let mut request = self.client.request(method, url.clone());
        if let Some(header) = self.cookie_header(&url) {
            request = request.header(COOKIE, header);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(form) = form {
            request = request.form(form);
        }
        let response = request.send().await.map_err(|error| Failure::Transport {
            url: url.clone(),
            error: error.to_string(),
        })?;
        let status = response.status();
        for header in response.headers().get_all(SET_COOKIE) {
            if let Ok(header) = header.to_str() {
                self.store_cookie(&url, header);
            }
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                url.join(value)
                    .unwrap_or_else(|error| panic!("bad Location {value:?} from {url}: {error}"))
            });
        let body = response.text().await.map_err(|error| Failure::Transport {
            url: url.clone(),
            error: error.to_string(),
        })?;
        Ok(Page {
            status,
            url,
            location,
            body,
        })
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|cookie| cookie.matches(url))
            .map(|cookie| format!("{}={}", cookie.name, cookie.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn store_cookie(&mut self, url: &Url, header: &str) {
        let Some(host) = url.host_str() else { return };
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let mut cookie = StoredCookie {
            name: name.trim().to_owned(),
            value: value.trim().trim_matches('"').to_owned(),
            domain: host.to_ascii_lowercase(),
            host_only: true,
            path: default_path(url),
        };
        let mut expired = false;
        for attribute in parts {
            let (key, value) = attribute
                .split_once('=')
                .map_or((attribute, ""), |(key, value)| (key, value));
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "domain" if !value.is_empty() => {
                    cookie.domain = value.trim_start_matches('.').to_ascii_lowercase();
                    cookie.host_only = false;
                }
                "path" if value.starts_with('/') => cookie.path = value.to_owned(),
                "max-age" => {
                    expired = value.parse::<i64>().map_or(expired, |seconds| seconds <= 0);
                }
                "expires" => {
                    if let Some(at) = parse_http_date(value) {
                        expired = at <= SystemTime::now();
                    }
                }
                _ => {}
            }
        }
        if cookie.name.is_empty() || !cookie.domain_matches(host) {
            return;
        }
        self.cookies.retain(|stored| {
            !(stored.name == cookie.name
                && stored.domain == cookie.domain
                && stored.path == cookie.path)
        });
        if !expired {
            self.cookies.push(cookie);
        }
    }
}

impl StoredCookie {
    fn domain_matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        host == self.domain || (!self.host_only && host.ends_with(&format!(".{}", self.domain)))
    }

    fn matches(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        if !self.domain_matches(host) {
            return false;
        }
        let path = url.path();
        path == self.path
            || (path.starts_with(&self.path)
                && (self.path.ends_with('/') || path[self.path.len()..].starts_with('/')))
    }
}

fn parse_url(url: &str) -> Url {
    Url::parse(url).unwrap_or_else(|error| panic!("not a URL ({error}): {url}"))
}

fn redirect_of(page: &Page) -> Option<Url> {
    page.location
        .clone()
        .filter(|_| page.status.is_redirection())
}

fn unexpected(page: Page) -> Failure {
    Failure::Unexpected {
        status: page.status,
        url: page.url,
        body: page.body,
    }
}

/// The `prompt` of one of the provider's interaction forms (`login` or `consent`).
fn interaction_prompt(body: &str) -> Option<&'static str> {
    if body.contains(r#"name="prompt" value="login""#) {
        Some("login")
    } else if body.contains(r#"name="prompt" value="consent""#) {
        Some("consent")
    } else {
        None
    }
}

/// The `action` of the page's form, joined to its URL (the page's URL without one).
fn form_action(page: &Page) -> Url {
    let action = page
        .body
        .split("<form")
        .nth(1)
        .and_then(|form| form.split("action=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .map(unescape_html);
    match action {
        Some(action) if !action.is_empty() => page
            .url
            .join(&action)
            .unwrap_or_else(|error| panic!("bad form action {action:?} on {}: {error}", page.url)),
        _ => page.url.clone(),
    }
}

fn unescape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(character) => {
                out.push(character);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// RFC 6265's default path: the request path up to its last `/` (or `/`).
fn default_path(url: &Url) -> String {
    let path = url.path();
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(index) => path[..index].to_owned(),
    }
}

/// `Thu, 01 Jan 1970 00:00:00 GMT` (also with dashes: `01-Jan-1970`).
fn parse_http_date(text: &str) -> Option<SystemTime> {
    let text = text.replace('-', " ");
    let fields: Vec<&str> = text.split_whitespace().collect();
    let (day, month, year, time) = match fields.as_slice() {
        [_, day, month, year, time, ..] => (*day, *month, *year, *time),
        _ => return None,
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|name| month.to_ascii_lowercase().starts_with(name))? as i64
        + 1;
    let mut year: i64 = year.parse().ok()?;
    if year < 100 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    let mut clock = time.split(':').map(|part| part.parse::<i64>().ok());
    let (hours, minutes, seconds) = (clock.next()??, clock.next()??, clock.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let unix = days * 86_400 + hours * 3_600 + minutes * 60 + seconds;
    Some(if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH
    })
}

//! Test harness: starts the real application (what `gatehouse serve` starts) on a random
//! loopback port with a fresh database, and talks HTTP to it.
//!
//! Every test runs on both engines through [`both_engines!`]: SQLite always, PostgreSQL when
//! `GATEHOUSE_TEST_DATABASE_URL` names a server (the test script and CI set it; if it is set and
//! the server cannot be reached the test fails). Each PostgreSQL test gets its own database,
//! dropped afterwards.
#![allow(dead_code)]

pub mod backup;
pub mod broker;
pub mod captcha;
pub mod ldap;
pub mod oidc;
pub mod otp;
pub mod ports;
pub mod replica;
pub mod smtp;

use std::path::PathBuf;
use std::sync::Arc;

use gatehouse::config::Settings;
use gatehouse::startup::Application;
use gatehouse_core::clock::{Clock, ManualClock, SystemClock};
use gatehouse_core::hashing::Argon2Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

/// Password of the bootstrap admin in tests.
pub const ADMIN_PASSWORD: &str = "admin-test-password";

/// The database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file in a fresh temporary directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server of `GATEHOUSE_TEST_DATABASE_URL`.
    Postgres,
}

/// The PostgreSQL server for tests, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var("GATEHOUSE_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A fresh PostgreSQL database that is dropped with this guard.
struct PostgresDatabase {
    server_url: String,
    name: String,
}

impl PostgresDatabase {
    async fn create(server_url: &str) -> (Self, String) {
        let name = format!("gatehouse_test_{}", uuid::Uuid::new_v4().simple());
        let mut connection = sqlx::PgConnection::connect(server_url)
            .await
            .unwrap_or_else(|error| {
                panic!("GATEHOUSE_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {error}")
            });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .expect("create the test database");
        let _ = connection.close().await;
        let url = replace_database(server_url, &name);
        (
            Self {
                server_url: server_url.to_owned(),
                name,
            },
            url,
        )
    }
}

/// `postgres://u@h:p/db?x` with the database replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        // Drop runs outside async; use a private runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut connection = sqlx::PgConnection::connect(&server_url).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut connection)
                .await
                .ok()?;
                connection.close().await.ok()
            })
        })
        .join();
    }
}

/// A running application and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `https://127.0.0.1:PORT` of the HTTPS listener, when `tls.listen` was set.
    pub tls_base: Option<String>,
    /// HTTP client (no redirects followed).
    pub client: reqwest::Client,
    /// A token of the bootstrap admin.
    pub admin_token: String,
    /// The engine in use.
    pub engine: Engine,
    /// The settings the app was started with.
    pub settings: Settings,
    /// The manual clock, when the test asked for one.
    pub clock: Option<Arc<ManualClock>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _data_dir: tempfile::TempDir,
    _postgres: Option<PostgresDatabase>,
}

/// Settings for tests: random port, cheap argon2id (the same algorithm, lower cost).
pub fn test_settings(data_dir: PathBuf) -> Settings {
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        data_dir,
        admin_password: Some(ADMIN_PASSWORD.to_owned()),
        ..Settings::default()
    };
    settings.hashing.argon2 = Argon2Config {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    settings.database.max_connections = 5;
    settings
}

impl TestApp {
    /// Starts an app on `engine` with default test settings.
    pub async fn spawn(engine: Engine) -> Self {
        Self::spawn_with(engine, |_| {}, None).await
    }

    /// Starts an app on `engine`, letting the test adjust settings and supply a manual clock.
    pub async fn spawn_with(
        engine: Engine,
        adjust: impl FnOnce(&mut Settings),
        clock: Option<Arc<ManualClock>>,
    ) -> Self {
        let data_dir = tempfile::tempdir().expect("temporary directory");
        let mut settings = test_settings(data_dir.path().to_path_buf());
        let postgres = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => {
                let server =
                    postgres_url().expect("PostgreSQL tests need GATEHOUSE_TEST_DATABASE_URL");
                let (database, url) = PostgresDatabase::create(&server).await;
                settings.database_url = Some(url);
                Some(database)
            }
        };
        adjust(&mut settings);
        let app_clock: Arc<dyn Clock> = match &clock {
            Some(manual) => manual.clone(),
            None => Arc::new(SystemClock),
        };
        let application = Application::build_with_clock(&settings, app_clock)
            .await
            .expect("application starts");
        let address = application.local_addr().expect("bound address");
        let tls_base = application
            .tls_addr()
            .map(|address| format!("https://{}", address.expect("bound HTTPS address")));
        let (shutdown, server) = serve_in_background(application);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        let mut app = Self {
            base: format!("http://{address}"),
            tls_base,
            client,
            admin_token: String::new(),
            engine,
            settings,
            clock,
            shutdown: Some(shutdown),
            server: Some(server),
            _data_dir: data_dir,
            _postgres: postgres,
        };
        app.admin_token = app.login("admin", ADMIN_PASSWORD).await;
        app
    }

    /// Stops this app and starts a fresh one on the same engine with `adjust`ed settings and a
    /// manual clock standing at a fixed instant (2030-03-17), which the test moves.
    pub async fn on_manual_clock(
        self,
        adjust: impl FnOnce(&mut Settings),
    ) -> (TestApp, Arc<ManualClock>) {
        let engine = self.engine;
        self.stop().await;
        let clock = Arc::new(ManualClock::new(1_900_000_000_000));
        let app = TestApp::spawn_with(engine, adjust, Some(clock.clone())).await;
        (app, clock)
    }

    /// Stops this app and starts a fresh one on the same engine with the HTTPS listener on a
    /// random loopback port (and `adjust`ed settings).
    pub async fn with_tls(self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let engine = self.engine;
        self.stop().await;
        TestApp::spawn_with(
            engine,
            |settings| {
                settings.tls.listen = Some("127.0.0.1:0".parse().expect("loopback address"));
                adjust(settings);
            },
            None,
        )
        .await
    }

    /// The built-in CA certificate (PEM), as written to the data directory.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.settings.data_dir.join("ca.crt")).expect("ca.crt")
    }

    /// A client for the HTTPS listener that trusts the built-in CA and presents `identity`
    /// (certificate and private key, PEM) when given.
    pub fn https_client(&self, identity: Option<(&str, &str)>) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca_pem().as_bytes()).expect("CA PEM"),
            )
            .redirect(reqwest::redirect::Policy::none());
        if let Some((certificate, key)) = identity {
            let pem = format!("{certificate}\n{key}");
            builder =
                builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
        }
        builder.build().expect("https client")
    }

    /// Absolute URL of `path` on the HTTPS listener.
    pub fn tls_url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.tls_base.as_deref().expect("HTTPS listener"),
            path
        )
    }

    /// Whether any stored byte sequence of the database holds `needle` (SQLite: the database files
    /// themselves; PostgreSQL: every row of every table as text).
    pub async fn database_contains(&self, needle: &str) -> bool {
        match self.engine {
            Engine::Sqlite => {
                let mut found = false;
                for entry in std::fs::read_dir(&self.settings.data_dir).unwrap() {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    if name.starts_with("gatehouse.db") {
                        let bytes = std::fs::read(&path).unwrap();
                        if bytes
                            .windows(needle.len())
                            .any(|window| window == needle.as_bytes())
                        {
                            found = true;
                        }
                    }
                }
                found
            }
            Engine::Postgres => {
                let url = self.settings.database_url.clone().unwrap();
                let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
                let tables: Vec<String> = sqlx::query(
                    "SELECT table_name::text AS name FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .fetch_all(&mut connection)
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<String, _>("name"))
                .collect();
                assert!(tables.iter().any(|table| table == "users"), "{tables:?}");
                let mut found = false;
                for table in tables {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT t::text AS line FROM \"{table}\" t"
                    )))
                    .fetch_all(&mut connection)
                    .await
                    .unwrap();
                    if rows
                        .iter()
                        .any(|row| row.get::<String, _>("line").contains(needle))
                    {
                        found = true;
                    }
                }
                let _ = connection.close().await;
                found
            }
        }
    }

    /// Runs one SQL statement on the app's database over a connection of its own, as another
    /// program would, bypassing the server (and its change notification).
    pub async fn execute_sql(&self, sql: &str) {
        let statement = sqlx::AssertSqlSafe(sql.to_owned());
        match self.engine {
            Engine::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&self.settings.database_url())
                    .await
                    .expect("SQLite connection");
                sqlx::query(statement)
                    .execute(&mut connection)
                    .await
                    .expect(sql);
                let _ = connection.close().await;
            }
            Engine::Postgres => {
                let url = self.settings.database_url();
                let mut connection = sqlx::PgConnection::connect(&url)
                    .await
                    .expect("PostgreSQL connection");
                sqlx::query(statement)
                    .execute(&mut connection)
                    .await
                    .expect(sql);
                let _ = connection.close().await;
            }
        }
    }

    /// Stops the server and waits for it (the database is dropped afterwards with `self`).
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with an optional bearer token and JSON body; returns status and JSON
    /// (`Value::Null` when the body is empty, a JSON string when it is not JSON).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        send_json(&self.client, method, self.url(path), token, body).await
    }

    /// GET as `token`.
    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, Some(token), None).await
    }
    /// POST JSON as `token`.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }
    /// PUT JSON as `token`.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, path, Some(token), Some(body))
            .await
    }
    /// DELETE as `token`, with an optional JSON body.
    pub async fn delete(
        &self,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, Some(token), body).await
    }
    /// Sends a raw body with a content type (for malformed input).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("response body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Attempts `POST /api/login`; returns status and answer.
    pub async fn try_login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.request(
            Method::POST,
            "/api/login",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    /// Logs in through `POST /api/login` and returns the token; panics unless 200.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self.try_login(username, password).await;
        assert_eq!(status, StatusCode::OK, "login of {username} failed: {body}");
        body["token"]
            .as_str()
            .expect("token in login answer")
            .to_owned()
    }

    /// Creates a role as admin; returns its JSON.
    pub async fn create_role(&self, name: &str, permissions: Value) -> Value {
        let (status, body) = self
            .post(
                "/api/roles",
                &self.admin_token,
                json!({"name": name, "permissions": permissions}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create role {name}: {body}");
        body
    }

    /// Creates a user as admin with a password and role ids; returns its JSON.
    pub async fn create_user(&self, username: &str, password: &str, role_ids: &[&str]) -> Value {
        let (status, body) = self
            .post(
                "/api/users",
                &self.admin_token,
                json!({"username": username, "password": password, "roles": role_ids}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "create user {username}: {body}"
        );
        body
    }

    /// The sum of the `/metrics` samples whose line starts with `prefix` (a series name with
    /// some of its labels).
    pub async fn metric_value(&self, prefix: &str) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The id of the built-in role `name`.
    pub async fn role_id(&self, name: &str) -> String {
        let (status, body) = self
            .get(&format!("/api/roles?name={name}"), &self.admin_token)
            .await;
        assert_eq!(status, StatusCode::OK);
        body[0]["id"].as_str().expect("role id").to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Asserts an error answer of the Connectware shape with `status`, and returns its message.
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode) -> String {
    assert_eq!(status, expected, "unexpected status, body: {body}");
    assert_eq!(
        body["statusCode"],
        json!(expected.as_u16()),
        "error shape: {body}"
    );
    assert!(body["error"].is_string(), "error shape: {body}");
    body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error shape: {body}"))
        .to_owned()
}

/// Runs `application` on a task until the returned sender fires (or is dropped).
pub fn serve_in_background(
    application: Application,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = application
            .run_until(async {
                let _ = stop.await;
            })
            .await;
    });
    (shutdown, server)
}

/// Sends a request to `url` with an optional bearer token and JSON body; returns status and
/// JSON (`Value::Null` when the body is empty, a JSON string when it is not JSON).
pub async fn send_json(
    client: &reqwest::Client,
    method: Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let text = response.text().await.expect("response body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// Runs each listed `async fn name(app: TestApp)` as two tests, `sqlite::name` and
/// `postgres::name`. The PostgreSQL variant runs only when `GATEHOUSE_TEST_DATABASE_URL` is set
/// (the test script always sets it).
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::common::TestApp::spawn($crate::common::Engine::Sqlite).await;
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::common::postgres_url().is_none() {
                        eprintln!("GATEHOUSE_TEST_DATABASE_URL is not set: PostgreSQL variant not run");
                        return;
                    }
                    let app = $crate::common::TestApp::spawn($crate::common::Engine::Postgres).await;
                    super::$name(app).await;
                }
            )*
        }
    };
}

#[test]
fn replaces_the_database_in_urls() {
    assert_eq!(
        replace_database("postgres://root@127.0.0.1:5432/test", "x"),
        "postgres://root@127.0.0.1:5432/x"
    );
    assert_eq!(
        replace_database("postgres://root@h/test?sslmode=disable", "x"),
        "postgres://root@h/x?sslmode=disable"
    );
    assert_eq!(
        replace_database("postgres://root@h", "x"),
        "postgres://root@h/x"
    );
}

// ---------------------------------------------------------------------------------------------
// ThingsBoard dialect helpers (used by the `thingsboard_*` test files).

/// ThingsBoard's `NULL_UUID`: the tenant of system administrators, the customer of everyone
/// who is not a customer user.
pub const TB_NULL_UUID: &str = "13814000-1dd2-11b2-8080-808080808080";

/// An answer as it came: status, headers and body text.
#[derive(Debug)]
pub struct RawAnswer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as text.
    pub text: String,
}

impl RawAnswer {
    /// The body as JSON (`Value::Null` when empty, a JSON string when not JSON).
    pub fn json(&self) -> Value {
        if self.text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&self.text).unwrap_or(Value::String(self.text.clone()))
        }
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }
}

impl TestApp {
    /// Sends a request with exactly the given headers and raw body; nothing is added.
    pub async fn tb_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> RawAnswer {
        let mut request = self.client.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        RawAnswer {
            status,
            headers,
            text,
        }
    }

    /// A ThingsBoard request: `X-Authorization: <auth>` (the whole value, e.g. `Bearer …` or
    /// `ApiKey tb_…`) when given, and an optional JSON body.
    pub async fn tb_request(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(auth) = auth {
            headers.push(("x-authorization", auth));
        }
        let bytes = body.map(|body| {
            headers.push(("content-type", "application/json"));
            serde_json::to_vec(&body).expect("JSON body")
        });
        let answer = self.tb_send(method, path, &headers, bytes).await;
        (answer.status, answer.json())
    }

    /// GET with `X-Authorization: Bearer <token>`.
    pub async fn tb_get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.tb_request(Method::GET, path, Some(&format!("Bearer {token}")), None)
            .await
    }

    /// POST JSON with `X-Authorization: Bearer <token>`.
    pub async fn tb_post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.tb_request(
            Method::POST,
            path,
            Some(&format!("Bearer {token}")),
            Some(body),
        )
        .await
    }

    /// Attempts `POST /api/auth/login`.
    pub async fn tb_try_login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.tb_request(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    /// Logs in through `POST /api/auth/login`; returns (token, refreshToken). Panics unless 200.
    pub async fn tb_login(&self, username: &str, password: &str) -> (String, String) {
        let (status, body) = self.tb_try_login(username, password).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "TB login of {username} failed: {body}"
        );
        tb_pair(&body)
    }

    /// The caller's user (`GET /api/auth/user`); panics unless 200.
    pub async fn tb_me(&self, token: &str) -> Value {
        let (status, body) = self.tb_get("/api/auth/user", token).await;
        assert_eq!(status, StatusCode::OK, "GET /api/auth/user: {body}");
        body
    }

    /// Creates a user through `POST /api/user` as `token`; panics unless 200.
    pub async fn tb_create_user(&self, token: &str, body: Value) -> Value {
        let (status, answer) = self.tb_post("/api/user", token, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "POST /api/user {body}: {answer}");
        answer
    }

    /// A fresh activation token of a user (from `GET /api/user/{id}/activationLink`).
    pub async fn tb_activation_token(&self, token: &str, user_id: &str) -> String {
        let answer = self
            .tb_send(
                Method::GET,
                &format!("/api/user/{user_id}/activationLink"),
                &[("x-authorization", &format!("Bearer {token}"))],
                None,
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "activationLink: {}",
            answer.text
        );
        answer
            .text
            .split_once("activateToken=")
            .map(|(_, token)| token.trim().to_owned())
            .unwrap_or_else(|| panic!("no activateToken in {}", answer.text))
    }

    /// Activates with `POST /api/noauth/activate?sendActivationMail=false`; returns the pair.
    pub async fn tb_activate(&self, activate_token: &str, password: &str) -> (String, String) {
        let (status, body) = self
            .tb_request(
                Method::POST,
                "/api/noauth/activate?sendActivationMail=false",
                None,
                Some(json!({"activateToken": activate_token, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "activate: {body}");
        tb_pair(&body)
    }

    /// Creates a user as `creator_token` and activates it with `password`; returns
    /// (user id, token, refreshToken).
    pub async fn tb_new_user(
        &self,
        creator_token: &str,
        body: Value,
        password: &str,
    ) -> (String, String, String) {
        let user = self.tb_create_user(creator_token, body).await;
        let id = user["id"]["id"].as_str().expect("user id").to_owned();
        let activate_token = self.tb_activation_token(creator_token, &id).await;
        let (token, refresh) = self.tb_activate(&activate_token, password).await;
        (id, token, refresh)
    }

    /// Reads the security settings as `token`, lets `change` edit them, saves them; returns
    /// what the server saved. Panics unless both calls answer 200.
    pub async fn tb_update_security(&self, token: &str, change: impl FnOnce(&mut Value)) -> Value {
        let (status, mut settings) = self.tb_get("/api/admin/securitySettings", token).await;
        assert_eq!(status, StatusCode::OK, "GET securitySettings: {settings}");
        change(&mut settings);
        let (status, saved) = self
            .tb_post("/api/admin/securitySettings", token, settings.clone())
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "POST securitySettings {settings}: {saved}"
        );
        saved
    }
}

/// `(token, refreshToken)` of a JwtPair answer.
pub fn tb_pair(body: &Value) -> (String, String) {
    let token = body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {body}"))
        .to_owned();
    let refresh = body["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no refreshToken in {body}"))
        .to_owned();
    (token, refresh)
}

/// `{"entityType": kind, "id": id}`.
pub fn tb_id(kind: &str, id: &str) -> Value {
    json!({"entityType": kind, "id": id})
}

/// Asserts an answer in ThingsBoard's error shape `{status, message, errorCode, timestamp}`
/// with `expected` status; returns (errorCode, message).
pub fn assert_tb_shape(status: StatusCode, body: &Value, expected: StatusCode) -> (u64, String) {
    assert_eq!(status, expected, "unexpected status, body: {body}");
    assert_eq!(
        body["status"],
        json!(expected.as_u16()),
        "TB error shape: {body}"
    );
    assert!(
        body["timestamp"].is_i64() || body["timestamp"].is_u64(),
        "TB error shape: {body}"
    );
    let code = body["errorCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("TB error shape: {body}"));
    let message = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("TB error shape: {body}"))
        .to_owned();
    (code, message)
}

/// Asserts a ThingsBoard error with exactly this status, code and message.
pub fn assert_tb_error(
    status: StatusCode,
    body: &Value,
    expected: StatusCode,
    code: u64,
    message: &str,
) {
    let (actual_code, actual_message) = assert_tb_shape(status, body, expected);
    assert_eq!(actual_code, code, "errorCode of {body}");
    assert_eq!(actual_message, message, "message of {body}");
}

/// The decoded payload of a JWT, as text (to check the claims' order).
pub fn jwt_payload_text(token: &str) -> String {
    use base64::Engine as _;
    let payload = token
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {token}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .unwrap_or_else(|error| panic!("JWT payload is not base64url: {error}"));
    String::from_utf8(bytes).expect("JWT payload is UTF-8")
}

/// The decoded claims of a JWT (signature not checked).
pub fn jwt_claims(token: &str) -> Value {
    serde_json::from_str(&jwt_payload_text(token)).expect("JWT payload is JSON")
}

//! Backup and restore with the real `gatehouse` binary, on SQLite and (when
//! `GATEHOUSE_TEST_DATABASE_URL` is set) PostgreSQL:
//!
//! - the `backup` and `restore` commands: an archive taken of a stopped server's database and
//!   of a running one's, restored into a fresh installation that has the source's keys, which
//!   then serves the source's users; a corrupt archive fails with exit status 1, a message
//!   naming the problem and the database unchanged;
//! - a server killed (SIGKILL) at any moment of a restore through the API starts again, and
//!   its database holds either everything it held before or everything the archive holds:
//!   never a mix.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::backup::{carried, difference, dump_url, seed_users, unseal, Dump, FreshPostgres};
use common::ports::free_port;
use common::{postgres_url, Engine};
use reqwest::StatusCode;
use serde_json::{json, Value};

const SOURCE_ADMIN_PASSWORD: &str = "source-admin-pass-1";
const TARGET_ADMIN_PASSWORD: &str = "target-admin-pass-1";
const MOVER: &str = "mover";
const MOVER_PASSWORD: &str = "mover-password-1";
const TARGET_USER: &str = "target-only";
const TARGET_USER_PASSWORD: &str = "target-password-1";

/// Where an installation keeps its data: a data directory (keys, SQLite database, archives)
/// and, on PostgreSQL, a database of its own.
struct Place {
    directory: tempfile::TempDir,
    postgres: Option<FreshPostgres>,
}

impl Place {
    async fn new(engine: Engine) -> Self {
        let postgres = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(FreshPostgres::create().await.expect("PostgreSQL server")),
        };
        Self {
            directory: tempfile::tempdir().expect("temporary directory"),
            postgres,
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.directory.path().join("data")
    }

    /// The database's URL, for the tests' own connections.
    fn url(&self) -> String {
        match &self.postgres {
            Some(database) => database.url.clone(),
            None => format!(
                "sqlite://{}",
                self.data_dir().join("gatehouse.db").display()
            ),
        }
    }

    /// The flags that point a command at this place.
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--data-dir".to_owned(),
            self.data_dir().display().to_string(),
        ];
        if let Some(database) = &self.postgres {
            args.push("--database-url".to_owned());
            args.push(database.url.clone());
        }
        args
    }

    /// Gives this (fresh) place the keys of `source`: MFA key and CA.
    fn copy_keys_from(&self, source: &Place) {
        std::fs::create_dir_all(self.data_dir()).expect("data directory");
        for file in ["mfa.key", "ca.crt", "ca.key"] {
            std::fs::copy(source.data_dir().join(file), self.data_dir().join(file))
                .unwrap_or_else(|error| panic!("copy {file}: {error}"));
        }
    }

    async fn dump(&self) -> Dump {
        carried(dump_url(&self.url()).await)
    }

    fn log(&self) -> PathBuf {
        self.directory.path().join("server.log")
    }

    /// Whether another connection holds a write transaction on the live tables now: during a
    /// restore, only its last step (replacing the live tables) writes to them. SQLite: the
    /// write lock is taken; PostgreSQL: another session holds a write lock on `users`.
    async fn applying(&self) -> bool {
        use sqlx::{Connection, Row};
        match &self.postgres {
            None => {
                let options: sqlx::sqlite::SqliteConnectOptions =
                    self.url().parse().expect("SQLite URL");
                let mut connection =
                    sqlx::SqliteConnection::connect_with(&options.busy_timeout(Duration::ZERO))
                        .await
                        .expect("connect to the SQLite database");
                let locked = match sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut connection)
                    .await
                {
                    Ok(_) => {
                        sqlx::query("ROLLBACK")
                            .execute(&mut connection)
                            .await
                            .expect("rollback");
                        false
                    }
                    Err(error) => {
                        assert!(error.to_string().contains("locked"), "{error}");
                        true
                    }
                };
                let _ = connection.close().await;
                locked
            }
            Some(database) => {
                let mut connection = sqlx::PgConnection::connect(&database.url)
                    .await
                    .expect("connect to PostgreSQL");
                let holders: i64 = sqlx::query(
                    "SELECT COUNT(*) AS holders FROM pg_locks l \
                     JOIN pg_class c ON c.oid = l.relation \
                     JOIN pg_database d ON d.oid = l.database \
                     WHERE d.datname = current_database() AND c.relname = 'users' \
                     AND l.mode = 'RowExclusiveLock' AND l.pid <> pg_backend_pid()",
                )
                .fetch_one(&mut connection)
                .await
                .expect("read pg_locks")
                .get("holders");
                let _ = connection.close().await;
                holders > 0
            }
        }
    }
}

/// `gatehouse` with the test's environment removed (no `GATEHOUSE_*` leaks in) and cheap
/// password hashing.
fn gatehouse() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    for (key, _) in std::env::vars() {
        if key.starts_with("GATEHOUSE_") {
            command.env_remove(key);
        }
    }
    command
        .env_remove("RUST_LOG")
        .env("GATEHOUSE_HASHING__ARGON2__MEMORY_KIB", "1024")
        .env("GATEHOUSE_HASHING__ARGON2__ITERATIONS", "1")
        .env("GATEHOUSE_HASHING__ARGON2__PARALLELISM", "1")
        .stdin(Stdio::null());
    command
}

/// Runs `gatehouse <args> <place's flags>` to its end.
fn command(place: &Place, args: &[&str]) -> Output {
    let output = gatehouse()
        .args(args)
        .args(place.args())
        .output()
        .expect("run gatehouse");
    eprintln!(
        "gatehouse {args:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A `gatehouse serve` process.
struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Server {
    /// Starts `gatehouse serve` on `place` and waits until `/healthz` answers 200.
    async fn start(place: &Place, admin_password: Option<&str>) -> Server {
        let listen = format!("127.0.0.1:{}", free_port());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(place.log())
            .expect("log file");
        let mut command = gatehouse();
        command
            .args(["serve", "--listen", &listen])
            .args(place.args())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(password) = admin_password {
            command.env("GATEHOUSE_ADMIN_PASSWORD", password);
        }
        let mut server = Server {
            child: command.spawn().expect("start gatehouse"),
            base: format!("http://{listen}"),
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "gatehouse serve exited with {status}:\n{}",
                    std::fs::read_to_string(place.log()).unwrap_or_default()
                );
            }
            if let Ok(response) = server.client.get(server.url("/healthz")).send().await {
                if response.status() == StatusCode::OK {
                    return server;
                }
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn try_login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url("/api/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self.try_login(username, password).await;
        assert_eq!(status, StatusCode::OK, "login of {username}: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a user holding the built-in role `minimum-access`; returns that role's id.
    async fn create_user(&self, token: &str, username: &str, password: &str) -> String {
        let (status, roles) = self
            .call(
                reqwest::Method::GET,
                "/api/roles?name=minimum-access",
                token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{roles}");
        let role_id = roles[0]["id"].as_str().expect("role id").to_owned();
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/users",
                token,
                Some(json!({"username": username, "password": password, "roles": [role_id]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        role_id
    }

    async fn maintenance_status(&self, token: &str) -> Value {
        let (status, body) = self
            .call(reqwest::Method::GET, "/api/maintenance/db", token, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The maintenance status during a restore of the source's archive: once the restore has
    /// ended every session, as the source's admin (`token` is replaced).
    async fn status_during_restore(&self, token: &mut String) -> Value {
        let (status, body) = self
            .call(reqwest::Method::GET, "/api/maintenance/db", token, None)
            .await;
        if status == StatusCode::UNAUTHORIZED {
            *token = self.login("admin", SOURCE_ADMIN_PASSWORD).await;
            return self.maintenance_status(token).await;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// SIGTERM, and waits for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "gatehouse stopped with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the process ends at once, wherever it was.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Server {
    /// A failing test must not leave its server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A source installation, stopped: the admin, [`MOVER`] and `bulk` more users put straight
/// into the database (each with a membership of `minimum-access`).
async fn source(engine: Engine, bulk: u32) -> Place {
    let place = Place::new(engine).await;
    let server = Server::start(&place, Some(SOURCE_ADMIN_PASSWORD)).await;
    let token = server.login("admin", SOURCE_ADMIN_PASSWORD).await;
    let role_id = server.create_user(&token, MOVER, MOVER_PASSWORD).await;
    server.stop();
    if bulk > 0 {
        seed_users(&place.url(), MOVER, "5eed0000", bulk, &role_id).await;
    }
    place
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn backup_and_restore_commands_move_an_installation(engine: Engine) {
    let source = source(engine, 0).await;
    let before = source.dump().await;

    // A stopped server's database.
    let stopped = source.directory.path().join("stopped.gatehouse-backup");
    let output = command(&source, &["backup", "--out", stopped.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("backup written"), "{stdout}");
    let stopped_archive = std::fs::read(&stopped).expect("the archive");
    let (manifest, stopped_rows) = unseal(&stopped_archive);
    let engine_name = match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    };
    assert_eq!(manifest["sourceEngine"], engine_name, "{manifest}");
    assert_eq!(source.dump().await, before, "a backup changes nothing");

    // A running server's database: the same rows.
    let server = Server::start(&source, None).await;
    server.login(MOVER, MOVER_PASSWORD).await;
    let running = source.directory.path().join("running.gatehouse-backup");
    let output = command(&source, &["backup", "--out", running.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let (_, running_rows) = unseal(&std::fs::read(&running).expect("the archive"));
    assert!(
        running_rows == stopped_rows,
        "a running server's backup holds the same rows"
    );
    // The server did not notice.
    server.login(MOVER, MOVER_PASSWORD).await;
    server.stop();

    // Into a fresh installation with the source's keys.
    let target = Place::new(engine).await;
    target.copy_keys_from(&source);
    let output = command(&target, &["restore", stopped.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("restored"), "{stdout}");
    let restored = target.dump().await;
    assert!(
        restored == before,
        "the restored database is the source's:\n{}",
        difference(&restored, &before)
    );
    let server = Server::start(&target, None).await;
    let token = server.login("admin", SOURCE_ADMIN_PASSWORD).await;
    server.login(MOVER, MOVER_PASSWORD).await;
    server.maintenance_status(&token).await;
    server.stop();

    // A corrupt archive: exit status 1, the problem named, the database unchanged.
    let before = target.dump().await;
    let mut corrupt = stopped_archive.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x01;
    let corrupt_path = target.directory.path().join("corrupt.gatehouse-backup");
    std::fs::write(&corrupt_path, &corrupt).unwrap();
    let truncated_path = target.directory.path().join("truncated.gatehouse-backup");
    std::fs::write(
        &truncated_path,
        &stopped_archive[..stopped_archive.len() - 20],
    )
    .unwrap();
    for path in [&corrupt_path, &truncated_path] {
        let output = command(&target, &["restore", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
        let stderr = stderr_of(&output);
        assert!(stderr.contains("damaged"), "{stderr}");
    }
    let missing = target.directory.path().join("no-such.gatehouse-backup");
    let output = command(&target, &["restore", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(!stderr_of(&output).trim().is_empty());
    assert_eq!(
        target.dump().await,
        before,
        "a failed restore changes nothing"
    );
    // An archive of another installation (its own keys) is refused, naming the key.
    let stranger = source_with_own_keys(engine).await;
    let foreign = stranger.directory.path().join("foreign.gatehouse-backup");
    let output = command(&stranger, &["backup", "--out", foreign.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let output = command(&target, &["restore", foreign.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("mfa.key_check"),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(
        target.dump().await,
        before,
        "a refused restore changes nothing"
    );
    let server = Server::start(&target, None).await;
    server.login(MOVER, MOVER_PASSWORD).await;
    server.stop();
}

async fn source_with_own_keys(engine: Engine) -> Place {
    let place = Place::new(engine).await;
    Server::start(&place, Some(TARGET_ADMIN_PASSWORD))
        .await
        .stop();
    place
}

/// When the server is killed during a restore.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// This long after the 202.
    After(Duration),
    /// As soon as the live tables are being replaced (see [`Place::applying`]).
    WhileApplying,
    /// Once the restore reported success.
    Done,
}

/// What a restarted target held after the kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Old,
    New,
}

/// One target: started with the source's keys and data of its own, sent `archive`, killed at
/// `moment`, started again. Returns whether the restore was running just before the kill,
/// what the target holds now, and when the kill came (after the 202).
async fn kill_during_restore(
    engine: Engine,
    source: &Place,
    archive: &[u8],
    archived: &Dump,
    moment: Moment,
) -> (bool, Outcome, Duration) {
    let target = Place::new(engine).await;
    target.copy_keys_from(source);
    let server = Server::start(&target, Some(TARGET_ADMIN_PASSWORD)).await;
    let mut token = server.login("admin", TARGET_ADMIN_PASSWORD).await;
    server
        .create_user(&token, TARGET_USER, TARGET_USER_PASSWORD)
        .await;
    let old = target.dump().await;
    assert!(old != *archived, "the target holds data of its own");

    let response = server
        .client
        .post(server.url("/api/maintenance/db/restore"))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(archive.to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted = Instant::now();
    let running = match moment {
        Moment::After(delay) => {
            tokio::time::sleep(delay).await;
            server.status_during_restore(&mut token).await["running"] == true
        }
        Moment::WhileApplying => {
            while !target.applying().await {
                assert!(
                    accepted.elapsed() < Duration::from_secs(120),
                    "the restore never replaced the live tables"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            true
        }
        Moment::Done => loop {
            let state = server.status_during_restore(&mut token).await;
            if state["running"] == false {
                assert_eq!(state["restore"]["succeeded"], true, "{state}");
                break false;
            }
            assert!(accepted.elapsed() < Duration::from_secs(120), "{state}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        },
    };
    let elapsed = accepted.elapsed();
    server.kill();

    let server = Server::start(&target, Some(TARGET_ADMIN_PASSWORD)).await;
    let now = target.dump().await;
    let leftovers: Vec<String> = std::fs::read_dir(target.data_dir().join("backups"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if !leftovers.is_empty() {
        eprintln!("left in the archive directory after the kill and restart: {leftovers:?}");
    }
    let outcome = if now == old {
        Outcome::Old
    } else if now == *archived {
        Outcome::New
    } else {
        panic!(
            "after a kill {elapsed:?} into the restore the database is neither the old one:\n{}\n\
             nor the archive's:\n{}",
            difference(&old, &now),
            difference(archived, &now)
        );
    };
    // The content works: its users log in.
    match outcome {
        Outcome::Old => {
            server.login("admin", TARGET_ADMIN_PASSWORD).await;
            server.login(TARGET_USER, TARGET_USER_PASSWORD).await;
        }
        Outcome::New => {
            server.login("admin", SOURCE_ADMIN_PASSWORD).await;
            server.login(MOVER, MOVER_PASSWORD).await;
            assert_eq!(
                server.try_login(TARGET_USER, TARGET_USER_PASSWORD).await.0,
                StatusCode::UNAUTHORIZED
            );
        }
    }
    server.stop();
    (running, outcome, elapsed)
}

async fn a_restore_killed_at_any_moment_leaves_old_or_new_content(engine: Engine) {
    let source = source(engine, 25_000).await;
    let archived = source.dump().await;
    let path = source.directory.path().join("big.gatehouse-backup");
    let output = command(&source, &["backup", "--out", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let archive = std::fs::read(&path).expect("the archive");

    // A restore left to finish, then killed: the restored content survives; its duration
    // places the kills below.
    let (_, outcome, full) =
        kill_during_restore(engine, &source, &archive, &archived, Moment::Done).await;
    assert_eq!(outcome, Outcome::New, "a completed restore survives a kill");
    eprintln!(
        "a complete restore of {} bytes took {full:?}",
        archive.len()
    );

    let mut landed_while_running = 0;
    let mut outcomes = Vec::new();
    let moments = [0_u32, 250, 750]
        .map(|permille| Moment::After(full * permille / 1000))
        .into_iter()
        .chain([Moment::WhileApplying]);
    for moment in moments {
        let (running, outcome, at) =
            kill_during_restore(engine, &source, &archive, &archived, moment).await;
        eprintln!("killed {at:?} after the 202 ({moment:?}, running: {running}): {outcome:?}");
        if running {
            landed_while_running += 1;
        }
        outcomes.push((at, running, outcome));
    }
    assert!(
        landed_while_running > 0,
        "no kill landed while the restore ran: {outcomes:?}"
    );
    // A kill after the restore reported success never loses it.
    for (at, running, outcome) in &outcomes {
        if !running {
            assert_eq!(*outcome, Outcome::New, "killed at {at:?}: {outcomes:?}");
        }
    }
}

/// Runs `test` on PostgreSQL when a server is configured.
async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Engine) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if postgres_url().is_none() {
        eprintln!("GATEHOUSE_TEST_DATABASE_URL is not set: PostgreSQL variant not run");
        return;
    }
    test(Engine::Postgres).await;
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backup_and_restore_commands_move_an_installation() {
        super::backup_and_restore_commands_move_an_installation(Engine::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restore_killed_at_any_moment_leaves_old_or_new_content() {
        super::a_restore_killed_at_any_moment_leaves_old_or_new_content(Engine::Sqlite).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backup_and_restore_commands_move_an_installation() {
        on_postgres(super::backup_and_restore_commands_move_an_installation).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restore_killed_at_any_moment_leaves_old_or_new_content() {
        on_postgres(super::a_restore_killed_at_any_moment_leaves_old_or_new_content).await;
    }
}

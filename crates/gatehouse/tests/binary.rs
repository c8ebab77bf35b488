//! The `gatehouse` binary as a user runs it: zero-configuration start on SQLite in `./data`,
//! the generated admin password printed once, configuration layering (file ← environment ←
//! flags), and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

/// A free loopback port (bound and released; the binary binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server {
    child: Child,
    base: String,
    stdout_lines: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `gatehouse serve --listen 127.0.0.1:PORT` in `dir` with `envs`, waits for /healthz.
    fn start(dir: &Path, extra_args: &[&str], envs: &[(&str, &str)]) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        command
            .current_dir(dir)
            .args(["serve", "--listen", &listen])
            .args(extra_args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (key, _) in std::env::vars() {
            if key.starts_with("GATEHOUSE_") {
                command.env_remove(key);
            }
        }
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start gatehouse");
        let stdout = child.stdout.take().unwrap();
        let (sender, stdout_lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let server = Server { child, base: format!("http://{listen}"), stdout_lines };
        for _ in 0..200 {
            if let Ok(response) = reqwest::blocking_get(&format!("{}/healthz", server.base)) {
                if response == 200 {
                    return server;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gatehouse did not become healthy");
    }

    fn stdout_text(&self) -> String {
        let mut text = String::new();
        while let Ok(line) = self.stdout_lines.recv_timeout(Duration::from_millis(200)) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    /// Sends SIGTERM and returns whether the process exited successfully in time.
    fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        false
    }
}

mod reqwest {
    //! Minimal blocking helpers over the async client (the binary tests need no runtime of their own).
    pub fn blocking_get(url: &str) -> Result<u16, String> {
        runtime().block_on(async {
            ::reqwest::get(url).await.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
        })
    }

    pub fn blocking_json(method: &str, url: &str, token: Option<&str>, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        runtime().block_on(async {
            let client = ::reqwest::Client::new();
            let mut request = client.request(method.parse().unwrap(), url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
        })
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }
}

fn login(base: &str, username: &str, password: &str) -> (u16, Value) {
    reqwest::blocking_json("POST", &format!("{base}/api/login"), None, Some(json!({"username": username, "password": password})))
}

#[test]
fn zero_configuration_start_prints_the_admin_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[]);
    let printed = server.stdout_text();
    let password = printed
        .lines()
        .find_map(|line| line.strip_prefix("Created the user 'admin' with the generated password: "))
        .unwrap_or_else(|| panic!("no generated password on stdout: {printed:?}"))
        .trim()
        .to_owned();
    assert!(password.len() >= 20, "a strong generated password");
    assert!(dir.path().join("data/gatehouse.db").exists(), "SQLite database in ./data");
    let (status, body) = login(&server.base, "admin", &password);
    assert_eq!(status, 200, "{body}");
    assert_eq!(login(&server.base, "admin", "wrong-password").0, 401);
    assert!(server.terminate(), "clean exit on SIGTERM");

    // Second start on the same data: the admin exists, nothing is printed, the password still works.
    let server = Server::start(dir.path(), &[], &[]);
    assert!(!server.stdout_text().contains("generated password"));
    assert_eq!(login(&server.base, "admin", &password).0, 200);
    assert!(server.terminate());
}

#[test]
fn configuration_file_environment_and_flags_are_layered() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gatehouse.toml"),
        "data_dir = \"from-file\"\n[auth.password_policy]\nmin = 12\nnumeric = 1\n",
    )
    .unwrap();
    // The environment overrides the file's minimum; the flag overrides the file's data_dir.
    let server = Server::start(
        dir.path(),
        &["--config", "gatehouse.toml", "--data-dir", "from-flag"],
        &[("GATEHOUSE_ADMIN_PASSWORD", "admin-password-1"), ("GATEHOUSE_AUTH__PASSWORD_POLICY__MIN", "8")],
    );
    assert!(dir.path().join("from-flag/gatehouse.db").exists());
    assert!(!dir.path().join("from-file").exists());
    let (status, body) = login(&server.base, "admin", "admin-password-1");
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let create = |password: &str| {
        reqwest::blocking_json(
            "POST",
            &format!("{}/api/users", server.base),
            Some(&token),
            Some(json!({"username": format!("user-{}", password.len()), "password": password})),
        )
    };
    let (status, body) = create("abcdefg1");
    assert_eq!(status, 201, "8 characters with a digit satisfy min 8 (env) + numeric 1 (file): {body}");
    let (status, body) = create("abcdefghij");
    assert_eq!(status, 422, "no digit breaks the file's numeric rule: {body}");
    assert_eq!(body["field"], "password");
    assert!(server.terminate());
}

#[test]
fn invalid_configuration_fails_fast_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "no_such_key = 1\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(dir.path())
        .args(["serve", "--config", "bad.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no_such_key"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", "mysql://nope"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("sqlite:// or postgres://"));

    // An admin password that breaks the policy stops the start instead of creating a weak admin.
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("GATEHOUSE_ADMIN_PASSWORD", "abc")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("password policy"));
}

//! The `gatehouse` binary as a user runs it: zero-configuration start on SQLite in `./data`,
//! the generated admin password printed once, configuration layering (file ← environment ←
//! flags), and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

#[path = "common/ports.rs"]
mod ports;
use ports::free_port;

struct Server {
    child: Child,
    base: String,
    stdout_lines: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `gatehouse serve --listen 127.0.0.1:PORT` in `dir` with `envs`, waits for /healthz.
    fn start(dir: &Path, extra_args: &[&str], envs: &[(&str, &str)]) -> Server {
        Self::start_logging(dir, extra_args, envs, Stdio::null())
    }

    /// Like [`Server::start`], with the server's log (stderr) sent to `stderr`.
    fn start_logging(
        dir: &Path,
        extra_args: &[&str],
        envs: &[(&str, &str)],
        stderr: Stdio,
    ) -> Server {
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
            .stderr(stderr);
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
        let server = Server {
            child,
            base: format!("http://{listen}"),
            stdout_lines,
        };
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

impl Drop for Server {
    /// A failing test must not leave its server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

mod reqwest {
    //! Minimal blocking helpers over the async client (the binary tests need no runtime of their own).
    pub fn blocking_get(url: &str) -> Result<u16, String> {
        runtime().block_on(async {
            ::reqwest::get(url)
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        })
    }

    pub fn blocking_json(
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
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
            (
                status,
                serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            )
        })
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }
}

fn login(base: &str, username: &str, password: &str) -> (u16, Value) {
    reqwest::blocking_json(
        "POST",
        &format!("{base}/api/login"),
        None,
        Some(json!({"username": username, "password": password})),
    )
}

#[test]
fn zero_configuration_start_prints_the_admin_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[]);
    let printed = server.stdout_text();
    let password = printed
        .lines()
        .find_map(|line| {
            line.strip_prefix("Created the user 'admin' with the generated password: ")
        })
        .unwrap_or_else(|| panic!("no generated password on stdout: {printed:?}"))
        .trim()
        .to_owned();
    assert!(password.len() >= 20, "a strong generated password");
    assert!(
        dir.path().join("data/gatehouse.db").exists(),
        "SQLite database in ./data"
    );
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
        &[
            ("GATEHOUSE_ADMIN_PASSWORD", "admin-password-1"),
            ("GATEHOUSE_AUTH__PASSWORD_POLICY__MIN", "8"),
        ],
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
    assert_eq!(
        status, 201,
        "8 characters with a digit satisfy min 8 (env) + numeric 1 (file): {body}"
    );
    let (status, body) = create("abcdefghij");
    assert_eq!(
        status, 422,
        "no digit breaks the file's numeric rule: {body}"
    );
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
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "mysql://nope",
        ])
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

#[test]
fn logs_are_json_on_request_and_never_contain_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let admin_password = "admin-secret-Password-77";
    let user_password = "device-secret-Password-88";
    let server = Server::start_logging(
        dir.path(),
        &[],
        &[
            ("GATEHOUSE_ADMIN_PASSWORD", admin_password),
            ("GATEHOUSE_LOG__FORMAT", "json"),
            ("GATEHOUSE_LOG__LEVEL", "debug"),
        ],
        Stdio::from(log_file),
    );
    let (status, body) = login(&server.base, "admin", admin_password);
    assert_eq!(status, 200);
    let admin_token = body["token"].as_str().unwrap().to_owned();
    let (status, _) = reqwest::blocking_json(
        "POST",
        &format!("{}/api/users", server.base),
        Some(&admin_token),
        Some(json!({"username": "logged-device", "password": user_password})),
    );
    assert_eq!(status, 201);
    let (status, body) = login(&server.base, "logged-device", user_password);
    assert_eq!(status, 200);
    let device_token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        login(&server.base, "logged-device", "wrong-Password-99").0,
        401
    );
    let url = format!("{}/api/session?apiToken={}", server.base, admin_token);
    assert_eq!(reqwest::blocking_json("GET", &url, None, None).0, 200);
    assert_eq!(
        reqwest::blocking_json(
            "GET",
            &format!("{}/api/session", server.base),
            Some(&device_token),
            None
        )
        .0,
        403
    );
    // An MFA enrolment and a login with a second factor: the TOTP secret, the backup codes and
    // the login's MFA secret stay out of the log.
    let post = |path: &str, token: Option<&str>, body: Value| {
        reqwest::blocking_json("POST", &format!("{}{path}", server.base), token, Some(body))
    };
    let (status, start) = post("/api/mfa/enable", Some(&admin_token), json!({}));
    assert_eq!(status, 200, "{start}");
    let uri = start["uri"].as_str().unwrap().to_owned();
    let totp_secret = uri
        .split_once("secret=")
        .and_then(|(_, rest)| rest.split('&').next())
        .unwrap()
        .to_owned();
    let seed = totp_rs::Secret::try_from_base32(&totp_secret)
        .unwrap()
        .as_bytes()
        .to_vec();
    let totp = totp_rs::Builder::new().with_secret(seed).build().unwrap();
    let (status, done) = post(
        "/api/mfa/validate",
        Some(&admin_token),
        json!({"otp": totp.generate_current().to_string()}),
    );
    assert_eq!(status, 200, "{done}");
    let backup_codes: Vec<String> = done["backupCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    let (status, first_step) = login(&server.base, "admin", admin_password);
    assert_eq!(status, 200);
    let mfa_secret = first_step["secret"].as_str().unwrap().to_owned();
    let (status, body) = post(
        "/api/mfa/login",
        None,
        json!({"username": "admin", "backupCode": backup_codes[0], "secret": mfa_secret}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(server.terminate());

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("TOTP enrolled") && log.contains("MFA login completed"));
    for secret in [&totp_secret, &mfa_secret]
        .into_iter()
        .chain(backup_codes.iter())
    {
        assert!(
            !log.contains(secret.as_str()),
            "an MFA secret reached the log"
        );
    }
    assert!(!log.contains(mfa_secret.rsplit('.').next().unwrap()));
    assert!(
        log.contains("login succeeded"),
        "the log was captured: {log}"
    );
    for line in log.lines().filter(|line| !line.trim().is_empty()) {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
    }
    for secret in [
        admin_password,
        user_password,
        "wrong-Password-99",
        admin_token.as_str(),
        device_token.as_str(),
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    // Token parts (header.payload.signature) must not appear either.
    let signature = admin_token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature));
}

#[test]
fn environment_edge_cases_do_not_break_start_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("conf.toml"),
        "[auth.password_policy]\nmin = 8\n",
    )
    .unwrap();
    // GATEHOUSE_CONFIG names the file; a number-like password stays a string; an unknown
    // GATEHOUSE_ variable is warned about, not fatal.
    let server = Server::start(
        dir.path(),
        &[],
        &[
            ("GATEHOUSE_CONFIG", "conf.toml"),
            ("GATEHOUSE_ADMIN_PASSWORD", "00012345"),
            ("GATEHOUSE_NO_SUCH_SETTING", "1"),
        ],
    );
    let (status, body) = login(&server.base, "admin", "00012345");
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (status, _) = reqwest::blocking_json(
        "POST",
        &format!("{}/api/users", server.base),
        Some(&token),
        Some(json!({"username": "seven-chars", "password": "1234567"})),
    );
    assert_eq!(status, 422, "min 8 from the file named by GATEHOUSE_CONFIG");
    assert!(server.terminate());
}

#[test]
fn generated_admin_password_satisfies_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[],
        &[
            ("GATEHOUSE_AUTH__PASSWORD_POLICY__SYMBOL", "3"),
            ("GATEHOUSE_AUTH__PASSWORD_POLICY__MIN", "30"),
        ],
    );
    let printed = server.stdout_text();
    let password = printed
        .lines()
        .find_map(|line| {
            line.strip_prefix("Created the user 'admin' with the generated password: ")
        })
        .unwrap_or_else(|| panic!("{printed:?}"))
        .trim()
        .to_owned();
    assert!(password.chars().count() >= 30);
    assert_eq!(login(&server.base, "admin", &password).0, 200);
    assert!(server.terminate());
}

#[test]
fn a_deleted_admin_is_not_recreated_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [("GATEHOUSE_ADMIN_PASSWORD", "first-admin-pass")];
    let server = Server::start(dir.path(), &[], &envs);
    let admin_token = login(&server.base, "admin", "first-admin-pass").1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin_role = reqwest::blocking_json(
        "GET",
        &format!("{}/api/roles?name=connectware-admin", server.base),
        Some(&admin_token),
        None,
    )
    .1[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = reqwest::blocking_json(
        "POST",
        &format!("{}/api/users", server.base),
        Some(&admin_token),
        Some(
            json!({"username": "second-admin", "password": "second-admin-pass", "roles": [admin_role]}),
        ),
    );
    assert_eq!(status, 201);
    let second = login(&server.base, "second-admin", "second-admin-pass").1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin_id = reqwest::blocking_json(
        "GET",
        &format!("{}/api/listUsers?usernames=admin", server.base),
        Some(&second),
        None,
    )
    .1["users"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = reqwest::blocking_json(
        "DELETE",
        &format!("{}/api/users/{admin_id}", server.base),
        Some(&second),
        None,
    );
    assert_eq!(status, 204);
    assert!(server.terminate());

    let server = Server::start(dir.path(), &[], &envs);
    assert_eq!(
        login(&server.base, "admin", "first-admin-pass").0,
        401,
        "the deleted admin stays deleted"
    );
    assert_eq!(
        login(&server.base, "second-admin", "second-admin-pass").0,
        200
    );
    assert!(server.terminate());
}

#[test]
fn the_readme_walkthrough_works_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("## A first session")
        .nth(1)
        .expect("README has the walkthrough");
    let script = section
        .split("```sh\n")
        .nth(1)
        .and_then(|block| block.split("```").next())
        .expect("a sh block in the walkthrough");
    assert!(
        script.contains("B=http://127.0.0.1:8080"),
        "the walkthrough talks to the default address"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[],
        &[("GATEHOUSE_ADMIN_PASSWORD", "readme-admin-1")],
    );
    let script = script.replace("B=http://127.0.0.1:8080", &format!("B={}", server.base));
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("GATEHOUSE_ADMIN_PASSWORD", "readme-admin-1")
        .output()
        .expect("bash runs the walkthrough");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The output is the created user followed by device001's session, holding the role's permissions.
    let values: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("JSON output expected ({error}): {stdout}"));
    let session = values.last().expect("the session answer");
    assert_eq!(session["username"], "device001", "{stdout}");
    let resources: Vec<&str> = session["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["resource"].as_str())
        .collect();
    assert!(
        resources.contains(&"factory/#") && resources.contains(&"/api/session"),
        "{stdout}"
    );
    assert!(server.terminate());
}

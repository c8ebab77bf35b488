//! Database maintenance over HTTP (C38–C40): authorization, the status shape, downloads of
//! unknown and hostile ids, the limits of uploads (empty, over `backup.max_upload_bytes`, but
//! not `http.body_limit_bytes`), and one backup taken, downloaded and restored through the API.
//!
//! Not covered here: 423 while an operation runs. A backup of a test database takes a few
//! milliseconds, so no black-box test can hold one open long enough to collide with it
//! reliably; the lock itself is the core's (`gatehouse_core::maintenance`).

mod common;

use std::time::{Duration, Instant};

use common::{assert_error, TestApp, ADMIN_PASSWORD};
use gatehouse::config::Settings;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    maintenance_endpoints_require_a_token,
    maintenance_endpoints_require_permission,
    status_is_bare_before_any_operation,
    unknown_and_hostile_download_ids_are_404,
    empty_or_malformed_uploads_are_400,
    other_multipart_types_are_415,
    uploads_over_max_upload_bytes_are_413_and_deleted,
    uploads_are_not_bound_by_the_json_body_limit,
    slow_uploads_outlive_the_request_timeout_but_stalled_ones_end,
    backup_is_downloaded_and_restored_through_the_api,
);

const STATUS: &str = "/api/maintenance/db";
const BACKUP: &str = "/api/maintenance/db/backup";
const RESTORE: &str = "/api/maintenance/db/restore";

/// Stops `app` and starts a fresh one on the same engine with `adjust`ed settings.
async fn restart(app: TestApp, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let engine = app.engine;
    app.stop().await;
    TestApp::spawn_with(engine, adjust, None).await
}

/// Every maintenance operation, with a body where it takes one.
fn operations() -> Vec<(Method, String, Option<Vec<u8>>)> {
    vec![
        (Method::GET, STATUS.to_owned(), None),
        (Method::POST, BACKUP.to_owned(), None),
        (
            Method::GET,
            format!("{BACKUP}/0.1.0_2026-01-01T00:00:00.000Z"),
            None,
        ),
        (
            Method::POST,
            RESTORE.to_owned(),
            Some(b"not an archive".to_vec()),
        ),
    ]
}

/// Sends `body` as `content_type` to C40 as `token`.
async fn upload(
    app: &TestApp,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    app.send_raw(Method::POST, RESTORE, token, content_type, body)
        .await
}

/// A `multipart/form-data` body of `parts` (name, file name, content) and its content type.
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "gatehouse-test-boundary-7f3a";
    let mut body = Vec::new();
    for (name, file_name, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match file_name {
            Some(file_name) => {
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n")
            }
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Files left in the archive directory other than archives (uploads being received or
/// verified, scratch files).
fn leftovers(app: &TestApp) -> Vec<String> {
    let directory = app.settings.backup.directory(&app.settings.data_dir);
    let Ok(entries) = std::fs::read_dir(&directory) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".gatehouse-backup"))
        .collect()
}

/// Polls C38 as the admin until `operation` (`backup` or `restore`) has ended; returns it and
/// the admin's token in force (a restore ends every session: then the admin logs in again).
async fn wait_for(app: &TestApp, token: &str, operation: &str) -> (Value, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut token = token.to_owned();
    loop {
        let (status, body) = app.get(STATUS, &token).await;
        if status == StatusCode::UNAUTHORIZED {
            token = app.login("admin", ADMIN_PASSWORD).await;
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["running"] == json!(false) && body[operation]["endDate"].is_string() {
            return (body[operation].clone(), token);
        }
        assert!(Instant::now() < deadline, "{operation} did not end: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Without a token, or with an invalid one, every operation is 401 and nothing runs.
async fn maintenance_endpoints_require_a_token(app: TestApp) {
    for (method, path, body) in operations() {
        for token in [None, Some("not-a-token")] {
            let mut request = app.client.request(method.clone(), app.url(&path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let response = request.send().await.expect("request sent");
            let status = response.status();
            let answer: Value = response.json().await.expect("JSON error");
            assert_error(status, &answer, StatusCode::UNAUTHORIZED);
        }
    }
    let (status, body) = app.get(STATUS, &app.admin_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"running": false}), "nothing ran");
}

/// A user without the `http` permissions of the paths gets 403 everywhere; read on
/// `/api/maintenance/#` opens the GETs only.
async fn maintenance_endpoints_require_permission(app: TestApp) {
    let minimum = app.role_id("minimum-access").await;
    app.create_user("plain-user", "plain-password-1", &[&minimum])
        .await;
    let plain = app.login("plain-user", "plain-password-1").await;
    let reader = app
        .create_role(
            "maintenance-reader",
            json!([{"resource": "/api/maintenance/#", "operation": "read", "context": "http"}]),
        )
        .await;
    let reader_id = reader["id"].as_str().unwrap();
    app.create_user("reader-user", "reader-password-1", &[reader_id])
        .await;
    let reader = app.login("reader-user", "reader-password-1").await;

    for (method, path, body) in operations() {
        let send = |token: String| {
            let mut request = app
                .client
                .request(method.clone(), app.url(&path))
                .bearer_auth(token);
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            request.send()
        };
        let response = send(plain.clone()).await.expect("request sent");
        let status = response.status();
        let answer: Value = response.json().await.expect("JSON error");
        let message = assert_error(status, &answer, StatusCode::FORBIDDEN);
        assert!(message.contains("/api/maintenance/"), "{message}");

        let response = send(reader.clone()).await.expect("request sent");
        let status = response.status();
        if method == Method::GET {
            assert_ne!(status, StatusCode::FORBIDDEN, "{method} {path}");
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        } else {
            let answer: Value = response.json().await.expect("JSON error");
            assert_error(status, &answer, StatusCode::FORBIDDEN);
        }
    }
    let (status, body) = app.get(STATUS, &reader).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"running": false}), "nothing ran");
}

/// Before any backup or restore, the status is only `running: false`.
async fn status_is_bare_before_any_operation(app: TestApp) {
    let (status, body) = app.get(STATUS, &app.admin_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"running": false}));
    // The token may come in the query too.
    let (status, body) = app
        .request(
            Method::GET,
            &format!("{STATUS}?apiToken={}", app.admin_token),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"running": false}));
}

/// Ids that name no archive, including attempts to leave the archive directory, are 404 in
/// the dialect's shape, never a file and never a 400 or 500.
async fn unknown_and_hostile_download_ids_are_404(app: TestApp) {
    // A file that a path traversal would reach, to be sure it is not served.
    std::fs::write(
        app.settings.data_dir.join("secret.gatehouse-backup"),
        b"secret",
    )
    .unwrap();
    let long = "a".repeat(300);
    let ids = [
        "0.1.0_2026-01-01T00:00:00.000Z",
        "..%2F..%2Fetc%2Fpasswd",
        "..%2Fsecret",
        "..%5Csecret",
        "%2Fetc%2Fpasswd",
        ".hidden",
        "...",
        "a%00b",
        "x%20y",
        "%FF%FE",
        "%C0%AE%C0%AE%2Fsecret",
        ".gatehouse-scratch-upload-00000000-0000-0000-0000-000000000000",
        "%E2%80%AE",
        "id%3Bx",
        "id%22x",
        &long,
    ];
    for id in ids {
        let (status, body) = app.get(&format!("{BACKUP}/{id}"), &app.admin_token).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        assert_eq!(body["message"], "backup not found", "{id}: {body}");
    }
}

/// An empty body, a form without parts or with an empty archive, and a malformed form are 400;
/// nothing is left behind.
async fn empty_or_malformed_uploads_are_400(app: TestApp) {
    let token = app.admin_token.clone();
    for content_type in ["application/octet-stream", "application/json", ""] {
        let (status, body) = upload(&app, &token, content_type, Vec::new()).await;
        let message = assert_error(status, &body, StatusCode::BAD_REQUEST);
        assert!(message.contains("empty"), "{message}");
    }
    let (content_type, body) = form(&[]);
    let (status, answer) = upload(&app, &token, &content_type, body).await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST);
    let (content_type, body) = form(&[("file", Some("backup.gatehouse-backup"), b"")]);
    let (status, answer) = upload(&app, &token, &content_type, body).await;
    let message = assert_error(status, &answer, StatusCode::BAD_REQUEST);
    assert!(message.contains("empty"), "{message}");
    for (content_type, body) in [
        ("multipart/form-data", b"--x\r\n\r\n".to_vec()),
        ("multipart/form-data; boundary=x", b"garbage".to_vec()),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nunterminated".to_vec(),
        ),
    ] {
        let (status, answer) = upload(&app, &token, content_type, body).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST);
    }
    assert!(leftovers(&app).is_empty(), "{:?}", leftovers(&app));
    let (status, body) = app.get(STATUS, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["running"], json!(false));
}

/// Multipart types other than `multipart/form-data` are refused with 415.
async fn other_multipart_types_are_415(app: TestApp) {
    let (status, body) = upload(
        &app,
        &app.admin_token,
        "multipart/mixed; boundary=x",
        b"--x\r\n\r\nabc\r\n--x--\r\n".to_vec(),
    )
    .await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(leftovers(&app).is_empty(), "{:?}", leftovers(&app));
}

/// Raw and form uploads over `backup.max_upload_bytes` are 413, and their partial files are
/// deleted.
async fn uploads_over_max_upload_bytes_are_413_and_deleted(app: TestApp) {
    let app = restart(app, |settings| settings.backup.max_upload_bytes = 1000).await;
    let token = app.admin_token.clone();
    // Small enough to fit in the socket buffers, so the client has sent it all when the server
    // answers early.
    let big = vec![b'x'; 5000];
    let (status, body) = upload(&app, &token, "application/octet-stream", big.clone()).await;
    let message = assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message.contains("backup.max_upload_bytes"), "{message}");
    let (content_type, body) = form(&[("file", Some("big.gatehouse-backup"), &big)]);
    let (status, answer) = upload(&app, &token, &content_type, body).await;
    assert_error(status, &answer, StatusCode::PAYLOAD_TOO_LARGE);
    // Plain fields count too: the whole body is capped.
    let (content_type, body) = form(&[("note", None, &big)]);
    let (status, answer) = upload(&app, &token, &content_type, body).await;
    assert_error(status, &answer, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(leftovers(&app).is_empty(), "{:?}", leftovers(&app));
    let (status, body) = app.get(STATUS, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"running": false}), "no restore started");
}

/// `http.body_limit_bytes` does not apply to uploads: one far over it reaches the archive
/// check (and is refused there as no archive).
async fn uploads_are_not_bound_by_the_json_body_limit(app: TestApp) {
    let app = restart(app, |settings| {
        settings.http.body_limit_bytes = 1024;
        settings.backup.max_upload_bytes = 1024 * 1024;
    })
    .await;
    let garbage = vec![b'#'; 200 * 1024];
    let (status, body) = upload(
        &app,
        &app.admin_token,
        "application/octet-stream",
        garbage.clone(),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let (content_type, body) = form(&[("file", Some("x.gatehouse-backup"), &garbage)]);
    let (status, answer) = upload(&app, &app.admin_token, &content_type, body).await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST);
    assert!(leftovers(&app).is_empty(), "{:?}", leftovers(&app));
    // JSON bodies keep their limit.
    let (status, body) = app
        .post(
            "/api/roles",
            &app.admin_token,
            json!({"name": "x".repeat(2000)}),
        )
        .await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE);
}

/// Sends a raw upload of `chunks` over a plain connection, waiting `pause` before each chunk;
/// returns the status of the answer.
async fn trickle(app: &TestApp, chunks: usize, pause: Duration) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {RESTORE} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        app.admin_token,
        chunks * 10
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..chunks {
        tokio::time::sleep(pause).await;
        if stream.write_all(b"0123456789").await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer}"))
}

/// An upload that keeps sending outlives `http.request_timeout_secs` (and is refused only as
/// no archive); one that stops sending for that long is given up with 503.
async fn slow_uploads_outlive_the_request_timeout_but_stalled_ones_end(app: TestApp) {
    let app = restart(app, |settings| settings.http.request_timeout_secs = 1).await;
    let status = trickle(&app, 6, Duration::from_millis(400)).await;
    assert_eq!(status, 400, "a slow upload reaches the archive check");
    let status = trickle(&app, 2, Duration::from_millis(2500)).await;
    assert_eq!(status, 503, "a stalled upload is given up");
    assert!(leftovers(&app).is_empty(), "{:?}", leftovers(&app));
}

/// A backup is started, followed, downloaded as a file and restored, raw and as a form: the
/// data comes back, every session ends, and no upload is left behind.
async fn backup_is_downloaded_and_restored_through_the_api(app: TestApp) {
    let created = app
        .create_user("kept-in-backup", "kept-password-1", &[])
        .await;
    let user_id = created["id"].as_str().unwrap().to_owned();
    let token = app.admin_token.clone();

    let (status, started) = app.request(Method::POST, BACKUP, Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["id"].as_str().expect("id").to_owned();
    let (backup, token) = wait_for(&app, &token, "backup").await;
    assert_eq!(backup["id"], json!(id));
    assert_eq!(backup["succeeded"], json!(true), "{backup}");
    assert!(backup["statusMessage"].is_string());
    for date in ["startDate", "endDate"] {
        let text = backup[date].as_str().unwrap();
        assert!(text.ends_with('Z') && text.len() == 24, "{date}: {text}");
    }
    let (_, status_body) = app.get(STATUS, &token).await;
    assert!(status_body.get("restore").is_none(), "{status_body}");

    let response = app
        .client
        .get(app.url(&format!("{BACKUP}/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"{id}.gatehouse-backup\"").as_str()
    );
    let archive = response.bytes().await.expect("archive").to_vec();
    assert!(!archive.is_empty());
    assert_eq!(
        headers["content-length"],
        archive.len().to_string().as_str()
    );

    let (status, _) = app
        .delete(&format!("/api/users/{user_id}"), &token, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // As a form with a plain field before the file.
    let (content_type, body) = form(&[
        ("comment", None, b"nightly"),
        ("file", Some("backup.gatehouse-backup"), &archive),
        ("after", None, b"ignored"),
    ]);
    let (status, answer) = upload(&app, &token, &content_type, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let restored_id = answer["id"].as_str().expect("id").to_owned();
    // The restore names the archive by the id its backup was given.
    assert_eq!(restored_id, id);
    let (restore, new_token) = wait_for(&app, &token, "restore").await;
    assert_eq!(restore["succeeded"], json!(true), "{restore}");
    assert_eq!(restore["id"], json!(restored_id));

    // Every session ended; the user deleted after the backup is back.
    let (status, body) = app.get(STATUS, &token).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    assert_ne!(new_token, token);
    let token = new_token;
    app.login("kept-in-backup", "kept-password-1").await;

    // Raw.
    let (status, answer) = upload(&app, &token, "application/octet-stream", archive).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (restore, _) = wait_for(&app, &token, "restore").await;
    assert_eq!(restore["succeeded"], json!(true), "{restore}");
    assert!(leftovers(&app).is_empty(), "{:?}", leftovers(&app));
}

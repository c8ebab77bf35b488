//! Database restore (C40) refusing what it must refuse: damaged archives (flipped bytes,
//! truncations, appended bytes), files that are no archives, consistent archives (every checksum
//! right) whose content is wrong (newer versions, missing tables, extra columns, rows of the
//! wrong shape, the token signing key), archives of another installation, and rows that break
//! the schema's rules. Each is refused with a reason that names the problem, and the database is
//! left exactly as it was. Also: one operation at a time (423), unknown archives (404), and
//! maintenance for administrators only (401/403). And an archive of an older schema version is
//! migrated forward on restore.

mod common;

use std::path::Path;

use common::backup::{
    backup, column_index, dump, reseal, restore, seal, seed_users, table_index, unseal, upload,
    wait_idle, SharedKeys,
};
use common::{assert_error, TestApp, ADMIN_PASSWORD, TB_NULL_UUID};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

both_engines!(
    damaged_archives_are_refused_and_change_nothing,
    damage_at_the_start_is_reported_as_damage,
    files_that_are_no_archives_are_refused,
    consistent_but_wrong_archives_are_refused_with_the_reason,
    archives_of_another_installation_are_refused,
    rows_that_break_the_schema_fail_the_restore_and_change_nothing,
    a_running_restore_locks_out_backups_and_restores,
    unknown_archives_and_non_administrators_are_refused,
    archives_of_older_schema_versions_are_migrated_forward,
);

const USER: &str = "keeper";
const USER_PASSWORD: &str = "keeper-password-1";

/// Gives `app` some data of its own (a role, a user holding it) and returns a backup of it.
async fn app_with_data(app: &mut TestApp) -> Vec<u8> {
    let role = app
        .create_role(
            "keepers",
            json!([
                {"resource": "keep/#", "operation": "read", "context": "mqtt"},
                {"resource": "/api/session", "operation": "read", "context": "http"}
            ]),
        )
        .await;
    let role_id = role["id"].as_str().expect("role id").to_owned();
    app.create_user(USER, USER_PASSWORD, &[&role_id]).await;
    backup(app).await.1
}

/// Uploads `archive`, which must be refused at once: 400 in the Connectware error shape with
/// a message holding every one of `reasons` (case-insensitively), the database unchanged, the
/// restore reported as failed with the same reason, and the server still serving.
async fn refused(app: &mut TestApp, what: &str, archive: Vec<u8>, reasons: &[&str]) -> String {
    let before = dump(app).await;
    let (status, body) = upload(app, &app.admin_token, archive).await;
    let message = assert_error(status, &body, StatusCode::BAD_REQUEST);
    for reason in reasons {
        assert!(
            message.to_lowercase().contains(&reason.to_lowercase()),
            "{what}: the reason {message:?} does not name {reason:?}"
        );
    }
    let after = dump(app).await;
    assert!(before == after, "{what}: the database changed");
    let state = wait_idle(app).await;
    if state["restore"].is_object() {
        assert_eq!(state["restore"]["succeeded"], false, "{what}: {state}");
    }
    healthy(app).await;
    message
}

/// `GET /healthz` answers 200 and the admin's token still works.
async fn healthy(app: &TestApp) {
    let response = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = app.get("/api/maintenance/db", &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn flipped(archive: &[u8], offset: usize) -> Vec<u8> {
    let mut copy = archive.to_vec();
    copy[offset] ^= 0x01;
    copy
}

async fn damaged_archives_are_refused_and_change_nothing(mut app: TestApp) {
    let archive = app_with_data(&mut app).await;
    let manifest_end = archive.iter().position(|byte| *byte == b'\n').unwrap() + 1;
    let trailer_start = archive.len() - 78;
    assert!(
        manifest_end < trailer_start,
        "rows between manifest and trailer"
    );

    // A flipped bit anywhere: the manifest, a row, the trailer (its digest, its key, its end).
    let offsets = [
        ("the manifest's format version", 40),
        ("the middle of the manifest", manifest_end / 2),
        ("the first row", manifest_end + 2),
        ("the middle of the rows", (manifest_end + trailer_start) / 2),
        ("the last row's newline", trailer_start - 1),
        ("the trailer's key", trailer_start + 3),
        ("the trailer's digest", archive.len() - 10),
        ("the trailer's newline", archive.len() - 1),
    ];
    for (place, offset) in offsets {
        refused(
            &mut app,
            &format!("a flipped bit in {place}"),
            flipped(&archive, offset),
            &["damaged"],
        )
        .await;
    }

    // Truncated: to nothing, a few bytes, within the manifest, within the rows, just before
    // the trailer, within the trailer, one byte short.
    let message = refused(&mut app, "an empty upload", Vec::new(), &["empty"]).await;
    assert!(!message.is_empty());
    for length in [
        1,
        40,
        manifest_end - 1,
        manifest_end,
        (manifest_end + trailer_start) / 2,
        trailer_start,
        trailer_start + 40,
        archive.len() - 1,
    ] {
        refused(
            &mut app,
            &format!("truncated to {length} of {} bytes", archive.len()),
            archive[..length].to_vec(),
            &["damaged"],
        )
        .await;
    }

    // Bytes appended: a row, a newline, the trailer once more.
    let trailer = archive[trailer_start..].to_vec();
    for (what, tail) in [
        ("a row", b"[1,2]\n".to_vec()),
        ("a newline", b"\n".to_vec()),
        ("a space", b" ".to_vec()),
        ("the trailer again", trailer),
    ] {
        let mut longer = archive.clone();
        longer.extend_from_slice(&tail);
        refused(&mut app, &format!("{what} appended"), longer, &["damaged"]).await;
    }

    // After all that the archive itself still restores, and logins work.
    restore(&mut app, archive).await;
    app.login(USER, USER_PASSWORD).await;
}

/// Damage to an archive's first bytes is damage too: the trailer is there, and its checksum
/// does not match (it is not a file of another kind).
async fn damage_at_the_start_is_reported_as_damage(mut app: TestApp) {
    let archive = app_with_data(&mut app).await;
    for (place, offset) in [("first byte", 0), ("format name", 12)] {
        refused(
            &mut app,
            &format!("a flipped bit in the manifest's {place}"),
            flipped(&archive, offset),
            &["damaged"],
        )
        .await;
    }
}

async fn files_that_are_no_archives_are_refused(mut app: TestApp) {
    app_with_data(&mut app).await;
    let random: Vec<u8> = (0..4096_u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    png.extend_from_slice(&[0_u8; 100]);
    let candidates = [
        ("random bytes", random),
        (
            "a JSON object",
            br#"{"users":[{"username":"admin"}]}"#.to_vec(),
        ),
        (
            "a JSON object and a newline",
            b"{\"format\":\"zip\"}\n".to_vec(),
        ),
        ("a PNG image", png),
        ("a text line", b"hello\n".to_vec()),
    ];
    for (what, bytes) in candidates {
        refused(&mut app, what, bytes, &["not a Gatehouse backup archive"]).await;
    }
    // A multipart upload of something else is no better.
    let before = dump(&app).await;
    let form =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"backup.txt\"\r\n\
                 Content-Type: text/plain\r\n\r\nplain text\r\n--XyZ--\r\n"
            .to_vec();
    let response = app
        .client
        .post(app.url("/api/maintenance/db/restore"))
        .bearer_auth(&app.admin_token)
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(form)
        .send()
        .await
        .expect("upload");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON error");
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert!(before == dump(&app).await);
    healthy(&app).await;
}

async fn consistent_but_wrong_archives_are_refused_with_the_reason(mut app: TestApp) {
    let archive = app_with_data(&mut app).await;
    let (manifest, _) = unseal(&archive);
    let latest = manifest["schemaVersion"].as_i64().expect("schema version");
    // The test's own sealing is faithful: an unchanged archive sealed again is the same bytes.
    let unchanged = reseal(&archive, |_, _| {});
    assert!(
        unchanged == archive,
        "the test seals archives as Gatehouse writes them"
    );

    let newer_format = reseal(&archive, |manifest, _| manifest["formatVersion"] = json!(2));
    refused(
        &mut app,
        "format version 2",
        newer_format,
        &["format version 2", "newer"],
    )
    .await;

    let newer_schema = reseal(&archive, |manifest, _| {
        manifest["schemaVersion"] = json!(999)
    });
    refused(
        &mut app,
        "schema version 999",
        newer_schema,
        &["schema version 999", &format!("up to {latest}")],
    )
    .await;

    let unknown_schema = reseal(&archive, |manifest, _| manifest["schemaVersion"] = json!(0));
    refused(
        &mut app,
        "schema version 0",
        unknown_schema,
        &["schema version 0"],
    )
    .await;

    let missing_table = reseal(&archive, |manifest, tables| {
        let index = table_index(manifest, "api_keys");
        manifest["tables"].as_array_mut().unwrap().remove(index);
        tables.remove(index);
    });
    refused(
        &mut app,
        "a table missing",
        missing_table,
        &["tables", "api_keys", &format!("schema version {latest}")],
    )
    .await;

    let extra_column = reseal(&archive, |manifest, tables| {
        let index = table_index(manifest, "users");
        manifest["tables"][index]["columns"]
            .as_array_mut()
            .unwrap()
            .push(json!("nickname"));
        for row in &mut tables[index] {
            row.as_array_mut().unwrap().push(json!("nick"));
        }
    });
    refused(
        &mut app,
        "an extra column",
        extra_column,
        &["columns of table users"],
    )
    .await;

    let short_row = reseal(&archive, |manifest, tables| {
        tables[table_index(manifest, "users")][0]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    refused(
        &mut app,
        "a row with a value missing",
        short_row,
        &["table users row 1", "values for"],
    )
    .await;

    let long_row = reseal(&archive, |manifest, tables| {
        let index = table_index(manifest, "roles");
        tables[index][0].as_array_mut().unwrap().push(json!(1));
    });
    refused(
        &mut app,
        "a row with a value too many",
        long_row,
        &["table roles row 1", "values for"],
    )
    .await;

    let wrong_type = reseal(&archive, |manifest, tables| {
        let column = column_index(manifest, "users", "created_at");
        tables[table_index(manifest, "users")][0][column] = json!("yesterday");
    });
    refused(
        &mut app,
        "text in an integer column",
        wrong_type,
        &["table users", "created_at", "wrong type"],
    )
    .await;

    let number_as_text = reseal(&archive, |manifest, tables| {
        let column = column_index(manifest, "users", "username");
        tables[table_index(manifest, "users")][0][column] = json!(42);
    });
    refused(
        &mut app,
        "an integer in a text column",
        number_as_text,
        &["table users", "username", "wrong type"],
    )
    .await;

    let not_a_value = reseal(&archive, |manifest, tables| {
        let column = column_index(manifest, "settings", "value");
        tables[table_index(manifest, "settings")][0][column] = json!({"nested": true});
    });
    refused(
        &mut app,
        "an object as a value",
        not_a_value,
        &["table settings row 1"],
    )
    .await;

    let not_an_array = reseal(&archive, |manifest, tables| {
        tables[table_index(manifest, "roles")][0] = json!({"id": "x"});
    });
    refused(
        &mut app,
        "a row that is no array",
        not_an_array,
        &["table roles row 1"],
    )
    .await;

    let signing_key = reseal(&archive, |manifest, tables| {
        let columns = manifest["tables"][table_index(manifest, "settings")]["columns"]
            .as_array()
            .unwrap()
            .clone();
        let row: Vec<Value> = columns
            .iter()
            .map(|column| match column.as_str() {
                Some("key") => json!("jwt.signing_key"),
                _ => json!("c2VjcmV0LXNpZ25pbmcta2V5LWZyb20tZWxzZXdoZXJl"),
            })
            .collect();
        tables[table_index(manifest, "settings")].push(Value::Array(row));
    });
    refused(
        &mut app,
        "the token signing key",
        signing_key,
        &["signing key"],
    )
    .await;

    // None of it left a mark: the archive, sealed again by the test, restores and logins work.
    restore(&mut app, unchanged).await;
    app.login(USER, USER_PASSWORD).await;
}

async fn archives_of_another_installation_are_refused(mut app: TestApp) {
    app_with_data(&mut app).await;
    // An installation with keys of its own.
    let mut other = TestApp::spawn(app.engine).await;
    let (_, foreign) = backup(&mut other).await;
    other.stop().await;
    refused(
        &mut app,
        "an archive of another installation",
        foreign,
        &["mfa.key_check"],
    )
    .await;

    // One with this installation's MFA key but a CA of its own.
    let keys = SharedKeys::of(&app);
    let mut other = TestApp::spawn_with(
        app.engine,
        |settings| {
            keys.apply(settings);
            settings.pki.ca_certificate = None;
            settings.pki.ca_key = None;
        },
        None,
    )
    .await;
    let (_, foreign_ca) = backup(&mut other).await;
    other.stop().await;
    refused(
        &mut app,
        "an archive with another CA",
        foreign_ca,
        &["pki.ca_fingerprint"],
    )
    .await;

    // With both keys the same, the other installation's archive restores.
    let mut twin = TestApp::spawn_with(app.engine, |settings| keys.apply(settings), None).await;
    twin.create_user("twin-user", "twin-password-1", &[]).await;
    let (_, twin_archive) = backup(&mut twin).await;
    twin.stop().await;
    restore(&mut app, twin_archive).await;
    app.login("twin-user", "twin-password-1").await;
    assert_eq!(
        app.try_login(USER, USER_PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Uploads `archive`, which verifies but breaks the schema's rules: 202, then the restore
/// fails in the background with a reason holding `reasons`, and nothing changed.
async fn fails_in_the_background(
    app: &mut TestApp,
    what: &str,
    archive: Vec<u8>,
    reasons: &[&str],
) {
    let before = dump(app).await;
    let (status, body) = upload(app, &app.admin_token, archive).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{what}: {body}");
    let state = wait_idle(app).await;
    let restore = &state["restore"];
    assert_eq!(restore["id"], body["id"], "{what}: {state}");
    assert_eq!(restore["succeeded"], false, "{what}: {state}");
    assert!(restore["endDate"].is_string(), "{what}: {state}");
    let message = restore["statusMessage"].as_str().expect("statusMessage");
    for reason in reasons {
        assert!(
            message.contains(reason),
            "{what}: the reason {message:?} does not name {reason:?}"
        );
    }
    let after = dump(app).await;
    assert!(
        before == after,
        "{what}: the database changed:\n{}",
        common::backup::difference(&before, &after)
    );
    healthy(app).await;
    app.login(USER, USER_PASSWORD).await;
    app.login("admin", ADMIN_PASSWORD).await;
}

async fn rows_that_break_the_schema_fail_the_restore_and_change_nothing(mut app: TestApp) {
    let archive = app_with_data(&mut app).await;
    let (manifest, tables) = unseal(&archive);
    let users = table_index(&manifest, "users");
    let id_column = column_index(&manifest, "users", "id");
    let username_column = column_index(&manifest, "users", "username");
    let keeper = tables[users]
        .iter()
        .find(|row| row[username_column] == USER)
        .expect("the keeper's row")
        .clone();

    let dangling = reseal(&archive, |manifest, tables| {
        let index = table_index(manifest, "user_roles");
        let mut row = tables[index][0].clone();
        row[column_index(manifest, "user_roles", "user_id")] =
            json!("00000000-0000-4000-8000-00000000dead");
        tables[index].push(row);
    });
    fails_in_the_background(
        &mut app,
        "a membership of a missing user",
        dangling,
        &["user_roles", "FOREIGN KEY"],
    )
    .await;

    let twin = reseal(&archive, |_, tables| {
        let mut row = keeper.clone();
        row[id_column] = json!("00000000-0000-4000-8000-00000000beef");
        tables[users].push(row);
    });
    fails_in_the_background(
        &mut app,
        "two users with the same username",
        twin,
        &["users", "UNIQUE", "username"],
    )
    .await;

    let nameless = reseal(&archive, |_, tables| {
        let row = tables[users]
            .iter_mut()
            .find(|row| row[username_column] == USER)
            .unwrap();
        row[username_column] = Value::Null;
    });
    fails_in_the_background(
        &mut app,
        "a user without a username",
        nameless,
        &["users", "NOT NULL"],
    )
    .await;

    let duplicate_setting = reseal(&archive, |manifest, tables| {
        let index = table_index(manifest, "settings");
        let row = tables[index][0].clone();
        tables[index].push(row);
    });
    fails_in_the_background(
        &mut app,
        "a setting twice",
        duplicate_setting,
        &["settings", "UNIQUE"],
    )
    .await;
}

async fn a_running_restore_locks_out_backups_and_restores(mut app: TestApp) {
    app_with_data(&mut app).await;
    let role_id = app.role_id("minimum-access").await;
    seed_users(
        &app.settings.database_url(),
        USER,
        "b10c0000",
        20_000,
        &role_id,
    )
    .await;
    let (_, big) = backup(&mut app).await;
    let (manifest, _) = unseal(&big);
    let users = &manifest["tables"][table_index(&manifest, "users")];
    assert!(users["rows"].as_u64().unwrap() > 20_000, "{users}");

    let started = std::time::Instant::now();
    let (status, body) = upload(&app, &app.admin_token, big.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, state) = app.get("/api/maintenance/db", &app.admin_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        state["running"], true,
        "the restore is still running: {state}"
    );
    assert_eq!(state["restore"]["id"], body["id"], "{state}");
    assert_eq!(state["restore"]["succeeded"], false, "{state}");
    assert!(state["restore"].get("endDate").is_none(), "{state}");

    let (status, answer) = app
        .request(
            Method::POST,
            "/api/maintenance/db/backup",
            Some(&app.admin_token),
            None,
        )
        .await;
    let backup_message = assert_error(status, &answer, StatusCode::LOCKED);
    let (status, answer) = upload(&app, &app.admin_token, big).await;
    let restore_message = assert_error(status, &answer, StatusCode::LOCKED);
    assert!(
        backup_message.contains("maintenance operation") && backup_message == restore_message,
        "{backup_message:?} / {restore_message:?}"
    );
    // Bad input is refused as such whatever runs: 400, not 423, and the running restore's
    // status stays as it is.
    let (status, answer) = upload(&app, &app.admin_token, b"{}".to_vec()).await;
    let message = assert_error(status, &answer, StatusCode::BAD_REQUEST);
    assert!(
        message.contains("not a Gatehouse backup archive"),
        "{message}"
    );
    let (status, state) = app.get("/api/maintenance/db", &app.admin_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        state["running"], true,
        "the 423s came while the restore ran: {state}"
    );
    assert_eq!(state["restore"]["id"], body["id"], "{state}");

    let state = wait_idle(&mut app).await;
    eprintln!(
        "restore of {} users took about {:?}",
        users["rows"],
        started.elapsed()
    );
    assert_eq!(state["restore"]["succeeded"], true, "{state}");
    assert!(
        state.get("backup").is_none() || state["backup"]["succeeded"] == true,
        "the refused backup left no trace: {state}"
    );
    app.login(USER, USER_PASSWORD).await;
    // Once idle, backups run again.
    backup(&mut app).await;
}

async fn unknown_archives_and_non_administrators_are_refused(mut app: TestApp) {
    let archive = app_with_data(&mut app).await;
    let (id, _) = backup(&mut app).await;
    for unknown in [
        "0.0.1_2020-01-01T00:00:00.000Z",
        "no-such-backup",
        "..%2F..%2Fgatehouse.db",
        "%2E%2E",
    ] {
        let (status, body) = app
            .get(
                &format!("/api/maintenance/db/backup/{unknown}"),
                &app.admin_token,
            )
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
    }

    let token = app.login(USER, USER_PASSWORD).await;
    let before = dump(&app).await;
    let download = format!("/api/maintenance/db/backup/{id}");
    for caller in [Some(token.as_str()), None] {
        let expected = if caller.is_some() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        let (status, body) = app
            .request(Method::GET, "/api/maintenance/db", caller, None)
            .await;
        assert_error(status, &body, expected);
        let (status, body) = app
            .request(Method::POST, "/api/maintenance/db/backup", caller, None)
            .await;
        assert_error(status, &body, expected);
        let (status, body) = app.request(Method::GET, &download, caller, None).await;
        assert_error(status, &body, expected);
        let mut request = app
            .client
            .post(app.url("/api/maintenance/db/restore"))
            .header("content-type", "application/octet-stream")
            .body(archive.clone());
        if let Some(token) = caller {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("upload");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON error");
        assert_error(status, &body, expected);
    }
    // Nothing ran: the last backup is still the admin's, no restore was attempted.
    let state = wait_idle(&mut app).await;
    assert_eq!(state["backup"]["id"], id.as_str(), "{state}");
    assert!(state.get("restore").is_none(), "{state}");
    let after = dump(&app).await;
    assert!(before == after);
}

// ---------------------------------------------------------------------------------------------
// An archive of an older schema version, made the way an older Gatehouse made it: a SQLite
// database migrated only up to that version, filled, and written out in the archive format.

const LEGACY_PASSWORD: &str = "legacy-password-1";
const LEGACY_TIME: i64 = 1_600_000_000_000;

/// The columns of `table` in the old database with whether each is an integer; empty when
/// the table does not exist at that version.
async fn old_columns(pool: &sqlx::SqlitePool, table: &str) -> Vec<(String, bool)> {
    sqlx::query("SELECT name, type FROM pragma_table_info(?) ORDER BY cid")
        .bind(table)
        .fetch_all(pool)
        .await
        .expect("table info")
        .iter()
        .map(|row| {
            let declared: String = row.get("type");
            (
                row.get::<String, _>("name"),
                declared.to_ascii_uppercase().contains("INT"),
            )
        })
        .collect()
}

/// Inserts one row given as (column, JSON value) pairs.
async fn insert(pool: &sqlx::SqlitePool, table: &str, values: &[(String, Value)]) {
    let names: Vec<String> = values
        .iter()
        .map(|(name, _)| format!("\"{name}\""))
        .collect();
    let marks = vec!["?"; values.len()].join(", ");
    let sql = format!(
        "INSERT INTO \"{table}\" ({}) VALUES ({marks})",
        names.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (_, value) in values {
        query = match value {
            Value::Null => query.bind(None::<String>),
            Value::Number(number) => query.bind(number.as_i64().expect("an integer")),
            Value::String(text) => query.bind(text.clone()),
            other => panic!("not a column value: {other}"),
        };
    }
    query
        .execute(pool)
        .await
        .unwrap_or_else(|error| panic!("insert into {table} {values:?}: {error}"));
}

/// An archive of schema `version`: the current archive `current` (its tables and columns cut
/// down to those of that version) plus two users an older version made, `legacy-admin`
/// (holding `connectware-admin`) and `legacy-device` (holding `keepers`), like `hash-source`
/// but with [`LEGACY_PASSWORD`] (`password_hash` is its hash).
async fn legacy_archive(version: i64, current: &[u8], password_hash: &str) -> Vec<u8> {
    let (manifest, tables) = unseal(current);
    let directory = tempfile::tempdir().expect("temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        directory.path().join("old.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.expect("old database");
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&pool)
        .await
        .unwrap();
    let migrations = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../store/migrations/sqlite"
    ));
    sqlx::migrate::Migrator::new(migrations)
        .await
        .expect("migrations")
        .run_to(version, &pool)
        .await
        .expect("migrate to the old version");

    // The current content, as far as the old schema holds it.
    let mut present = Vec::new();
    for (index, part) in manifest["tables"].as_array().unwrap().iter().enumerate() {
        let name = part["name"].as_str().unwrap();
        let columns = old_columns(&pool, name).await;
        if columns.is_empty() {
            continue;
        }
        let current_columns: Vec<&str> = part["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|column| column.as_str().unwrap())
            .collect();
        for row in &tables[index] {
            let values: Vec<(String, Value)> = columns
                .iter()
                .map(|(column, _)| {
                    let at = current_columns
                        .iter()
                        .position(|current| current == column)
                        .unwrap_or_else(|| panic!("{name}.{column} is not current"));
                    (column.clone(), row[at].clone())
                })
                .collect();
            insert(&pool, name, &values).await;
        }
        present.push((name.to_owned(), columns));
    }

    // What the older version wrote: users with the columns of schema version 1 only.
    let role_of = |name: &str| {
        let roles = table_index(&manifest, "roles");
        let column = column_index(&manifest, "roles", "name");
        let owner = column_index(&manifest, "roles", "owner_user_id");
        let id = column_index(&manifest, "roles", "id");
        tables[roles]
            .iter()
            .find(|row| row[column] == name && row[owner].is_null())
            .unwrap_or_else(|| panic!("no role {name}"))[id]
            .clone()
    };
    let template = {
        let users = table_index(&manifest, "users");
        let username = column_index(&manifest, "users", "username");
        tables[users]
            .iter()
            .find(|row| row[username] == "hash-source")
            .expect("the user hash-source")
            .clone()
    };
    let of_template = |column: &str| template[column_index(&manifest, "users", column)].clone();
    let enrolled = if version < 3 { 1 } else { 0 };
    for (index, (username, role)) in [
        ("legacy-admin", "connectware-admin"),
        ("legacy-device", "keepers"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("00000000-0000-4000-8000-00000000100{index}");
        let user = [
            ("id", json!(id)),
            ("username", json!(username)),
            ("password_hash", json!(password_hash)),
            ("identity_provider", of_template("identity_provider")),
            ("grant_types", of_template("grant_types")),
            ("auto_generated", json!(0)),
            ("mqtt_publish_prefix", Value::Null),
            ("enforce_mfa_enrollment", json!(0)),
            ("mfa_enrolled", json!(enrolled)),
            ("created_at", json!(LEGACY_TIME)),
            ("updated_at", json!(LEGACY_TIME + 5)),
        ]
        .map(|(column, value)| (column.to_owned(), value));
        insert(&pool, "users", &user).await;
        let membership = [("user_id", json!(id)), ("role_id", role_of(role))]
            .map(|(column, value)| (column.to_owned(), value));
        insert(&pool, "user_roles", &membership).await;
    }

    // Written out as the older version wrote archives.
    let mut parts = Vec::new();
    let mut rows = Vec::new();
    for (name, columns) in &present {
        let names: Vec<String> = columns.iter().map(|(column, _)| column.clone()).collect();
        let select = format!(
            "SELECT {} FROM \"{name}\"",
            names
                .iter()
                .map(|column| format!("\"{column}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let table_rows: Vec<Value> = sqlx::query(sqlx::AssertSqlSafe(select))
            .fetch_all(&pool)
            .await
            .expect("read the old table")
            .iter()
            .map(|row| {
                Value::Array(
                    columns
                        .iter()
                        .enumerate()
                        .map(|(index, (_, integer))| {
                            if *integer {
                                row.get::<Option<i64>, _>(index)
                                    .map_or(Value::Null, Value::from)
                            } else {
                                row.get::<Option<String>, _>(index)
                                    .map_or(Value::Null, Value::from)
                            }
                        })
                        .collect(),
                )
            })
            .collect();
        parts.push(json!({"name": name, "columns": names, "rows": 0, "sha256": ""}));
        rows.push(table_rows);
    }
    pool.close().await;
    let old_manifest = json!({
        "format": "gatehouse-backup",
        "formatVersion": 1,
        "gatehouseVersion": "0.0.1",
        "schemaVersion": version,
        "createdAt": "2024-05-01T12:00:00.000Z",
        "sourceEngine": "sqlite",
        "tables": parts,
    });
    seal(&old_manifest, &rows)
}

/// One user's row in the live database, every column as JSON.
async fn user_row(app: &TestApp, username: &str) -> Value {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&app.settings.database_url())
        .await
        .expect("connect");
    let row = sqlx::query(
        "SELECT authority, tenant_id, customer_id, credentials_enabled, failed_login_attempts, \
         password_changed_at, mfa_failed_attempts, mfa_banned_until, mfa_enrolled, email, \
         updated_at FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_one(&mut connection)
    .await
    .unwrap_or_else(|error| panic!("the user {username}: {error}"));
    let text = |name: &str| row.get::<Option<String>, _>(name);
    let number = |name: &str| row.get::<Option<i64>, _>(name);
    let value = json!({
        "authority": text("authority"),
        "tenant_id": text("tenant_id"),
        "customer_id": text("customer_id"),
        "credentials_enabled": number("credentials_enabled"),
        "failed_login_attempts": number("failed_login_attempts"),
        "password_changed_at": number("password_changed_at"),
        "mfa_failed_attempts": number("mfa_failed_attempts"),
        "mfa_banned_until": number("mfa_banned_until"),
        "mfa_enrolled": number("mfa_enrolled"),
        "email": text("email"),
        "updated_at": number("updated_at"),
    });
    let _ = connection.close().await;
    value
}

async fn archives_of_older_schema_versions_are_migrated_forward(mut app: TestApp) {
    app_with_data(&mut app).await;
    // The hash of LEGACY_PASSWORD as this Gatehouse makes it (older versions used the same
    // PHC strings).
    app.create_user("hash-source", LEGACY_PASSWORD, &[]).await;
    let (_, current) = backup(&mut app).await;
    let (manifest, tables) = unseal(&current);
    let latest = manifest["schemaVersion"].as_i64().unwrap();
    let username = column_index(&manifest, "users", "username");
    let hash_column = column_index(&manifest, "users", "password_hash");
    let password_hash = tables[table_index(&manifest, "users")]
        .iter()
        .find(|row| row[username] == "hash-source")
        .unwrap()[hash_column]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(password_hash.starts_with("$argon2"), "{password_hash}");

    for version in [1, 2, 3, 4].into_iter().filter(|version| *version < latest) {
        let archive = legacy_archive(version, &current, &password_hash).await;
        let state = restore(&mut app, archive).await;
        let message = state["restore"]["statusMessage"].as_str().unwrap();
        assert!(
            message.contains(&format!("schema {version}")),
            "version {version}: {message}"
        );

        let admin = user_row(&app, "legacy-admin").await;
        let device = user_row(&app, "legacy-device").await;
        // Columns added by later migrations: their defaults, or what the migration computed.
        let migrated_from_1 = version < 2;
        for (row, administrator) in [(&admin, true), (&device, false)] {
            let authority = if migrated_from_1 && administrator {
                "SYS_ADMIN"
            } else {
                "CUSTOMER_USER"
            };
            assert_eq!(row["authority"], authority, "version {version}: {row}");
            assert_eq!(row["tenant_id"], TB_NULL_UUID, "version {version}: {row}");
            assert_eq!(row["customer_id"], TB_NULL_UUID, "version {version}: {row}");
            assert_eq!(row["credentials_enabled"], 1, "version {version}: {row}");
            assert_eq!(row["failed_login_attempts"], 0, "version {version}: {row}");
            assert_eq!(row["mfa_failed_attempts"], 0, "version {version}: {row}");
            assert_eq!(
                row["mfa_banned_until"],
                Value::Null,
                "version {version}: {row}"
            );
            assert_eq!(row["email"], Value::Null, "version {version}: {row}");
            // 0003 ends bare MFA flags: no factors stand behind them.
            assert_eq!(row["mfa_enrolled"], 0, "version {version}: {row}");
            let changed = if migrated_from_1 {
                json!(LEGACY_TIME + 5)
            } else {
                Value::Null
            };
            assert_eq!(
                row["password_changed_at"], changed,
                "version {version}: {row}"
            );
            assert_eq!(
                row["updated_at"],
                LEGACY_TIME + 5,
                "version {version}: {row}"
            );
        }

        // The tables of later migrations exist and are empty; the users work.
        let dumped = dump(&app).await;
        for table in ["federated_identities", "domains", "oauth2_clients"] {
            assert_eq!(
                dumped.get(table).map(Vec::len),
                Some(0),
                "version {version}: {table}"
            );
        }
        let token = app.login("legacy-admin", LEGACY_PASSWORD).await;
        let (status, body) = app.get("/api/maintenance/db", &token).await;
        assert_eq!(status, StatusCode::OK, "version {version}: {body}");
        let token = app.login("legacy-device", LEGACY_PASSWORD).await;
        let (status, session) = app.get("/api/session", &token).await;
        assert_eq!(status, StatusCode::OK, "version {version}: {session}");
        let text = session.to_string();
        assert!(text.contains("keep/#"), "version {version}: {session}");
        let (status, body) = app.get("/api/maintenance/db", &token).await;
        assert_error(status, &body, StatusCode::FORBIDDEN);
        app.login(USER, USER_PASSWORD).await;
        app.login("admin", ADMIN_PASSWORD).await;
    }
}

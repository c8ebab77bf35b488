//! Helpers for the backup and restore tests: the database's whole content as comparable text,
//! backups and restores through the API, and keys shared between installations (an archive
//! restores only where the MFA key and the CA are the source's).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gatehouse::config::Settings;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{Column, Connection, Row};

use super::TestApp;

/// Every table of the database but sqlx's own, each as its rows rendered `col=value|…` and
/// sorted: two databases with equal dumps hold the same data.
pub type Dump = BTreeMap<String, Vec<String>>;

/// The content of `app`'s database (see [`Dump`]).
pub async fn dump(app: &TestApp) -> Dump {
    dump_url(&app.settings.database_url()).await
}

/// The content of the database at `url` (see [`Dump`]).
pub async fn dump_url(url: &str) -> Dump {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(url)
        .await
        .expect("connect to the database");
    let tables_query = if url.starts_with("sqlite:") {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations'"
    } else {
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'"
    };
    let tables: Vec<String> = sqlx::query(tables_query)
        .fetch_all(&mut connection)
        .await
        .expect("list tables")
        .iter()
        .map(|row| row.get::<String, _>("name"))
        .collect();
    assert!(tables.iter().any(|table| table == "users"), "{tables:?}");
    let mut dump = Dump::new();
    for table in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM \"{table}\"")))
            .fetch_all(&mut connection)
            .await
            .expect("read a table");
        let mut lines: Vec<String> = rows
            .iter()
            .map(|row| {
                let mut columns: Vec<String> = row
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(index, column)| {
                        let value = if let Ok(number) = row.try_get::<Option<i64>, _>(index) {
                            number.map_or("NULL".to_owned(), |number| number.to_string())
                        } else {
                            row.try_get::<Option<String>, _>(index)
                                .expect("an integer or text column")
                                .map_or("NULL".to_owned(), |text| format!("{text:?}"))
                        };
                        format!("{}={value}", column.name())
                    })
                    .collect();
                columns.sort();
                columns.join("|")
            })
            .collect();
        lines.sort();
        dump.insert(table, lines);
    }
    let _ = connection.close().await;
    dump
}

/// `dump` without the tables and settings a restore does not carry over (sessions, logins
/// under way, the change counters of the caches, which a restore counts up, and the token
/// signing key): what must be equal before a backup and after its restore.
pub fn carried(mut dump: Dump) -> Dump {
    dump.remove("sessions");
    dump.remove("federation_logins");
    dump.remove("change_counters");
    if let Some(settings) = dump.get_mut("settings") {
        settings.retain(|row| !row.contains("key=\"jwt.signing_key\""));
    }
    dump
}

/// Waits until no backup or restore runs; returns the last status. A restore ends every
/// session, so on a 401 the admin logs in again (`app.admin_token` is replaced). So it does on
/// a 403: a request in flight while a restore commits may find its session and user before the
/// commit and the (then empty) permissions of that user after it, when the archive comes from
/// another installation whose admin has another id.
pub async fn wait_idle(app: &mut TestApp) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (mut status, mut body) = app.get("/api/maintenance/db", &app.admin_token).await;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            app.admin_token = app.login("admin", super::ADMIN_PASSWORD).await;
            (status, body) = app.get("/api/maintenance/db", &app.admin_token).await;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["running"] == Value::Bool(false) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "maintenance still running: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Takes a backup through the API, waits for it and downloads it: (id, archive bytes).
pub async fn backup(app: &mut TestApp) -> (String, Vec<u8>) {
    let (status, body) = app
        .request(
            reqwest::Method::POST,
            "/api/maintenance/db/backup",
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().expect("backup id").to_owned();
    let state = wait_idle(app).await;
    assert_eq!(state["backup"]["id"], id.as_str(), "{state}");
    assert_eq!(state["backup"]["succeeded"], true, "{state}");
    let response = app
        .client
        .get(app.url(&format!("/api/maintenance/db/backup/{id}")))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.expect("archive bytes").to_vec();
    (id, bytes)
}

/// Uploads `archive` to restore it; returns the immediate answer.
pub async fn upload(app: &TestApp, token: &str, archive: Vec<u8>) -> (StatusCode, Value) {
    app.send_raw(
        reqwest::Method::POST,
        "/api/maintenance/db/restore",
        token,
        "application/octet-stream",
        archive,
    )
    .await
}

/// Restores `archive` through the API and waits until it succeeded; returns the status. Every
/// session ends with the restore: `app.admin_token` is replaced by a new one. (Always: a status
/// request authenticated just before the restore committed may still answer "done" with the
/// old token, which is dead by then.)
pub async fn restore(app: &mut TestApp, archive: Vec<u8>) -> Value {
    let (status, body) = upload(app, &app.admin_token, archive).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let state = wait_idle(app).await;
    assert_eq!(state["restore"]["succeeded"], true, "{state}");
    app.admin_token = app.login("admin", super::ADMIN_PASSWORD).await;
    state
}

/// The manifest (first line) of an archive.
pub fn manifest(archive: &[u8]) -> Value {
    let end = archive
        .iter()
        .position(|byte| *byte == b'\n')
        .expect("a manifest line");
    serde_json::from_slice(&archive[..end]).expect("manifest JSON")
}

/// The keys of one installation (MFA key, device CA), to give a second installation so that
/// archives move between them.
pub struct SharedKeys {
    mfa_key: String,
    ca_certificate: PathBuf,
    ca_key: PathBuf,
    _directory: tempfile::TempDir,
}

impl SharedKeys {
    /// Copies the keys `app` generated into its data directory.
    pub fn of(app: &TestApp) -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let data_dir = &app.settings.data_dir;
        let mfa_key =
            app.settings.mfa.encryption_key.clone().unwrap_or_else(|| {
                std::fs::read_to_string(data_dir.join("mfa.key")).expect("mfa.key")
            });
        let ca_certificate = directory.path().join("ca.crt");
        let ca_key = directory.path().join("ca.key");
        let pki = &app.settings.pki;
        let source_certificate = pki
            .ca_certificate
            .clone()
            .unwrap_or(data_dir.join("ca.crt"));
        let source_key = pki.ca_key.clone().unwrap_or(data_dir.join("ca.key"));
        std::fs::copy(source_certificate, &ca_certificate).expect("copy ca.crt");
        std::fs::copy(source_key, &ca_key).expect("copy ca.key");
        Self {
            mfa_key: mfa_key.trim().to_owned(),
            ca_certificate,
            ca_key,
            _directory: directory,
        }
    }

    /// Configures `settings` with these keys.
    pub fn apply(&self, settings: &mut Settings) {
        settings.mfa.encryption_key = Some(self.mfa_key.clone());
        settings.pki.ca_certificate = Some(self.ca_certificate.clone());
        settings.pki.ca_key = Some(self.ca_key.clone());
    }
}

// ---------------------------------------------------------------------------------------------
// Archives built by the tests: taken apart, edited and sealed again with correct digests, so
// that an archive can be consistent (every checksum right) and still wrong.

/// The SHA-256 (lower-case hex) of `bytes`, which are UTF-8 (every archive is).
fn sha256_hex(bytes: &[u8]) -> String {
    gatehouse_core::tokens::digest_hex(std::str::from_utf8(bytes).expect("archives are UTF-8"))
}

/// Takes a well-formed archive apart: its manifest, and per table of the manifest its rows
/// (each a JSON array), in the manifest's order.
pub fn unseal(archive: &[u8]) -> (Value, Vec<Vec<Value>>) {
    let text = std::str::from_utf8(archive).expect("archives are UTF-8");
    let mut lines = text.lines();
    let manifest: Value =
        serde_json::from_str(lines.next().expect("a manifest line")).expect("manifest JSON");
    let mut tables = Vec::new();
    for part in manifest["tables"].as_array().expect("manifest tables") {
        let count = part["rows"].as_u64().expect("row count");
        let rows: Vec<Value> = (0..count)
            .map(|_| serde_json::from_str(lines.next().expect("a row line")).expect("row JSON"))
            .collect();
        tables.push(rows);
    }
    let trailer: Value =
        serde_json::from_str(lines.next().expect("a trailer line")).expect("trailer JSON");
    assert!(trailer["sha256"].is_string(), "{trailer}");
    assert!(lines.next().is_none(), "nothing after the trailer");
    (manifest, tables)
}

/// Writes an archive of `manifest` with the rows of `tables` (one entry per table of the
/// manifest, in its order); each table's `rows` and `sha256` and the trailer are computed here.
pub fn seal(manifest: &Value, tables: &[Vec<Value>]) -> Vec<u8> {
    let mut manifest = manifest.clone();
    let parts = manifest["tables"].as_array_mut().expect("manifest tables");
    assert_eq!(parts.len(), tables.len(), "one row list per table");
    let mut body = Vec::new();
    for (part, rows) in parts.iter_mut().zip(tables) {
        let mut lines = Vec::new();
        for row in rows {
            serde_json::to_writer(&mut lines, row).expect("row JSON");
            lines.push(b'\n');
        }
        part["rows"] = Value::from(rows.len());
        part["sha256"] = Value::from(sha256_hex(&lines));
        body.extend_from_slice(&lines);
    }
    let mut archive = ordered_json(&manifest, MANIFEST_ORDER);
    archive.push(b'\n');
    archive.extend_from_slice(&body);
    let digest = sha256_hex(&archive);
    serde_json::to_writer(&mut archive, &serde_json::json!({ "sha256": digest }))
        .expect("trailer JSON");
    archive.push(b'\n');
    archive
}

/// The members of a manifest in the order Gatehouse writes them (readers may look for an
/// archive's first bytes), and those of each table part.
const MANIFEST_ORDER: &[&str] = &[
    "format",
    "formatVersion",
    "gatehouseVersion",
    "schemaVersion",
    "createdAt",
    "sourceEngine",
    "tables",
];
const TABLE_ORDER: &[&str] = &["name", "columns", "rows", "sha256"];

/// `object` as compact JSON with the members of `order` first, in that order (then any
/// others); the parts of a manifest's `tables` likewise.
fn ordered_json(object: &Value, order: &[&str]) -> Vec<u8> {
    let Value::Object(members) = object else {
        return serde_json::to_vec(object).expect("JSON");
    };
    let mut keys: Vec<&String> = members.keys().collect();
    keys.sort_by_key(|key| {
        order
            .iter()
            .position(|known| known == key)
            .unwrap_or(order.len())
    });
    let mut out = vec![b'{'];
    for (index, key) in keys.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend(serde_json::to_vec(key).expect("JSON"));
        out.push(b':');
        match (key.as_str(), &members[key]) {
            ("tables", Value::Array(parts)) if order == MANIFEST_ORDER => {
                out.push(b'[');
                for (index, part) in parts.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    out.extend(ordered_json(part, TABLE_ORDER));
                }
                out.push(b']');
            }
            (_, value) => out.extend(serde_json::to_vec(value).expect("JSON")),
        }
    }
    out.push(b'}');
    out
}

/// Rebuilds a well-formed archive after `edit` changed its manifest and rows (per table, in
/// the manifest's order): digests and row counts are right again, whatever the edit did.
pub fn reseal(archive: &[u8], edit: impl FnOnce(&mut Value, &mut Vec<Vec<Value>>)) -> Vec<u8> {
    let (mut manifest, mut tables) = unseal(archive);
    edit(&mut manifest, &mut tables);
    seal(&manifest, &tables)
}

/// The position of `table` in the manifest.
pub fn table_index(manifest: &Value, table: &str) -> usize {
    manifest["tables"]
        .as_array()
        .expect("manifest tables")
        .iter()
        .position(|part| part["name"] == table)
        .unwrap_or_else(|| panic!("no table {table} in {manifest}"))
}

/// The position of `column` in the rows of `table`.
pub fn column_index(manifest: &Value, table: &str, column: &str) -> usize {
    manifest["tables"][table_index(manifest, table)]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .position(|name| name == column)
        .unwrap_or_else(|| panic!("no column {table}.{column}"))
}

/// Adds `count` users straight into the database at `url` (`bulk-<tag>-<n>`, copies of the
/// user `template` but for id, username and email), each a member of the role `role_id`:
/// `2 × count` rows, quickly, for archives that take a while to restore.
pub async fn seed_users(url: &str, template: &str, tag: &str, count: u32, role_id: &str) {
    assert!(
        tag.len() == 8 && tag.bytes().all(|byte| byte.is_ascii_hexdigit()),
        "the tag is 8 hex digits"
    );
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(url)
        .await
        .expect("connect to the database");
    let sqlite = url.starts_with("sqlite:");
    let columns_query = if sqlite {
        "SELECT name FROM pragma_table_info('users') ORDER BY cid"
    } else {
        "SELECT column_name::text AS name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = 'users' ORDER BY ordinal_position"
    };
    let columns: Vec<String> = sqlx::query(columns_query)
        .fetch_all(&mut connection)
        .await
        .expect("users columns")
        .iter()
        .map(|row| row.get::<String, _>("name"))
        .collect();
    let id = if sqlite {
        format!("'{tag}-0000-4000-8000-' || substr('000000000000' || n, -12, 12)")
    } else {
        format!("'{tag}-0000-4000-8000-' || lpad(n::text, 12, '0')")
    };
    let values: Vec<String> = columns
        .iter()
        .map(|column| match column.as_str() {
            "id" => id.clone(),
            "username" => format!("'bulk-{tag}-' || CAST(n AS TEXT)"),
            "email" => "NULL".to_owned(),
            other => format!("t.\"{other}\""),
        })
        .collect();
    let names: Vec<String> = columns
        .iter()
        .map(|column| format!("\"{column}\""))
        .collect();
    let insert = format!(
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {count}) \
         INSERT INTO users ({}) SELECT {} FROM seq CROSS JOIN users t WHERE t.username = $1",
        names.join(", "),
        values.join(", ")
    );
    let inserted = sqlx::query(sqlx::AssertSqlSafe(insert))
        .bind(template)
        .execute(&mut connection)
        .await
        .expect("insert the users")
        .rows_affected();
    assert_eq!(
        inserted,
        u64::from(count),
        "the template user {template} exists"
    );
    let memberships = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO user_roles (user_id, role_id) SELECT id, $1 FROM users \
         WHERE username LIKE 'bulk-{tag}-%'"
    )))
    .bind(role_id)
    .execute(&mut connection)
    .await
    .expect("insert the memberships")
    .rows_affected();
    assert_eq!(memberships, u64::from(count));
    let _ = connection.close().await;
}

/// A fresh PostgreSQL database on the server of `GATEHOUSE_TEST_DATABASE_URL`, dropped with
/// this value (for tests that run the binary on PostgreSQL).
pub struct FreshPostgres {
    /// Its URL.
    pub url: String,
    _database: super::PostgresDatabase,
}

impl FreshPostgres {
    /// A new database, `None` when no PostgreSQL server is configured.
    pub async fn create() -> Option<Self> {
        let server = super::postgres_url()?;
        let (database, url) = super::PostgresDatabase::create(&server).await;
        Some(Self {
            url,
            _database: database,
        })
    }
}

/// Where two dumps differ, briefly: the tables whose rows differ, with their row counts and
/// the first differing rows (for assertion messages; empty when equal).
pub fn difference(left: &Dump, right: &Dump) -> String {
    let mut out = String::new();
    let names: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    for name in names {
        let (a, b) = (left.get(name), right.get(name));
        if a == b {
            continue;
        }
        let empty = Vec::new();
        let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
        let only_left = a.iter().find(|row| b.binary_search(row).is_err());
        let only_right = b.iter().find(|row| a.binary_search(row).is_err());
        out.push_str(&format!(
            "{name}: {} vs {} rows; only left: {only_left:?}; only right: {only_right:?}\n",
            a.len(),
            b.len()
        ));
    }
    out
}

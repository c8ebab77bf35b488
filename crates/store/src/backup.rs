//! Backup and restore of the whole database (see [`gatehouse_core::maintenance`] for the rules
//! around them and [`crate::archive`] for the file).
//!
//! - **Backup** reads every table of [`ARCHIVED_TABLES`] in one read-only transaction (a
//!   snapshot: SQLite's WAL reader, PostgreSQL's REPEATABLE READ), rows in primary-key order
//!   with byte-wise text ordering, so the same content gives the same bytes on either engine.
//! - **Restore** verifies the archive, loads it into a scratch SQLite database created at the
//!   archive's schema version (the schema's own constraints check the rows: references,
//!   uniqueness, NOT NULL), migrates that forward to this version, and only then replaces the
//!   live tables in one write transaction that also ends every session. Any failure before the
//!   commit leaves the live database as it was.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::maintenance::{
    ArchiveSummary, DatabaseArchiver, KEY_BOUND_SETTINGS, SCRATCH_PREFIX, SIGNING_KEY_SETTING,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};

use crate::archive::{
    self, ArchiveError, ArchiveWriter, ColumnKind, Manifest, RowReader, Schema, Value,
    VerifiedArchive, FORMAT, FORMAT_VERSION,
};
use crate::{db_error, Engine, SqlStore};

/// Every table an archive holds, parents before children (the restore order), with the
/// columns that order its rows (its primary key).
const ARCHIVED_TABLES: &[(&str, &[&str])] = &[
    ("users", &["id"]),
    ("roles", &["id"]),
    ("role_permissions", &["id"]),
    ("user_roles", &["user_id", "role_id"]),
    ("user_certificates", &["fingerprint"]),
    ("settings", &["key"]),
    ("password_history", &["id"]),
    ("credential_tokens", &["digest"]),
    ("api_keys", &["id"]),
    ("mfa_factors", &["user_id", "provider", "enrolled"]),
    ("mfa_backup_codes", &["user_id", "digest"]),
    ("registry_requests", &["username"]),
    ("trusted_certificates", &["id"]),
    ("oauth2_clients", &["id"]),
    ("oauth2_templates", &["id"]),
    ("domains", &["id"]),
    ("domain_oauth2_clients", &["domain_id", "client_id"]),
    ("federated_identities", &["provider", "subject"]),
    ("signups", &["user_id"]),
];

/// Tables left out of archives on purpose: live sessions (a restore ends them all) and logins
/// under way at an identity provider (valid for minutes). A restore empties them.
const TRANSIENT_TABLES: &[&str] = &["sessions", "federation_logins"];

/// The change feed of the hot-path caches: not archived (its counts belong to this database's
/// processes); a restore counts every feed up, so every server's caches reload.
const CHANGE_FEED_TABLE: &str = "change_counters";

/// Values per INSERT statement (SQLite allows 32 766 parameters, PostgreSQL 65 535).
const PARAMETERS_PER_STATEMENT: usize = 900;

/// Approximate bytes of values per INSERT statement (see [`statement_batches`]).
const BYTES_PER_STATEMENT: usize = 8 * 1024;

/// The columns of a table with their kinds, in the table's order.
type Columns = Vec<(String, ColumnKind)>;

fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    }
}

fn archive_error(error: ArchiveError) -> CoreError {
    match error {
        ArchiveError::Invalid(reason) => CoreError::invalid("archive", reason),
        ArchiveError::Io(error) => CoreError::internal(format!("archive file: {error}")),
    }
}

/// The migrations of `engine` (the ones [`SqlStore::connect`] applies).
fn migrator(engine: Engine) -> sqlx::migrate::Migrator {
    match engine {
        Engine::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Engine::Postgres => sqlx::migrate!("./migrations/postgres"),
    }
}

/// The newest schema version this build knows.
fn latest_schema_version() -> i64 {
    migrator(Engine::Sqlite)
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or(0)
}

/// The columns of `table` as the database declares them (empty if it does not exist).
async fn columns_of<'e, E>(executor: E, engine: Engine, table: &str) -> CoreResult<Columns>
where
    E: Executor<'e, Database = sqlx::Any>,
{
    let query = match engine {
        Engine::Sqlite => "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
        Engine::Postgres => {
            "SELECT column_name::text AS name, data_type::text AS type \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
        }
    };
    let rows = sqlx::query(query)
        .bind(table)
        .fetch_all(executor)
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|row| {
            let name: String = row.try_get("name").map_err(db_error)?;
            let declared: String = row.try_get("type").map_err(db_error)?;
            let kind = ColumnKind::of_sql_type(&declared).ok_or_else(|| {
                CoreError::internal(format!(
                    "{table}.{name} has the unsupported type {declared}"
                ))
            })?;
            Ok((name, kind))
        })
        .collect()
}

/// `"a", "b"` for a column list (names come from the schema, never from an archive unchecked).
fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|column| format!("\"{column}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_value(row: &AnyRow, index: usize, kind: ColumnKind) -> CoreResult<Value> {
    let value = match kind {
        ColumnKind::Integer => row
            .try_get::<Option<i64>, _>(index)
            .map_err(db_error)?
            .map_or(Value::Null, Value::Integer),
        ColumnKind::Text => row
            .try_get::<Option<String>, _>(index)
            .map_err(db_error)?
            .map_or(Value::Null, Value::Text),
    };
    Ok(value)
}

/// Splits `rows` into the batches of one INSERT each: at most [`PARAMETERS_PER_STATEMENT`]
/// values, and about [`BYTES_PER_STATEMENT`] of them. The byte bound matters on PostgreSQL:
/// sqlx writes a larger statement in two pieces, and without TCP_NODELAY (which sqlx does not
/// set) the second waits for the server's delayed acknowledgement, some 40 ms per statement.
fn statement_batches(rows: &[Vec<Value>], columns: usize) -> Vec<&[Vec<Value>]> {
    let most_rows = (PARAMETERS_PER_STATEMENT / columns.max(1)).max(1);
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, row) in rows.iter().enumerate() {
        let row_bytes: usize = row
            .iter()
            .map(|value| match value {
                Value::Text(text) => text.len() + 16,
                Value::Integer(_) | Value::Null => 16,
            })
            .sum();
        if index > start && (index - start == most_rows || bytes + row_bytes > BYTES_PER_STATEMENT)
        {
            batches.push(&rows[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += row_bytes;
    }
    if start < rows.len() {
        batches.push(&rows[start..]);
    }
    batches
}

/// Inserts `rows` into `table` with as few statements as [`statement_batches`] allows.
async fn insert_rows(
    connection: &mut sqlx::AnyConnection,
    table: &str,
    columns: &[String],
    kinds: &[ColumnKind],
    rows: &[Vec<Value>],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() || columns.is_empty() {
        return Ok(());
    }
    for batch in statement_batches(rows, columns.len()) {
        let mut sql = format!("INSERT INTO \"{table}\" ({}) VALUES ", column_list(columns));
        let mut parameter = 0;
        for (index, _) in batch.iter().enumerate() {
            if index > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for column in 0..columns.len() {
                if column > 0 {
                    sql.push_str(", ");
                }
                parameter += 1;
                sql.push_str(&format!("${parameter}"));
            }
            sql.push(')');
        }
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in batch {
            for (value, kind) in row.iter().zip(kinds) {
                query = match (value, kind) {
                    (Value::Integer(number), _) => query.bind(*number),
                    (Value::Text(text), _) => query.bind(text.clone()),
                    (Value::Null, ColumnKind::Integer) => query.bind(None::<i64>),
                    (Value::Null, ColumnKind::Text) => query.bind(None::<String>),
                };
            }
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}

/// A scratch SQLite database in a temporary directory, removed when dropped.
struct Scratch {
    pool: AnyPool,
    _directory: tempfile::TempDir,
}

impl Scratch {
    /// A new scratch database at schema `version`, next to `near` (the archive).
    async fn at_version(near: &Path, version: i64) -> CoreResult<Self> {
        let parent = near
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Beside the archive (the backup directory, sized for it); in the system's temporary
        // directory when that is not writable (an archive on read-only media).
        let scratch_prefix = format!("{SCRATCH_PREFIX}restore-");
        let builder = || {
            let mut builder = tempfile::Builder::new();
            builder.prefix(&scratch_prefix);
            builder
        };
        let directory = builder()
            .tempdir_in(parent)
            .or_else(|_| builder().tempdir())
            .map_err(CoreError::internal)?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            directory.path().join("scratch.db").display()
        );
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(|connection, _| {
                Box::pin(async move {
                    connection
                        .execute("PRAGMA foreign_keys = ON; PRAGMA synchronous = OFF;")
                        .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(db_error)?;
        migrator(Engine::Sqlite)
            .run_to(version, &pool)
            .await
            .map_err(CoreError::internal)?;
        Ok(Self {
            pool,
            _directory: directory,
        })
    }

    /// The archived tables that exist in this database, in restore order, with their columns.
    async fn archived_tables(&self) -> CoreResult<Schema> {
        let mut tables = Vec::new();
        for (table, _) in ARCHIVED_TABLES {
            let columns = columns_of(&self.pool, Engine::Sqlite, table).await?;
            if !columns.is_empty() {
                tables.push(((*table).to_owned(), columns));
            }
        }
        Ok(tables)
    }
}

/// What must hold of an archive's schema version for this build to restore it.
fn check_schema_version(manifest: &Manifest) -> Result<(), String> {
    let latest = latest_schema_version();
    let known = migrator(Engine::Sqlite).version_exists(manifest.schema_version);
    if manifest.schema_version > latest {
        return Err(format!(
            "the archive comes from Gatehouse {} with schema version {}; this is Gatehouse {} \
             with schema versions up to {latest}: restore it with Gatehouse {} or later",
            manifest.gatehouse_version,
            manifest.schema_version,
            env!("CARGO_PKG_VERSION"),
            manifest.gatehouse_version
        ));
    }
    if !known {
        return Err(format!(
            "the archive's schema version {} is unknown",
            manifest.schema_version
        ));
    }
    if manifest.source_engine != "sqlite" && manifest.source_engine != "postgres" {
        return Err(format!(
            "the archive's source engine {:?} is unknown",
            manifest.source_engine
        ));
    }
    Ok(())
}

fn summary_of(manifest: &Manifest) -> CoreResult<ArchiveSummary> {
    let created_at = time::OffsetDateTime::parse(
        &manifest.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| {
        CoreError::invalid(
            "archive",
            "the manifest's createdAt is not an RFC 3339 time",
        )
    })?;
    let created_at = i64::try_from(created_at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| CoreError::invalid("archive", "the manifest's createdAt is out of range"))?;
    Ok(ArchiveSummary {
        gatehouse_version: manifest.gatehouse_version.clone(),
        schema_version: manifest.schema_version,
        created_at,
        source_engine: manifest.source_engine.clone(),
        tables: manifest
            .tables
            .iter()
            .map(|part| (part.name.clone(), part.rows))
            .collect(),
    })
}

impl SqlStore {
    /// Verifies `path` (see [`DatabaseArchiver::verify`]) and returns it with its summary.
    /// The scratch database it creates at the archive's schema version (to know that schema)
    /// is returned empty, for [`SqlStore::staged`].
    async fn verified(
        &self,
        path: &Path,
    ) -> CoreResult<(VerifiedArchive, ArchiveSummary, Scratch)> {
        let opened = archive::open(path).await.map_err(archive_error)?;
        check_schema_version(&opened.manifest)
            .map_err(|reason| CoreError::invalid("archive", reason))?;
        let scratch = Scratch::at_version(path, opened.manifest.schema_version).await?;
        let schema = scratch.archived_tables().await?;
        let mut archived_settings = BTreeMap::new();
        let verified = archive::check_rows(path, opened, &schema, |table, columns, values| {
            if table == "settings" {
                let text_of = |name: &str| match columns
                    .iter()
                    .position(|column| column == name)
                    .and_then(|index| values.get(index))
                {
                    Some(Value::Text(text)) => Some(text.clone()),
                    _ => None,
                };
                if let (Some(key), Some(value)) = (text_of("key"), text_of("value")) {
                    if key == SIGNING_KEY_SETTING {
                        return Err("archives never hold the token signing key".to_owned());
                    }
                    if KEY_BOUND_SETTINGS.contains(&key.as_str()) {
                        archived_settings.insert(key, value);
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(archive_error)?;
        for key in KEY_BOUND_SETTINGS {
            let ours = gatehouse_core::store::Store::setting(self, key).await?;
            if let (Some(ours), Some(theirs)) = (ours, archived_settings.get(key)) {
                if &ours != theirs {
                    return Err(CoreError::invalid(
                        "archive",
                        format!(
                            "the archive's {key} differs from this database's: it was taken \
                             with other keys (mfa.encryption_key or the mfa.key file, the CA \
                             of pki.ca_certificate/ca.crt); configure the source's keys first"
                        ),
                    ));
                }
            }
        }
        let summary = summary_of(&verified.manifest)?;
        Ok((verified, summary, scratch))
    }

    /// Loads the verified archive into `scratch` (empty, at the archive's schema version) and
    /// migrates it to this version.
    async fn staged(
        &self,
        path: &Path,
        verified: &VerifiedArchive,
        scratch: Scratch,
    ) -> CoreResult<Scratch> {
        let manifest = &verified.manifest;
        let schema = scratch.archived_tables().await?;
        let mut reader = RowReader::open(path, verified)
            .await
            .map_err(archive_error)?;
        let mut connection = scratch.pool.acquire().await.map_err(db_error)?;
        sqlx::query("BEGIN")
            .execute(&mut *connection)
            .await
            .map_err(db_error)?;
        for (part, (_, columns)) in manifest.tables.iter().zip(&schema) {
            let kinds = part.kinds(columns);
            let per_batch = batch_rows(part.columns.len());
            let mut batch = Vec::with_capacity(per_batch);
            for _ in 0..part.rows {
                let mut values = Vec::new();
                reader.next_row(&mut values).await.map_err(archive_error)?;
                batch.push(values);
                if batch.len() == per_batch {
                    insert_rows(&mut connection, &part.name, &part.columns, &kinds, &batch)
                        .await
                        .map_err(|error| rejected_rows(&part.name, &error))?;
                    batch.clear();
                }
            }
            insert_rows(&mut connection, &part.name, &part.columns, &kinds, &batch)
                .await
                .map_err(|error| rejected_rows(&part.name, &error))?;
        }
        sqlx::query("COMMIT")
            .execute(&mut *connection)
            .await
            .map_err(db_error)?;
        drop(connection);
        migrator(Engine::Sqlite)
            .run(&scratch.pool)
            .await
            .map_err(|error| {
                CoreError::invalid(
                    "archive",
                    format!("the archive cannot be migrated to this version: {error}"),
                )
            })?;
        Ok(scratch)
    }

    /// Replaces every archived table (and empties the transient ones) with the scratch
    /// database's content, in one transaction. The token signing key stays.
    async fn apply(&self, scratch: &Scratch) -> CoreResult<()> {
        let tables = scratch.archived_tables().await?;
        let mut transaction = self.begin_write().await?;
        for table in TRANSIENT_TABLES {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM \"{table}\"")))
                .execute(&mut *transaction)
                .await
                .map_err(db_error)?;
        }
        for (table, _) in tables.iter().rev() {
            let query = if table == "settings" {
                sqlx::query("DELETE FROM settings WHERE key <> $1").bind(SIGNING_KEY_SETTING)
            } else {
                sqlx::query(AssertSqlSafe(format!("DELETE FROM \"{table}\"")))
            };
            query.execute(&mut *transaction).await.map_err(db_error)?;
        }
        for (table, columns) in &tables {
            let mut live: Vec<String> = columns_of(&mut *transaction, self.engine, table)
                .await?
                .into_iter()
                .map(|(name, _)| name)
                .collect();
            let mut names: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
            live.sort_unstable();
            let kinds: Vec<ColumnKind> = columns.iter().map(|(_, kind)| *kind).collect();
            let select = format!(
                "SELECT rowid, {} FROM \"{table}\" WHERE rowid > $1 ORDER BY rowid LIMIT $2",
                column_list(&names)
            );
            names.sort_unstable();
            if live != names {
                return Err(CoreError::internal(format!(
                    "the live table {table} does not have the columns of this version's schema"
                )));
            }
            let names: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
            let page = i64::try_from(batch_rows(names.len())).unwrap_or(i64::MAX);
            let mut after = i64::MIN;
            loop {
                // Pages by rowid keep memory bounded whatever the table's size.
                let rows = sqlx::query(AssertSqlSafe(select.clone()))
                    .bind(after)
                    .bind(page)
                    .fetch_all(&scratch.pool)
                    .await
                    .map_err(db_error)?;
                let Some(last) = rows.last() else { break };
                after = last.try_get(0).map_err(db_error)?;
                let values = rows
                    .iter()
                    .map(|row| {
                        kinds
                            .iter()
                            .enumerate()
                            .map(|(index, kind)| read_value(row, index + 1, *kind))
                            .collect::<CoreResult<Vec<_>>>()
                    })
                    .collect::<CoreResult<Vec<_>>>()?;
                insert_rows(&mut transaction, table, &names, &kinds, &values)
                    .await
                    .map_err(db_error)?;
            }
        }
        if self.engine == Engine::Postgres {
            // Explicit ids leave the identity sequence behind; the next insert must not clash.
            sqlx::query(
                "SELECT setval(pg_get_serial_sequence('password_history', 'id'), \
                 COALESCE((SELECT MAX(id) FROM password_history), 0) + 1, false)",
            )
            .execute(&mut *transaction)
            .await
            .map_err(db_error)?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE \"{CHANGE_FEED_TABLE}\" SET value = value + 1"
        )))
        .execute(&mut *transaction)
        .await
        .map_err(db_error)?;
        transaction.commit().await.map_err(db_error)
    }
}

/// Rows per INSERT batch for a table of `columns` columns.
fn batch_rows(columns: usize) -> usize {
    (PARAMETERS_PER_STATEMENT / columns.max(1)).max(1) * 8
}

/// The reason rows of `table` broke the schema's rules.
fn rejected_rows(table: &str, error: &sqlx::Error) -> CoreError {
    match error {
        sqlx::Error::Database(database) => CoreError::invalid(
            "archive",
            format!(
                "the rows of table {table} break the schema's rules: {}",
                database.message()
            ),
        ),
        other => CoreError::internal(other),
    }
}

#[async_trait]
impl DatabaseArchiver for SqlStore {
    async fn back_up(&self, destination: &Path, created_at: i64) -> CoreResult<ArchiveSummary> {
        let directory = destination
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut writer = ArchiveWriter::create(directory)
            .await
            .map_err(archive_error)?;
        let begin = match self.engine {
            Engine::Sqlite => "BEGIN",
            Engine::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        let mut snapshot = self.pool.begin_with(begin).await.map_err(db_error)?;
        let schema_version: i64 = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) AS version FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(&mut *snapshot)
        .await
        .and_then(|row| row.try_get("version"))
        .map_err(db_error)?;
        let created_at = gatehouse_core::clock::format_millis(created_at);
        for (table, order) in ARCHIVED_TABLES {
            let columns = columns_of(&mut *snapshot, self.engine, table).await?;
            if columns.is_empty() {
                return Err(CoreError::internal(format!("the table {table} is missing")));
            }
            let names: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
            let order_by = order
                .iter()
                .map(|column| {
                    let text = columns
                        .iter()
                        .any(|(name, kind)| name == column && *kind == ColumnKind::Text);
                    match (self.engine, text) {
                        (Engine::Postgres, true) => format!("\"{column}\" COLLATE \"C\""),
                        _ => format!("\"{column}\""),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let settings = *table == "settings";
            let filter = if settings { "WHERE key <> $1" } else { "" };
            let sql = format!(
                "SELECT {} FROM \"{table}\" {filter} ORDER BY {order_by}",
                column_list(&names)
            );
            writer.begin_table(table, names);
            let query = sqlx::query(AssertSqlSafe(sql));
            let query = if settings {
                query.bind(SIGNING_KEY_SETTING)
            } else {
                query
            };
            let mut rows = query.fetch(&mut *snapshot);
            let mut values = Vec::with_capacity(columns.len());
            while let Some(row) = rows.try_next().await.map_err(db_error)? {
                values.clear();
                for (index, (_, kind)) in columns.iter().enumerate() {
                    values.push(read_value(&row, index, *kind)?);
                }
                writer.row(&values).await.map_err(archive_error)?;
            }
            drop(rows);
            writer.end_table();
        }
        snapshot.rollback().await.map_err(db_error)?;
        let manifest = writer
            .finish(
                Manifest {
                    format: FORMAT.to_owned(),
                    format_version: FORMAT_VERSION,
                    gatehouse_version: env!("CARGO_PKG_VERSION").to_owned(),
                    schema_version,
                    created_at,
                    source_engine: engine_name(self.engine).to_owned(),
                    tables: Vec::new(),
                },
                destination,
            )
            .await
            .map_err(archive_error)?;
        summary_of(&manifest)
    }

    async fn verify(&self, archive: &Path) -> CoreResult<ArchiveSummary> {
        Ok(self.verified(archive).await?.1)
    }

    async fn restore(&self, archive: &Path) -> CoreResult<ArchiveSummary> {
        let (verified, summary, scratch) = self.verified(archive).await?;
        let scratch = self.staged(archive, &verified, scratch).await?;
        self.apply(&scratch).await?;
        tracing::info!(
            archive = %summary.id(),
            source_engine = %summary.source_engine,
            schema_version = summary.schema_version,
            "database restored; every session ended"
        );
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new table must be listed as archived or transient: nothing is silently left out of
    /// backups.
    #[test]
    fn statements_stay_within_their_parameter_and_byte_bounds() {
        let narrow: Vec<Vec<Value>> = (0..2000).map(|n| vec![Value::Integer(n)]).collect();
        let batches = statement_batches(&narrow, 1);
        assert!(batches
            .iter()
            .all(|batch| batch.len() <= PARAMETERS_PER_STATEMENT));
        assert_eq!(batches.iter().map(|batch| batch.len()).sum::<usize>(), 2000);
        let wide: Vec<Vec<Value>> = (0..50)
            .map(|_| vec![Value::Text("x".repeat(3000)), Value::Null])
            .collect();
        let batches = statement_batches(&wide, 2);
        assert!(
            batches.iter().all(|batch| batch.len() <= 2),
            "{}",
            batches.len()
        );
        assert_eq!(batches.iter().map(|batch| batch.len()).sum::<usize>(), 50);
        // A single row larger than the bound still gets its statement.
        let huge = vec![vec![Value::Text("y".repeat(100_000))]];
        assert_eq!(statement_batches(&huge, 1), vec![&huge[..]]);
        assert!(statement_batches(&[], 3).is_empty());
    }

    #[tokio::test]
    async fn every_table_of_the_schema_is_archived_or_transient() {
        let directory = tempfile::tempdir().unwrap();
        let scratch = Scratch::at_version(&directory.path().join("x"), latest_schema_version())
            .await
            .unwrap();
        let mut tables: Vec<String> = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> '_sqlx_migrations'",
        )
        .fetch_all(&scratch.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>("name"))
        .collect();
        tables.sort();
        let mut listed: Vec<String> = ARCHIVED_TABLES
            .iter()
            .map(|(name, _)| *name)
            .chain(TRANSIENT_TABLES.iter().copied())
            .chain([CHANGE_FEED_TABLE])
            .map(str::to_owned)
            .collect();
        listed.sort();
        assert_eq!(tables, listed);
        assert_eq!(
            scratch.archived_tables().await.unwrap().len(),
            ARCHIVED_TABLES.len()
        );
    }
}

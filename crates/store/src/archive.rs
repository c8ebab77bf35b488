//! The backup archive: one UTF-8 file of newline-terminated JSON lines, engine-neutral.
//!
//! ```text
//! {"format":"gatehouse-backup","formatVersion":1,"gatehouseVersion":…,"schemaVersion":…,
//!  "createdAt":…,"sourceEngine":…,"tables":[{"name","columns","rows","sha256"},…]}   manifest
//! [value, value, …]                       one line per row: null, an integer or a string
//! …                                       per column, the tables one after another in
//!                                         the manifest's order, `rows` lines each
//! {"sha256":"…"}                           digest of every byte before this line
//! ```
//!
//! Each table's `sha256` covers its row lines; the last line covers everything, so a flipped
//! byte anywhere, a truncation or an appended line is found before anything is restored. The
//! digests detect damage, not a forger who rewrites them: archives are uploaded by
//! administrators only.

use std::path::{Path, PathBuf};

use gatehouse_core::maintenance::SCRATCH_PREFIX;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::fs::File;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader, BufWriter};

/// The `format` of every archive.
pub(crate) const FORMAT: &str = "gatehouse-backup";
/// The version of the layout above; a reader refuses newer ones.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// How every archive begins (the manifest's first member, as the writer serializes it).
const ARCHIVE_START: &[u8] = b"{\"format\":\"gatehouse-backup\",";
/// The reason given for a file without a well-formed closing checksum line.
const NO_CLOSING_LINE: &str =
    "the archive is damaged or truncated: its closing checksum line is missing or malformed";
/// The reason given for a file that is not an archive.
const NOT_AN_ARCHIVE: &str = "this is not a Gatehouse backup archive";
/// The longest line accepted (a row with a large document, the manifest).
const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;
/// The trailer is `{"sha256":"<64 hex>"}` and a newline: 78 bytes.
const TRAILER_BYTES: u64 = 78;

/// A problem with an archive: the archive is bad ([`ArchiveError::Invalid`], the reason is
/// for the operator), or a file could not be read or written.
#[derive(Debug)]
pub(crate) enum ArchiveError {
    /// The archive cannot be restored, and why.
    Invalid(String),
    /// Reading or writing a file failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for ArchiveError {
    fn from(error: std::io::Error) -> Self {
        ArchiveError::Io(error)
    }
}

fn invalid(reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Invalid(reason.into())
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Value {
    /// SQL NULL.
    Null,
    /// An integer column's value.
    Integer(i64),
    /// A text column's value.
    Text(String),
}

/// The first line of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The Gatehouse version that wrote it.
    pub gatehouse_version: String,
    /// The latest migration applied to the source database.
    pub schema_version: i64,
    /// When the snapshot was taken (RFC 3339, milliseconds, UTC).
    pub created_at: String,
    /// `sqlite` or `postgres`.
    pub source_engine: String,
    /// The tables, in the order their rows follow (and are restored).
    pub tables: Vec<TablePart>,
}

/// One table's part of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TablePart {
    /// The table.
    pub name: String,
    /// Its columns, in the order of each row's values.
    pub columns: Vec<String>,
    /// How many row lines follow.
    pub rows: u64,
    /// SHA-256 (hex) of those lines, newlines included.
    pub sha256: String,
}

impl TablePart {
    /// The kinds of this part's columns, in its order, as `schema` (the table's columns in
    /// the schema) declares them; the columns were checked to be the schema's.
    pub(crate) fn kinds(&self, schema: &[(String, ColumnKind)]) -> Vec<ColumnKind> {
        self.columns
            .iter()
            .map(|column| {
                schema
                    .iter()
                    .find(|(name, _)| name == column)
                    .map_or(ColumnKind::Text, |(_, kind)| *kind)
            })
            .collect()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    sha256: String,
}

/// Writes an archive: rows go to a scratch file first (their digests and counts are known only
/// at the end), then manifest, rows and trailer go to a temporary file that is renamed into
/// place, so the destination appears complete or not at all.
pub(crate) struct ArchiveWriter {
    directory: PathBuf,
    rows_file: tempfile::TempPath,
    rows: BufWriter<File>,
    tables: Vec<TablePart>,
    current: Option<(TablePart, Sha256)>,
    line: Vec<u8>,
}

impl ArchiveWriter {
    /// A writer whose scratch files live in `directory` (the destination's).
    pub(crate) async fn create(directory: &Path) -> Result<Self, ArchiveError> {
        let (file, path) = tempfile::Builder::new()
            .prefix(&format!("{SCRATCH_PREFIX}rows-"))
            .tempfile_in(directory)?
            .into_parts();
        Ok(Self {
            directory: directory.to_owned(),
            rows_file: path,
            rows: BufWriter::with_capacity(256 * 1024, File::from_std(file)),
            tables: Vec::new(),
            current: None,
            line: Vec::new(),
        })
    }

    /// Starts the rows of `name`.
    pub(crate) fn begin_table(&mut self, name: &str, columns: Vec<String>) {
        self.current = Some((
            TablePart {
                name: name.to_owned(),
                columns,
                rows: 0,
                sha256: String::new(),
            },
            Sha256::new(),
        ));
    }

    /// Appends one row of the current table.
    pub(crate) async fn row(&mut self, values: &[Value]) -> Result<(), ArchiveError> {
        let Some((part, digest)) = self.current.as_mut() else {
            return Err(ArchiveError::Io(std::io::Error::other(
                "a row outside a table",
            )));
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, values).map_err(std::io::Error::other)?;
        self.line.push(b'\n');
        digest.update(&self.line);
        part.rows += 1;
        self.rows.write_all(&self.line).await?;
        Ok(())
    }

    /// Ends the current table.
    pub(crate) fn end_table(&mut self) {
        if let Some((mut part, digest)) = self.current.take() {
            part.sha256 = hex::encode(digest.finalize());
            self.tables.push(part);
        }
    }

    /// Writes the archive to `destination` with the manifest `header` (its `tables` are
    /// filled in here) and returns the manifest.
    pub(crate) async fn finish(
        mut self,
        mut header: Manifest,
        destination: &Path,
    ) -> Result<Manifest, ArchiveError> {
        self.end_table();
        self.rows.flush().await?;
        header.tables = std::mem::take(&mut self.tables);
        let (file, staging) = tempfile::Builder::new()
            .prefix(&format!("{SCRATCH_PREFIX}archive-"))
            .tempfile_in(&self.directory)?
            .into_parts();
        let mut out = BufWriter::with_capacity(256 * 1024, File::from_std(file));
        let mut whole = Sha256::new();
        let mut manifest_line = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
        manifest_line.push(b'\n');
        whole.update(&manifest_line);
        out.write_all(&manifest_line).await?;
        let mut rows = File::open(&self.rows_file).await?;
        let mut chunk = vec![0_u8; 256 * 1024];
        loop {
            let read = rows.read(&mut chunk).await?;
            if read == 0 {
                break;
            }
            whole.update(&chunk[..read]);
            out.write_all(&chunk[..read]).await?;
        }
        let mut trailer = serde_json::to_vec(&Trailer {
            sha256: hex::encode(whole.finalize()),
        })
        .map_err(std::io::Error::other)?;
        trailer.push(b'\n');
        out.write_all(&trailer).await?;
        out.flush().await?;
        out.get_ref().sync_all().await?;
        drop(out);
        staging
            .persist(destination)
            .map_err(|error| ArchiveError::Io(error.error))?;
        if let Ok(directory) = File::open(&self.directory).await {
            // Makes the rename durable; a failure only weakens that, the file is complete.
            let _ = directory.sync_all().await;
        }
        Ok(header)
    }
}

/// An archive whose whole-file digest matched and whose manifest was read.
#[derive(Debug, Clone)]
pub(crate) struct OpenedArchive {
    /// Its manifest.
    pub manifest: Manifest,
    /// Where the first row line starts.
    rows_start: u64,
    /// Where the trailer starts.
    rows_end: u64,
}

/// An archive whose rows were checked too: counts, shapes, value kinds and table digests.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedArchive {
    /// Its manifest.
    pub manifest: Manifest,
    rows_start: u64,
}

/// The tables of a schema version in restore order, each with its columns and their kinds.
pub(crate) type Schema = Vec<(String, Vec<(String, ColumnKind)>)>;

/// Opens `path`: checks the whole-file digest first (so damage is reported as such), then
/// reads the manifest.
pub(crate) async fn open(path: &Path) -> Result<OpenedArchive, ArchiveError> {
    let mut file = File::open(path).await?;
    let length = file.metadata().await?.len();
    if length == 0 {
        return Err(invalid("the archive is empty"));
    }
    // Every archive starts with its manifest's first member (as this writer orders it).
    let mut start = vec![0_u8; ARCHIVE_START.len()];
    let mut read = 0;
    while read < start.len() {
        match file.read(&mut start[read..]).await? {
            0 => break,
            count => read += count,
        }
    }
    let looks_like_archive = start[..read] == ARCHIVE_START[..read];
    let rows_end = match check_whole_digest(&mut file, length).await {
        // Neither the start nor the end of an archive: no archive at all, rather than a
        // damaged one.
        Err(ArchiveError::Invalid(reason)) if !looks_like_archive && reason == NO_CLOSING_LINE => {
            return Err(invalid(NOT_AN_ARCHIVE))
        }
        other => other?,
    };
    file.seek(std::io::SeekFrom::Start(0)).await?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut line = Vec::new();
    let rows_start = read_line(&mut reader, &mut line)
        .await?
        .filter(|read| *read <= rows_end)
        .ok_or_else(|| invalid("the archive has no manifest"))?;
    let manifest = parse_manifest(&line)?;
    Ok(OpenedArchive {
        manifest,
        rows_start,
        rows_end,
    })
}

/// Checks every row of an opened archive against `schema` (the tables and columns of its
/// schema version): counts, shapes, value kinds and each table's digest. `check_row` sees
/// every row (to look at values).
pub(crate) async fn check_rows(
    path: &Path,
    opened: OpenedArchive,
    schema: &Schema,
    mut check_row: impl FnMut(&str, &[String], &[Value]) -> Result<(), String>,
) -> Result<VerifiedArchive, ArchiveError> {
    let OpenedArchive {
        manifest,
        rows_start,
        rows_end,
    } = opened;
    check_tables(&manifest, schema)?;
    let mut file = File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(rows_start)).await?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::new();
    let mut offset = rows_start;
    let mut values = Vec::new();
    for (part, (_, kinds)) in manifest.tables.iter().zip(schema) {
        let mut digest = Sha256::new();
        let columns = part.kinds(kinds);
        for index in 0..part.rows {
            let at_row = |reason: String| {
                invalid(format!("table {} row {}: {reason}", part.name, index + 1))
            };
            let read = read_line(&mut reader, &mut line)
                .await?
                .filter(|_| offset < rows_end)
                .ok_or_else(|| {
                    invalid(format!(
                        "table {} ends after {index} of its {} rows",
                        part.name, part.rows
                    ))
                })?;
            offset += read;
            digest.update(&line);
            parse_row(&line, &mut values).map_err(at_row)?;
            check_shape(&part.columns, &columns, &values).map_err(at_row)?;
            check_row(&part.name, &part.columns, &values).map_err(at_row)?;
        }
        if hex::encode(digest.finalize()) != part.sha256 {
            return Err(invalid(format!(
                "the checksum of table {} does not match its rows",
                part.name
            )));
        }
    }
    if offset != rows_end {
        return Err(invalid(
            "the archive holds more rows than its manifest lists",
        ));
    }
    Ok(VerifiedArchive {
        manifest,
        rows_start,
    })
}

/// The kind of a column: what values it takes besides NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// Integers (BIGINT / INTEGER).
    Integer,
    /// Text.
    Text,
}

impl ColumnKind {
    /// The kind of a declared SQL type: anything with `INT` in it is an integer, `TEXT` is
    /// text; other types are not used by the schema.
    pub(crate) fn of_sql_type(declared: &str) -> Option<Self> {
        let upper = declared.to_ascii_uppercase();
        if upper.contains("INT") {
            Some(ColumnKind::Integer)
        } else if upper.contains("TEXT") || upper.contains("CHAR") {
            Some(ColumnKind::Text)
        } else {
            None
        }
    }
}

/// Reads the rows of a verified archive again, table by table, for loading.
pub(crate) struct RowReader {
    reader: BufReader<File>,
    line: Vec<u8>,
}

impl RowReader {
    /// Opens `path` at its first row.
    pub(crate) async fn open(path: &Path, archive: &VerifiedArchive) -> Result<Self, ArchiveError> {
        let mut file = File::open(path).await?;
        file.seek(std::io::SeekFrom::Start(archive.rows_start))
            .await?;
        Ok(Self {
            reader: BufReader::with_capacity(256 * 1024, file),
            line: Vec::new(),
        })
    }

    /// The next row into `values` (the caller knows how many rows each table has).
    pub(crate) async fn next_row(&mut self, values: &mut Vec<Value>) -> Result<(), ArchiveError> {
        read_line(&mut self.reader, &mut self.line)
            .await?
            .ok_or_else(|| invalid("the archive changed while it was restored"))?;
        parse_row(&self.line, values).map_err(ArchiveError::Invalid)
    }
}

/// Reads the trailer and compares its digest with the digest of everything before it;
/// returns where the trailer starts (the end of the rows).
async fn check_whole_digest(file: &mut File, length: u64) -> Result<u64, ArchiveError> {
    let damaged = || invalid(NO_CLOSING_LINE);
    if length < TRAILER_BYTES {
        return Err(damaged());
    }
    let trailer_start = length - TRAILER_BYTES;
    file.seek(std::io::SeekFrom::Start(trailer_start)).await?;
    let mut trailer = vec![0_u8; usize::try_from(TRAILER_BYTES).unwrap_or(78)];
    file.read_exact(&mut trailer).await?;
    if trailer_start > 0 {
        // The byte before the trailer ends the previous line.
        file.seek(std::io::SeekFrom::Start(trailer_start - 1))
            .await?;
        if file.read_u8().await? != b'\n' {
            return Err(damaged());
        }
    }
    let expected = match trailer.split_last() {
        Some((b'\n', json)) => {
            serde_json::from_slice::<Trailer>(json)
                .map_err(|_| damaged())?
                .sha256
        }
        _ => return Err(damaged()),
    };
    file.seek(std::io::SeekFrom::Start(0)).await?;
    let mut digest = Sha256::new();
    let mut remaining = trailer_start;
    let mut chunk = vec![0_u8; 256 * 1024];
    while remaining > 0 {
        let want = usize::try_from(remaining.min(chunk.len() as u64)).unwrap_or(chunk.len());
        let read = file.read(&mut chunk[..want]).await?;
        if read == 0 {
            return Err(damaged());
        }
        digest.update(&chunk[..read]);
        remaining -= read as u64;
    }
    if hex::encode(digest.finalize()) != expected {
        return Err(invalid(
            "the archive is damaged: its checksum does not match its content (changed, \
             truncated or appended bytes)",
        ));
    }
    Ok(trailer_start)
}

/// Reads one newline-terminated line into `line` (newline kept); `None` at the end of the
/// file. Returns the bytes read.
async fn read_line(
    reader: &mut BufReader<File>,
    line: &mut Vec<u8>,
) -> Result<Option<u64>, ArchiveError> {
    line.clear();
    let read = (&mut *reader)
        .take(MAX_LINE_BYTES + 1)
        .read_until(b'\n', line)
        .await?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(if read as u64 > MAX_LINE_BYTES {
            invalid(format!("a line is longer than {MAX_LINE_BYTES} bytes"))
        } else {
            invalid("the archive ends in the middle of a line")
        });
    }
    Ok(Some(read as u64))
}

fn parse_manifest(line: &[u8]) -> Result<Manifest, ArchiveError> {
    let not_archive = || invalid(NOT_AN_ARCHIVE);
    let loose: serde_json::Value = serde_json::from_slice(line).map_err(|_| not_archive())?;
    if loose.get("format").and_then(serde_json::Value::as_str) != Some(FORMAT) {
        return Err(not_archive());
    }
    match loose
        .get("formatVersion")
        .and_then(serde_json::Value::as_u64)
    {
        Some(version) if version == u64::from(FORMAT_VERSION) => {}
        Some(version) if version > u64::from(FORMAT_VERSION) => {
            return Err(invalid(format!(
                "the archive's format version {version} is newer than this Gatehouse reads \
                 ({FORMAT_VERSION}); restore it with the Gatehouse version that wrote it or later"
            )))
        }
        _ => {
            return Err(invalid(
                "the archive's format version is missing or unknown",
            ))
        }
    }
    serde_json::from_value(loose)
        .map_err(|error| invalid(format!("the manifest is malformed: {error}")))
}

/// Compares the manifest's tables and columns with the schema of its version.
fn check_tables(manifest: &Manifest, expected: &Schema) -> Result<(), ArchiveError> {
    let names: Vec<&str> = manifest
        .tables
        .iter()
        .map(|part| part.name.as_str())
        .collect();
    let wanted: Vec<&str> = expected.iter().map(|(name, _)| name.as_str()).collect();
    if names != wanted {
        return Err(invalid(format!(
            "the archive's tables ({}) are not those of schema version {} ({})",
            names.join(", "),
            manifest.schema_version,
            wanted.join(", ")
        )));
    }
    for (part, (_, columns)) in manifest.tables.iter().zip(expected) {
        let mut have: Vec<&str> = part.columns.iter().map(String::as_str).collect();
        let mut want: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
        have.sort_unstable();
        want.sort_unstable();
        if have != want || has_duplicates(&have) {
            return Err(invalid(format!(
                "the columns of table {} are not those of schema version {}",
                part.name, manifest.schema_version
            )));
        }
        if part.sha256.len() != 64 || !part.sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "the checksum of table {} is malformed",
                part.name
            )));
        }
    }
    Ok(())
}

fn has_duplicates(sorted: &[&str]) -> bool {
    sorted.windows(2).any(|pair| pair[0] == pair[1])
}

fn parse_row(line: &[u8], values: &mut Vec<Value>) -> Result<(), String> {
    *values = serde_json::from_slice(line)
        .map_err(|_| "not a JSON array of nulls, integers and strings".to_owned())?;
    Ok(())
}

fn check_shape(names: &[String], kinds: &[ColumnKind], values: &[Value]) -> Result<(), String> {
    if values.len() != names.len() {
        return Err(format!(
            "{} values for {} columns",
            values.len(),
            names.len()
        ));
    }
    for ((name, kind), value) in names.iter().zip(kinds).zip(values) {
        let fits = matches!(
            (kind, value),
            (_, Value::Null)
                | (ColumnKind::Integer, Value::Integer(_))
                | (ColumnKind::Text, Value::Text(_))
        );
        if !fits {
            return Err(format!("column {name} holds a value of the wrong type"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        vec![
            (
                "a".to_owned(),
                vec![
                    ("id".to_owned(), ColumnKind::Text),
                    ("n".to_owned(), ColumnKind::Integer),
                ],
            ),
            ("b".to_owned(), vec![("k".to_owned(), ColumnKind::Text)]),
        ]
    }

    fn header() -> Manifest {
        Manifest {
            format: FORMAT.to_owned(),
            format_version: FORMAT_VERSION,
            gatehouse_version: "0.0.0".to_owned(),
            schema_version: 1,
            created_at: "2026-01-01T00:00:00.000Z".to_owned(),
            source_engine: "sqlite".to_owned(),
            tables: Vec::new(),
        }
    }

    async fn sample(directory: &Path) -> PathBuf {
        let mut writer = ArchiveWriter::create(directory).await.unwrap();
        writer.begin_table("a", vec!["id".to_owned(), "n".to_owned()]);
        writer
            .row(&[Value::Text("x\n\"y\"".to_owned()), Value::Integer(-7)])
            .await
            .unwrap();
        writer
            .row(&[Value::Text("é".to_owned()), Value::Null])
            .await
            .unwrap();
        writer.end_table();
        writer.begin_table("b", vec!["k".to_owned()]);
        writer.end_table();
        let path = directory.join("sample.gatehouse-backup");
        writer.finish(header(), &path).await.unwrap();
        path
    }

    async fn check(path: &Path) -> Result<VerifiedArchive, ArchiveError> {
        let opened = open(path).await?;
        check_rows(path, opened, &schema(), |_, _, _| Ok(())).await
    }

    #[tokio::test]
    async fn round_trip_and_every_damage_is_found() {
        let directory = tempfile::tempdir().unwrap();
        let path = sample(directory.path()).await;
        let verified = check(&path).await.unwrap();
        assert_eq!(verified.manifest.tables[0].rows, 2);
        assert_eq!(verified.manifest.tables[1].rows, 0);
        let mut reader = RowReader::open(&path, &verified).await.unwrap();
        let mut values = Vec::new();
        reader.next_row(&mut values).await.unwrap();
        assert_eq!(
            values,
            [Value::Text("x\n\"y\"".to_owned()), Value::Integer(-7)]
        );

        let bytes = std::fs::read(&path).unwrap();
        let damaged = directory.path().join("damaged");
        // Every single flipped bit, in every byte.
        for index in 0..bytes.len() {
            for bit in [0x01_u8, 0x80] {
                let mut copy = bytes.clone();
                copy[index] ^= bit;
                std::fs::write(&damaged, &copy).unwrap();
                assert!(
                    matches!(check(&damaged).await, Err(ArchiveError::Invalid(_))),
                    "flipping bit {bit:#x} of byte {index} went unnoticed"
                );
            }
        }
        // Every truncation, and bytes appended.
        for length in 0..bytes.len() {
            std::fs::write(&damaged, &bytes[..length]).unwrap();
            assert!(
                matches!(check(&damaged).await, Err(ArchiveError::Invalid(_))),
                "truncation to {length} bytes went unnoticed"
            );
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"[1]\n");
        std::fs::write(&damaged, &longer).unwrap();
        assert!(matches!(
            check(&damaged).await,
            Err(ArchiveError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn consistent_but_wrong_content_is_refused_with_a_reason() {
        let directory = tempfile::tempdir().unwrap();
        // A row of the wrong shape, written with valid digests.
        let mut writer = ArchiveWriter::create(directory.path()).await.unwrap();
        writer.begin_table("a", vec!["id".to_owned(), "n".to_owned()]);
        writer
            .row(&[Value::Integer(1), Value::Integer(2)])
            .await
            .unwrap();
        writer.end_table();
        writer.begin_table("b", vec!["k".to_owned()]);
        writer.end_table();
        let path = directory.path().join("wrong");
        writer.finish(header(), &path).await.unwrap();
        match check(&path).await {
            Err(ArchiveError::Invalid(reason)) => {
                assert_eq!(
                    reason,
                    "table a row 1: column id holds a value of the wrong type"
                )
            }
            other => panic!("{other:?}"),
        }
        // Missing table.
        let mut writer = ArchiveWriter::create(directory.path()).await.unwrap();
        writer.begin_table("a", vec!["id".to_owned(), "n".to_owned()]);
        writer.end_table();
        writer.finish(header(), &path).await.unwrap();
        assert!(
            matches!(check(&path).await, Err(ArchiveError::Invalid(reason)) if reason.contains("tables"))
        );
        // Not an archive at all.
        std::fs::write(&path, b"hello\n").unwrap();
        assert!(matches!(check(&path).await, Err(ArchiveError::Invalid(_))));
        std::fs::write(&path, b"").unwrap();
        assert!(
            matches!(check(&path).await, Err(ArchiveError::Invalid(reason)) if reason.contains("empty"))
        );
    }
}

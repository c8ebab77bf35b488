//! The `gatehouse backup` and `gatehouse restore` commands: the archives of the maintenance
//! endpoints (C38–C40), written and read by the store directly, whether a server runs or not.
//! Each command connects like `gatehouse serve` (same settings, migrations applied), does its
//! one operation and closes the connections again.

use std::path::{Path, PathBuf};

use gatehouse_core::maintenance::{back_up_to, restore_from, ArchiveSummary};
use gatehouse_core::CoreError;
use gatehouse_store::SqlStore;
use secrecy::SecretString;

use crate::config::Settings;
use crate::startup::{connect_store, StartupError};

/// Why a backup or restore command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The passphrase file could not be read, or is empty.
    #[error("cannot read a passphrase from {path}: {reason}")]
    PassphraseFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The archive to restore cannot be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The archive.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error(transparent)]
    Open(#[from] StartupError),
    /// The archive could not be written, read or restored.
    #[error("{0}")]
    Archive(#[from] CoreError),
}

/// Writes an archive of the whole database to `out`, encrypted with the passphrase of
/// `passphrase_file` or else `backup.passphrase` when either is given; returns the line that
/// reports it.
pub async fn back_up(
    settings: &Settings,
    out: &Path,
    passphrase_file: Option<&Path>,
) -> Result<String, CommandError> {
    let passphrase = passphrase(settings, passphrase_file)?;
    let store = connect_store(settings).await?;
    let created_at = gatehouse_core::clock::Clock::now_millis(&gatehouse_core::clock::SystemClock);
    let outcome = back_up_to(&store, out, created_at, passphrase).await;
    let summary = closed(store, outcome).await?;
    Ok(format!(
        "backup written: {} (id {}, {} tables, {} rows)",
        out.display(),
        summary.id(),
        summary.tables.len(),
        rows(&summary)
    ))
}

/// Replaces the content of the database by the archive `file` (all or nothing; every session
/// ends), opening an encrypted archive with the passphrase of `passphrase_file` or else
/// `backup.passphrase`; returns the line that reports it.
pub async fn restore(
    settings: &Settings,
    file: &Path,
    passphrase_file: Option<&Path>,
) -> Result<String, CommandError> {
    let passphrase = passphrase(settings, passphrase_file)?;
    // Checked before the database is opened (or, for SQLite, created).
    std::fs::File::open(file).map_err(|source| CommandError::Unreadable {
        path: file.to_owned(),
        source,
    })?;
    let store = connect_store(settings).await?;
    let outcome = restore_from(&store, file, passphrase.as_ref()).await;
    let summary = closed(store, outcome).await?;
    Ok(format!("restored {} (id {})", file.display(), summary.id()))
}

/// Closes `store`, then passes on the outcome of the operation run on it.
async fn closed(
    store: SqlStore,
    outcome: Result<ArchiveSummary, CoreError>,
) -> Result<ArchiveSummary, CommandError> {
    store.close().await;
    Ok(outcome?)
}

/// The passphrase in force: the first line of `file` when given, else `backup.passphrase`.
fn passphrase(
    settings: &Settings,
    file: Option<&Path>,
) -> Result<Option<SecretString>, CommandError> {
    let Some(path) = file else {
        return Ok(settings.backup.passphrase());
    };
    let failed = |reason: String| CommandError::PassphraseFile {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|error| failed(error.to_string()))?;
    // The first line, as `echo secret > file` writes it.
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(failed("its first line is empty".to_owned()));
    }
    Ok(Some(SecretString::from(line)))
}

/// The rows of every table of an archive.
fn rows(summary: &ArchiveSummary) -> u64 {
    summary.tables.iter().map(|(_, rows)| rows).sum()
}

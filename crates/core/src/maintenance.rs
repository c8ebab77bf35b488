//! Database backup and restore (Connectware C38–C40 and the `backup`/`restore` commands).
//!
//! The archive itself — its format, the consistent snapshot it is taken from and the
//! all-or-nothing restore — belongs to the store ([`DatabaseArchiver`]). This module holds the
//! rules around it: one operation at a time (423 otherwise), the status Connectware reports, the
//! archive ids (`<version>_<ISO timestamp>`, as Connectware names them), where archives are kept
//! and how many, and what a restore invalidates afterwards (every session, every cache).
//!
//! Scope of the "one at a time" lock and of the status: this process. Several replicas stay
//! correct without it (a backup is one read transaction, a restore one write transaction, so
//! two of them serialize in the database), but each replica reports only its own operations.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use secrecy::SecretString;

use crate::changes::CacheGenerations;
use crate::clock::{format_millis, Clock};
use crate::error::{CoreError, CoreResult};

/// File name extension of archives.
pub const ARCHIVE_EXTENSION: &str = "gatehouse-backup";

/// The token signing key's setting: never archived (a stolen archive must not mint tokens); a
/// restore keeps the target's.
pub use crate::tokens::SIGNING_KEY_SETTING;

/// Settings that tie the database to keys kept outside it (the MFA key, the CA's key). A
/// restore refuses an archive whose values differ from those the target database holds: its
/// sealed secrets and issued certificates would not work with the target's keys.
pub const KEY_BOUND_SETTINGS: [&str; 2] = [
    crate::sealing::KEY_CHECK_SETTING,
    crate::pki::CA_FINGERPRINT_SETTING,
];

/// How the names of every temporary file and directory of backups and restores begin
/// (uploads, staging files, scratch databases): what [`Maintenance::sweep_leftovers`] removes.
pub const SCRATCH_PREFIX: &str = ".gatehouse-scratch-";

/// Leftovers younger than this are left alone by the sweep: they may belong to an operation of
/// another replica sharing the directory.
const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The answer while another backup or restore runs (the seed's 423 text).
const LOCKED_REASON: &str =
    "There is a database maintenance operation in the process. Try again later.";

/// What an archive holds, as its manifest states it (after verification).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// The Gatehouse version that wrote the archive.
    pub gatehouse_version: String,
    /// The schema version (latest migration) of the database it was taken from.
    pub schema_version: i64,
    /// When the snapshot was taken, Unix milliseconds.
    pub created_at: i64,
    /// `sqlite` or `postgres`.
    pub source_engine: String,
    /// Every table in the archive with its row count, in restore order.
    pub tables: Vec<(String, u64)>,
}

impl ArchiveSummary {
    /// The archive's id: `<gatehouse version>_<ISO 8601 creation time>`.
    pub fn id(&self) -> String {
        archive_id(&self.gatehouse_version, self.created_at)
    }
}

/// Backup and restore of the whole database, implemented by the store.
#[async_trait]
pub trait DatabaseArchiver: Send + Sync {
    /// Writes every table, read in one consistent snapshot, to a new archive at `destination`,
    /// stamped as created at `created_at` (Unix milliseconds: the archive's id names it). The
    /// file appears complete or not at all.
    async fn back_up(&self, destination: &Path, created_at: i64) -> CoreResult<ArchiveSummary>;

    /// Checks `archive` without touching the database: format, every checksum, and whether this
    /// version can restore it. A bad archive is [`CoreError::Invalid`] with the reason.
    async fn verify(&self, archive: &Path) -> CoreResult<ArchiveSummary>;

    /// Replaces the content of the database by `archive`'s, all or nothing: verifies it first,
    /// migrates an older schema forward, and applies it in one transaction that also ends every
    /// session. On any error the database is as it was.
    async fn restore(&self, archive: &Path) -> CoreResult<ArchiveSummary>;
}

/// One backup or restore as Connectware's status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationStatus {
    /// The archive's id.
    pub id: String,
    /// Whether it completed; `false` while it runs.
    pub succeeded: bool,
    /// What happened, or why it failed.
    pub status_message: String,
    /// Start, Unix milliseconds.
    pub start_date: i64,
    /// End, Unix milliseconds; `None` while it runs.
    pub end_date: Option<i64>,
}

/// The answer of `GET /api/maintenance/db`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceStatus {
    /// Whether a backup or restore runs now.
    pub running: bool,
    /// The latest backup, if any ran since this process started.
    pub backup: Option<OperationStatus>,
    /// The latest restore, if any ran since this process started.
    pub restore: Option<OperationStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Backup,
    Restore,
}

/// Backup and restore for the running server: runs one operation at a time in the background
/// and keeps its status. Cheap to clone.
#[derive(Clone)]
pub struct Maintenance {
    archiver: Arc<dyn DatabaseArchiver>,
    directory: PathBuf,
    keep: usize,
    passphrase: Option<SecretString>,
    clock: Arc<dyn Clock>,
    generations: CacheGenerations,
    status: Arc<Mutex<MaintenanceStatus>>,
}

impl std::fmt::Debug for Maintenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintenance")
            .field("directory", &self.directory)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl Maintenance {
    /// Keeps archives in `directory` (created when needed), the newest `keep` of them (at least
    /// one), encrypted with `passphrase` when one is given (which also opens encrypted uploads).
    /// `generations` are the core's cache generations, bumped after a restore so caches reload.
    pub fn new(
        archiver: Arc<dyn DatabaseArchiver>,
        directory: PathBuf,
        keep: usize,
        passphrase: Option<SecretString>,
        clock: Arc<dyn Clock>,
        generations: CacheGenerations,
    ) -> Self {
        Self {
            archiver,
            directory,
            keep: keep.max(1),
            passphrase,
            clock,
            generations,
            status: Arc::new(Mutex::new(MaintenanceStatus::default())),
        }
    }

    /// The status now.
    pub fn status(&self) -> MaintenanceStatus {
        self.lock_status().clone()
    }

    /// Starts a backup in the background and returns its id; [`CoreError::Locked`] while
    /// another operation runs.
    pub fn start_backup(&self) -> CoreResult<String> {
        let started = self.clock.now_millis();
        let id = archive_id(env!("CARGO_PKG_VERSION"), started);
        self.begin(Operation::Backup, &id, started)?;
        let this = self.clone();
        let archive = id.clone();
        tokio::spawn(async move {
            let outcome = this.run_backup(&archive, started).await;
            this.finish(
                Operation::Backup,
                outcome.map(|()| "Backup completed".to_owned()),
            );
        });
        Ok(id)
    }

    async fn run_backup(&self, id: &str, created_at: i64) -> CoreResult<()> {
        std::fs::create_dir_all(&self.directory).map_err(CoreError::internal)?;
        let destination = self.archive_path(id)?;
        let summary = back_up_to(
            self.archiver.as_ref(),
            &destination,
            created_at,
            self.passphrase.clone(),
        )
        .await?;
        tracing::info!(archive = %destination.display(), tables = summary.tables.len(), "backup completed");
        self.prune();
        Ok(())
    }

    /// The file of the archive `id`, for download; not found for an unknown or malformed id.
    pub fn archive_file(&self, id: &str) -> CoreResult<PathBuf> {
        let path = self.archive_path(id)?;
        if path.is_file() {
            Ok(path)
        } else {
            Err(CoreError::not_found("backup"))
        }
    }

    /// A fresh path in the archive directory for an upload to be restored.
    pub fn upload_path(&self) -> CoreResult<PathBuf> {
        std::fs::create_dir_all(&self.directory).map_err(CoreError::internal)?;
        Ok(self
            .directory
            .join(format!("{SCRATCH_PREFIX}upload-{}", uuid::Uuid::new_v4())))
    }

    /// Verifies the uploaded archive at `upload` and starts restoring it in the background;
    /// returns its id. [`CoreError::Invalid`] for an archive that cannot be restored (checked
    /// first, read-only, so bad input is 400 whatever runs), then [`CoreError::Locked`] while
    /// another operation runs. The upload is deleted in every case, also when the returned
    /// future is dropped early (nothing is locked before the restore starts).
    pub async fn start_restore(&self, upload: PathBuf) -> CoreResult<String> {
        let started = self.clock.now_millis();
        let checked = async {
            let archive = readable_archive(upload, self.passphrase.as_ref()).await?;
            let summary = self.archiver.verify(&archive).await?;
            Ok::<_, CoreError>((archive, summary))
        }
        .await;
        let (archive, summary) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                self.record_refused_restore(started, &error);
                return Err(error);
            }
        };
        let id = summary.id();
        self.begin(Operation::Restore, &id, started)?;
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = this.archiver.restore(&archive).await;
            drop(archive);
            if outcome.is_ok() {
                this.generations.bump_all();
            }
            this.finish(
                Operation::Restore,
                outcome.map(|summary| restored_message(&summary)),
            );
        });
        Ok(id)
    }

    /// Reports a refused upload as the latest restore, unless an operation runs (its status
    /// stays what C38 shows).
    fn record_refused_restore(&self, started: i64, error: &CoreError) {
        let mut status = self.lock_status();
        if status.running {
            return;
        }
        status.restore = Some(OperationStatus {
            id: archive_id(env!("CARGO_PKG_VERSION"), started),
            succeeded: false,
            status_message: failure_message(error),
            start_date: started,
            end_date: Some(self.clock.now_millis()),
        });
    }

    /// Marks `operation` as running, or refuses while anything runs.
    fn begin(&self, operation: Operation, id: &str, started: i64) -> CoreResult<()> {
        let mut status = self.lock_status();
        if status.running {
            return Err(CoreError::Locked {
                reason: LOCKED_REASON.to_owned(),
            });
        }
        status.running = true;
        let entry = OperationStatus {
            id: id.to_owned(),
            succeeded: false,
            status_message: "Running".to_owned(),
            start_date: started,
            end_date: None,
        };
        match operation {
            Operation::Backup => status.backup = Some(entry),
            Operation::Restore => status.restore = Some(entry),
        }
        Ok(())
    }

    /// Records the outcome of the running `operation` and releases the lock.
    fn finish(&self, operation: Operation, outcome: CoreResult<String>) {
        let ended = self.clock.now_millis();
        let mut status = self.lock_status();
        status.running = false;
        let entry = match operation {
            Operation::Backup => status.backup.as_mut(),
            Operation::Restore => status.restore.as_mut(),
        };
        let Some(entry) = entry else { return };
        entry.end_date = Some(ended);
        match outcome {
            Ok(message) => {
                entry.succeeded = true;
                entry.status_message = message;
            }
            Err(error) => {
                tracing::warn!(operation = ?operation, %error, "database maintenance failed");
                entry.succeeded = false;
                entry.status_message = failure_message(&error);
            }
        }
    }

    fn lock_status(&self) -> MutexGuard<'_, MaintenanceStatus> {
        // A panic while holding the lock leaves a status that is still well-formed.
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The path of archive `id`; ids are the only names accepted, so no path leaves the
    /// directory.
    fn archive_path(&self, id: &str) -> CoreResult<PathBuf> {
        let valid = !id.is_empty()
            && id.len() <= 64
            && !id.starts_with('.')
            && id.bytes().all(|byte| {
                byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b':')
            });
        if !valid {
            return Err(CoreError::not_found("backup"));
        }
        Ok(self.directory.join(format!("{id}.{ARCHIVE_EXTENSION}")))
    }

    /// Removes what operations killed in the middle left in the archive directory (uploads,
    /// staging files, scratch databases older than an hour). Called at start-up.
    pub fn sweep_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(&self.directory) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let stale = entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age >= LEFTOVER_AGE);
            if !stale
                || !entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(SCRATCH_PREFIX)
            {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a leftover of an interrupted backup or restore")
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot remove a leftover of a backup or restore")
                }
            }
        }
    }

    /// Deletes all but the newest `keep` archives (by modification time).
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.directory) else {
            return;
        };
        let mut archives: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == ARCHIVE_EXTENSION)
            })
            .filter_map(|path| {
                let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
                Some((modified, path))
            })
            .collect();
        archives.sort();
        let surplus = archives.len().saturating_sub(self.keep);
        for (_, path) in archives.into_iter().take(surplus) {
            remove_quietly(&path);
        }
    }
}

/// `<version>_<ISO 8601 time with milliseconds>`, as Connectware names backups.
pub fn archive_id(version: &str, millis: i64) -> String {
    format!("{version}_{}", format_millis(millis))
}

fn restored_message(summary: &ArchiveSummary) -> String {
    format!(
        "Restored the backup {} (Gatehouse {}, schema {}, from {}); every session has ended",
        summary.id(),
        summary.gatehouse_version,
        summary.schema_version,
        summary.source_engine
    )
}

/// The status message of a failure: the reason for a bad archive, a generic text otherwise
/// (details go to the log only).
fn failure_message(error: &CoreError) -> String {
    match error {
        CoreError::Invalid { reason, .. } => reason.clone(),
        CoreError::Unavailable { reason } => reason.clone(),
        _ => "The operation failed; the database is unchanged. See the server log.".to_owned(),
    }
}

fn remove_quietly(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), %error, "cannot delete a maintenance file");
        }
    }
}

/// Writes a backup of `archiver`'s database to `destination`, encrypted when a `passphrase` is
/// given (the plain archive then exists only as a temporary file beside it).
pub async fn back_up_to(
    archiver: &dyn DatabaseArchiver,
    destination: &Path,
    created_at: i64,
    passphrase: Option<SecretString>,
) -> CoreResult<ArchiveSummary> {
    let Some(passphrase) = passphrase else {
        return archiver.back_up(destination, created_at).await;
    };
    let directory = destination.parent().unwrap_or(Path::new("."));
    let plain = tempfile::Builder::new()
        .prefix(&format!("{SCRATCH_PREFIX}plain-"))
        .tempfile_in(directory)
        .map_err(CoreError::internal)?
        .into_temp_path();
    let summary = archiver.back_up(&plain, created_at).await?;
    seal_archive(&plain, destination, passphrase).await?;
    Ok(summary)
}

/// Restores the archive at `path` (encrypted or not) into `archiver`'s database.
pub async fn restore_from(
    archiver: &dyn DatabaseArchiver,
    path: &Path,
    passphrase: Option<&SecretString>,
) -> CoreResult<ArchiveSummary> {
    if is_sealed(path)? {
        let plain = open_sealed_archive(path, passphrase).await?;
        archiver.restore(&plain).await
    } else {
        archiver.restore(path).await
    }
}

/// The plain archive of an `upload`: the upload itself, or its decrypted copy (and the upload
/// deleted). Either is deleted when the returned path is dropped.
async fn readable_archive(
    upload: PathBuf,
    passphrase: Option<&SecretString>,
) -> CoreResult<tempfile::TempPath> {
    let upload = match tempfile::TempPath::try_from_path(&upload) {
        Ok(upload) => upload,
        Err(error) => {
            remove_quietly(&upload);
            return Err(CoreError::internal(error));
        }
    };
    if is_sealed(&upload)? {
        open_sealed_archive(&upload, passphrase).await
    } else {
        Ok(upload)
    }
}

/// The first line of an archive encrypted with a passphrase (the age format).
const SEALED_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// The highest scrypt work factor (log2 N) accepted when opening an archive: age's default
/// target is about one second of work, and 20 allows for slower machines than the one that
/// sealed it while bounding what a crafted file can cost (about 1 GiB of memory at most).
const MAX_SCRYPT_WORK_FACTOR: u8 = 20;

/// Encrypts the archive `plain` with `passphrase` into `sealed` (age: scrypt and
/// ChaCha20-Poly1305), so the archive can be stored where the database could not. Runs off the
/// async executor.
pub async fn seal_archive(plain: &Path, sealed: &Path, passphrase: SecretString) -> CoreResult<()> {
    let (plain, sealed) = (plain.to_owned(), sealed.to_owned());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let directory = sealed.parent().unwrap_or(Path::new("."));
        let mut staging = tempfile::Builder::new()
            .prefix(&format!("{SCRATCH_PREFIX}sealing-"))
            .tempfile_in(directory)?;
        let mut input = std::io::BufReader::new(std::fs::File::open(&plain)?);
        let encryptor = age::Encryptor::with_user_passphrase(passphrase);
        let mut writer = encryptor.wrap_output(std::io::BufWriter::new(staging.as_file_mut()))?;
        std::io::copy(&mut input, &mut writer)?;
        let mut output = writer.finish()?;
        std::io::Write::flush(&mut output)?;
        drop(output);
        staging.as_file().sync_all()?;
        staging.persist(&sealed).map_err(|error| error.error)?;
        Ok(())
    })
    .await
    .map_err(CoreError::internal)?
    .map_err(|error| CoreError::internal(format!("cannot encrypt the archive: {error}")))
}

/// Whether the file at `path` is an archive encrypted with a passphrase.
pub fn is_sealed(path: &Path) -> CoreResult<bool> {
    use std::io::Read as _;
    let mut start = [0_u8; SEALED_MAGIC.len()];
    let mut file = std::fs::File::open(path).map_err(CoreError::internal)?;
    let mut read = 0;
    while read < start.len() {
        match file.read(&mut start[read..]).map_err(CoreError::internal)? {
            0 => break,
            count => read += count,
        }
    }
    Ok(read == start.len() && start == SEALED_MAGIC)
}

/// Decrypts the encrypted archive at `path` into a temporary file next to it (deleted when the
/// returned path is dropped). [`CoreError::Invalid`] without a passphrase, with the wrong one,
/// or for a damaged file. Runs off the async executor.
pub async fn open_sealed_archive(
    path: &Path,
    passphrase: Option<&SecretString>,
) -> CoreResult<tempfile::TempPath> {
    let Some(passphrase) = passphrase.cloned() else {
        return Err(CoreError::invalid(
            "archive",
            "the archive is encrypted with a passphrase; configure backup.passphrase (or give \
             --passphrase-file) to restore it",
        ));
    };
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let damaged = |_| {
            CoreError::invalid(
                "archive",
                "the encrypted archive is damaged or truncated (its authentication failed)",
            )
        };
        let directory = path.parent().unwrap_or(Path::new("."));
        // Beside the archive, else (read-only media) in the system's temporary directory.
        let prefix = format!("{SCRATCH_PREFIX}opened-");
        let mut plain = tempfile::Builder::new()
            .prefix(&prefix)
            .tempfile_in(directory)
            .or_else(|_| tempfile::Builder::new().prefix(&prefix).tempfile())
            .map_err(CoreError::internal)?;
        let input =
            std::io::BufReader::new(std::fs::File::open(&path).map_err(CoreError::internal)?);
        let decryptor = age::Decryptor::new_buffered(input).map_err(|_| {
            CoreError::invalid("archive", "the encrypted archive's header is damaged")
        })?;
        if !decryptor.is_scrypt() {
            return Err(CoreError::invalid(
                "archive",
                "the archive is encrypted, but not with a passphrase",
            ));
        }
        let mut identity = age::scrypt::Identity::new(passphrase);
        identity.set_max_work_factor(MAX_SCRYPT_WORK_FACTOR);
        let mut reader = decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|error| match error {
                age::DecryptError::ExcessiveWork { .. } => CoreError::invalid(
                    "archive",
                    "the encrypted archive asks for more key-derivation work than allowed",
                ),
                _ => CoreError::invalid("archive", "the passphrase does not open this archive"),
            })?;
        let mut output = std::io::BufWriter::new(plain.as_file_mut());
        std::io::copy(&mut reader, &mut output).map_err(damaged)?;
        std::io::Write::flush(&mut output).map_err(CoreError::internal)?;
        drop(output);
        Ok(plain.into_temp_path())
    })
    .await
    .map_err(CoreError::internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sealed_archives_open_only_with_their_passphrase_and_intact() {
        let directory = tempfile::tempdir().unwrap();
        let plain = directory.path().join("plain");
        let content: Vec<u8> = (0..100_000_u32).flat_map(u32::to_le_bytes).collect();
        std::fs::write(&plain, &content).unwrap();
        let sealed = directory.path().join("sealed");
        let passphrase = SecretString::from("correct horse battery staple");
        seal_archive(&plain, &sealed, passphrase.clone())
            .await
            .unwrap();
        assert!(is_sealed(&sealed).unwrap());
        assert!(!is_sealed(&plain).unwrap());
        let bytes = std::fs::read(&sealed).unwrap();
        assert!(!bytes.windows(16).any(|window| window == &content[..16]));

        let opened = open_sealed_archive(&sealed, Some(&passphrase))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&opened).unwrap(), content);

        let reason = |result: CoreResult<tempfile::TempPath>| match result {
            Err(CoreError::Invalid { reason, .. }) => reason,
            other => panic!("{:?}", other.map(|path| path.to_path_buf())),
        };
        assert!(reason(open_sealed_archive(&sealed, None).await).contains("passphrase"));
        let wrong = SecretString::from("wrong");
        assert!(reason(open_sealed_archive(&sealed, Some(&wrong)).await).contains("does not open"));
        for index in [bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[index] ^= 1;
            std::fs::write(&sealed, &damaged).unwrap();
            assert!(
                reason(open_sealed_archive(&sealed, Some(&passphrase)).await).contains("damaged")
            );
        }
        std::fs::write(&sealed, &bytes[..bytes.len() - 100]).unwrap();
        assert!(reason(open_sealed_archive(&sealed, Some(&passphrase)).await).contains("damaged"));
    }

    #[test]
    fn the_sweep_removes_only_old_scratch_files() {
        let directory = tempfile::tempdir().unwrap();
        let path = |name: &str| directory.path().join(name);
        let old = std::time::SystemTime::now() - LEFTOVER_AGE - std::time::Duration::from_secs(60);
        for name in [
            ".gatehouse-scratch-upload-1",
            ".gatehouse-scratch-upload-2",
            "x.gatehouse-backup",
            "other",
        ] {
            std::fs::write(path(name), b"x").unwrap();
        }
        std::fs::create_dir(path(".gatehouse-scratch-restore-1")).unwrap();
        std::fs::write(path(".gatehouse-scratch-restore-1/scratch.db"), b"x").unwrap();
        for name in [
            ".gatehouse-scratch-upload-1",
            "x.gatehouse-backup",
            "other",
            ".gatehouse-scratch-restore-1",
        ] {
            std::fs::File::options()
                .write(true)
                .open(path(name))
                .or_else(|_| std::fs::File::open(path(name)))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let maintenance = Maintenance::new(
            Arc::new(Nothing),
            directory.path().to_owned(),
            3,
            None,
            Arc::new(crate::clock::SystemClock),
            CacheGenerations::default(),
        );
        maintenance.sweep_leftovers();
        let mut left: Vec<String> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [".gatehouse-scratch-upload-2", "other", "x.gatehouse-backup"]
        );
    }

    struct Nothing;

    #[async_trait]
    impl DatabaseArchiver for Nothing {
        async fn back_up(&self, _: &Path, _: i64) -> CoreResult<ArchiveSummary> {
            Err(CoreError::internal("unused"))
        }
        async fn verify(&self, _: &Path) -> CoreResult<ArchiveSummary> {
            Err(CoreError::internal("unused"))
        }
        async fn restore(&self, _: &Path) -> CoreResult<ArchiveSummary> {
            Err(CoreError::internal("unused"))
        }
    }

    #[test]
    fn ids_name_version_and_time_and_never_leave_the_directory() {
        assert_eq!(
            archive_id("1.2.3", 1_645_025_839_242),
            "1.2.3_2022-02-16T15:37:19.242Z"
        );
        let maintenance = Maintenance::new(
            Arc::new(Nothing),
            PathBuf::from("/backups"),
            3,
            None,
            Arc::new(crate::clock::SystemClock),
            CacheGenerations::default(),
        );
        assert_eq!(
            maintenance
                .archive_path("1.2.3_2022-02-16T15:37:19.242Z")
                .unwrap(),
            PathBuf::from("/backups/1.2.3_2022-02-16T15:37:19.242Z.gatehouse-backup")
        );
        for hostile in [
            "",
            "../x",
            "a/b",
            "..",
            ".hidden",
            "a\0b",
            "x y",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(
                    maintenance.archive_path(hostile),
                    Err(CoreError::NotFound { .. })
                ),
                "{hostile:?}"
            );
        }
    }
}

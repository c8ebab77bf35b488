//! Database maintenance (C38–C40): the status of backups and restores, starting a backup,
//! downloading an archive and restoring one. The rules (one operation at a time, archive ids,
//! what a restore ends) are the core's (`gatehouse_core::maintenance`); this module moves the
//! archives over HTTP without ever holding one in memory: downloads are streamed from the file,
//! uploads are streamed to a file in the archive directory, capped at `backup.max_upload_bytes`
//! (see `crate::middleware` for why the body limit and the request timeout do not apply).

use std::io::SeekFrom;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{Stream, StreamExt as _};
use gatehouse_core::clock::format_millis;
use gatehouse_core::maintenance::{MaintenanceStatus, OperationStatus, ARCHIVE_EXTENSION};
use gatehouse_core::CoreError;
use serde::Serialize;
use tokio::io::{AsyncSeekExt as _, AsyncWrite, AsyncWriteExt as _, BufWriter};
use utoipa::ToSchema;

use super::caller::Caller;
use super::error::{error_response, not_enabled, timeout_response, ApiError};
use super::extract::media_type;
use super::schema::{
    BadRequest, Forbidden, InternalError, Locked, NotFound, PayloadTooLarge, ServiceUnavailable,
    Unauthorized, UnsupportedMediaType,
};
use crate::middleware::UploadCutOff;
use crate::AppState;

/// The path of C40, whose body (an archive) is streamed to disk.
pub const RESTORE_PATH: &str = "/api/maintenance/db/restore";

/// Whether a request is an upload streamed to disk, exempt from the body limit and the request
/// timeout (the middleware bounds it by `max_upload_bytes` and a stall timeout instead).
pub fn streams_upload(method: &Method, path: &str) -> bool {
    method == Method::POST && path == RESTORE_PATH
}

/// Bytes read from an archive file at a time for a download.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// Bytes of an upload gathered before they are written to the file.
const UPLOAD_BUFFER: usize = 256 * 1024;

/// One backup or restore.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MaintenanceOperation)]
pub struct OperationOut {
    /// The archive's id, `<Gatehouse version>_<ISO 8601 time>` (for a restore: the id of the
    /// restored archive once its upload is verified).
    id: String,
    /// Whether it completed; `false` while it runs and when it failed.
    succeeded: bool,
    /// What happened, or why it failed.
    #[serde(rename = "statusMessage")]
    status_message: String,
    /// When it started.
    #[serde(rename = "startDate")]
    #[schema(format = DateTime, example = "2022-02-16T15:37:19.242Z")]
    start_date: String,
    /// When it ended; absent while it runs.
    #[serde(rename = "endDate", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, format = DateTime, required = false)]
    end_date: Option<String>,
}

impl From<OperationStatus> for OperationOut {
    fn from(status: OperationStatus) -> Self {
        Self {
            id: status.id,
            succeeded: status.succeeded,
            status_message: status.status_message,
            start_date: format_millis(status.start_date),
            end_date: status.end_date.map(format_millis),
        }
    }
}

/// The status of database maintenance (of this server process).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MaintenanceStatus)]
pub struct StatusOut {
    /// Whether a backup or restore runs now.
    running: bool,
    /// The latest backup; absent when none ran since the server started.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = OperationOut, required = false)]
    backup: Option<OperationOut>,
    /// The latest restore; absent when none ran since the server started.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = OperationOut, required = false)]
    restore: Option<OperationOut>,
}

impl From<MaintenanceStatus> for StatusOut {
    fn from(status: MaintenanceStatus) -> Self {
        Self {
            running: status.running,
            backup: status.backup.map(OperationOut::from),
            restore: status.restore.map(OperationOut::from),
        }
    }
}

/// The answer of a started backup or restore.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MaintenanceStarted)]
pub struct StartedOut {
    /// The archive's id; follow the operation with C38.
    id: String,
}

/// A backup archive, as bytes.
#[allow(dead_code)] // Only described in the document, never built.
#[derive(ToSchema)]
#[schema(as = BackupArchive, value_type = String, format = Binary)]
pub struct ArchiveBytes(Vec<u8>);

/// A backup archive sent as a form.
#[allow(dead_code)] // Only described in the document, never built.
#[derive(ToSchema)]
#[schema(as = BackupUpload)]
pub struct UploadForm {
    /// The archive. Any part name will do: the first part with a file name is the archive
    /// (without one, the first part).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// C38 `GET /api/maintenance/db`.
#[utoipa::path(
    get,
    path = "/api/maintenance/db",
    operation_id = "maintenanceStatus",
    tag = "connectware",
    summary = "Status of database backups and restores (C38)",
    description = "Whether an operation runs, and the latest backup and restore since this server process started (each replica reports its own).",
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 200, description = "The status", body = StatusOut),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<StatusOut>, Response> {
    let maintenance = state.core.maintenance().ok_or_else(not_enabled)?;
    Ok(Json(maintenance.status().into()))
}

/// C39 `POST /api/maintenance/db/backup`.
#[utoipa::path(
    post,
    path = "/api/maintenance/db/backup",
    operation_id = "startBackup",
    tag = "connectware",
    summary = "Start a database backup (C39)",
    description = "Starts writing an archive of the whole database in the background and answers its id at once. Follow it with C38; once it succeeded, download it with `GET /api/maintenance/db/backup/{id}`. The server keeps the newest `backup.keep` archives.",
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 202, description = "Started", body = StartedOut),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 423, response = Locked),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn backup(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<(StatusCode, Json<StartedOut>), Response> {
    let id = state
        .core
        .maintenance()
        .ok_or_else(not_enabled)?
        .start_backup()
        .map_err(|error| ApiError(error).into_response())?;
    Ok((StatusCode::ACCEPTED, Json(StartedOut { id })))
}

/// C39 `GET /api/maintenance/db/backup/{id}`.
#[utoipa::path(
    get,
    path = "/api/maintenance/db/backup/{id}",
    operation_id = "downloadBackup",
    tag = "connectware",
    summary = "Download a backup archive (C39)",
    description = "The archive of a completed backup, as a file download. Any id that names no kept archive, malformed ones included, is 404.",
    params(("id" = String, Path, description = "The archive's id, as C39 and C38 answer it", pattern = "^[0-9A-Za-z_:-][0-9A-Za-z._:-]{0,63}$")),
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 200, description = "The archive", content_type = "application/octet-stream", body = ArchiveBytes,
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"<id>.gatehouse-backup\"`"))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn download(
    State(state): State<AppState>,
    _caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Response> {
    let maintenance = state.core.maintenance().ok_or_else(not_enabled)?;
    let unknown = || ApiError(CoreError::not_found("backup")).into_response();
    // An id that cannot even be decoded names no archive either.
    let Ok(Path(id)) = id else {
        return Err(unknown());
    };
    let path = maintenance
        .archive_file(&id)
        .map_err(|error| ApiError(error).into_response())?;
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        // Pruned since it was found.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(unknown()),
        Err(error) => return Err(ApiError(CoreError::internal(error)).into_response()),
    };
    let length = file.metadata().await.ok().map(|metadata| metadata.len());
    // The id is checked to be a plain name (letters, digits, `._:-`), so it is a valid value.
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"{id}.{ARCHIVE_EXTENSION}\""
    ))
    .map_err(|_| unknown())?;
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        DOWNLOAD_CHUNK,
    ))
    .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(response)
}

/// C40 `POST /api/maintenance/db/restore`.
#[utoipa::path(
    post,
    path = RESTORE_PATH,
    operation_id = "restoreBackup",
    tag = "connectware",
    summary = "Upload an archive and restore it (C40)",
    description = "The body is the archive: sent raw (any media type but `multipart/*`), or as `multipart/form-data` whose first part with a file name (without one: the first part) is the archive. It is streamed to disk (at most `backup.max_upload_bytes`; `http.body_limit_bytes` and `http.request_timeout_secs` do not apply, except that an upload with no data for that many seconds is given up), opened with `backup.passphrase` if it is encrypted, verified, and then restored in the background: the database's content is replaced by the archive's in one transaction, and every session ends. Follow it with C38. An archive that cannot be restored is 400 with the reason.",
    request_body(
        description = "The archive",
        content(
            (ArchiveBytes = "application/octet-stream"),
            (UploadForm = "multipart/form-data"),
        )
    ),
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 202, description = "The archive is uploaded and verified; the restore runs", body = StartedOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 423, response = Locked),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn restore(
    State(state): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<StartedOut>), Response> {
    let maintenance = state.core.maintenance().ok_or_else(not_enabled)?.clone();
    let content_type = media_type(&headers);
    if content_type.starts_with("multipart/") && content_type != "multipart/form-data" {
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the archive as the body, or as multipart/form-data".to_owned(),
            None,
        ));
    }
    let path = maintenance
        .upload_path()
        .map_err(|error| ApiError(error).into_response())?;
    let mut upload = PartialUpload::create(path).await?;
    let received = if content_type == "multipart/form-data" {
        receive_form(&headers, body, &mut upload.file).await
    } else {
        receive(body.into_data_stream(), &mut upload.file).await
    };
    let received = received.map_err(UploadError::into_response)?;
    if received == 0 {
        return Err(ApiError(CoreError::invalid(
            "body",
            "is empty: send a backup archive",
        ))
        .into_response());
    }
    let path = upload.complete().await?;
    // In a task of its own: once the core has taken the lock, a client that goes away must not
    // cancel the check half-way (which would leave the lock taken and the upload behind).
    let id = tokio::spawn(async move { maintenance.start_restore(path).await })
        .await
        .map_err(|error| ApiError(CoreError::internal(error)).into_response())?
        .map_err(|error| ApiError(error).into_response())?;
    Ok((StatusCode::ACCEPTED, Json(StartedOut { id })))
}

/// An upload being written; the file is deleted unless [`PartialUpload::complete`] is reached
/// (also when the request is dropped half-way because the client went away).
struct PartialUpload {
    path: PathBuf,
    file: BufWriter<tokio::fs::File>,
    complete: bool,
}

impl PartialUpload {
    async fn create(path: PathBuf) -> Result<Self, Response> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|error| ApiError(CoreError::internal(error)).into_response())?;
        Ok(Self {
            path,
            file: BufWriter::with_capacity(UPLOAD_BUFFER, file),
            complete: false,
        })
    }

    /// Writes out what is buffered and hands the file over.
    async fn complete(mut self) -> Result<PathBuf, Response> {
        self.file
            .flush()
            .await
            .map_err(|error| ApiError(CoreError::internal(error)).into_response())?;
        self.complete = true;
        Ok(self.path.clone())
    }
}

impl Drop for PartialUpload {
    fn drop(&mut self) {
        if self.complete {
            return;
        }
        if let Err(error) = std::fs::remove_file(&self.path) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), %error, "cannot delete a partial upload");
            }
        }
    }
}

/// Why an upload could not be received.
enum UploadError {
    /// Cut off by the middleware (too large, stalled).
    CutOff(UploadCutOff),
    /// The request body broke off or is not a well-formed form.
    Malformed(String),
    /// The file could not be written.
    Disk(std::io::Error),
}

impl UploadError {
    fn of_body(error: &(dyn std::error::Error + 'static), what: &str) -> Self {
        match UploadCutOff::of(error) {
            Some(cut_off) => Self::CutOff(cut_off),
            None => Self::Malformed(format!("{what}: {error}")),
        }
    }

    fn into_response(self) -> Response {
        match self {
            Self::CutOff(UploadCutOff::TooLarge(limit)) => error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the archive is larger than backup.max_upload_bytes ({limit} bytes)"),
                None,
            ),
            Self::CutOff(UploadCutOff::Stalled(_)) => timeout_response(),
            Self::Malformed(message) => error_response(StatusCode::BAD_REQUEST, message, None),
            Self::Disk(error) => ApiError(CoreError::internal(error)).into_response(),
        }
    }
}

/// Copies the raw body to `out`; returns the bytes written.
async fn receive<S, E>(mut data: S, out: &mut (impl AsyncWrite + Unpin)) -> Result<u64, UploadError>
where
    S: Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let mut written = 0u64;
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|error| UploadError::of_body(&error, "the upload broke off"))?;
        out.write_all(&chunk).await.map_err(UploadError::Disk)?;
        written += chunk.len() as u64;
    }
    Ok(written)
}

/// Copies the archive of a `multipart/form-data` body to `out`: the first part with a file
/// name, or the first part when none has one. Returns the bytes written.
async fn receive_form(
    headers: &HeaderMap,
    body: Body,
    out: &mut BufWriter<tokio::fs::File>,
) -> Result<u64, UploadError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type)
        .map_err(|error| UploadError::Malformed(format!("malformed multipart body: {error}")))?;
    let malformed = |error: multer::Error| UploadError::of_body(&error, "malformed multipart body");
    let mut form = multer::Multipart::new(body.into_data_stream(), boundary);
    // Whether the part kept so far has a file name; `None` before the first part.
    let mut kept_a_file = None;
    while let Some(mut part) = form.next_field().await.map_err(malformed)? {
        let is_file = part.file_name().is_some();
        match kept_a_file {
            None => {}
            // A file after leading plain fields replaces them.
            Some(false) if is_file => truncate(out).await.map_err(UploadError::Disk)?,
            // Parts after the one kept are skipped (read past by the next `next_field`).
            Some(_) => continue,
        }
        kept_a_file = Some(is_file);
        while let Some(chunk) = part.chunk().await.map_err(malformed)? {
            out.write_all(&chunk).await.map_err(UploadError::Disk)?;
        }
        if is_file {
            break;
        }
    }
    out.flush().await.map_err(UploadError::Disk)?;
    let written = out
        .get_ref()
        .metadata()
        .await
        .map_err(UploadError::Disk)?
        .len();
    Ok(written)
}

/// Empties the file behind `out`.
async fn truncate(out: &mut BufWriter<tokio::fs::File>) -> std::io::Result<()> {
    out.flush().await?;
    let file = out.get_mut();
    file.set_len(0).await?;
    file.seek(SeekFrom::Start(0)).await?;
    Ok(())
}

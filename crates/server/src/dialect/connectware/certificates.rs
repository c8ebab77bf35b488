//! Trusted certificates (C33–C36): the issuers whose client certificates the HTTPS listener
//! accepts. The built-in CA is listed first and cannot be removed.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_core::error::CoreError;
use gatehouse_core::trust::TrustedView;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::error::{error_response, ApiError};
use super::extract::{media_type, RawBody};
use super::schema::{
    BadRequest, Forbidden, InternalError, NotFound, PayloadTooLarge, ServiceUnavailable,
    Unauthorized, UnsupportedMediaType,
};
use crate::AppState;

type ApiResult<T> = Result<T, ApiError>;

/// Issuer or subject names.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CertificateName)]
pub struct NameOut {
    /// CN.
    #[serde(rename = "commonName")]
    #[schema(required = true)]
    common_name: Option<String>,
    /// O.
    #[schema(required = true)]
    organization: Option<String>,
    /// OU.
    #[serde(rename = "organizationalUnit")]
    #[schema(required = true)]
    organizational_unit: Option<String>,
    /// Subject alternative names (`DNS:…`, `IP:…`, `email:…`, `URI:…`); subject only.
    #[serde(rename = "alternativeNames", skip_serializing_if = "Option::is_none")]
    alternative_names: Option<Vec<String>>,
}

/// basicConstraints.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CertificateBasicConstraints)]
pub struct BasicConstraintsOut {
    /// Whether the certificate is a CA.
    #[serde(rename = "isCA")]
    is_ca: bool,
    /// The path length constraint, if any.
    #[serde(rename = "pathLength")]
    #[schema(required = true)]
    path_length: Option<u32>,
}

/// Fingerprints, lower-case hex without separators.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CertificateFingerprints)]
pub struct FingerprintsOut {
    /// SHA-1.
    sha1: String,
    /// SHA-256 (also the certificate's id).
    sha256: String,
}

/// A trusted certificate, parsed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TrustedCertificate)]
pub struct CertificateOut {
    /// Id: the SHA-256 fingerprint.
    id: String,
    /// Issuer.
    #[serde(rename = "issuedBy")]
    issued_by: NameOut,
    /// Subject, with its alternative names.
    #[serde(rename = "issuedTo")]
    issued_to: NameOut,
    /// Key usages (`digitalSignature`, `keyCertSign`, …).
    #[serde(rename = "keyUsage")]
    key_usage: Vec<String>,
    /// Extended key usages (`serverAuth`, `clientAuth`, … or dotted OIDs).
    #[serde(rename = "extendedKeyUsage")]
    extended_key_usage: Vec<String>,
    /// basicConstraints, `null` when absent.
    #[serde(rename = "basicConstraints")]
    #[schema(required = true)]
    basic_constraints: Option<BasicConstraintsOut>,
    /// notBefore, Unix ms.
    #[serde(rename = "issuedOn")]
    issued_on: i64,
    /// notAfter, Unix ms.
    #[serde(rename = "expiresOn")]
    expires_on: i64,
    /// Fingerprints.
    fingerprints: FingerprintsOut,
    /// False for the built-in CA.
    removable: bool,
}

impl From<TrustedView> for CertificateOut {
    fn from(view: TrustedView) -> Self {
        let info = view.info;
        let name = |name: gatehouse_core::pki::NameInfo, subject: bool| NameOut {
            common_name: name.common_name,
            organization: name.organization,
            organizational_unit: name.organizational_unit,
            alternative_names: subject.then_some(name.alternative_names),
        };
        Self {
            id: info.id,
            issued_by: name(info.issued_by, false),
            issued_to: name(info.issued_to, true),
            key_usage: info.key_usage,
            extended_key_usage: info.extended_key_usage,
            basic_constraints: info
                .basic_constraints
                .map(|(is_ca, path_length)| BasicConstraintsOut { is_ca, path_length }),
            issued_on: info.issued_on,
            expires_on: info.expires_on,
            fingerprints: FingerprintsOut {
                sha1: info.sha1,
                sha256: info.sha256,
            },
            removable: view.removable,
        }
    }
}

/// C33 `GET /api/certificates`.
#[utoipa::path(
    get,
    path = "/api/certificates",
    operation_id = "listCertificates",
    tag = "connectware",
    summary = "List trusted certificates (C33)",
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 200, description = "The built-in CA first, then the added certificates", body = Vec<CertificateOut>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<CertificateOut>>> {
    let views = state.core.trusted_certificates().await?;
    Ok(Json(views.into_iter().map(CertificateOut::from).collect()))
}

/// The PEM text of a C34 body: a JSON string (the seed's form), or the PEM itself as
/// `text/plain` or `application/x-pem-file`; `None` for any other media type.
fn pem_body(headers: &HeaderMap, body: &[u8]) -> Option<Result<String, ApiError>> {
    let invalid = |reason: &str| ApiError(CoreError::invalid("body", reason));
    let content_type = media_type(headers);
    match content_type.as_str() {
        "application/json" => Some(
            serde_json::from_slice::<String>(body)
                .map_err(|_| invalid("must be a JSON string holding PEM certificates")),
        ),
        "text/plain" | "application/x-pem-file" => {
            Some(String::from_utf8(body.to_vec()).map_err(|_| invalid("must be UTF-8 PEM text")))
        }
        _ => None,
    }
}

/// C34 `POST /api/certificates`.
#[utoipa::path(
    post,
    path = "/api/certificates",
    operation_id = "addCertificates",
    tag = "connectware",
    summary = "Add trusted certificates (C34)",
    description = "The body is a JSON string with one or more PEM certificates (or the PEM itself as `text/plain`). Every block must be a readable certificate, else nothing is added. Certificates already trusted are skipped; the answer lists the ones added.",
    request_body(content = String, content_type = "application/json"),
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 200, description = "The certificates added", body = Vec<CertificateOut>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn add(
    State(state): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Vec<CertificateOut>>, Response> {
    let Some(pem) = pem_body(&headers, &body) else {
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send a JSON string (application/json) or PEM text (text/plain)".to_owned(),
            None,
        ));
    };
    let pem = pem.map_err(IntoResponse::into_response)?;
    let added = state
        .core
        .add_trusted_certificates(&pem)
        .await
        .map_err(|error| ApiError(error).into_response())?;
    Ok(Json(added.into_iter().map(CertificateOut::from).collect()))
}

/// Query of C35.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentQuery {
    /// The certificate's id (its SHA-256 fingerprint).
    #[param(pattern = "^[0-9a-fA-F]{64}$")]
    id: Option<String>,
}

/// C35 `GET /api/certificates/content?id=`.
#[utoipa::path(
    get,
    path = "/api/certificates/content",
    operation_id = "certificateContent",
    tag = "connectware",
    summary = "One trusted certificate as PEM (C35)",
    params(ContentQuery),
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 200, description = "The certificate, PEM", content_type = "application/x-pem-file", body = String),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn content(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<ContentQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let id = query
        .ok()
        .and_then(|Query(query)| query.id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| CoreError::invalid("id", "is required"))?;
    let view = state
        .core
        .trusted_certificate(&certificate_id(&id)?)
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        view.info.pem(),
    )
        .into_response())
}

/// A certificate id as sent: 64 hex digits (the SHA-256 fingerprint), any case.
fn certificate_id(id: &str) -> Result<String, ApiError> {
    if id.len() == 64 && id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(ApiError(CoreError::invalid(
            "id",
            "must be a certificate id (64 hex digits)",
        )))
    }
}

/// C36 `DELETE /api/certificates/{id}`.
#[utoipa::path(
    delete,
    path = "/api/certificates/{id}",
    operation_id = "deleteCertificate",
    tag = "connectware",
    summary = "Remove a trusted certificate (C36)",
    params(("id" = String, Path, description = "The certificate's id (SHA-256 fingerprint)", pattern = "^[0-9a-fA-F]{64}$")),
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .core
        .delete_trusted_certificate(&certificate_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! The Connectware error shape and the mapping of core errors to HTTP statuses.

use std::any::Any;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_core::{AuthFailure, CoreError, Rejection};
use serde::Serialize;
use utoipa::ToSchema;

/// A core error rendered in the Connectware dialect.
#[derive(Debug)]
pub struct ApiError(pub CoreError);

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        Self(error)
    }
}

/// The error shape of the dialect, e.g.
/// `{"statusCode": 400, "error": "Bad Request", "message": "…", "field": "username"}`.
#[derive(Serialize, ToSchema)]
#[schema(
    as = ConnectwareError,
    example = json!({"statusCode": 400, "error": "Bad Request", "message": "username: must be at least 3 characters long", "field": "username"})
)]
pub struct ErrorBody {
    /// The HTTP status code, repeated.
    #[serde(rename = "statusCode")]
    status_code: u16,
    /// The HTTP reason phrase.
    error: &'static str,
    /// What went wrong.
    message: String,
    /// The request field at fault (list entries by path, e.g. `initialPermissions[2].resource`);
    /// present only when one field is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    field: Option<String>,
}

/// Builds an error response of the dialect's shape.
pub fn error_response(status: StatusCode, message: String, field: Option<String>) -> Response {
    let body = ErrorBody {
        status_code: status.as_u16(),
        error: status.canonical_reason().unwrap_or("Error"),
        message,
        field,
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, field) = match &self.0 {
            CoreError::NotFound { .. } => (StatusCode::NOT_FOUND, None),
            CoreError::Conflict { .. } => (StatusCode::CONFLICT, None),
            CoreError::Invalid { field, .. } => (StatusCode::BAD_REQUEST, Some(field.clone())),
            CoreError::PolicyViolation { field, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, Some(field.clone()))
            }
            CoreError::Unauthenticated(AuthFailure::MfaBanned {
                retry_after_secs: Some(_),
            }) => (StatusCode::TOO_MANY_REQUESTS, None),
            CoreError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, None),
            CoreError::Rejected(rejection) => (
                rejected_status(rejection),
                Some(rejected_field(rejection).to_owned()),
            ),
            CoreError::Forbidden { .. } => (StatusCode::FORBIDDEN, None),
            CoreError::Locked { .. } => (StatusCode::LOCKED, None),
            CoreError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, None),
            CoreError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, None),
            CoreError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
        };
        let message = match &self.0 {
            CoreError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal error".to_owned()
            }
            CoreError::Unauthenticated(AuthFailure::MissingCredentials) => {
                "a token is required (Authorization: Bearer or ?apiToken=)".to_owned()
            }
            CoreError::Unauthenticated(AuthFailure::MfaBanned { .. }) => {
                "Too many failed login attempts".to_owned()
            }
            CoreError::Unauthenticated(failure) => failure.to_string(),
            CoreError::Rejected(Rejection::InvalidVerificationCode) => "Invalid OTP".to_owned(),
            CoreError::Rejected(Rejection::MfaAlreadyConfigured) => {
                "User is already enrolled".to_owned()
            }
            CoreError::Rejected(rejection) => {
                format!("{}: {rejection}", rejected_field(rejection))
            }
            other => other.to_string(),
        };
        let mut response = error_response(status, message, field);
        let headers = response.headers_mut();
        match &self.0 {
            CoreError::Unauthenticated(AuthFailure::MfaBanned {
                retry_after_secs: Some(retry_after_secs),
            })
            | CoreError::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The status of a refused credential operation: a wrong second-factor code fails the
/// authentication (401), enrolling twice conflicts (409), everything else is a bad request.
fn rejected_status(rejection: &Rejection) -> StatusCode {
    match rejection {
        Rejection::InvalidVerificationCode => StatusCode::UNAUTHORIZED,
        Rejection::MfaAlreadyConfigured => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The request field a refused credential operation is about.
fn rejected_field(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::WrongCurrentPassword => "password",
        Rejection::PasswordUnchanged | Rejection::ExternallyManaged => "newPassword",
        Rejection::ActivationTokenUnknown
        | Rejection::ActivationTokenExpired
        | Rejection::AlreadyActivated => "activateToken",
        Rejection::ResetTokenUnknown | Rejection::ResetTokenExpired => "resetToken",
        Rejection::EmailCodeUnknown | Rejection::EmailCodeExpired => "emailCode",
        Rejection::InvalidVerificationCode
        | Rejection::MfaNotConfigured
        | Rejection::MfaProviderDisabled
        | Rejection::MfaAlreadyConfigured
        | Rejection::MfaRequired
        | Rejection::MfaNeedsPrimary
        | Rejection::NoEnrolmentInProgress => "otp",
    }
}

/// The answer for an optional feature that is not configured (Entra ID login, database
/// maintenance), as Connectware words it.
pub fn not_enabled() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "The feature is not enabled.".to_owned(),
        None,
    )
}

/// Answer for a path no route serves.
pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "no such endpoint".to_owned(), None)
}

/// Answer for a method the path does not support.
pub async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint".to_owned(),
        None,
    )
}

/// Answer when a request took longer than the configured timeout.
pub fn timeout_response() -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "the request took too long; retry later".to_owned(),
        None,
    )
}

/// Answer when a handler panicked: a 500 in the dialect's shape; the panic itself is logged.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(panic = detail, "handler panicked");
    let mut response = error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error".to_owned(),
        None,
    );
    response
        .extensions_mut()
        .insert(crate::middleware::Panicked);
    response
}

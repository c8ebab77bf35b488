//! ThingsBoard's error shape `{status, message, errorCode, timestamp}` (plus `resetToken` for
//! expired passwords) with its codes and messages, and the mapping of core errors to it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_core::{AuthFailure, CoreError, PolicyBreach, Rejection};
use serde::Serialize;
use utoipa::ToSchema;

/// ThingsBoard's error codes (`ThingsboardErrorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 2: general error.
    General = 2,
    /// 10: authentication failed.
    Authentication = 10,
    /// 11: JWT token expired.
    JwtTokenExpired = 11,
    /// 15: credentials expired.
    CredentialsExpired = 15,
    /// 20: permission denied.
    PermissionDenied = 20,
    /// 31: bad request parameters.
    BadRequestParams = 31,
    /// 32: item not found.
    ItemNotFound = 32,
    /// 33: too many requests.
    TooManyRequests = 33,
    /// 45: password violates the policy.
    PasswordViolation = 45,
}

/// The error body, e.g. `{"status":401,"message":"Invalid username or password","errorCode":10,"timestamp":1700000000000}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    as = ThingsboardErrorResponse,
    example = json!({"status": 401, "message": "Invalid username or password", "errorCode": 10, "timestamp": 1_700_000_000_000_i64})
)]
pub struct ErrorBody {
    /// The HTTP status, repeated.
    status: u16,
    /// What went wrong.
    message: String,
    /// ThingsBoard's error code.
    #[serde(rename = "errorCode")]
    error_code: u16,
    /// When, Unix milliseconds.
    timestamp: i64,
    /// For code 15 only: a token for `POST /api/noauth/resetPassword`.
    #[serde(rename = "resetToken", skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    reset_token: Option<String>,
}

/// An error of this dialect: a status, a code and a message.
#[derive(Debug)]
pub struct TbError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    reset_token: Option<String>,
    retry_after_secs: Option<u64>,
}

/// Result of a handler of this dialect.
pub type TbResult<T> = Result<T, TbError>;

/// The message of every permission failure.
pub const PERMISSION_DENIED: &str = "You don't have permission to perform this operation!";

impl TbError {
    /// An error with the given parts.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            reset_token: None,
            retry_after_secs: None,
        }
    }

    /// 400, code 31.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequestParams,
            message,
        )
    }

    /// 401, code 10.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Authentication, message)
    }

    /// 403, code 20.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorCode::PermissionDenied,
            PERMISSION_DENIED,
        )
    }

    /// 404, code 32: `"<Entity> with id [<id>] is not found"`.
    pub fn not_found(entity: &str, id: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ItemNotFound,
            format!("{entity} with id [{id}] is not found"),
        )
    }

    /// Replaces the message of a not-found error by ThingsBoard's wording for `entity` `id`.
    pub fn naming(self, entity: &str, id: impl std::fmt::Display) -> Self {
        if self.code == ErrorCode::ItemNotFound {
            Self::not_found(entity, id)
        } else {
            self
        }
    }

    /// Replaces the message when the error is the given rejection.
    pub fn with_message_if(self, matches: bool, message: impl Into<String>) -> Self {
        if matches {
            Self {
                message: message.into(),
                ..self
            }
        } else {
            self
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// ThingsBoard's (passay's) wording of a broken password rule.
fn breach_message(breach: &PolicyBreach) -> String {
    match *breach {
        PolicyBreach::TooShort { min } => {
            format!("Password must be {min} or more characters in length.")
        }
        PolicyBreach::TooLong { max } => {
            format!("Password must be no more than {max} characters in length.")
        }
        PolicyBreach::Uppercase { min } => {
            format!("Password must contain {min} or more uppercase characters.")
        }
        PolicyBreach::Lowercase { min } => {
            format!("Password must contain {min} or more lowercase characters.")
        }
        PolicyBreach::Digits { min } => {
            format!("Password must contain {min} or more digit characters.")
        }
        PolicyBreach::Symbols { min } => {
            format!("Password must contain {min} or more special characters.")
        }
        PolicyBreach::Whitespace => "Password contains a whitespace character.".to_owned(),
        PolicyBreach::Reused { days } => {
            format!("Password was already used for the last {days} days")
        }
        PolicyBreach::Username => breach.to_string(),
    }
}

/// ThingsBoard's wording of a refused credential operation.
fn rejection_message(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::WrongCurrentPassword => "Current password doesn't match!",
        Rejection::PasswordUnchanged => "New password should be different from existing!",
        Rejection::ActivationTokenUnknown => "Unable to find user credentials by activateToken",
        Rejection::ActivationTokenExpired => "Activation token expired",
        Rejection::AlreadyActivated => "User credentials already activated",
        Rejection::ResetTokenUnknown => "Invalid reset token!",
        Rejection::ResetTokenExpired => "Password reset token expired",
        Rejection::EmailCodeUnknown => "Invalid email verification code",
        Rejection::EmailCodeExpired => "Email verification code expired",
        Rejection::ExternallyManaged => {
            "The password of an externally managed user cannot be changed here"
        }
        Rejection::InvalidVerificationCode => "Verification code is incorrect",
        Rejection::MfaNotConfigured => "2FA is not configured for account",
        Rejection::MfaProviderDisabled => "2FA provider is not configured",
        Rejection::MfaAlreadyConfigured => "2FA provider is already configured",
        Rejection::MfaRequired => "At least one 2FA provider is required",
        Rejection::MfaNeedsPrimary => {
            "To use 2FA backup codes you first need to configure at least one provider"
        }
        Rejection::NoEnrolmentInProgress => "No 2FA enrolment is in progress",
    }
}

impl From<CoreError> for TbError {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::NotFound { what } => Self::new(
                StatusCode::NOT_FOUND,
                ErrorCode::ItemNotFound,
                format!("Requested item wasn't found! ({what})"),
            ),
            CoreError::Conflict { message } => Self::bad_request(message),
            CoreError::Invalid { field, reason } => Self::bad_request(format!("{field} {reason}")),
            CoreError::PolicyViolation { breaches, .. } => Self::bad_request(
                breaches
                    .iter()
                    .map(breach_message)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            CoreError::Unauthenticated(failure) => from_auth_failure(failure),
            CoreError::Rejected(rejection) => Self::bad_request(rejection_message(&rejection)),
            CoreError::Forbidden { .. } => Self::forbidden(),
            CoreError::Locked { .. } => {
                Self::unauthorized("User account is locked due to security policy")
            }
            CoreError::RateLimited { retry_after_secs } => Self {
                retry_after_secs: Some(retry_after_secs),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::TooManyRequests,
                    "Too many requests",
                )
            },
            CoreError::Unavailable { reason } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::General,
                format!("Service unavailable: {reason}"),
            ),
            CoreError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::General,
                    "Internal server error",
                )
            }
        }
    }
}

fn from_auth_failure(failure: AuthFailure) -> TbError {
    match failure {
        AuthFailure::MissingCredentials => TbError::unauthorized("Authentication failed"),
        AuthFailure::BadCredentials => TbError::unauthorized("Invalid username or password"),
        AuthFailure::NotActive => TbError::unauthorized("User account is not active"),
        AuthFailure::LockedNow => {
            TbError::unauthorized("User account is locked due to security policy")
        }
        AuthFailure::TokenExpired => TbError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::JwtTokenExpired,
            "Token has expired",
        ),
        AuthFailure::TokenOutdated => TbError::unauthorized("Token is outdated"),
        AuthFailure::InvalidRefreshToken => TbError::unauthorized("Invalid refresh token"),
        AuthFailure::PasswordExpired { reset_token } => TbError {
            reset_token: Some(reset_token),
            ..TbError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::CredentialsExpired,
                "User password expired!",
            )
        },
        AuthFailure::PasswordViolatesPolicy => TbError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::PasswordViolation,
            "The entered password violates our policies. If this is your real password, please reset it.",
        ),
        AuthFailure::ApiKeyExpired => TbError::unauthorized("API key is expired"),
        AuthFailure::Federation { reason } => TbError::unauthorized(reason),
        AuthFailure::MfaBanned { retry_after_secs } => TbError {
            retry_after_secs,
            ..TbError::unauthorized(
                "User account was locked due to exceeded 2FA verification attempts",
            )
        },
    }
}

impl IntoResponse for TbError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status: self.status.as_u16(),
            message: self.message,
            error_code: self.code as u16,
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| {
                    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
                }),
            reset_token: self.reset_token,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Path prefixes served by this dialect, for answers produced outside its routes (unknown
/// paths, wrong methods).
pub const PATH_PREFIXES: &[&str] = &[
    "/api/auth/",
    "/api/noauth/",
    "/api/apiKey",
    "/api/user/",
    "/api/user",
    "/api/admin/",
    "/api/2fa/",
    "/api/oauth2/",
    "/api/domain",
    "/api/signup/",
    "/oauth2/",
    "/login/oauth2/",
];

/// Whether `path` belongs to this dialect.
pub fn owns_path(path: &str) -> bool {
    PATH_PREFIXES
        .iter()
        .any(|prefix| path == prefix.trim_end_matches('/') || path.starts_with(prefix))
        && !path.starts_with("/api/users")
}

/// Answer for an unknown path of this dialect.
pub fn not_found() -> Response {
    TbError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::ItemNotFound,
        "Requested item wasn't found!",
    )
    .into_response()
}

/// Answer for a method a path of this dialect does not support: 405. On the login endpoints
/// the body carries ThingsBoard's login-filter message, "Authentication method not supported"
/// (code 10); ThingsBoard answers it with 401, which would read as wrong credentials.
pub fn method_not_allowed(path: &str, method: &str) -> Response {
    if path == "/api/auth/login" || path == "/api/auth/token" {
        return TbError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Authentication,
            "Authentication method not supported",
        )
        .into_response();
    }
    TbError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::General,
        format!("Request method '{method}' is not supported"),
    )
    .into_response()
}

/// Answer when a request of this dialect took longer than the configured timeout.
pub fn timeout_response() -> Response {
    TbError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::General,
        "The request took too long; retry later",
    )
    .into_response()
}

/// Answer when a handler of this dialect failed unexpectedly (the cause is logged).
pub fn internal_error_response() -> Response {
    TbError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::General,
        "Internal server error",
    )
    .into_response()
}

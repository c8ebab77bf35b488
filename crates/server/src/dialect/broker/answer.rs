//! The answers of the HTTP-backend hooks: 200 `{"ok":true}` to allow, 403
//! `{"ok":false,"error":"…"}` to deny, 503 `{"ok":false,"error":"unavailable"}` when the core
//! cannot answer. Both mosquitto-go-auth response modes `status` and `json`, and amqtt's `json`
//! and `status` modes, read them; with `?response=text` the body is `ok` or `denied` instead
//! (go-auth's and amqtt's `text` modes).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_core::{AuthFailure, CoreError};
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON answer of every HTTP-backend hook.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BrokerHookAnswer, example = json!({"ok": false, "error": "not allowed"}))]
pub struct AnswerBody {
    /// Whether the request is allowed.
    ok: bool,
    /// Why not (deny answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    error: Option<String>,
}

/// How the answer is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `{"ok":…}` (go-auth `json` and `status`, amqtt `json` and `status`).
    Json,
    /// `ok` or `denied` as plain text (go-auth and amqtt `text`).
    Text,
}

/// A hook's answer before rendering.
#[derive(Debug)]
pub struct Answer {
    status: StatusCode,
    error: Option<String>,
}

impl Answer {
    /// 200: allowed.
    pub fn allow() -> Self {
        Self {
            status: StatusCode::OK,
            error: None,
        }
    }

    /// 403: denied, or a request that cannot be answered (malformed), with a reason.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self::forbidden(reason)
    }

    /// 403 with a reason.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            error: Some(reason.into()),
        }
    }

    /// 413: the body is larger than the configured limit.
    pub fn too_large() -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error: Some("request body too large".to_owned()),
        }
    }

    /// Whether this answer allows.
    pub fn allowed(&self) -> bool {
        self.status == StatusCode::OK
    }

    /// Whether this answer reports a failure of Gatehouse rather than a decision.
    pub fn is_error(&self) -> bool {
        self.status.is_server_error()
    }

    /// Why the request was denied, if it was.
    pub fn reason(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The answer to a failed core operation: refusals are denials with a reason that names
    /// the kind of failure (never which half of a credential was wrong); an unavailable core
    /// is 503 (brokers treat it as a denial, go-auth logs it as an error).
    pub fn from_core(error: CoreError) -> Self {
        if let Some(status) = super::failure_status("http", &error) {
            let error = if status == StatusCode::SERVICE_UNAVAILABLE {
                "unavailable"
            } else {
                "internal error"
            };
            return Self {
                status,
                error: Some(error.to_owned()),
            };
        }
        match error {
            CoreError::Unauthenticated(failure) => Self::deny(match failure {
                AuthFailure::MissingCredentials | AuthFailure::BadCredentials => {
                    "invalid username or password"
                }
                AuthFailure::NotActive => "account not active",
                AuthFailure::LockedNow => "account locked",
                AuthFailure::TokenExpired | AuthFailure::TokenOutdated => "token expired",
                AuthFailure::InvalidRefreshToken => "invalid token",
                AuthFailure::PasswordExpired { .. } => "password expired",
                AuthFailure::PasswordViolatesPolicy => "password violates the password policy",
                AuthFailure::ApiKeyExpired => "API key expired",
                AuthFailure::Federation { .. } => "federated login failed",
                AuthFailure::MfaBanned { .. } => "too many failed login attempts",
            }),
            CoreError::Locked { .. } => Self::deny("account locked"),
            CoreError::RateLimited { .. } => Self::deny("too many attempts; retry later"),
            CoreError::NotFound { .. }
            | CoreError::Conflict { .. }
            | CoreError::Invalid { .. }
            | CoreError::PolicyViolation { .. }
            | CoreError::Rejected(_)
            | CoreError::Forbidden { .. }
            | CoreError::Unavailable { .. }
            | CoreError::Internal(_) => Self::deny("refused"),
        }
    }

    /// The answer as a response in `mode`.
    pub fn render(self, mode: Mode) -> Response {
        let mut response = match mode {
            Mode::Json => (
                self.status,
                Json(AnswerBody {
                    ok: self.allowed(),
                    error: self.error,
                }),
            )
                .into_response(),
            Mode::Text => {
                let text = match self.status {
                    StatusCode::OK => "ok",
                    StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                    StatusCode::INTERNAL_SERVER_ERROR => "error",
                    _ => "denied",
                };
                (
                    self.status,
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    )],
                    text,
                )
                    .into_response()
            }
        };
        // Answers depend on data that changes at any time; brokers cache them themselves.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

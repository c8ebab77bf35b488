//! Login and session (C25, C26).

use axum::extract::State;
use axum::Json;
use gatehouse_core::auth::{LoginOutcome, LoginRequest, LoginResult};
use gatehouse_core::clock::format_millis;
use gatehouse_core::password::PlainPassword;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::caller::SessionCaller;
use super::error::ApiError;
use super::extract::Body;
use super::schema::{
    BadRequest, Forbidden, InternalError, PayloadTooLarge, ServiceUnavailable, TooManyRequests,
    Unauthorized, UnsupportedMediaType,
};
use super::wire::{permissions_out, PermissionOut};
use crate::client::{ClientAddress, ClientCertificate, PeerCertificate};
use crate::AppState;

/// Body of C25.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(
    as = LoginRequest,
    example = json!({"username": "admin", "password": "s3cret-passw0rd", "expireTimeInHours": 24, "label": "ci-token"})
)]
pub struct LoginIn {
    /// Login name.
    username: String,
    /// Password (not empty, at most 1024 bytes).
    #[schema(min_length = 1, max_length = 1024)]
    password: String,
    /// Token lifetime in hours, from 1 to `auth.max_token_hours`; `auth.default_token_hours`
    /// when absent.
    #[serde(rename = "expireTimeInHours", default)]
    #[schema(minimum = 1)]
    expire_time_in_hours: Option<u64>,
    /// A label for the token, shown in the token list (at most 256 characters).
    #[serde(default)]
    #[schema(max_length = 256)]
    label: Option<String>,
}

/// Answer of C25 (and C43). After a password alone, a user with MFA gets `needsMfa: true` and
/// the `secret` for `POST /api/mfa/login` instead of a token; `token` and `expiresAt` are then
/// absent and `permissions` is empty.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LoginResponse)]
pub struct LoginOut {
    /// The token (a JWT), for `Authorization: Bearer` or `?apiToken=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    token: Option<String>,
    /// The token's expiry.
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, format = DateTime, required = false)]
    expires_at: Option<String>,
    /// All of the user's permissions, in both contexts (empty while MFA is pending).
    permissions: Vec<PermissionOut>,
    /// True when the login must be completed with a second factor (`POST /api/mfa/login`).
    #[serde(rename = "needsMfa")]
    needs_mfa: bool,
    /// The MFA step's handle for `POST /api/mfa/login`; only when `needsMfa` is true.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    secret: Option<String>,
    /// True when the user must enrol MFA before anything else: the token then opens only
    /// `/api/mfa/enable`, `/api/mfa/validate` and `/api/session` until enrolment succeeds.
    #[serde(rename = "enforceMFAEnrollment")]
    enforce_mfa_enrollment: bool,
}

impl LoginOut {
    /// The answer of a login that produced a token.
    pub(super) fn token(outcome: LoginOutcome, enrolment_due: bool) -> Self {
        Self {
            token: Some(outcome.token),
            expires_at: Some(format_millis(outcome.session.expires_at)),
            permissions: permissions_out(&outcome.permissions),
            needs_mfa: false,
            secret: None,
            enforce_mfa_enrollment: enrolment_due || outcome.user.enforce_mfa_enrollment,
        }
    }
}

/// C25 `POST /api/login`.
#[utoipa::path(
    post,
    path = "/api/login",
    operation_id = "login",
    tag = "connectware",
    summary = "Log in (C25)",
    description = "Checks a username and password and opens a session; no token is needed. A user with MFA gets `needsMfa` and a `secret` for `POST /api/mfa/login` instead of a token.",
    request_body(content = LoginIn, content_type = "application/json"),
    responses(
        (status = 200, description = "Logged in", body = LoginOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    PeerCertificate(certificate): PeerCertificate,
    Body(body): Body<LoginIn>,
) -> Result<Json<LoginOut>, ApiError> {
    let request = LoginRequest {
        username: body.username,
        password: PlainPassword::parse(&body.password, "password")?,
        lifetime_hours: body.expire_time_in_hours,
        label: body.label,
        client,
        certificate: certificate.map(|ClientCertificate(der)| der.to_vec()),
    };
    let answer = match state.core.login(request).await? {
        LoginResult::Complete(outcome) => LoginOut::token(outcome, false),
        LoginResult::NeedsEnrolment(outcome) => LoginOut::token(outcome, true),
        LoginResult::NeedsMfa(challenge) => LoginOut {
            token: None,
            expires_at: None,
            permissions: Vec::new(),
            needs_mfa: true,
            secret: Some(challenge.token),
            enforce_mfa_enrollment: challenge.user.enforce_mfa_enrollment,
        },
    };
    Ok(Json(answer))
}

/// MFA state in C26.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SessionMfa)]
pub struct MfaOut {
    /// Whether the user is enrolled in MFA.
    enabled: bool,
    /// Whether MFA enrolment is enforced.
    enforced: bool,
}

/// Answer of C26.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionOut {
    /// The caller's login name.
    username: String,
    /// The calling token's expiry.
    #[serde(rename = "expiresAt")]
    #[schema(format = DateTime)]
    expires_at: String,
    /// All of the caller's permissions.
    permissions: Vec<PermissionOut>,
    /// MFA state.
    mfa: MfaOut,
}

/// C26 `GET /api/session`.
#[utoipa::path(
    get,
    path = "/api/session",
    operation_id = "getSession",
    tag = "connectware",
    summary = "The caller's session (C26)",
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 200, description = "The caller", body = SessionOut),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn session(SessionCaller(caller): SessionCaller) -> Json<SessionOut> {
    Json(SessionOut {
        username: caller.user.username.clone(),
        // Connectware callers always authenticate with a token, so there is a session.
        expires_at: caller
            .session
            .as_ref()
            .map(|session| format_millis(session.expires_at))
            .unwrap_or_default(),
        permissions: permissions_out(&caller.permissions),
        mfa: MfaOut {
            enabled: caller.user.mfa_enrolled,
            enforced: caller.user.enforce_mfa_enrollment,
        },
    })
}

//! Login and session (C25, C26).

use axum::extract::State;
use axum::Json;
use gatehouse_core::auth::LoginRequest;
use gatehouse_core::clock::format_millis;
use gatehouse_core::password::PlainPassword;
use serde::{Deserialize, Serialize};

use super::caller::Caller;
use super::error::ApiError;
use super::extract::Body;
use super::wire::{permissions_out, PermissionOut};
use crate::client::ClientAddress;
use crate::AppState;

/// Body of C25.
#[derive(Debug, Deserialize)]
pub struct LoginIn {
    username: String,
    password: String,
    #[serde(rename = "expireTimeInHours", default)]
    expire_time_in_hours: Option<u64>,
    #[serde(default)]
    label: Option<String>,
}

/// Answer of C25. `secret` (the MFA step's handle) is present only when `needsMfa` is true.
#[derive(Debug, Serialize)]
pub struct LoginOut {
    token: String,
    #[serde(rename = "expiresAt")]
    expires_at: String,
    permissions: Vec<PermissionOut>,
    #[serde(rename = "needsMfa")]
    needs_mfa: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(rename = "enforceMFAEnrollment")]
    enforce_mfa_enrollment: bool,
}

/// C25 `POST /api/login`.
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Body(body): Body<LoginIn>,
) -> Result<Json<LoginOut>, ApiError> {
    let request = LoginRequest {
        username: body.username,
        password: PlainPassword::parse(&body.password, "password")?,
        lifetime_hours: body.expire_time_in_hours,
        label: body.label,
        client,
    };
    let outcome = state.core.login(request).await?;
    Ok(Json(LoginOut {
        token: outcome.token,
        expires_at: format_millis(outcome.session.expires_at),
        permissions: permissions_out(&outcome.permissions),
        needs_mfa: false,
        secret: None,
        enforce_mfa_enrollment: outcome.user.enforce_mfa_enrollment,
    }))
}

/// MFA state in C26.
#[derive(Debug, Serialize)]
pub struct MfaOut {
    enabled: bool,
    enforced: bool,
}

/// Answer of C26.
#[derive(Debug, Serialize)]
pub struct SessionOut {
    username: String,
    #[serde(rename = "expiresAt")]
    expires_at: String,
    permissions: Vec<PermissionOut>,
    mfa: MfaOut,
}

/// C26 `GET /api/session`.
pub async fn session(Caller(caller): Caller) -> Json<SessionOut> {
    Json(SessionOut {
        username: caller.user.username.clone(),
        expires_at: format_millis(caller.session.expires_at),
        permissions: permissions_out(&caller.permissions),
        mfa: MfaOut {
            enabled: caller.user.mfa_enrolled,
            enforced: caller.user.enforce_mfa_enrollment,
        },
    })
}

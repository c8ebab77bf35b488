//! Login, refresh, logout, the current user, password change, the password policy and the
//! security settings (T1–T6 and `/api/admin/securitySettings`).

use axum::extract::State;
use axum::Json;
use gatehouse_core::model::Authority;
use gatehouse_core::password::PlainPassword;
use gatehouse_core::{AuthFailure, CoreError};
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ErrorBody, TbError, TbResult};
use super::extract::{json_object, AccountCaller, TbBody, TbCaller};
use super::wire::{JwtPairOut, PasswordPolicyWire, SecuritySettingsWire, UserOut};
use super::TAG;
use crate::client::ClientAddress;
use crate::AppState;

/// Body of T1.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ThingsboardLoginRequest, example = json!({"username": "tenant@thingsboard.org", "password": "tenant"}))]
pub struct LoginIn {
    /// The login name or email.
    username: String,
    /// The password.
    password: String,
}

/// Body of T2.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RefreshTokenRequest)]
pub struct RefreshIn {
    /// A refresh token from T1 or T2.
    #[serde(rename = "refreshToken")]
    refresh_token: String,
}

/// Body of T5.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ChangePasswordRequest)]
pub struct ChangePasswordIn {
    /// The current password.
    #[serde(rename = "currentPassword")]
    current_password: String,
    /// The new password.
    #[serde(rename = "newPassword")]
    new_password: String,
}

/// A password of a request, where a malformed one reads as a failed authentication.
fn login_password(text: &str) -> TbResult<PlainPassword> {
    PlainPassword::parse(text, "password")
        .map_err(|_| CoreError::unauthenticated(AuthFailure::BadCredentials).into())
}

/// A new password of a request: empty or over-long ones are 400.
pub(super) fn new_password(text: &str) -> TbResult<PlainPassword> {
    PlainPassword::parse(text, "password").map_err(|error| match error {
        CoreError::Invalid { reason, .. } => TbError::bad_request(format!("Password {reason}")),
        other => other.into(),
    })
}

/// Any unparsable login or refresh body is ThingsBoard's "Authentication failed".
fn auth_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> TbResult<T> {
    json_object(body)
        .map_err(|_| CoreError::unauthenticated(AuthFailure::MissingCredentials).into())
}

/// T1: log in with username (or email) and password; answers a token pair.
#[utoipa::path(
    post, path = "/api/auth/login", tag = TAG, operation_id = "tbLogin",
    request_body = LoginIn,
    responses(
        (status = 200, description = "A token pair", body = JwtPairOut),
        (status = 401, description = "Wrong credentials, inactive or locked account (10), expired password (15, with `resetToken`), password breaking a policy that forces resets (45)", body = ErrorBody),
        (status = 429, description = "Too many attempts (33)", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    TbBody(body): TbBody,
) -> TbResult<Json<JwtPairOut>> {
    let request: LoginIn = auth_body(&body)?;
    let password = login_password(&request.password)?;
    let pair = state
        .core
        .login_pair(&request.username, &password, client)
        .await?;
    Ok(Json(pair.into()))
}

/// T2: exchange a refresh token for a new pair; the refresh token works once.
#[utoipa::path(
    post, path = "/api/auth/token", tag = TAG, operation_id = "refreshToken",
    request_body = RefreshIn,
    responses(
        (status = 200, description = "A new token pair", body = JwtPairOut),
        (status = 401, description = "Expired (11), outdated or invalid (10) refresh token", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    TbBody(body): TbBody,
) -> TbResult<Json<JwtPairOut>> {
    let request: RefreshIn = auth_body(&body)?;
    let pair = state
        .core
        .refresh_pair(request.refresh_token.trim())
        .await?;
    Ok(Json(pair.into()))
}

/// T3: end the caller's session (its access and refresh tokens). A signed-up account may
/// call it before accepting the privacy policy.
#[utoipa::path(
    post, path = "/api/auth/logout", tag = TAG, operation_id = "logout",
    security(("xAuthorization" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Logged out (empty body)"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
pub async fn logout(State(state): State<AppState>, caller: AccountCaller) -> TbResult<()> {
    state.core.logout(&caller.0).await?;
    Ok(())
}

/// T4: the caller. A signed-up account may call it before accepting the privacy policy.
#[utoipa::path(
    get, path = "/api/auth/user", tag = TAG, operation_id = "tbGetUser",
    security(("xAuthorization" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserOut),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
pub async fn user(caller: AccountCaller) -> Json<UserOut> {
    Json(UserOut::from(&caller.0.user))
}

/// T5: change the caller's password; every older token of the caller stops working and a new
/// pair is returned.
#[utoipa::path(
    post, path = "/api/auth/changePassword", tag = TAG, operation_id = "changePassword",
    security(("xAuthorization" = []), ("bearer" = [])),
    request_body = ChangePasswordIn,
    responses(
        (status = 200, description = "A new token pair", body = JwtPairOut),
        (status = 400, description = "Wrong current password, unchanged password or a policy violation (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    caller: TbCaller,
    TbBody(body): TbBody,
) -> TbResult<Json<JwtPairOut>> {
    let request: ChangePasswordIn = json_object(&body)?;
    let current = PlainPassword::parse(&request.current_password, "currentPassword")
        .map_err(|_| CoreError::Rejected(gatehouse_core::Rejection::WrongCurrentPassword))?;
    let new = new_password(&request.new_password)?;
    let pair = state
        .core
        .change_password_pair(&caller.0, &current, &new)
        .await?;
    Ok(Json(pair.into()))
}

/// T6: the password policy, for anyone.
#[utoipa::path(
    get, path = "/api/noauth/userPasswordPolicy", tag = TAG, operation_id = "getUserPasswordPolicy",
    responses((status = 200, description = "The password policy", body = PasswordPolicyWire))
)]
pub async fn password_policy(State(state): State<AppState>) -> TbResult<Json<PasswordPolicyWire>> {
    let policy = state.core.password_policy().await?;
    Ok(Json(PasswordPolicyWire::from(&policy)))
}

/// The security settings (system administrators).
#[utoipa::path(
    get, path = "/api/admin/securitySettings", tag = TAG, operation_id = "getSecuritySettings",
    security(("xAuthorization" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The security settings", body = SecuritySettingsWire),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a system administrator (20)", body = ErrorBody),
    )
)]
pub async fn security_settings(
    State(state): State<AppState>,
    caller: TbCaller,
) -> TbResult<Json<SecuritySettingsWire>> {
    caller.require(&[Authority::SysAdmin])?;
    let settings = state.core.security_settings().await?;
    Ok(Json(SecuritySettingsWire::from(&settings)))
}

/// Save the security settings (system administrators); answers what was saved.
#[utoipa::path(
    post, path = "/api/admin/securitySettings", tag = TAG, operation_id = "saveSecuritySettings",
    security(("xAuthorization" = []), ("bearer" = [])),
    request_body = SecuritySettingsWire,
    responses(
        (status = 200, description = "The saved settings", body = SecuritySettingsWire),
        (status = 400, description = "Out of range (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a system administrator (20)", body = ErrorBody),
    )
)]
pub async fn save_security_settings(
    State(state): State<AppState>,
    caller: TbCaller,
    TbBody(body): TbBody,
) -> TbResult<Json<SecuritySettingsWire>> {
    caller.require(&[Authority::SysAdmin])?;
    let request: SecuritySettingsWire = json_object(&body)?;
    let saved = state
        .core
        .save_security_settings(request.to_core()?)
        .await?;
    Ok(Json(SecuritySettingsWire::from(&saved)))
}

//! Multi-factor authentication (C41–C45): TOTP enrolment with backup codes, the second step of
//! a login, and the caller's own MFA management. The factors are the core's, shared with the
//! ThingsBoard dialect's 2FA.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::caller::Account;
use super::error::ApiError;
use super::extract::Body;
use super::schema::{
    BadRequest, Conflict, InternalError, PayloadTooLarge, ServiceUnavailable, TooManyRequests,
    Unauthorized, UnsupportedMediaType,
};
use super::session::LoginOut;
use crate::AppState;

/// Answer of C41.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MfaEnableResponse)]
pub struct EnableOut {
    /// The `otpauth://totp/…` URI with the new secret, for authenticator apps.
    #[schema(
        example = "otpauth://totp/Gatehouse:device001?issuer=Gatehouse&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&algorithm=SHA1&digits=6&period=30"
    )]
    uri: String,
    /// The same URI as a QR code: an SVG image in a `data:image/svg+xml;base64,…` URI, ready
    /// for an `<img src>`.
    #[serde(rename = "qrCode")]
    qr_code: String,
}

/// Body of C42.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = MfaValidateRequest)]
pub struct ValidateIn {
    /// A current code of the authenticator app.
    #[schema(example = "123456", max_length = 64)]
    otp: String,
}

/// Answer of C42 and C45.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MfaBackupCodes)]
pub struct BackupCodesOut {
    /// Single-use backup codes, shown only now (8 hex characters each).
    #[serde(rename = "backupCodes")]
    backup_codes: Vec<String>,
}

/// Body of C43.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = MfaLoginRequest)]
pub struct MfaLoginIn {
    /// The login name given to `POST /api/login`.
    username: String,
    /// A code of the authenticator app (or of the mailed or texted factor); or give `backupCode`.
    #[serde(default)]
    #[schema(max_length = 64)]
    otp: Option<String>,
    /// A backup code, instead of `otp`.
    #[serde(rename = "backupCode", default)]
    #[schema(max_length = 64)]
    backup_code: Option<String>,
    /// The `secret` answered by `POST /api/login`.
    secret: String,
}

/// Body of C44 and C45: proof of a factor.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = MfaProof)]
pub struct ProofIn {
    /// A code of the authenticator app; or give `backupCode`.
    #[serde(default)]
    #[schema(max_length = 64)]
    otp: Option<String>,
    /// A backup code, instead of `otp`.
    #[serde(rename = "backupCode", default)]
    #[schema(max_length = 64)]
    backup_code: Option<String>,
}

/// C41 `POST /api/mfa/enable`.
#[utoipa::path(
    post,
    path = "/api/mfa/enable",
    operation_id = "mfaEnable",
    tag = "connectware",
    summary = "Start TOTP enrolment (C41)",
    description = "Creates a new TOTP secret for the caller (replacing an unfinished enrolment) and answers its otpauth URI and a QR code of it. Enrolment completes with `POST /api/mfa/validate`.",
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 200, description = "The otpauth URI", body = EnableOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn enable(
    State(state): State<AppState>,
    Account(caller): Account,
) -> Result<Json<EnableOut>, ApiError> {
    let start = state.core.start_totp_enrolment(&caller.user).await?;
    Ok(Json(EnableOut {
        uri: start.uri,
        qr_code: start.qr_code,
    }))
}

/// C42 `POST /api/mfa/validate`.
#[utoipa::path(
    post,
    path = "/api/mfa/validate",
    operation_id = "mfaValidate",
    tag = "connectware",
    summary = "Confirm TOTP enrolment (C42)",
    description = "Checks a code of the secret from `POST /api/mfa/enable`, enrols it, and answers new backup codes. A token that was limited to enrolment becomes a full one.",
    security(("bearer" = []), ("apiToken" = [])),
    request_body(content = ValidateIn, content_type = "application/json"),
    responses(
        (status = 200, description = "Enrolled", body = BackupCodesOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn validate(
    State(state): State<AppState>,
    Account(caller): Account,
    Body(body): Body<ValidateIn>,
) -> Result<Json<BackupCodesOut>, ApiError> {
    let backup_codes = state
        .core
        .confirm_totp_enrolment(&caller, &body.otp)
        .await?;
    Ok(Json(BackupCodesOut { backup_codes }))
}

/// C43 `POST /api/mfa/login`.
#[utoipa::path(
    post,
    path = "/api/mfa/login",
    operation_id = "mfaLogin",
    tag = "connectware",
    summary = "Complete a login with a second factor (C43)",
    description = "Takes the `secret` of `POST /api/login` with a code (`otp`) or a backup code, and answers the token the login asked for. No token is needed.",
    request_body(content = MfaLoginIn, content_type = "application/json"),
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
    Body(body): Body<MfaLoginIn>,
) -> Result<Json<LoginOut>, ApiError> {
    let outcome = state
        .core
        .login_second_factor(
            &body.username,
            body.secret.trim(),
            body.otp.as_deref(),
            body.backup_code.as_deref(),
        )
        .await?;
    Ok(Json(LoginOut::token(outcome, false)))
}

/// C44 `POST /api/mfa/disable`.
#[utoipa::path(
    post,
    path = "/api/mfa/disable",
    operation_id = "mfaDisable",
    tag = "connectware",
    summary = "Turn the caller's MFA off (C44)",
    description = "With a valid code or backup code, removes every factor of the caller (TOTP, mailed and texted codes, backup codes).",
    security(("bearer" = []), ("apiToken" = [])),
    request_body(content = ProofIn, content_type = "application/json"),
    responses(
        (status = 200, description = "MFA is off (empty body)"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn disable(
    State(state): State<AppState>,
    Account(caller): Account,
    Body(body): Body<ProofIn>,
) -> Result<StatusCode, ApiError> {
    state
        .core
        .disable_own_mfa(
            &caller.user,
            body.otp.as_deref(),
            body.backup_code.as_deref(),
        )
        .await?;
    Ok(StatusCode::OK)
}

/// C45 `POST /api/mfa/regenerate/backupcodes`.
#[utoipa::path(
    post,
    path = "/api/mfa/regenerate/backupcodes",
    operation_id = "mfaRegenerateBackupCodes",
    tag = "connectware",
    summary = "New backup codes (C45)",
    description = "With a valid code or backup code, replaces the caller's backup codes by new ones.",
    security(("bearer" = []), ("apiToken" = [])),
    request_body(content = ProofIn, content_type = "application/json"),
    responses(
        (status = 200, description = "The new codes", body = BackupCodesOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn regenerate_backup_codes(
    State(state): State<AppState>,
    Account(caller): Account,
    Body(body): Body<ProofIn>,
) -> Result<Json<BackupCodesOut>, ApiError> {
    let backup_codes = state
        .core
        .regenerate_backup_codes(
            &caller.user,
            body.otp.as_deref(),
            body.backup_code.as_deref(),
        )
        .await?;
    Ok(Json(BackupCodesOut { backup_codes }))
}

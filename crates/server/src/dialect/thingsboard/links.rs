//! Activation and password reset by mailed link (T7–T11).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_core::accounts::LinkState;
use gatehouse_core::model::TokenPurpose;
use gatehouse_core::{CoreError, Rejection};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::new_password;
use super::error::{ErrorBody, TbError, TbResult};
use super::extract::{json_object, TbBody, TbQuery};
use super::wire::JwtPairOut;
use super::TAG;
use crate::client::ClientAddress;
use crate::AppState;

/// Query of T7.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivateTokenQuery {
    /// The token from the activation link.
    #[serde(rename = "activateToken")]
    activate_token: String,
}

/// Query of T9.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResetTokenQuery {
    /// The token from the reset link.
    #[serde(rename = "resetToken")]
    reset_token: String,
}

/// Query of T8.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivateQuery {
    /// Mail the user that the account is active (default true).
    #[serde(rename = "sendActivationMail", default)]
    send_activation_mail: Option<bool>,
}

/// Body of T8.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ActivateUserRequest)]
pub struct ActivateIn {
    /// The token from the activation link.
    #[serde(rename = "activateToken")]
    activate_token: String,
    /// The password to set.
    password: String,
}

/// Body of T10.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ResetPasswordRequest)]
pub struct ResetIn {
    /// The token from the reset link.
    #[serde(rename = "resetToken")]
    reset_token: String,
    /// The new password.
    password: String,
}

/// Body of T11.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ResetPasswordEmailRequest)]
pub struct ResetByEmailIn {
    /// The account's email.
    #[serde(default)]
    email: Option<String>,
}

/// The answer of a link check: 303 to the page that uses the token, 303 to the expiry page,
/// 409 with an empty body for an unknown token, 429 with an empty body when rate limited.
/// Pages are under `base`: empty for the web UI, `<scheme>://auth` for a mobile application.
pub(super) async fn check(
    state: &AppState,
    token: &str,
    purpose: TokenPurpose,
    base: &str,
) -> Response {
    let (page, expired_page, parameter) = match purpose {
        TokenPurpose::Activation => (
            "/login/createPassword",
            "/activationLinkExpired",
            "activateToken",
        ),
        TokenPurpose::PasswordReset => (
            "/login/resetPassword",
            "/passwordResetLinkExpired",
            "resetToken",
        ),
        TokenPurpose::EmailVerification => (
            "/signup/emailVerified",
            "/signup/emailVerificationExpired",
            "emailCode",
        ),
    };
    match state.core.check_link(token, purpose).await {
        // Only an issued token is valid, and issued tokens are base64url: safe in a URL as is.
        Ok(LinkState::Valid) => see_other(&format!("{base}{page}?{parameter}={token}")),
        Ok(LinkState::Expired) => see_other(&format!("{base}{expired_page}")),
        Err(CoreError::Rejected(_)) => StatusCode::CONFLICT.into_response(),
        Err(CoreError::RateLimited { .. }) => StatusCode::TOO_MANY_REQUESTS.into_response(),
        Err(error) => TbError::from(error).into_response(),
    }
}

fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response()
}

/// T7: check an activation link; redirects to the page that sets the password.
#[utoipa::path(
    get, path = "/api/noauth/activate", tag = TAG, operation_id = "checkActivateToken",
    params(ActivateTokenQuery),
    responses(
        (status = 303, description = "To `/login/createPassword?activateToken=…`, or to `/activationLinkExpired`"),
        (status = 400, description = "No token given (31)", body = ErrorBody),
        (status = 409, description = "Unknown token (empty body)"),
    )
)]
pub async fn check_activate_token(
    State(state): State<AppState>,
    TbQuery(query): TbQuery<ActivateTokenQuery>,
) -> Response {
    check(&state, &query.activate_token, TokenPurpose::Activation, "").await
}

/// T8: activate an account with the token from its link and a first password; answers a
/// token pair.
#[utoipa::path(
    post, path = "/api/noauth/activate", tag = TAG, operation_id = "activateUser",
    params(ActivateQuery),
    request_body = ActivateIn,
    responses(
        (status = 200, description = "A token pair", body = JwtPairOut),
        (status = 400, description = "Unknown or expired token, or a policy violation (31)", body = ErrorBody),
    )
)]
pub async fn activate(
    State(state): State<AppState>,
    TbQuery(query): TbQuery<ActivateQuery>,
    TbBody(body): TbBody,
) -> TbResult<Json<JwtPairOut>> {
    let request: ActivateIn = json_object(&body)?;
    let password = new_password(&request.password)?;
    let user = state
        .core
        .complete_link(&request.activate_token, TokenPurpose::Activation, &password)
        .await
        .map_err(|error| {
            let unknown = matches!(
                error,
                CoreError::Rejected(Rejection::ActivationTokenUnknown)
            );
            TbError::from(error).with_message_if(
                unknown,
                format!(
                    "Unable to find user credentials by activateToken [{}]",
                    request.activate_token
                ),
            )
        })?;
    if query.send_activation_mail.unwrap_or(true) {
        let core = state.core.clone();
        let activated = user.clone();
        tokio::spawn(async move { core.send_activated_mail(&activated).await });
    }
    // A user who must use 2FA gets an MFA_CONFIGURATION_TOKEN, as after a login.
    let login = state.core.pair_or_mfa(&user).await?;
    Ok(Json(login.into()))
}

/// T9: check a password-reset link; redirects to the page that sets the password.
#[utoipa::path(
    get, path = "/api/noauth/resetPassword", tag = TAG, operation_id = "checkResetToken",
    params(ResetTokenQuery),
    responses(
        (status = 303, description = "To `/login/resetPassword?resetToken=…`, or to `/passwordResetLinkExpired`"),
        (status = 400, description = "No token given (31)", body = ErrorBody),
        (status = 409, description = "Unknown token (empty body)"),
        (status = 429, description = "Too many checks for this user (empty body)"),
    )
)]
pub async fn check_reset_token(
    State(state): State<AppState>,
    TbQuery(query): TbQuery<ResetTokenQuery>,
) -> Response {
    check(&state, &query.reset_token, TokenPurpose::PasswordReset, "").await
}

/// T10: set a new password with the token from a reset link. Every older token of the user
/// stops working.
#[utoipa::path(
    post, path = "/api/noauth/resetPassword", tag = TAG, operation_id = "resetPassword",
    request_body = ResetIn,
    responses(
        (status = 200, description = "Password set (empty body)"),
        (status = 400, description = "Unknown or expired token, or a policy violation (31)", body = ErrorBody),
    )
)]
pub async fn reset_password(State(state): State<AppState>, TbBody(body): TbBody) -> TbResult<()> {
    let request: ResetIn = json_object(&body)?;
    let password = new_password(&request.password)?;
    state
        .core
        .complete_link(&request.reset_token, TokenPurpose::PasswordReset, &password)
        .await?;
    Ok(())
}

/// T11: mail a reset link to an account's email. Always 200, whether or not the address
/// belongs to anyone.
#[utoipa::path(
    post, path = "/api/noauth/resetPasswordByEmail", tag = TAG, operation_id = "requestResetPasswordByEmail",
    request_body = ResetByEmailIn,
    responses(
        (status = 200, description = "Accepted (empty body)"),
        (status = 400, description = "The body is not a JSON object (31)", body = ErrorBody),
        (status = 429, description = "Too many requests from this address (33)", body = ErrorBody),
    )
)]
pub async fn reset_password_by_email(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    TbBody(body): TbBody,
) -> TbResult<()> {
    let request: ResetByEmailIn = json_object(&body)?;
    if let Some(email) = request.email {
        state.core.request_password_reset(email, client)?;
    }
    Ok(())
}

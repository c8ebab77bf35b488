//! Microsoft Entra ID login (C46–C47): the browser side of the core's OpenID Connect relying
//! party. The login redirects to Entra (or the configured issuer); the callback opens a
//! Connectware session and sends the browser to the admin UI with it as `apiToken` (the way
//! Connectware's UI takes a token, `/admin?apiToken=<JWT>`), or with `error` when it failed.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use gatehouse_core::{AuthFailure, CoreError};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{not_enabled, ApiError};
use super::extract::Query;
use super::schema::{BadRequest, InternalError, NotFound, ServiceUnavailable};
use crate::client::RequestOrigin;
use crate::federation::{binding_cookie, redirect, with_query};
use crate::AppState;

/// A message for the user about a failed login: what the core says for federation failures,
/// a generic text for the rest (the details are in the log).
fn failure_message(error: &CoreError) -> String {
    match error {
        CoreError::Unauthenticated(AuthFailure::Federation { reason }) => reason.clone(),
        CoreError::Unauthenticated(AuthFailure::NotActive) => {
            "the account is not active".to_owned()
        }
        CoreError::Unavailable { .. } => "the identity provider cannot be reached".to_owned(),
        other => {
            tracing::warn!(error = %other, "Entra ID login failed");
            "the login failed".to_owned()
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/msEntraId/login",
    operation_id = "msEntraIdLogin",
    tag = "connectware",
    summary = "Log in with Microsoft Entra ID (C46)",
    description = "Redirects the browser to Entra ID (authorization code flow with PKCE and a nonce) and sets a short-lived HttpOnly cookie that binds the login to this browser. A `Referer` on the admin UI's origin is where the browser returns after the login (and where it is sent with `error` if the redirect cannot be built).",
    params(("Referer" = Option<String>, Header, description = "Where to return after the login (only on the admin UI's origin).")),
    responses(
        (status = 302, description = "Redirect to the identity provider"),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    origin: Option<RequestOrigin>,
    headers: HeaderMap,
) -> Response {
    if !state.core.entra_enabled() {
        return not_enabled();
    }
    let secure = origin.as_ref().is_some_and(RequestOrigin::is_https);
    let referer = headers
        .get(header::REFERER)
        .and_then(|value| value.to_str().ok());
    match state.core.entra_login_start(referer).await {
        Ok(start) => redirect(&start.location, Some(&start.binding), secure),
        Err(error) => {
            // The seed: a Referer is where the browser goes when the URL cannot be built.
            match state.core.entra_ui_url().filter(|_| referer.is_some()) {
                Some(ui) => redirect(
                    &with_query(ui, &[("error", &failure_message(&error))]),
                    None,
                    secure,
                ),
                None => ApiError(error).into_response(),
            }
        }
    }
}

/// The callback's query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The `state` of the login.
    state: Option<String>,
    /// An error the provider reports instead of a code.
    error: Option<String>,
    /// The provider's description of `error`.
    error_description: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/msEntraId/redirect",
    operation_id = "msEntraIdRedirect",
    tag = "connectware",
    summary = "Entra ID callback (C47)",
    description = "Completes the login: the state must be the one this browser started (once, within 180 s), the code is exchanged, the ID token validated against the provider's keys. The user is created at its first login (identity provider `entra`) and its roles are re-synced from its groups (`msEntraIdGroupIds` of roles) on every login. Redirects to the admin UI with `apiToken=<token>`, or with `error=<message>`.",
    params(CallbackQuery),
    responses(
        (status = 302, description = "Redirect to the admin UI"),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = InternalError),
    )
)]
pub async fn callback(
    State(state): State<AppState>,
    origin: Option<RequestOrigin>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let Some(ui) = state.core.entra_ui_url() else {
        return not_enabled();
    };
    let secure = origin.as_ref().is_some_and(RequestOrigin::is_https);
    if let Some(error) = &query.error {
        let message = query.error_description.as_deref().unwrap_or(error);
        return redirect(&with_query(ui, &[("error", message)]), None, secure);
    }
    let (Some(code), Some(login_state)) = (&query.code, &query.state) else {
        return ApiError(CoreError::invalid("code", "code and state are required")).into_response();
    };
    let binding = binding_cookie(&headers);
    match state
        .core
        .entra_login_finish(login_state, code, binding.as_deref())
        .await
    {
        Ok((outcome, return_to)) => {
            let place = return_to.unwrap_or_else(|| ui.to_owned());
            redirect(
                &with_query(&place, &[("apiToken", &outcome.token)]),
                None,
                secure,
            )
        }
        Err(error) => redirect(
            &with_query(ui, &[("error", &failure_message(&error))]),
            None,
            secure,
        ),
    }
}

//! The browser side of ThingsBoard's OAuth2 login (T54): `GET /oauth2/authorization/{clientId}`
//! redirects to the client's provider; the provider sends the browser back to the
//! login-processing URL (`/login/oauth2/code/`), which ends at
//! `<base>[prevUri]?accessToken=…&refreshToken=…`, or at `<base>/login?loginError=…`.
//! `<base>` is the origin the browser addressed (see [`RequestOrigin`]).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use gatehouse_core::oauth2::LOGIN_PROCESSING_URL;
use gatehouse_core::{AuthFailure, CoreError};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::error::TbError;
use super::extract::{TbPath, TbQuery};
use super::TAG;
use crate::client::RequestOrigin;
use crate::federation::{binding_cookie, redirect, with_query};
use crate::AppState;

/// The client of `/oauth2/authorization/{clientId}`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ClientPath {
    /// The OAuth2 client's id.
    #[serde(rename = "clientId")]
    client_id: Uuid,
}

/// Optional parameters of the start.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// A path on this server to return to after the login.
    #[serde(rename = "prevUri")]
    prev_uri: Option<String>,
}

/// The user-facing text of a failed login.
fn failure_message(error: &CoreError) -> String {
    match error {
        CoreError::Unauthenticated(AuthFailure::Federation { reason }) => reason.clone(),
        CoreError::Unauthenticated(AuthFailure::NotActive) => "User is not active".to_owned(),
        CoreError::NotFound { .. } => "OAuth2 client not found".to_owned(),
        CoreError::Unavailable { .. } => "The identity provider cannot be reached".to_owned(),
        other => {
            tracing::warn!(error = %other, "OAuth2 login failed");
            "Login failed".to_owned()
        }
    }
}

/// A path on this server: starts with one `/` (not `//`, which browsers read as another host)
/// and holds no backslash or control character.
fn local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
}

fn failure_redirect(base: &str, error: &CoreError, secure: bool) -> Response {
    redirect(
        &with_query(
            &format!("{base}/login"),
            &[("loginError", &failure_message(error))],
        ),
        None,
        secure,
    )
}

fn no_origin() -> Response {
    TbError::bad_request("The request names no usable Host").into_response()
}

#[utoipa::path(
    get, path = "/oauth2/authorization/{clientId}", tag = TAG,
    operation_id = "oauth2Authorization",
    summary = "Start an OAuth2 login (T54)",
    description = "Redirects to the OAuth2 client's provider (authorization code flow; PKCE S256 always, a nonce with `openid`), with `redirect_uri=<scheme>://<host>[:port]/login/oauth2/code/`. A short-lived HttpOnly cookie binds the login to this browser. Unknown clients end at `/login?loginError=…`.",
    params(ClientPath, StartQuery),
    responses(
        (status = 302, description = "Redirect to the provider, or to `/login?loginError=…`"),
        (status = 400, description = "Malformed client id or no usable Host", body = super::error::ErrorBody),
    )
)]
pub async fn authorize(
    State(state): State<AppState>,
    origin: Option<RequestOrigin>,
    TbPath(ClientPath { client_id }): TbPath<ClientPath>,
    TbQuery(query): TbQuery<StartQuery>,
) -> Response {
    let Some(origin) = origin else {
        return no_origin();
    };
    let base = origin.base_url();
    let secure = origin.is_https();
    let prev_uri = query.prev_uri.filter(|path| local_path(path));
    match state
        .core
        .oauth2_login_start(client_id, format!("{base}{LOGIN_PROCESSING_URL}"), prev_uri)
        .await
    {
        Ok(start) => redirect(&start.location, Some(&start.binding), secure),
        Err(error) => failure_redirect(&base, &error, secure),
    }
}

/// The provider's answer at the login-processing URL.
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
    get, path = "/login/oauth2/code/", tag = TAG,
    operation_id = "oauth2LoginProcessing",
    summary = "OAuth2 callback (T54)",
    description = "Completes the login started by this browser (once, within 180 s): exchanges the code, validates the ID token against the client's JWKS when `openid` is asked for, reads userinfo, maps the user with the client's mapper (found by email, or created when `allowUserCreation`). No second factor, as in ThingsBoard. Redirects to `<base>[prevUri]?accessToken=…&refreshToken=…`, or to `<base>/login?loginError=…`.",
    params(CallbackQuery),
    responses(
        (status = 302, description = "Redirect with the token pair or `loginError`"),
        (status = 400, description = "No usable Host", body = super::error::ErrorBody),
    )
)]
pub async fn callback(
    State(state): State<AppState>,
    origin: Option<RequestOrigin>,
    headers: HeaderMap,
    TbQuery(query): TbQuery<CallbackQuery>,
) -> Response {
    let Some(origin) = origin else {
        return no_origin();
    };
    let base = origin.base_url();
    let secure = origin.is_https();
    if let Some(error) = &query.error {
        let message = query.error_description.as_deref().unwrap_or(error);
        return failure_redirect(
            &base,
            &gatehouse_core::federation::federation_failure(message),
            secure,
        );
    }
    let (Some(code), Some(login_state)) = (&query.code, &query.state) else {
        return failure_redirect(
            &base,
            &gatehouse_core::federation::federation_failure("code and state are required"),
            secure,
        );
    };
    let binding = binding_cookie(&headers);
    match state
        .core
        .oauth2_login_finish(login_state, code, binding.as_deref())
        .await
    {
        Ok(login) => {
            let place = format!("{base}{}", login.return_to.as_deref().unwrap_or("/"));
            redirect(
                &with_query(
                    &place,
                    &[
                        ("accessToken", &login.pair.token),
                        ("refreshToken", &login.pair.refresh_token),
                    ],
                ),
                None,
                secure,
            )
        }
        Err(error) => failure_redirect(&base, &error, secure),
    }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_return_places() {
        assert!(local_path("/dashboards/1?x=2"));
        for hostile in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "dash",
            "/a\nb",
            "",
        ] {
            assert!(!local_path(hostile), "{hostile:?}");
        }
    }
}

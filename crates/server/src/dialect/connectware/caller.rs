//! The authenticated caller of a Connectware endpoint. Extracting it authenticates the token
//! (`Authorization: Bearer …` or `?apiToken=…`) and authorizes the request by the caller's
//! `http` permissions against the request's method and path. Without a token, a client
//! certificate verified by the HTTPS listener authenticates its user (see
//! `Gatehouse::authenticate_certificate`).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use gatehouse_core::auth::Principal;
use gatehouse_core::{AuthFailure, CoreError};

use super::error::ApiError;
use crate::client::ClientCertificate;
use crate::AppState;

/// An authenticated and authorized caller.
pub struct Caller(pub Principal);

const MISSING: CoreError = CoreError::Unauthenticated(AuthFailure::MissingCredentials);

/// The token of a request: `Authorization: Bearer <token>` or a bare `Authorization: <token>`
/// (the seed's `Authorization: YOUR_API_KEY` form) wins over `?apiToken=<token>`; an
/// `Authorization` header of another scheme (e.g. Basic) is not a token and is ignored here.
fn token_of(parts: &Parts) -> Option<String> {
    let from_header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .and_then(|text| match text.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
            Some(_) => None,
            None => Some(text),
        });
    if let Some(token) = from_header {
        return Some(token.to_owned());
    }
    parts.uri.query()?;
    let axum_extra::extract::Query(pairs) =
        axum_extra::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).ok()?;
    pairs
        .into_iter()
        .find(|(key, _)| key == "apiToken")
        .map(|(_, value)| value)
}

/// Authenticates the request's token. `allow_enrolment` also accepts the token of a user who
/// must enrol MFA before anything else.
async fn authenticate(
    parts: &Parts,
    state: &AppState,
    allow_enrolment: bool,
) -> Result<Principal, Response> {
    let token = token_of(parts).filter(|token| !token.is_empty());
    let principal = match token {
        Some(token) if allow_enrolment => state.core.authenticate_enrolling(&token).await,
        Some(token) => state.core.authenticate(&token).await,
        // On the HTTPS listener a verified client certificate authenticates on its own.
        None => match ClientCertificate::of(parts) {
            Some(ClientCertificate(der)) => state.core.authenticate_certificate(&der).await,
            None => Err(MISSING),
        },
    };
    let principal = principal.map_err(|error| ApiError(error).into_response())?;
    if principal.privacy_policy_pending {
        // A signed-up account first accepts the privacy policy (ThingsBoard's T19), whatever
        // it authenticated with.
        return Err(ApiError(CoreError::Forbidden {
            reason: gatehouse_core::signup::PRIVACY_POLICY_PENDING.to_owned(),
        })
        .into_response());
    }
    Ok(principal)
}

/// Refuses the request unless the caller's `http` permissions allow its method and path.
fn authorize(parts: &Parts, principal: &Principal) -> Result<(), ApiError> {
    if principal
        .permission_set
        .allows_http(parts.method.as_str(), parts.uri.path())
    {
        return Ok(());
    }
    let reason = format!(
        "missing http permission: {} on {}",
        if matches!(parts.method.as_str(), "GET" | "HEAD" | "OPTIONS") {
            "read"
        } else {
            "write"
        },
        parts.uri.path()
    );
    Err(ApiError(CoreError::Forbidden { reason }))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = authenticate(parts, state, false).await?;
        authorize(parts, &principal).map_err(IntoResponse::into_response)?;
        Ok(Caller(principal))
    }
}

/// A caller of `GET /api/session`: authorized like [`Caller`], but a user who must enrol MFA
/// first may call it too, so that a UI can see that enrolment is due.
pub struct SessionCaller(pub Principal);

impl FromRequestParts<AppState> for SessionCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = authenticate(parts, state, true).await?;
        authorize(parts, &principal).map_err(IntoResponse::into_response)?;
        Ok(SessionCaller(principal))
    }
}

/// The caller of an MFA self-service endpoint (`/api/mfa/*`): authenticated only. These
/// endpoints act on the caller's own factors (removing or renewing them needs a valid code), so
/// they need no `http` permission; a user who must enrol MFA first may call them.
pub struct Account(pub Principal);

impl FromRequestParts<AppState> for Account {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Account(authenticate(parts, state, true).await?))
    }
}

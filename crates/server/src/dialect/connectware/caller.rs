//! The authenticated caller of a Connectware endpoint. Extracting it authenticates the token
//! (`Authorization: Bearer …` or `?apiToken=…`) and authorizes the request by the caller's
//! `http` permissions against the request's method and path.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use gatehouse_core::auth::Principal;
use gatehouse_core::CoreError;

use super::error::ApiError;
use crate::AppState;

/// An authenticated and authorized caller.
pub struct Caller(pub Principal);

const MISSING: CoreError = CoreError::Unauthenticated {
    reason: "a token is required (Authorization: Bearer or ?apiToken=)",
};

/// The token of a request: the `Authorization: Bearer` header wins over `?apiToken=`.
fn token_of(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    parts.uri.query()?;
    let axum_extra::extract::Query(pairs) =
        axum_extra::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).ok()?;
    pairs
        .into_iter()
        .find(|(key, _)| key == "apiToken")
        .map(|(_, value)| value)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = token_of(parts)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError(MISSING).into_response())?;
        let principal = state
            .core
            .authenticate(&token)
            .await
            .map_err(|error| ApiError(error).into_response())?;
        if !principal
            .permission_set
            .allows_http(parts.method.as_str(), parts.uri.path())
        {
            let reason = format!(
                "missing http permission: {} on {}",
                if matches!(parts.method.as_str(), "GET" | "HEAD" | "OPTIONS") {
                    "read"
                } else {
                    "write"
                },
                parts.uri.path()
            );
            return Err(ApiError(CoreError::Forbidden { reason }).into_response());
        }
        Ok(Caller(principal))
    }
}

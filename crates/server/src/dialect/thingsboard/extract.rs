//! Request parts of this dialect with rejections in its error shape: JSON bodies, query
//! strings, path ids, and the authenticated caller.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use gatehouse_core::auth::Principal;
use gatehouse_core::mfa::{MfaChallenge, MfaScope};
use gatehouse_core::model::{Authority, User};
use gatehouse_core::{AuthFailure, CoreError};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{TbError, TbResult};
use crate::AppState;

/// Parses a JSON object body (other JSON values are refused even where serde would accept
/// them). Handlers take the raw bytes so that every failure has this dialect's shape.
pub fn json_object<T: DeserializeOwned>(body: &[u8]) -> TbResult<T> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| TbError::bad_request(format!("Invalid request body: {error}")))?;
    if !value.is_object() {
        return Err(TbError::bad_request(
            "Invalid request body: expected a JSON object",
        ));
    }
    serde_json::from_value(value)
        .map_err(|error| TbError::bad_request(format!("Invalid request body: {error}")))
}

/// A request body as bytes, within the configured size limit; a larger one is 413 in this
/// dialect's shape.
pub struct TbBody(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for TbBody {
    type Rejection = TbError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(TbBody)
            .map_err(|rejection| {
                TbError::new(
                    rejection.status(),
                    super::error::ErrorCode::BadRequestParams,
                    rejection.body_text(),
                )
            })
    }
}

/// A query string parsed into `T`; bad values are 400 code 31.
pub struct TbQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for TbQuery<T> {
    type Rejection = TbError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum_extra::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum_extra::extract::Query(value)| TbQuery(value))
            .map_err(|error| TbError::bad_request(format!("Invalid request parameters: {error}")))
    }
}

/// Path parameters parsed into `T` (ids are UUIDs); bad values are 400 code 31.
pub struct TbPath<T>(pub T);

impl<T, S> FromRequestParts<S> for TbPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = TbError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| TbPath(value))
            .map_err(|rejection| {
                TbError::bad_request(format!("Invalid path: {}", rejection.body_text()))
            })
    }
}

/// The credential of a request: `X-Authorization` when the header is present (a blank one is
/// no credential, never a reason to read another header), else `Authorization`.
fn credential(headers: &HeaderMap) -> Option<&str> {
    let header = headers
        .get("x-authorization")
        .or_else(|| headers.get(axum::http::header::AUTHORIZATION))?;
    header
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// An authenticated caller of this dialect: a bearer token (a ThingsBoard pair's access token
/// or a Connectware token) or an API key.
pub struct TbCaller(pub Principal);

impl TbCaller {
    /// The caller's authority.
    pub fn authority(&self) -> Authority {
        self.0.user.tenancy.authority
    }

    /// Refuses callers whose authority is not among `allowed` (403 code 20).
    pub fn require(&self, allowed: &[Authority]) -> TbResult<()> {
        if allowed.contains(&self.authority()) {
            Ok(())
        } else {
            Err(TbError::forbidden())
        }
    }
}

/// 401 "Authentication failed": no usable credential.
fn missing_credentials() -> TbError {
    CoreError::unauthenticated(AuthFailure::MissingCredentials).into()
}

/// The credential a request presents, by scheme.
enum Credential<'a> {
    /// `Bearer <JWT>`.
    Bearer(&'a str),
    /// `ApiKey tb_…`.
    ApiKey(&'a str),
}

/// The request's credential; any other scheme, or none, is 401 "Authentication failed".
fn credential_of(parts: &Parts) -> TbResult<Credential<'_>> {
    let text = credential(&parts.headers).ok_or_else(missing_credentials)?;
    let (scheme, value) = text.split_once(' ').ok_or_else(missing_credentials)?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Credential::Bearer(value))
    } else if scheme.eq_ignore_ascii_case("apikey") {
        Ok(Credential::ApiKey(value))
    } else {
        Err(missing_credentials())
    }
}

impl FromRequestParts<AppState> for TbCaller {
    type Rejection = TbError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AccountCaller(principal) = AccountCaller::from_request_parts(parts, state).await?;
        if principal.privacy_policy_pending {
            return Err(TbError::new(
                axum::http::StatusCode::FORBIDDEN,
                super::error::ErrorCode::PermissionDenied,
                gatehouse_core::signup::PRIVACY_POLICY_PENDING,
            ));
        }
        Ok(TbCaller(principal))
    }
}

/// An authenticated caller like [`TbCaller`] that may not have accepted the privacy policy yet:
/// for the few endpoints such a signed-up account may call (its own user, logout, and the
/// `/api/signup/*` endpoints).
pub struct AccountCaller(pub Principal);

impl FromRequestParts<AppState> for AccountCaller {
    type Rejection = TbError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = match credential_of(parts)? {
            Credential::Bearer(token) => match state.core.authenticate(token).await {
                Ok(principal) => principal,
                // An MFA token is a valid token of the wrong kind here: 403, as ThingsBoard.
                Err(error) => match state.core.mfa_token_scope(token).await {
                    Some(_) => return Err(TbError::forbidden()),
                    None => return Err(error.into()),
                },
            },
            Credential::ApiKey(key) => state.core.authenticate_api_key(key).await?,
        };
        Ok(AccountCaller(principal))
    }
}

/// The bearer token of a request, or 401 "Authentication failed".
fn bearer_token(parts: &Parts) -> TbResult<&str> {
    match credential_of(parts)? {
        Credential::Bearer(token) => Ok(token),
        Credential::ApiKey(_) => Err(missing_credentials()),
    }
}

/// Loads the MFA challenge of the request's bearer token, which must be of `scope`: a full
/// token or an MFA token of the other scope is 403 (code 20), anything else 401.
async fn challenge_of(parts: &Parts, state: &AppState, scope: MfaScope) -> TbResult<MfaChallenge> {
    let token = bearer_token(parts)?;
    match state.core.mfa_challenge(token, scope).await {
        Ok(challenge) => Ok(challenge),
        Err(error) => {
            let other_kind = state.core.mfa_token_scope(token).await.is_some()
                || state.core.authenticate(token).await.is_ok();
            Err(if other_kind {
                TbError::forbidden()
            } else {
                error.into()
            })
        }
    }
}

/// The caller of the second step of a login: a `PRE_VERIFICATION_TOKEN`.
pub struct PreVerification(pub MfaChallenge);

impl FromRequestParts<AppState> for PreVerification {
    type Rejection = TbError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        challenge_of(parts, state, MfaScope::PreVerification)
            .await
            .map(PreVerification)
    }
}

/// The caller of `/api/auth/2fa/login`: an `MFA_CONFIGURATION_TOKEN`.
pub struct Configuration(pub MfaChallenge);

impl FromRequestParts<AppState> for Configuration {
    type Rejection = TbError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        challenge_of(parts, state, MfaScope::Configuration)
            .await
            .map(Configuration)
    }
}

/// The caller of the account 2FA endpoints that a user who must enrol may use too: a full
/// caller (token or API key) or an `MFA_CONFIGURATION_TOKEN`. Holds the user.
pub struct TwoFaAccount(pub User);

impl FromRequestParts<AppState> for TwoFaAccount {
    type Rejection = TbError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Ok(token) = bearer_token(parts) {
            if let Ok(challenge) = state
                .core
                .mfa_challenge(token, MfaScope::Configuration)
                .await
            {
                return Ok(TwoFaAccount(challenge.user));
            }
        }
        let TbCaller(principal) = TbCaller::from_request_parts(parts, state).await?;
        Ok(TwoFaAccount(principal.user))
    }
}

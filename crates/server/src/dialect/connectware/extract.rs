//! Extractors whose rejections are rendered in the dialect's error shape: malformed JSON,
//! wrong types, oversized bodies, malformed ids and query strings all become clear 4xx answers.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::QueryRejection;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::error_response;

/// A JSON body.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> Response {
    let status = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    error_response(status, rejection.body_text(), None)
}

/// Path parameters that must all be UUIDs.
pub struct Ids<T>(pub T);

impl<S> FromRequestParts<S> for Ids<Uuid>
where
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<Uuid>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| Ids(id))
            .map_err(path_rejection)
    }
}

impl<S> FromRequestParts<S> for Ids<(Uuid, Uuid)>
where
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<(Uuid, Uuid)>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(ids)| Ids(ids))
            .map_err(path_rejection)
    }
}

fn path_rejection(rejection: PathRejection) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        format!("ids in the path must be UUIDs ({})", rejection.body_text()),
        Some("id".to_owned()),
    )
}

/// A query string; repeated keys fill lists.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum_extra::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum_extra::extract::Query(value)| Query(value))
            .map_err(|rejection: QueryRejection| {
                error_response(StatusCode::BAD_REQUEST, rejection.body_text(), None).into_response()
            })
    }
}

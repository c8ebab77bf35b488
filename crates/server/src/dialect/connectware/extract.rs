//! Extractors whose rejections are rendered in the dialect's error shape: malformed JSON,
//! wrong types, oversized bodies, malformed ids and query strings all become clear 4xx answers.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::QueryRejection;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::error_response;

/// The request's media type (`Content-Type` without parameters), lower case; empty when absent.
pub fn media_type(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A JSON object body. Other JSON values are refused even where serde would accept them (it
/// reads an array into a struct field by field, so `["a", "b"]` could pass for an object).
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = json_value(request, state).await?;
        if !value.is_object() {
            return Err(bad_request("the body must be a JSON object".to_owned()));
        }
        serde_json::from_value(value)
            .map(Body)
            .map_err(|error| bad_request(error.to_string()))
    }
}

/// A body taken as bytes, for bodies that are not JSON objects (PEM text, an optional body);
/// a body over the size limit is refused in the dialect's shape.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                let status = match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                error_response(status, rejection.body_text(), None)
            })
    }
}

/// A JSON array body whose entries are all objects (e.g. a batch).
pub struct Bodies<T>(pub Vec<T>);

impl<S, T> FromRequest<S> for Bodies<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Value::Array(entries) = json_value(request, state).await? else {
            return Err(bad_request(
                "the body must be a JSON array of objects".to_owned(),
            ));
        };
        entries
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                if !entry.is_object() {
                    return Err(format!("[{index}]: must be a JSON object"));
                }
                serde_json::from_value(entry).map_err(|error| format!("[{index}]: {error}"))
            })
            .collect::<Result<Vec<T>, String>>()
            .map_err(bad_request)
            .map(Bodies)
    }
}

async fn json_value<S: Send + Sync>(request: Request, state: &S) -> Result<Value, Response> {
    axum::Json::<Value>::from_request(request, state)
        .await
        .map(|axum::Json(value)| value)
        .map_err(json_rejection)
}

fn bad_request(message: String) -> Response {
    error_response(StatusCode::BAD_REQUEST, message, None)
}

fn json_rejection(rejection: JsonRejection) -> Response {
    let status = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    error_response(status, rejection.body_text(), None)
}

/// Path parameters that must all be UUIDs (`Ids<Uuid>`, `Ids<(Uuid, Uuid)>`).
pub struct Ids<T>(pub T);

impl<S, T> FromRequestParts<S> for Ids<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
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

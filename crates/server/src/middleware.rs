//! Middleware shared by every dialect: request ids, request tracing that never records query
//! strings or headers (tokens travel in both), a body size limit, a timeout, and a guard that
//! turns a panic into a 500 instead of a dropped connection.

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::Router;
use tower::timeout::TimeoutLayer;
use tower::BoxError;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use tracing::Level;

use crate::HttpLimits;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps the routes in the shared middleware.
pub fn wrap(routes: Router, limits: HttpLimits) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request<Body>| {
            let request_id = request
                .headers()
                .get(&REQUEST_ID)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("-");
            // Only the path: the query may carry `apiToken`, headers carry credentials.
            tracing::info_span!(
                "request",
                id = %request_id,
                method = %request.method(),
                path = %request.uri().path(),
            )
        })
        .on_request(())
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(LatencyUnit::Millis),
        );
    routes.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(trace)
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(CatchPanicLayer::custom(
                crate::dialect::connectware::panic_response,
            ))
            .layer(HandleErrorLayer::new(|_: BoxError| async {
                crate::dialect::connectware::timeout_response()
            }))
            .layer(TimeoutLayer::new(limits.request_timeout))
            .layer(DefaultBodyLimit::max(limits.body_limit_bytes)),
    )
}

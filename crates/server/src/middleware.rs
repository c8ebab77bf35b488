//! Middleware shared by every dialect: request ids, request tracing that never records query
//! strings or headers (tokens travel in both), a body size limit, a timeout, a guard that turns
//! a panic into a 500 instead of a dropped connection, security headers on every response, and
//! CORS when origins are configured.

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Uri};
use axum::Router;
use tower::timeout::TimeoutLayer;
use tower::BoxError;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
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
    let routes = routes.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(trace)
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(axum::middleware::from_fn(panic_in_dialect_shape))
            .layer(CatchPanicLayer::custom(
                crate::dialect::connectware::panic_response,
            ))
            .layer(HandleErrorLayer::new(|uri: Uri, _: BoxError| async move {
                if crate::dialect::thingsboard::owns_path(uri.path()) {
                    crate::dialect::thingsboard::timeout_response()
                } else {
                    crate::dialect::connectware::timeout_response()
                }
            }))
            .layer(TimeoutLayer::new(limits.request_timeout))
            .layer(DefaultBodyLimit::max(limits.body_limit_bytes)),
    );
    let routes = security_headers(routes);
    match cors(&limits.cors_allowed_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    }
}

/// Marks the answer to a request whose handler panicked.
#[derive(Debug, Clone, Copy)]
pub struct Panicked;

/// Renders the 500 of a panicked handler in the shape of the dialect that owns the path (the
/// panic guard itself cannot see the request).
async fn panic_in_dialect_shape(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let thingsboard = crate::dialect::thingsboard::owns_path(request.uri().path());
    let response = next.run(request).await;
    if thingsboard && response.extensions().get::<Panicked>().is_some() {
        return crate::dialect::thingsboard::internal_error_response();
    }
    response
}

/// Headers that make browsers treat API answers as data only: no sniffing, no framing, no
/// referrer, no caching of answers that may hold tokens.
fn security_headers(routes: Router) -> Router {
    let headers: [(HeaderName, &'static str); 5] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (header::CACHE_CONTROL, "no-store"),
    ];
    headers.into_iter().fold(routes, |routes, (name, value)| {
        routes.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    })
}

/// CORS for the configured origins (`*` allows any origin, without credentials).
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-authorization"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

//! Middleware shared by every dialect: request ids, request tracing that never records query
//! strings or headers (tokens travel in both), a body size limit, a timeout, a guard that turns
//! a panic into a 500 instead of a dropped connection, security headers on every response, and
//! CORS when origins are configured.
//!
//! Uploads that are streamed to disk (database archives, see
//! [`crate::dialect::connectware::streams_upload`]) are the one exception to the body limit and
//! the timeout: they may be far larger than any JSON body and take far longer than any other
//! request. Their body is capped at [`HttpLimits::max_upload_bytes`] instead, and the timeout
//! bounds each wait for more of it; a handler finds the cause of a cut-off in the body's error
//! ([`UploadCutOff::of`]).

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderName, HeaderValue, Method, Request};
use axum::response::Response;
use axum::Router;
use futures_util::StreamExt as _;
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
            .layer(axum::middleware::from_fn_with_state(
                Deadlines {
                    request_timeout: limits.request_timeout,
                    max_upload_bytes: limits.max_upload_bytes,
                },
                deadline,
            ))
            .layer(DefaultBodyLimit::max(limits.body_limit_bytes)),
    );
    let routes = security_headers(routes);
    match cors(&limits.cors_allowed_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    }
}

/// The time and size limits [`deadline`] applies.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    request_timeout: Duration,
    max_upload_bytes: u64,
}

/// Answers a request that takes longer than the request timeout with 503 in the shape of the
/// dialect that owns the path. A streamed upload instead gets its body bounded by
/// [`bounded_upload`] (and no `DefaultBodyLimit` applies to it: its handler reads the body as a
/// stream, never through the size-limited extractors).
async fn deadline(
    State(limits): State<Deadlines>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if crate::dialect::connectware::streams_upload(request.method(), request.uri().path()) {
        let request = request.map(|body| bounded_upload(body, limits));
        return next.run(request).await;
    }
    let thingsboard = crate::dialect::thingsboard::owns_path(request.uri().path());
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) if thingsboard => crate::dialect::thingsboard::timeout_response(),
        Err(_) => crate::dialect::connectware::timeout_response(),
    }
}

/// Why a streamed upload was cut off: the error its body yields in place of more data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadCutOff {
    /// The body grew past `max_upload_bytes` (the limit, in bytes).
    TooLarge(u64),
    /// No data arrived for the request timeout (in seconds).
    Stalled(u64),
}

impl UploadCutOff {
    /// The cut-off behind `error` (an error read from an upload's body, possibly wrapped by a
    /// parser), if that is what it is.
    pub fn of(error: &(dyn StdError + 'static)) -> Option<Self> {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(cut_off) = error.downcast_ref::<Self>() {
                return Some(*cut_off);
            }
            current = error.source();
        }
        None
    }
}

impl fmt::Display for UploadCutOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(limit) => write!(f, "the upload is larger than {limit} bytes"),
            Self::Stalled(seconds) => write!(f, "no data arrived for {seconds} s"),
        }
    }
}

impl StdError for UploadCutOff {}

/// The body of a streamed upload, ending in an [`UploadCutOff`] error once it exceeds
/// `max_upload_bytes` or no data arrives for `request_timeout`.
fn bounded_upload(body: Body, limits: Deadlines) -> Body {
    struct Reading {
        data: axum::body::BodyDataStream,
        received: u64,
        done: bool,
    }
    let start = Reading {
        data: body.into_data_stream(),
        received: 0,
        done: false,
    };
    let stream = futures_util::stream::unfold(start, move |mut reading| async move {
        if reading.done {
            return None;
        }
        let next = tokio::time::timeout(limits.request_timeout, reading.data.next()).await;
        let item: Result<axum::body::Bytes, BoxError> = match next {
            Err(_) => Err(UploadCutOff::Stalled(limits.request_timeout.as_secs()).into()),
            Ok(None) => return None,
            Ok(Some(Err(error))) => Err(error.into()),
            Ok(Some(Ok(chunk))) => {
                reading.received = reading.received.saturating_add(chunk.len() as u64);
                if reading.received > limits.max_upload_bytes {
                    Err(UploadCutOff::TooLarge(limits.max_upload_bytes).into())
                } else {
                    Ok(chunk)
                }
            }
        };
        reading.done = item.is_err();
        Some((item, reading))
    });
    Body::from_stream(stream)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::Router;
    use tower::ServiceExt as _;

    use super::wrap;
    use crate::HttpLimits;

    /// A router whose every request takes `delay` and then echoes the length of its body (or
    /// the error that ended reading it).
    fn slow(delay: Duration) -> Router {
        Router::new().fallback(move |request: axum::extract::Request| async move {
            tokio::time::sleep(delay).await;
            match axum::body::to_bytes(request.into_body(), usize::MAX).await {
                Ok(bytes) => bytes.len().to_string(),
                Err(error) => format!("cut off: {error}"),
            }
        })
    }

    fn limits(timeout_ms: u64, max_upload_bytes: u64) -> HttpLimits {
        HttpLimits {
            body_limit_bytes: 16,
            request_timeout: Duration::from_millis(timeout_ms),
            cors_allowed_origins: Vec::new(),
            max_upload_bytes,
        }
    }

    async fn send(router: Router, method: &str, path: &str, body: Vec<u8>) -> (StatusCode, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body))
            .expect("request");
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn slow_requests_are_503_in_the_shape_of_their_dialect() {
        let router = wrap(slow(Duration::from_secs(5)), limits(50, 1000));
        let (status, body) = send(router.clone(), "GET", "/api/users", Vec::new()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("\"statusCode\":503"), "{body}");
        let (status, body) = send(router, "GET", "/api/auth/user", Vec::new()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("\"errorCode\""), "{body}");
    }

    #[tokio::test]
    async fn streamed_uploads_outlive_the_timeout_and_are_capped_instead() {
        let router = wrap(slow(Duration::from_millis(200)), limits(50, 1000));
        let restore = "/api/maintenance/db/restore";
        let (status, body) = send(router.clone(), "POST", restore, vec![0; 1000]).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "1000"));
        let (_, body) = send(router.clone(), "POST", restore, vec![0; 1001]).await;
        assert!(body.contains("larger than 1000 bytes"), "{body}");
        // Only that route: another one keeps the timeout.
        let (status, _) = send(router, "POST", "/api/users", Vec::new()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
}

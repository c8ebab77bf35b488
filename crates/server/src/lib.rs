//! Gatehouse's HTTP server: one axum router per wire dialect over the identity core, plus the
//! middleware every request passes (request id, tracing without secrets, body limit, timeout,
//! panic guard). Handlers parse the wire format into core types, call one core operation and
//! render the result or error in their dialect's shape; no rule lives here.

pub mod client;
pub mod dialect;
pub mod federation;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod openapi;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use gatehouse_core::Gatehouse;

/// What every handler can reach. Cheap to clone (one reference count): axum clones the state
/// for every extractor and middleware of every request, and the broker hooks are the hottest
/// path of the product.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    /// Shares `state` with every handler.
    pub fn new(state: SharedState) -> Self {
        Self(Arc::new(state))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The content of [`AppState`].
pub struct SharedState {
    /// The identity core.
    pub core: Gatehouse,
    /// Take the client address from `X-Forwarded-For` (behind a trusted reverse proxy).
    pub trust_forwarded_for: bool,
    /// Who may call the MQTT broker hooks (`/api/broker/*`): allowed networks and the shared
    /// secret.
    pub broker_access: dialect::broker::HookAccess,
    /// The broker listeners whose client certificates are trusted
    /// (`broker.certificate_listeners`).
    pub broker_certificates: dialect::broker::CertificateListeners,
}

/// HTTP limits, from the configuration file.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Longest time a request may take before it is answered with 503.
    pub request_timeout: Duration,
    /// Origins allowed by CORS; empty turns CORS off (no `Access-Control-*` headers).
    pub cors_allowed_origins: Vec<String>,
    /// Largest upload streamed to disk (a database archive for restore), in bytes. Such
    /// uploads are exempt from `body_limit_bytes` and from `request_timeout` as a whole; the
    /// timeout bounds each wait for more of the upload instead.
    pub max_upload_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            cors_allowed_origins: Vec::new(),
            max_upload_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Builds the complete application: every dialect, the health and metrics endpoints and the
/// OpenAPI document with its Swagger UI, with middleware.
pub fn app(state: AppState, limits: HttpLimits) -> Router {
    metrics::install();
    let (routes, document) = openapi::router().split_for_parts();
    let routes = routes
        .merge(openapi::docs_router(document))
        .route_layer(axum::middleware::from_fn(metrics::track))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    middleware::wrap(routes, limits)
}

/// Answer for a path no route serves, in the shape of the dialect that owns the path.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    if dialect::thingsboard::owns_path(uri.path()) {
        dialect::thingsboard::not_found()
    } else {
        dialect::connectware::not_found().await
    }
}

/// Answer for a method a path does not support, in the shape of the dialect that owns it.
async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> axum::response::Response {
    if dialect::thingsboard::owns_path(uri.path()) {
        dialect::thingsboard::method_not_allowed(uri.path(), method.as_str())
    } else {
        dialect::connectware::method_not_allowed().await
    }
}

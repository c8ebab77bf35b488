//! Gatehouse's HTTP server: one axum router per wire dialect over the identity core, plus the
//! middleware every request passes (request id, tracing without secrets, body limit, timeout,
//! panic guard). Handlers parse the wire format into core types, call one core operation and
//! render the result or error in their dialect's shape; no rule lives here.

pub mod dialect;
pub mod health;
pub mod middleware;

use std::time::Duration;

use axum::Router;
use gatehouse_core::Gatehouse;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The identity core.
    pub core: Gatehouse,
}

/// HTTP limits, from the configuration file.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Longest time a request may take before it is answered with 503.
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Builds the complete application: every dialect and the health endpoints, with middleware.
pub fn app(state: AppState, limits: HttpLimits) -> Router {
    let routes = Router::new()
        .merge(health::router())
        .merge(dialect::connectware::router())
        .fallback(dialect::connectware::not_found)
        .method_not_allowed_fallback(dialect::connectware::method_not_allowed)
        .with_state(state);
    middleware::wrap(routes, limits)
}

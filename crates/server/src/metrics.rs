//! `/metrics` in the Prometheus text format: per-route request counts and latency histograms
//! (labelled by the route template, so ids in paths do not multiply series), login outcomes
//! (counted in the core) and the password-hashing queue depth.
//!
//! The recorder is process-wide (the `metrics` facade has one global recorder); several
//! applications in one process, as in the test suite, share it.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// Latency buckets in seconds: from a cached token check to a slow password hash.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use; `None` if another recorder
/// was installed by someone else.
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// How often the recorder's upkeep runs: it drains the latency samples recorded since into
/// the histograms' buckets, which otherwise keep every sample until `/metrics` is scraped
/// (memory grew by tens of MiB per million requests on a server nobody scraped).
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the upkeep task runs.
static UPKEEP: std::sync::Once = std::sync::Once::new();

/// Installs the recorder early, so that counts from the first requests are kept, and starts
/// its upkeep on the current runtime (once per process).
pub fn install() {
    let Some(handle) = handle() else {
        tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        return;
    };
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        UPKEEP.call_once(|| {
            runtime.spawn(async move {
                let mut ticks = tokio::time::interval(UPKEEP_EVERY);
                loop {
                    ticks.tick().await;
                    handle.run_upkeep();
                }
            });
        });
    }
}

/// Middleware recording each routed request.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("gatehouse_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("gatehouse_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The metrics route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(render))
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "metrics",
    summary = "Prometheus metrics",
    description = "Per-route request counts and latency histograms, login outcomes and the password-hashing queue depth, in the Prometheus text format.",
    responses(
        (status = 200, description = "Metrics in the Prometheus text format (version 0.0.4)",
            content_type = "text/plain", body = String),
    )
)]
pub async fn render(State(state): State<AppState>) -> Response {
    metrics::gauge!("gatehouse_password_hash_queue_depth")
        .set(state.core.hasher().queue_depth() as f64);
    let body = handle().map(PrometheusHandle::render).unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

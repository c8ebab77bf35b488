//! Liveness and readiness: `/healthz` answers 200 while the process serves requests,
//! `/readyz` answers 200 only while the database answers too.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The health routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Answer of `/healthz` and `/readyz` (described only; the handlers build it as JSON).
#[derive(Serialize, ToSchema)]
#[schema(as = HealthStatus)]
pub struct HealthStatus {
    /// `ok` (liveness), `ready`, or `unavailable`.
    #[schema(pattern = "^(ok|ready|unavailable)$")]
    pub status: String,
    /// Why the server is not ready (`database`); only when `status` is `unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub reason: Option<String>,
}

/// `GET /healthz`.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    summary = "Liveness",
    description = "Answers 200 while the process serves requests.",
    responses(
        (status = 200, description = "Alive", body = HealthStatus,
            example = json!({"status": "ok"})),
    )
)]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    summary = "Readiness",
    description = "Answers 200 only while the database answers too.",
    responses(
        (status = 200, description = "Ready", body = HealthStatus,
            example = json!({"status": "ready"})),
        (status = 503, description = "The database does not answer", body = HealthStatus,
            example = json!({"status": "unavailable", "reason": "database"})),
    )
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.core.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": "database"})),
            )
        }
    }
}

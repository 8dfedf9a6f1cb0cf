//! Liveness and readiness probes, unauthenticated and cheap.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

/// How long readiness waits for the store before calling it unready.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: 200 while the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up.", example = json!({"status": "ok"}))))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: 200 only when the store answers within 2 s, and not while
/// shutting down; 503 otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The store answers.", example = json!({"status": "ready"})),
        (status = 503, description = "The store does not answer, or the server is shutting down.",
            example = json!({"status": "unavailable"})),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.shutdown.is_cancelled() {
        return unavailable("shutting down");
    }
    match tokio::time::timeout(READY_TIMEOUT, state.hub.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: the store failed");
            unavailable("store failed")
        }
        Err(_) => unavailable("store timed out"),
    }
}

fn unavailable(reason: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "unavailable", "reason": reason})),
    )
}

//! Liveness and readiness probes, unauthenticated and cheap.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::auth::AsViewer;
use crate::state::AppState;

/// How long readiness waits for the store before calling it unready.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: 200 while the process serves HTTP. `degraded` when stored
/// rows could not be read at start-up (they are left out and logged), with
/// their count by table; unreadable tokens count until revoked.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up.", body = Object,
        examples(
            ("ok" = (value = json!({"status": "ok"}))),
            ("degraded" = (summary = "Stored rows cannot be read", value = json!({"status": "degraded", "unreadable_rows": {"tokens": 1}, "detail": "1 stored row cannot be read: see the server log"}))),
        ))))]
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let mut by_table = BTreeMap::new();
    for row in &state.unreadable {
        *by_table.entry(row.table).or_insert(0_usize) += 1;
    }
    let tokens = state.access.unreadable_tokens_unrevoked();
    if tokens > 0 {
        by_table.insert("tokens", tokens);
    }
    let total: usize = by_table.values().sum();
    if total == 0 {
        return Json(json!({"status": "ok"}));
    }
    let rows = if total == 1 { "row" } else { "rows" };
    Json(json!({
        "status": "degraded",
        "unreadable_rows": by_table,
        "detail": format!("{total} stored {rows} cannot be read: see the server log"),
    }))
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

/// Prometheus metrics, in the OpenMetrics text format: the level and head,
/// publishes by outcome, requests by route, method and status with their
/// latency, per consumer application its polls, last sighting and whether
/// it is behind, open streams and held long polls, store latency and
/// refused authentications. Needs a `viewer` or `admin` token (Prometheus
/// sends it as `Authorization: Bearer`).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "The metrics.", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `viewer` or `admin`), `app_disabled` or `app_name_mismatch`.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn metrics(State(state): State<AppState>, _viewer: AsViewer) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

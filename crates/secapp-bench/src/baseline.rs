//! The baseline: a bare axum handler that reads the two identity headers
//! and answers `{}` — what any HTTP service in this stack costs before it
//! does any work of its own.

use axum::Json;
use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::{Value, json};

use crate::BenchResult;

async fn handler(headers: HeaderMap) -> Json<Value> {
    let app = headers.get("app-name").and_then(|v| v.to_str().ok());
    let token = headers.get("token").and_then(|v| v.to_str().ok());
    std::hint::black_box((app, token));
    Json(json!({}))
}

/// Serves the baseline until killed.
pub async fn serve(listen: std::net::SocketAddr) -> BenchResult<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("bind {listen}: {e}"))?;
    let app = Router::new().route("/secapp/update", get(handler));
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("serve: {e}"))
}

//! The HTTP surface: routes, the OpenAPI document and the layers around them.
//!
//! - [`publish`]: `POST /secapp/update`, durable publishing.
//! - [`poll`]: `GET /secapp/update`, in the server-held, `after` and
//!   `If-None-Match` cursor modes, optionally as a long poll.
//! - [`stream`]: `GET /secapp/stream`, server-sent events.
//! - [`consumers`]: `GET /secapp/consumers`, who holds the current state.
//! - [`alerts`]: `GET /secapp/alerts` and its history, stale consumers.
//! - [`history`]: `GET /secapp/history`, the audit history of publishes.
//! - [`admin`]: `/admin/...`, applications, tokens, the admin audit and
//!   refused authentications.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`openapi`]: `/openapi.json`, the OpenAPI 3.1 document generated from
//!   the handlers' annotations and completed by rules declared once; `/docs`
//!   serves Swagger UI for it from assets in the binary.
//! - [`body`] and [`params`]: the readers of request bodies, query
//!   parameters and cursor headers.

pub mod admin;
pub mod alerts;
pub mod body;
pub mod consumers;
pub mod extract;
pub mod health;
pub mod history;
pub mod openapi;
pub mod params;
pub mod poll;
pub mod publish;
pub mod stream;
pub mod wire;

use std::any::Any;

use axum::Router;
use axum::extract::Request;
use axum::http::{self, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use std::convert::Infallible;
use tower::{Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::state::AppState;

/// The application as a service: the router inside the layers every
/// request passes through. [`crate::listener`] serves it, adding the peer's
/// address to each request.
///
/// The layers wrap the router once rather than each route (as
/// `Router::layer` would), so a request clones a few small structs instead
/// of a boxed service per layer.
pub fn service(
    state: AppState,
) -> impl Service<Request, Response = Response, Error = Infallible, Future = impl Send + Unpin + 'static>
+ Clone
+ Send
+ Sync
+ Unpin
+ 'static {
    ServiceBuilder::new()
        .map_response(|response: http::Response<_>| {
            let mut response = response.map(axum::body::Body::new);
            // Every answer is JSON, an event stream or a docs asset of the
            // type it says. Also what tells secapp's answers from hyper's
            // own refusals (see `listener`).
            response.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            response
        })
        .layer(CatchPanicLayer::custom(panicked))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(record_status),
        )
        .layer(crate::metrics::MetricsLayer(state.metrics.clone()))
        .service(router(state))
}

/// Builds the application router, without the layers of [`service`].
pub fn router(state: AppState) -> Router {
    let document = openapi::document(state.requests.levels);
    let api = Router::new()
        .route("/secapp/update", get(poll::poll).post(publish::publish))
        .route("/secapp/stream", get(stream::stream))
        .route("/secapp/consumers", get(consumers::consumers))
        .route("/secapp/alerts", get(alerts::alerts))
        .route("/secapp/alerts/history", get(alerts::alert_history))
        .route("/secapp/history", get(history::history))
        .route("/admin/apps", get(admin::list_apps).post(admin::create_app))
        .route(
            "/admin/apps/{name}",
            get(admin::show_app).patch(admin::update_app),
        )
        .route(
            "/admin/apps/{name}/tokens",
            axum::routing::post(admin::issue_token),
        )
        .route("/admin/tokens", get(admin::list_tokens))
        .route("/admin/tokens/{id}", delete(admin::revoke_token))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/auth-failures", get(admin::auth_failures))
        .route("/admin/dead-letters", get(admin::dead_letters::list))
        .route(
            "/admin/dead-letters/{sink}/{event_id}/retry",
            axum::routing::post(admin::dead_letters::retry),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    api.merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", document))
        .fallback(not_found)
}

/// The span every request runs in: its route template and method, then the
/// application it authenticated as and the status answered. At debug level,
/// so a server logging at `info` pays nothing for it; with
/// `SECAPP_LOG=info,secapp_server::routes=debug` every event inside a
/// request carries these fields.
fn request_span(request: &Request) -> tracing::Span {
    let route = crate::metrics::route_of(request.uri().path());
    let span = tracing::debug_span!(
        "request",
        route,
        method = %request.method(),
        app = tracing::field::Empty,
        status = tracing::field::Empty,
        // For OpenTelemetry: the span's name and kind.
        otel.name = format!("{} {route}", request.method()),
        otel.kind = "server",
    );
    crate::telemetry::continue_trace(&span, request.headers());
    span
}

fn record_status<B>(
    response: &http::Response<B>,
    _latency: std::time::Duration,
    span: &tracing::Span,
) {
    span.record("status", response.status().as_u16());
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panicked(cause: Box<dyn Any + Send + 'static>) -> Response {
    let message = cause
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| cause.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a request handler panicked");
    ApiError::Internal.into_response()
}

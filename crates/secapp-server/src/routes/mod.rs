//! The HTTP surface: routes, the OpenAPI document and the layers around them.
//!
//! - [`publish`]: `POST /secapp/update`, durable publishing.
//! - [`poll`]: `GET /secapp/update`, in the server-held, `after` and
//!   `If-None-Match` cursor modes, optionally as a long poll.
//! - [`stream`]: `GET /secapp/stream`, server-sent events.
//! - [`consumers`]: `GET /secapp/consumers`, who holds the current state.
//! - [`history`]: `GET /secapp/history`, the audit history of publishes.
//! - [`admin`]: `/admin/...`, applications, tokens, the admin audit and
//!   refused authentications.
//! - [`health`]: `/healthz` and `/readyz`.
//! - `/openapi.json` and `/docs`: the OpenAPI 3.1 document generated from the
//!   handlers' annotations, and Swagger UI served from assets in the binary.

pub mod admin;
pub mod body;
pub mod consumers;
pub mod health;
pub mod history;
pub mod params;
pub mod poll;
pub mod publish;
pub mod stream;

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
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::state::AppState;

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "secapp",
        description = "Broadcasts one organisation-wide security criticality level to every application in a fleet. \
            Authenticate with your application's token in the `Token` header or as `Authorization: Bearer` (use **Authorize**). \
            `App-name` must name the token's application: `/secapp/update` and `/secapp/stream` require it, \
            the reports and the admin API take it from the token.",
    ),
    paths(
        publish::publish,
        poll::poll,
        stream::stream,
        consumers::consumers,
        history::history,
        admin::list_apps,
        admin::create_app,
        admin::show_app,
        admin::update_app,
        admin::issue_token,
        admin::list_tokens,
        admin::revoke_token,
        admin::audit,
        admin::auth_failures,
        health::healthz,
        health::readyz
    ),
    components(schemas(
        secapp_api::PublishRequest,
        secapp_api::PublishAnswer,
        secapp_api::PollAnswer,
        secapp_api::CurrentState,
        secapp_api::Empty,
        secapp_api::ErrorBody,
        secapp_api::ConsumersAnswer,
        secapp_api::ConsumerView,
        secapp_api::SightingView,
        secapp_api::HistoryAnswer,
        secapp_api::HistoryEntry,
        secapp_api::admin::NewApp,
        secapp_api::admin::AppPatch,
        secapp_api::admin::AppView,
        secapp_api::admin::AppsAnswer,
        secapp_api::admin::NewToken,
        secapp_api::admin::TokenView,
        secapp_api::admin::IssuedToken,
        secapp_api::admin::TokensAnswer,
        secapp_api::admin::AuditEntry,
        secapp_api::admin::AuditAnswer,
        secapp_api::admin::AuthFailureView,
        secapp_api::admin::AuthFailuresAnswer,
    )),
    modifiers(&TokenScheme),
    tags(
        (name = "criticality", description = "Publish and learn the criticality level."),
        (name = "admin", description = "Applications, tokens and audits; needs the `admin` role."),
        (name = "operations", description = "Probes for orchestrators and load balancers."),
    ),
)]
pub struct ApiDoc;

/// Declares the two ways to send a token: the `Token` header and
/// `Authorization: Bearer`.
struct TokenScheme;

impl Modify for TokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                secapp_api::TOKEN_HEADER,
                "An application's token (the first admin token is printed at first start), or the shared compatibility token.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The application as a service: the router inside the layers every
/// request passes through. [`crate::listener`] serves it, adding the peer's
/// address to each request.
///
/// The layers wrap the router once rather than each route (as
/// `Router::layer` would), so a request clones a few small structs instead
/// of a boxed service per layer.
pub fn service(
    state: AppState,
) -> impl Service<Request, Response = Response, Error = Infallible, Future = impl Send + 'static>
+ Clone
+ Send
+ Sync
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
        .layer(TraceLayer::new_for_http())
        .service(router(state))
}

/// Builds the application router, without the layers of [`service`].
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/secapp/update", get(poll::poll).post(publish::publish))
        .route("/secapp/stream", get(stream::stream))
        .route("/secapp/consumers", get(consumers::consumers))
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
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .fallback(not_found)
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

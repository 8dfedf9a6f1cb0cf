//! `/admin/...`: registered applications, their tokens, the audit of admin
//! actions, refused authentications, and the sinks' dead letters
//! (`dead_letters.rs`). Every endpoint needs the `admin`
//! role; every change is audited with the acting application, its token id
//! and the source address.
//!
//! Handlers check the request's fields into specs (`access::validate`), call
//! the registry's operations, and build the answers with `views.rs`.

pub mod dead_letters;
pub mod views;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secapp_api::admin::{
    AppPatch, AppView, AppsAnswer, AuditAnswer, AuditEntry, AuthFailureView, AuthFailuresAnswer,
    IssuedToken, NewApp, NewToken, TokenView, TokensAnswer,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::access::{Actor, validate};
use crate::auth::{AsAdmin, SourceAddress};
use crate::error::ApiError;
use crate::routes::body::JsonBody;
use crate::routes::extract::{Path, Query};
use crate::routes::params::{parse_id, parse_limit};
use crate::routes::wire;
use crate::state::AppState;
use crate::store::AuditQuery;

fn actor(admin: &AsAdmin, source: SourceAddress) -> Actor {
    Actor {
        name: admin.app.to_string(),
        token: Some(admin.token_id.to_string()),
        source: source.0.map(|ip| ip.to_string()),
    }
}

/// Every registered application and its tokens.
#[utoipa::path(
    get, path = "/admin/apps", tag = "admin",
    responses(
        (status = 200, description = "Every application, by name.", body = AppsAnswer),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `admin`), `app_disabled` or `app_name_mismatch`.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn list_apps(
    State(state): State<AppState>,
    _admin: AsAdmin,
) -> Result<Json<AppsAnswer>, ApiError> {
    Ok(Json(AppsAnswer {
        apps: state
            .access
            .apps()
            .iter()
            .map(|details| views::app(details, state.clock.now()))
            .collect(),
    }))
}

/// Register an application. Issue its token with `POST /admin/apps/{name}/tokens`.
#[utoipa::path(
    post, path = "/admin/apps", tag = "admin",
    request_body(content = NewApp, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered.", body = AppView),
        (status = 400, description = "`malformed_json`.", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `admin`).", body = secapp_api::ErrorBody),
        (status = 409, description = "`app_exists`.", body = secapp_api::ErrorBody),
        (status = 422, description = "`invalid_body` or `invalid_field` (name, roles, description or owner).", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn create_app(
    State(state): State<AppState>,
    admin: AsAdmin,
    source: SourceAddress,
    JsonBody(new): JsonBody<NewApp>,
) -> Result<(StatusCode, Json<AppView>), ApiError> {
    let spec = validate::new_app(new)?;
    let now = state.clock.now();
    let details = state
        .access
        .create_app(&actor(&admin, source), spec, now)
        .await?;
    Ok((StatusCode::CREATED, Json(views::app(&details, now))))
}

/// One application and its tokens.
#[utoipa::path(
    get, path = "/admin/apps/{name}", tag = "admin",
    params(("name" = String, Path, description = "The application's name.")),
    responses(
        (status = 200, description = "The application.", body = AppView),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `admin`).", body = secapp_api::ErrorBody),
        (status = 404, description = "`unknown_app`.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn show_app(
    State(state): State<AppState>,
    _admin: AsAdmin,
    Path(name): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    Ok(Json(views::app(
        &state.access.app(&name)?,
        state.clock.now(),
    )))
}

/// Change an application's roles, description or owner, or disable it
/// (its tokens are refused at once) and enable it again.
#[utoipa::path(
    patch, path = "/admin/apps/{name}", tag = "admin",
    params(("name" = String, Path, description = "The application's name.")),
    request_body(content = AppPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The application as changed.", body = AppView),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `admin`).", body = secapp_api::ErrorBody),
        (status = 404, description = "`unknown_app`.", body = secapp_api::ErrorBody),
        (status = 409, description = "`last_admin`: the change would leave no enabled admin application with a live token.", body = secapp_api::ErrorBody),
        (status = 422, description = "`invalid_body` or `invalid_field`.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn update_app(
    State(state): State<AppState>,
    admin: AsAdmin,
    source: SourceAddress,
    Path(name): Path<String>,
    JsonBody(patch): JsonBody<AppPatch>,
) -> Result<Json<AppView>, ApiError> {
    // An unknown application is told before a bad field.
    state.access.app(&name)?;
    let changes = validate::app_patch(patch)?;
    let now = state.clock.now();
    let details = state
        .access
        .update_app(&actor(&admin, source), &name, changes, now)
        .await?;
    Ok(Json(views::app(&details, now)))
}

/// Issue a token for an application. The answer holds the token itself:
/// the only time it is shown. Two live tokens let a client rotate without
/// downtime: issue, deploy, then revoke the old one.
#[utoipa::path(
    post, path = "/admin/apps/{name}/tokens", tag = "admin",
    params(("name" = String, Path, description = "The application's name.")),
    request_body(content = NewToken, content_type = "application/json", description = "Optional: expiry and label; an empty body issues a token that never expires."),
    responses(
        (status = 201, description = "Issued; `token` is shown only now.", body = IssuedToken),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `admin`).", body = secapp_api::ErrorBody),
        (status = 404, description = "`unknown_app`.", body = secapp_api::ErrorBody),
        (status = 422, description = "`invalid_body` or `invalid_field` (expiry or label).", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn issue_token(
    State(state): State<AppState>,
    admin: AsAdmin,
    source: SourceAddress,
    Path(name): Path<String>,
    JsonBody(new): JsonBody<NewToken>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let spec = validate::new_token(new, now)?;
    let issued = state
        .access
        .issue_token(&actor(&admin, source), &name, spec, now)
        .await?;
    let mut response = (StatusCode::CREATED, Json(views::issued(&issued, now))).into_response();
    // The answer holds a secret: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Filter for the token list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokensParams {
    /// Only this application's tokens.
    app: Option<String>,
}

/// Tokens, oldest first, without their secrets.
#[utoipa::path(
    get, path = "/admin/tokens", tag = "admin",
    params(TokensParams),
    responses(
        (status = 200, description = "The tokens.", body = TokensAnswer),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `admin`).", body = secapp_api::ErrorBody),
        (status = 404, description = "`unknown_app`.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    _admin: AsAdmin,
    Query(params): Query<TokensParams>,
) -> Result<Json<TokensAnswer>, ApiError> {
    let now = state.clock.now();
    let tokens = state
        .access
        .tokens(params.app.as_deref())?
        .iter()
        .map(|listing| views::listing(listing, now))
        .collect();
    Ok(Json(TokensAnswer { tokens }))
}

/// Revoke a token: it is refused from the next request on. Revoking a
/// revoked token changes nothing.
#[utoipa::path(
    delete, path = "/admin/tokens/{id}", tag = "admin",
    params(("id" = String, Path, description = "The token's id (`tok_…`).")),
    responses(
        (status = 200, description = "Revoked.", body = TokenView),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `admin`).", body = secapp_api::ErrorBody),
        (status = 404, description = "`unknown_token`.", body = secapp_api::ErrorBody),
        (status = 409, description = "`last_admin`: it is the last live token of an enabled admin application.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    admin: AsAdmin,
    source: SourceAddress,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    let now = state.clock.now();
    let listing = state
        .access
        .revoke_token(&actor(&admin, source), &id, now)
        .await?;
    Ok(Json(views::listing(&listing, now)))
}

/// Paging of the admin audit.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Events per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// Only events older than this id: the `next_before` of the previous page.
    #[param(value_type = Option<i64>)]
    before: Option<String>,
}

impl AuditParams {
    /// The page these parameters ask for.
    ///
    /// # Errors
    /// [`ApiError::InvalidQuery`] naming the parameter.
    pub fn read(&self) -> Result<AuditQuery, ApiError> {
        let limit = parse_limit(self.limit.as_deref())?;
        let before = self
            .before
            .as_deref()
            .map(|raw| {
                parse_id(raw).map(|id| id.0).ok_or_else(|| {
                    ApiError::InvalidQuery("before must be the id of an audit event".to_owned())
                })
            })
            .transpose()?;
        Ok(AuditQuery { limit, before })
    }
}

/// The audit of admin actions (applications and tokens), newest first.
#[utoipa::path(
    get, path = "/admin/audit", tag = "admin",
    params(AuditParams),
    responses(
        (status = 200, description = "One page of admin actions.", body = AuditAnswer),
        (status = 400, description = "`invalid_query`.", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `admin`).", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn audit(
    State(state): State<AppState>,
    _admin: AsAdmin,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditAnswer>, ApiError> {
    let query = params.read()?;
    let limit = query.limit;
    let records = state.access.audit(query).await?;
    let next_before = wire::next_before(&records, limit, |record| record.id);
    let events = records
        .into_iter()
        .map(|record| AuditEntry {
            id: record.id,
            at: secapp_domain::shown(record.event.at),
            actor: record.event.actor,
            actor_token: record.event.actor_token,
            source_address: record.event.source,
            action: record.event.action,
            target: record.event.target,
            detail: serde_json::from_str(&record.event.detail).unwrap_or_default(),
        })
        .collect();
    Ok(Json(AuditAnswer {
        events,
        next_before,
    }))
}

/// Refused authentications since the server started: counts by reason and
/// the latest hundred (application, source address, reason; never a token).
#[utoipa::path(
    get, path = "/admin/auth-failures", tag = "admin",
    responses(
        (status = 200, description = "Counts and the latest refusals.", body = AuthFailuresAnswer),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `admin`).", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn auth_failures(
    State(state): State<AppState>,
    _admin: AsAdmin,
) -> Result<Json<AuthFailuresAnswer>, ApiError> {
    let report = state.access.failures.report();
    Ok(Json(AuthFailuresAnswer {
        total: report.total,
        by_reason: report
            .by_reason
            .into_iter()
            .map(|(reason, count)| (reason.to_owned(), count))
            .collect(),
        recent: report
            .recent
            .into_iter()
            .map(|failure| AuthFailureView {
                at: secapp_domain::shown(failure.at),
                reason: failure.reason.to_owned(),
                app: failure.app,
                source_address: failure.source,
                request: failure.request,
            })
            .collect(),
    }))
}

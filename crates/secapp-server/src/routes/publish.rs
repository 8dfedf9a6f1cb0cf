//! `POST /secapp/update`: publish a change, answered once it is durable.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use secapp_api::{PublishAnswer, PublishRequest};
use secapp_domain::ChangedAt;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::NewChange;

/// Publish a change of the criticality level.
///
/// Answers once the change is durable (committed and synced). The change with
/// the latest `Change_at` is the current state; a change whose `Change_at`
/// equals the current state's does not replace it (the first one wins), and an
/// older change is recorded in the history without winning.
#[utoipa::path(
    post,
    path = "/secapp/update",
    tag = "criticality",
    params(
        ("App-name" = String, Header, description = "Name of the publishing application.", example = "security-team"),
    ),
    request_body(content = PublishRequest, content_type = "application/json",
        description = "The new level and when it changed. `Change_at` may be omitted: the server's time of receipt is used."),
    responses(
        (status = 200, description = "Recorded durably.", body = PublishAnswer),
        (status = 400, description = "`missing_app_name`, `invalid_app_name`, `malformed_json` or `unreadable_body`.", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token` or `invalid_token`.", body = secapp_api::ErrorBody),
        (status = 413, description = "`body_too_large`: the body exceeds 16 KiB.", body = secapp_api::ErrorBody),
        (status = 422, description = "`invalid_body` (missing field, wrong type), `level_out_of_range`, `invalid_change_at` or `change_at_in_future`.", body = secapp_api::ErrorBody),
        (status = 503, description = "`store_unavailable`: retry after the `Retry-After` seconds.", body = secapp_api::ErrorBody),
    ),
    security(("token" = [])),
)]
pub async fn publish(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PublishAnswer>, ApiError> {
    let request: PublishRequest = serde_json::from_slice(&body?)?;
    let change = validate(&state, principal, request)?;
    let (level, changed_at, app) = (change.level, change.changed_at, change.published_by.clone());
    let recorded = state.hub.publish(change).await?;
    tracing::info!(
        %app, %level, %changed_at,
        id = recorded.id.0,
        outcome = recorded.outcome.as_str(),
        head_version = recorded.head.version.0,
        "published"
    );
    Ok(Json(PublishAnswer {
        processed_id: recorded.id.0,
    }))
}

/// Turns a well-formed body into a change the domain accepts.
fn validate(
    state: &AppState,
    principal: Principal,
    request: PublishRequest,
) -> Result<NewChange, ApiError> {
    let now = state.clock.now();
    let level = state.levels.level(request.current_status)?;
    let changed_at = match request.change_at {
        Some(raw) => ChangedAt::parse(&raw)?.not_after(now, state.max_clock_skew)?,
        None => ChangedAt::from_instant(now),
    };
    Ok(NewChange {
        level,
        changed_at,
        published_by: principal.app,
        received_at: now,
    })
}

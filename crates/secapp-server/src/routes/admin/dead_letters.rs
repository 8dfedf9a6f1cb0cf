//! `/admin/dead-letters`: the events a sink gave up on, listed and retried.

use axum::Json;
use axum::extract::State;
use secapp_api::admin::{DeadLettersAnswer, RetriedDeadLetter};
use serde::Deserialize;
use utoipa::IntoParams;

use super::actor;
use crate::auth::{AsAdmin, SourceAddress};
use crate::error::ApiError;
use crate::routes::extract::{Path, Query};
use crate::routes::params::{parse_id, parse_limit};
use crate::state::AppState;

/// Which dead letters, one page at a time.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterParams {
    /// Only this sink's.
    sink: Option<String>,
    /// Dead letters per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// Only events older than this id: the `next_before` of the previous page.
    #[param(value_type = Option<i64>)]
    before: Option<String>,
}

fn event_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    parse_id(raw)
        .map(|id| id.0)
        .ok_or_else(|| ApiError::InvalidQuery(format!("{what} must be an event id")))
}

/// The events sinks gave up on (after their `retry_for`), newest event
/// first, with the last error of each.
#[utoipa::path(
    get, path = "/admin/dead-letters", tag = "admin",
    params(DeadLetterParams),
    responses(
        (status = 200, description = "One page of dead letters.", body = DeadLettersAnswer),
        (status = 400, description = "`invalid_query`.", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `admin`).", body = secapp_api::ErrorBody),
        (status = 404, description = "`unknown_sink`: no configured sink has that name.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: AsAdmin,
    Query(params): Query<DeadLetterParams>,
) -> Result<Json<DeadLettersAnswer>, ApiError> {
    let limit = parse_limit(params.limit.as_deref())?;
    let before = params
        .before
        .as_deref()
        .map(|raw| event_id(raw, "before"))
        .transpose()?;
    let page = state.dead_letters.list(params.sink, before, limit).await?;
    Ok(Json(DeadLettersAnswer {
        dead_letters: page.dead_letters,
        next_before: page.next_before,
    }))
}

/// Send a dead letter again: it is pending at once, its attempts counted
/// afresh, and goes out before the sink's newer pending events. Audited as
/// `dead_letter.retry`.
#[utoipa::path(
    post, path = "/admin/dead-letters/{sink}/{event_id}/retry", tag = "admin",
    params(
        ("sink" = String, Path, description = "The sink's name."),
        ("event_id" = i64, Path, description = "The event's id, as listed."),
    ),
    responses(
        (status = 200, description = "Pending again.", body = RetriedDeadLetter),
        (status = 400, description = "`invalid_path`.", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `admin`).", body = secapp_api::ErrorBody),
        (status = 404, description = "`unknown_sink` or `unknown_dead_letter` (never dead, already retried, or delivered).", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn retry(
    State(state): State<AppState>,
    admin: AsAdmin,
    source: SourceAddress,
    Path((sink, raw_id)): Path<(String, String)>,
) -> Result<Json<RetriedDeadLetter>, ApiError> {
    let event_id = parse_id(&raw_id)
        .map(|id| id.0)
        .ok_or_else(|| ApiError::InvalidPath(format!("`{raw_id}` is not an event id")))?;
    state
        .dead_letters
        .retry(&actor(&admin, source), &sink, event_id, state.clock.now())
        .await?;
    Ok(Json(RetriedDeadLetter { sink, event_id }))
}

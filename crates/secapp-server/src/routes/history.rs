//! `GET /secapp/history`: every published change, newest first, in pages.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use secapp_api::{HistoryAnswer, HistoryEntry};
use secapp_domain::AppName;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::AsViewer;
use crate::error::ApiError;
use crate::routes::extract::Query;
use crate::routes::params::{parse_id, parse_limit};
use crate::routes::wire;
use crate::state::AppState;
use crate::store::HistoryQuery;

/// Paging and filters. Kept as text so a bad value gets our own error.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Entries per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, example = 50)]
    limit: Option<String>,
    /// Only changes older than this `processed_id`: the `next_before` of the
    /// previous page.
    #[param(value_type = Option<i64>, example = 120)]
    before: Option<String>,
    /// Only changes published by this `App-name`.
    #[param(example = "security-team")]
    app: Option<String>,
    /// Only changes received at or after this time (RFC 3339).
    #[param(example = "2026-03-01T00:00:00Z")]
    since: Option<String>,
    /// Only changes received before this time (RFC 3339).
    #[param(example = "2026-03-02T00:00:00Z")]
    until: Option<String>,
}

/// The audit history of published changes.
///
/// Every publish is kept, including the ones that did not become the current
/// state: who published it, from where, when it was received, and whether it
/// became the head, tied with it, or was older. Newest first; follow
/// `next_before` for older pages.
#[utoipa::path(
    get,
    path = "/secapp/history",
    tag = "criticality",
    params(
        ("App-name" = Option<String>, Header, description = "Optional; when sent, it must be the application the token belongs to.", example = "security-team"),
        HistoryParams,
    ),
    responses(
        (status = 200, description = "One page of the history, newest first.", body = HistoryAnswer),
        (status = 400, description = "`missing_app_name`, `invalid_app_name` or `invalid_query` (a bad `limit`, `before`, `app`, `since` or `until`).", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `viewer` or `admin`; the shared token never has them), `app_disabled` or `app_name_mismatch`.", body = secapp_api::ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn history(
    State(state): State<AppState>,
    _viewer: AsViewer,
    Query(params): Query<HistoryParams>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let query = params.read()?;
    let limit = query.limit;
    let entries = state.hub.history(query).await?;
    let next_before = wire::next_before(&entries, limit, |entry| entry.id.0);
    let changes = entries
        .into_iter()
        .map(|entry| HistoryEntry {
            processed_id: entry.id.0,
            current_status: entry.level.get(),
            change_at: entry.changed_at.to_string(),
            published_by: entry.published_by,
            received_at: secapp_domain::shown(entry.received_at),
            source_address: entry.source,
            token_id: entry.token_id,
            outcome: entry.outcome.as_str().to_owned(),
        })
        .collect();
    Ok(Json(HistoryAnswer {
        changes,
        next_before,
    }))
}

impl HistoryParams {
    /// The query these parameters ask for.
    ///
    /// # Errors
    /// [`ApiError::InvalidQuery`] naming the parameter.
    pub fn read(&self) -> Result<HistoryQuery, ApiError> {
        read(self)
    }
}

fn read(params: &HistoryParams) -> Result<HistoryQuery, ApiError> {
    let bad = |what: &str| ApiError::InvalidQuery(what.to_owned());
    let limit = parse_limit(params.limit.as_deref())?;
    let before = params
        .before
        .as_deref()
        .map(|raw| parse_id(raw).ok_or_else(|| bad("before must be a processed_id")))
        .transpose()?;
    let app = params
        .app
        .as_deref()
        .map(|raw| AppName::parse(raw).map_err(|e| bad(&format!("app: {e}"))))
        .transpose()?;
    let time = |raw: &Option<String>, name: &str| {
        raw.as_deref()
            .map(|raw| {
                DateTime::parse_from_rfc3339(raw)
                    .map(|at| {
                        // A filter needs no storable bound: one beyond the
                        // years kept is as one at their end.
                        at.with_timezone(&Utc)
                            .clamp(secapp_domain::earliest(), secapp_domain::latest())
                    })
                    .map_err(|_| {
                        bad(&format!(
                            "{name} must be an RFC 3339 time such as 2026-03-01T00:00:00Z"
                        ))
                    })
            })
            .transpose()
    };
    Ok(HistoryQuery {
        limit,
        before,
        app,
        since: time(&params.since, "since")?,
        until: time(&params.until, "until")?,
    })
}

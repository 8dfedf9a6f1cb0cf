//! `GET /secapp/alerts` (every watched consumer application's alert state)
//! and `GET /secapp/alerts/history` (the changes of state).

use axum::Json;
use axum::extract::State;
use secapp_api::alerts::{
    AlertHistoryAnswer, AlertStatus, AlertTransitionView, AlertView, AlertsAnswer,
};
use secapp_domain::AppName;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::alerts::ConsumerAlert;
use crate::auth::AsViewer;
use crate::error::ApiError;
use crate::routes::extract::Query;
use crate::routes::params::parse_limit;
use crate::state::AppState;
use crate::store::AlertState;

/// Filters for the alert list. Kept as text so a bad value gets our own error.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsParams {
    /// Only applications in this state: `fresh`, `stale` or `never_seen`.
    #[param(value_type = Option<String>, example = "stale")]
    state: Option<String>,
}

/// Which consumer applications are stale.
///
/// Every watched consumer application (each enabled registered application
/// with the `consume` role, and names spoken for with the shared token while
/// it is accepted) with its state: `fresh`, `stale` (it has not polled,
/// long-polled or held a stream for longer than its allowance) or
/// `never_seen` (registered, never seen, allowance not yet over); since
/// when, when it was last seen and its allowance. States are evaluated every
/// `--watch-interval`; each change is kept in the history and sent to the
/// webhooks that asked for it.
#[utoipa::path(
    get,
    path = "/secapp/alerts",
    tag = "criticality",
    params(
        ("App-name" = Option<String>, Header, description = "Optional; when sent, it must be the application the token belongs to.", example = "ops"),
        AlertsParams,
    ),
    responses(
        (status = 200, description = "Every watched consumer application, by name.", body = AlertsAnswer),
        (status = 400, description = "`missing_app_name`, `invalid_app_name` or `invalid_query` (a bad `state`).", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `viewer` or `admin`; the shared token never has them), `app_disabled` or `app_name_mismatch`.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn alerts(
    State(state): State<AppState>,
    _viewer: AsViewer,
    Query(params): Query<AlertsParams>,
) -> Result<Json<AlertsAnswer>, ApiError> {
    let wanted = params.read()?;
    let alerts = state
        .alerts
        .current()
        .iter()
        .filter(|alert| wanted.is_none_or(|wanted| alert.standing.state == wanted))
        .map(|alert| AlertView {
            app: alert.app.to_string(),
            registered: alert.registered,
            status: status(alert),
        })
        .collect();
    Ok(Json(AlertsAnswer {
        checked_at: state.alerts.checked_at().map(secapp_domain::shown),
        alerts,
    }))
}

impl AlertsParams {
    /// The state asked for, if any.
    ///
    /// # Errors
    /// [`ApiError::InvalidQuery`] for a state that is not one.
    pub fn read(&self) -> Result<Option<AlertState>, ApiError> {
        self.state
            .as_deref()
            .map(|raw| {
                AlertState::parse(raw).ok_or_else(|| {
                    ApiError::InvalidQuery("state must be fresh, stale or never_seen".to_owned())
                })
            })
            .transpose()
    }
}

/// Paging of the history. Kept as text so a bad value gets our own error.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertHistoryParams {
    /// Only this application's changes.
    #[param(example = "billing")]
    app: Option<String>,
    /// At most this many, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, example = 50)]
    limit: Option<String>,
}

/// The changes of alert state, newest first.
///
/// Each change of a consumer application's state: fresh, stale, recovered
/// (stale to fresh), with when the new state began and when it was last seen.
#[utoipa::path(
    get,
    path = "/secapp/alerts/history",
    tag = "criticality",
    params(
        ("App-name" = Option<String>, Header, description = "Optional; when sent, it must be the application the token belongs to.", example = "ops"),
        AlertHistoryParams,
    ),
    responses(
        (status = 200, description = "Changes of state, newest first.", body = AlertHistoryAnswer),
        (status = 400, description = "`missing_app_name`, `invalid_app_name` or `invalid_query` (a bad `app` or `limit`).", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `viewer` or `admin`; the shared token never has them), `app_disabled` or `app_name_mismatch`.", body = secapp_api::ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn alert_history(
    State(state): State<AppState>,
    _viewer: AsViewer,
    Query(params): Query<AlertHistoryParams>,
) -> Result<Json<AlertHistoryAnswer>, ApiError> {
    let (app, limit) = params.read()?;
    let transitions = state
        .alerts
        .history(app, limit)
        .await?
        .into_iter()
        .map(|change| AlertTransitionView {
            id: change.id,
            app: change.app,
            from: change.from.as_str().to_owned(),
            to: change.to.as_str().to_owned(),
            at: secapp_domain::shown(change.at),
            last_seen: change.last_seen.map(secapp_domain::shown),
        })
        .collect();
    Ok(Json(AlertHistoryAnswer { transitions }))
}

impl AlertHistoryParams {
    /// The application (if any) and the page size asked for.
    ///
    /// # Errors
    /// [`ApiError::InvalidQuery`] naming the parameter.
    pub fn read(&self) -> Result<(Option<AppName>, u32), ApiError> {
        let limit = parse_limit(self.limit.as_deref())?;
        let app = self
            .app
            .as_deref()
            .map(|raw| AppName::parse(raw).map_err(|e| ApiError::InvalidQuery(format!("app: {e}"))))
            .transpose()?;
        Ok((app, limit))
    }
}

/// An application's alert state on the wire.
#[must_use]
pub fn status(alert: &ConsumerAlert) -> AlertStatus {
    AlertStatus {
        state: alert.standing.state.as_str().to_owned(),
        since: secapp_domain::shown(alert.standing.since),
        last_seen: alert.last_seen.map(secapp_domain::shown),
        stale_after: humantime::format_duration(alert.allowance).to_string(),
        stale_after_seconds: alert.allowance.as_secs(),
    }
}

//! `GET /secapp/consumers`: which applications hold the current state.

use axum::Json;
use axum::extract::State;
use secapp_api::{ConsumerView, ConsumersAnswer, SightingView};
use std::collections::BTreeMap;

use secapp_domain::{AppName, Knowledge, Sighting};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::AsViewer;
use crate::error::ApiError;
use crate::routes::extract::Query;
use crate::routes::wire;
use crate::state::AppState;

/// Filters for the consumer list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsumersParams {
    /// `true`: only applications that may not hold the current state;
    /// `false`: only those that do.
    behind: Option<bool>,
}

/// Which applications know the current level.
///
/// For every application the server has sent a state to or heard a
/// client-held cursor from, and every enabled registered application with
/// the `consume` role: the newest state **sent** (any mode: plain poll,
/// long poll, stream; a send is not proof of receipt) and the newest state
/// **acknowledged** (the client sent it back as `after`, `If-None-Match` or
/// `Last-Event-ID`, proving it holds it), each with when and how. `behind` is
/// true when neither is the current state.
#[utoipa::path(
    get,
    path = "/secapp/consumers",
    tag = "criticality",
    params(
        ("App-name" = Option<String>, Header, description = "Optional; when sent, it must be the application the token belongs to.", example = "security-team"),
        ConsumersParams,
    ),
    responses(
        (status = 200, description = "The current state and every known application.", body = ConsumersAnswer),
        (status = 400, description = "`missing_app_name`, `invalid_app_name` or `invalid_query`.", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `viewer` or `admin`; the shared token never has them), `app_disabled` or `app_name_mismatch`.", body = secapp_api::ErrorBody),
        (status = 503, description = "`store_unavailable`: with several servers on PostgreSQL, the database holding the other servers' records cannot be read.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn consumers(
    State(state): State<AppState>,
    _viewer: AsViewer,
    Query(params): Query<ConsumersParams>,
) -> Result<Json<ConsumersAnswer>, ApiError> {
    let head = state.hub.head();
    let head_id = head.as_ref().map(|head| head.change.id);
    // Registered consumers the server never heard from are listed too: an
    // application that never connected is the one most behind.
    let mut known: BTreeMap<AppName, Knowledge> = state
        .access
        .consuming_apps()
        .into_iter()
        .map(|app| (app, Knowledge::default()))
        .collect();
    known.extend(
        state
            .hub
            .consumers_everywhere()
            .await?
            .into_iter()
            .map(|record| (record.app, record.consumer.knowledge)),
    );
    let consumers = known
        .into_iter()
        .map(|(app, knowledge)| ConsumerView {
            registered: state.access.is_registered(&app),
            app: app.to_string(),
            sent: knowledge.sent.map(view),
            acknowledged: knowledge.acknowledged.map(view),
            behind: knowledge.behind(head_id),
            alert: state
                .alerts
                .of(&app)
                .map(|alert| crate::routes::alerts::status(&alert)),
        })
        .filter(|view| params.behind.is_none_or(|behind| view.behind == behind))
        .collect();
    Ok(Json(ConsumersAnswer {
        head: head.as_deref().map(wire::current_state),
        consumers,
    }))
}

fn view(sighting: Sighting) -> SightingView {
    SightingView {
        status_change_id: sighting.id.0,
        at: secapp_domain::shown(sighting.at),
        mode: sighting.mode.as_str().to_owned(),
        long_poll: sighting.long_poll,
    }
}

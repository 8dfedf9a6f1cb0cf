//! `POST /secapp/update` (publish) and `GET /secapp/update` (poll): the
//! prototype's wire contract.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use secapp_api::{CurrentState, Empty, PollAnswer, PublishAnswer, PublishRequest};
use secapp_domain::{ChangedAt, Head};

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

/// Learn whether the criticality level changed since this application was
/// last told.
///
/// Answers the current state when this application (`App-name`) has not been
/// told it yet, and `{}` when it has or when nothing was ever published. Each
/// application is told each new state once; after a server crash it may be
/// told the same state again, never skipped.
#[utoipa::path(
    get,
    path = "/secapp/update",
    tag = "criticality",
    params(
        ("App-name" = String, Header, description = "Name of the polling application; each name is told each state once.", example = "billing"),
    ),
    responses(
        (status = 200, description = "The current state if it is news to this application, otherwise `{}`.", body = PollAnswer,
            examples(
                ("news" = (summary = "Not yet told", value = json!({"current_status": 4, "status_change_id": 17, "Change_at": "2026-03-01T12:05:00Z"}))),
                ("nothing new" = (summary = "Already told, or nothing published", value = json!({}))),
            )),
        (status = 400, description = "`missing_app_name` or `invalid_app_name`.", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token` or `invalid_token`.", body = secapp_api::ErrorBody),
    ),
    security(("token" = [])),
)]
pub async fn poll(State(state): State<AppState>, method: Method, principal: Principal) -> Response {
    // axum answers HEAD with the GET handler; a HEAD answer has no body, so it
    // must not count as telling the application.
    let head = if method == Method::HEAD {
        state.hub.peek(&principal.app)
    } else {
        state.hub.poll(&principal.app, state.clock.now())
    };
    let answer = match head {
        Some(head) => PollAnswer::Changed(current_state(&head)),
        None => PollAnswer::Unchanged(Empty {}),
    };
    let mut response = Json(answer).into_response();
    // The answer depends on who asks and when: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The wire form of a head.
#[must_use]
pub fn current_state(head: &Head) -> CurrentState {
    CurrentState {
        current_status: head.change.level.get(),
        status_change_id: head.change.id.0,
        change_at: head.change.changed_at.to_string(),
    }
}

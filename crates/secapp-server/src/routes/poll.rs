//! `GET /secapp/update`: learn what is new, in any of three cursor modes,
//! optionally as a long poll.
//!
//! - **Server-held cursor** (the prototype's model): no `after`, no
//!   `If-None-Match`. Each application is told each new head once.
//! - **`?after=<id>`**: the client holds the cursor; `{}` only when `id` is
//!   the head. No server-held cursor is read or moved; the client's
//!   acknowledgement is recorded (in memory, written back in batches).
//! - **`If-None-Match: "<id>"`**: the same, answered `304 Not Modified`.
//!
//! With `?wait=<seconds>` the request is held until the answer would not be
//! empty, the wait ends, or the server shuts down.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secapp_api::PollAnswer;
use secapp_domain::{ChangeId, Head, Role};
use serde::Deserialize;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;
use utoipa::IntoParams;

use crate::auth::{self, AsConsumer};
use crate::error::ApiError;
use crate::hub::{ClientCursor, Compared, Look, Woken};
use crate::routes::extract::Query;
use crate::routes::params::{self, Tags};
use crate::routes::wire;
use crate::state::AppState;

/// Query parameters of a poll. Kept as text so a bad value gets our own
/// error, not the extractor's.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PollParams {
    /// Client-held cursor: the `status_change_id` the client holds. The
    /// answer is `{}` only when it is the current state's; no server-side
    /// cursor is read or moved.
    #[param(value_type = Option<i64>, minimum = 0, example = 17)]
    after: Option<String>,
    /// Long poll: hold the request up to this many seconds until the answer
    /// would not be empty. Longer waits are cut to the server's maximum
    /// (55 s by default).
    #[param(value_type = Option<f64>, minimum = 0, example = 30)]
    wait: Option<String>,
}

/// The `If-None-Match` header, parsed: `None` when not sent or empty.
/// Taken alone: the `HeaderMap` extractor would copy every header of every
/// poll.
pub struct IfNoneMatch(Option<Option<Vec<ChangeId>>>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let values = parts.headers.get_all(header::IF_NONE_MATCH);
        Ok(Self(
            match params::parse_if_none_match(values.iter().map(HeaderValue::as_bytes))? {
                Tags::None => None,
                Tags::Any => Some(None),
                Tags::Ids(ids) => Some(Some(ids)),
            },
        ))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PollParams {
    type Rejection = ApiError;

    /// Most polls send no query string: they skip the deserialiser.
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.uri.query().is_none() {
            return Ok(Self::default());
        }
        let Query(params) = Query::from_request_parts(parts, state).await?;
        Ok(params)
    }
}

impl PollParams {
    /// The client-held id (`after`) and the wait (cut to `max_wait`; none
    /// when zero). Both are checked whatever else the request sends.
    ///
    /// # Errors
    /// [`ApiError::InvalidAfter`] or [`ApiError::InvalidWait`].
    pub fn read(
        &self,
        max_wait: Duration,
    ) -> Result<(Option<ChangeId>, Option<Duration>), ApiError> {
        let after = self.after.as_deref().map(params::parse_after).transpose()?;
        let wait = self
            .wait
            .as_deref()
            .map(|raw| params::parse_wait(raw, max_wait))
            .transpose()?
            .filter(|wait| !wait.is_zero());
        Ok((after, wait))
    }
}

/// The cursor the client holds, if any: `If-None-Match` wins over `after`
/// (either is checked anyway); with neither, the server holds the cursor.
fn client_cursor(after: Option<ChangeId>, if_none_match: IfNoneMatch) -> Option<ClientCursor> {
    match (if_none_match.0, after) {
        (Some(held), _) => Some(ClientCursor::IfNoneMatch(held)),
        (None, Some(id)) => Some(ClientCursor::After(id)),
        (None, None) => None,
    }
}

/// Learn whether the criticality level changed.
///
/// Three cursor modes, all answering the same JSON:
/// - plain (no `after`, no `If-None-Match`): the server-held cursor of the
///   prototype. The current state when this `App-name` has not been told it,
///   `{}` when it has or nothing was ever published. Each application is told
///   each state once; after a server crash it may be told again, never skipped.
/// - `?after=<status_change_id>`: `{}` only when that id is the current
///   state's; nothing is recorded but an acknowledgement.
/// - `If-None-Match: "<status_change_id>"`: `304 Not Modified` when it is the
///   current state's.
///
/// Add `?wait=<seconds>` to hold the request until there is something to say.
/// Every answer carries pacing headers; every non-empty one an `ETag`.
#[utoipa::path(
    get,
    path = "/secapp/update",
    tag = "criticality",
    params(
        ("App-name" = String, Header, description = "Name of the polling application; each name is told each state once. With an application's own token it must be that application.", example = "billing"),
        ("If-None-Match" = Option<String>, Header, description = "Client-held cursor as an ETag: `\"17\"`, a list, or `*`. Answers 304 when it names the current state.", example = "\"17\""),
        PollParams,
    ),
    responses(
        (status = 200, description = "The current state if it is news to this client, otherwise `{}`.", body = PollAnswer,
            headers(
                ("ETag" = String, description = "`\"<status_change_id>\"` of the state in a non-empty answer."),
                ("Secapp-Poll-After" = u64, description = "Seconds until the next poll: the server's interval, jittered ±20% (`0` after a long poll: re-poll at once)."),
                ("Secapp-State-Age" = u64, description = "Seconds since the current state's `Change_at` (absent when nothing was published)."),
                ("Secapp-Server-Time" = String, description = "The server's clock, RFC 3339 UTC with milliseconds."),
            ),
            examples(
                ("news" = (summary = "Not yet told", value = json!({"current_status": 4, "status_change_id": 17, "Change_at": "2026-03-01T12:05:00Z"}))),
                ("nothing new" = (summary = "Already told, or nothing published", value = json!({}))),
            )),
        (status = 304, description = "`If-None-Match` names the current state."),
        (status = 400, description = "`missing_app_name`, `invalid_app_name`, `invalid_after`, `invalid_wait`, `invalid_if_none_match` or `invalid_query`.", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `consume`), `app_disabled`, `app_name_mismatch` or `shared_token_not_allowed`.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn poll(
    State(state): State<AppState>,
    method: Method,
    principal: AsConsumer,
    if_none_match: IfNoneMatch,
    params: PollParams,
) -> Result<Response, ApiError> {
    let (after, wait) = params.read(state.requests.max_wait)?;
    let held = client_cursor(after, if_none_match);
    if let Some(held) = &held {
        state.hub.catch_up(held).await;
    }
    let _counted = wait.map(|_| state.metrics.long_poll());
    // axum answers HEAD with the GET handler; a HEAD answer has no body, so
    // it must record nothing.
    let look = if method == Method::HEAD {
        Look::Peek
    } else {
        Look::Deliver {
            long_poll: wait.is_some(),
        }
    };
    let deadline = wait.map(|wait| tokio::time::Instant::now() + wait);
    // Only a long poll subscribes: a plain poll need not touch the channels.
    let mut waiting = wait.map(|_| state.hub.subscribe(&principal, Role::Consume));
    let mut now = state.clock.now();
    state.metrics.apps().polled(&principal, now);
    // The head the last look compared the client's cursor with: a 304 must
    // carry its ETag, not that of a head published since.
    let mut seen: Option<Arc<Head>>;
    loop {
        // Mark the head seen before looking, so a change after the look
        // wakes the wait below.
        if let Some(waiting) = &mut waiting {
            waiting.mark_seen();
        }
        let looked = match &held {
            None => Compared {
                news: state.hub.poll_shared(&principal.app, now, look).await,
                head: None,
            },
            Some(held) => state.hub.compare(&principal.app, held, now, look),
        };
        if let Some(head) = looked.news {
            let mut response =
                Json(PollAnswer::Changed(wire::current_state(&head))).into_response();
            set_etag(&mut response, &head);
            pace(&state, &mut response, Some(&head), wait.is_some(), now);
            return Ok(response);
        }
        seen = looked.head;
        let (Some(deadline), Some(waiting)) = (deadline, &mut waiting) else {
            break;
        };
        match tokio::time::timeout_at(deadline, waiting.changed()).await {
            Ok(Woken::Head(_)) => {}
            Ok(Woken::Refused(lapsed)) => {
                return Err(auth::lapsed(&principal, Role::Consume, lapsed));
            }
            Ok(Woken::Ended) | Err(_) => break,
        }
        now = state.clock.now();
    }
    let mut response = match (&held, &seen) {
        (Some(ClientCursor::IfNoneMatch(_)), Some(head)) => {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            set_etag(&mut response, head);
            response
        }
        _ => nothing_new(),
    };
    if wait.is_some() {
        now = state.clock.now();
    }
    let head = seen.or_else(|| state.hub.head());
    pace(&state, &mut response, head.as_deref(), wait.is_some(), now);
    Ok(response)
}

/// `{}`, the answer of most polls, as a body written once rather than
/// serialised each time.
fn nothing_new() -> Response {
    let mut response = Response::new(axum::body::Body::from(NOTHING_NEW));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// [`PollAnswer::Unchanged`] as JSON.
const NOTHING_NEW: &[u8] = b"{}";

fn set_etag(response: &mut Response, head: &Head) {
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", head.change.id)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
}

/// Pacing hints: when to poll next, how old the state is, the server's clock.
fn pace(
    state: &AppState,
    response: &mut Response,
    head: Option<&Head>,
    long_poll: bool,
    now: DateTime<Utc>,
) {
    let headers = response.headers_mut();
    // The answer depends on who asks and when: no cache may keep it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let next = if long_poll {
        0
    } else {
        // ±20% so a fleet started together does not poll in lockstep.
        let factor = 0.8 + 0.4 * fastrand::f64();
        (state.requests.poll_interval.as_secs_f64() * factor)
            .round()
            .max(1.0) as u64
    };
    headers.insert(crate::headers::POLL_AFTER.clone(), HeaderValue::from(next));
    if let Some(head) = head {
        let age = now
            .signed_duration_since(head.change.changed_at.instant())
            .num_seconds()
            .max(0);
        headers.insert(crate::headers::STATE_AGE.clone(), HeaderValue::from(age));
    }
    if let Some(time) = server_time(now) {
        headers.insert(crate::headers::SERVER_TIME.clone(), time);
    }
}

/// `now` as the `Secapp-Server-Time` value. Writing a date out costs more
/// than the rest of pacing, and at thousands of polls a second most fall in
/// the millisecond of the one before, so each worker thread keeps the last
/// value it wrote.
fn server_time(now: DateTime<Utc>) -> Option<HeaderValue> {
    thread_local! {
        static LAST: RefCell<Option<(i64, HeaderValue)>> = const { RefCell::new(None) };
    }
    let millisecond = now.timestamp_millis();
    LAST.with_borrow_mut(|last| {
        if let Some((at, value)) = last.as_ref()
            && *at == millisecond
        {
            return Some(value.clone());
        }
        let value = HeaderValue::from_str(&secapp_domain::shown(now)).ok()?;
        *last = Some((millisecond, value.clone()));
        Some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secapp_api::Empty;

    #[test]
    fn the_written_empty_answer_is_the_serialised_one() {
        let serialised = serde_json::to_vec(&PollAnswer::Unchanged(Empty {})).unwrap();
        assert_eq!(serialised, NOTHING_NEW);
    }
}

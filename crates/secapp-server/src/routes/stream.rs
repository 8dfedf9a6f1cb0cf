//! `GET /secapp/stream`: server-sent events carrying every new head.
//!
//! The head is sent at connect (unless `Last-Event-ID` names it) and on every
//! change. Each stream reads the hub's `watch` channel, which keeps only the
//! newest head: a reader too slow to take every event skips straight to the
//! newest, never to an older one, and costs the others nothing, since the
//! stream is only polled when its connection can take more bytes.

use std::convert::Infallible;
use std::sync::Arc;

use crate::auth::{AsConsumer, single};
use crate::error::ApiError;
use crate::hub::{ClientCursor, Hub, Subscription, Woken};
use crate::routes::params;
use crate::routes::wire;
use crate::state::AppState;
use crate::streams::StreamPermit;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use secapp_domain::{AppName, ChangeId, Head, Role};

/// Stream the criticality level as server-sent events.
///
/// Each event's `id` is the `status_change_id` and its `data` the same JSON
/// as a poll answer. The current state is sent at connect unless
/// `Last-Event-ID` equals its id, then every new state as it is published. A
/// `:heartbeat` comment is sent when the stream is otherwise idle. The stream
/// ends when the server shuts down; reconnect with `Last-Event-ID`.
#[utoipa::path(
    get,
    path = "/secapp/stream",
    tag = "criticality",
    params(
        ("App-name" = String, Header, description = "Name of the watching application. With an application's own token it must be that application.", example = "billing"),
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received; the current state is not sent again if it is that one.", example = "17"),
    ),
    responses(
        (status = 200, description = "An event stream: `id: 17` / `data: {\"current_status\":4,\"status_change_id\":17,\"Change_at\":\"2026-03-01T12:05:00Z\"}`.",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "`missing_app_name`, `invalid_app_name` or `invalid_last_event_id`.", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `consume`), `app_disabled`, `app_name_mismatch` or `shared_token_not_allowed`.", body = secapp_api::ErrorBody),
        (status = 429, description = "`too_many_streams`: a cap on open streams is reached; retry after `Retry-After` seconds.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn stream(
    State(state): State<AppState>,
    principal: AsConsumer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last_event_id =
        params::parse_last_event_id(single(&headers, &crate::headers::LAST_EVENT_ID)?)?;
    let permit = state.streams.acquire(&principal.app)?;
    if let Some(id) = last_event_id {
        state.hub.catch_up(&ClientCursor::LastEventId(id)).await;
    }
    let subscription = state.hub.subscribe(&principal, Role::Consume);
    let now = state.clock.now();
    let first = state.hub.open_stream(&principal.app, last_event_id, now);
    state.metrics.apps().streamed(&principal, now);
    let watcher = Watcher {
        hub: state.hub.clone(),
        app: principal.0.app,
        subscription,
        last_sent: first.as_ref().map(|head| head.change.id).or(last_event_id),
        pending: first,
        clock: state.clock.clone(),
        _permit: permit,
    };
    let keep_alive = KeepAlive::new()
        .interval(state.requests.heartbeat)
        .text("heartbeat");
    Ok(Sse::new(events(watcher))
        .keep_alive(keep_alive)
        .into_response())
}

/// Everything one open stream holds.
struct Watcher {
    hub: Arc<Hub>,
    app: AppName,
    /// Wakes on every new head; ends the stream once its caller is no
    /// longer admitted, or the server stops.
    subscription: Subscription,
    /// The id of the newest head sent (or held by the client at connect).
    last_sent: Option<ChangeId>,
    /// A head to send before waiting.
    pending: Option<Arc<Head>>,
    clock: Arc<dyn crate::clock::Clock>,
    /// Keeps this stream's place under the caps until the stream is dropped.
    _permit: StreamPermit,
}

fn events(watcher: Watcher) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(watcher, |mut watcher| async move {
        loop {
            if let Some(head) = watcher.pending.take() {
                return Some((Ok(event(&head)), watcher));
            }
            match watcher.subscription.changed().await {
                Woken::Head(Some(head)) if watcher.last_sent != Some(head.change.id) => {
                    watcher
                        .hub
                        .streamed(&watcher.app, &head, watcher.clock.now());
                    watcher.last_sent = Some(head.change.id);
                    watcher.pending = Some(head);
                }
                Woken::Head(_) => {}
                // The client reconnects, and hears the refusal then.
                Woken::Refused(_) | Woken::Ended => return None,
            }
        }
    })
}

fn event(head: &Head) -> Event {
    let data = serde_json::to_string(&wire::current_state(head)).unwrap_or_default();
    Event::default().id(head.change.id.to_string()).data(data)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt as _;

    use super::*;
    use crate::clock::SystemClock;
    use crate::store::Store;
    use crate::store::sqlite::SqliteStore;
    use crate::streams::StreamLimits;

    async fn publish(hub: &Hub, minute: u32) -> ChangeId {
        let change =
            crate::store::conformance::change(3, &format!("2026-03-01T12:{minute:02}:00Z"));
        hub.publish(change).await.unwrap().recorded().unwrap().id
    }

    #[tokio::test]
    async fn a_lagging_stream_skips_straight_to_the_newest_head() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join(crate::store::sqlite::DATABASE_FILE)).unwrap(),
        );
        let hub = Arc::new(Hub::new(
            crate::hub::Parts::alone(store.clone()),
            store.snapshot().await.unwrap(),
        ));
        let app = AppName::parse("slow").unwrap();
        let caller = crate::access::Principal {
            app: app.clone(),
            roles: crate::auth::SHARED_TOKEN_ROLES,
            token_id: Arc::from(crate::access::SHARED_TOKEN_ID),
            token: None,
        };
        let watcher = Watcher {
            hub: hub.clone(),
            app: app.clone(),
            subscription: hub.subscribe(&caller, Role::Consume),
            last_sent: None,
            pending: None,
            clock: Arc::new(SystemClock),
            _permit: Arc::new(StreamLimits::new(1, 1)).acquire(&app).unwrap(),
        };
        let mut events = Box::pin(events(watcher));
        // Ten heads are published while the reader takes nothing.
        let mut newest = ChangeId(0);
        for minute in 0..10 {
            newest = publish(&hub, minute).await;
        }
        let first = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let text = format!("{first:?}");
        assert!(text.contains(&format!("id: {newest}\\ndata")), "{text}");
        // Nothing older is queued behind it.
        let next = tokio::time::timeout(Duration::from_millis(100), events.next()).await;
        assert!(next.is_err(), "no further event until the next change");
        store.close().await.unwrap();
    }
}

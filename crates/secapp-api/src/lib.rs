//! Wire types of the secapp HTTP API.
//!
//! These structs are the JSON the prototype's clients already speak, so their
//! field names (`current_status`, `Change_at`, `processed_id`,
//! `status_change_id`) are part of the contract and must not change. They are
//! plain serde types with no validation: the server turns them into domain
//! newtypes at the edge, and clients (tests, a future SDK) use them as they are.
//!
//! The header names are here too, so the server and its clients cannot drift.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod admin;
pub mod alerts;
pub mod errors;

/// Header naming the application that publishes or polls.
pub const APP_NAME_HEADER: &str = "App-name";
/// Header carrying the credential (`Authorization: Bearer <token>` is
/// accepted too).
pub const TOKEN_HEADER: &str = "Token";
/// Header making a publish safe to retry: one key per intended change.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// Answer header: seconds until the client should poll again (jittered;
/// `0` after a long poll, whose client should re-poll at once).
pub const POLL_AFTER_HEADER: &str = "Secapp-Poll-After";
/// Answer header: seconds since the current state's `Change_at`.
pub const STATE_AGE_HEADER: &str = "Secapp-State-Age";
/// Answer header: the server's clock, RFC 3339 with milliseconds.
pub const SERVER_TIME_HEADER: &str = "Secapp-Server-Time";

/// Body of `POST /secapp/update`: publish a change of the criticality level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"current_status": 4, "Change_at": "2026-03-01T12:05:00Z"}))]
pub struct PublishRequest {
    /// The new criticality level, an integer in the configured range (1..=5 by default).
    pub current_status: i64,
    /// When the level changed: RFC 3339 with `Z` or an offset, or a naive ISO 8601
    /// time taken as UTC. When absent, the server's time of receipt is used.
    #[serde(rename = "Change_at", default, skip_serializing_if = "Option::is_none")]
    pub change_at: Option<String>,
}

/// Answer to an accepted `POST /secapp/update`, sent once the change is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"processed_id": 17}))]
pub struct PublishAnswer {
    /// Identifier of the recorded change; strictly increases with every publish.
    pub processed_id: i64,
}

/// The current state, as told to a consumer that has not yet been told it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"current_status": 4, "status_change_id": 17, "Change_at": "2026-03-01T12:05:00Z"}))]
pub struct CurrentState {
    /// The criticality level in force.
    pub current_status: i64,
    /// The `processed_id` of the change that set this state.
    pub status_change_id: i64,
    /// When the level changed, normalised to UTC with `Z`.
    #[serde(rename = "Change_at")]
    pub change_at: String,
}

/// Answer to `GET /secapp/update`: the current state, or `{}` when there is
/// nothing new for this application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PollAnswer {
    /// This application has not been told the current state yet.
    Changed(CurrentState),
    /// Nothing new: serialised as `{}`.
    Unchanged(Empty),
}

/// The empty JSON object `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": "invalid_token", "detail": "the token is not valid: check the token you were given"}))]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `missing_app_name`.
    pub error: String,
    /// What a person should do about it.
    pub detail: String,
}

/// Answer to `GET /secapp/consumers`: what each application was sent and
/// acknowledged, next to the current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsumersAnswer {
    /// The current state, or `null` when nothing was ever published.
    pub head: Option<CurrentState>,
    /// One entry per application the server has sent a state to or heard a
    /// cursor from, and per enabled registered application with the
    /// `consume` role (never sent anything: `behind` once a state exists),
    /// sorted by name.
    pub consumers: Vec<ConsumerView>,
}

/// What the server knows about one application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "app": "billing",
    "sent": {"status_change_id": 17, "at": "2026-03-01T12:05:00.120Z", "mode": "stream", "long_poll": false},
    "acknowledged": {"status_change_id": 12, "at": "2026-03-01T11:00:02.010Z", "mode": "after", "long_poll": true},
    "behind": false, "registered": true,
    "alert": {"state": "fresh", "since": "2026-03-01T11:00:02.010Z", "last_seen": "2026-03-01T12:05:00.120Z",
              "stale_after": "15m", "stale_after_seconds": 900}
}))]
pub struct ConsumerView {
    /// The application name.
    pub app: String,
    /// Whether it is a registered application; `false` for a name seen only
    /// with the shared compatibility token.
    pub registered: bool,
    /// The newest state sent to it, by any mode (a send is not proof of receipt).
    pub sent: Option<SightingView>,
    /// The newest state it proved it holds with a client-held cursor
    /// (`after`, `If-None-Match` or `Last-Event-ID`).
    pub acknowledged: Option<SightingView>,
    /// True when neither the newest send nor the newest acknowledgement is
    /// the current state: this application may act on an old level.
    pub behind: bool,
    /// Its stale-consumer alert state, when it is watched and was evaluated.
    pub alert: Option<alerts::AlertStatus>,
}

/// A state sent or acknowledged: which, when, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SightingView {
    /// The `status_change_id` of the state.
    pub status_change_id: i64,
    /// When, in UTC.
    pub at: String,
    /// `poll` (server-held cursor), `after`, `if-none-match` or `stream`.
    pub mode: String,
    /// Whether it happened in a long poll (`?wait=`).
    pub long_poll: bool,
}

/// Answer to `GET /secapp/history`: published changes, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HistoryAnswer {
    /// One page of changes, newest first.
    pub changes: Vec<HistoryEntry>,
    /// Pass as `before` to read the next (older) page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// One published change, as the audit history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "processed_id": 17, "current_status": 4, "Change_at": "2026-03-01T12:05:00Z",
    "published_by": "security-team", "received_at": "2026-03-01T12:05:01.203Z",
    "source_address": "10.1.2.3", "token_id": "tok_3f9a0c1d2e4b5a69", "outcome": "head"
}))]
pub struct HistoryEntry {
    /// The id the publish was given.
    pub processed_id: i64,
    /// The level announced.
    pub current_status: i64,
    /// When the producer said the level changed, normalised to UTC.
    #[serde(rename = "Change_at")]
    pub change_at: String,
    /// The `App-name` of the publisher.
    pub published_by: String,
    /// When the server received the publish, UTC with milliseconds.
    pub received_at: String,
    /// The address the publish came from, when known.
    pub source_address: Option<String>,
    /// The id of the token it was published with: a `tok_…` id, `shared` for
    /// the shared compatibility token, `null` for changes recorded before
    /// tokens were kept.
    pub token_id: Option<String>,
    /// `head` (it became the current state), `tie` (same `Change_at` as the
    /// current state, which kept it) or `older`.
    pub outcome: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_answers_have_the_prototype_shape() {
        let told = PollAnswer::Changed(CurrentState {
            current_status: 4,
            status_change_id: 17,
            change_at: "2026-03-01T12:05:00Z".into(),
        });
        assert_eq!(
            serde_json::to_string(&told).unwrap(),
            r#"{"current_status":4,"status_change_id":17,"Change_at":"2026-03-01T12:05:00Z"}"#
        );
        let nothing = PollAnswer::Unchanged(Empty {});
        assert_eq!(serde_json::to_string(&nothing).unwrap(), "{}");
    }

    #[test]
    fn an_empty_object_reads_back_as_unchanged() {
        let back: PollAnswer = serde_json::from_str("{}").unwrap();
        assert_eq!(back, PollAnswer::Unchanged(Empty {}));
        let back: PollAnswer = serde_json::from_str(
            r#"{"current_status":2,"status_change_id":3,"Change_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert!(matches!(back, PollAnswer::Changed(s) if s.status_change_id == 3));
    }

    #[test]
    fn change_at_is_optional_in_a_publish() {
        let body: PublishRequest = serde_json::from_str(r#"{"current_status":3}"#).unwrap();
        assert_eq!(body.change_at, None);
    }
}

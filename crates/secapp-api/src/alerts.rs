//! Stale-consumer alerts: `GET /secapp/alerts` and its history, and the
//! alert state the consumer report carries.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A consumer application's alert state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "state": "stale", "since": "2026-03-01T12:15:00.000Z",
    "last_seen": "2026-03-01T12:00:00.000Z", "stale_after": "15m", "stale_after_seconds": 900
}))]
pub struct AlertStatus {
    /// `fresh` (seen within its allowance), `stale` (not seen for longer)
    /// or `never_seen` (registered, never seen, allowance not yet over).
    pub state: String,
    /// Since when it is in that state (a stale one: when its allowance ran out).
    pub since: String,
    /// When it last polled, long-polled or held a stream.
    pub last_seen: Option<String>,
    /// Its allowance, as `15m`.
    pub stale_after: String,
    /// Its allowance in seconds.
    pub stale_after_seconds: u64,
}

/// One watched consumer application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertView {
    /// The application.
    pub app: String,
    /// Whether it is registered; `false` for a name spoken for with the
    /// shared token.
    pub registered: bool,
    /// Its state, since when, when it was last seen, its allowance.
    #[serde(flatten)]
    pub status: AlertStatus,
}

/// Answer to `GET /secapp/alerts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertsAnswer {
    /// When the states were last evaluated (every `--watch-interval`);
    /// null before the first evaluation.
    pub checked_at: Option<String>,
    /// Every watched consumer application, by name.
    pub alerts: Vec<AlertView>,
}

/// One change of alert state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertTransitionView {
    /// Its id; later changes have larger ones.
    pub id: i64,
    /// The application.
    pub app: String,
    /// The state before.
    pub from: String,
    /// The state after.
    pub to: String,
    /// When the new state began.
    pub at: String,
    /// When the application was last seen, at that time.
    pub last_seen: Option<String>,
}

/// Answer to `GET /secapp/alerts/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertHistoryAnswer {
    /// Changes of state, newest first.
    pub transitions: Vec<AlertTransitionView>,
}

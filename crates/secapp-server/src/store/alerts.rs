//! The records of the consumer watch: when each consumer application was
//! last seen, and its alert state with the history of its changes.

use chrono::{DateTime, Utc};
use secapp_domain::AppName;

use super::NewEvent;

/// A consumer application's alert state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    /// Seen within its allowance.
    Fresh,
    /// Not seen for longer than its allowance.
    Stale,
    /// Registered, never seen, and its allowance has not run out yet.
    NeverSeen,
}

impl AlertState {
    /// Its name on the wire and in the store.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Stale => "stale",
            Self::NeverSeen => "never_seen",
        }
    }

    /// The state a name stands for.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "fresh" => Some(Self::Fresh),
            "stale" => Some(Self::Stale),
            "never_seen" => Some(Self::NeverSeen),
            _ => None,
        }
    }
}

/// A state and since when it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The state.
    pub state: AlertState,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// What the store holds of one watched consumer application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRecord {
    /// The application.
    pub app: AppName,
    /// When it last polled or held a stream, as far as any server knows.
    pub last_seen: Option<DateTime<Utc>>,
    /// Its alert state; `None` until first evaluated.
    pub standing: Option<Standing>,
}

/// A change of alert state to record, only if the stored state is still
/// `from` (so two servers evaluating at once record it once).
#[derive(Debug, Clone, PartialEq)]
pub struct WatchChange {
    /// The application.
    pub app: AppName,
    /// The state it is changing from, as last read; `None` for the first.
    pub from: Option<Standing>,
    /// The state it is changing to.
    pub to: Standing,
    /// When it was last seen, for the history.
    pub last_seen: Option<DateTime<Utc>>,
    /// The event to send about it, if any.
    pub event: Option<NewEvent>,
}

/// One change of alert state, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTransition {
    /// Its id: later changes have larger ones.
    pub id: i64,
    /// The application.
    pub app: String,
    /// The state before.
    pub from: AlertState,
    /// The state after.
    pub to: AlertState,
    /// When the new state began.
    pub at: DateTime<Utc>,
    /// When the application was last seen, at that time.
    pub last_seen: Option<DateTime<Utc>>,
}

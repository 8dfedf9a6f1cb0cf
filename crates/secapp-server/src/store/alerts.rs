//! The records of the consumer watch (when each consumer application was
//! last seen, and its alert state with the history of its changes) and of
//! the outbox (events, and their delivery to each webhook).

use chrono::{DateTime, Utc};
use secapp_domain::AppName;

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

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A publish became the head with a different level.
    LevelChanged,
    /// A consumer application went stale.
    ConsumerStale,
    /// A stale consumer application was seen again.
    ConsumerRecovered,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [Self; 3] = [
        Self::LevelChanged,
        Self::ConsumerStale,
        Self::ConsumerRecovered,
    ];

    /// Its name on the wire, in the configuration and in the store.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LevelChanged => "level_changed",
            Self::ConsumerStale => "consumer_stale",
            Self::ConsumerRecovered => "consumer_recovered",
        }
    }

    /// The kind a name stands for.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// An event to put in the outbox, in the same transaction as its cause.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What it is about.
    pub kind: EventKind,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Its `data`.
    pub data: serde_json::Value,
    /// The webhooks (by name) to deliver it to.
    pub webhooks: Vec<String>,
}

impl NewEvent {
    /// The event a publish writes in its own transaction, if any: when
    /// `change`, recorded as `id` with `outcome`, becomes the head with a
    /// level other than the head `ledger` holds before it, and a webhook
    /// wants `level_changed`. Every store decides it here.
    #[must_use]
    pub fn for_publish(
        change: &super::NewChange,
        id: secapp_domain::ChangeId,
        outcome: secapp_domain::Outcome,
        ledger: &secapp_domain::Ledger,
    ) -> Option<Self> {
        let previous = ledger.head().map(|head| head.change.level);
        let changes_level = outcome == secapp_domain::Outcome::Head
            && previous != Some(change.level)
            && !change.level_webhooks.is_empty();
        changes_level.then(|| Self::level_changed(change, id, ledger.version().next(), previous))
    }

    /// `level_changed`: `change`, recorded as `id`, became head `version`
    /// with a level other than `previous` (none: the first head).
    #[must_use]
    pub fn level_changed(
        change: &super::NewChange,
        id: secapp_domain::ChangeId,
        version: secapp_domain::Version,
        previous: Option<secapp_domain::Level>,
    ) -> Self {
        Self {
            kind: EventKind::LevelChanged,
            at: change.received_at,
            data: serde_json::json!({
                "level": change.level.get(),
                "previous_level": previous.map(secapp_domain::Level::get),
                "change_at": change.changed_at.to_string(),
                "processed_id": id.0,
                "head_version": version.0,
                "published_by": change.published_by.as_str(),
            }),
            webhooks: change.level_webhooks.clone(),
        }
    }
}

/// An event's delivery to one webhook, held by the sender that claimed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event's id.
    pub event_id: i64,
    /// The webhook's name.
    pub webhook: String,
    /// What the event is about.
    pub kind: EventKind,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Its `data`, as JSON text.
    pub data: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// How an attempt to deliver ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver took it.
    Delivered,
    /// It failed; try again at `next_at`.
    Retry {
        /// When to try again.
        next_at: DateTime<Utc>,
        /// What went wrong.
        error: String,
    },
    /// It failed and its retry period is over: a dead letter.
    Dead {
        /// What went wrong last.
        error: String,
    },
}

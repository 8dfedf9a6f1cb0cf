//! The records of the outbox: events, written in the transaction of their
//! cause, and their delivery to each sink (a webhook, a broker) that wants
//! them, in order.

use chrono::{DateTime, Utc};

/// What an event is about. The first three are about a publish, and carry
/// the change as the API shows a state; a sink takes at most one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A publish was recorded, whatever it did to the head.
    PublishAccepted,
    /// A publish became the head.
    StateChanged,
    /// A publish became the head with a level other than the one before.
    LevelChanged,
    /// A consumer application went stale.
    ConsumerStale,
    /// A stale consumer application was seen again.
    ConsumerRecovered,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::PublishAccepted,
        Self::StateChanged,
        Self::LevelChanged,
        Self::ConsumerStale,
        Self::ConsumerRecovered,
    ];

    /// Its name on the wire, in the configuration and in the store.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PublishAccepted => "publish_accepted",
            Self::StateChanged => "state_changed",
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

    /// Its CloudEvents `type`.
    #[must_use]
    pub fn cloud_type(self) -> &'static str {
        match self {
            Self::PublishAccepted => "secapp.publish.accepted",
            Self::StateChanged => "secapp.state.changed",
            Self::LevelChanged => "secapp.level.changed",
            Self::ConsumerStale => "secapp.consumer.stale",
            Self::ConsumerRecovered => "secapp.consumer.recovered",
        }
    }

    /// Whether it is about a publish (its data is the change as a state,
    /// and its id the change's).
    #[must_use]
    pub fn is_state(self) -> bool {
        matches!(
            self,
            Self::PublishAccepted | Self::StateChanged | Self::LevelChanged
        )
    }

    fn index(self) -> usize {
        match self {
            Self::PublishAccepted => 0,
            Self::StateChanged => 1,
            Self::LevelChanged => 2,
            Self::ConsumerStale => 3,
            Self::ConsumerRecovered => 4,
        }
    }
}

/// Which sinks (by name) want each kind of event: what the outbox writes a
/// delivery for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscribers {
    by_kind: [Vec<String>; EventKind::ALL.len()],
}

impl Subscribers {
    /// Each sink under the kinds it wants, in the order given.
    pub fn new<'a>(sinks: impl IntoIterator<Item = (&'a str, &'a [EventKind])>) -> Self {
        let mut by_kind: [Vec<String>; EventKind::ALL.len()] = Default::default();
        for (name, kinds) in sinks {
            for kind in kinds {
                by_kind[kind.index()].push(name.to_owned());
            }
        }
        Self { by_kind }
    }

    /// The sinks that want `kind`.
    #[must_use]
    pub fn of(&self, kind: EventKind) -> &[String] {
        &self.by_kind[kind.index()]
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
    /// The sinks (by name) to deliver it to.
    pub sinks: Vec<String>,
}

/// An event's delivery to one sink, held by the relay that claimed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event's id in the outbox.
    pub event_id: i64,
    /// The sink's name.
    pub sink: String,
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
    /// It was not tried (one before it failed): due again at once, behind
    /// that one, with no attempt counted.
    Unsent,
}

/// A delivery that was given up on, kept with its last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event's id in the outbox.
    pub event_id: i64,
    /// The sink's name.
    pub sink: String,
    /// What the event is about.
    pub kind: EventKind,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Attempts made.
    pub attempts: u32,
    /// When it was given up on.
    pub dead_at: Option<DateTime<Utc>>,
    /// What went wrong last.
    pub last_error: Option<String>,
}

/// The columns a finished attempt writes, the same in every store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRow<'a> {
    /// `pending`, `delivered` or `dead`.
    pub state: &'static str,
    /// Attempts to add: 1, or 0 for one not tried.
    pub attempted: i32,
    /// When it stopped being pending.
    pub finished_at: Option<DateTime<Utc>>,
    /// The error to keep (the last one is kept when `None`).
    pub error: Option<&'a str>,
    /// When it is next due (for a pending one).
    pub next_attempt_at: DateTime<Utc>,
}

impl DeliveryOutcome {
    /// What recording this outcome, at `at`, writes.
    #[must_use]
    pub fn row(&self, at: DateTime<Utc>) -> FinishedRow<'_> {
        let (state, attempted, next_attempt_at, error) = match self {
            Self::Delivered => ("delivered", 1, at, None),
            Self::Retry { next_at, error } => ("pending", 1, *next_at, Some(error.as_str())),
            Self::Dead { error } => ("dead", 1, at, Some(error.as_str())),
            Self::Unsent => ("pending", 0, at, None),
        };
        FinishedRow {
            state,
            attempted,
            finished_at: (state != "pending").then_some(at),
            error,
            next_attempt_at,
        }
    }
}

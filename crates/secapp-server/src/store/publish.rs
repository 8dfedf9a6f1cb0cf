//! The one publish algorithm, for every backend: how a change is classified
//! against the head, which version it gets, how its idempotency key is
//! claimed and what a clash answers, when the other servers are told, and
//! which event goes to the outbox. A backend supplies only the SQL of each
//! step ([`PublishUnit`]) inside a unit of work it can keep or discard (a
//! savepoint in a batch, or a transaction of its own), and the ordering
//! state read from the database in that transaction ([`Ledger`]).
//!
//! The steps are `async` so a backend with an asynchronous driver
//! (PostgreSQL) awaits them; one whose driver is synchronous (SQLite, on
//! its worker thread) does its work inside each step and never waits, so
//! the whole publish completes on its first poll ([`run_to_completion`]).

use std::future::Future;

use secapp_domain::{AppName, ChangeId, Ledger, Level, Outcome, Version};

use super::{EventKind, Idempotency, NewChange, NewEvent, Published, Recorded, StoreError};

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key is now the change's.
    Claimed,
    /// An earlier publish holds it.
    Held {
        /// The id that publish was given.
        id: ChangeId,
        /// Its request as recorded: a retry repeats it exactly.
        request: String,
    },
    /// The key was taken and released while being claimed (another
    /// writer's key expired meanwhile): the caller may retry.
    Vanished,
}

/// The SQL of one publish, inside a unit of work the backend opened (with
/// the head read in it): every step writes there, and nothing is visible
/// to others until [`keep`](Self::keep).
pub trait PublishUnit {
    /// Deletes `app`'s use of the key when it was recorded before the
    /// window (`idempotency.not_before`): an expired use decides nothing
    /// and must not block a new claim.
    fn forget_expired_key(
        &mut self,
        app: &AppName,
        idempotency: &Idempotency,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Inserts the change with its outcome and, when it becomes the head,
    /// its head version; answers its id.
    fn insert_change(
        &mut self,
        change: &NewChange,
        outcome: Outcome,
        head_version: Option<Version>,
    ) -> impl Future<Output = Result<ChangeId, StoreError>>;

    /// Claims the key for the change just inserted as `id`, insert-first
    /// (`INSERT … ON CONFLICT DO NOTHING`, then read who holds it), so two
    /// writers racing on one key record one change between them.
    fn claim_key(
        &mut self,
        change: &NewChange,
        idempotency: &Idempotency,
        id: ChangeId,
    ) -> impl Future<Output = Result<KeyClaim, StoreError>>;

    /// Tells every other server sharing the database, once this commits,
    /// that the head moved; nothing where no other server can share it.
    fn announce_head(&mut self) -> impl Future<Output = Result<(), StoreError>>;

    /// Writes `event` to the outbox.
    fn insert_event(&mut self, event: &NewEvent) -> impl Future<Output = Result<(), StoreError>>;

    /// Keeps every write of this publish.
    fn keep(self) -> impl Future<Output = Result<(), StoreError>>;

    /// Undoes every write of this publish.
    fn discard(self) -> impl Future<Output = Result<(), StoreError>>;
}

/// Records `change` through `unit`, classified against `ledger` (the head
/// as the database holds it in the backend's transaction), which moves on
/// when the change becomes the head. A change whose key an earlier publish
/// holds leaves nothing behind: it answers that publish's id (the same
/// request) or [`Published::KeyReused`] (another one).
///
/// # Errors
/// [`StoreError`] from any step; the backend then undoes the unit (by
/// dropping it, or by failing its whole transaction).
pub async fn publish(
    mut unit: impl PublishUnit,
    ledger: &mut Ledger,
    change: &NewChange,
) -> Result<Published, StoreError> {
    if let Some(idempotency) = &change.idempotency {
        unit.forget_expired_key(&change.published_by, idempotency)
            .await?;
    }
    let outcome = ledger.classify(&change.changed_at);
    let head_version = (outcome == Outcome::Head).then(|| ledger.version().next());
    let id = unit.insert_change(change, outcome, head_version).await?;
    if let Some(idempotency) = &change.idempotency {
        match unit.claim_key(change, idempotency, id).await? {
            KeyClaim::Claimed => {}
            KeyClaim::Held {
                id: earlier,
                request,
            } => {
                unit.discard().await?;
                return Ok(if request == idempotency.request {
                    Published::Replayed { id: earlier }
                } else {
                    Published::KeyReused
                });
            }
            KeyClaim::Vanished => {
                return Err(StoreError::conflict(
                    "an idempotency key was taken and released while being claimed",
                ));
            }
        }
    }
    if outcome == Outcome::Head {
        unit.announce_head().await?;
    }
    for event in events_of(change, id, outcome, ledger) {
        unit.insert_event(&event).await?;
    }
    unit.keep().await?;
    Recorded::after_commit(ledger, change, id, outcome).map(Published::New)
}

/// Runs a future that never waits (every step done synchronously) to its
/// end on the calling thread.
///
/// # Errors
/// The future's own error, or [`StoreError::Corrupt`] if it did wait,
/// which would be a bug in a synchronous backend.
pub fn run_to_completion<T>(
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    use futures_util::FutureExt as _;
    work.now_or_never().unwrap_or_else(|| {
        Err(StoreError::corrupt(
            "a synchronous store step waited; nothing was kept",
        ))
    })
}

/// The events a publish writes in its own transaction: `change`, recorded
/// as `id` with `outcome` against the head `ledger` holds before it, is a
/// `publish_accepted`; a `state_changed` when it became the head; a
/// `level_changed` when it did with another level. Each only when a sink
/// wants it.
#[must_use]
pub fn events_of(
    change: &NewChange,
    id: ChangeId,
    outcome: Outcome,
    ledger: &Ledger,
) -> Vec<NewEvent> {
    let previous = ledger.head().map(|head| head.change.level);
    let head = outcome == Outcome::Head;
    let version = if head {
        ledger.version().next()
    } else {
        ledger.version()
    };
    [
        (EventKind::PublishAccepted, true),
        (EventKind::StateChanged, head),
        (
            EventKind::LevelChanged,
            head && previous != Some(change.level),
        ),
    ]
    .into_iter()
    .filter(|(kind, applies)| *applies && !change.sinks.of(*kind).is_empty())
    .map(|(kind, _)| NewEvent {
        kind,
        at: change.received_at,
        data: state_data(change, id, outcome, version, previous),
        sinks: change.sinks.of(kind).to_vec(),
    })
    .collect()
}

/// The data of an event about a publish: the change as the API shows a
/// state (`current_status`, `status_change_id`, `Change_at`), then what it
/// did and what came before.
fn state_data(
    change: &NewChange,
    id: ChangeId,
    outcome: Outcome,
    version: Version,
    previous: Option<Level>,
) -> serde_json::Value {
    serde_json::json!({
        "current_status": change.level.get(),
        "status_change_id": id.0,
        "Change_at": change.changed_at.to_string(),
        "outcome": outcome.as_str(),
        "head_version": version.0,
        "previous_status": previous.map(Level::get),
        "published_by": change.published_by.as_str(),
    })
}

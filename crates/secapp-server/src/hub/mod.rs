//! The live state every request reads: the current head and what the server
//! knows about each consumer application, and what follows a publish.
//!
//! A poll with nothing new touches only memory: one read of the head and one
//! map look-up under a short lock. Publishes go to the store first and reach
//! the head here only once durable ([`Hub::publish`] also does everything
//! else that follows a commit). Long polls and streams wait the same way
//! ([`Hub::subscribe`]). With other servers on the store, the head here is a
//! cache: [`Hub::advance`] takes what `replicas::follow` reads, and
//! [`Hub::catch_up`] reads the head when a client proves it stale.
//!
//! - `cursor.rs`: how a request looks ([`Look`]) and the cursor a client holds.
//! - `consumers.rs`: what each consumer application was told, sent and
//!   acknowledged, and writing that back in batches
//!   ([`Hub::flush_consumers`], on a timer and at shutdown; a crash between
//!   two flushes can only make an application be told a head again, never
//!   skip one).
//! - `subscribe.rs`: waiting for news, and checking the caller again meanwhile.

mod consumers;
mod cursor;
mod subscribe;
#[cfg(test)]
mod tests;

pub use cursor::{ClientCursor, Compared, Look};
pub use subscribe::{Subscription, Woken};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use secapp_domain::{ChangeId, Head, Outcome};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::clock::Clock;
use crate::metrics::{PublishCounts, PublishOutcome};
use crate::relay::Sinks;
use crate::store::{HistoryEntry, HistoryQuery, NewChange, Published, Snapshot, Store, StoreError};
use consumers::Consumers;

/// What the hub works with besides its own state.
#[derive(Clone)]
pub struct Parts {
    /// The truth the head and consumer records are cached from.
    pub store: Arc<dyn Store>,
    /// The registry, to check waiting callers again when it changes.
    pub access: Arc<Access>,
    /// The configured sinks: who wants which events about a publish, and
    /// the relay to wake.
    pub sinks: Arc<Sinks>,
    /// Publishes counted by outcome.
    pub publishes: PublishCounts,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Cancelled when the server begins shutting down: waits end.
    pub shutdown: CancellationToken,
}

#[cfg(test)]
impl Parts {
    /// The parts of a hub alone on `store`: nobody registered, no sinks,
    /// the system clock.
    pub(crate) fn alone(store: Arc<dyn Store>) -> Self {
        Self {
            access: Arc::new(Access::new(store.clone(), Vec::new(), Vec::new(), None)),
            store,
            sinks: Arc::new(Sinks::default()),
            publishes: PublishCounts::default(),
            clock: Arc::new(crate::clock::SystemClock),
            shutdown: CancellationToken::new(),
        }
    }
}

/// Shared live state. Cloning the `Arc` around it is how handlers share it.
pub struct Hub {
    parts: Parts,
    /// The durable head; a `watch` so long polls and streams wake on change
    /// and a slow reader only ever sees the newest value.
    head: watch::Sender<Option<Arc<Head>>>,
    /// A std `Mutex`: held for a map look-up, never across an `.await`.
    consumers: Mutex<Consumers>,
    /// Whether other servers share the store, so a delivery is confirmed there.
    shared: bool,
    /// Held while reading the head from the store for [`catch_up`](Hub::catch_up):
    /// one read at a time, and those waiting see its result.
    catching_up: tokio::sync::Mutex<()>,
}

impl Hub {
    /// Builds the live state from what the store holds.
    #[must_use]
    pub fn new(parts: Parts, snapshot: Snapshot) -> Self {
        let (head, _) = watch::channel(snapshot.head.map(Arc::new));
        let consumers = Consumers {
            by_app: snapshot
                .consumers
                .into_iter()
                .map(|record| (record.app, record.consumer))
                .collect(),
            dirty: HashSet::new(),
        };
        Self {
            shared: parts.store.notices().is_some(),
            parts,
            head,
            consumers: Mutex::new(consumers),
            catching_up: tokio::sync::Mutex::new(()),
        }
    }

    /// The current head.
    #[must_use]
    pub fn head(&self) -> Option<Arc<Head>> {
        self.head.borrow().clone()
    }

    /// Before a client-held cursor is compared: a client holding a newer id
    /// than this server's head heard it from a server that is ahead (head
    /// ids only grow). On a shared store this server then reads the head
    /// from the store, the truth, so it never answers an older head than
    /// the client holds. An id newer than the store's head is the client's
    /// mistake, answered as before (with the head). Alone on its store
    /// (SQLite) there is nothing to catch up with.
    pub async fn catch_up(&self, held: &ClientCursor) {
        let behind = |held: ChangeId| self.head().is_none_or(|head| head.change.id < held);
        let Some(held) = held.newest().filter(|held| self.shared && behind(*held)) else {
            return;
        };
        let _one = self.catching_up.lock().await;
        // Another request's read may have caught up meanwhile.
        if !behind(held) {
            return;
        }
        match self.parts.store.head().await {
            Ok(Some(head)) => {
                self.advance(&head);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the head to catch up; answering from memory")
            }
        }
    }

    /// Records a change durably, then does what follows a commit: makes it
    /// the live head if it won (waking long polls and streams), wakes the
    /// relay for the events it may have left in the outbox, logs and
    /// counts it. The sinks to tell are filled in here, from the
    /// configuration, so a caller only says what was published.
    ///
    /// # Errors
    /// [`StoreError`] when the store could not record it; nothing changed then.
    pub async fn publish(&self, mut change: NewChange) -> Result<Published, StoreError> {
        change.sinks = self.parts.sinks.subscribers();
        let (level, changed_at) = (change.level, change.changed_at);
        let app = change.published_by.clone();
        let published = self.parts.store.publish(change).await?;
        match &published {
            Published::New(recorded) => {
                self.advance(&recorded.head);
                self.parts.sinks.wake();
                tracing::info!(
                    %app, %level, %changed_at,
                    id = recorded.id.0,
                    outcome = recorded.outcome.as_str(),
                    head_version = recorded.head.version.0,
                    "published"
                );
                self.parts.publishes.count(match recorded.outcome {
                    Outcome::Head => PublishOutcome::Head,
                    Outcome::Tie => PublishOutcome::Tie,
                    Outcome::Older => PublishOutcome::Older,
                });
            }
            Published::Replayed { id } => {
                tracing::info!(%app, id = id.0, "a retried publish was answered with its first id");
                self.parts.publishes.count(PublishOutcome::Replayed);
            }
            // Counted as refused where the refusal is answered.
            Published::KeyReused => {}
        }
        Ok(published)
    }

    /// Makes `head` the live head if it is newer than the one held (a
    /// publish here, or one another server made, read from the store), and
    /// wakes long polls and streams. Answers whether it moved.
    pub fn advance(&self, head: &Head) -> bool {
        // Publishes complete concurrently; only ever move to a newer version.
        self.head.send_if_modified(|current| {
            let newer = current
                .as_ref()
                .is_none_or(|live| head.version > live.version);
            if newer {
                *current = Some(Arc::new(head.clone()));
            }
            newer
        })
    }

    /// Reads the audit history from the store.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn history(&self, query: HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        self.parts.store.history(query).await
    }

    /// Whether the store answers.
    ///
    /// # Errors
    /// [`StoreError`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.parts.store.ping().await
    }
}

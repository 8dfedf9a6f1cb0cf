//! Whether this server holds the once-only duties (recording consumer
//! alerts, relaying events to sinks), kept fresh for the parts that do
//! them.
//!
//! The duties are a lease the store hands out for a term
//! ([`Store::lead`]). [`Leadership::lease`] answers it from memory while
//! most of the term is left, and asks the store again once a third of it
//! has gone; [`Leadership::run`] asks on that rhythm even while every part
//! is busy (a long send to a slow broker), so a live server never lets its
//! lease lapse. Memory is only a cache of the answer: every write the
//! duties make carries the lease's epoch and the database refuses it once
//! another server holds them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::store::{Lease, Store};

/// The duties' lease as this server last heard it.
pub struct Leadership {
    store: Arc<dyn Store>,
    term: Duration,
    current: Mutex<Option<Lease>>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("term", &self.term)
            .finish_non_exhaustive()
    }
}

impl Leadership {
    /// Leadership over `store`'s duties, each lease lasting `term`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, term: Duration) -> Self {
        Self {
            store,
            term,
            current: Mutex::new(None),
        }
    }

    /// The lease when this server holds the duties, renewed (or tried for)
    /// when a third of its term has gone; `None` while another server holds
    /// them, or when the store cannot say and the last lease has ended.
    pub async fn lease(&self) -> Option<Lease> {
        let mut current = self.current.lock().await;
        if let Some(lease) = *current
            && lease.left() > self.term * 3 / 5
        {
            return Some(lease);
        }
        match self.store.lead(self.term).await {
            Ok(lease) => *current = lease,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the once-only duties; will retry");
                *current = current.filter(Lease::holds);
            }
        }
        *current
    }

    /// Renews the lease (or tries for it) every quarter term until `stop`
    /// is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.term / 4);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {
                    self.lease().await;
                }
            }
        }
    }
}

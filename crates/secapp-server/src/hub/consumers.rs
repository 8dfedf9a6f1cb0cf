//! What the server knows about each consumer application: what it was
//! told (the server-held cursor), sent and acknowledged. Changes are marked
//! dirty and written back in batches; with other servers on the store, a
//! plain poll claims its delivery there first, so each application is told
//! each head once whichever server answers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, MutexGuard};

use chrono::{DateTime, Utc};
use secapp_domain::{AppName, ChangeId, Consumer, Head};

use super::{ClientCursor, Compared, Hub, Look};
use crate::store::{ConsumerRecord, StoreError};

/// Every consumer application's record, and which changed since the last
/// write-back.
#[derive(Default)]
pub(super) struct Consumers {
    pub(super) by_app: HashMap<AppName, Consumer>,
    /// Applications whose record changed since the last write-back.
    pub(super) dirty: HashSet<AppName>,
}

impl Hub {
    /// The server-held cursor: returns the head if `app` has not been told
    /// it yet and, unless `look` is [`Look::Peek`], records that it now has.
    /// Concurrent polls by one application get the head exactly once
    /// between them.
    pub fn poll(&self, app: &AppName, now: DateTime<Utc>, look: Look) -> Option<Arc<Head>> {
        let Look::Deliver { long_poll } = look else {
            let head = self.head()?;
            let told = self
                .lock_consumers()
                .by_app
                .get(app.as_str())
                .map(|consumer| consumer.cursor.told())
                .unwrap_or_default();
            return (head.version > told).then_some(head);
        };
        // Compare under the watch's read lock and clone the head only to
        // deliver it: the common answer, "nothing new", touches no shared
        // reference count.
        let head = self.head.borrow();
        let current = head.as_ref()?;
        self.update(app, |consumer| consumer.poll(current, now, long_poll))
            .then(|| Arc::clone(current))
    }

    /// The server-held cursor when other servers share the store
    /// (PostgreSQL): as [`poll`](Self::poll), but a head that is news here
    /// is first claimed in the store, which only moves the stored cursor
    /// forward, so whichever server claims it tells it and every other
    /// answers "nothing new" (and moves its own cursor on without counting
    /// a send). Alone on its store (SQLite) this is [`poll`](Self::poll).
    /// When the store cannot answer, the head is told: twice rather than
    /// not at all.
    pub async fn poll_shared(
        &self,
        app: &AppName,
        now: DateTime<Utc>,
        look: Look,
    ) -> Option<Arc<Head>> {
        let Look::Deliver { long_poll } = look else {
            return self.poll(app, now, look);
        };
        if !self.shared {
            return self.poll(app, now, look);
        }
        let news = self.poll(app, now, Look::Peek)?;
        match self.parts.store.claim_told(app, news.version, now).await {
            // Ours to tell, even if a request that lost the claim moved the
            // cursor here meanwhile.
            Ok(true) => {
                self.update(app, |consumer| {
                    if !consumer.poll(&news, now, long_poll) {
                        consumer.told_at = Some(now);
                        consumer.knowledge.sent(secapp_domain::Sighting {
                            id: news.change.id,
                            at: now,
                            mode: secapp_domain::Mode::Poll,
                            long_poll,
                        });
                    }
                });
                Some(news)
            }
            Ok(false) => {
                self.update(app, |consumer| consumer.cursor.deliver(&news));
                None
            }
            Err(e) => {
                tracing::warn!(%app, error = %e, "cannot claim a delivery in the store; telling anyway");
                self.poll(app, now, look)
            }
        }
    }

    /// A client-held cursor: compares what `app` says it holds with the
    /// head, and returns the head when it differs, with the head compared
    /// (so an answer and its `ETag` agree). Unless `look` is
    /// [`Look::Peek`], records the acknowledgement and what was sent; the
    /// server-held cursor is not touched.
    pub fn compare(
        &self,
        app: &AppName,
        held: &ClientCursor,
        now: DateTime<Utc>,
        look: Look,
    ) -> Compared {
        let head = self.head();
        let Some(held_id) = held.id(head.as_deref()) else {
            return Compared { news: None, head };
        };
        let news = match look {
            Look::Deliver { long_poll } => self
                .update(app, |consumer| {
                    consumer.holds(held_id, head.as_deref(), held.mode(), now, long_poll)
                })
                .then(|| head.clone())
                .flatten(),
            Look::Peek => head.clone().filter(|head| head.change.id != held_id),
        };
        Compared { news, head }
    }

    /// A stream opening: the head to send first (none when the client's
    /// `Last-Event-ID` already names it), recorded as sent.
    pub fn open_stream(
        &self,
        app: &AppName,
        last_event_id: Option<ChangeId>,
        now: DateTime<Utc>,
    ) -> Option<Arc<Head>> {
        match last_event_id {
            Some(held) => {
                let held = ClientCursor::LastEventId(held);
                self.compare(app, &held, now, Look::Deliver { long_poll: false })
                    .news
            }
            None => {
                let head = self.head()?;
                self.streamed(app, &head, now);
                Some(head)
            }
        }
    }

    /// Records that a stream pushed `head` to `app`.
    pub fn streamed(&self, app: &AppName, head: &Head, now: DateTime<Utc>) {
        self.update(app, |consumer| consumer.streamed(head, now));
    }

    /// Every consumer application's record, sorted by name.
    #[must_use]
    pub fn consumers(&self) -> Vec<ConsumerRecord> {
        let mut records: Vec<ConsumerRecord> = self
            .lock_consumers()
            .by_app
            .iter()
            .map(|(app, consumer)| ConsumerRecord {
                app: app.clone(),
                consumer: *consumer,
            })
            .collect();
        records.sort_by(|a, b| a.app.cmp(&b.app));
        records
    }

    /// Every consumer application's record, sorted by name; when other
    /// servers share the store, merged with what they wrote back (each part
    /// the newest of the two), so the report is the fleet's whichever
    /// server answers. Another server's sends reach it within that server's
    /// `--cursor-flush-interval`.
    ///
    /// # Errors
    /// [`StoreError`] when a shared store cannot be read.
    pub async fn consumers_everywhere(&self) -> Result<Vec<ConsumerRecord>, StoreError> {
        let mine = self.consumers();
        if !self.shared {
            return Ok(mine);
        }
        let mut merged: std::collections::BTreeMap<AppName, Consumer> = self
            .parts
            .store
            .snapshot()
            .await?
            .consumers
            .into_iter()
            .map(|record| (record.app, record.consumer))
            .collect();
        for record in mine {
            match merged.get_mut(record.app.as_str()) {
                Some(stored) => {
                    let own = record.consumer;
                    if own.cursor.told() > stored.cursor.told() {
                        stored.cursor = own.cursor;
                        stored.told_at = own.told_at;
                    }
                    if let Some(sent) = own.knowledge.sent {
                        stored.knowledge.sent(sent);
                    }
                    if let Some(acknowledged) = own.knowledge.acknowledged {
                        stored.knowledge.acknowledged(acknowledged);
                    }
                }
                None => {
                    merged.insert(record.app, record.consumer);
                }
            }
        }
        Ok(merged
            .into_iter()
            .map(|(app, consumer)| ConsumerRecord { app, consumer })
            .collect())
    }

    /// Writes changed consumer records back to the store. On failure they
    /// stay marked for the next flush.
    ///
    /// # Errors
    /// [`StoreError`] when the store could not write them.
    pub async fn flush_consumers(&self) -> Result<usize, StoreError> {
        let pending: Vec<ConsumerRecord> = {
            let mut guard = self.lock_consumers();
            let consumers = &mut *guard;
            consumers
                .dirty
                .drain()
                .filter_map(|app| {
                    let consumer = *consumers.by_app.get(app.as_str())?;
                    Some(ConsumerRecord { app, consumer })
                })
                .collect()
        };
        let count = pending.len();
        if count == 0 {
            return Ok(0);
        }
        let apps: Vec<AppName> = pending.iter().map(|record| record.app.clone()).collect();
        if let Err(e) = self.parts.store.save_consumers(pending).await {
            // Memory holds the newest records; marking them dirty again is
            // enough for the next flush to write them.
            self.lock_consumers().dirty.extend(apps);
            return Err(e);
        }
        Ok(count)
    }

    /// Applies `change` to `app`'s record, marking it dirty if it changed.
    /// An application is only added to the map once something is recorded
    /// about it, and its name is cloned only then.
    fn update<R>(&self, app: &AppName, change: impl FnOnce(&mut Consumer) -> R) -> R {
        let mut guard = self.lock_consumers();
        let consumers = &mut *guard;
        let (result, changed) = match consumers.by_app.get_mut(app.as_str()) {
            Some(consumer) => {
                let before = *consumer;
                let result = change(consumer);
                (result, *consumer != before)
            }
            None => {
                let mut consumer = Consumer::default();
                let result = change(&mut consumer);
                let changed = consumer != Consumer::default();
                if changed {
                    consumers.by_app.insert(app.clone(), consumer);
                }
                (result, changed)
            }
        };
        if changed && !consumers.dirty.contains(app.as_str()) {
            consumers.dirty.insert(app.clone());
        }
        result
    }

    pub(super) fn lock_consumers(&self) -> MutexGuard<'_, Consumers> {
        // Each critical section is a look-up plus one in-place update of a
        // `Copy` record, so a panic cannot leave the map half-written and a
        // poisoned lock is still consistent.
        self.consumers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

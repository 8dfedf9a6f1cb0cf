//! The live state every request reads: the current head and what the server
//! knows about each consumer application.
//!
//! A poll with nothing new touches only memory: one read of the head and one
//! map look-up under a short lock. Publishes go to the store first and reach
//! the head here only once durable. Consumer changes are marked dirty and
//! written back in batches by [`Hub::flush_consumers`], which the server calls
//! on a timer and at shutdown; a crash between two flushes can only make an
//! application be told a head again, never skip one.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use secapp_domain::{AppName, ChangeId, Consumer, Head, Mode};
use tokio::sync::watch;

use crate::store::{
    ConsumerRecord, HistoryEntry, HistoryQuery, NewChange, Published, Snapshot, Store, StoreError,
};

/// Whether a look at the state records what it delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// A request that delivers its answer: what is sent is recorded, and
    /// whether it was held as a long poll.
    Deliver {
        /// Held with `?wait=`.
        long_poll: bool,
    },
    /// A request that delivers nothing (`HEAD`): nothing is recorded.
    Peek,
}

/// A cursor the client holds and sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCursor {
    /// `?after=<id>`.
    After(ChangeId),
    /// `If-None-Match`: `None` for `*` (any current state), else the ids listed.
    IfNoneMatch(Option<Vec<ChangeId>>),
    /// A reconnecting stream's `Last-Event-ID`.
    LastEventId(ChangeId),
}

impl ClientCursor {
    /// The state the client holds, given the current head; `None` when the
    /// client said `*` and there is no head.
    fn id(&self, head: Option<&Head>) -> Option<ChangeId> {
        let head_id = head.map(|h| h.change.id);
        match self {
            Self::After(id) | Self::LastEventId(id) => Some(*id),
            Self::IfNoneMatch(None) => head_id,
            Self::IfNoneMatch(Some(ids)) => match head_id {
                Some(head_id) if ids.contains(&head_id) => Some(head_id),
                _ => ids.iter().max().copied(),
            },
        }
    }

    /// The newest id the client says it holds, if it names any.
    fn newest(&self) -> Option<ChangeId> {
        match self {
            Self::After(id) | Self::LastEventId(id) => Some(*id),
            Self::IfNoneMatch(ids) => ids.as_ref()?.iter().max().copied(),
        }
    }

    fn mode(&self) -> Mode {
        match self {
            Self::After(_) => Mode::After,
            Self::IfNoneMatch(_) => Mode::IfNoneMatch,
            Self::LastEventId(_) => Mode::Stream,
        }
    }
}

/// What comparing a client's cursor with the head found.
#[derive(Debug, Clone)]
pub struct Compared {
    /// The head, when it is news to the client.
    pub news: Option<Arc<Head>>,
    /// The head it was compared with.
    pub head: Option<Arc<Head>>,
}

/// Shared live state. Cloning the `Arc` around it is how handlers share it.
pub struct Hub {
    store: Arc<dyn Store>,
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

#[derive(Default)]
struct Consumers {
    by_app: HashMap<AppName, Consumer>,
    /// Applications whose record changed since the last write-back.
    dirty: HashSet<AppName>,
}

impl Hub {
    /// Builds the live state from what the store holds.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, snapshot: Snapshot) -> Self {
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
            shared: store.notices().is_some(),
            store,
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

    /// Subscribes to head changes; the receiver has seen the current head.
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<Option<Arc<Head>>> {
        self.head.subscribe()
    }

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
        match self.store.claim_told(app, news.version, now).await {
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
        match self.store.head().await {
            Ok(Some(head)) => {
                self.advance(&head);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the head to catch up; answering from memory")
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

    /// Records a change durably, then makes it the live head if it won.
    ///
    /// # Errors
    /// [`StoreError`] when the store could not record it; nothing changed then.
    pub async fn publish(&self, change: NewChange) -> Result<Published, StoreError> {
        let published = self.store.publish(change).await?;
        if let Published::New(recorded) = &published {
            self.advance(&recorded.head);
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
        if let Err(e) = self.store.save_consumers(pending).await {
            // Memory holds the newest records; marking them dirty again is
            // enough for the next flush to write them.
            self.lock_consumers().dirty.extend(apps);
            return Err(e);
        }
        Ok(count)
    }

    /// Reads the audit history from the store.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn history(&self, query: HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        self.store.history(query).await
    }

    /// Whether the store answers.
    ///
    /// # Errors
    /// [`StoreError`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
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

    fn lock_consumers(&self) -> MutexGuard<'_, Consumers> {
        // Each critical section is a look-up plus one in-place update of a
        // `Copy` record, so a panic cannot leave the map half-written and a
        // poisoned lock is still consistent.
        self.consumers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use secapp_domain::{ChangedAt, LevelRange, Version};

    const DELIVER: Look = Look::Deliver { long_poll: false };

    #[test]
    fn a_list_of_etags_is_held_as_the_head_when_it_names_it() {
        let held = ClientCursor::IfNoneMatch(Some(vec![ChangeId(3), ChangeId(9)]));
        assert_eq!(held.id(None), Some(ChangeId(9)));
        assert_eq!(ClientCursor::IfNoneMatch(None).id(None), None);
    }

    fn change(level: i64, at: &str) -> NewChange {
        NewChange {
            level: LevelRange::default().level(level).unwrap(),
            changed_at: ChangedAt::parse(at).unwrap(),
            published_by: AppName::parse("security").unwrap(),
            received_at: Utc::now(),
            idempotency: None,
            source: None,
            token_id: None,
            level_webhooks: Vec::new(),
        }
    }

    async fn open_hub(dir: &std::path::Path) -> (Hub, Arc<dyn Store>) {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.join(crate::store::sqlite::DATABASE_FILE)).unwrap());
        let snapshot = store.snapshot().await.unwrap();
        (Hub::new(store.clone(), snapshot), store)
    }

    #[tokio::test]
    async fn a_server_behind_on_a_shared_store_catches_up_before_answering_a_newer_cursor() {
        let database = crate::store::conformance::TempPostgres::new();
        let url: crate::store::DatabaseUrl = database.url().await.parse().unwrap();
        let open = async || {
            let store = crate::store::connect(&url, crate::store::Timings::default())
                .await
                .unwrap();
            let snapshot = store.snapshot().await.unwrap();
            Hub::new(store, snapshot)
        };
        let (ahead, behind) = (open().await, open().await);
        let app = AppName::parse("billing").unwrap();
        let first = ahead
            .publish(change(2, "2026-03-01T12:00:00Z"))
            .await
            .unwrap();
        let Published::New(first) = first else {
            panic!("{first:?}")
        };
        behind.advance(&first.head);
        // `ahead` publishes again; `behind` follows no notices here, so it
        // still holds the first head when a client names the second.
        let second = ahead
            .publish(change(4, "2026-03-01T12:05:00Z"))
            .await
            .unwrap();
        let Published::New(second) = second else {
            panic!("{second:?}")
        };
        let held = ClientCursor::After(second.head.change.id);
        let stale = behind.compare(&app, &held, Utc::now(), Look::Peek);
        assert_eq!(
            stale.news.map(|head| head.change.id),
            Some(first.head.change.id)
        );
        behind.catch_up(&held).await;
        let compared = behind.compare(&app, &held, Utc::now(), Look::Peek);
        assert!(compared.news.is_none(), "{compared:?}");
        assert_eq!(behind.head().unwrap().change.id, second.head.change.id);
        // An id no server ever gave: the head is the answer, as alone.
        let bogus = ClientCursor::LastEventId(ChangeId(second.head.change.id.0 + 100));
        behind.catch_up(&bogus).await;
        let compared = behind.compare(&app, &bogus, Utc::now(), Look::Peek);
        assert_eq!(
            compared.news.map(|head| head.change.id),
            Some(second.head.change.id)
        );
    }

    #[tokio::test]
    async fn a_poll_before_any_publish_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (hub, store) = open_hub(dir.path()).await;
        let app = AppName::parse("billing").unwrap();
        assert!(hub.poll(&app, Utc::now(), DELIVER).is_none());
        assert_eq!(hub.flush_consumers().await.unwrap(), 0);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn flushed_cursors_survive_a_reopen_and_unflushed_ones_are_told_again() {
        let dir = tempfile::tempdir().unwrap();
        let (hub, store) = open_hub(dir.path()).await;
        hub.publish(change(3, "2026-03-01T12:00:00Z"))
            .await
            .unwrap();
        let told = AppName::parse("told").unwrap();
        let lost = AppName::parse("lost").unwrap();
        assert!(hub.poll(&told, Utc::now(), DELIVER).is_some());
        assert_eq!(hub.flush_consumers().await.unwrap(), 1);
        assert!(hub.poll(&lost, Utc::now(), DELIVER).is_some());
        // `lost` is never flushed: as after a crash.
        store.close().await.unwrap();
        drop(hub);

        let (hub, store) = open_hub(dir.path()).await;
        assert!(hub.poll(&told, Utc::now(), DELIVER).is_none());
        let again = hub.poll(&lost, Utc::now(), DELIVER).unwrap();
        assert_eq!(again.version, Version(1));
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_flush_keeps_the_records_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let (hub, store) = open_hub(dir.path()).await;
        hub.publish(change(3, "2026-03-01T12:00:00Z"))
            .await
            .unwrap();
        hub.poll(&AppName::parse("a").unwrap(), Utc::now(), DELIVER)
            .unwrap();
        store.close().await.unwrap();
        assert!(hub.flush_consumers().await.is_err());
        assert_eq!(hub.lock_consumers().dirty.len(), 1);
    }
}

//! The live state every request reads: the current head and what each
//! application has been told.
//!
//! A poll with nothing new touches only memory: one read of the head and one
//! map look-up under a short lock. Publishes go to the store first and reach
//! the head here only once durable. Cursor moves are recorded as dirty and
//! written back in batches by [`Hub::flush_cursors`], which the server calls
//! on a timer and at shutdown; a crash between two flushes can only make an
//! application be told a head again, never skip one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use secapp_domain::{AppName, Cursor, Head};
use tokio::sync::watch;

use crate::store::{CursorWrite, NewChange, Recorded, Snapshot, Store, StoreError};

/// Shared live state. Cloning the `Arc` around it is how handlers share it.
pub struct Hub {
    store: Arc<dyn Store>,
    /// The durable head; a `watch` so waiters can be woken on change.
    head: watch::Sender<Option<Arc<Head>>>,
    /// A std `Mutex`: held for a map look-up, never across an `.await`.
    cursors: Mutex<Cursors>,
}

#[derive(Default)]
struct Cursors {
    by_app: HashMap<AppName, Cursor>,
    /// Moves not yet written back, newest per application.
    dirty: HashMap<AppName, CursorWrite>,
}

impl Hub {
    /// Builds the live state from what the store holds.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, snapshot: Snapshot) -> Self {
        let (head, _) = watch::channel(snapshot.head.map(Arc::new));
        let cursors = Cursors {
            by_app: snapshot.cursors.into_iter().collect(),
            dirty: HashMap::new(),
        };
        Self {
            store,
            head,
            cursors: Mutex::new(cursors),
        }
    }

    /// The current head.
    #[must_use]
    pub fn head(&self) -> Option<Arc<Head>> {
        self.head.borrow().clone()
    }

    /// Subscribes to head changes.
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<Option<Arc<Head>>> {
        self.head.subscribe()
    }

    /// The server-held cursor: returns the head if `app` has not been told it
    /// yet, and records that it now has. Concurrent polls by one application
    /// get the head exactly once between them.
    pub fn poll(&self, app: &AppName, now: DateTime<Utc>) -> Option<Arc<Head>> {
        let head = self.head()?;
        let mut cursors = self.lock_cursors();
        if let Some(cursor) = cursors.by_app.get_mut(app.as_str()) {
            if !cursor.deliver(&head) {
                return None;
            }
        } else {
            let mut cursor = Cursor::default();
            cursor.deliver(&head);
            cursors.by_app.insert(app.clone(), cursor);
        }
        let write = CursorWrite {
            app: app.clone(),
            cursor: Cursor::at(head.version),
            told_at: now,
        };
        cursors.dirty.insert(app.clone(), write);
        Some(head)
    }

    /// What [`Hub::poll`] would answer, without recording a delivery (for
    /// `HEAD`, which has no body to deliver the head in).
    #[must_use]
    pub fn peek(&self, app: &AppName) -> Option<Arc<Head>> {
        let head = self.head()?;
        let told = self
            .lock_cursors()
            .by_app
            .get(app.as_str())
            .map(|cursor| cursor.told())
            .unwrap_or_default();
        (head.version > told).then_some(head)
    }

    /// Records a change durably, then makes it the live head if it won.
    ///
    /// # Errors
    /// [`StoreError`] when the store could not record it; nothing changed then.
    pub async fn publish(&self, change: NewChange) -> Result<Recorded, StoreError> {
        let recorded = self.store.publish(change).await?;
        let head = &recorded.head;
        // Publishes complete concurrently; only ever move to a newer version.
        self.head.send_if_modified(|current| {
            let newer = current
                .as_ref()
                .is_none_or(|live| head.version > live.version);
            if newer {
                *current = Some(Arc::new(head.clone()));
            }
            newer
        });
        Ok(recorded)
    }

    /// Writes dirty cursors back to the store. On failure they stay dirty
    /// (merged with any newer moves) for the next flush.
    ///
    /// # Errors
    /// [`StoreError`] when the store could not write them.
    pub async fn flush_cursors(&self) -> Result<usize, StoreError> {
        let pending: Vec<CursorWrite> = {
            let mut cursors = self.lock_cursors();
            cursors.dirty.drain().map(|(_, write)| write).collect()
        };
        let count = pending.len();
        if count == 0 {
            return Ok(0);
        }
        if let Err(e) = self.store.save_cursors(pending.clone()).await {
            let mut cursors = self.lock_cursors();
            for write in pending {
                let newest = match cursors.dirty.remove(write.app.as_str()) {
                    Some(later) if later.cursor > write.cursor => later,
                    _ => write,
                };
                cursors.dirty.insert(newest.app.clone(), newest);
            }
            return Err(e);
        }
        Ok(count)
    }

    /// Whether the store answers.
    ///
    /// # Errors
    /// [`StoreError`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    fn lock_cursors(&self) -> MutexGuard<'_, Cursors> {
        // A panic while holding this lock cannot leave the map half-written
        // (each critical section is one insert or remove), so a poisoned lock
        // is still consistent.
        self.cursors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use secapp_domain::{ChangedAt, LevelRange, Version};

    fn change(level: i64, at: &str) -> NewChange {
        NewChange {
            level: LevelRange::default().level(level).unwrap(),
            changed_at: ChangedAt::parse(at).unwrap(),
            published_by: AppName::parse("security").unwrap(),
            received_at: Utc::now(),
        }
    }

    async fn open_hub(dir: &std::path::Path) -> (Hub, Arc<dyn Store>) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir).unwrap());
        let snapshot = store.snapshot().await.unwrap();
        (Hub::new(store.clone(), snapshot), store)
    }

    #[tokio::test]
    async fn a_poll_before_any_publish_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (hub, store) = open_hub(dir.path()).await;
        let app = AppName::parse("billing").unwrap();
        assert!(hub.poll(&app, Utc::now()).is_none());
        assert_eq!(hub.flush_cursors().await.unwrap(), 0);
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
        assert!(hub.poll(&told, Utc::now()).is_some());
        assert_eq!(hub.flush_cursors().await.unwrap(), 1);
        assert!(hub.poll(&lost, Utc::now()).is_some());
        // `lost` is never flushed: as after a crash.
        store.close().await.unwrap();
        drop(hub);

        let (hub, store) = open_hub(dir.path()).await;
        assert!(hub.poll(&told, Utc::now()).is_none());
        let again = hub.poll(&lost, Utc::now()).unwrap();
        assert_eq!(again.version, Version(1));
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_flush_keeps_the_cursors_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let (hub, store) = open_hub(dir.path()).await;
        hub.publish(change(3, "2026-03-01T12:00:00Z"))
            .await
            .unwrap();
        hub.poll(&AppName::parse("a").unwrap(), Utc::now()).unwrap();
        store.close().await.unwrap();
        assert!(hub.flush_cursors().await.is_err());
        assert_eq!(hub.lock_cursors().dirty.len(), 1);
    }
}

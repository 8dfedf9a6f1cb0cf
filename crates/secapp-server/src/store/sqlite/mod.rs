//! The embedded SQLite store: one file, WAL mode, every commit synced.
//!
//! One worker thread owns the connection; requests reach it through a
//! channel and concurrent writes share one transaction (group commit). The
//! store keeps no state the database does not hold: each write decides the
//! head from the database inside an immediate (write-locked) transaction,
//! so two stores open on one file agree on one order.
//!
//! - `worker.rs`: the thread, its request protocol and the group commit.
//! - `schema.rs`: the migrations and connection settings.
//! - `changes.rs`, `idempotency.rs`, `consumers.rs`, `registry.rs`,
//!   `audit.rs`, `watch.rs`, `outbox.rs`: the SQL of each aggregate.
//! - `rows.rs`: how rows are written and decoded, and how driver errors
//!   become [`StoreError`]s.

mod audit;
mod changes;
mod consumers;
mod idempotency;
mod outbox;
mod registry;
mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod watch;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{
    AccessChange, AuditEvent, AuditLog, AuditQuery, AuditRecord, ChangeLog, ConsumerRecord,
    ConsumerWatch, Deliveries, Delivery, DeliveryOutcome, HistoryEntry, HistoryQuery, NewChange,
    Outbox, Published, Registry, Snapshot, Store, StoreError, WatchChange, WatchRecord,
    WatchTransition,
};
use secapp_domain::{AppName, Head};
use worker::{Claim, Command, Reply, Worker};

/// File name of the database inside the data dir, by default.
pub const DATABASE_FILE: &str = "secapp.db";

/// Requests waiting for the worker before senders wait too.
const QUEUE_DEPTH: usize = 4096;

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    queue: mpsc::Sender<Command>,
    /// Joined on close so the database is released before `close` returns; a
    /// std `Mutex` because it is touched once, never across an `.await`.
    worker: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, applies
    /// pending migrations and starts the worker thread. Blocks: call it off
    /// the async runtime (as [`connect`](crate::store::connect) does).
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened, migrated or read.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path).map_err(rows::failed("opening the database"))?;
        schema::configure(&conn)?;
        schema::migrate(&mut conn)?;
        let (queue, inbox) = mpsc::channel(QUEUE_DEPTH);
        let worker = std::thread::Builder::new()
            .name("secapp-sqlite".into())
            .spawn(move || Worker::new(conn).run(inbox))
            .map_err(|e| {
                StoreError::Unavailable(super::Cause::with_source(
                    "cannot start the storage thread",
                    e,
                ))
            })?;
        Ok(Self {
            queue,
            worker: Mutex::new(Some(worker)),
            path: path.to_owned(),
        })
    }

    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(command(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

#[async_trait]
impl ChangeLog for SqliteStore {
    async fn publish(&self, change: NewChange) -> Result<Published, StoreError> {
        self.ask(|reply| Command::Publish(change, reply)).await
    }

    async fn history(&self, query: HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        self.ask(|reply| Command::History(query, reply)).await
    }
}

#[async_trait]
impl Deliveries for SqliteStore {
    async fn save_consumers(&self, consumers: Vec<ConsumerRecord>) -> Result<(), StoreError> {
        if consumers.is_empty() {
            return Ok(());
        }
        self.ask(|reply| Command::SaveConsumers(consumers, reply))
            .await
    }

    async fn claim_told(
        &self,
        app: &AppName,
        version: secapp_domain::Version,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let version = i64::try_from(version.0).unwrap_or(i64::MAX);
        let app = app.clone();
        self.ask(|reply| Command::ClaimTold(app, version, at, reply))
            .await
    }
}

#[async_trait]
impl Registry for SqliteStore {
    async fn change_access(
        &self,
        change: AccessChange,
        audit: AuditEvent,
        guard: super::AdminGuard,
    ) -> Result<super::Changed, StoreError> {
        self.ask(|reply| Command::ChangeAccess(change, audit, guard, reply))
            .await
    }

    async fn save_token_usage(&self, used: Vec<(String, DateTime<Utc>)>) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        self.ask(|reply| Command::SaveTokenUsage(used, reply)).await
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.ask(|reply| Command::Audit(query, reply)).await
    }
}

#[async_trait]
impl ConsumerWatch for SqliteStore {
    async fn watch(
        &self,
        sightings: Vec<(AppName, DateTime<Utc>)>,
    ) -> Result<Vec<WatchRecord>, StoreError> {
        self.ask(|reply| Command::Watch(sightings, reply)).await
    }

    async fn change_watch(&self, changes: Vec<WatchChange>) -> Result<Vec<bool>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        self.ask(|reply| Command::ChangeWatch(changes, reply)).await
    }

    async fn watch_history(
        &self,
        app: Option<AppName>,
        limit: u32,
    ) -> Result<Vec<WatchTransition>, StoreError> {
        self.ask(|reply| Command::WatchHistory(app, limit, reply))
            .await
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn claim_deliveries(
        &self,
        webhook: &str,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let claim = Claim {
            webhook: webhook.to_owned(),
            now,
            hold_until,
            limit,
        };
        self.ask(|reply| Command::ClaimDeliveries(claim, reply))
            .await
    }

    async fn finish_delivery(
        &self,
        delivery: &Delivery,
        outcome: DeliveryOutcome,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let finished = Box::new((delivery.clone(), outcome));
        self.ask(|reply| Command::FinishDelivery(finished, at, reply))
            .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.ask(Command::Snapshot).await
    }

    async fn head(&self) -> Result<Option<Head>, StoreError> {
        self.ask(Command::Head).await
    }

    async fn registry_revision(&self) -> Result<i64, StoreError> {
        self.ask(Command::RegistryRevision).await
    }

    async fn lead(&self) -> Result<bool, StoreError> {
        // The data dir lock already makes this server the only one.
        Ok(true)
    }

    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<super::Notice>> {
        None
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.ask(Command::Ping).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        let closed = self.ask(Command::Close).await;
        let worker = self.worker.lock().map_err(|_| StoreError::Closed)?.take();
        if let Some(worker) = worker {
            // The worker has answered Close and is returning; joining only
            // waits for the connection to drop.
            tokio::task::spawn_blocking(move || worker.join())
                .await
                .map_err(|_| StoreError::Closed)?
                .map_err(|_| StoreError::corrupt("the storage thread panicked"))?;
        }
        closed
    }
}

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

use super::Timings;
use super::{
    AccessChange, AuditEvent, AuditLog, AuditQuery, AuditRecord, ChangeLog, ConsumerRecord,
    ConsumerWatch, DeadLetter, Deliveries, Delivery, DeliveryOutcome, HistoryEntry, HistoryQuery,
    Lease, NewChange, Outbox, Published, Registry, Snapshot, Store, StoreError, WatchChange,
    WatchRecord, WatchTransition,
};
use secapp_domain::{AppName, Head};
use worker::{Command, Reply, Worker};

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
    /// Where each operation's time is reported.
    timings: Timings,
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
        Self::open_timed(path, Timings::default())
    }

    /// [`open`](Self::open), reporting the time of each operation to `timings`.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened, migrated or read.
    pub fn open_timed(path: &Path, timings: Timings) -> Result<Self, StoreError> {
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
            timings,
        })
    }

    /// Sends `command` to the worker and waits for its answer, timed as
    /// `operation`.
    async fn ask<T>(
        &self,
        operation: &'static str,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, StoreError> {
        self.timings
            .timed(operation, async {
                let (reply, answer) = oneshot::channel();
                self.queue
                    .send(command(reply))
                    .await
                    .map_err(|_| StoreError::Closed)?;
                answer.await.map_err(|_| StoreError::Closed)?
            })
            .await
    }

    /// Runs `work` on the connection, on the worker thread, timed as
    /// `operation`.
    async fn run<T: Send + 'static>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.ask(operation, |reply| {
            Command::Run(Box::new(move |conn| {
                let _ = reply.send(work(conn));
            }))
        })
        .await
    }
}

#[async_trait]
impl ChangeLog for SqliteStore {
    async fn publish(&self, change: NewChange) -> Result<Published, StoreError> {
        self.ask("publish", |reply| Command::Publish(change, reply))
            .await
    }

    async fn history(&self, query: HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        self.run("history", move |conn| changes::history(conn, &query))
            .await
    }
}

#[async_trait]
impl Deliveries for SqliteStore {
    async fn save_consumers(&self, consumers: Vec<ConsumerRecord>) -> Result<(), StoreError> {
        if consumers.is_empty() {
            return Ok(());
        }
        self.ask("save_consumers", |reply| {
            Command::SaveConsumers(consumers, reply)
        })
        .await
    }

    async fn claim_told(
        &self,
        app: &AppName,
        version: secapp_domain::Version,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let version = super::decode::version_to_sql(version);
        let app = app.clone();
        self.run("claim_told", move |conn| {
            consumers::claim_told(conn, &app, version, at)
        })
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
        self.run("change_access", move |conn| {
            registry::change(conn, &change, &audit, guard)
        })
        .await
    }

    async fn save_token_usage(&self, used: Vec<(String, DateTime<Utc>)>) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        self.run("save_token_usage", move |conn| {
            registry::save_usage(conn, &used)
        })
        .await
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.run("audit", move |conn| audit::page(conn, query))
            .await
    }
}

#[async_trait]
impl ConsumerWatch for SqliteStore {
    async fn watch(
        &self,
        sightings: Vec<(AppName, DateTime<Utc>)>,
    ) -> Result<Vec<WatchRecord>, StoreError> {
        self.run("watch", move |conn| watch::watch(conn, &sightings))
            .await
    }

    async fn change_watch(&self, changes: Vec<WatchChange>) -> Result<Vec<bool>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        self.run("change_watch", move |conn| watch::change(conn, &changes))
            .await
    }

    async fn watch_history(
        &self,
        app: Option<AppName>,
        limit: u32,
    ) -> Result<Vec<WatchTransition>, StoreError> {
        self.run("watch_history", move |conn| {
            watch::history(conn, app.as_ref(), limit)
        })
        .await
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn claim_deliveries(
        &self,
        _lease: &Lease,
        sink: &str,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sink = sink.to_owned();
        self.run("claim_deliveries", move |conn| {
            outbox::claim(conn, &sink, now, hold_until, limit)
        })
        .await
    }

    async fn finish_deliveries(
        &self,
        _lease: &Lease,
        finished: Vec<(Delivery, DeliveryOutcome)>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.run("finish_deliveries", move |conn| {
            outbox::finish(conn, &finished, at)
        })
        .await
    }

    async fn dead_letters(
        &self,
        sink: Option<String>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.run("dead_letters", move |conn| {
            outbox::dead_letters(conn, sink.as_deref(), before, limit)
        })
        .await
    }

    async fn retry_dead_letter(
        &self,
        sink: &str,
        event_id: i64,
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> Result<bool, StoreError> {
        let sink = sink.to_owned();
        self.run("retry_dead_letter", move |conn| {
            outbox::retry_dead_letter(conn, &sink, event_id, at, &audit)
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.run("snapshot", worker::snapshot).await
    }

    async fn head(&self) -> Result<Option<Head>, StoreError> {
        self.run("head", |conn| changes::head(conn).map(|(head, _, _)| head))
            .await
    }

    async fn registry_revision(&self) -> Result<i64, StoreError> {
        self.run("registry_revision", |conn| audit::revision(conn))
            .await
    }

    async fn lead(&self, term: std::time::Duration) -> Result<Option<Lease>, StoreError> {
        // The data dir lock already makes this server the only one: its
        // duties never change hands, so their epoch never grows (and the
        // outbox's writes need no check of it).
        Ok(Some(Lease::asked_at(1, std::time::Instant::now(), term)))
    }

    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<super::Notice>> {
        None
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", |conn| worker::ping(conn)).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        let closed = self.ask("close", Command::Close).await;
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

//! The embedded SQLite store: one file in the data dir, WAL mode, every commit
//! synced.
//!
//! One worker thread owns the connection and the [`Ledger`]. Requests reach it
//! through a channel; it takes every request already waiting and handles them
//! in one transaction (group commit), so concurrent publishes share one sync
//! of the write-ahead log instead of queueing for one each.
//!
//! - [`rows`]: how each table's rows are written and read back.

mod rows;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension as _, Transaction, params};
use secapp_domain::{AppName, Change, ChangeId, Ledger, Outcome};
use tokio::sync::{mpsc, oneshot};

use super::{
    AccessChange, AuditEvent, AuditQuery, AuditRecord, ConsumerRecord, HistoryEntry, HistoryQuery,
    Idempotency, NewChange, Published, Recorded, Snapshot, Store, StoreError, UnreadableRow,
};
use rows::{StoredSighting, backend, rfc3339, version_to_sql};

/// File name of the database inside the data dir.
pub const DATABASE_FILE: &str = "secapp.db";

/// File locked while a server uses the data dir: two servers writing one
/// SQLite file would each believe their own head.
pub const LOCK_FILE: &str = "secapp.lock";

/// The most requests handled in one transaction; bounds the latency one batch
/// adds to the requests behind it.
const MAX_BATCH: usize = 512;

/// Requests waiting for the worker before senders wait too.
const QUEUE_DEPTH: usize = 4096;

/// Schema migrations, applied in order at start-up. Never edit one that has
/// shipped: add the next.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "consumer knowledge",
        include_str!("../../../migrations/sqlite/0002_consumer_knowledge.sql"),
    ),
    (
        3,
        "idempotency keys",
        include_str!("../../../migrations/sqlite/0003_idempotency_keys.sql"),
    ),
    (
        4,
        "change source",
        include_str!("../../../migrations/sqlite/0004_change_source.sql"),
    ),
    (
        5,
        "applications, tokens and admin audit",
        include_str!("../../../migrations/sqlite/0005_access.sql"),
    ),
];

/// How often expired idempotency keys are deleted.
const FORGET_KEYS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    Snapshot(Reply<Snapshot>),
    Publish(NewChange, Reply<Published>),
    SaveConsumers(Vec<ConsumerRecord>, Reply<()>),
    History(HistoryQuery, Reply<Vec<HistoryEntry>>),
    ChangeAccess(AccessChange, AuditEvent, Reply<()>),
    Audit(AuditQuery, Reply<Vec<AuditRecord>>),
    SaveTokenUsage(Vec<(String, chrono::DateTime<Utc>)>, Reply<()>),
    Ping(Reply<()>),
    Close(Reply<()>),
}

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
    /// Opens (creating if needed) the database in `data_dir`, applies pending
    /// migrations and starts the worker thread.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened, migrated or read.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let lock = lock_data_dir(data_dir)?;
        let path = data_dir.join(DATABASE_FILE);
        let mut conn = Connection::open(&path).map_err(backend)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        let (head, latest, unreadable_heads) = rows::head(&conn)?;
        let ledger = Ledger::resume(head, latest);
        let (queue, inbox) = mpsc::channel(QUEUE_DEPTH);
        let worker = std::thread::Builder::new()
            .name("secapp-sqlite".into())
            .spawn(move || {
                Worker {
                    conn,
                    ledger,
                    unreadable_heads,
                    keys_forgotten_at: None,
                }
                .run(inbox);
                // Released only once the connection is closed.
                drop(lock);
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the storage thread: {e}")))?;
        Ok(Self {
            queue,
            worker: Mutex::new(Some(worker)),
            path,
        })
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
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
impl Store for SqliteStore {
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.ask(Command::Snapshot).await
    }

    async fn publish(&self, change: NewChange) -> Result<Published, StoreError> {
        self.ask(|reply| Command::Publish(change, reply)).await
    }

    async fn save_consumers(&self, consumers: Vec<ConsumerRecord>) -> Result<(), StoreError> {
        if consumers.is_empty() {
            return Ok(());
        }
        self.ask(|reply| Command::SaveConsumers(consumers, reply))
            .await
    }

    async fn history(&self, query: HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        self.ask(|reply| Command::History(query, reply)).await
    }

    async fn change_access(
        &self,
        change: AccessChange,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        self.ask(|reply| Command::ChangeAccess(change, audit, reply))
            .await
    }

    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.ask(|reply| Command::Audit(query, reply)).await
    }

    async fn save_token_usage(
        &self,
        used: Vec<(String, chrono::DateTime<Utc>)>,
    ) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        self.ask(|reply| Command::SaveTokenUsage(used, reply)).await
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
                .map_err(|_| StoreError::Backend("the storage thread panicked".into()))?;
        }
        closed
    }
}

/// Owns the connection; runs on its own thread.
struct Worker {
    conn: Connection,
    ledger: Ledger,
    /// Head rows that could not be read at open, for the snapshot.
    unreadable_heads: Vec<UnreadableRow>,
    /// When expired idempotency keys were last deleted.
    keys_forgotten_at: Option<std::time::Instant>,
}

impl Worker {
    fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        while let Some(first) = inbox.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match inbox.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            if self.handle(batch) {
                break;
            }
        }
    }

    /// Handles one batch; returns true when asked to close.
    fn handle(&mut self, batch: Vec<Command>) -> bool {
        let mut publishes = Vec::new();
        let mut consumer_saves = Vec::new();
        let mut close = None;
        for command in batch {
            match command {
                Command::Publish(change, reply) => publishes.push((change, reply)),
                Command::SaveConsumers(records, reply) => consumer_saves.push((records, reply)),
                Command::Snapshot(reply) => {
                    let _ = reply.send(self.snapshot());
                }
                Command::History(query, reply) => {
                    let _ = reply.send(rows::history(&self.conn, &query));
                }
                // Admin writes are rare: each has its own transaction.
                Command::ChangeAccess(change, audit, reply) => {
                    let _ =
                        reply.send(change_access(&mut self.conn, &change, &audit).map_err(backend));
                }
                Command::Audit(query, reply) => {
                    let _ = reply.send(rows::audit(&self.conn, query));
                }
                Command::SaveTokenUsage(used, reply) => {
                    let _ = reply.send(save_token_usage(&mut self.conn, &used).map_err(backend));
                }
                Command::Ping(reply) => {
                    let _ = reply.send(self.ping());
                }
                Command::Close(reply) => close = Some(reply),
            }
        }
        if !publishes.is_empty() || !consumer_saves.is_empty() {
            self.write(publishes, consumer_saves);
        }
        match close {
            Some(reply) => {
                let _ = reply.send(self.checkpoint());
                true
            }
            None => false,
        }
    }

    /// One transaction for every write in the batch: one sync for all.
    fn write(
        &mut self,
        publishes: Vec<(NewChange, Reply<Published>)>,
        consumer_saves: Vec<(Vec<ConsumerRecord>, Reply<()>)>,
    ) {
        let before = self.ledger.clone();
        let changes: Vec<&NewChange> = publishes.iter().map(|(change, _)| change).collect();
        let records = consumer_saves.iter().flat_map(|(records, _)| records);
        // Expired keys are deleted now and then, in a batch that uses keys.
        let forget_before = changes
            .iter()
            .find_map(|change| change.idempotency.as_ref())
            .map(|idempotency| idempotency.not_before)
            .filter(|_| {
                self.keys_forgotten_at
                    .is_none_or(|at| at.elapsed() >= FORGET_KEYS_EVERY)
            });
        let result = write_batch(
            &mut self.conn,
            &mut self.ledger,
            &changes,
            records,
            forget_before,
        );
        if result.is_ok() && forget_before.is_some() {
            self.keys_forgotten_at = Some(std::time::Instant::now());
        }
        match result {
            Ok(recorded) => {
                for ((_, reply), recorded) in publishes.into_iter().zip(recorded) {
                    let _ = reply.send(Ok(recorded));
                }
                for (_, reply) in consumer_saves {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                // Nothing was committed: the ledger must not remember it either.
                self.ledger = before;
                tracing::error!(error = %e, "a storage write failed and was rolled back");
                for (_, reply) in publishes {
                    let _ = reply.send(Err(StoreError::Backend(e.to_string())));
                }
                for (_, reply) in consumer_saves {
                    let _ = reply.send(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
    }

    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let (consumers, mut unreadable) = rows::consumers(&self.conn)?;
        let (apps, unreadable_apps) = rows::apps(&self.conn)?;
        let (tokens, unreadable_tokens) = rows::tokens(&self.conn)?;
        unreadable.extend(unreadable_apps);
        unreadable.extend(self.unreadable_heads.iter().cloned());
        Ok(Snapshot {
            head: self.ledger.head().cloned(),
            consumers,
            apps,
            tokens,
            unreadable_tokens,
            unreadable,
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM schema_migrations", [], |_| Ok(()))
            .map_err(backend)
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(backend)
    }
}

fn write_batch<'a>(
    conn: &mut Connection,
    ledger: &mut Ledger,
    changes: &[&NewChange],
    consumers: impl Iterator<Item = &'a ConsumerRecord>,
    forget_keys_before: Option<chrono::DateTime<Utc>>,
) -> Result<Vec<Published>, rusqlite::Error> {
    let tx = conn.transaction()?;
    if let Some(before) = forget_keys_before {
        tx.execute(
            "DELETE FROM idempotency_keys WHERE created_at < ?1",
            params![rfc3339(before)],
        )?;
    }
    let mut recorded = Vec::with_capacity(changes.len());
    for change in changes {
        recorded.push(insert_change(&tx, ledger, change)?);
    }
    {
        // One server owns the data dir and its memory is the truth, so the
        // record is written as it is, except that the plain-poll cursor
        // never moves back.
        let mut upsert = tx.prepare_cached(
            "INSERT INTO consumers (app_name, told_version, told_at,
                 sent_id, sent_at, sent_mode, sent_long_poll,
                 acked_id, acked_at, acked_mode, acked_long_poll)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (app_name) DO UPDATE SET
                 told_version = max(told_version, excluded.told_version),
                 told_at = CASE WHEN excluded.told_version >= told_version
                                THEN excluded.told_at ELSE told_at END,
                 sent_id = excluded.sent_id, sent_at = excluded.sent_at,
                 sent_mode = excluded.sent_mode, sent_long_poll = excluded.sent_long_poll,
                 acked_id = excluded.acked_id, acked_at = excluded.acked_at,
                 acked_mode = excluded.acked_mode, acked_long_poll = excluded.acked_long_poll",
        )?;
        for record in consumers {
            let consumer = &record.consumer;
            let sent = StoredSighting::from(consumer.knowledge.sent);
            let acked = StoredSighting::from(consumer.knowledge.acknowledged);
            upsert.execute(params![
                record.app.as_str(),
                version_to_sql(consumer.cursor.told()),
                consumer.told_at.map(rfc3339),
                sent.id,
                sent.at,
                sent.mode,
                sent.long_poll,
                acked.id,
                acked.at,
                acked.mode,
                acked.long_poll,
            ])?;
        }
    }
    tx.commit()?;
    Ok(recorded)
}

fn insert_change(
    tx: &Transaction<'_>,
    ledger: &mut Ledger,
    change: &NewChange,
) -> Result<Published, rusqlite::Error> {
    if let Some(idempotency) = &change.idempotency
        && let Some(earlier) = earlier_use(tx, &change.published_by, idempotency)?
    {
        return Ok(earlier);
    }
    let outcome = ledger.classify(&change.changed_at);
    let head_version = (outcome == Outcome::Head).then(|| version_to_sql(ledger.version().next()));
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO changes (level, changed_at, published_by, received_at, outcome, head_version,
                                  source_address, token_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        )?
        .query_row(
            params![
                change.level.get(),
                change.changed_at.to_string(),
                change.published_by.as_str(),
                rfc3339(change.received_at),
                outcome.as_str(),
                head_version,
                change.source,
                change.token_id,
            ],
            |row| row.get(0),
        )?;
    let applied = ledger.apply(Change {
        id: ChangeId(id),
        level: change.level,
        changed_at: change.changed_at,
    });
    debug_assert_eq!(applied, outcome);
    if let Some(idempotency) = &change.idempotency {
        tx.prepare_cached(
            "INSERT INTO idempotency_keys (app_name, key, request, change_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            change.published_by.as_str(),
            idempotency.key,
            idempotency.request,
            id,
            rfc3339(change.received_at),
        ])?;
    }
    let head = ledger
        .head()
        .cloned()
        .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok(Published::New(Recorded {
        id: ChangeId(id),
        outcome,
        head,
    }))
}

fn change_access(
    conn: &mut Connection,
    change: &AccessChange,
    audit: &AuditEvent,
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    let changed = match change {
        AccessChange::CreateApp(app) => tx.execute(
            "INSERT INTO apps (name, roles, description, owner, created_at, updated_at, disabled_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                app.name.as_str(),
                app.roles.to_stored(),
                app.description,
                app.owner,
                rfc3339(app.created_at),
                rfc3339(app.updated_at),
                app.disabled_at.map(rfc3339),
            ],
        )?,
        AccessChange::UpdateApp(app) => tx.execute(
            "UPDATE apps SET roles = ?2, description = ?3, owner = ?4, updated_at = ?5,
                             disabled_at = ?6
             WHERE name = ?1",
            params![
                app.name.as_str(),
                app.roles.to_stored(),
                app.description,
                app.owner,
                rfc3339(app.updated_at),
                app.disabled_at.map(rfc3339),
            ],
        )?,
        AccessChange::IssueToken(token) => tx.execute(
            "INSERT INTO tokens (id, app_name, hash, label, created_at, expires_at, revoked_at,
                                 last_used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                token.id,
                token.app.as_str(),
                &token.hash[..],
                token.label,
                rfc3339(token.created_at),
                token.expires_at.map(rfc3339),
                token.revoked_at.map(rfc3339),
                token.last_used_at.map(rfc3339),
            ],
        )?,
        AccessChange::RevokeToken { id, at } => tx.execute(
            "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
            params![id, rfc3339(*at)],
        )?,
    };
    if changed != 1 {
        // The caller checked that the target exists; not finding it means
        // memory and database disagree, and nothing must be half-done.
        return Err(rusqlite::Error::QueryReturnedNoRows);
    }
    tx.execute(
        "INSERT INTO admin_audit (at, actor, actor_token, source_address, action, target, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            rfc3339(audit.at),
            audit.actor,
            audit.actor_token,
            audit.source,
            audit.action,
            audit.target,
            audit.detail,
        ],
    )?;
    tx.commit()
}

fn save_token_usage(
    conn: &mut Connection,
    used: &[(String, chrono::DateTime<Utc>)],
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut update = tx.prepare_cached(
            "UPDATE tokens SET last_used_at = ?2
             WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
        )?;
        for (id, at) in used {
            update.execute(params![id, rfc3339(*at)])?;
        }
    }
    tx.commit()
}

/// What an earlier use of the same key within its window decides: a replay
/// or a refusal. An expired use is deleted and decides nothing.
fn earlier_use(
    tx: &Transaction<'_>,
    app: &AppName,
    idempotency: &Idempotency,
) -> Result<Option<Published>, rusqlite::Error> {
    let earlier: Option<(i64, String, String)> = tx
        .prepare_cached(
            "SELECT change_id, request, created_at FROM idempotency_keys
             WHERE app_name = ?1 AND key = ?2",
        )?
        .query_row(params![app.as_str(), idempotency.key], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let Some((id, request, created_at)) = earlier else {
        return Ok(None);
    };
    // Both sides are written by `rfc3339`: fixed width, so text order is time order.
    if created_at < rfc3339(idempotency.not_before) {
        tx.execute(
            "DELETE FROM idempotency_keys WHERE app_name = ?1 AND key = ?2",
            params![app.as_str(), idempotency.key],
        )?;
        return Ok(None);
    }
    Ok(Some(if request == idempotency.request {
        Published::Replayed { id: ChangeId(id) }
    } else {
        Published::KeyReused
    }))
}

fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Backend(format!(
            "another secapp server is using the data dir {}; stop it or choose another --data-dir",
            data_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Backend(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    // WAL lets readers proceed during a write; synchronous=FULL syncs the WAL
    // at every commit, which is what makes an acknowledged publish survive
    // power loss (NORMAL would only sync at checkpoints).
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(backend)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(backend)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(backend)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .map_err(backend)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "the database refused WAL mode (journal_mode is {mode}); is the data dir on a network file system?"
        )));
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL
         )",
    )
    .map_err(backend)?;
    let applied: i64 = conn
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(backend)?;
    let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if applied > known {
        return Err(StoreError::Corrupt(format!(
            "the database is at schema version {applied}, newer than this secapp knows ({known}); \
             run a newer secapp or restore a backup"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > applied) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![version, name, rfc3339(Utc::now())],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::info!(version, name, "applied schema migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::SqliteStore;
    use crate::store::Store;
    use crate::store::conformance::Backend;

    /// One temporary data dir, reopened on every `open`.
    struct TempSqlite(tempfile::TempDir);

    impl TempSqlite {
        fn new() -> Self {
            Self(tempfile::tempdir().unwrap())
        }
    }

    #[async_trait::async_trait]
    impl Backend for TempSqlite {
        async fn open(&self) -> Arc<dyn Store> {
            Arc::new(SqliteStore::open(self.0.path()).unwrap())
        }
    }

    crate::conformance_tests!(TempSqlite::new());
    crate::round_trip_tests!(TempSqlite::new());

    #[tokio::test]
    async fn a_second_server_on_the_same_data_dir_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let first = SqliteStore::open(dir.path()).unwrap();
        let err = SqliteStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("another secapp server"), "{err}");
        first.close().await.unwrap();
        SqliteStore::open(dir.path())
            .unwrap()
            .close()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_database_from_before_tokens_upgrades_and_keeps_its_history() {
        let dir = tempfile::tempdir().unwrap();
        {
            // The schema as the release before migration 5 left it.
            let mut conn =
                rusqlite::Connection::open(dir.path().join(super::DATABASE_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                                 applied_at TEXT NOT NULL)",
            )
            .unwrap();
            let tx = conn.transaction().unwrap();
            for (version, name, sql) in &super::MIGRATIONS[..4] {
                tx.execute_batch(sql).unwrap();
                tx.execute(
                    "INSERT INTO schema_migrations VALUES (?1, ?2, 'then')",
                    rusqlite::params![version, name],
                )
                .unwrap();
            }
            tx.execute(
                "INSERT INTO changes (level, changed_at, published_by, received_at, outcome,
                                      head_version, source_address)
                 VALUES (4, '2026-03-01T12:00:00Z', 'security-team',
                         '2026-03-01T12:00:01.000000Z', 'head', 1, '10.0.0.1')",
                [],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let snapshot = store.snapshot().await.unwrap();
        assert_eq!(snapshot.head.unwrap().change.id.0, 1);
        assert!(snapshot.apps.is_empty() && snapshot.tokens.is_empty());
        let history = store
            .history(crate::store::HistoryQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].published_by, "security-team");
        assert_eq!(history[0].token_id, None, "kept as unknown, not invented");
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn unreadable_rows_are_reported_left_out_and_never_stop_an_open() {
        use crate::store::{AccessChange, AppRecord, AuditEvent, ConsumerRecord, NewChange};
        use secapp_domain::{
            AppName, ChangedAt, Consumer, Cursor, Knowledge, LevelRange, Roles, Version,
        };

        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now();
        let store = SqliteStore::open(dir.path()).unwrap();
        let publish = |minute: u32| NewChange {
            level: LevelRange::default().level(3).unwrap(),
            changed_at: ChangedAt::parse(&format!("2026-03-01T12:{minute:02}:00Z")).unwrap(),
            published_by: AppName::parse("producer").unwrap(),
            received_at: now,
            idempotency: None,
            source: None,
            token_id: None,
        };
        let first = store.publish(publish(1)).await.unwrap().recorded().unwrap();
        store.publish(publish(2)).await.unwrap();
        for name in ["billing", "ghost"] {
            let app = AppRecord {
                name: AppName::parse(name).unwrap(),
                roles: Roles::of(&[secapp_domain::Role::Consume]),
                description: None,
                owner: None,
                created_at: now,
                updated_at: now,
                disabled_at: None,
            };
            let audit = AuditEvent {
                at: now,
                actor: "secapp".into(),
                actor_token: None,
                source: None,
                action: "app.create".into(),
                target: name.into(),
                detail: "{}".into(),
            };
            store
                .change_access(AccessChange::CreateApp(app), audit)
                .await
                .unwrap();
        }
        let consumer = |name: &str| ConsumerRecord {
            app: AppName::parse(name).unwrap(),
            consumer: Consumer {
                cursor: Cursor::at(Version(2)),
                told_at: Some(now),
                knowledge: Knowledge::default(),
            },
        };
        store
            .save_consumers(vec![consumer("billing"), consumer("other")])
            .await
            .unwrap();
        store.close().await.unwrap();
        {
            let conn = rusqlite::Connection::open(dir.path().join(super::DATABASE_FILE)).unwrap();
            conn.execute_batch(
                "UPDATE changes SET changed_at = 'soon' WHERE head_version = 2;
                 UPDATE apps SET roles = 'root' WHERE name = 'ghost';
                 UPDATE consumers SET told_at = 'never' WHERE app_name = 'other';",
            )
            .unwrap();
        }

        let store = SqliteStore::open(dir.path()).unwrap();
        let snapshot = store.snapshot().await.unwrap();
        let mut unreadable: Vec<(&str, &str)> = snapshot
            .unreadable
            .iter()
            .map(|row| (row.table, row.key.as_str()))
            .collect();
        unreadable.sort_unstable();
        assert_eq!(
            unreadable,
            [("apps", "ghost"), ("changes", "2"), ("consumers", "other")]
        );
        let head = snapshot.head.unwrap();
        assert_eq!(
            head.change.id, first.id,
            "the newest readable head stands in"
        );
        assert_eq!(
            snapshot
                .apps
                .iter()
                .map(|app| app.name.as_str())
                .collect::<Vec<_>>(),
            ["billing"]
        );
        assert_eq!(snapshot.consumers.len(), 1);
        // No head version is given twice, and the history leaves the row out.
        let next = store.publish(publish(3)).await.unwrap().recorded().unwrap();
        assert_eq!(next.head.version, Version(3));
        let history = store
            .history(crate::store::HistoryQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            history.iter().map(|entry| entry.id).collect::<Vec<_>>(),
            [next.id, first.id]
        );
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_database_from_a_newer_secapp_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open(dir.path())
            .unwrap()
            .close()
            .await
            .unwrap();
        let conn = rusqlite::Connection::open(dir.path().join(super::DATABASE_FILE)).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')",
            [],
        )
        .unwrap();
        drop(conn);
        let err = SqliteStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("newer secapp"), "{err}");
    }
}

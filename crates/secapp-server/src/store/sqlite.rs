//! The embedded SQLite store: one file in the data dir, WAL mode, every commit
//! synced.
//!
//! One worker thread owns the connection and the [`Ledger`]. Requests reach it
//! through a channel; it takes every request already waiting and handles them
//! in one transaction (group commit), so concurrent publishes share one sync
//! of the write-ahead log instead of queueing for one each.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension as _, Transaction, params};
use secapp_domain::{
    AppName, Change, ChangeId, ChangedAt, Consumer, Cursor, Head, Knowledge, Ledger, Level, Mode,
    Outcome, Roles, Sighting, Version,
};
use tokio::sync::{mpsc, oneshot};

use super::{
    AccessChange, AppRecord, AuditEvent, AuditQuery, AuditRecord, ConsumerRecord, HistoryEntry,
    HistoryQuery, Idempotency, NewChange, Published, Recorded, Snapshot, Store, StoreError,
    TokenRecord,
};

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
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "consumer knowledge",
        include_str!("../../migrations/sqlite/0002_consumer_knowledge.sql"),
    ),
    (
        3,
        "idempotency keys",
        include_str!("../../migrations/sqlite/0003_idempotency_keys.sql"),
    ),
    (
        4,
        "change source",
        include_str!("../../migrations/sqlite/0004_change_source.sql"),
    ),
    (
        5,
        "applications, tokens and admin audit",
        include_str!("../../migrations/sqlite/0005_access.sql"),
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
        let ledger = Ledger::with_head(load_head(&conn)?);
        let (queue, inbox) = mpsc::channel(QUEUE_DEPTH);
        let worker = std::thread::Builder::new()
            .name("secapp-sqlite".into())
            .spawn(move || {
                Worker {
                    conn,
                    ledger,
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
                    let _ = reply.send(self.history(&query));
                }
                // Admin writes are rare: each has its own transaction.
                Command::ChangeAccess(change, audit, reply) => {
                    let _ =
                        reply.send(change_access(&mut self.conn, &change, &audit).map_err(backend));
                }
                Command::Audit(query, reply) => {
                    let _ = reply.send(self.audit(query));
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
        let mut statement = self
            .conn
            .prepare(
                "SELECT app_name, told_version, told_at,
                        sent_id, sent_at, sent_mode, sent_long_poll,
                        acked_id, acked_at, acked_mode, acked_long_poll
                 FROM consumers",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map([], |row| {
                Ok(StoredConsumer {
                    app: row.get(0)?,
                    told_version: row.get(1)?,
                    told_at: row.get(2)?,
                    sent: StoredSighting::read(row, 3)?,
                    acked: StoredSighting::read(row, 7)?,
                })
            })
            .map_err(backend)?;
        let consumers = rows
            .map(|row| row.map_err(backend)?.into_record())
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Snapshot {
            head: self.ledger.head().cloned(),
            consumers,
            apps: self.apps()?,
            tokens: self.tokens()?,
        })
    }

    fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT name, roles, description, owner, created_at, updated_at, disabled_at
                 FROM apps ORDER BY name",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, Option<String>>(6)?,
                ))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (name, roles, description, owner, created_at, updated_at, disabled_at) =
                row.map_err(backend)?;
            let corrupt = |what: &str| StoreError::Corrupt(format!("app {name:?}: {what}"));
            Ok(AppRecord {
                name: AppName::parse(&name).map_err(|e| corrupt(&e.to_string()))?,
                roles: Roles::from_stored(&roles).map_err(|e| corrupt(&e.to_string()))?,
                description,
                owner,
                created_at: parse_instant(&created_at).map_err(|()| corrupt("bad created_at"))?,
                updated_at: parse_instant(&updated_at).map_err(|()| corrupt("bad updated_at"))?,
                disabled_at: parse_optional(disabled_at.as_deref())
                    .map_err(|()| corrupt("bad disabled_at"))?,
            })
        })
        .collect()
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT id, app_name, hash, label, created_at, expires_at, revoked_at, last_used_at
                 FROM tokens ORDER BY created_at, id",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, Option<String>>(5)?,
                    row.get::<_, Option<String>>(6)?,
                    row.get::<_, Option<String>>(7)?,
                ))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (id, app, hash, label, created_at, expires_at, revoked_at, last_used_at) =
                row.map_err(backend)?;
            let corrupt = |what: &str| StoreError::Corrupt(format!("token {id}: {what}"));
            Ok(TokenRecord {
                app: AppName::parse(&app).map_err(|e| corrupt(&e.to_string()))?,
                hash: hash.try_into().map_err(|_| corrupt("bad hash length"))?,
                label,
                created_at: parse_instant(&created_at).map_err(|()| corrupt("bad created_at"))?,
                expires_at: parse_optional(expires_at.as_deref())
                    .map_err(|()| corrupt("bad expires_at"))?,
                revoked_at: parse_optional(revoked_at.as_deref())
                    .map_err(|()| corrupt("bad revoked_at"))?,
                last_used_at: parse_optional(last_used_at.as_deref())
                    .map_err(|()| corrupt("bad last_used_at"))?,
                id,
            })
        })
        .collect()
    }

    fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT id, at, actor, actor_token, source_address, action, target, detail
                 FROM admin_audit WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(params![query.before, query.limit], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    AuditEvent {
                        at: Utc::now(),
                        actor: row.get(2)?,
                        actor_token: row.get(3)?,
                        source: row.get(4)?,
                        action: row.get(5)?,
                        target: row.get(6)?,
                        detail: row.get(7)?,
                    },
                ))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (id, at, mut event) = row.map_err(backend)?;
            event.at = parse_instant(&at)
                .map_err(|()| StoreError::Corrupt(format!("audit event {id}: bad time")))?;
            Ok(AuditRecord { id, event })
        })
        .collect()
    }

    fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        // NULL parameters switch a filter off.
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT id, level, changed_at, published_by, received_at, source_address, outcome,
                        token_id
                 FROM changes
                 WHERE (?1 IS NULL OR id < ?1)
                   AND (?2 IS NULL OR published_by = ?2)
                   AND (?3 IS NULL OR received_at >= ?3)
                   AND (?4 IS NULL OR received_at < ?4)
                 ORDER BY id DESC
                 LIMIT ?5",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(
                params![
                    query.before.map(|id| id.0),
                    query.app.as_ref().map(AppName::as_str),
                    query.since.map(rfc3339),
                    query.until.map(rfc3339),
                    query.limit,
                ],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, Option<String>>(5)?,
                        row.get::<_, String>(6)?,
                        row.get::<_, Option<String>>(7)?,
                    ))
                },
            )
            .map_err(backend)?;
        rows.map(|row| {
            let (id, level, changed_at, published_by, received_at, source, outcome, token_id) =
                row.map_err(backend)?;
            let corrupt = |what: &str| StoreError::Corrupt(format!("change {id}: {what}"));
            Ok(HistoryEntry {
                id: ChangeId(id),
                level: Level::from_stored(level),
                changed_at: ChangedAt::parse(&changed_at).map_err(|e| corrupt(&e.to_string()))?,
                published_by,
                received_at: parse_instant(&received_at)
                    .map_err(|()| corrupt("bad received_at"))?,
                source,
                token_id,
                outcome: Outcome::from_stored(&outcome).ok_or_else(|| corrupt("bad outcome"))?,
            })
        })
        .collect()
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

fn load_head(conn: &Connection) -> Result<Option<Head>, StoreError> {
    let row = conn
        .query_row(
            "SELECT id, level, changed_at, head_version FROM changes
             WHERE head_version IS NOT NULL ORDER BY head_version DESC LIMIT 1",
            [],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            },
        )
        .optional()
        .map_err(backend)?;
    let Some((id, level, changed_at, version)) = row else {
        return Ok(None);
    };
    let changed_at = ChangedAt::parse(&changed_at)
        .map_err(|e| StoreError::Corrupt(format!("change {id}: {e}")))?;
    Ok(Some(Head {
        change: Change {
            id: ChangeId(id),
            level: Level::from_stored(level),
            changed_at,
        },
        version: Version(to_version(version)?),
    }))
}

/// A consumer row as stored, before it is checked.
struct StoredConsumer {
    app: String,
    told_version: i64,
    told_at: Option<String>,
    sent: StoredSighting,
    acked: StoredSighting,
}

impl StoredConsumer {
    fn into_record(self) -> Result<ConsumerRecord, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("consumer {:?}: {what}", self.app));
        let app = AppName::parse(&self.app).map_err(|e| corrupt(&e.to_string()))?;
        let told_at = self
            .told_at
            .as_deref()
            .map(parse_instant)
            .transpose()
            .map_err(|()| corrupt("bad told_at"))?;
        let knowledge = Knowledge {
            sent: self.sent.parse().map_err(|()| corrupt("bad sent record"))?,
            acknowledged: self
                .acked
                .parse()
                .map_err(|()| corrupt("bad acked record"))?,
        };
        Ok(ConsumerRecord {
            app,
            consumer: Consumer {
                cursor: Cursor::at(Version(to_version(self.told_version)?)),
                told_at,
                knowledge,
            },
        })
    }
}

/// The four columns of a sighting; all NULL when there is none.
#[derive(Default)]
struct StoredSighting {
    id: Option<i64>,
    at: Option<String>,
    mode: Option<String>,
    long_poll: Option<bool>,
}

impl StoredSighting {
    fn read(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(first)?,
            at: row.get(first + 1)?,
            mode: row.get(first + 2)?,
            long_poll: row.get(first + 3)?,
        })
    }

    fn parse(self) -> Result<Option<Sighting>, ()> {
        match (self.id, self.at, self.mode) {
            (None, None, None) => Ok(None),
            (Some(id), Some(at), Some(mode)) => Ok(Some(Sighting {
                id: ChangeId(id),
                at: parse_instant(&at)?,
                mode: Mode::from_stored(&mode).ok_or(())?,
                long_poll: self.long_poll.unwrap_or(false),
            })),
            _ => Err(()),
        }
    }
}

impl From<Option<Sighting>> for StoredSighting {
    fn from(sighting: Option<Sighting>) -> Self {
        sighting.map_or_else(Self::default, |s| Self {
            id: Some(s.id.0),
            at: Some(rfc3339(s.at)),
            mode: Some(s.mode.as_str().to_owned()),
            long_poll: Some(s.long_poll),
        })
    }
}

fn parse_instant(text: &str) -> Result<chrono::DateTime<Utc>, ()> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| ())
}

fn parse_optional(text: Option<&str>) -> Result<Option<chrono::DateTime<Utc>>, ()> {
    text.map(parse_instant).transpose()
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn rfc3339(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn to_version(raw: i64) -> Result<u64, StoreError> {
    u64::try_from(raw).map_err(|_| StoreError::Corrupt(format!("negative head version {raw}")))
}

fn version_to_sql(version: Version) -> i64 {
    // Versions count publishes; i64::MAX of them is beyond any deployment.
    i64::try_from(version.0).unwrap_or(i64::MAX)
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

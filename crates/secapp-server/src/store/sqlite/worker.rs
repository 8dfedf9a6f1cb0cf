//! The thread that owns the SQLite connection. Requests arrive through a
//! channel; it takes every request already waiting and writes them in one
//! transaction (group commit), so concurrent publishes share one sync of the
//! write-ahead log instead of queueing for one each.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::rows::failed;
use super::{changes, consumers, idempotency, registry};
use crate::store::{ConsumerRecord, NewChange, Published, Snapshot, StoreError};

/// The most requests handled in one transaction; bounds the latency one batch
/// adds to the requests behind it.
const MAX_BATCH: usize = 512;

/// How often expired idempotency keys are deleted.
const FORGET_KEYS_EVERY: Duration = Duration::from_secs(60);

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// Work done on the connection by itself, answering through its own reply.
pub(super) type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// One request to the worker, with where to send the answer. Publishes and
/// consumer write-backs are batched into one transaction; anything else is
/// a [`Job`] run as it comes.
pub(super) enum Command {
    Publish(NewChange, Reply<Published>),
    SaveConsumers(Vec<ConsumerRecord>, Reply<()>),
    Run(Job),
    Close(Reply<()>),
}

/// Owns the connection; runs on its own thread. It keeps no ordering state
/// between batches: each write reads the head inside its transaction.
pub(super) struct Worker {
    conn: Connection,
    /// When expired idempotency keys were last deleted.
    keys_forgotten_at: Option<Instant>,
}

/// The writes of one batch, with their answers.
#[derive(Default)]
struct Writes {
    publishes: Vec<(NewChange, Reply<Published>)>,
    consumer_saves: Vec<(Vec<ConsumerRecord>, Reply<()>)>,
}

impl Worker {
    pub(super) fn new(conn: Connection) -> Self {
        Self {
            conn,
            keys_forgotten_at: None,
        }
    }

    /// Serves requests until asked to close or every sender is gone.
    pub(super) fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
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
        let mut writes = Writes::default();
        let mut close = None;
        for command in batch {
            match command {
                Command::Publish(change, reply) => writes.publishes.push((change, reply)),
                Command::SaveConsumers(records, reply) => {
                    writes.consumer_saves.push((records, reply));
                }
                Command::Run(job) => job(&mut self.conn),
                Command::Close(reply) => close = Some(reply),
            }
        }
        if !writes.publishes.is_empty() || !writes.consumer_saves.is_empty() {
            self.write(writes);
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
    fn write(&mut self, writes: Writes) {
        // Expired keys are deleted now and then, in a batch that uses keys.
        let forget_before = writes
            .publishes
            .iter()
            .find_map(|(change, _)| change.idempotency.as_ref())
            .map(|idempotency| idempotency.not_before)
            .filter(|_| {
                self.keys_forgotten_at
                    .is_none_or(|at| at.elapsed() >= FORGET_KEYS_EVERY)
            });
        match self.write_batch(&writes, forget_before) {
            Ok((published, saved)) => {
                if forget_before.is_some() {
                    self.keys_forgotten_at = Some(Instant::now());
                }
                for ((_, reply), result) in writes.publishes.into_iter().zip(published) {
                    let _ = reply.send(result);
                }
                for (_, reply) in writes.consumer_saves {
                    let _ = reply.send(saved.clone());
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a storage write failed and was rolled back");
                for (_, reply) in writes.publishes {
                    let _ = reply.send(Err(e.clone()));
                }
                for (_, reply) in writes.consumer_saves {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Writes the batch. Each publish and the consumer records have their
    /// own savepoint: one that fails is answered with its error while the
    /// rest commit. An error here (not starting, not committing) fails all.
    #[allow(clippy::type_complexity)]
    fn write_batch(
        &mut self,
        writes: &Writes,
        forget_keys_before: Option<DateTime<Utc>>,
    ) -> Result<(Vec<Result<Published, StoreError>>, Result<(), StoreError>), StoreError> {
        let writing = failed("writing a batch");
        // Immediate: the write lock is taken before the head is read, so
        // no other writer can move it between the read and the insert.
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&writing)?;
        if let Some(before) = forget_keys_before {
            idempotency::forget_before(&tx, before)?;
        }
        let mut published = Vec::with_capacity(writes.publishes.len());
        if !writes.publishes.is_empty() {
            let mut ledger = changes::ledger(&tx)?;
            for (change, _) in &writes.publishes {
                published.push(changes::publish(&mut tx, &mut ledger, change));
            }
        }
        let saved = if writes.consumer_saves.is_empty() {
            Ok(())
        } else {
            let savepoint = tx.savepoint().map_err(&writing)?;
            let records = writes
                .consumer_saves
                .iter()
                .flat_map(|(records, _)| records);
            consumers::save(&savepoint, records).and_then(|()| savepoint.commit().map_err(&writing))
        };
        tx.commit().map_err(&writing)?;
        Ok((published, saved))
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(failed("checkpointing the write-ahead log"))
    }
}

/// Everything a start needs, read in one transaction so it is consistent.
pub(super) fn snapshot(conn: &mut Connection) -> Result<Snapshot, StoreError> {
    let tx = conn.transaction().map_err(failed("reading a snapshot"))?;
    let (head, _, unreadable) = changes::head(&tx)?;
    Ok(Snapshot::assemble(
        (head, unreadable),
        consumers::load(&tx)?,
        registry::load_apps(&tx)?,
        registry::load_tokens(&tx)?,
    ))
}

/// Answers when the database can be read.
pub(super) fn ping(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("SELECT count(*) FROM schema_migrations", [], |_| Ok(()))
        .map_err(failed("checking the database"))
}

//! The PostgreSQL store, for several replicas on one database.
//!
//! A pool of connections (deadpool); every write is one transaction. Each
//! publish takes a transaction-scoped advisory lock before it reads the
//! head, so publishes on every replica are decided one after another from
//! what the database holds, and ids (an identity column) increase in that
//! order. Nothing of the order is kept in process memory.
//!
//! - `schema.rs`: the migrations (`migrations/postgres/`), applied under an
//!   advisory lock so replicas starting together migrate once.
//! - `changes.rs`, `consumers.rs`, `registry.rs`, `watch.rs`: the SQL of
//!   each aggregate.
//! - `rows.rs`: how rows are read back and errors classified.

mod changes;
mod consumers;
mod leader;
mod listener;
mod outbox;
mod registry;
mod rows;
mod schema;
mod watch;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use secapp_domain::AppName;

use super::Timings;
use super::{
    AccessChange, AuditEvent, AuditLog, AuditQuery, AuditRecord, ChangeLog, ConsumerRecord,
    ConsumerWatch, DeadLetter, Deliveries, Delivery, DeliveryOutcome, HistoryEntry, HistoryQuery,
    Lease, NewChange, Outbox, Published, Registry, Snapshot, Store, StoreError, WatchChange,
    WatchRecord, WatchTransition,
};
use rows::failed;

/// Connections per replica.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection (or for one to be made)
/// before the store answers unavailable.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PostgresStore {
    pool: Pool,
    /// What other servers commit, from the listener.
    notices: tokio::sync::broadcast::Sender<super::Notice>,
    /// Stops the listener at close.
    stop: tokio_util::sync::CancellationToken,
    /// The session holding (or trying for) the once-only duties.
    leader: leader::Leader,
    /// Where each operation's time is reported.
    timings: Timings,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database `url` names (`postgres://user@host/db`)
    /// and applies pending migrations.
    ///
    /// # Errors
    /// [`StoreError`] when the URL cannot be used, the database cannot be
    /// reached or migrated.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_timed(url, Timings::default()).await
    }

    /// [`open`](Self::open), reporting the time of each operation to `timings`.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn open_timed(url: &str, timings: Timings) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::corrupt(format!("the database URL cannot be used: {e}")))?;
        if config.get_connect_timeout().is_none() {
            // An unreachable host answers nothing; do not wait for TCP to give up.
            config.connect_timeout(CONNECT_WAIT);
        }
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_WAIT))
            .create_timeout(Some(CONNECT_WAIT))
            .recycle_timeout(Some(CONNECT_WAIT))
            .build()
            .map_err(|e| StoreError::corrupt(format!("cannot build the connection pool: {e}")))?;
        let (notices, _) = tokio::sync::broadcast::channel(64);
        let store = Self {
            pool,
            notices,
            stop: tokio_util::sync::CancellationToken::new(),
            leader: leader::Leader::new(config.clone()),
            timings,
        };
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        tokio::spawn(listener::run(
            config,
            store.notices.clone(),
            store.stop.clone(),
        ));
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(rows::pool)
    }
}

/// Opens a transaction on a pooled connection and runs `$body` with it.
macro_rules! in_transaction {
    ($store:expr, $context:literal, |$tx:ident| $body:expr) => {{
        let mut client = $store.client().await?;
        let $tx = client.transaction().await.map_err(failed($context))?;
        $body
    }};
}

#[async_trait]
impl ChangeLog for PostgresStore {
    async fn publish(&self, change: NewChange) -> Result<Published, StoreError> {
        self.timings
            .timed("publish", async {
                in_transaction!(self, "recording a change", |tx| changes::publish(
                    tx, &change
                )
                .await)
            })
            .await
    }

    async fn history(&self, query: HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        self.timings
            .timed("history", async {
                changes::history(&self.client().await?, &query).await
            })
            .await
    }
}

#[async_trait]
impl Deliveries for PostgresStore {
    async fn save_consumers(&self, consumers: Vec<ConsumerRecord>) -> Result<(), StoreError> {
        self.timings
            .timed("save_consumers", async {
                if consumers.is_empty() {
                    return Ok(());
                }
                in_transaction!(self, "saving consumer records", |tx| consumers::save(
                    tx, &consumers
                )
                .await)
            })
            .await
    }

    async fn claim_told(
        &self,
        app: &AppName,
        version: secapp_domain::Version,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.timings
            .timed("claim_told", async {
                let version = super::decode::version_to_sql(version);
                consumers::claim_told(&self.client().await?, app, version, at).await
            })
            .await
    }
}

#[async_trait]
impl Registry for PostgresStore {
    async fn change_access(
        &self,
        change: AccessChange,
        audit: AuditEvent,
        guard: super::AdminGuard,
    ) -> Result<super::Changed, StoreError> {
        self.timings
            .timed("change_access", async {
                in_transaction!(self, "changing applications or tokens", |tx| {
                    registry::change(tx, &change, &audit, guard).await
                })
            })
            .await
    }

    async fn save_token_usage(&self, used: Vec<(String, DateTime<Utc>)>) -> Result<(), StoreError> {
        self.timings
            .timed("save_token_usage", async {
                if used.is_empty() {
                    return Ok(());
                }
                in_transaction!(self, "saving token last-used times", |tx| {
                    registry::save_usage(tx, &used).await
                })
            })
            .await
    }
}

#[async_trait]
impl AuditLog for PostgresStore {
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.timings
            .timed("audit", async {
                registry::audit(&self.client().await?, &query).await
            })
            .await
    }
}

#[async_trait]
impl ConsumerWatch for PostgresStore {
    async fn watch(
        &self,
        sightings: Vec<(AppName, DateTime<Utc>)>,
    ) -> Result<Vec<WatchRecord>, StoreError> {
        self.timings
            .timed("watch", async {
                in_transaction!(self, "reading the consumer watch", |tx| watch::watch(
                    tx, &sightings
                )
                .await)
            })
            .await
    }

    async fn change_watch(&self, changes: Vec<WatchChange>) -> Result<Vec<bool>, StoreError> {
        self.timings
            .timed("change_watch", async {
                if changes.is_empty() {
                    return Ok(Vec::new());
                }
                in_transaction!(self, "changing alert states", |tx| watch::change(
                    tx, &changes
                )
                .await)
            })
            .await
    }

    async fn watch_history(
        &self,
        app: Option<AppName>,
        limit: u32,
    ) -> Result<Vec<WatchTransition>, StoreError> {
        self.timings
            .timed("watch_history", async {
                watch::history(&self.client().await?, app.as_ref(), limit).await
            })
            .await
    }
}

#[async_trait]
impl Outbox for PostgresStore {
    async fn claim_deliveries(
        &self,
        lease: &Lease,
        sink: &str,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.timings
            .timed("claim_deliveries", async {
                let mut client = self.client().await?;
                let tx = client
                    .transaction()
                    .await
                    .map_err(failed("claiming deliveries"))?;
                outbox::claim(tx, lease.epoch, sink, now, hold_until, limit).await
            })
            .await
    }

    async fn finish_deliveries(
        &self,
        lease: &Lease,
        finished: Vec<(Delivery, DeliveryOutcome)>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.timings
            .timed("finish_deliveries", async {
                outbox::finish(&self.client().await?, lease.epoch, &finished, at).await
            })
            .await
    }

    async fn dead_letters(
        &self,
        sink: Option<String>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.timings
            .timed("dead_letters", async {
                outbox::dead_letters(&self.client().await?, sink.as_deref(), before, limit).await
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
        self.timings
            .timed("retry_dead_letter", async {
                in_transaction!(self, "retrying a dead letter", |tx| {
                    outbox::retry_dead_letter(tx, sink, event_id, at, &audit).await
                })
            })
            .await
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.timings
            .timed("snapshot", async {
                in_transaction!(self, "reading a snapshot", |tx| {
                    // One consistent view of every table.
                    tx.execute(
                        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
                        &[],
                    )
                    .await
                    .map_err(failed("reading a snapshot"))?;
                    let (head, _, unreadable) = changes::head(&tx).await?;
                    let snapshot = Snapshot::assemble(
                        (head, unreadable),
                        consumers::load(&tx).await?,
                        registry::load_apps(&tx).await?,
                        registry::load_tokens(&tx).await?,
                    );
                    tx.commit().await.map_err(failed("reading a snapshot"))?;
                    Ok(snapshot)
                })
            })
            .await
    }

    async fn head(&self) -> Result<Option<secapp_domain::Head>, StoreError> {
        self.timings
            .timed("head", async {
                Ok(changes::head(&self.client().await?).await?.0)
            })
            .await
    }

    async fn registry_revision(&self) -> Result<i64, StoreError> {
        self.timings
            .timed("registry_revision", async {
                Ok(self
                    .client()
                    .await?
                    .query_one("SELECT coalesce(max(id), 0) FROM admin_audit", &[])
                    .await
                    .map_err(failed("reading the registry revision"))?
                    .get(0))
            })
            .await
    }

    async fn lead(&self, term: Duration) -> Result<Option<Lease>, StoreError> {
        self.timings
            .timed("lead", async { self.leader.lead(term).await })
            .await
    }

    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<super::Notice>> {
        Some(self.notices.subscribe())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timings
            .timed("ping", async {
                if self.pool.is_closed() {
                    return Err(StoreError::Closed);
                }
                self.leader.ping().await
            })
            .await
    }

    async fn close(&self) -> Result<(), StoreError> {
        if self.pool.is_closed() {
            return Err(StoreError::Closed);
        }
        self.stop.cancel();
        self.leader.resign().await;
        self.pool.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests;

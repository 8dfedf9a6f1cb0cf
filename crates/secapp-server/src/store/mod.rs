//! Storage behind traits, so handlers never know which database holds the
//! data. [`sqlite`] is the embedded default; [`connect`] opens the store a
//! [`DatabaseUrl`] names.
//!
//! The contract is split by aggregate, each a trait a backend implements:
//! - [`ChangeLog`]: publishing changes (the head is decided here) and the history;
//! - [`Deliveries`]: what each consumer application was told, sent and acknowledged;
//! - [`Registry`]: applications and tokens, each change with its audit event;
//! - [`AuditLog`]: reading the admin audit back;
//! - [`ConsumerWatch`]: when each consumer was last seen, its alert state
//!   and the history of its changes;
//! - [`Outbox`]: events waiting for sinks, claimed and finished by the relay;
//!
//! and [`Store`] is all six plus start-up, health and shutdown, and what a
//! server sharing the database with others needs: the head and registry
//! revision as stored now, notices of their changes, and who leads the
//! once-only duties.
//!
//! No method may assume its process is the only writer: a store decides the
//! head inside the publishing transaction from what the database holds,
//! claims idempotency keys insert-first, and only ever moves consumer
//! records forward. Ids strictly increase and are never reused, but may have
//! gaps. The [`conformance`] suite (behind the `testing` feature) proves it
//! for a backend, with two live instances on one database where it matters.
//!
//! - [`publish`]: the one publish algorithm (classify, version, claim the
//!   key, announce, outbox), over each backend's SQL for its steps.
//! - [`decode`]: reading rows back into records, over each backend's way of
//!   reading one column.
//! - `records.rs`: the records the traits take and return;
//!   `alerts.rs`: those of the consumer watch; `outbox.rs`: those of the
//!   outbox (events, who wants them, deliveries).
//! - `error.rs`: [`StoreError`], sorted by what a caller can do.

mod alerts;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod decode;
mod error;
mod lease;
mod outbox;
pub mod postgres;
pub mod publish;
mod records;
#[cfg(test)]
pub mod round_trip;
pub mod sqlite;
mod timings;

pub use alerts::*;
pub use error::{Cause, StoreError};
pub use lease::Lease;
pub use outbox::*;
pub use records::*;
pub use timings::Timings;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secapp_domain::{AppName, Head};

/// Published changes: the ordering decision and the history.
#[async_trait]
pub trait ChangeLog: Send + Sync {
    /// Records a change, decides whether it becomes the head from what the
    /// database holds (in the same transaction), and returns once both are
    /// durable. A change with an idempotency key already recorded in its
    /// window is not recorded again; the key is claimed insert-first, so two
    /// writers racing on one key record it once.
    async fn publish(&self, change: NewChange) -> Result<Published, StoreError>;

    /// Reads the history of published changes, newest first.
    async fn history(&self, query: HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError>;
}

/// What each consumer application was told, sent and acknowledged.
#[async_trait]
pub trait Deliveries: Send + Sync {
    /// Writes consumer records back. Every part only moves forward: a
    /// stale writer never replaces a newer cursor, sent or acknowledged id.
    async fn save_consumers(&self, consumers: Vec<ConsumerRecord>) -> Result<(), StoreError>;

    /// Claims telling `app` head `version` with its server-held cursor:
    /// true when this caller moved the stored cursor to it, false when the
    /// cursor already stood there or beyond (another server told it). Two
    /// servers claiming one version get one true between them.
    async fn claim_told(
        &self,
        app: &AppName,
        version: secapp_domain::Version,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// Registered applications and their tokens.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Applies a change to applications or tokens and records its audit
    /// event, both in one transaction. A change whose target another writer
    /// removed or took first is a [`StoreError::Conflict`]. With
    /// [`AdminGuard::KeepOne`], a change that would leave no enabled admin
    /// application with a live token (when there was one) is not made:
    /// [`Changed::WouldLeaveNoAdmin`]. Registry changes are serialised, so
    /// two servers cannot each remove one of the last two.
    async fn change_access(
        &self,
        change: AccessChange,
        audit: AuditEvent,
        guard: AdminGuard,
    ) -> Result<Changed, StoreError>;

    /// Writes back when tokens were last used; a time never moves back.
    async fn save_token_usage(&self, used: Vec<(String, DateTime<Utc>)>) -> Result<(), StoreError>;
}

/// The audit of admin actions.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Reads the audit, newest first.
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
}

/// When each consumer application was last seen and its alert state.
#[async_trait]
pub trait ConsumerWatch: Send + Sync {
    /// Moves stored last sightings forward to `sightings` (never back),
    /// then reads every watched application's record.
    async fn watch(
        &self,
        sightings: Vec<(AppName, DateTime<Utc>)>,
    ) -> Result<Vec<WatchRecord>, StoreError>;

    /// Records each change whose application's stored state is still its
    /// `from`, with its history entry and its event, one transaction for
    /// all; answers, for each change, whether it was recorded (`false`:
    /// another writer changed the state first).
    async fn change_watch(&self, changes: Vec<WatchChange>) -> Result<Vec<bool>, StoreError>;

    /// Reads changes of alert state, newest first, of one application or all.
    async fn watch_history(
        &self,
        app: Option<AppName>,
        limit: u32,
    ) -> Result<Vec<WatchTransition>, StoreError>;
}

/// Events waiting to be delivered to sinks, each sink's in the order they
/// were written.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Claims the oldest of `sink`'s pending deliveries, up to `limit` in
    /// event order, when the first of them is due at `now` (nothing
    /// otherwise: a delivery waiting for its retry holds back the ones
    /// behind it). Each is held (not due again) until `hold_until`, so two
    /// relays never send one sink's deliveries at once, and one that stops
    /// mid-batch leaves them to be sent again once the hold ends. Nothing
    /// is claimed once `lease` is no longer the duties' current one.
    async fn claim_deliveries(
        &self,
        lease: &Lease,
        sink: &str,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Records how each attempt ended, at `at`, in one transaction. A
    /// delivery already finished (by a relay whose hold ran out) stays as
    /// it was; nothing is recorded once `lease` is no longer current.
    async fn finish_deliveries(
        &self,
        lease: &Lease,
        finished: Vec<(Delivery, DeliveryOutcome)>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Dead letters, newest event first, of one sink or all; only events
    /// older than `before` when given (the next page).
    async fn dead_letters(
        &self,
        sink: Option<String>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// Makes a dead letter pending again, due at `at` (its attempts start
    /// over), with `audit` in the same transaction; `false` (and nothing
    /// recorded) when `sink` has no dead letter for that event.
    async fn retry_dead_letter(
        &self,
        sink: &str,
        event_id: i64,
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> Result<bool, StoreError>;
}

/// A whole store: every aggregate, plus loading, health and shutdown.
#[async_trait]
pub trait Store:
    ChangeLog + Deliveries + Registry + AuditLog + ConsumerWatch + Outbox + 'static
{
    /// Loads the head, consumer records, applications and tokens.
    async fn snapshot(&self) -> Result<Snapshot, StoreError>;

    /// The current head, as the database holds it now.
    async fn head(&self) -> Result<Option<Head>, StoreError>;

    /// A number that grows with every change to applications and tokens
    /// (the newest admin audit id): a server whose registry was loaded at a
    /// smaller one is behind.
    async fn registry_revision(&self) -> Result<i64, StoreError>;

    /// Takes or renews the once-only duties (recording consumer alerts,
    /// relaying events) for `term`, answering the lease when this server
    /// holds them: one server at a time among those sharing the database,
    /// another taking over once a term passes without renewal (the holder
    /// stopped, lost its connection or was paused). Always held alone on a
    /// database.
    async fn lead(&self, term: std::time::Duration) -> Result<Option<Lease>, StoreError>;

    /// Changes other servers on the same database commit, as they happen;
    /// `None` when no other server can share this database (SQLite: the
    /// data dir is locked to one process).
    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<Notice>>;

    /// Answers when the store can serve requests.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Finishes pending work and releases the database. Later calls fail
    /// with [`StoreError::Closed`].
    async fn close(&self) -> Result<(), StoreError>;
}

/// Which database to use, from `--database-url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH`: the embedded SQLite file at `PATH` (relative to the
    /// working directory unless it starts with `/`, as in `sqlite:///var/lib/secapp.db`).
    Sqlite(PathBuf),
    /// `postgres://user:password@host:port/database` (or `postgresql://`,
    /// with libpq's `?options`): a PostgreSQL database several replicas share.
    Postgres(String),
}

impl DatabaseUrl {
    /// The default: `secapp.db` in the data dir.
    #[must_use]
    pub fn sqlite_in(data_dir: &Path) -> Self {
        Self::Sqlite(data_dir.join(sqlite::DATABASE_FILE))
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(
                    "sqlite:// needs a file path, as in sqlite://secapp-data/secapp.db".into(),
                );
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
        if matches!(scheme, "postgres" | "postgresql") {
            url.parse::<tokio_postgres::Config>()
                .map_err(|e| format!("the PostgreSQL URL cannot be used: {e}"))?;
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err(format!(
            "`{scheme}` is not a database secapp knows; use sqlite://PATH or postgres://HOST/DATABASE"
        ))
    }
}

impl DatabaseUrl {
    /// The URL as given, password included: for connecting, never for showing.
    fn as_given(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => url.clone(),
        }
    }
}

/// Shown with any password replaced by `***`, so logs never carry it.
impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(_) => f.write_str(&self.as_given()),
            Self::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

/// `url` with the password of its user part, if any, as `***`.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_part, host)) => match user_part.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl serde::Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.as_given())
    }
}

impl<'de> serde::Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Opens the store `url` names, applying pending migrations: what the
/// server and the offline command line both call. Each operation's time is
/// reported to `timings`.
///
/// # Errors
/// [`StoreError`] when the database cannot be opened, migrated or read.
pub async fn connect(url: &DatabaseUrl, timings: Timings) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || {
                sqlite::SqliteStore::open_timed(&path, timings)
            })
            .await
            .map_err(|e| StoreError::unavailable(format!("opening the store panicked: {e}")))??;
            Ok(Arc::new(store))
        }
        DatabaseUrl::Postgres(url) => Ok(Arc::new(
            postgres::PostgresStore::open_timed(url, timings).await?,
        )),
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn database_urls_are_read_and_passwords_never_shown() {
        let url: DatabaseUrl = "postgres://secapp:s3cret@db.internal:5432/secapp"
            .parse()
            .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://secapp:***@db.internal:5432/secapp"
        );
        assert_eq!(
            serde_json::to_value(&url).unwrap(),
            "postgres://secapp:s3cret@db.internal:5432/secapp"
        );
        assert_eq!(
            "postgresql://db/secapp?sslmode=disable"
                .parse::<DatabaseUrl>()
                .unwrap()
                .to_string(),
            "postgresql://db/secapp?sslmode=disable"
        );
        assert!(matches!(
            "sqlite://x.db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Sqlite(_)
        ));
        for bad in ["mysql://db/x", "sqlite://", "postgres://db:notaport/x"] {
            assert!(bad.parse::<DatabaseUrl>().is_err(), "{bad}");
        }
    }
}

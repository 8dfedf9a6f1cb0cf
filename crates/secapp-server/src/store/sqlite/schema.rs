//! The schema: the migrations in `migrations/sqlite/`, applied in order at
//! open, and the settings every connection needs.

use chrono::Utc;
use rusqlite::{Connection, TransactionBehavior, params};

use super::rows::{failed, rfc3339};
use crate::store::StoreError;

/// Schema migrations, applied in order at start-up. Never edit one that has
/// shipped: add the next.
pub(super) const MIGRATIONS: &[(i64, &str, &str)] = &[
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
    (
        6,
        "consumer watch and webhooks",
        include_str!("../../../migrations/sqlite/0006_watch_and_webhooks.sql"),
    ),
    (
        7,
        "sinks",
        include_str!("../../../migrations/sqlite/0007_sinks.sql"),
    ),
];

/// Sets what durability and concurrency rest on; refuses a file system
/// without WAL.
pub(super) fn configure(conn: &Connection) -> Result<(), StoreError> {
    // WAL lets readers proceed during a write; synchronous=FULL syncs the WAL
    // at every commit, which is what makes an acknowledged publish survive
    // power loss (NORMAL would only sync at checkpoints).
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(failed("preparing the database"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(failed("preparing the database"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(failed("preparing the database"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(failed("preparing the database"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .map_err(failed("preparing the database"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::unavailable(format!(
            "the database refused WAL mode (journal_mode is {mode}); is the data dir on a network file system?"
        )));
    }
    Ok(())
}

/// Applies every migration the database has not had, in one transaction
/// that holds the write lock from the start, so two processes opening one
/// new database migrate it once between them; refuses a database from a
/// newer secapp.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let migrating = failed("migrating the database");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&migrating)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL
         )",
    )
    .map_err(&migrating)?;
    let applied: i64 = tx
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(&migrating)?;
    let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if applied > known {
        return Err(StoreError::corrupt(format!(
            "the database is at schema version {applied}, newer than this secapp knows ({known}); \
             run a newer secapp or restore a backup"
        )));
    }
    let mut done = Vec::new();
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > applied) {
        tx.execute_batch(sql).map_err(&migrating)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![version, name, rfc3339(Utc::now())],
        )
        .map_err(&migrating)?;
        done.push((version, name));
    }
    tx.commit().map_err(&migrating)?;
    for (version, name) in done {
        tracing::info!(version, name, "applied schema migration");
    }
    Ok(())
}

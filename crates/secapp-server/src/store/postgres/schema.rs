//! The migrations of the PostgreSQL store, applied in one transaction under
//! an advisory lock, so replicas starting together migrate once.

use chrono::Utc;

use super::rows::failed;
use crate::store::StoreError;

/// The migrations, in order: version, name, SQL.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "sinks",
        include_str!("../../../migrations/postgres/0002_sinks.sql"),
    ),
    (
        3,
        "leases",
        include_str!("../../../migrations/postgres/0003_leases.sql"),
    ),
];

/// The advisory lock held while migrating ("secapp:m").
const MIGRATION_LOCK: i64 = 0x7365_6361_7070_3a6d;

pub(super) async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let migrating = failed("migrating the database");
    let tx = client.transaction().await.map_err(&migrating)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(&migrating)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     BIGINT PRIMARY KEY,
             name        TEXT NOT NULL,
             applied_at  TIMESTAMPTZ NOT NULL
         )",
    )
    .await
    .map_err(&migrating)?;
    let applied: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(&migrating)?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if applied > known {
        return Err(StoreError::corrupt(format!(
            "the database is at schema version {applied}, newer than this secapp knows ({known}); \
             run a newer secapp or restore a backup"
        )));
    }
    let mut done = Vec::new();
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > applied) {
        tx.batch_execute(sql).await.map_err(&migrating)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[version, name, &Utc::now()],
        )
        .await
        .map_err(&migrating)?;
        done.push((version, name));
    }
    tx.commit().await.map_err(&migrating)?;
    for (version, name) in done {
        tracing::info!(version, name, "applied schema migration");
    }
    Ok(())
}

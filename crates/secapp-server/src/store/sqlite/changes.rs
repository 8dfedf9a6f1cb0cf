//! The change log: recording publishes, deciding the head inside the
//! transaction from what the database holds, and reading the history.

use rusqlite::{Connection, Savepoint, Transaction, params};
use secapp_domain::{AppName, ChangeId, Head, Ledger, Outcome, Version};

use super::rows::{self, Fields, failed, rfc3339};
use super::{idempotency, outbox};
use crate::store::decode::{self, NewestHead, version_to_sql};
use crate::store::publish::{self, KeyClaim, PublishUnit};
use crate::store::{
    HistoryEntry, HistoryQuery, Idempotency, NewChange, NewEvent, Published, StoreError,
    UnreadableRow,
};

/// The head and the latest head version given, as the database holds them
/// now (`decode::NewestHead` says what stands in for an unreadable head).
pub(super) fn head(
    conn: &Connection,
) -> Result<(Option<Head>, Version, Vec<UnreadableRow>), StoreError> {
    let reading = failed("reading the head");
    // The UNIQUE index on head_version serves this: normally one row read.
    let mut statement = conn
        .prepare_cached(
            "SELECT id, level, changed_at, head_version FROM changes
             WHERE head_version IS NOT NULL ORDER BY head_version DESC",
        )
        .map_err(&reading)?;
    let mut found = statement.query([]).map_err(&reading)?;
    let mut newest = NewestHead::default();
    while let Some(row) = found.next().map_err(&reading)? {
        if newest.offer(&Fields(row)) {
            break;
        }
    }
    Ok(newest.finish())
}

/// The ordering state as the database holds it inside `tx`: whatever
/// another writer committed before this transaction began counts.
pub(super) fn ledger(tx: &Transaction<'_>) -> Result<Ledger, StoreError> {
    let (head, latest, _) = head(tx)?;
    Ok(Ledger::resume(head, latest))
}

/// Records one publish inside `tx` (`store::publish`), moving `ledger` on
/// when it becomes the head. Its writes are in a savepoint, so a publish
/// that fails (or finds its idempotency key taken) leaves nothing behind
/// and the others in the batch go on.
pub(super) fn publish(
    tx: &mut Transaction<'_>,
    ledger: &mut Ledger,
    change: &NewChange,
) -> Result<Published, StoreError> {
    let savepoint = tx.savepoint().map_err(failed("recording a change"))?;
    publish::run_to_completion(publish::publish(Unit(savepoint), ledger, change))
}

/// One publish's savepoint.
struct Unit<'c>(Savepoint<'c>);

impl PublishUnit for Unit<'_> {
    async fn forget_expired_key(
        &mut self,
        app: &AppName,
        idempotency: &Idempotency,
    ) -> Result<(), StoreError> {
        idempotency::forget_expired(&self.0, app, idempotency)
    }

    async fn insert_change(
        &mut self,
        change: &NewChange,
        outcome: Outcome,
        head_version: Option<Version>,
    ) -> Result<ChangeId, StoreError> {
        let recording = failed("recording a change");
        self.0
            .prepare_cached(
                "INSERT INTO changes (level, changed_at, published_by, received_at, outcome,
                                      head_version, source_address, token_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            )
            .map_err(&recording)?
            .query_row(
                params![
                    change.level.get(),
                    change.changed_at.to_string(),
                    change.published_by.as_str(),
                    rfc3339(change.received_at),
                    outcome.as_str(),
                    head_version.map(version_to_sql),
                    change.source,
                    change.token_id,
                ],
                |row| row.get(0),
            )
            .map(ChangeId)
            .map_err(&recording)
    }

    async fn claim_key(
        &mut self,
        change: &NewChange,
        idempotency: &Idempotency,
        id: ChangeId,
    ) -> Result<KeyClaim, StoreError> {
        idempotency::claim(&self.0, change, idempotency, id)
    }

    async fn announce_head(&mut self) -> Result<(), StoreError> {
        // The data dir is locked to one process: nobody else to tell.
        Ok(())
    }

    async fn insert_event(&mut self, event: &NewEvent) -> Result<(), StoreError> {
        outbox::insert(&self.0, event)
    }

    async fn keep(self) -> Result<(), StoreError> {
        self.0.commit().map_err(failed("recording a change"))
    }

    async fn discard(self) -> Result<(), StoreError> {
        // Dropping a savepoint rolls it back.
        Ok(())
    }
}

/// One page of the history, newest first; unreadable rows left out.
pub(super) fn history(
    conn: &Connection,
    query: &HistoryQuery,
) -> Result<Vec<HistoryEntry>, StoreError> {
    // NULL parameters switch a filter off.
    let (entries, _) = rows::load(
        conn,
        "SELECT id, level, changed_at, published_by, received_at, source_address, outcome,
                token_id
         FROM changes
         WHERE (?1 IS NULL OR id < ?1)
           AND (?2 IS NULL OR published_by = ?2)
           AND (?3 IS NULL OR received_at >= ?3)
           AND (?4 IS NULL OR received_at < ?4)
         ORDER BY id DESC
         LIMIT ?5",
        params![
            query.before.map(|id| id.0),
            query.app.as_ref().map(AppName::as_str),
            query.since.map(rfc3339),
            query.until.map(rfc3339),
            query.limit,
        ],
        |row| decode::history_entry(row),
        |row, problem| decode::skipped("changes", row, problem),
    )?;
    Ok(entries)
}

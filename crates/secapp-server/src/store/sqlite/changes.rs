//! The change log: recording publishes, deciding the head inside the
//! transaction from what the database holds, and reading the history.

use rusqlite::{Connection, Transaction, params};
use secapp_domain::{AppName, ChangeId, Head, Ledger, Outcome, Version};

use super::idempotency::{self, Claim};
use super::outbox;
use super::rows::{self, Fields, failed, rfc3339, version_to_sql};
use crate::store::{
    HistoryEntry, HistoryQuery, NewChange, NewEvent, Published, Recorded, StoreError, UnreadableRow,
};

/// The head and the latest head version given, as the database holds them
/// now. When the newest head row cannot be read, the newest one that can
/// stands in for it (reported with the rows skipped), and the version still
/// counts from the newest, so no version is given twice.
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
    let mut latest = Version(0);
    let mut unreadable = Vec::new();
    while let Some(row) = found.next().map_err(&reading)? {
        let fields = Fields(row);
        match rows::head_row(&fields) {
            Ok(head) => {
                latest = latest.max(head.version);
                return Ok((Some(head), latest, unreadable));
            }
            Err(problem) => {
                if let Ok(Some(raw)) = fields.integer(3, "head_version")
                    && let Ok(version) = rows::version(raw, "head_version")
                {
                    latest = latest.max(version);
                }
                unreadable.push(UnreadableRow {
                    table: "changes",
                    key: fields.shown(0).unwrap_or_default(),
                    problem,
                });
            }
        }
    }
    Ok((None, latest, unreadable))
}

/// The ordering state as the database holds it inside `tx`: whatever
/// another writer committed before this transaction began counts.
pub(super) fn ledger(tx: &Transaction<'_>) -> Result<Ledger, StoreError> {
    let (head, latest, _) = head(tx)?;
    Ok(Ledger::resume(head, latest))
}

/// Records one publish inside `tx`, moving `ledger` on when it becomes the
/// head. Its writes are in a savepoint, so a publish that fails (or finds
/// its idempotency key taken) leaves nothing behind and the others in the
/// batch go on.
pub(super) fn publish(
    tx: &mut Transaction<'_>,
    ledger: &mut Ledger,
    change: &NewChange,
) -> Result<Published, StoreError> {
    let recording = failed("recording a change");
    let savepoint = tx.savepoint().map_err(&recording)?;
    if let Some(idempotency) = &change.idempotency {
        idempotency::forget_expired(&savepoint, &change.published_by, idempotency)?;
    }
    let outcome = ledger.classify(&change.changed_at);
    let version = ledger.version().next();
    let head_version = (outcome == Outcome::Head).then(|| version_to_sql(version));
    let id: i64 = savepoint
        .prepare_cached(
            "INSERT INTO changes (level, changed_at, published_by, received_at, outcome, head_version,
                                  source_address, token_id)
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
                head_version,
                change.source,
                change.token_id,
            ],
            |row| row.get(0),
        )
        .map_err(&recording)?;
    if let Some(idempotency) = &change.idempotency {
        // Insert-first: the key is claimed by this insert or found taken,
        // never read first and then written, so two writers racing on one
        // key record one change between them.
        match idempotency::claim(&savepoint, change, idempotency, id)? {
            Claim::Claimed => {}
            Claim::Taken(earlier) => {
                // Dropping the savepoint rolls the change back.
                drop(savepoint);
                return Ok(earlier);
            }
        }
    }
    if let Some(event) = NewEvent::for_publish(change, ChangeId(id), outcome, ledger) {
        outbox::insert(&savepoint, &event)?;
    }
    savepoint.commit().map_err(&recording)?;
    Recorded::after_commit(ledger, change, ChangeId(id), outcome).map(Published::New)
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
        rows::history_entry,
        rows::skipped("changes"),
    )?;
    Ok(entries)
}

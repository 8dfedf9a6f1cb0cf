//! The outbox: events, written in the transaction of their cause, and
//! their delivery to each sink, claimed in event order by a relay with a
//! hold so two relays never send one sink's deliveries at once.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};

use super::rows::{self, failed, rfc3339};
use crate::store::decode::{self, Columns as _};
use crate::store::{AuditEvent, DeadLetter, Delivery, DeliveryOutcome, NewEvent, StoreError};

/// Writes `event` and one pending delivery per sink, inside `tx`.
pub(super) fn insert(tx: &Connection, event: &NewEvent) -> Result<(), StoreError> {
    if event.sinks.is_empty() {
        return Ok(());
    }
    let writing = failed("writing an event");
    let at = rfc3339(event.at);
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO events (type, occurred_at, data) VALUES (?1, ?2, ?3) RETURNING id",
        )
        .map_err(&writing)?
        .query_row(
            params![event.kind.as_str(), at, event.data.to_string()],
            |row| row.get(0),
        )
        .map_err(&writing)?;
    let mut deliver = tx
        .prepare_cached(
            "INSERT INTO deliveries (event_id, sink, state, next_attempt_at)
             VALUES (?1, ?2, 'pending', ?3)",
        )
        .map_err(&writing)?;
    for sink in &event.sinks {
        deliver.execute(params![id, sink, at]).map_err(&writing)?;
    }
    Ok(())
}

/// Claims `sink`'s oldest pending deliveries when the first is due.
pub(super) fn claim(
    conn: &mut Connection,
    sink: &str,
    now: DateTime<Utc>,
    hold_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let claiming = failed("claiming deliveries");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&claiming)?;
    let (due, _) = rows::load(
        &tx,
        "SELECT d.event_id, d.sink, e.type, e.occurred_at, e.data, d.attempts
         FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.sink = ?1 AND d.state = 'pending'
           AND (SELECT next_attempt_at FROM deliveries
                WHERE sink = ?1 AND state = 'pending'
                ORDER BY event_id LIMIT 1) <= ?2
         ORDER BY d.event_id LIMIT ?3",
        params![sink, rfc3339(now), limit],
        |row| decode::delivery(row),
        |fields, problem| {
            tracing::error!(event = ?fields.shown(0), %problem, "an event cannot be read; it stays in the outbox");
        },
    )?;
    {
        let mut hold = tx
            .prepare_cached(
                "UPDATE deliveries SET next_attempt_at = ?3 WHERE event_id = ?1 AND sink = ?2",
            )
            .map_err(&claiming)?;
        for delivery in &due {
            hold.execute(params![delivery.event_id, sink, rfc3339(hold_until)])
                .map_err(&claiming)?;
        }
    }
    tx.commit().map_err(&claiming)?;
    Ok(due)
}

/// Records how each attempt ended, in one transaction.
pub(super) fn finish(
    conn: &mut Connection,
    finished: &[(Delivery, DeliveryOutcome)],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let finishing = failed("finishing deliveries");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&finishing)?;
    {
        let mut update = tx
            .prepare_cached(
                "UPDATE deliveries
                 SET state = ?3, attempts = attempts + ?4, finished_at = ?5,
                     last_error = coalesce(?6, last_error), next_attempt_at = ?7
                 WHERE event_id = ?1 AND sink = ?2 AND state = 'pending'",
            )
            .map_err(&finishing)?;
        for (delivery, outcome) in finished {
            let row = outcome.row(at);
            update
                .execute(params![
                    delivery.event_id,
                    delivery.sink,
                    row.state,
                    row.attempted,
                    row.finished_at.map(rfc3339),
                    row.error,
                    rfc3339(row.next_attempt_at),
                ])
                .map_err(&finishing)?;
        }
    }
    tx.commit().map_err(&finishing)
}

/// Dead letters, newest event first.
pub(super) fn dead_letters(
    conn: &Connection,
    sink: Option<&str>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<DeadLetter>, StoreError> {
    let (dead, _) = rows::load(
        conn,
        "SELECT d.event_id, d.sink, e.type, e.occurred_at, d.attempts, d.finished_at, d.last_error
         FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.state = 'dead' AND (?1 IS NULL OR d.sink = ?1) AND (?2 IS NULL OR d.event_id < ?2)
         ORDER BY d.event_id DESC, d.sink LIMIT ?3",
        params![sink, before, limit],
        |row| decode::dead_letter(row),
        |fields, problem| decode::skipped("deliveries", fields, problem),
    )?;
    Ok(dead)
}

/// Makes a dead letter pending again.
pub(super) fn retry_dead_letter(
    conn: &mut Connection,
    sink: &str,
    event_id: i64,
    at: DateTime<Utc>,
    audit: &AuditEvent,
) -> Result<bool, StoreError> {
    let retrying = failed("retrying a dead letter");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&retrying)?;
    let changed = tx
        .prepare_cached(
            "UPDATE deliveries SET state = 'pending', attempts = 0, finished_at = NULL,
                 next_attempt_at = ?3
             WHERE event_id = ?1 AND sink = ?2 AND state = 'dead'",
        )
        .map_err(&retrying)?
        .execute(params![event_id, sink, rfc3339(at)])
        .map_err(&retrying)?;
    if changed == 1 {
        super::audit::record(&tx, audit)?;
    }
    tx.commit().map_err(&retrying)?;
    Ok(changed == 1)
}

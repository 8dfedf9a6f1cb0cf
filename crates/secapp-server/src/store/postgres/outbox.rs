//! The outbox: events with one delivery per sink, written in the
//! transaction of their cause; a sink's deliveries claimed in event order
//! under a row lock on the oldest, with a hold.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};

use super::leader::HELD_UNDER_1;
use super::rows::{self, failed};
use crate::store::decode;
use crate::store::{AuditEvent, DeadLetter, Delivery, DeliveryOutcome, NewEvent, StoreError};

/// Writes `event` and one pending delivery per sink, inside `tx`.
pub(super) async fn insert_event(tx: &Transaction<'_>, event: &NewEvent) -> Result<(), StoreError> {
    if event.sinks.is_empty() {
        return Ok(());
    }
    let writing = failed("writing an event");
    let id: i64 = tx
        .query_one(
            "INSERT INTO events (type, occurred_at, data) VALUES ($1, $2, $3) RETURNING id",
            &[&event.kind.as_str(), &event.at, &event.data.to_string()],
        )
        .await
        .map_err(&writing)?
        .get(0);
    tx.execute(
        "INSERT INTO deliveries (event_id, sink, state, next_attempt_at)
         SELECT $1, sink, 'pending', $3 FROM unnest($2::text[]) AS sink",
        &[&id, &event.sinks, &event.at],
    )
    .await
    .map_err(&writing)?;
    Ok(())
}

/// Claims `sink`'s oldest pending deliveries when the first is due and
/// `epoch` is still the duties' current one. The oldest is locked first: a
/// second relay claiming at the same moment waits for this one's commit,
/// then sees it held.
pub(super) async fn claim(
    tx: Transaction<'_>,
    epoch: i64,
    sink: &str,
    now: DateTime<Utc>,
    hold_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let claiming = failed("claiming deliveries");
    let first = tx
        .query_opt(
            &format!(
                "SELECT next_attempt_at FROM deliveries
                 WHERE sink = $2 AND state = 'pending' AND {HELD_UNDER_1}
                 ORDER BY event_id LIMIT 1 FOR UPDATE OF deliveries"
            ),
            &[&epoch, &sink],
        )
        .await
        .map_err(&claiming)?;
    let due_first = first.is_some_and(|row| row.get::<_, DateTime<Utc>>(0) <= now);
    if !due_first {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            &format!(
                "WITH due AS (
                     SELECT event_id FROM deliveries
                     WHERE sink = $2 AND state = 'pending'
                     ORDER BY event_id LIMIT $3
                     FOR UPDATE
                 )
                 UPDATE deliveries d SET next_attempt_at = $4
                 FROM due, events e
                 WHERE d.sink = $2 AND d.event_id = due.event_id AND e.id = due.event_id
                   AND {HELD_UNDER_1}
                 RETURNING d.event_id, d.sink, e.type, e.occurred_at, e.data, d.attempts"
            ),
            &[&epoch, &sink, &i64::from(limit), &hold_until],
        )
        .await
        .map_err(&claiming)?;
    tx.commit().await.map_err(&claiming)?;
    let mut due = rows::load(&rows, decode::delivery, |row, problem| {
        decode::skipped("events", row, problem);
    })
    .0;
    due.sort_by_key(|delivery| delivery.event_id);
    Ok(due)
}

/// Records how each attempt ended, in one statement, while `epoch` is
/// still the duties' current one.
pub(super) async fn finish(
    client: &impl GenericClient,
    epoch: i64,
    finished: &[(Delivery, DeliveryOutcome)],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if finished.is_empty() {
        return Ok(());
    }
    let mut events = Vec::with_capacity(finished.len());
    let mut sinks = Vec::with_capacity(finished.len());
    let mut states = Vec::with_capacity(finished.len());
    let mut attempted = Vec::with_capacity(finished.len());
    let mut finished_at = Vec::with_capacity(finished.len());
    let mut errors = Vec::with_capacity(finished.len());
    let mut next = Vec::with_capacity(finished.len());
    for (delivery, outcome) in finished {
        let row = outcome.row(at);
        events.push(delivery.event_id);
        sinks.push(delivery.sink.as_str());
        states.push(row.state);
        attempted.push(row.attempted);
        finished_at.push(row.finished_at);
        errors.push(row.error);
        next.push(row.next_attempt_at);
    }
    client
        .execute(
            &format!(
                "UPDATE deliveries d
                 SET state = f.state, attempts = d.attempts + f.attempted,
                     finished_at = f.finished_at, last_error = coalesce(f.error, d.last_error),
                     next_attempt_at = f.next_at
                 FROM unnest($2::bigint[], $3::text[], $4::text[], $5::int[],
                             $6::timestamptz[], $7::text[], $8::timestamptz[])
                      AS f (event_id, sink, state, attempted, finished_at, error, next_at)
                 WHERE d.event_id = f.event_id AND d.sink = f.sink AND d.state = 'pending'
                   AND {HELD_UNDER_1}"
            ),
            &[
                &epoch,
                &events,
                &sinks,
                &states,
                &attempted,
                &finished_at,
                &errors,
                &next,
            ],
        )
        .await
        .map_err(failed("finishing deliveries"))?;
    Ok(())
}

/// Dead letters, newest event first.
pub(super) async fn dead_letters(
    client: &impl GenericClient,
    sink: Option<&str>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = client
        .query(
            "SELECT d.event_id, d.sink, e.type, e.occurred_at, d.attempts, d.finished_at, d.last_error
             FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.state = 'dead' AND ($1::text IS NULL OR d.sink = $1)
               AND ($2::bigint IS NULL OR d.event_id < $2)
             ORDER BY d.event_id DESC, d.sink LIMIT $3",
            &[&sink, &before, &i64::from(limit)],
        )
        .await
        .map_err(failed("reading dead letters"))?;
    Ok(rows::load(&rows, decode::dead_letter, |row, problem| {
        decode::skipped("deliveries", row, problem);
    })
    .0)
}

/// Makes a dead letter pending again, with its audit event.
pub(super) async fn retry_dead_letter(
    tx: Transaction<'_>,
    sink: &str,
    event_id: i64,
    at: DateTime<Utc>,
    audit: &AuditEvent,
) -> Result<bool, StoreError> {
    let changed = tx
        .execute(
            "UPDATE deliveries SET state = 'pending', attempts = 0, finished_at = NULL,
                 next_attempt_at = $3
             WHERE event_id = $1 AND sink = $2 AND state = 'dead'",
            &[&event_id, &sink, &at],
        )
        .await
        .map_err(failed("retrying a dead letter"))?;
    if changed == 1 {
        super::registry::record(&tx, audit).await?;
    }
    tx.commit()
        .await
        .map_err(failed("retrying a dead letter"))?;
    Ok(changed == 1)
}

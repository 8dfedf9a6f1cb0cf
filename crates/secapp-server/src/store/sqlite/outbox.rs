//! The outbox: events, written in the transaction of their cause, and
//! their delivery to each webhook, claimed by a sender with a hold so two
//! senders never try one delivery at once.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};

use super::rows::{self, failed, rfc3339};
use crate::store::decode::{self, Columns as _};
use crate::store::{Delivery, DeliveryOutcome, NewEvent, StoreError};

/// Writes `event` and one pending delivery per webhook, inside `tx`.
pub(super) fn insert(tx: &Connection, event: &NewEvent) -> Result<(), StoreError> {
    if event.webhooks.is_empty() {
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
            "INSERT INTO webhook_deliveries (event_id, webhook, state, next_attempt_at)
             VALUES (?1, ?2, 'pending', ?3)",
        )
        .map_err(&writing)?;
    for webhook in &event.webhooks {
        deliver
            .execute(params![id, webhook, at])
            .map_err(&writing)?;
    }
    Ok(())
}

/// Claims due deliveries of `webhook`, oldest event first.
pub(super) fn claim(
    conn: &mut Connection,
    webhook: &str,
    now: DateTime<Utc>,
    hold_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let claiming = failed("claiming webhook deliveries");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&claiming)?;
    let (due, _) = rows::load(
        &tx,
        "SELECT d.event_id, d.webhook, e.type, e.occurred_at, e.data, d.attempts
         FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.webhook = ?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2
         ORDER BY d.event_id LIMIT ?3",
        params![webhook, rfc3339(now), limit],
        |row| decode::delivery(row),
        |fields, problem| {
            tracing::error!(event = ?fields.shown(0), %problem, "an event cannot be read; it stays in the outbox");
        },
    )?;
    {
        let mut hold = tx
            .prepare_cached(
                "UPDATE webhook_deliveries SET next_attempt_at = ?3
                 WHERE event_id = ?1 AND webhook = ?2",
            )
            .map_err(&claiming)?;
        for delivery in &due {
            hold.execute(params![delivery.event_id, webhook, rfc3339(hold_until)])
                .map_err(&claiming)?;
        }
    }
    tx.commit().map_err(&claiming)?;
    Ok(due)
}

/// Records how an attempt ended. A delivery already finished (by another
/// sender whose hold ran out) stays as it was.
pub(super) fn finish(
    conn: &Connection,
    delivery: &Delivery,
    outcome: &DeliveryOutcome,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (state, next, error) = match outcome {
        DeliveryOutcome::Delivered => ("delivered", None, None),
        DeliveryOutcome::Retry { next_at, error } => ("pending", Some(*next_at), Some(error)),
        DeliveryOutcome::Dead { error } => ("dead", None, Some(error)),
    };
    let finished = (state != "pending").then(|| rfc3339(at));
    conn.prepare_cached(
        "UPDATE webhook_deliveries
         SET state = ?3, attempts = attempts + 1, finished_at = ?4, last_error = ?5,
             next_attempt_at = coalesce(?6, next_attempt_at)
         WHERE event_id = ?1 AND webhook = ?2 AND state = 'pending'",
    )
    .map_err(failed("finishing a webhook delivery"))?
    .execute(params![
        delivery.event_id,
        delivery.webhook,
        state,
        finished,
        error,
        next.map(rfc3339),
    ])
    .map_err(failed("finishing a webhook delivery"))?;
    Ok(())
}

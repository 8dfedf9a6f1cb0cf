//! The consumer watch: last sightings (forward only), alert states changed
//! only from the state the caller read, and their history.

use rusqlite::{Connection, TransactionBehavior, params};
use secapp_domain::AppName;

use chrono::{DateTime, Utc};

use super::outbox;
use super::rows::{self, failed, rfc3339};
use crate::store::decode;
use crate::store::{StoreError, WatchChange, WatchRecord, WatchTransition};

/// Moves sightings forward, then reads every record, in one transaction.
pub(super) fn watch(
    conn: &mut Connection,
    sightings: &[(AppName, DateTime<Utc>)],
) -> Result<Vec<WatchRecord>, StoreError> {
    let watching = failed("reading the consumer watch");
    let tx = conn
        .transaction_with_behavior(if sightings.is_empty() {
            TransactionBehavior::Deferred
        } else {
            TransactionBehavior::Immediate
        })
        .map_err(&watching)?;
    {
        // Fixed-width RFC 3339 text in UTC compares as the times do.
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO consumer_watch (app, last_seen) VALUES (?1, ?2)
                 ON CONFLICT (app) DO UPDATE SET last_seen = excluded.last_seen
                 WHERE last_seen IS NULL OR excluded.last_seen > last_seen",
            )
            .map_err(&watching)?;
        for (app, at) in sightings {
            upsert
                .execute(params![app.as_str(), rfc3339(*at)])
                .map_err(&watching)?;
        }
    }
    let (records, unreadable) = rows::load(
        &tx,
        "SELECT app, last_seen, state, since FROM consumer_watch ORDER BY app",
        [],
        |row| decode::watch_record(row),
        |row, problem| decode::unreadable_row("consumer_watch", row, problem),
    )?;
    tx.commit().map_err(&watching)?;
    for row in unreadable {
        tracing::error!(table = row.table, key = %row.key, problem = %row.problem,
            "a consumer watch row cannot be read and is left out");
    }
    Ok(records)
}

/// Records each change whose stored state is still its `from`, with its
/// history entry and its event.
pub(super) fn change(
    conn: &mut Connection,
    changes: &[WatchChange],
) -> Result<Vec<bool>, StoreError> {
    let changing = failed("changing alert states");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&changing)?;
    let mut applied = Vec::with_capacity(changes.len());
    for change in changes {
        let (from_state, from_since) = change
            .from
            .map(|from| (Some(from.state.as_str()), Some(rfc3339(from.since))))
            .unwrap_or_default();
        tx.execute(
            "INSERT INTO consumer_watch (app, last_seen) VALUES (?1, ?2)
             ON CONFLICT (app) DO NOTHING",
            params![change.app.as_str(), change.last_seen.map(rfc3339)],
        )
        .map_err(&changing)?;
        let updated = tx
            .execute(
                "UPDATE consumer_watch SET state = ?2, since = ?3
                 WHERE app = ?1 AND state IS ?4 AND since IS ?5",
                params![
                    change.app.as_str(),
                    change.to.state.as_str(),
                    rfc3339(change.to.since),
                    from_state,
                    from_since,
                ],
            )
            .map_err(&changing)?;
        if updated == 0 {
            applied.push(false);
            continue;
        }
        if let Some(from) = from_state {
            tx.execute(
                "INSERT INTO consumer_watch_history (app, from_state, to_state, at, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    change.app.as_str(),
                    from,
                    change.to.state.as_str(),
                    rfc3339(change.to.since),
                    change.last_seen.map(rfc3339),
                ],
            )
            .map_err(&changing)?;
        }
        if let Some(event) = &change.event {
            outbox::insert(&tx, event)?;
        }
        applied.push(true);
    }
    tx.commit().map_err(&changing)?;
    Ok(applied)
}

/// Changes of alert state, newest first.
pub(super) fn history(
    conn: &Connection,
    app: Option<&AppName>,
    limit: u32,
) -> Result<Vec<WatchTransition>, StoreError> {
    let (entries, _) = rows::load(
        conn,
        "SELECT id, app, from_state, to_state, at, last_seen FROM consumer_watch_history
         WHERE (?1 IS NULL OR app = ?1) ORDER BY id DESC LIMIT ?2",
        params![app.map(AppName::as_str), limit],
        |row| decode::watch_transition(row),
        |row, problem| decode::skipped("consumer_watch_history", row, problem),
    )?;
    Ok(entries)
}

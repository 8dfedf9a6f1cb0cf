//! The consumer watch: sightings forward only, states changed only from
//! the state read, their history.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use secapp_domain::AppName;

use super::rows::{self, failed};
use crate::store::decode;
use crate::store::{StoreError, WatchChange, WatchRecord, WatchTransition};

/// Moves sightings forward in `tx`, then reads every record; commits.
pub(super) async fn watch(
    tx: Transaction<'_>,
    sightings: &[(AppName, DateTime<Utc>)],
) -> Result<Vec<WatchRecord>, StoreError> {
    let watching = failed("reading the consumer watch");
    let mut ordered: Vec<&(AppName, DateTime<Utc>)> = sightings.iter().collect();
    ordered.sort_by(|a, b| a.0.cmp(&b.0));
    for (app, at) in ordered {
        tx.execute(
            "INSERT INTO consumer_watch (app, last_seen) VALUES ($1, $2)
             ON CONFLICT (app) DO UPDATE SET last_seen = EXCLUDED.last_seen
             WHERE consumer_watch.last_seen IS NULL OR EXCLUDED.last_seen > consumer_watch.last_seen",
            &[&app.as_str(), at],
        )
        .await
        .map_err(&watching)?;
    }
    let rows = tx
        .query(
            "SELECT app, last_seen, state, since FROM consumer_watch ORDER BY app",
            &[],
        )
        .await
        .map_err(&watching)?;
    tx.commit().await.map_err(&watching)?;
    Ok(rows::load(&rows, decode::watch_record, |row, problem| {
        decode::skipped("consumer_watch", row, problem)
    })
    .0)
}

/// Records each change whose stored state is still its `from`, with its
/// history entry and its event; commits.
pub(super) async fn change(
    tx: Transaction<'_>,
    changes: &[WatchChange],
) -> Result<Vec<bool>, StoreError> {
    let changing = failed("changing alert states");
    let mut applied = Vec::with_capacity(changes.len());
    for change in changes {
        let from_state = change.from.map(|from| from.state.as_str());
        let from_since = change.from.map(|from| from.since);
        tx.execute(
            "INSERT INTO consumer_watch (app, last_seen) VALUES ($1, $2)
             ON CONFLICT (app) DO NOTHING",
            &[&change.app.as_str(), &change.last_seen],
        )
        .await
        .map_err(&changing)?;
        let updated = tx
            .execute(
                "UPDATE consumer_watch SET state = $2, since = $3
                 WHERE app = $1 AND state IS NOT DISTINCT FROM $4::TEXT
                   AND since IS NOT DISTINCT FROM $5::TIMESTAMPTZ",
                &[
                    &change.app.as_str(),
                    &change.to.state.as_str(),
                    &change.to.since,
                    &from_state,
                    &from_since,
                ],
            )
            .await
            .map_err(&changing)?;
        if updated == 0 {
            applied.push(false);
            continue;
        }
        if let Some(from) = from_state {
            tx.execute(
                "INSERT INTO consumer_watch_history (app, from_state, to_state, at, last_seen)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &change.app.as_str(),
                    &from,
                    &change.to.state.as_str(),
                    &change.to.since,
                    &change.last_seen,
                ],
            )
            .await
            .map_err(&changing)?;
        }
        if let Some(event) = &change.event {
            super::outbox::insert_event(&tx, event).await?;
        }
        applied.push(true);
    }
    tx.commit().await.map_err(&changing)?;
    Ok(applied)
}

/// Changes of alert state, newest first.
pub(super) async fn history(
    client: &impl GenericClient,
    app: Option<&AppName>,
    limit: u32,
) -> Result<Vec<WatchTransition>, StoreError> {
    let rows = client
        .query(
            "SELECT id, app, from_state, to_state, at, last_seen FROM consumer_watch_history
             WHERE ($1::TEXT IS NULL OR app = $1) ORDER BY id DESC LIMIT $2",
            &[&app.map(AppName::as_str), &i64::from(limit)],
        )
        .await
        .map_err(failed("reading the alert history"))?;
    Ok(rows::load(&rows, decode::watch_transition, |row, problem| {
        decode::skipped("consumer_watch_history", row, problem)
    })
    .0)
}

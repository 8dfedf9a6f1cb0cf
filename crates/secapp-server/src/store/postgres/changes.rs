//! The change log: each publish in its own transaction, serialised by a
//! transaction-scoped advisory lock, so the head is decided from what the
//! database holds and ids increase in the order heads are decided.

use deadpool_postgres::{GenericClient, Transaction};
use secapp_domain::{AppName, ChangeId, Head, Ledger, Outcome, Version};

use super::rows::{self, failed, version_to_sql};
use super::{listener, watch};
use crate::store::{
    HistoryEntry, HistoryQuery, NewChange, NewEvent, Published, Recorded, StoreError, UnreadableRow,
};

/// The advisory lock every publish holds until it commits ("secapp:h").
const HEAD_LOCK: i64 = 0x7365_6361_7070_3a68;

/// The head and the latest version given. An unreadable head row gives way
/// to the newest readable one, and the version still counts from the
/// newest, so no version is given twice.
pub(super) async fn head(
    client: &impl GenericClient,
) -> Result<(Option<Head>, Version, Vec<UnreadableRow>), StoreError> {
    let rows = client
        .query(
            "SELECT id, level, changed_at, head_version FROM changes
             WHERE head_version IS NOT NULL ORDER BY head_version DESC LIMIT 16",
            &[],
        )
        .await
        .map_err(failed("reading the head"))?;
    let mut latest = Version(0);
    let mut unreadable = Vec::new();
    for row in &rows {
        if let Ok(raw) = row.try_get::<_, i64>(3)
            && let Ok(version) = u64::try_from(raw)
        {
            latest = latest.max(Version(version));
        }
        match rows::head(row) {
            Ok(head) => return Ok((Some(head), latest, unreadable)),
            Err(problem) => unreadable.push(UnreadableRow {
                table: "changes",
                key: rows::shown(row, 0).unwrap_or_default(),
                problem,
            }),
        }
    }
    Ok((None, latest, unreadable))
}

/// Records one publish in `tx` (which it commits, or rolls back when the
/// idempotency key was already taken).
pub(super) async fn publish(
    tx: Transaction<'_>,
    change: &NewChange,
) -> Result<Published, StoreError> {
    let recording = failed("recording a change");
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&HEAD_LOCK])
        .await
        .map_err(&recording)?;
    let (head, latest, _) = head(&tx).await?;
    let mut ledger = Ledger::resume(head, latest);
    let app = change.published_by.as_str();
    if let Some(idempotency) = &change.idempotency {
        tx.execute(
            "DELETE FROM idempotency_keys WHERE app_name = $1 AND key = $2 AND created_at < $3",
            &[&app, &idempotency.key, &idempotency.not_before],
        )
        .await
        .map_err(failed("forgetting an expired idempotency key"))?;
    }
    let outcome = ledger.classify(&change.changed_at);
    let version = ledger.version().next();
    let head_version = (outcome == Outcome::Head).then(|| version_to_sql(version));
    let insert = tx
        .prepare_cached(
            "INSERT INTO changes (level, changed_at, published_by, received_at, outcome,
                                  head_version, source_address, token_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .await
        .map_err(&recording)?;
    let id: i64 = tx
        .query_one(
            &insert,
            &[
                &change.level.get(),
                &change.changed_at.to_string(),
                &app,
                &change.received_at,
                &outcome.as_str(),
                &head_version,
                &change.source,
                &change.token_id,
            ],
        )
        .await
        .map_err(&recording)?
        .get(0);
    if let Some(idempotency) = &change.idempotency {
        // Insert-first: the key is claimed by this insert or found taken.
        let claimed = tx
            .execute(
                "INSERT INTO idempotency_keys (app_name, key, request, change_id, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_name, key) DO NOTHING",
                &[
                    &app,
                    &idempotency.key,
                    &idempotency.request,
                    &id,
                    &change.received_at,
                ],
            )
            .await
            .map_err(failed("claiming an idempotency key"))?;
        if claimed == 0 {
            let earlier = tx
                .query_opt(
                    "SELECT change_id, request FROM idempotency_keys WHERE app_name = $1 AND key = $2",
                    &[&app, &idempotency.key],
                )
                .await
                .map_err(failed("claiming an idempotency key"))?
                .ok_or_else(|| {
                    StoreError::conflict("an idempotency key was taken and released while being claimed")
                })?;
            let (earlier_id, request): (i64, String) = (earlier.get(0), earlier.get(1));
            // Nothing of this publish is kept.
            tx.rollback().await.map_err(&recording)?;
            return Ok(if request == idempotency.request {
                Published::Replayed {
                    id: ChangeId(earlier_id),
                }
            } else {
                Published::KeyReused
            });
        }
    }
    if outcome == Outcome::Head {
        // Heard by every other server once this commits.
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&listener::CHANNEL, &listener::HEAD],
        )
        .await
        .map_err(&recording)?;
    }
    if let Some(event) = NewEvent::for_publish(change, ChangeId(id), outcome, &ledger) {
        watch::insert_event(&tx, &event).await?;
    }
    tx.commit().await.map_err(&recording)?;
    Recorded::after_commit(&mut ledger, change, ChangeId(id), outcome).map(Published::New)
}

/// One page of the history, newest first; unreadable rows left out.
pub(super) async fn history(
    client: &impl GenericClient,
    query: &HistoryQuery,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let limit = i64::from(query.limit);
    let rows = client
        .query(
            "SELECT id, level, changed_at, published_by, received_at, source_address, outcome,
                    token_id
             FROM changes
             WHERE ($1::BIGINT IS NULL OR id < $1)
               AND ($2::TEXT IS NULL OR published_by = $2)
               AND ($3::TIMESTAMPTZ IS NULL OR received_at >= $3)
               AND ($4::TIMESTAMPTZ IS NULL OR received_at < $4)
             ORDER BY id DESC
             LIMIT $5",
            &[
                &query.before.map(|id| id.0),
                &query.app.as_ref().map(AppName::as_str),
                &query.since,
                &query.until,
                &limit,
            ],
        )
        .await
        .map_err(failed("reading the history"))?;
    Ok(rows::load(&rows, rows::history_entry, rows::skipped("changes")).0)
}

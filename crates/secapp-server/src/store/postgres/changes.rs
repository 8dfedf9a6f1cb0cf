//! The change log: each publish in its own transaction, serialised by a
//! transaction-scoped advisory lock, so the head is decided from what the
//! database holds and ids increase in the order heads are decided.

use deadpool_postgres::{GenericClient, Transaction};
use secapp_domain::{AppName, ChangeId, Head, Ledger, Outcome, Version};

use super::listener;
use super::rows::{self, failed};
use crate::store::decode::{self, NewestHead, version_to_sql};
use crate::store::publish::{self, KeyClaim, PublishUnit};
use crate::store::{
    HistoryEntry, HistoryQuery, Idempotency, NewChange, NewEvent, Published, StoreError,
    UnreadableRow,
};

/// The advisory lock every publish holds until it commits ("secapp:h").
const HEAD_LOCK: i64 = 0x7365_6361_7070_3a68;

/// The head and the latest version given (`decode::NewestHead` says what
/// stands in for an unreadable head).
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
    let mut newest = NewestHead::default();
    for row in &rows {
        if newest.offer(row) {
            break;
        }
    }
    Ok(newest.finish())
}

/// Records one publish (`store::publish`) in `tx`, which it commits, or
/// rolls back when the idempotency key was already taken. The head is read
/// under a transaction-scoped advisory lock, so publishes on every server
/// are decided one after another.
pub(super) async fn publish(
    tx: Transaction<'_>,
    change: &NewChange,
) -> Result<Published, StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&HEAD_LOCK])
        .await
        .map_err(failed("recording a change"))?;
    let (head, latest, _) = head(&tx).await?;
    let mut ledger = Ledger::resume(head, latest);
    publish::publish(Unit(tx), &mut ledger, change).await
}

/// One publish's transaction.
struct Unit<'c>(Transaction<'c>);

impl PublishUnit for Unit<'_> {
    async fn forget_expired_key(
        &mut self,
        app: &AppName,
        idempotency: &Idempotency,
    ) -> Result<(), StoreError> {
        self.0
            .execute(
                "DELETE FROM idempotency_keys WHERE app_name = $1 AND key = $2 AND created_at < $3",
                &[&app.as_str(), &idempotency.key, &idempotency.not_before],
            )
            .await
            .map_err(failed("forgetting an expired idempotency key"))?;
        Ok(())
    }

    async fn insert_change(
        &mut self,
        change: &NewChange,
        outcome: Outcome,
        head_version: Option<Version>,
    ) -> Result<ChangeId, StoreError> {
        let recording = failed("recording a change");
        let insert = self
            .0
            .prepare_cached(
                "INSERT INTO changes (level, changed_at, published_by, received_at, outcome,
                                      head_version, source_address, token_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .await
            .map_err(&recording)?;
        let row = self
            .0
            .query_one(
                &insert,
                &[
                    &change.level.get(),
                    &change.changed_at.to_string(),
                    &change.published_by.as_str(),
                    &change.received_at,
                    &outcome.as_str(),
                    &head_version.map(version_to_sql),
                    &change.source,
                    &change.token_id,
                ],
            )
            .await
            .map_err(&recording)?;
        Ok(ChangeId(row.get(0)))
    }

    async fn claim_key(
        &mut self,
        change: &NewChange,
        idempotency: &Idempotency,
        id: ChangeId,
    ) -> Result<KeyClaim, StoreError> {
        let claiming = failed("claiming an idempotency key");
        let app = change.published_by.as_str();
        let claimed = self
            .0
            .execute(
                "INSERT INTO idempotency_keys (app_name, key, request, change_id, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_name, key) DO NOTHING",
                &[
                    &app,
                    &idempotency.key,
                    &idempotency.request,
                    &id.0,
                    &change.received_at,
                ],
            )
            .await
            .map_err(&claiming)?;
        if claimed == 1 {
            return Ok(KeyClaim::Claimed);
        }
        let earlier = self
            .0
            .query_opt(
                "SELECT change_id, request FROM idempotency_keys WHERE app_name = $1 AND key = $2",
                &[&app, &idempotency.key],
            )
            .await
            .map_err(&claiming)?;
        Ok(earlier.map_or(KeyClaim::Vanished, |row| KeyClaim::Held {
            id: ChangeId(row.get(0)),
            request: row.get(1),
        }))
    }

    async fn announce_head(&mut self) -> Result<(), StoreError> {
        // Heard by every other server once this commits.
        self.0
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&listener::CHANNEL, &listener::HEAD],
            )
            .await
            .map_err(failed("recording a change"))?;
        Ok(())
    }

    async fn insert_event(&mut self, event: &NewEvent) -> Result<(), StoreError> {
        super::outbox::insert_event(&self.0, event).await
    }

    async fn keep(self) -> Result<(), StoreError> {
        self.0.commit().await.map_err(failed("recording a change"))
    }

    async fn discard(self) -> Result<(), StoreError> {
        self.0
            .rollback()
            .await
            .map_err(failed("recording a change"))
    }
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
    Ok(rows::load(&rows, decode::history_entry, |row, problem| {
        decode::skipped("changes", row, problem)
    })
    .0)
}

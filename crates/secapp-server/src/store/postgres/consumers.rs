//! Consumer records: what each application was told, sent and
//! acknowledged. Every part only moves forward when written.

use deadpool_postgres::{GenericClient, Transaction};

use super::rows::{self, failed};
use crate::store::decode;
use crate::store::decode::version_to_sql;
use crate::store::{ConsumerRecord, StoreError, UnreadableRow};

/// Every consumer record that can be read, and those that cannot.
pub(super) async fn load(
    client: &impl GenericClient,
) -> Result<(Vec<ConsumerRecord>, Vec<UnreadableRow>), StoreError> {
    let rows = client
        .query(
            "SELECT app_name, told_version, told_at, sent_id, sent_at, sent_mode, sent_long_poll,
                    acked_id, acked_at, acked_mode, acked_long_poll
             FROM consumers",
            &[],
        )
        .await
        .map_err(failed("reading consumer records"))?;
    Ok(rows::load(&rows, decode::consumer, |row, problem| {
        decode::unreadable_row("consumers", row, problem)
    }))
}

/// A sighting moves to a higher `(id, at)`; NULL on the stored side is none yet.
const NEWER_SENT: &str = "EXCLUDED.sent_id IS NOT NULL AND (consumers.sent_id IS NULL
    OR (EXCLUDED.sent_id, EXCLUDED.sent_at) >= (consumers.sent_id, consumers.sent_at))";
const NEWER_ACKED: &str = "EXCLUDED.acked_id IS NOT NULL AND (consumers.acked_id IS NULL
    OR (EXCLUDED.acked_id, EXCLUDED.acked_at) >= (consumers.acked_id, consumers.acked_at))";

/// Writes `records` in `tx`, which it commits; each part only forward.
pub(super) async fn save(
    tx: Transaction<'_>,
    records: &[ConsumerRecord],
) -> Result<(), StoreError> {
    let saving = failed("saving consumer records");
    let mut sets = vec![
        "told_version = greatest(consumers.told_version, EXCLUDED.told_version)".to_owned(),
        "told_at = CASE WHEN EXCLUDED.told_version >= consumers.told_version
                   THEN EXCLUDED.told_at ELSE consumers.told_at END"
            .to_owned(),
    ];
    for (part, newer) in [("sent", NEWER_SENT), ("acked", NEWER_ACKED)] {
        for column in ["id", "at", "mode", "long_poll"] {
            sets.push(format!(
                "{part}_{column} = CASE WHEN {newer} THEN EXCLUDED.{part}_{column}
                                   ELSE consumers.{part}_{column} END"
            ));
        }
    }
    let upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO consumers (app_name, told_version, told_at,
                 sent_id, sent_at, sent_mode, sent_long_poll,
                 acked_id, acked_at, acked_mode, acked_long_poll)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (app_name) DO UPDATE SET {}",
            sets.join(", ")
        ))
        .await
        .map_err(&saving)?;
    // One order for every writer, so two never wait on each other's rows.
    let mut ordered: Vec<&ConsumerRecord> = records.iter().collect();
    ordered.sort_by(|a, b| a.app.cmp(&b.app));
    for record in ordered {
        let consumer = &record.consumer;
        let sent = consumer.knowledge.sent;
        let acked = consumer.knowledge.acknowledged;
        tx.execute(
            &upsert,
            &[
                &record.app.as_str(),
                &version_to_sql(consumer.cursor.told()),
                &consumer.told_at,
                &sent.map(|s| s.id.0),
                &sent.map(|s| s.at),
                &sent.map(|s| s.mode.as_str()),
                &sent.map(|s| s.long_poll),
                &acked.map(|s| s.id.0),
                &acked.map(|s| s.at),
                &acked.map(|s| s.mode.as_str()),
                &acked.map(|s| s.long_poll),
            ],
        )
        .await
        .map_err(&saving)?;
    }
    tx.commit().await.map_err(&saving)
}

/// Moves `app`'s cursor to `version` unless it stands there or beyond;
/// answers whether it moved.
pub(super) async fn claim_told(
    client: &impl GenericClient,
    app: &secapp_domain::AppName,
    version: i64,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, StoreError> {
    let moved = client
        .execute(
            "INSERT INTO consumers (app_name, told_version, told_at) VALUES ($1, $2, $3)
             ON CONFLICT (app_name) DO UPDATE SET told_version = EXCLUDED.told_version,
                                                  told_at = EXCLUDED.told_at
             WHERE consumers.told_version < EXCLUDED.told_version",
            &[&app.as_str(), &version, &at],
        )
        .await
        .map_err(failed("claiming a delivery"))?;
    Ok(moved == 1)
}

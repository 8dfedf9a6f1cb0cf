//! Consumer records: what each application was told (the plain-poll
//! cursor), sent and acknowledged. Every part only moves forward when
//! written, so a writer holding an older record never undoes a newer one.

use rusqlite::{Connection, params};

use super::rows::{self, StoredSighting, failed, rfc3339};
use crate::store::decode;
use crate::store::decode::version_to_sql;
use crate::store::{ConsumerRecord, StoreError, UnreadableRow};

/// Every consumer record that can be read, and those that cannot.
pub(super) fn load(
    conn: &Connection,
) -> Result<(Vec<ConsumerRecord>, Vec<UnreadableRow>), StoreError> {
    rows::load(
        conn,
        "SELECT app_name, told_version, told_at,
                sent_id, sent_at, sent_mode, sent_long_poll,
                acked_id, acked_at, acked_mode, acked_long_poll
         FROM consumers",
        [],
        |row| decode::consumer(row),
        |row, problem| decode::unreadable_row("consumers", row, problem),
    )
}

/// Writes `records`, each part only forward: the cursor to a higher version,
/// a sighting to a higher id (or the same id seen later).
pub(super) fn save<'a>(
    conn: &Connection,
    records: impl Iterator<Item = &'a ConsumerRecord>,
) -> Result<(), StoreError> {
    let saving = failed("saving consumer records");
    // Row values compare left to right: (id, at) orders by id, then by the
    // fixed-width time text. A NULL on the stored side means nothing yet.
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO consumers (app_name, told_version, told_at,
                 sent_id, sent_at, sent_mode, sent_long_poll,
                 acked_id, acked_at, acked_mode, acked_long_poll)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (app_name) DO UPDATE SET
                 told_version = max(told_version, excluded.told_version),
                 told_at = CASE WHEN excluded.told_version >= told_version
                                THEN excluded.told_at ELSE told_at END,
                 sent_id = CASE WHEN excluded.sent_id IS NOT NULL AND (sent_id IS NULL OR (excluded.sent_id, excluded.sent_at) >= (sent_id, sent_at))
                     THEN excluded.sent_id ELSE sent_id END,
                 sent_at = CASE WHEN excluded.sent_id IS NOT NULL AND (sent_id IS NULL OR (excluded.sent_id, excluded.sent_at) >= (sent_id, sent_at))
                     THEN excluded.sent_at ELSE sent_at END,
                 sent_mode = CASE WHEN excluded.sent_id IS NOT NULL AND (sent_id IS NULL OR (excluded.sent_id, excluded.sent_at) >= (sent_id, sent_at))
                     THEN excluded.sent_mode ELSE sent_mode END,
                 sent_long_poll = CASE WHEN excluded.sent_id IS NOT NULL AND (sent_id IS NULL OR (excluded.sent_id, excluded.sent_at) >= (sent_id, sent_at))
                     THEN excluded.sent_long_poll ELSE sent_long_poll END,
                 acked_id = CASE WHEN excluded.acked_id IS NOT NULL AND (acked_id IS NULL OR (excluded.acked_id, excluded.acked_at) >= (acked_id, acked_at))
                     THEN excluded.acked_id ELSE acked_id END,
                 acked_at = CASE WHEN excluded.acked_id IS NOT NULL AND (acked_id IS NULL OR (excluded.acked_id, excluded.acked_at) >= (acked_id, acked_at))
                     THEN excluded.acked_at ELSE acked_at END,
                 acked_mode = CASE WHEN excluded.acked_id IS NOT NULL AND (acked_id IS NULL OR (excluded.acked_id, excluded.acked_at) >= (acked_id, acked_at))
                     THEN excluded.acked_mode ELSE acked_mode END,
                 acked_long_poll = CASE WHEN excluded.acked_id IS NOT NULL AND (acked_id IS NULL OR (excluded.acked_id, excluded.acked_at) >= (acked_id, acked_at))
                     THEN excluded.acked_long_poll ELSE acked_long_poll END",
        )
        .map_err(&saving)?;
    for record in records {
        let consumer = &record.consumer;
        let sent = StoredSighting::from(consumer.knowledge.sent);
        let acked = StoredSighting::from(consumer.knowledge.acknowledged);
        upsert
            .execute(params![
                record.app.as_str(),
                version_to_sql(consumer.cursor.told()),
                consumer.told_at.map(rfc3339),
                sent.id,
                sent.at,
                sent.mode,
                sent.long_poll,
                acked.id,
                acked.at,
                acked.mode,
                acked.long_poll,
            ])
            .map_err(&saving)?;
    }
    Ok(())
}

/// Moves `app`'s cursor to `version` unless it stands there or beyond;
/// answers whether it moved.
pub(super) fn claim_told(
    conn: &Connection,
    app: &secapp_domain::AppName,
    version: i64,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, StoreError> {
    let moved = conn
        .prepare_cached(
            "INSERT INTO consumers (app_name, told_version, told_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (app_name) DO UPDATE SET told_version = excluded.told_version,
                                                  told_at = excluded.told_at
             WHERE told_version < excluded.told_version",
        )
        .and_then(|mut statement| statement.execute(params![app.as_str(), version, rfc3339(at)]))
        .map_err(failed("claiming a delivery"))?;
    Ok(moved == 1)
}

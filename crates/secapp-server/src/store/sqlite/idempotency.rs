//! Idempotency keys: claimed insert-first with the change they belong to,
//! forgotten after their window.

use rusqlite::{Connection, OptionalExtension as _, params};
use secapp_domain::{AppName, ChangeId};

use super::rows::{failed, rfc3339};
use crate::store::publish::KeyClaim;
use crate::store::{Idempotency, NewChange, StoreError};

/// Deletes `app`'s use of the key when it is older than the window: an
/// expired use decides nothing and must not block a new claim.
pub(super) fn forget_expired(
    conn: &Connection,
    app: &AppName,
    idempotency: &Idempotency,
) -> Result<(), StoreError> {
    // Both sides are written by `rfc3339`: fixed width, so text order is time order.
    conn.prepare_cached(
        "DELETE FROM idempotency_keys WHERE app_name = ?1 AND key = ?2 AND created_at < ?3",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            app.as_str(),
            idempotency.key,
            rfc3339(idempotency.not_before)
        ])
    })
    .map_err(failed("forgetting an expired idempotency key"))?;
    Ok(())
}

/// Claims the key for the change just recorded as `id`, or says who holds it.
pub(super) fn claim(
    conn: &Connection,
    change: &NewChange,
    idempotency: &Idempotency,
    id: ChangeId,
) -> Result<KeyClaim, StoreError> {
    let claiming = failed("claiming an idempotency key");
    let app = change.published_by.as_str();
    let inserted = conn
        .prepare_cached(
            "INSERT INTO idempotency_keys (app_name, key, request, change_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (app_name, key) DO NOTHING",
        )
        .map_err(&claiming)?
        .execute(params![
            app,
            idempotency.key,
            idempotency.request,
            id.0,
            rfc3339(change.received_at),
        ])
        .map_err(&claiming)?;
    if inserted == 1 {
        return Ok(KeyClaim::Claimed);
    }
    let earlier: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT change_id, request FROM idempotency_keys WHERE app_name = ?1 AND key = ?2",
        )
        .map_err(&claiming)?
        .query_row(params![app, idempotency.key], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .map_err(&claiming)?;
    Ok(
        earlier.map_or(KeyClaim::Vanished, |(id, request)| KeyClaim::Held {
            id: ChangeId(id),
            request,
        }),
    )
}

/// Deletes every key recorded before `before`.
pub(super) fn forget_before(
    conn: &Connection,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at < ?1",
        params![rfc3339(before)],
    )
    .map_err(failed("forgetting expired idempotency keys"))?;
    Ok(())
}

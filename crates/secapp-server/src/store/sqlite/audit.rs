//! The admin audit: one row per admin action, written in the transaction
//! of the change it records, read back newest first.

use rusqlite::{Connection, params};

use super::rows::{self, failed, rfc3339};
use crate::store::decode;
use crate::store::{AuditEvent, AuditQuery, AuditRecord, StoreError};

/// Appends `event`; called inside the transaction of the change it records.
pub(super) fn record(conn: &Connection, event: &AuditEvent) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO admin_audit (at, actor, actor_token, source_address, action, target, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            rfc3339(event.at),
            event.actor,
            event.actor_token,
            event.source,
            event.action,
            event.target,
            event.detail,
        ])
    })
    .map_err(failed("recording an audit event"))?;
    Ok(())
}

/// One page of the admin audit, newest first; unreadable rows left out.
pub(super) fn page(conn: &Connection, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
    let (records, _) = rows::load(
        conn,
        "SELECT id, at, actor, actor_token, source_address, action, target, detail
         FROM admin_audit WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        params![query.before, query.limit],
        |row| decode::audit_record(row),
        |row, problem| decode::skipped("admin_audit", row, problem),
    )?;
    Ok(records)
}

/// The newest audit id: grows with every change to applications and tokens.
pub(super) fn revision(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM admin_audit", [], |row| {
        row.get(0)
    })
    .map_err(failed("reading the registry revision"))
}

//! Registered applications and their tokens: loading them, and changing
//! them together with their audit event in one transaction.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};

use super::audit;
use super::rows::{self, failed, rfc3339};
use crate::store::decode;
use crate::store::{
    AccessChange, AdminGuard, AppRecord, AuditEvent, Changed, StoreError, TokenRecord,
    UnreadableRow, UnreadableToken,
};

/// Every registered application that can be read, and those that cannot.
pub(super) fn load_apps(
    conn: &Connection,
) -> Result<(Vec<AppRecord>, Vec<UnreadableRow>), StoreError> {
    rows::load(
        conn,
        "SELECT name, roles, description, owner, created_at, updated_at, disabled_at,
                stale_after_ms
         FROM apps ORDER BY name",
        [],
        |row| decode::app(row),
        |row, problem| decode::unreadable_row("apps", row, problem),
    )
}

/// Every token that can be read, and those that cannot, as stored.
pub(super) fn load_tokens(
    conn: &Connection,
) -> Result<(Vec<TokenRecord>, Vec<UnreadableToken>), StoreError> {
    rows::load(
        conn,
        "SELECT id, app_name, hash, label, created_at, expires_at, revoked_at, last_used_at
         FROM tokens ORDER BY created_at, id",
        [],
        |row| decode::token(row),
        |row, problem| decode::unreadable_token(row, problem),
    )
}

/// Applies `change` and records `event` in one transaction. A target that is
/// missing, or a name or id another writer took first, is a
/// [`StoreError::Conflict`] and nothing is written.
pub(super) fn change(
    conn: &mut Connection,
    change: &AccessChange,
    event: &AuditEvent,
    guard: AdminGuard,
) -> Result<Changed, StoreError> {
    let writing = failed("changing applications or tokens");
    // Immediate: the write lock first, so the admin check sees every commit.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&writing)?;
    let had_admin = guard == AdminGuard::KeepOne && live_admin(&tx, event.at)?;
    apply(&tx, change).map_err(&writing)?;
    if had_admin && !live_admin(&tx, event.at)? {
        // Dropping the transaction rolls the change back.
        return Ok(Changed::WouldLeaveNoAdmin);
    }
    audit::record(&tx, event)?;
    tx.commit().map_err(&writing)?;
    Ok(Changed::Applied)
}

/// Whether an enabled application with the admin role holds a token that
/// is neither revoked nor expired at `now`.
fn live_admin(conn: &Connection, now: DateTime<Utc>) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM apps a JOIN tokens t ON t.app_name = a.name
            WHERE a.disabled_at IS NULL AND (',' || a.roles || ',') LIKE '%,admin,%'
              AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?1))",
        params![rfc3339(now)],
        |row| row.get(0),
    )
    .map_err(failed("checking that an admin remains"))
}

fn apply(conn: &Connection, change: &AccessChange) -> Result<(), rusqlite::Error> {
    let changed = match change {
        AccessChange::CreateApp(app) => conn.execute(
            "INSERT INTO apps (name, roles, description, owner, created_at, updated_at, disabled_at,
                               stale_after_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                app.name.as_str(),
                app.roles.to_stored(),
                app.description,
                app.owner,
                rfc3339(app.created_at),
                rfc3339(app.updated_at),
                app.disabled_at.map(rfc3339),
                app.stale_after.map(decode::duration_to_ms),
            ],
        )?,
        AccessChange::UpdateApp(app) => conn.execute(
            "UPDATE apps SET roles = ?2, description = ?3, owner = ?4, updated_at = ?5,
                             disabled_at = ?6, stale_after_ms = ?7
             WHERE name = ?1",
            params![
                app.name.as_str(),
                app.roles.to_stored(),
                app.description,
                app.owner,
                rfc3339(app.updated_at),
                app.disabled_at.map(rfc3339),
                app.stale_after.map(decode::duration_to_ms),
            ],
        )?,
        AccessChange::IssueToken(token) => conn.execute(
            "INSERT INTO tokens (id, app_name, hash, label, created_at, expires_at, revoked_at,
                                 last_used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                token.id,
                token.app.as_str(),
                &token.hash[..],
                token.label,
                rfc3339(token.created_at),
                token.expires_at.map(rfc3339),
                token.revoked_at.map(rfc3339),
                token.last_used_at.map(rfc3339),
            ],
        )?,
        AccessChange::RevokeToken { id, at } => conn.execute(
            "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
            params![id, rfc3339(*at)],
        )?,
    };
    if changed == 1 {
        Ok(())
    } else {
        // The target another writer removed: nothing may be half-done.
        Err(rusqlite::Error::QueryReturnedNoRows)
    }
}

/// Writes back when tokens were last used; a time never moves back.
pub(super) fn save_usage(
    conn: &mut Connection,
    used: &[(String, DateTime<Utc>)],
) -> Result<(), StoreError> {
    let saving = failed("saving token last-used times");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&saving)?;
    {
        let mut update = tx
            .prepare_cached(
                "UPDATE tokens SET last_used_at = ?2
                 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
            )
            .map_err(&saving)?;
        for (id, at) in used {
            update.execute(params![id, rfc3339(*at)]).map_err(&saving)?;
        }
    }
    tx.commit().map_err(&saving)
}

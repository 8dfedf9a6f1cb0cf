//! Applications, tokens, the admin audit, and token last-used times.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};

use super::rows::{self, failed};
use crate::store::decode;
use crate::store::decode::duration_to_ms;
use crate::store::{
    AccessChange, AdminGuard, AppRecord, AuditEvent, AuditQuery, AuditRecord, Changed, StoreError,
    TokenRecord, UnreadableRow, UnreadableToken,
};

/// Every application that can be read, and those that cannot.
pub(super) async fn load_apps(
    client: &impl GenericClient,
) -> Result<(Vec<AppRecord>, Vec<UnreadableRow>), StoreError> {
    let rows = client
        .query(
            "SELECT name, roles, description, owner, created_at, updated_at, disabled_at,
                    stale_after_ms
             FROM apps ORDER BY name",
            &[],
        )
        .await
        .map_err(failed("reading applications"))?;
    Ok(rows::load(&rows, decode::app, |row, problem| {
        decode::unreadable_row("apps", row, problem)
    }))
}

/// Every token that can be read, and those that cannot, as stored.
pub(super) async fn load_tokens(
    client: &impl GenericClient,
) -> Result<(Vec<TokenRecord>, Vec<UnreadableToken>), StoreError> {
    let rows = client
        .query(
            "SELECT id, app_name, hash, label, created_at, expires_at, revoked_at, last_used_at
             FROM tokens ORDER BY created_at, id",
            &[],
        )
        .await
        .map_err(failed("reading tokens"))?;
    Ok(rows::load(&rows, decode::token, decode::unreadable_token))
}

/// Applies `change` and records `event` in `tx`, which it commits. A target
/// that is missing, or a name or id another writer took first, is a
/// [`StoreError::Conflict`] and nothing is written.
pub(super) async fn change(
    tx: Transaction<'_>,
    change: &AccessChange,
    event: &AuditEvent,
    guard: AdminGuard,
) -> Result<Changed, StoreError> {
    let writing = failed("changing applications or tokens");
    // One registry change at a time across servers, so the admin check
    // sees every commit before it.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&REGISTRY_LOCK])
        .await
        .map_err(&writing)?;
    let had_admin = guard == AdminGuard::KeepOne && live_admin(&tx, event.at).await?;
    let changed = match change {
        AccessChange::CreateApp(app) => tx
            .execute(
                "INSERT INTO apps (name, roles, description, owner, created_at, updated_at,
                                   disabled_at, stale_after_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &app.name.as_str(),
                    &app.roles.to_stored(),
                    &app.description,
                    &app.owner,
                    &app.created_at,
                    &app.updated_at,
                    &app.disabled_at,
                    &app.stale_after.map(duration_to_ms),
                ],
            )
            .await
            .map_err(&writing)?,
        AccessChange::UpdateApp(app) => tx
            .execute(
                "UPDATE apps SET roles = $2, description = $3, owner = $4, updated_at = $5,
                                 disabled_at = $6, stale_after_ms = $7
                 WHERE name = $1",
                &[
                    &app.name.as_str(),
                    &app.roles.to_stored(),
                    &app.description,
                    &app.owner,
                    &app.updated_at,
                    &app.disabled_at,
                    &app.stale_after.map(duration_to_ms),
                ],
            )
            .await
            .map_err(&writing)?,
        AccessChange::IssueToken(token) => tx
            .execute(
                "INSERT INTO tokens (id, app_name, hash, label, created_at, expires_at,
                                     revoked_at, last_used_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &token.id,
                    &token.app.as_str(),
                    &&token.hash[..],
                    &token.label,
                    &token.created_at,
                    &token.expires_at,
                    &token.revoked_at,
                    &token.last_used_at,
                ],
            )
            .await
            .map_err(&writing)?,
        AccessChange::RevokeToken { id, at } => tx
            .execute(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1",
                &[id, at],
            )
            .await
            .map_err(&writing)?,
    };
    if changed != 1 {
        // The target another writer removed: nothing may be half-done.
        return Err(StoreError::conflict(format!(
            "{} found no {} to change",
            change.action(),
            change.target()
        )));
    }
    if had_admin && !live_admin(&tx, event.at).await? {
        tx.rollback().await.map_err(&writing)?;
        return Ok(Changed::WouldLeaveNoAdmin);
    }
    record(&tx, event).await?;
    // Heard by every other server once this commits.
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&super::listener::CHANNEL, &super::listener::REGISTRY],
    )
    .await
    .map_err(&writing)?;
    tx.commit().await.map_err(&writing)?;
    Ok(Changed::Applied)
}

/// The advisory lock every registry change holds until it commits ("secapp:r").
const REGISTRY_LOCK: i64 = 0x7365_6361_7070_3a72;

/// Whether an enabled application with the admin role holds a token that
/// is neither revoked nor expired at `now`.
async fn live_admin(tx: &Transaction<'_>, now: DateTime<Utc>) -> Result<bool, StoreError> {
    Ok(tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM apps a JOIN tokens t ON t.app_name = a.name
                WHERE a.disabled_at IS NULL AND (',' || a.roles || ',') LIKE '%,admin,%'
                  AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $1))",
            &[&now],
        )
        .await
        .map_err(failed("checking that an admin remains"))?
        .get(0))
}

pub(super) async fn record(tx: &Transaction<'_>, event: &AuditEvent) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO admin_audit (at, actor, actor_token, source_address, action, target, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &event.at,
            &event.actor,
            &event.actor_token,
            &event.source,
            &event.action,
            &event.target,
            &event.detail,
        ],
    )
    .await
    .map_err(failed("recording an audit event"))?;
    Ok(())
}

/// One page of the audit, newest first.
pub(super) async fn audit(
    client: &impl GenericClient,
    query: &AuditQuery,
) -> Result<Vec<AuditRecord>, StoreError> {
    let rows = client
        .query(
            "SELECT id, at, actor, actor_token, source_address, action, target, detail
             FROM admin_audit WHERE ($1::BIGINT IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
            &[&query.before, &i64::from(query.limit)],
        )
        .await
        .map_err(failed("reading the audit"))?;
    Ok(rows::load(&rows, decode::audit_record, |row, problem| {
        decode::skipped("admin_audit", row, problem)
    })
    .0)
}

/// Writes back when tokens were last used; a time never moves back.
pub(super) async fn save_usage(
    tx: Transaction<'_>,
    used: &[(String, DateTime<Utc>)],
) -> Result<(), StoreError> {
    let saving = failed("saving token last-used times");
    for (id, at) in used {
        tx.execute(
            "UPDATE tokens SET last_used_at = $2
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            &[id, at],
        )
        .await
        .map_err(&saving)?;
    }
    tx.commit().await.map_err(&saving)
}

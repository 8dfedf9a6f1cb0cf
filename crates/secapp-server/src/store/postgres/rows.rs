//! How rows are read back, and how driver and pool errors become
//! [`StoreError`]s.

use chrono::{DateTime, Utc};
use secapp_domain::{
    AppName, Change, ChangeId, ChangedAt, Consumer, Cursor, Head, Knowledge, Level, Mode, Outcome,
    Roles, Sighting, Version,
};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::store::{
    AlertState, AppRecord, AuditEvent, AuditRecord, Cause, ConsumerRecord, Delivery, EventKind,
    HistoryEntry, Standing, StoreError, TokenRecord, WatchRecord, WatchTransition,
};

/// Maps a driver error by what a caller can do about it: a constraint
/// another writer's row broke is a conflict; a lost connection, a server
/// shutting down, a serialisation failure or a deadlock may pass; anything
/// else is a bug or damage.
pub(super) fn classify(context: &str, e: tokio_postgres::Error) -> StoreError {
    let kind = match e.code().map(SqlState::code) {
        Some(code) if code.starts_with("23") => StoreError::Conflict,
        // 08: connection, 40: transaction rollback (serialisation, deadlock),
        // 53: insufficient resources, 57: operator intervention (shutdown).
        Some(code)
            if ["08", "40", "53", "57"]
                .iter()
                .any(|class| code.starts_with(class)) =>
        {
            StoreError::Unavailable
        }
        Some(_) => StoreError::Corrupt,
        // No SQL state: the connection is closed or failed.
        None => StoreError::Unavailable,
    };
    kind(Cause::with_source(context.to_owned(), e))
}

/// A closure mapping a driver error in `context`.
pub(super) fn failed(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| classify(context, e)
}

/// A pool that cannot give a connection: closed, or the database unreachable.
pub(super) fn pool(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        deadpool_postgres::PoolError::Backend(e) => classify("connecting to the database", e),
        other => StoreError::Unavailable(Cause::with_source(
            "no database connection available".to_owned(),
            other,
        )),
    }
}

/// A version as stored.
pub(super) fn version_to_sql(version: Version) -> i64 {
    i64::try_from(version.0).unwrap_or(i64::MAX)
}

/// A duration as stored: whole milliseconds.
pub(super) fn duration_to_ms(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    name: &str,
) -> Result<T, String> {
    row.try_get(index).map_err(|e| format!("{name}: {e}"))
}

fn version(raw: i64, name: &str) -> Result<Version, String> {
    u64::try_from(raw)
        .map(Version)
        .map_err(|_| format!("{name} {raw} is negative"))
}

fn app_name(raw: &str, name: &str) -> Result<AppName, String> {
    AppName::parse(raw).map_err(|e| format!("{name}: {e}"))
}

/// A column as stored, whatever its type, for showing.
pub(super) fn shown(row: &Row, index: usize) -> Option<String> {
    if let Ok(text) = row.try_get::<_, Option<String>>(index) {
        return text;
    }
    if let Ok(number) = row.try_get::<_, Option<i64>>(index) {
        return number.map(|n| n.to_string());
    }
    if let Ok(at) = row.try_get::<_, Option<DateTime<Utc>>>(index) {
        return at.map(|at| at.to_rfc3339());
    }
    None
}

/// `id, level, changed_at, head_version`.
pub(super) fn head(row: &Row) -> Result<Head, String> {
    let changed_at: String = get(row, 2, "changed_at")?;
    Ok(Head {
        change: Change {
            id: ChangeId(get(row, 0, "id")?),
            level: Level::from_stored(get(row, 1, "level")?),
            changed_at: ChangedAt::parse(&changed_at).map_err(|e| format!("changed_at: {e}"))?,
        },
        version: version(get(row, 3, "head_version")?, "head_version")?,
    })
}

/// `id, level, changed_at, published_by, received_at, source_address,
/// outcome, token_id`.
pub(super) fn history_entry(row: &Row) -> Result<HistoryEntry, String> {
    let changed_at: String = get(row, 2, "changed_at")?;
    let outcome: String = get(row, 6, "outcome")?;
    Ok(HistoryEntry {
        id: ChangeId(get(row, 0, "id")?),
        level: Level::from_stored(get(row, 1, "level")?),
        changed_at: ChangedAt::parse(&changed_at).map_err(|e| format!("changed_at: {e}"))?,
        published_by: get(row, 3, "published_by")?,
        received_at: get(row, 4, "received_at")?,
        source: get(row, 5, "source_address")?,
        outcome: Outcome::from_stored(&outcome)
            .ok_or_else(|| format!("outcome `{outcome}` is not an outcome"))?,
        token_id: get(row, 7, "token_id")?,
    })
}

/// `app_name, told_version, told_at, sent_id, sent_at, sent_mode,
/// sent_long_poll, acked_id, acked_at, acked_mode, acked_long_poll`.
pub(super) fn consumer(row: &Row) -> Result<ConsumerRecord, String> {
    let app: String = get(row, 0, "app_name")?;
    Ok(ConsumerRecord {
        app: app_name(&app, "app_name")?,
        consumer: Consumer {
            cursor: Cursor::at(version(get(row, 1, "told_version")?, "told_version")?),
            told_at: get(row, 2, "told_at")?,
            knowledge: Knowledge {
                sent: sighting(row, 3, "sent")?,
                acknowledged: sighting(row, 7, "acked")?,
            },
        },
    })
}

fn sighting(row: &Row, first: usize, name: &str) -> Result<Option<Sighting>, String> {
    let id: Option<i64> = get(row, first, name)?;
    let at: Option<DateTime<Utc>> = get(row, first + 1, name)?;
    let mode: Option<String> = get(row, first + 2, name)?;
    let long_poll: Option<bool> = get(row, first + 3, name)?;
    match (id, at, mode) {
        (None, None, None) => Ok(None),
        (Some(id), Some(at), Some(mode)) => Ok(Some(Sighting {
            id: ChangeId(id),
            at,
            mode: Mode::from_stored(&mode)
                .ok_or_else(|| format!("{name}_mode `{mode}` is not a mode"))?,
            long_poll: long_poll.unwrap_or(false),
        })),
        _ => Err(format!("the {name} record is incomplete")),
    }
}

/// `name, roles, description, owner, created_at, updated_at, disabled_at,
/// stale_after_ms`.
pub(super) fn app(row: &Row) -> Result<AppRecord, String> {
    let name: String = get(row, 0, "name")?;
    let roles: String = get(row, 1, "roles")?;
    let stale_after: Option<i64> = get(row, 7, "stale_after_ms")?;
    Ok(AppRecord {
        name: app_name(&name, "name")?,
        roles: Roles::from_stored(&roles).map_err(|e| format!("roles: {e}"))?,
        description: get(row, 2, "description")?,
        owner: get(row, 3, "owner")?,
        created_at: get(row, 4, "created_at")?,
        updated_at: get(row, 5, "updated_at")?,
        disabled_at: get(row, 6, "disabled_at")?,
        stale_after: stale_after
            .map(|ms| {
                u64::try_from(ms)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(std::time::Duration::from_millis)
                    .ok_or_else(|| format!("stale_after_ms: {ms} is not a positive duration"))
            })
            .transpose()?,
    })
}

/// `id, app_name, hash, label, created_at, expires_at, revoked_at,
/// last_used_at`.
pub(super) fn token(row: &Row) -> Result<TokenRecord, String> {
    let app: String = get(row, 1, "app_name")?;
    let hash: Vec<u8> = get(row, 2, "hash")?;
    Ok(TokenRecord {
        id: get(row, 0, "id")?,
        app: app_name(&app, "app_name")?,
        hash: <[u8; 32]>::try_from(hash.as_slice())
            .map_err(|_| "hash is not 32 bytes".to_owned())?,
        label: get(row, 3, "label")?,
        created_at: get(row, 4, "created_at")?,
        expires_at: get(row, 5, "expires_at")?,
        revoked_at: get(row, 6, "revoked_at")?,
        last_used_at: get(row, 7, "last_used_at")?,
    })
}

/// `id, at, actor, actor_token, source_address, action, target, detail`.
pub(super) fn audit_record(row: &Row) -> Result<AuditRecord, String> {
    Ok(AuditRecord {
        id: get(row, 0, "id")?,
        event: AuditEvent {
            at: get(row, 1, "at")?,
            actor: get(row, 2, "actor")?,
            actor_token: get(row, 3, "actor_token")?,
            source: get(row, 4, "source_address")?,
            action: get(row, 5, "action")?,
            target: get(row, 6, "target")?,
            detail: get(row, 7, "detail")?,
        },
    })
}

fn state(raw: &str, name: &str) -> Result<AlertState, String> {
    AlertState::parse(raw).ok_or_else(|| format!("{name}: `{raw}` is not an alert state"))
}

/// `app, last_seen, state, since`.
pub(super) fn watch_record(row: &Row) -> Result<WatchRecord, String> {
    let app: String = get(row, 0, "app")?;
    let raw_state: Option<String> = get(row, 2, "state")?;
    let since: Option<DateTime<Utc>> = get(row, 3, "since")?;
    let standing = match (raw_state, since) {
        (Some(raw), Some(since)) => Some(Standing {
            state: state(&raw, "state")?,
            since,
        }),
        (None, _) => None,
        (Some(_), None) => return Err("since is missing".to_owned()),
    };
    Ok(WatchRecord {
        app: app_name(&app, "app")?,
        last_seen: get(row, 1, "last_seen")?,
        standing,
    })
}

/// `id, app, from_state, to_state, at, last_seen`.
pub(super) fn watch_transition(row: &Row) -> Result<WatchTransition, String> {
    let from: String = get(row, 2, "from_state")?;
    let to: String = get(row, 3, "to_state")?;
    Ok(WatchTransition {
        id: get(row, 0, "id")?,
        app: get(row, 1, "app")?,
        from: state(&from, "from_state")?,
        to: state(&to, "to_state")?,
        at: get(row, 4, "at")?,
        last_seen: get(row, 5, "last_seen")?,
    })
}

/// `event_id, webhook, type, occurred_at, data, attempts`.
pub(super) fn delivery(row: &Row) -> Result<Delivery, String> {
    let kind: String = get(row, 2, "type")?;
    let attempts: i32 = get(row, 5, "attempts")?;
    Ok(Delivery {
        event_id: get(row, 0, "event_id")?,
        webhook: get(row, 1, "webhook")?,
        kind: EventKind::parse(&kind).ok_or_else(|| format!("type `{kind}` is not an event"))?,
        occurred_at: get(row, 3, "occurred_at")?,
        data: get(row, 4, "data")?,
        attempts: u32::try_from(attempts).map_err(|_| "attempts is negative".to_owned())?,
    })
}

/// Reads `rows` through `read`; a row that cannot be read goes to
/// `unreadable` with what is wrong, and never fails the read.
pub(super) fn load<T, U>(
    rows: &[Row],
    read: fn(&Row) -> Result<T, String>,
    mut unreadable: impl FnMut(&Row, String) -> U,
) -> (Vec<T>, Vec<U>) {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for row in rows {
        match read(row) {
            Ok(value) => good.push(value),
            Err(problem) => bad.push(unreadable(row, problem)),
        }
    }
    (good, bad)
}

/// Logs a row of `table` left out of an answer.
pub(super) fn skipped(table: &'static str) -> impl Fn(&Row, String) {
    move |row, problem| {
        tracing::error!(
            table,
            key = shown(row, 0).unwrap_or_default(),
            problem,
            "a stored row cannot be read and is left out of the answer"
        );
    }
}

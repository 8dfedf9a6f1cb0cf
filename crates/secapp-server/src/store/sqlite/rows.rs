//! Rows as SQLite holds them, decoded in one place: what is written
//! (`rfc3339`, [`StoredSighting`]), how each table's row is read back, and
//! how driver errors become [`StoreError`]s. The aggregate modules hold the
//! SQL and read through [`load`].
//!
//! A row that cannot be read never fails a load: [`load`] returns it beside
//! the rows it could read (as an [`UnreadableRow`], or for tokens with its
//! fields as stored) and the server keeps serving. Pages of the history and
//! the audit leave such rows out, with a warning in the log ([`skipped`]).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};
use secapp_domain::{
    AppName, Change, ChangeId, ChangedAt, Consumer, Cursor, Head, Knowledge, Level, Mode, Outcome,
    Roles, Sighting, Version,
};

use crate::store::{
    AlertState, AppRecord, AuditEvent, AuditRecord, Cause, ConsumerRecord, Delivery, EventKind,
    HistoryEntry, Standing, StoreError, TokenRecord, UnreadableRow, WatchRecord, WatchTransition,
};

/// An instant as stored: RFC 3339 in UTC with microseconds. Fixed width, so
/// text order is time order.
pub(super) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A duration as whole milliseconds, saturating (settings are capped at
/// 100 years, far below).
pub(super) fn duration_to_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A head version as stored.
pub(super) fn version_to_sql(version: Version) -> i64 {
    // Versions count publishes; i64::MAX of them is beyond any deployment.
    i64::try_from(version.0).unwrap_or(i64::MAX)
}

/// Sorts a driver error by what the caller can do about it (see
/// [`StoreError`]), keeping it as the source and `context` as what failed.
pub(super) fn failed(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| classify(context, e)
}

/// [`failed`], for one error.
pub(super) fn classify(context: &str, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let kind = match &e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::ConstraintViolation => StoreError::Conflict,
            ErrorCode::DatabaseCorrupt
            | ErrorCode::NotADatabase
            | ErrorCode::TypeMismatch
            | ErrorCode::TooBig
            | ErrorCode::ApiMisuse => StoreError::Corrupt,
            // Busy, locked, I/O, full, read-only, out of memory, cannot
            // open: the transaction rolled back; trying again may work.
            _ => StoreError::Unavailable,
        },
        // An update found no row another writer should have left there.
        rusqlite::Error::QueryReturnedNoRows => StoreError::Conflict,
        // Statements that do not prepare or bind, values that do not
        // convert: a bug, or data this version cannot read.
        _ => StoreError::Corrupt,
    };
    kind(Cause::with_source(context.to_owned(), e))
}

/// The columns of one row, read with what is wrong said in words.
pub(super) struct Fields<'a, 'r>(pub(super) &'a Row<'r>);

impl Fields<'_, '_> {
    fn text(&self, index: usize, name: &str) -> Result<Option<String>, String> {
        match self.0.get_ref(index).map_err(|e| format!("{name}: {e}"))? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                .map(|text| Some(text.to_owned()))
                .map_err(|_| format!("{name} is not UTF-8 text")),
            other => Err(format!("{name} is {}, not text", kind(other))),
        }
    }

    fn required_text(&self, index: usize, name: &str) -> Result<String, String> {
        self.text(index, name)?
            .ok_or_else(|| format!("{name} is missing"))
    }

    pub(super) fn integer(&self, index: usize, name: &str) -> Result<Option<i64>, String> {
        match self.0.get_ref(index).map_err(|e| format!("{name}: {e}"))? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(value) => Ok(Some(value)),
            other => Err(format!("{name} is {}, not an integer", kind(other))),
        }
    }

    fn required_integer(&self, index: usize, name: &str) -> Result<i64, String> {
        self.integer(index, name)?
            .ok_or_else(|| format!("{name} is missing"))
    }

    fn instant(&self, index: usize, name: &str) -> Result<Option<DateTime<Utc>>, String> {
        self.text(index, name)?
            .map(|text| instant(&text).ok_or_else(|| unreadable_time(name, &text)))
            .transpose()
    }

    fn required_instant(&self, index: usize, name: &str) -> Result<DateTime<Utc>, String> {
        self.instant(index, name)?
            .ok_or_else(|| format!("{name} is missing"))
    }

    /// The column as stored, whatever its type, for showing.
    pub(super) fn shown(&self, index: usize) -> Option<String> {
        match self.0.get_ref(index).ok()? {
            ValueRef::Null => None,
            ValueRef::Text(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            ValueRef::Integer(value) => Some(value.to_string()),
            ValueRef::Real(value) => Some(value.to_string()),
            ValueRef::Blob(bytes) => Some(format!("<{} bytes>", bytes.len())),
        }
    }
}

fn kind(value: ValueRef<'_>) -> &'static str {
    match value {
        ValueRef::Null => "missing",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real number",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

fn unreadable_time(name: &str, text: &str) -> String {
    let shown: String = text.chars().take(40).collect();
    format!("{name} `{shown}` is not an RFC 3339 time from the years 0000 to 9999")
}

pub(super) fn version(raw: i64, name: &str) -> Result<Version, String> {
    u64::try_from(raw)
        .map(Version)
        .map_err(|_| format!("{name} {raw} is negative"))
}

/// Reads every row `sql` selects (with `params`) through `read`; a row it
/// cannot read is handed to `unreadable` instead, with what is wrong.
pub(super) fn load<T, U>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    read: fn(&Fields<'_, '_>) -> Result<T, String>,
    mut unreadable: impl FnMut(&Fields<'_, '_>, String) -> U,
) -> Result<(Vec<T>, Vec<U>), StoreError> {
    let mut statement = conn
        .prepare_cached(sql)
        .map_err(failed("preparing a read"))?;
    let mut rows = statement.query(params).map_err(failed("reading rows"))?;
    let (mut read_rows, mut unread) = (Vec::new(), Vec::new());
    while let Some(row) = rows.next().map_err(failed("reading rows"))? {
        let fields = Fields(row);
        match read(&fields) {
            Ok(value) => read_rows.push(value),
            Err(problem) => unread.push(unreadable(&fields, problem)),
        }
    }
    Ok((read_rows, unread))
}

/// An unreadable row of `table`, keyed by its first column.
pub(super) fn unreadable_row(
    table: &'static str,
) -> impl Fn(&Fields<'_, '_>, String) -> UnreadableRow {
    move |fields, problem| UnreadableRow {
        table,
        key: fields.shown(0).unwrap_or_default(),
        problem,
    }
}

pub(super) fn app(fields: &Fields<'_, '_>) -> Result<AppRecord, String> {
    let name = fields.required_text(0, "name")?;
    Ok(AppRecord {
        name: AppName::parse(&name).map_err(|e| format!("name: {e}"))?,
        roles: Roles::from_stored(&fields.required_text(1, "roles")?)
            .map_err(|e| format!("roles: {e}"))?,
        description: fields.text(2, "description")?,
        owner: fields.text(3, "owner")?,
        created_at: fields.required_instant(4, "created_at")?,
        updated_at: fields.required_instant(5, "updated_at")?,
        disabled_at: fields.instant(6, "disabled_at")?,
        stale_after: fields
            .integer(7, "stale_after_ms")?
            .map(|ms| {
                u64::try_from(ms)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis)
                    .ok_or_else(|| format!("stale_after_ms: {ms} is not a positive duration"))
            })
            .transpose()?,
    })
}

pub(super) fn token(fields: &Fields<'_, '_>) -> Result<TokenRecord, String> {
    let app = fields.required_text(1, "app_name")?;
    let hash = match fields.0.get_ref(2).map_err(|e| format!("hash: {e}"))? {
        ValueRef::Blob(bytes) => {
            <[u8; 32]>::try_from(bytes).map_err(|_| "hash is not 32 bytes".to_owned())?
        }
        other => return Err(format!("hash is {}, not 32 bytes", kind(other))),
    };
    Ok(TokenRecord {
        id: fields.required_text(0, "id")?,
        app: AppName::parse(&app).map_err(|e| format!("app_name: {e}"))?,
        hash,
        label: fields.text(3, "label")?,
        created_at: fields.required_instant(4, "created_at")?,
        expires_at: fields.instant(5, "expires_at")?,
        revoked_at: fields.instant(6, "revoked_at")?,
        last_used_at: fields.instant(7, "last_used_at")?,
    })
}

pub(super) fn consumer(fields: &Fields<'_, '_>) -> Result<ConsumerRecord, String> {
    let app = fields.required_text(0, "app_name")?;
    let told = version(fields.required_integer(1, "told_version")?, "told_version")?;
    Ok(ConsumerRecord {
        app: AppName::parse(&app).map_err(|e| format!("app_name: {e}"))?,
        consumer: Consumer {
            cursor: Cursor::at(told),
            told_at: fields.instant(2, "told_at")?,
            knowledge: Knowledge {
                sent: sighting(fields, 3, "sent")?,
                acknowledged: sighting(fields, 7, "acked")?,
            },
        },
    })
}

/// The four columns of a sighting, from `first`; all NULL when there is none.
fn sighting(fields: &Fields<'_, '_>, first: usize, name: &str) -> Result<Option<Sighting>, String> {
    let id = fields.integer(first, &format!("{name}_id"))?;
    let at = fields.instant(first + 1, &format!("{name}_at"))?;
    let mode = fields.text(first + 2, &format!("{name}_mode"))?;
    let long_poll = fields.integer(first + 3, &format!("{name}_long_poll"))?;
    match (id, at, mode) {
        (None, None, None) => Ok(None),
        (Some(id), Some(at), Some(mode)) => Ok(Some(Sighting {
            id: ChangeId(id),
            at,
            mode: Mode::from_stored(&mode)
                .ok_or_else(|| format!("{name}_mode `{mode}` is not a mode"))?,
            long_poll: long_poll.is_some_and(|flag| flag != 0),
        })),
        _ => Err(format!("the {name} record is incomplete")),
    }
}

/// The columns a sighting is written to.
#[derive(Default)]
pub(super) struct StoredSighting {
    pub(super) id: Option<i64>,
    pub(super) at: Option<String>,
    pub(super) mode: Option<String>,
    pub(super) long_poll: Option<bool>,
}

impl From<Option<Sighting>> for StoredSighting {
    fn from(sighting: Option<Sighting>) -> Self {
        sighting.map_or_else(Self::default, |s| Self {
            id: Some(s.id.0),
            at: Some(rfc3339(s.at)),
            mode: Some(s.mode.as_str().to_owned()),
            long_poll: Some(s.long_poll),
        })
    }
}

pub(super) fn head_row(fields: &Fields<'_, '_>) -> Result<Head, String> {
    let changed_at = fields.required_text(2, "changed_at")?;
    Ok(Head {
        change: Change {
            id: ChangeId(fields.required_integer(0, "id")?),
            level: Level::from_stored(fields.required_integer(1, "level")?),
            changed_at: ChangedAt::parse(&changed_at).map_err(|e| format!("changed_at: {e}"))?,
        },
        version: version(fields.required_integer(3, "head_version")?, "head_version")?,
    })
}

pub(super) fn history_entry(fields: &Fields<'_, '_>) -> Result<HistoryEntry, String> {
    let changed_at = fields.required_text(2, "changed_at")?;
    let outcome = fields.required_text(6, "outcome")?;
    Ok(HistoryEntry {
        id: ChangeId(fields.required_integer(0, "id")?),
        level: Level::from_stored(fields.required_integer(1, "level")?),
        changed_at: ChangedAt::parse(&changed_at).map_err(|e| format!("changed_at: {e}"))?,
        published_by: fields.required_text(3, "published_by")?,
        received_at: fields.required_instant(4, "received_at")?,
        source: fields.text(5, "source_address")?,
        token_id: fields.text(7, "token_id")?,
        outcome: Outcome::from_stored(&outcome)
            .ok_or_else(|| format!("outcome `{outcome}` is not an outcome"))?,
    })
}

pub(super) fn audit_record(fields: &Fields<'_, '_>) -> Result<AuditRecord, String> {
    Ok(AuditRecord {
        id: fields.required_integer(0, "id")?,
        event: AuditEvent {
            at: fields.required_instant(1, "at")?,
            actor: fields.required_text(2, "actor")?,
            actor_token: fields.text(3, "actor_token")?,
            source: fields.text(4, "source_address")?,
            action: fields.required_text(5, "action")?,
            target: fields.required_text(6, "target")?,
            detail: fields.required_text(7, "detail")?,
        },
    })
}

pub(super) fn watch_record(fields: &Fields<'_, '_>) -> Result<WatchRecord, String> {
    let name = fields.required_text(0, "app")?;
    let standing = match (fields.text(2, "state")?, fields.instant(3, "since")?) {
        (Some(state), Some(since)) => Some(Standing {
            state: alert_state(&state, "state")?,
            since,
        }),
        (None, _) => None,
        (Some(_), None) => return Err("since is missing".to_owned()),
    };
    Ok(WatchRecord {
        app: AppName::parse(&name).map_err(|e| format!("app: {e}"))?,
        last_seen: fields.instant(1, "last_seen")?,
        standing,
    })
}

/// A stored alert state name.
fn alert_state(name: &str, column: &str) -> Result<AlertState, String> {
    AlertState::parse(name).ok_or_else(|| format!("{column}: `{name}` is not an alert state"))
}

pub(super) fn watch_transition(fields: &Fields<'_, '_>) -> Result<WatchTransition, String> {
    Ok(WatchTransition {
        id: fields.required_integer(0, "id")?,
        app: fields.required_text(1, "app")?,
        from: alert_state(&fields.required_text(2, "from_state")?, "from_state")?,
        to: alert_state(&fields.required_text(3, "to_state")?, "to_state")?,
        at: fields.required_instant(4, "at")?,
        last_seen: fields.instant(5, "last_seen")?,
    })
}

pub(super) fn delivery(fields: &Fields<'_, '_>) -> Result<Delivery, String> {
    let kind = fields.required_text(2, "type")?;
    Ok(Delivery {
        event_id: fields.required_integer(0, "event_id")?,
        webhook: fields.required_text(1, "webhook")?,
        kind: EventKind::parse(&kind).ok_or_else(|| format!("type `{kind}` is not an event"))?,
        occurred_at: fields.required_instant(3, "occurred_at")?,
        data: fields.required_text(4, "data")?,
        attempts: u32::try_from(fields.required_integer(5, "attempts")?)
            .map_err(|_| "attempts is out of range".to_owned())?,
    })
}

/// Logs a row of `table` left out of an answer.
pub(super) fn skipped(table: &'static str) -> impl Fn(&Fields<'_, '_>, String) {
    move |fields, problem| {
        tracing::error!(
            table,
            key = fields.shown(0).unwrap_or_default(),
            problem,
            "a stored row cannot be read and is left out of the answer"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_instants_are_fixed_width_and_read_back() {
        for text in [
            "0000-01-01T00:00:00.000000Z",
            "2026-11-29T12:00:00.123456Z",
            "9999-12-31T23:59:59.999999Z",
        ] {
            let at = instant(text).unwrap();
            assert_eq!(rfc3339(at), text);
        }
        assert_eq!(instant("+10000-01-01T00:00:00.000000Z"), None);
    }
}

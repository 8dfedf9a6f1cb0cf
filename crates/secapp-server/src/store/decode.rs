//! Reading rows back into records, once for every backend: each backend
//! says how one column of its rows is read ([`Columns`]), and the decoders
//! here say which columns make which record. A row that cannot be read
//! becomes a sentence saying what is wrong, never a panic, so the caller can
//! leave it out and report it.
//!
//! The column order each decoder expects is in its doc comment; the
//! backends' `SELECT`s list their columns in that order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secapp_domain::{
    AppName, Change, ChangeId, ChangedAt, Consumer, Cursor, Head, Knowledge, Level, Mode, Outcome,
    Roles, Sighting, Version,
};

use super::{
    AlertState, AppRecord, AuditEvent, AuditRecord, ConsumerRecord, DeadLetter, Delivery,
    EventKind, HistoryEntry, Standing, TokenRecord, UnreadableRow, UnreadableToken, WatchRecord,
    WatchTransition,
};

/// The columns of one stored row, as a backend reads them: `Ok(None)` for
/// NULL, `Err` saying what is wrong with a value of another type.
pub trait Columns {
    /// A text column.
    ///
    /// # Errors
    /// What is wrong, when the value is not text.
    fn text(&self, index: usize, name: &str) -> Result<Option<String>, String>;
    /// An integer column, of any width.
    ///
    /// # Errors
    /// What is wrong, when the value is not an integer.
    fn integer(&self, index: usize, name: &str) -> Result<Option<i64>, String>;
    /// An instant (stored as a timestamp, or as RFC 3339 text).
    ///
    /// # Errors
    /// What is wrong, when the value is not an instant.
    fn instant(&self, index: usize, name: &str) -> Result<Option<DateTime<Utc>>, String>;
    /// A flag (stored as a boolean, or as 0 and 1).
    ///
    /// # Errors
    /// What is wrong, when the value is not a flag.
    fn flag(&self, index: usize, name: &str) -> Result<Option<bool>, String>;
    /// A byte string column.
    ///
    /// # Errors
    /// What is wrong, when the value is not bytes.
    fn bytes(&self, index: usize, name: &str) -> Result<Option<Vec<u8>>, String>;
    /// The column as stored, whatever its type, for showing in a report.
    fn shown(&self, index: usize) -> Option<String>;

    /// [`text`](Self::text), which must not be NULL.
    ///
    /// # Errors
    /// What is wrong.
    fn required_text(&self, index: usize, name: &str) -> Result<String, String> {
        self.text(index, name)?.ok_or_else(|| missing(name))
    }

    /// [`integer`](Self::integer), which must not be NULL.
    ///
    /// # Errors
    /// What is wrong.
    fn required_integer(&self, index: usize, name: &str) -> Result<i64, String> {
        self.integer(index, name)?.ok_or_else(|| missing(name))
    }

    /// [`instant`](Self::instant), which must not be NULL.
    ///
    /// # Errors
    /// What is wrong.
    fn required_instant(&self, index: usize, name: &str) -> Result<DateTime<Utc>, String> {
        self.instant(index, name)?.ok_or_else(|| missing(name))
    }
}

fn missing(name: &str) -> String {
    format!("{name} is missing")
}

/// A head version as stored.
#[must_use]
pub fn version_to_sql(version: Version) -> i64 {
    // Versions count publishes; i64::MAX of them is beyond any deployment.
    i64::try_from(version.0).unwrap_or(i64::MAX)
}

/// A duration as stored: whole milliseconds, saturating (settings are
/// capped at 100 years, far below).
#[must_use]
pub fn duration_to_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn version(raw: i64, name: &str) -> Result<Version, String> {
    u64::try_from(raw)
        .map(Version)
        .map_err(|_| format!("{name} {raw} is negative"))
}

fn app_name(raw: &str, name: &str) -> Result<AppName, String> {
    AppName::parse(raw).map_err(|e| format!("{name}: {e}"))
}

fn changed_at(row: &impl Columns, index: usize) -> Result<ChangedAt, String> {
    let raw = row.required_text(index, "changed_at")?;
    ChangedAt::parse(&raw).map_err(|e| format!("changed_at: {e}"))
}

fn alert_state(raw: &str, name: &str) -> Result<AlertState, String> {
    AlertState::parse(raw).ok_or_else(|| format!("{name}: `{raw}` is not an alert state"))
}

/// `id, level, changed_at, head_version`.
///
/// # Errors
/// What is wrong with the row.
pub fn head(row: &impl Columns) -> Result<Head, String> {
    Ok(Head {
        change: Change {
            id: ChangeId(row.required_integer(0, "id")?),
            level: Level::from_stored(row.required_integer(1, "level")?),
            changed_at: changed_at(row, 2)?,
        },
        version: version(row.required_integer(3, "head_version")?, "head_version")?,
    })
}

/// The head as the head rows say (`id, level, changed_at, head_version`,
/// offered newest version first): the newest readable one, the latest
/// version given, and the rows skipped. When the newest head row cannot be
/// read, the newest one that can stands in for it (reported with the rows
/// skipped), and the version still counts from the newest, so no version
/// is given twice.
#[derive(Debug, Default)]
pub struct NewestHead {
    head: Option<Head>,
    latest: Version,
    unreadable: Vec<UnreadableRow>,
}

impl NewestHead {
    /// Takes the next row; answers true once the head is found (read no more).
    pub fn offer(&mut self, row: &impl Columns) -> bool {
        if let Ok(Some(raw)) = row.integer(3, "head_version")
            && let Ok(stored) = version(raw, "head_version")
        {
            self.latest = self.latest.max(stored);
        }
        match head(row) {
            Ok(head) => {
                self.head = Some(head);
                true
            }
            Err(problem) => {
                self.unreadable
                    .push(unreadable_row("changes", row, problem));
                false
            }
        }
    }

    /// The head, the latest version given, and the rows that could not be read.
    #[must_use]
    pub fn finish(self) -> (Option<Head>, Version, Vec<UnreadableRow>) {
        (self.head, self.latest, self.unreadable)
    }
}

/// A row of `table` that cannot be read, keyed by its first column.
pub fn unreadable_row(table: &'static str, row: &impl Columns, problem: String) -> UnreadableRow {
    UnreadableRow {
        table,
        key: row.shown(0).unwrap_or_default(),
        problem,
    }
}

/// A token row that cannot be read, its fields as stored (in the column
/// order of [`token`]), so it can still be listed and revoked.
pub fn unreadable_token(row: &impl Columns, problem: String) -> UnreadableToken {
    UnreadableToken {
        id: row.shown(0).unwrap_or_default(),
        app: row.shown(1).unwrap_or_default(),
        label: row.shown(3),
        created_at: row.shown(4).unwrap_or_default(),
        expires_at: row.shown(5),
        revoked_at: row.shown(6),
        last_used_at: row.shown(7),
        problem,
    }
}

/// Logs a row of `table` left out of an answer.
pub fn skipped(table: &'static str, row: &impl Columns, problem: String) {
    tracing::error!(
        table,
        key = row.shown(0).unwrap_or_default(),
        problem,
        "a stored row cannot be read and is left out of the answer"
    );
}

/// `id, level, changed_at, published_by, received_at, source_address,
/// outcome, token_id`.
///
/// # Errors
/// What is wrong with the row.
pub fn history_entry(row: &impl Columns) -> Result<HistoryEntry, String> {
    let outcome = row.required_text(6, "outcome")?;
    Ok(HistoryEntry {
        id: ChangeId(row.required_integer(0, "id")?),
        level: Level::from_stored(row.required_integer(1, "level")?),
        changed_at: changed_at(row, 2)?,
        published_by: row.required_text(3, "published_by")?,
        received_at: row.required_instant(4, "received_at")?,
        source: row.text(5, "source_address")?,
        token_id: row.text(7, "token_id")?,
        outcome: Outcome::from_stored(&outcome)
            .ok_or_else(|| format!("outcome `{outcome}` is not an outcome"))?,
    })
}

/// `app_name, told_version, told_at, sent_id, sent_at, sent_mode,
/// sent_long_poll, acked_id, acked_at, acked_mode, acked_long_poll`.
///
/// # Errors
/// What is wrong with the row.
pub fn consumer(row: &impl Columns) -> Result<ConsumerRecord, String> {
    let app = row.required_text(0, "app_name")?;
    let told = version(row.required_integer(1, "told_version")?, "told_version")?;
    Ok(ConsumerRecord {
        app: app_name(&app, "app_name")?,
        consumer: Consumer {
            cursor: Cursor::at(told),
            told_at: row.instant(2, "told_at")?,
            knowledge: Knowledge {
                sent: sighting(row, 3, "sent")?,
                acknowledged: sighting(row, 7, "acked")?,
            },
        },
    })
}

/// The four columns of a sighting, from `first`; all NULL when there is none.
fn sighting(row: &impl Columns, first: usize, name: &str) -> Result<Option<Sighting>, String> {
    let id = row.integer(first, &format!("{name}_id"))?;
    let at = row.instant(first + 1, &format!("{name}_at"))?;
    let mode = row.text(first + 2, &format!("{name}_mode"))?;
    let long_poll = row.flag(first + 3, &format!("{name}_long_poll"))?;
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
///
/// # Errors
/// What is wrong with the row.
pub fn app(row: &impl Columns) -> Result<AppRecord, String> {
    let name = row.required_text(0, "name")?;
    Ok(AppRecord {
        name: app_name(&name, "name")?,
        roles: Roles::from_stored(&row.required_text(1, "roles")?)
            .map_err(|e| format!("roles: {e}"))?,
        description: row.text(2, "description")?,
        owner: row.text(3, "owner")?,
        created_at: row.required_instant(4, "created_at")?,
        updated_at: row.required_instant(5, "updated_at")?,
        disabled_at: row.instant(6, "disabled_at")?,
        stale_after: row
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

/// `id, app_name, hash, label, created_at, expires_at, revoked_at,
/// last_used_at`.
///
/// # Errors
/// What is wrong with the row.
pub fn token(row: &impl Columns) -> Result<TokenRecord, String> {
    let app = row.required_text(1, "app_name")?;
    let hash = row.bytes(2, "hash")?.ok_or_else(|| missing("hash"))?;
    Ok(TokenRecord {
        id: row.required_text(0, "id")?,
        app: app_name(&app, "app_name")?,
        hash: <[u8; 32]>::try_from(hash.as_slice())
            .map_err(|_| "hash is not 32 bytes".to_owned())?,
        label: row.text(3, "label")?,
        created_at: row.required_instant(4, "created_at")?,
        expires_at: row.instant(5, "expires_at")?,
        revoked_at: row.instant(6, "revoked_at")?,
        last_used_at: row.instant(7, "last_used_at")?,
    })
}

/// `id, at, actor, actor_token, source_address, action, target, detail`.
///
/// # Errors
/// What is wrong with the row.
pub fn audit_record(row: &impl Columns) -> Result<AuditRecord, String> {
    Ok(AuditRecord {
        id: row.required_integer(0, "id")?,
        event: AuditEvent {
            at: row.required_instant(1, "at")?,
            actor: row.required_text(2, "actor")?,
            actor_token: row.text(3, "actor_token")?,
            source: row.text(4, "source_address")?,
            action: row.required_text(5, "action")?,
            target: row.required_text(6, "target")?,
            detail: row.required_text(7, "detail")?,
        },
    })
}

/// `app, last_seen, state, since`.
///
/// # Errors
/// What is wrong with the row.
pub fn watch_record(row: &impl Columns) -> Result<WatchRecord, String> {
    let app = row.required_text(0, "app")?;
    let standing = match (row.text(2, "state")?, row.instant(3, "since")?) {
        (Some(state), Some(since)) => Some(Standing {
            state: alert_state(&state, "state")?,
            since,
        }),
        (None, _) => None,
        (Some(_), None) => return Err("since is missing".to_owned()),
    };
    Ok(WatchRecord {
        app: app_name(&app, "app")?,
        last_seen: row.instant(1, "last_seen")?,
        standing,
    })
}

/// `id, app, from_state, to_state, at, last_seen`.
///
/// # Errors
/// What is wrong with the row.
pub fn watch_transition(row: &impl Columns) -> Result<WatchTransition, String> {
    Ok(WatchTransition {
        id: row.required_integer(0, "id")?,
        app: row.required_text(1, "app")?,
        from: alert_state(&row.required_text(2, "from_state")?, "from_state")?,
        to: alert_state(&row.required_text(3, "to_state")?, "to_state")?,
        at: row.required_instant(4, "at")?,
        last_seen: row.instant(5, "last_seen")?,
    })
}

/// `event_id, sink, type, occurred_at, data, attempts`.
///
/// # Errors
/// What is wrong with the row.
pub fn delivery(row: &impl Columns) -> Result<Delivery, String> {
    Ok(Delivery {
        event_id: row.required_integer(0, "event_id")?,
        sink: row.required_text(1, "sink")?,
        kind: event_kind(row, 2)?,
        occurred_at: row.required_instant(3, "occurred_at")?,
        data: row.required_text(4, "data")?,
        attempts: attempts(row, 5)?,
    })
}

/// A dead letter: `event_id, sink, type, occurred_at, attempts,
/// finished_at, last_error`.
///
/// # Errors
/// What is wrong with the row.
pub fn dead_letter(row: &impl Columns) -> Result<DeadLetter, String> {
    Ok(DeadLetter {
        event_id: row.required_integer(0, "event_id")?,
        sink: row.required_text(1, "sink")?,
        kind: event_kind(row, 2)?,
        occurred_at: row.required_instant(3, "occurred_at")?,
        attempts: attempts(row, 4)?,
        dead_at: row.instant(5, "finished_at")?,
        last_error: row.text(6, "last_error")?,
    })
}

fn event_kind(row: &impl Columns, index: usize) -> Result<EventKind, String> {
    let kind = row.required_text(index, "type")?;
    EventKind::parse(&kind).ok_or_else(|| format!("type `{kind}` is not an event"))
}

fn attempts(row: &impl Columns, index: usize) -> Result<u32, String> {
    u32::try_from(row.required_integer(index, "attempts")?)
        .map_err(|_| "attempts is out of range".to_owned())
}

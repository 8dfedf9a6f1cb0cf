//! Rows as SQLite holds them: what is written (`rfc3339`,
//! [`StoredSighting`]), how one column is read back (`Fields`, the
//! [`Columns`] the shared decoders in `store/decode.rs` read records
//! through), and how driver errors become [`StoreError`]s. The aggregate
//! modules hold the SQL and read through [`load`].
//!
//! A row that cannot be read never fails a load: [`load`] returns it beside
//! the rows it could read and the server keeps serving. Pages of the
//! history and the audit leave such rows out, with a warning in the log
//! (`decode::skipped`).

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};
use secapp_domain::Sighting;

use crate::store::decode::Columns;
use crate::store::{Cause, StoreError};

/// An instant as stored: RFC 3339 in UTC with microseconds. Fixed width, so
/// text order is time order.
pub(super) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
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

impl Columns for Fields<'_, '_> {
    fn text(&self, index: usize, name: &str) -> Result<Option<String>, String> {
        match self.0.get_ref(index).map_err(|e| format!("{name}: {e}"))? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                .map(|text| Some(text.to_owned()))
                .map_err(|_| format!("{name} is not UTF-8 text")),
            other => Err(format!("{name} is {}, not text", kind(other))),
        }
    }

    fn integer(&self, index: usize, name: &str) -> Result<Option<i64>, String> {
        match self.0.get_ref(index).map_err(|e| format!("{name}: {e}"))? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(value) => Ok(Some(value)),
            other => Err(format!("{name} is {}, not an integer", kind(other))),
        }
    }

    fn instant(&self, index: usize, name: &str) -> Result<Option<DateTime<Utc>>, String> {
        self.text(index, name)?
            .map(|text| instant(&text).ok_or_else(|| unreadable_time(name, &text)))
            .transpose()
    }

    fn flag(&self, index: usize, name: &str) -> Result<Option<bool>, String> {
        Ok(self.integer(index, name)?.map(|flag| flag != 0))
    }

    fn bytes(&self, index: usize, name: &str) -> Result<Option<Vec<u8>>, String> {
        match self.0.get_ref(index).map_err(|e| format!("{name}: {e}"))? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(bytes) => Ok(Some(bytes.to_vec())),
            other => Err(format!("{name} is {}, not bytes", kind(other))),
        }
    }

    fn shown(&self, index: usize) -> Option<String> {
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

/// Reads every row `sql` selects (with `params`) through `read`; a row it
/// cannot read is handed to `unreadable` instead, with what is wrong.
pub(super) fn load<T, U>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    read: impl Fn(&Fields<'_, '_>) -> Result<T, String>,
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

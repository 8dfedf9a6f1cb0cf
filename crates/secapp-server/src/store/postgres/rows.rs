//! How one column of a row is read back (the [`Columns`] the shared
//! decoders in `store/decode.rs` read records through), and how driver and
//! pool errors become [`StoreError`]s.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::store::decode::Columns;
use crate::store::{Cause, StoreError};

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

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    name: &str,
) -> Result<T, String> {
    row.try_get(index).map_err(|e| format!("{name}: {e}"))
}

impl Columns for Row {
    fn text(&self, index: usize, name: &str) -> Result<Option<String>, String> {
        get(self, index, name)
    }

    fn integer(&self, index: usize, name: &str) -> Result<Option<i64>, String> {
        // BIGINT columns, and INTEGER for `attempts`.
        match self.try_get::<_, Option<i64>>(index) {
            Ok(value) => Ok(value),
            Err(_) => get::<Option<i32>>(self, index, name).map(|value| value.map(i64::from)),
        }
    }

    fn instant(&self, index: usize, name: &str) -> Result<Option<DateTime<Utc>>, String> {
        get(self, index, name)
    }

    fn flag(&self, index: usize, name: &str) -> Result<Option<bool>, String> {
        get(self, index, name)
    }

    fn bytes(&self, index: usize, name: &str) -> Result<Option<Vec<u8>>, String> {
        get(self, index, name)
    }

    fn shown(&self, index: usize) -> Option<String> {
        if let Ok(text) = self.try_get::<_, Option<String>>(index) {
            return text;
        }
        if let Ok(number) = self.try_get::<_, Option<i64>>(index) {
            return number.map(|n| n.to_string());
        }
        if let Ok(at) = self.try_get::<_, Option<DateTime<Utc>>>(index) {
            return at.map(|at| at.to_rfc3339());
        }
        None
    }
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

//! Which server holds the once-only duties: the one whose session holds a
//! session-level advisory lock. The lock lives as long as that connection:
//! when the server dies (or its connection does), PostgreSQL releases it,
//! and the next server to ask takes it.

use tokio::sync::Mutex;

use super::rows::failed;
use crate::store::StoreError;

/// The advisory lock of the once-only duties ("secapp:l").
const DUTIES_LOCK: i64 = 0x7365_6361_7070_3a6c;

/// A session of its own, and whether it holds the lock.
pub(super) struct Leader {
    config: tokio_postgres::Config,
    session: Mutex<Option<Session>>,
}

struct Session {
    client: tokio_postgres::Client,
    holds: bool,
}

impl Leader {
    pub(super) fn new(config: tokio_postgres::Config) -> Self {
        Self {
            config,
            session: Mutex::new(None),
        }
    }

    /// Whether this server holds the lock now, trying to take it if not.
    pub(super) async fn lead(&self) -> Result<bool, StoreError> {
        let mut session = self.session.lock().await;
        if session.as_ref().is_some_and(|s| s.client.is_closed()) {
            // The connection is gone, and the lock with it.
            *session = None;
        }
        if session.is_none() {
            let (client, connection) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(failed("connecting for the once-only duties"))?;
            tokio::spawn(connection);
            *session = Some(Session {
                client,
                holds: false,
            });
        }
        let Some(held) = session.as_mut() else {
            return Ok(false);
        };
        if !held.holds {
            held.holds = held
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&DUTIES_LOCK])
                .await
                .map_err(failed("taking the once-only duties"))?
                .get(0);
        }
        Ok(held.holds)
    }

    /// Gives the lock up (by closing the session), for a clean stop.
    pub(super) async fn resign(&self) {
        self.session.lock().await.take();
    }
}

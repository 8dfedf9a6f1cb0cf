//! A session of its own, outside the pool, for two things a busy pool must
//! not delay or decide:
//! - which server holds the once-only duties: the one whose session holds a
//!   session-level advisory lock. The lock lives as long as the connection:
//!   when the server dies (or its connection does), PostgreSQL releases it,
//!   and the next server to ask takes it;
//! - whether the database answers (readiness): a pool whose connections
//!   all wait for the publish lock is a busy database, not a lost one.

use tokio::sync::Mutex;

use super::rows::failed;
use crate::store::StoreError;

/// The advisory lock of the once-only duties ("secapp:l").
const DUTIES_LOCK: i64 = 0x7365_6361_7070_3a6c;

/// The session, and whether it holds the lock.
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

    /// The live session, connecting a new one (which holds nothing) when
    /// there is none or it was lost, and the lock with it.
    async fn connected<'a>(
        &self,
        session: &'a mut Option<Session>,
    ) -> Result<&'a mut Session, StoreError> {
        if session.as_ref().is_some_and(|s| s.client.is_closed()) {
            *session = None;
        }
        if session.is_none() {
            let (client, connection) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(failed("connecting a session of its own"))?;
            tokio::spawn(connection);
            *session = Some(Session {
                client,
                holds: false,
            });
        }
        session
            .as_mut()
            .ok_or_else(|| StoreError::unavailable("no session of its own"))
    }

    /// Whether this server holds the lock now, trying to take it if not.
    pub(super) async fn lead(&self) -> Result<bool, StoreError> {
        let mut guard = self.session.lock().await;
        let session = self.connected(&mut guard).await?;
        if !session.holds {
            session.holds = session
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&DUTIES_LOCK])
                .await
                .map_err(failed("taking the once-only duties"))?
                .get(0);
        }
        Ok(session.holds)
    }

    /// Whether the database answers.
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let mut guard = self.session.lock().await;
        let session = self.connected(&mut guard).await?;
        session
            .client
            .query_one("SELECT 1", &[])
            .await
            .map_err(failed("checking the database"))?;
        Ok(())
    }

    /// Gives the lock up (by closing the session), for a clean stop.
    pub(super) async fn resign(&self) {
        self.session.lock().await.take();
    }
}

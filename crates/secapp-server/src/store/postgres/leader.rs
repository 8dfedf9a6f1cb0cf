//! A session of its own, outside the pool, for two things a busy pool must
//! not delay or decide:
//! - which server holds the once-only duties: the one holding the
//!   `duties` row of `leases` for its term, taken and renewed in one
//!   statement on the database's clock. A server that stops renewing (it
//!   died, lost its connection, or was paused) loses them when the term
//!   runs out, and the next server to ask takes them under a greater epoch;
//! - whether the database answers (readiness): a pool whose connections
//!   all wait for the publish lock is a busy database, not a lost one.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::rows::failed;
use crate::store::{Lease, StoreError};

/// Takes the duties when they are free or lapsed, renews them when this
/// server holds them, and answers the epoch; no row when another holds them.
const TAKE_OR_RENEW: &str = "
    INSERT INTO leases AS l (duty, holder, epoch, expires_at)
    VALUES ('duties', $1, 1, now() + make_interval(secs => $2))
    ON CONFLICT (duty) DO UPDATE
    SET epoch = CASE WHEN l.holder = $1 AND l.expires_at > now()
                     THEN l.epoch ELSE l.epoch + 1 END,
        holder = $1,
        expires_at = EXCLUDED.expires_at
    WHERE l.holder = $1 OR l.expires_at <= now()
    RETURNING l.epoch";

/// The condition, for a statement whose `$1` is an epoch, that the duties
/// are still held under it: what every write the duties make checks.
pub(super) const HELD_UNDER_1: &str = "EXISTS (SELECT 1 FROM leases
     WHERE duty = 'duties' AND epoch = $1 AND expires_at > now())";

/// The session, and who this server is among those sharing the database.
pub(super) struct Leader {
    config: tokio_postgres::Config,
    /// Names this server in `leases.holder`: its process id and a random
    /// part, new at every start.
    holder: String,
    session: Mutex<Option<Session>>,
}

struct Session {
    client: tokio_postgres::Client,
    /// The epoch last taken or renewed, if any: given up at a clean stop.
    epoch: Option<i64>,
}

impl Leader {
    pub(super) fn new(config: tokio_postgres::Config) -> Self {
        Self {
            config,
            holder: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
            session: Mutex::new(None),
        }
    }

    /// The live session, connecting a new one when there is none or it was lost.
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
                epoch: None,
            });
        }
        session
            .as_mut()
            .ok_or_else(|| StoreError::unavailable("no session of its own"))
    }

    /// Takes or renews the duties for `term`; `None` while another server
    /// holds them.
    pub(super) async fn lead(&self, term: Duration) -> Result<Option<Lease>, StoreError> {
        let mut guard = self.session.lock().await;
        let session = self.connected(&mut guard).await?;
        let asked = Instant::now();
        let row = session
            .client
            .query_opt(TAKE_OR_RENEW, &[&self.holder, &term.as_secs_f64()])
            .await
            .map_err(failed("taking the once-only duties"))?;
        let lease = row.map(|row| Lease::asked_at(row.get(0), asked, term));
        if let Some(lease) = lease.filter(|lease| session.epoch != Some(lease.epoch)) {
            tracing::info!(epoch = lease.epoch, holder = %self.holder, "took the once-only duties");
        }
        session.epoch = lease.map(|lease| lease.epoch);
        Ok(lease)
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

    /// Gives the duties up, for a clean stop: the next server to ask takes
    /// them at once instead of after the term.
    pub(super) async fn resign(&self) {
        let Some(session) = self.session.lock().await.take() else {
            return;
        };
        if let Some(epoch) = session.epoch {
            let given_up = session
                .client
                .execute(
                    "UPDATE leases SET expires_at = now() WHERE duty = 'duties' AND epoch = $1",
                    &[&epoch],
                )
                .await;
            if let Err(e) = given_up {
                tracing::warn!(error = %e, "cannot give the once-only duties up; they lapse at the end of their term");
            }
        }
    }
}

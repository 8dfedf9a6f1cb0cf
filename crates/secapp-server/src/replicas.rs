//! Keeping up with other servers on the same database.
//!
//! When the store can be shared ([`Store::notices`] is `Some`: PostgreSQL),
//! [`follow`] reads the head again whenever another server announces one,
//! and the applications and tokens whenever they changed, and once a second
//! whatever was announced (a backstop for a notification lost with its
//! connection; a lost connection itself announces a resync). A new head
//! wakes this server's long polls and streams; a registry change makes open
//! streams and held long polls check their callers again, so a token
//! revoked on one server is refused by all within about a second.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::hub::Hub;
use crate::store::{Notice, Store, StoreError};

/// How often the head and the registry revision are read regardless.
const BACKSTOP: Duration = Duration::from_secs(1);

/// Follows other servers until `stop` is cancelled; returns at once when
/// the store has no other servers to follow.
pub async fn follow(
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    access: Arc<Access>,
    stop: CancellationToken,
) {
    let Some(mut notices) = store.notices() else {
        return;
    };
    let mut follower = Follower {
        store,
        hub,
        access,
        revision: None,
    };
    let mut backstop = tokio::time::interval(BACKSTOP);
    backstop.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let result = tokio::select! {
            () = stop.cancelled() => return,
            notice = notices.recv() => match notice {
                Ok(Notice::Head) => follower.head().await,
                Ok(Notice::Registry) => follower.registry(true).await,
                Ok(Notice::Resync) | Err(RecvError::Lagged(_)) => follower.everything().await,
                Err(RecvError::Closed) => return,
            },
            _ = backstop.tick() => follower.everything().await,
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "reading what other servers changed failed; will retry");
        }
    }
}

struct Follower {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    access: Arc<Access>,
    /// The registry revision last loaded; `None` before the first read.
    revision: Option<i64>,
}

impl Follower {
    async fn everything(&mut self) -> Result<(), StoreError> {
        self.head().await?;
        self.registry(false).await
    }

    async fn head(&self) -> Result<(), StoreError> {
        if let Some(head) = self.store.head().await?
            && self.hub.advance(&head)
        {
            tracing::debug!(
                version = head.version.0,
                "a head published on another server"
            );
        }
        Ok(())
    }

    /// Reloads the registry when its revision moved (or when `announced`).
    async fn registry(&mut self, announced: bool) -> Result<(), StoreError> {
        let revision = self.store.registry_revision().await?;
        // The first time, load it whatever it is: it may have changed since
        // the server started.
        if self.revision == Some(revision) && !announced {
            return Ok(());
        }
        self.reload(revision).await
    }

    async fn reload(&mut self, revision: i64) -> Result<(), StoreError> {
        let snapshot = self.store.snapshot().await?;
        self.access
            .reload(snapshot.apps, snapshot.tokens, snapshot.unreadable_tokens);
        self.revision = Some(revision);
        tracing::debug!(
            revision,
            "applications and tokens changed on another server"
        );
        Ok(())
    }
}

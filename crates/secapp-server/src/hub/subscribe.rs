//! Waiting for news, the same for long polls and streams: a
//! [`Subscription`] wakes when the head moves, and checks the caller again
//! whenever applications or tokens change and when its token expires, so a
//! caller no longer admitted hears the refusal a new request would get
//! instead of waiting on. It ends when the server begins shutting down, so
//! clients reconnect to another replica at once.

use std::pin::Pin;
use std::sync::Arc;

use secapp_domain::{Head, Role};
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::Hub;
use crate::access::{Access, Lapsed, Principal, TokenUse};
use crate::clock::Clock;

/// What woke a waiting [`Subscription`].
#[derive(Debug)]
pub enum Woken {
    /// The head moved; this is the newest (a slow reader skips straight to
    /// it, never to an older one).
    Head(Option<Arc<Head>>),
    /// The caller is no longer admitted: its token expired or was revoked,
    /// its application was disabled or lost the role, or the name it used
    /// with the shared token was registered.
    Refused(Lapsed),
    /// The server is shutting down.
    Ended,
}

/// One caller's wait for news; see the module comment.
pub struct Subscription {
    head: watch::Receiver<Option<Arc<Head>>>,
    access_changes: watch::Receiver<u64>,
    access: Arc<Access>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    /// Who waits, and with which role, to check again.
    caller: Principal,
    role: Role,
    /// Fires when the caller's token expires; boxed, and only for tokens
    /// that expire, so a wait without one pays nothing for the timer.
    expiry: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("app", &self.caller.app)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Starts waiting for news on behalf of `caller`, who must go on holding
    /// `role`. The subscription has seen the current head: only a later
    /// change wakes it.
    #[must_use]
    pub fn subscribe(&self, caller: &Principal, role: Role) -> Subscription {
        let now = self.parts.clock.now();
        let expiry = caller
            .token
            .as_ref()
            .and_then(TokenUse::expires_at)
            .map(|at| Box::pin(tokio::time::sleep((at - now).to_std().unwrap_or_default())));
        Subscription {
            head: self.head.subscribe(),
            access_changes: self.parts.access.changes(),
            access: self.parts.access.clone(),
            clock: self.parts.clock.clone(),
            shutdown: self.parts.shutdown.clone(),
            caller: caller.clone(),
            role,
            expiry,
        }
    }
}

impl Subscription {
    /// Marks the current head seen, so only a change after this call wakes
    /// [`changed`](Self::changed); call it before each look at the head.
    pub fn mark_seen(&mut self) {
        self.head.borrow_and_update();
    }

    /// Waits for the next change of the head, a refusal of the caller, or
    /// the server's shutdown. A change to applications or tokens that still
    /// admits the caller goes on waiting.
    pub async fn changed(&mut self) -> Woken {
        loop {
            tokio::select! {
                changed = self.head.changed() => {
                    return match changed {
                        Ok(()) => Woken::Head(self.head.borrow_and_update().clone()),
                        Err(_) => Woken::Ended,
                    };
                }
                () = self.shutdown.cancelled() => return Woken::Ended,
                changed = self.access_changes.changed() => {
                    if changed.is_err() {
                        return Woken::Ended;
                    }
                    if let Err(lapsed) = self.recheck() {
                        return Woken::Refused(lapsed);
                    }
                }
                () = expired(&mut self.expiry) => {
                    self.expiry = None;
                    if let Err(lapsed) = self.recheck() {
                        return Woken::Refused(lapsed);
                    }
                }
            }
        }
    }

    fn recheck(&self) -> Result<(), Lapsed> {
        let token = self.caller.token.as_ref().map(|token| &**token.id());
        self.access
            .recheck(token, &self.caller.app, self.role, self.clock.now())
    }
}

/// Completes when `expiry` fires; never when there is none.
async fn expired(expiry: &mut Option<Pin<Box<Sleep>>>) {
    match expiry {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

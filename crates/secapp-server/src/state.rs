//! The one `Clone` context every handler receives: cheap handles only.

use std::sync::Arc;
use std::time::Duration;

use secapp_domain::LevelRange;
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::clock::Clock;
use crate::hub::Hub;
use crate::streams::StreamLimits;

/// Shared by all handlers. axum clones the state for every request, so it is
/// one `Arc`: one reference count to bump, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared parts.
    #[must_use]
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every handler can reach.
pub struct Shared {
    /// The live head and cursors, backed by the store.
    pub hub: Arc<Hub>,
    /// Registered applications, their tokens and the shared token.
    pub access: Arc<Access>,
    /// The Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The consumer watch: stale-consumer alerts.
    pub alerts: Arc<crate::alerts::Alerts>,
    /// The configured sinks (webhooks, brokers).
    pub sinks: Arc<crate::relay::Sinks>,
    /// The events sinks gave up on.
    pub dead_letters: Arc<crate::relay::dead_letters::DeadLetters>,
    /// The settings requests are answered by.
    pub requests: Requests,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Stored rows other than tokens that could not be read at start-up,
    /// for the health answer.
    pub unreadable: Vec<crate::store::UnreadableRow>,
    /// Per-application request rate limits.
    pub limits: crate::limits::RateLimits,
    /// Caps on open streams.
    pub streams: Arc<StreamLimits>,
    /// Cancelled when the server begins shutting down: long polls answer and
    /// streams end, so clients reconnect to another replica at once.
    pub shutdown: CancellationToken,
}

/// The settings requests are answered by, grouped once from the
/// configuration when the server opens.
#[derive(Debug, Clone, Copy)]
pub struct Requests {
    /// Accepted levels.
    pub levels: LevelRange,
    /// How far ahead of the clock a `Change_at` may be.
    pub max_clock_skew: Duration,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_window: Duration,
    /// The longest a long poll is held.
    pub max_wait: Duration,
    /// The poll interval suggested to plain pollers.
    pub poll_interval: Duration,
    /// How often an idle stream sends a heartbeat.
    pub heartbeat: Duration,
    /// How long a request body may take to arrive.
    pub body_read_timeout: Duration,
}

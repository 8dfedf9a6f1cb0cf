//! The one `Clone` context every handler receives: cheap handles only.

use std::sync::Arc;
use std::time::Duration;

use secapp_domain::LevelRange;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::hub::Hub;
use crate::streams::StreamLimits;
use crate::token::ApiToken;

/// Shared by all handlers; cloning copies a few pointers.
#[derive(Clone)]
pub struct AppState {
    /// The live head and cursors, backed by the store.
    pub hub: Arc<Hub>,
    /// The shared API token.
    pub token: Arc<ApiToken>,
    /// Accepted levels.
    pub levels: LevelRange,
    /// How far ahead of `clock` a `Change_at` may be.
    pub max_clock_skew: Duration,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// The longest a long poll is held.
    pub max_wait: Duration,
    /// The poll interval suggested to plain pollers.
    pub poll_interval: Duration,
    /// How often an idle stream sends a heartbeat.
    pub heartbeat: Duration,
    /// Caps on open streams.
    pub streams: Arc<StreamLimits>,
    /// Cancelled when the server begins shutting down: long polls answer and
    /// streams end, so clients reconnect to another replica at once.
    pub shutdown: CancellationToken,
}

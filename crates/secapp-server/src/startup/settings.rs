//! The configuration grouped by the part that uses it, derived once when
//! the server opens: [`Config`] stays flat because it is what a file, the
//! environment and the flags name; each part takes its group from here.

use std::time::Duration;

use crate::config::{Config, ConfigError, RateLimitConfig};
use crate::state::Requests;

/// Every setting the running server uses, by the part that uses it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What handlers answer by.
    pub requests: Requests,
    /// Per-application request rate limits.
    pub rate_limits: RateLimitConfig,
    /// The most event streams open at once.
    pub max_streams: usize,
    /// The most event streams one application may hold open.
    pub max_streams_per_app: usize,
    /// The background tasks' timing.
    pub background: Background,
    /// How connections are held to account; `None` for the cap derives it
    /// from the open-file limit when serving starts.
    pub connections: Connections,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

/// How often the background tasks run.
#[derive(Debug, Clone, Copy)]
pub struct Background {
    /// How often consumer records are written back.
    pub cursor_flush_interval: Duration,
    /// How often the consumer watch runs and due deliveries are tried.
    pub watch_interval: Duration,
    /// How long an application may go unseen before it counts as stale.
    pub stale_after: Duration,
}

/// The connection settings, resolved when serving starts.
#[derive(Debug, Clone, Copy)]
pub struct Connections {
    /// How long a request head may take to arrive.
    pub header_read_timeout: Duration,
    /// How long a connection may stay idle between requests.
    pub keep_alive_timeout: Duration,
    /// The most connections open at once, when set.
    pub max_connections: Option<usize>,
}

impl Settings {
    /// Checks `config` and groups it.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting to fix.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.check()?;
        Ok(Self {
            requests: Requests {
                levels: config.levels()?,
                max_clock_skew: config.max_clock_skew,
                idempotency_window: config.idempotency_window,
                max_wait: config.max_wait,
                poll_interval: config.poll_interval,
                heartbeat: config.heartbeat,
                body_read_timeout: config.body_read_timeout,
            },
            rate_limits: config.rate_limits()?,
            max_streams: config.max_streams,
            max_streams_per_app: config.max_streams_per_app,
            background: Background {
                cursor_flush_interval: config.cursor_flush_interval,
                watch_interval: config.watch_interval,
                stale_after: config.stale_after,
            },
            connections: Connections {
                header_read_timeout: config.header_read_timeout,
                keep_alive_timeout: config.keep_alive_timeout,
                max_connections: config.max_connections,
            },
            shutdown_grace: config.shutdown_grace,
        })
    }
}

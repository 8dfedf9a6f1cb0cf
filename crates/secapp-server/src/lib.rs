//! The secapp server: an axum application that takes a bound listener and a
//! shutdown future, so the binary and the tests start it the same way.
//!
//! Map of the crate:
//! - [`config`]: the settings, declared once, layered defaults → file →
//!   environment → flags.
//! - [`token`]: the shared compatibility token, redacted in logs.
//! - [`access`]: registered applications, their hashed tokens, the admin
//!   operations and the count of refused authentications.
//! - [`auth`]: the extractors that turn `Token`/`Authorization` and
//!   `App-name` into a [`auth::Principal`] holding the role an endpoint needs.
//! - [`error`]: the one HTTP error type and its JSON body.
//! - [`state`]: the `Clone` context of cheap handles every handler receives.
//! - [`hub`]: the live head and what each application was told, sent and acknowledged.
//! - [`streams`]: caps on open event streams, overall and per application.
//! - [`limits`]: per-application request rate limits.
//! - [`metrics`]: Prometheus metrics, counted as requests happen.
//! - [`sightings`]: polls and last sightings per application (bounded labels).
//! - [`scrape`]: the figures read from the hub, registry, streams and
//!   consumer watch at each scrape.
//! - [`listener`]: accepting connections under a cap, and the timeouts that
//!   close idle and slow ones; [`http_limits`]: the request head sizes it reads.
//! - [`data_dir`]: the data dir, created private and locked while in use.
//! - [`store`]: the storage traits, [`store::connect`] and the SQLite store.
//! - [`routes`]: the endpoints, the OpenAPI document and Swagger UI.
//! - [`clock`]: the injected time source.
//! - [`shutdown`]: SIGTERM/SIGINT handling.
//! - [`telemetry`]: logging set-up.
//!
//! Life of a server: [`Server::open`] creates the data dir, opens the store,
//! resolves the shared token (if its compatibility mode is on) and, when no
//! application holds the admin role, registers `admin` and issues its first
//! token; [`Server::run`] serves until the shutdown future
//! completes, then drains in-flight requests, writes back cursors and closes
//! the store.

pub mod access;
pub mod alerts;
pub mod auth;
pub mod clock;
pub mod config;
pub mod data_dir;
pub mod error;
pub mod http_limits;
pub mod hub;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod replicas;
pub mod routes;
pub mod scrape;
pub mod shutdown;
pub mod sightings;
pub mod state;
pub mod store;
pub mod streams;
pub mod telemetry;
pub mod token;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access::{Access, AccessError};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, SharedTokenMode};
use crate::data_dir::{DataDir, DataDirError};
use crate::hub::Hub;
use crate::state::AppState;
use crate::store::{Store, StoreError};
use crate::token::{ApiToken, TokenError, TokenOrigin};

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data dir could not be created or is in use.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The token could not be read or generated.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The store could not be opened or closed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The first admin could not be registered.
    #[error("cannot register the first admin application: {0}")]
    FirstAdmin(AccessError),
    /// Serving failed.
    #[error("serving HTTP failed: {0}")]
    Serve(std::io::Error),
    /// The metrics listener could not be bound.
    #[error(
        "cannot listen for metrics on {addr}: {source}; choose another address with --metrics-listen"
    )]
    MetricsListen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// An opened server, ready to [`run`](Server::run).
pub struct Server {
    /// Held until the server stops: one process per data dir.
    data_dir: DataDir,
    state: AppState,
    store: Arc<dyn Store>,
    shared_token: Option<(ApiToken, TokenOrigin)>,
    first_admin: Option<secapp_api::admin::IssuedToken>,
    cursor_flush_interval: Duration,
    watch: WatchSettings,
    shutdown_grace: Duration,
    connections: ConnectionSettings,
    /// The unauthenticated metrics listener (`--metrics-listen`), if any.
    metrics_listener: Option<TcpListener>,
}

/// How often the consumer watch and the webhook sender run, and the
/// sender's limits.
#[derive(Debug, Clone, Copy)]
struct WatchSettings {
    interval: Duration,
    webhook_timeout: Duration,
    webhook_retry_for: Duration,
}

/// The connection settings of [`Config`], resolved when serving starts.
#[derive(Debug, Clone, Copy)]
struct ConnectionSettings {
    header_read_timeout: Duration,
    keep_alive_timeout: Duration,
    max_connections: Option<usize>,
}

impl Server {
    /// Opens the data dir and the store with the system clock.
    ///
    /// # Errors
    /// [`ServerError`] when the data dir, token or store cannot be used.
    pub async fn open(config: Config) -> Result<Self, ServerError> {
        Self::open_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Opens the data dir and the store with the given clock.
    ///
    /// # Errors
    /// [`ServerError`] when the data dir, token or store cannot be used.
    pub async fn open_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServerError> {
        config.check()?;
        let levels = config.levels()?;
        let rate_limits = config.rate_limits()?;
        let data_dir = DataDir::open(&config.data_dir)?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::MetricsListen { addr, source })?,
            ),
            None => None,
        };
        let shared_token = shared_token(&config, data_dir.path())?;
        let metrics = metrics::Metrics::new(config.metrics_max_shared_apps);
        let store = store::connect(&config.database(), metrics.store_timings()).await?;
        let mut snapshot = store.snapshot().await?;
        let unreadable = std::mem::take(&mut snapshot.unreadable);
        let unreadable_tokens = std::mem::take(&mut snapshot.unreadable_tokens);
        report_unreadable(&unreadable, &unreadable_tokens);
        let access = Arc::new(
            Access::new(
                store.clone(),
                std::mem::take(&mut snapshot.apps),
                std::mem::take(&mut snapshot.tokens),
                shared_token.as_ref().map(|(token, _)| token.clone()),
            )
            .with_unreadable(unreadable_tokens),
        );
        let now = clock.now();
        let first_admin = access
            .bootstrap(now)
            .await
            .map_err(ServerError::FirstAdmin)?
            .map(|issued| routes::admin::views::issued(&issued, now));
        if access.shared_token_enabled() {
            tracing::warn!(
                "the shared-token compatibility mode is on: the shared token can publish and consume \
                 as any unregistered App-name; register each application, move it to its own token, \
                 then set shared_token = \"off\""
            );
        }
        let webhooks = Arc::new(webhooks::Webhooks::new(&config.webhooks));
        let shutdown = CancellationToken::new();
        let hub = Arc::new(Hub::new(
            hub::Parts {
                store: store.clone(),
                access: access.clone(),
                webhooks: webhooks.clone(),
                publishes: metrics.publish_counts(),
                clock: clock.clone(),
                shutdown: shutdown.clone(),
            },
            snapshot,
        ));
        let streams = Arc::new(streams::StreamLimits::new(
            config.max_streams,
            config.max_streams_per_app,
        ));
        let alerts = Arc::new(alerts::Alerts::new(alerts::Parts {
            store: store.clone(),
            access: access.clone(),
            seen: metrics.apps().clone(),
            streams: streams.clone(),
            webhooks: webhooks.clone(),
            clock: clock.clone(),
            default_allowance: config.stale_after,
        }));
        let figures = scrape::Scrape {
            hub: hub.clone(),
            access: access.clone(),
            streams: streams.clone(),
            alerts: alerts.clone(),
            apps: metrics.apps().clone(),
            clock: clock.clone(),
        };
        let metrics = Arc::new(metrics.watch(Box::new(figures)));
        let state = AppState::new(state::Shared {
            hub,
            access,
            metrics,
            alerts,
            webhooks,
            levels,
            max_clock_skew: config.max_clock_skew,
            idempotency_window: config.idempotency_window,
            limits: limits::RateLimits::new(&rate_limits),
            max_wait: config.max_wait,
            poll_interval: config.poll_interval,
            heartbeat: config.heartbeat,
            body_read_timeout: config.body_read_timeout,
            unreadable,
            streams,
            clock,
            shutdown,
        });
        Ok(Self {
            data_dir,
            state,
            store,
            shared_token,
            first_admin,
            cursor_flush_interval: config.cursor_flush_interval,
            watch: WatchSettings {
                interval: config.watch_interval,
                webhook_timeout: config.webhook_timeout,
                webhook_retry_for: config.webhook_retry_for,
            },
            shutdown_grace: config.shutdown_grace,
            connections: ConnectionSettings {
                header_read_timeout: config.header_read_timeout,
                keep_alive_timeout: config.keep_alive_timeout,
                max_connections: config.max_connections,
            },
            metrics_listener,
        })
    }

    /// Where the unauthenticated metrics listener listens, when
    /// `--metrics-listen` is set.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The shared token, when its compatibility mode is on, and where it
    /// came from; [`TokenOrigin::Generated`] means it is new and should be
    /// shown to the operator once.
    #[must_use]
    pub fn shared_token(&self) -> Option<&(ApiToken, TokenOrigin)> {
        self.shared_token.as_ref()
    }

    /// The token of the `admin` application registered at this start (no
    /// application held the admin role): shown to the operator once, then
    /// gone. `None` on every later start.
    #[must_use]
    pub fn first_admin(&self) -> Option<&secapp_api::admin::IssuedToken> {
        self.first_admin.as_ref()
    }

    /// The registry of applications and tokens.
    #[must_use]
    pub fn access(&self) -> &Arc<Access> {
        &self.state.access
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting,
    /// lets in-flight requests finish (up to the configured grace), writes
    /// back cursors and closes the store.
    ///
    /// # Errors
    /// [`ServerError`] when serving fails or the final write-back fails.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Self {
            data_dir,
            state,
            store,
            cursor_flush_interval,
            watch,
            shutdown_grace,
            connections,
            metrics_listener,
            ..
        } = self;
        let stopping = state.shutdown.clone();
        let hub = state.hub.clone();
        let access = state.access.clone();
        let flusher = tokio::spawn(housekeeping(
            state.clone(),
            cursor_flush_interval,
            stopping.clone(),
        ));
        let follower = tokio::spawn(replicas::follow(
            store.clone(),
            hub.clone(),
            access.clone(),
            stopping.clone(),
        ));
        let watcher = tokio::spawn(state.alerts.clone().run(watch.interval, stopping.clone()));
        let sender = tokio::spawn(
            webhooks::sender::Sender {
                store: store.clone(),
                webhooks: state.webhooks.clone(),
                clock: state.clock.clone(),
                metrics: state.metrics.clone(),
                timeout: watch.webhook_timeout,
                retry_for: watch.webhook_retry_for,
            }
            .run(watch.interval, stopping.clone()),
        );

        let limits = crate::listener::ConnectionLimits {
            header_read_timeout: connections.header_read_timeout,
            keep_alive_timeout: connections.keep_alive_timeout,
            max_connections: connections.max_connections.unwrap_or_else(|| {
                crate::listener::default_max_connections(crate::listener::open_files_limit())
            }),
        };
        tracing::info!(
            max_connections = limits.max_connections,
            header_read_timeout = ?limits.header_read_timeout,
            keep_alive_timeout = ?limits.keep_alive_timeout,
            "connection limits"
        );
        let metrics_task = metrics_listener.map(|listener| {
            tokio::spawn(metrics::serve(
                listener,
                state.metrics.clone(),
                stopping.clone(),
            ))
        });
        let app = routes::service(state);
        let serve = crate::listener::serve(listener, app, limits, stopping.clone());
        let mut serving = tokio::spawn(serve);
        let served = tokio::select! {
            result = &mut serving => result,
            () = shutdown => {
                stopping.cancel();
                match tokio::time::timeout(shutdown_grace, &mut serving).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(grace = ?shutdown_grace, "in-flight requests outlived the shutdown grace; closing them");
                        serving.abort();
                        Ok(())
                    }
                }
            }
        };
        stopping.cancel();
        let _ = flusher.await;
        let _ = watcher.await;
        let _ = follower.await;
        // An attempt in flight is cut short: its hold ends and it is sent
        // again after the restart (at least once).
        let _ = sender.await;
        if let Some(mut task) = metrics_task {
            // A scrape still open may take the grace, no longer.
            match tokio::time::timeout(shutdown_grace, &mut task).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the metrics listener failed"),
                Ok(_) => {}
                Err(_) => task.abort(),
            }
        }
        let flushed = hub.flush_consumers().await;
        if let Err(e) = access.flush_usage().await {
            tracing::warn!(error = %e, "writing token last-used times back failed");
        }
        let closed = store.close().await;
        drop(data_dir);
        served.map_err(|e| ServerError::Serve(std::io::Error::other(e)))?;
        let flushed = flushed?;
        closed?;
        tracing::info!(consumer_records_written = flushed, "stopped cleanly");
        Ok(())
    }
}

/// Until `stop` is cancelled: writes changed consumer records back every
/// `interval`; once a minute writes token last-used times back and lets rate
/// limits forget idle applications.
async fn housekeeping(state: AppState, interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut minutes = tokio::time::interval(Duration::from_secs(60));
    minutes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = minutes.tick() => {
                state.limits.forget_idle();
                if let Err(e) = state.access.flush_usage().await {
                    tracing::warn!(error = %e, "writing token last-used times back failed; will retry");
                }
            }
            _ = ticks.tick() => {
                if let Err(e) = state.hub.flush_consumers().await {
                    tracing::warn!(error = %e, "writing consumer records back failed; will retry");
                }
            }
        }
    }
}

/// Logs every stored row that cannot be read, loudly: the server serves
/// without it, and an operator should look.
fn report_unreadable(rows: &[store::UnreadableRow], tokens: &[store::UnreadableToken]) {
    for row in rows {
        tracing::error!(
            table = row.table,
            key = %row.key,
            problem = %row.problem,
            "a stored row cannot be read and is left out; restore it from a backup or delete it"
        );
    }
    for token in tokens {
        tracing::error!(
            table = "tokens",
            key = %token.id,
            app = %token.app,
            problem = %token.problem,
            "a stored token cannot be read: it is refused; revoke it with `secapp tokens revoke {}`",
            token.id
        );
    }
}

/// The shared token in force, if its compatibility mode is on.
fn shared_token(
    config: &Config,
    data_dir: &std::path::Path,
) -> Result<Option<(ApiToken, TokenOrigin)>, ServerError> {
    let from_env = || {
        config
            .api_token
            .clone()
            .map(|token| (token, TokenOrigin::Environment))
    };
    Ok(match config.shared_token {
        SharedTokenMode::Off => {
            if config.api_token.is_some() {
                tracing::warn!(
                    "{} is set but the shared-token mode is off: the shared token is refused",
                    config::API_TOKEN_ENV
                );
            }
            None
        }
        SharedTokenMode::On => match from_env() {
            Some(found) => Some(found),
            None => Some(token::load_or_generate(data_dir)?),
        },
        SharedTokenMode::Auto => match from_env() {
            Some(found) => Some(found),
            None => token::load(data_dir)?,
        },
    })
}

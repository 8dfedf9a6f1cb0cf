//! The secapp server: an axum application that takes a bound listener and a
//! shutdown future, so the binary and the tests start it the same way.
//!
//! Map of the crate:
//! - [`config`]: settings layered defaults → file → environment → flags.
//! - [`token`]: the shared API token, redacted in logs, generated on first start.
//! - [`auth`]: the extractor that turns `Token` and `App-name` into a [`auth::Principal`].
//! - [`error`]: the one HTTP error type and its JSON body.
//! - [`state`]: the `Clone` context of cheap handles every handler receives.
//! - [`hub`]: the live head and what each application was told, sent and acknowledged.
//! - [`streams`]: caps on open event streams, overall and per application.
//! - [`limits`]: per-application request rate limits.
//! - [`store`]: the storage trait and its SQLite implementation.
//! - [`routes`]: the endpoints, the OpenAPI document and Swagger UI.
//! - [`clock`]: the injected time source.
//! - [`shutdown`]: SIGTERM/SIGINT handling.
//! - [`telemetry`]: logging set-up.
//!
//! Life of a server: [`Server::open`] creates the data dir, opens the store and
//! resolves the token; [`Server::run`] serves until the shutdown future
//! completes, then drains in-flight requests, writes back cursors and closes
//! the store.

pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod hub;
pub mod limits;
pub mod routes;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod streams;
pub mod telemetry;
pub mod token;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::hub::Hub;
use crate::state::AppState;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::token::{TokenError, TokenOrigin};

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data dir could not be created.
    #[error("cannot create the data dir {path}: {source}")]
    DataDir {
        /// The data dir.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The token could not be read or generated.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The store could not be opened or closed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Serving failed.
    #[error("serving HTTP failed: {0}")]
    Serve(std::io::Error),
}

/// An opened server, ready to [`run`](Server::run).
pub struct Server {
    state: AppState,
    store: Arc<dyn Store>,
    token_origin: TokenOrigin,
    cursor_flush_interval: Duration,
    shutdown_grace: Duration,
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
        create_data_dir(&config.data_dir)?;
        let (token, token_origin) = match config.api_token {
            Some(token) => (token, TokenOrigin::Environment),
            None => token::load_or_generate(&config.data_dir)?,
        };
        let data_dir = config.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&data_dir))
            .await
            .map_err(|e| StoreError::Backend(format!("opening the store panicked: {e}")))??;
        let store: Arc<dyn Store> = Arc::new(store);
        let snapshot = store.snapshot().await?;
        let state = AppState::new(state::Shared {
            hub: Arc::new(Hub::new(store.clone(), snapshot)),
            token: Arc::new(token),
            levels: config.levels,
            max_clock_skew: config.max_clock_skew,
            idempotency_window: config.idempotency_window,
            limits: limits::RateLimits::new(&config.rate_limits),
            max_wait: config.max_wait,
            poll_interval: config.poll_interval,
            heartbeat: config.heartbeat,
            streams: Arc::new(streams::StreamLimits::new(
                config.max_streams,
                config.max_streams_per_app,
            )),
            clock,
            shutdown: CancellationToken::new(),
        });
        Ok(Self {
            state,
            store,
            token_origin,
            cursor_flush_interval: config.cursor_flush_interval,
            shutdown_grace: config.shutdown_grace,
        })
    }

    /// Where the API token came from; [`TokenOrigin::Generated`] means it is
    /// new and should be shown to the operator once.
    #[must_use]
    pub fn token_origin(&self) -> &TokenOrigin {
        &self.token_origin
    }

    /// The API token in force (to print once when generated).
    #[must_use]
    pub fn token(&self) -> &token::ApiToken {
        &self.state.token
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
            state,
            store,
            cursor_flush_interval,
            shutdown_grace,
            ..
        } = self;
        let stopping = state.shutdown.clone();
        let hub = state.hub.clone();
        let flusher = tokio::spawn(housekeeping(
            state.clone(),
            cursor_flush_interval,
            stopping.clone(),
        ));

        let app = routes::service(state);
        // Stream events and poll answers are small writes on long-lived
        // connections: with Nagle's algorithm one could wait for the
        // client's delayed ACK (up to 40 ms) behind the previous one.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
            }
        });
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(stopping.clone().cancelled_owned())
            .into_future();
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
                        Ok(Ok(()))
                    }
                }
            }
        };
        stopping.cancel();
        let _ = flusher.await;
        let flushed = hub.flush_consumers().await;
        let closed = store.close().await;
        served
            .map_err(|e| ServerError::Serve(std::io::Error::other(e)))?
            .map_err(ServerError::Serve)?;
        let flushed = flushed?;
        closed?;
        tracing::info!(consumer_records_written = flushed, "stopped cleanly");
        Ok(())
    }
}

/// Until `stop` is cancelled: writes changed consumer records back every
/// `interval`, and once a minute lets rate limits forget idle applications.
async fn housekeeping(state: AppState, interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut minutes = tokio::time::interval(Duration::from_secs(60));
    minutes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = minutes.tick() => state.limits.forget_idle(),
            _ = ticks.tick() => {
                if let Err(e) = state.hub.flush_consumers().await {
                    tracing::warn!(error = %e, "writing consumer records back failed; will retry");
                }
            }
        }
    }
}

fn create_data_dir(path: &std::path::Path) -> Result<(), ServerError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let err = |source| ServerError::DataDir {
        path: path.to_owned(),
        source,
    };
    if path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(err)
}

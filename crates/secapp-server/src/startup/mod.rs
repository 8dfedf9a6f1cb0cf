//! The composition root: [`Server::open`] builds every part from the
//! configuration (grouped once, `settings.rs`), and [`Server::run`]
//! (`run.rs`) serves, runs the background tasks under one tracker, and
//! stops them all on one shutdown path.
//!
//! Life of a server: [`Server::open`] creates the data dir, opens the store,
//! resolves the shared token (if its compatibility mode is on) and, when no
//! application holds the admin role, registers `admin` and issues its first
//! token; [`Server::run`] serves until the shutdown future completes, then
//! drains in-flight requests, writes back cursors and closes the store.

mod run;
mod settings;

pub use settings::{Background, Connections, Settings};

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access::{Access, AccessError};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config, SharedTokenMode};
use crate::data_dir::{DataDir, DataDirError};
use crate::hub::{self, Hub};
use crate::leadership::Leadership;
use crate::state::{self, AppState};
use crate::store::{self, Store, StoreError};
use crate::token::{self, ApiToken, TokenError, TokenOrigin};
use crate::{alerts, limits, metrics, relay, routes, scrape, streams};

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
    /// The once-only duties' lease, for the relay and the consumer watch.
    leadership: Arc<Leadership>,
    shared_token: Option<(ApiToken, TokenOrigin)>,
    first_admin: Option<secapp_api::admin::IssuedToken>,
    settings: Settings,
    /// The unauthenticated metrics listener (`--metrics-listen`), if any.
    metrics_listener: Option<TcpListener>,
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
        let settings = Settings::from_config(&config)?;
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
        let sinks = Arc::new(relay::Sinks::new(&config));
        let shutdown = CancellationToken::new();
        let hub = Arc::new(Hub::new(
            hub::Parts {
                store: store.clone(),
                access: access.clone(),
                sinks: sinks.clone(),
                publishes: metrics.publish_counts(),
                clock: clock.clone(),
                shutdown: shutdown.clone(),
            },
            snapshot,
        ));
        let streams = Arc::new(streams::StreamLimits::new(
            settings.max_streams,
            settings.max_streams_per_app,
        ));
        let leadership = Arc::new(Leadership::new(store.clone(), config.leader_lease));
        let alerts = Arc::new(alerts::Alerts::new(alerts::Parts {
            store: store.clone(),
            access: access.clone(),
            seen: metrics.apps().clone(),
            streams: streams.clone(),
            sinks: sinks.clone(),
            leadership: leadership.clone(),
            clock: clock.clone(),
            default_allowance: settings.background.stale_after,
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
            dead_letters: Arc::new(relay::dead_letters::DeadLetters::new(
                store.clone(),
                sinks.clone(),
            )),
            sinks,
            requests: settings.requests,
            limits: limits::RateLimits::new(&settings.rate_limits),
            unreadable,
            streams,
            clock,
            shutdown,
        });
        Ok(Self {
            data_dir,
            state,
            store,
            leadership,
            shared_token,
            first_admin,
            settings,
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

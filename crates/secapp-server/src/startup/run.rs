//! Serving, and the one shutdown path: every background task runs under
//! one [`TaskTracker`] and stops when the server's shutdown token is
//! cancelled; the server then waits for them all, writes back what memory
//! holds, and closes the store.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Server, ServerError};
use crate::state::AppState;
use crate::{listener, metrics, relay, replicas, routes};

impl Server {
    /// Serves on `listener` until `shutdown` completes, then stops accepting,
    /// lets in-flight requests finish (up to the configured grace), stops
    /// the background tasks, writes back cursors and token last-used times
    /// and closes the store.
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
            leadership,
            settings,
            metrics_listener,
            ..
        } = self;
        let stopping = state.shutdown.clone();
        let grace = settings.shutdown_grace;
        let background = settings.background;
        let tasks = TaskTracker::new();
        tasks.spawn(housekeeping(
            state.clone(),
            background.cursor_flush_interval,
            stopping.clone(),
        ));
        tasks.spawn(replicas::follow(
            store.clone(),
            state.hub.clone(),
            state.access.clone(),
            stopping.clone(),
        ));
        tasks.spawn(leadership.clone().run(stopping.clone()));
        tasks.spawn(
            state
                .alerts
                .clone()
                .run(background.watch_interval, stopping.clone()),
        );
        // An attempt in flight when the server stops is cut short: its hold
        // ends and it is sent again after the restart (at least once).
        tasks.spawn(
            relay::run::Relay {
                store: store.clone(),
                leadership,
                sinks: state.sinks.clone(),
                clock: state.clock.clone(),
                metrics: state.metrics.clone(),
            }
            .run(background.watch_interval, stopping.clone()),
        );
        if let Some(listener) = metrics_listener {
            tasks.spawn(serve_metrics(
                listener,
                state.metrics.clone(),
                stopping.clone(),
                grace,
            ));
        }
        tasks.close();

        let limits = listener::ConnectionLimits {
            header_read_timeout: settings.connections.header_read_timeout,
            keep_alive_timeout: settings.connections.keep_alive_timeout,
            max_connections: settings
                .connections
                .max_connections
                .unwrap_or_else(|| listener::default_max_connections(listener::open_files_limit())),
        };
        tracing::info!(
            max_connections = limits.max_connections,
            header_read_timeout = ?limits.header_read_timeout,
            keep_alive_timeout = ?limits.keep_alive_timeout,
            "connection limits"
        );
        let (hub, access) = (state.hub.clone(), state.access.clone());
        let app = routes::service(state);
        let mut serving = tokio::spawn(listener::serve(listener, app, limits, stopping.clone()));
        let served = tokio::select! {
            result = &mut serving => result,
            () = shutdown => {
                stopping.cancel();
                match tokio::time::timeout(grace, &mut serving).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(?grace, "in-flight requests outlived the shutdown grace; closing them");
                        serving.abort();
                        Ok(())
                    }
                }
            }
        };
        stopping.cancel();
        tasks.wait().await;
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

/// The unauthenticated metrics listener until `stop` is cancelled; a scrape
/// still open then may take the grace, no longer.
async fn serve_metrics(
    listener: TcpListener,
    metrics: std::sync::Arc<metrics::Metrics>,
    stop: CancellationToken,
    grace: Duration,
) {
    let served = tokio::select! {
        served = metrics::serve(listener, metrics, stop.clone()) => served,
        () = async {
            stop.cancelled().await;
            tokio::time::sleep(grace).await;
        } => Ok(()),
    };
    if let Err(e) = served {
        tracing::warn!(error = %e, "the metrics listener failed");
    }
}

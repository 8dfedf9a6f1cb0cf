//! Accepting connections and holding each to account, so idle or slow
//! clients cannot take the server from the fleet.
//!
//! - At most [`ConnectionLimits::max_connections`] connections are open at
//!   once. At the cap the server stops accepting (new connections wait in
//!   the kernel's listen backlog) while every open connection keeps being
//!   served; it accepts again as soon as one closes. An `accept` that fails
//!   because the process is out of file descriptors backs off (10 ms doubling
//!   to 1 s) instead of spinning.
//! - Each connection is watched ([`conn`]): a request head must arrive within
//!   the header-read timeout (counted from the connection's start, or from
//!   the first byte of each later request), and a connection idle between
//!   requests is closed after the keep-alive timeout. A request being served
//!   (a held long poll, an open stream) is never idle. Request bodies have
//!   their own deadline, kept by the routes that read them.
//! - secapp speaks HTTP/1.1 (and 1.0); a load balancer in front may speak
//!   HTTP/2 to clients.
//! - hyper answers requests it cannot parse (a control byte in a header, too
//!   many or too large headers, a too-long URI) itself, with an empty body;
//!   [`refusal`] gives those answers the JSON error body every other refusal
//!   has.

mod conn;
mod refusal;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::http_limits::{MAX_HEAD_BYTES, MAX_HEADERS};

/// The application a listener serves: the routes inside their layers
/// ([`crate::routes::service`]), cloned for each connection.
pub trait Application:
    tower::Service<Request, Response = Response, Error = Infallible>
    + Clone
    + Send
    + Sync
    + Unpin
    + 'static
{
}

impl<S> Application for S where
    S: tower::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + Unpin
        + 'static
{
}

/// The limits every connection is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a request head may take to arrive.
    pub header_read_timeout: Duration,
    /// How long a connection may stay idle between requests.
    pub keep_alive_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
}

/// The open-file limit of this process, after raising its soft limit to the
/// hard one (as many servers do at start): the room connections and the
/// store share. `None` when the system does not say.
#[must_use]
pub fn open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return limit.maximum,
            Err(e) => tracing::debug!(error = %e, "cannot raise the open-file limit"),
        }
    }
    limit.current
}

/// The connection cap derived from the open-file limit: a tenth of it (at
/// least 64, at most 1,024 descriptors) is kept for the database, logs and
/// outgoing connections. Without a known limit: 10,000.
#[must_use]
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    let Some(limit) = open_files.and_then(|limit| usize::try_from(limit).ok()) else {
        return 10_000;
    };
    let reserve = (limit / 10).clamp(64, 1024);
    limit.saturating_sub(reserve).max(1)
}

/// Serves `service` on `listener` until `stop` is cancelled, then stops
/// accepting, asks every connection to finish what it is serving and waits
/// for them all. Dropping the returned future closes every connection.
pub async fn serve<S: Application>(
    listener: TcpListener,
    service: S,
    limits: ConnectionLimits,
    stop: CancellationToken,
) where
    S::Future: Send + Unpin + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Heads are timed by `conn`, which tells a slow head from an idle
        // keep-alive connection; hyper's own timer counts both alike.
        .header_read_timeout(None)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut backoff: Option<Duration> = None;
    // Said once each time the cap is reached, not for every wait at it.
    let mut at_cap = false;
    loop {
        while connections.try_join_next().is_some() {}
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                at_cap = false;
                permit
            }
            Err(_) => {
                if !at_cap {
                    at_cap = true;
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "at the connection cap: new connections wait until one closes"
                    );
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = stop.cancelled() => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        match accepted {
            Ok((tcp, remote)) => {
                backoff = None;
                let service = service.clone();
                let builder = builder.clone();
                let stop = stop.clone();
                connections.spawn(async move {
                    serve_connection(&builder, tcp, remote, service, limits, stop).await;
                    drop(permit);
                });
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                let delay = backoff.map_or(Duration::from_millis(10), |d| {
                    (d * 2).min(Duration::from_secs(1))
                });
                if backoff.is_none() {
                    tracing::error!(error = %e, "accepting a connection failed; retrying with backoff");
                }
                backoff = Some(delay);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<S: Application>(
    builder: &http1::Builder,
    tcp: TcpStream,
    remote: SocketAddr,
    service: S,
    limits: ConnectionLimits,
    stop: CancellationToken,
) where
    S::Future: Send + Unpin + 'static,
{
    // Stream events and poll answers are small writes on long-lived
    // connections: with Nagle's algorithm one could wait for the client's
    // delayed ACK (up to 40 ms) behind the previous one.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
    }
    let activity = Arc::new(conn::Activity::new());
    let io = TokioIo::new(conn::Watched::new(tcp, activity.clone()));
    let service = conn::PerConnection::new(service, activity.clone(), remote);
    let connection = builder.serve_connection(io, service);
    conn::drive(connection, &activity, limits, &stop).await;
}

/// Errors of one connection, not of the listener: the next accept may work.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_room_for_the_store_and_logs() {
        assert_eq!(default_max_connections(Some(20_000)), 18_976);
        assert_eq!(default_max_connections(Some(1_024)), 922);
        assert_eq!(default_max_connections(Some(1_048_576)), 1_047_552);
        assert_eq!(default_max_connections(Some(10)), 1);
        assert_eq!(default_max_connections(None), 10_000);
    }

    #[test]
    fn the_open_file_limit_is_read() {
        assert!(open_files_limit().is_some_and(|limit| limit > 0));
    }
}

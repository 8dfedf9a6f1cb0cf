//! One connection under watch: what it is doing, how long it may keep doing
//! it, and hyper's own refusals rewritten on their way out.
//!
//! [`Activity`] is shared by the socket wrapper [`Watched`] (which sees
//! bytes arrive), the per-connection service [`PerConnection`] (which sees
//! requests start and their answers end) and [`drive`] (which closes the
//! connection once its deadline passes). A connection is
//! - *busy* while a request is being served, from the call of the service
//!   until its answer's body ends: no deadline;
//! - *reading a head* from its start, and on a kept-alive connection from
//!   the first byte after an answer: the head must be complete within the
//!   header-read timeout;
//! - *idle* between an answer and the next byte: closed after the
//!   keep-alive timeout.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::ConnectionLimits;
use super::refusal::{self, Outgoing};

/// What one connection is doing, and since when. Times are milliseconds
/// since the connection was accepted; `head_started` holds that plus one,
/// so zero means "no head being read".
pub(super) struct Activity {
    accepted: Instant,
    /// Requests being served: called, their answer's body not yet ended.
    in_flight: AtomicUsize,
    /// When the connection last became idle (0: accepted).
    idle_since: AtomicU64,
    /// When the head being read began, plus one; 0 when none is.
    head_started: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Self {
        Self {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            // A new connection is reading its first head from the start.
            head_started: AtomicU64::new(1),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.accepted + std::time::Duration::from_millis(ms)
    }

    /// When the connection must be closed if nothing changes; `None` while
    /// it is serving a request.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_started.load(Ordering::Acquire);
        if head > 0 {
            return Some(self.at(head - 1) + limits.header_read_timeout);
        }
        Some(self.at(self.idle_since.load(Ordering::Acquire)) + limits.keep_alive_timeout)
    }

    /// Bytes arrived: starts the head timer when the connection was idle.
    fn on_read(&self, bytes: &[u8]) {
        if !bytes.is_empty()
            && self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == 0
        {
            self.head_started
                .store(self.elapsed_ms() + 1, Ordering::Release);
        }
    }

    /// Whether no request is being served: the only time hyper writes an
    /// answer of its own.
    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
    }

    fn end(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.elapsed_ms(), Ordering::Release);
        }
    }
}

/// Serves `connection` until it ends, its deadline passes (then it is
/// dropped, which closes the socket), or `stop` asks it to finish what it
/// is serving and close.
///
/// The timer is checked lazily: it stays armed at the earliest deadline seen
/// and, when it fires, is moved to the real one if that is later. Only a
/// deadline moving earlier (a head starting on an idle connection) resets it
/// at once. Every change of [`Activity`] happens while `connection` is
/// polled, in this task, so it is seen right after that poll: a request
/// costs no extra wake-up and, mostly, no timer operation.
pub(super) async fn drive<C, E>(
    connection: C,
    activity: &Activity,
    limits: ConnectionLimits,
    stop: &CancellationToken,
) where
    C: Future<Output = Result<(), E>> + GracefulShutdown,
    E: std::fmt::Display,
{
    let mut connection = std::pin::pin!(connection);
    let first = activity
        .deadline(&limits)
        .unwrap_or_else(|| Instant::now() + limits.keep_alive_timeout);
    let mut sleep = std::pin::pin!(tokio::time::sleep_until(first));
    let mut armed = Some(first);
    let mut stopped = std::pin::pin!(stop.cancelled());
    let mut stopping = false;
    std::future::poll_fn(|cx| {
        if !stopping && stopped.as_mut().poll(cx).is_ready() {
            stopping = true;
            connection.as_mut().shutdown_gracefully();
        }
        if let Poll::Ready(result) = connection.as_mut().poll(cx) {
            if let Err(e) = result {
                tracing::debug!(error = %e, "a connection ended with an error");
            }
            return Poll::Ready(());
        }
        loop {
            let deadline = activity.deadline(&limits);
            // While a request is served there is no deadline: look again
            // after a keep-alive timeout.
            let wanted = deadline.unwrap_or_else(|| Instant::now() + limits.keep_alive_timeout);
            if armed.is_none_or(|armed| wanted < armed) {
                sleep.as_mut().reset(wanted);
                armed = Some(wanted);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            armed = None;
            if deadline.is_some_and(|at| at <= Instant::now()) {
                tracing::debug!("closing a connection that sent no request in time");
                return Poll::Ready(());
            }
        }
    })
    .await;
}

/// A connection that can be asked to finish its requests and close.
pub(super) trait GracefulShutdown {
    /// Stops taking new requests; ends once those in flight are answered.
    fn shutdown_gracefully(self: Pin<&mut Self>);
}

impl<I, S> GracefulShutdown for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = TrackedBody>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    fn shutdown_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// The socket of one connection: reports arriving bytes to [`Activity`] and
/// swaps hyper's own refusals for JSON ones through [`Outgoing`].
pub(super) struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    outgoing: Outgoing,
}

impl<T> Watched<T> {
    pub(super) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            outgoing: Outgoing::default(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.activity.on_read(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.outgoing.poll_send(&mut this.inner, cx))?;
        if this.activity.idle() && refusal::may_end_a_head(buf) && this.outgoing.take_refusal(buf) {
            // Sent now if the socket takes it, else by the next flush.
            let _ = this.outgoing.poll_send(&mut this.inner, cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.outgoing.poll_send(&mut this.inner, cx))?;
        let last = bufs.iter().rev().find(|buf| !buf.is_empty());
        if this.activity.idle() && last.is_some_and(|buf| refusal::may_end_a_head(buf)) {
            let written: Vec<u8> = bufs.iter().flat_map(|buf| buf.iter().copied()).collect();
            if this.outgoing.take_refusal(&written) {
                let _ = this.outgoing.poll_send(&mut this.inner, cx)?;
                return Poll::Ready(Ok(written.len()));
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.outgoing.poll_send(&mut this.inner, cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.outgoing.poll_send(&mut this.inner, cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The application's service as one connection calls it: every request
/// carries the peer's address, and counts as in flight until its answer's
/// body ends.
#[derive(Clone)]
pub(super) struct PerConnection<S> {
    inner: S,
    activity: Arc<Activity>,
    remote: SocketAddr,
}

impl<S> PerConnection<S> {
    pub(super) fn new(inner: S, activity: Arc<Activity>, remote: SocketAddr) -> Self {
        Self {
            inner,
            activity,
            remote,
        }
    }
}

impl<S> hyper::service::Service<Request<hyper::body::Incoming>> for PerConnection<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Unpin
        + 'static,
    S::Future: Send + Unpin + 'static,
{
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Answer<tower::util::Oneshot<S, Request>>;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.remote));
        Answer {
            in_flight: Some(InFlight::begin(self.activity.clone())),
            future: self.inner.clone().oneshot(request),
        }
    }
}

/// The answer to one request, on its way: it counts as in flight from the
/// call until its body ends (or it is dropped unanswered).
pub(super) struct Answer<F> {
    future: F,
    in_flight: Option<InFlight>,
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Ok(response) = ready!(Pin::new(&mut this.future).poll(cx));
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(response.map(|body| TrackedBody {
            inner: body,
            in_flight,
        })))
    }
}

/// One request in flight; its end is counted when dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.begin();
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// An answer's body, ending its request's time in flight when it ends.
pub(super) struct TrackedBody {
    inner: Body,
    in_flight: Option<InFlight>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if frame.is_none() {
            this.in_flight = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

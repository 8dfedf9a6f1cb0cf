//! [`Watch`]: every new state as a `Stream`, over server-sent events or
//! long polls, through restarts, cut connections and changing replicas.
//!
//! The one rule that makes it exact: the watch remembers the id of the last
//! state it handed out and hands out only larger ones. A stream reconnects
//! with `Last-Event-ID` and a long poll asks `?after=` that id, so the server
//! sends the head only when it is not the one already seen; a replica that
//! is behind may still send an older head, which the rule drops. The head in
//! force when the server comes back is always sent, so the final head is
//! never missed; intermediate heads that came and went while the watch was
//! away are skipped, as a stream skips them for a slow reader.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{self, Stream, StreamExt};
use reqwest::header::{ACCEPT, HeaderValue};
use secapp_api::CurrentState;
use tokio::time::Instant;

use crate::sse::{self, Item};
use crate::{Client, Error, State, error};

/// How a watch hears of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A stream; long polls while streams are refused (`429`), then a
    /// stream again.
    Auto,
    /// Only streams: a refusal is waited out and retried.
    Stream,
    /// Only long polls.
    LongPoll,
}

/// Told of each retry: the error, and the pause before the next attempt.
pub type RetryHook = Arc<dyn Fn(&Error, Duration) + Send + Sync>;

/// How to watch: where to start, how to listen, how patiently to retry.
#[derive(Clone)]
pub struct WatchOptions {
    after: Option<i64>,
    transport: Transport,
    long_poll: Duration,
    stream_idle: Duration,
    max_backoff: Duration,
    fallback_for: Duration,
    on_retry: Option<RetryHook>,
}

impl std::fmt::Debug for WatchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchOptions")
            .field("after", &self.after)
            .field("transport", &self.transport)
            .field("long_poll", &self.long_poll)
            .field("stream_idle", &self.stream_idle)
            .field("max_backoff", &self.max_backoff)
            .field("fallback_for", &self.fallback_for)
            .field("on_retry", &self.on_retry.is_some())
            .finish()
    }
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            after: None,
            transport: Transport::Auto,
            long_poll: Duration::from_secs(30),
            stream_idle: Duration::from_secs(45),
            max_backoff: Duration::from_secs(30),
            fallback_for: Duration::from_secs(60),
            on_retry: None,
        }
    }
}

impl WatchOptions {
    /// Start after this id: the state it names is not handed out again
    /// (default: the current state is the first item).
    #[must_use]
    pub fn after(mut self, id: i64) -> Self {
        self.after = Some(id);
        self
    }

    /// How to listen (default [`Transport::Auto`]).
    #[must_use]
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// How long each long poll asks the server to hold (default 30 s; the
    /// server cuts it to its `--max-wait`).
    #[must_use]
    pub fn long_poll(mut self, wait: Duration) -> Self {
        self.long_poll = wait;
        self
    }

    /// How long a stream may stay silent before it is taken for dead and
    /// reopened (default 45 s: three of the server's default 15 s heartbeats).
    #[must_use]
    pub fn stream_idle(mut self, idle: Duration) -> Self {
        self.stream_idle = idle;
        self
    }

    /// The longest pause between retries (default 30 s). Pauses grow from
    /// half a second, doubling, each one a random time up to that bound
    /// ("full jitter"), and never shorter than the server's `Retry-After`.
    #[must_use]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// With [`Transport::Auto`], how long to long-poll after a stream is
    /// refused before trying a stream again (default 60 s, or the server's
    /// `Retry-After` if longer).
    #[must_use]
    pub fn fallback_for(mut self, time: Duration) -> Self {
        self.fallback_for = time;
        self
    }

    /// Calls `hook` at each retry with the error and the pause before the
    /// next attempt (to log it; the watch retries by itself).
    #[must_use]
    pub fn on_retry(mut self, hook: impl Fn(&Error, Duration) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(hook));
        self
    }
}

/// Every new state, oldest first, each once: a `Stream` of
/// `Result<State, Error>`.
///
/// Transient failures (transport, timeouts, `5xx`, `429`) are retried with
/// backoff and counted in [`retries`](Self::retries); an error that retrying
/// cannot cure (`401`, `403`, another `4xx`) is the last item.
pub struct Watch {
    inner: Pin<Box<dyn Stream<Item = Result<State, Error>> + Send>>,
    retries: Arc<AtomicU64>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("retries", &self.retries())
            .finish_non_exhaustive()
    }
}

impl Watch {
    pub(crate) fn new(client: Client, options: WatchOptions) -> Self {
        let retries = Arc::new(AtomicU64::new(0));
        let watcher = Watcher {
            client,
            last: options.after,
            options,
            open: None,
            failures: 0,
            streams_refused_until: None,
            retries: retries.clone(),
            ended: false,
        };
        let inner = stream::unfold(watcher, |mut watcher| async move {
            watcher.next().await.map(|item| (item, watcher))
        });
        Self {
            inner: Box::pin(inner),
            retries,
        }
    }

    /// How many failed attempts were retried so far.
    #[must_use]
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

impl Stream for Watch {
    type Item = Result<State, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// An open stream: its body and what has been read of it.
struct OpenStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    parser: sse::Parser,
    ready: std::collections::VecDeque<Item>,
}

/// What one attempt gave.
enum Heard {
    /// A state (perhaps one already handed out).
    State(State),
    /// Nothing new; ask again after this pause.
    Nothing(Duration),
}

struct Watcher {
    client: Client,
    options: WatchOptions,
    /// The id of the last state handed out.
    last: Option<i64>,
    open: Option<OpenStream>,
    /// Failures since the last success: the backoff's exponent.
    failures: u32,
    streams_refused_until: Option<Instant>,
    retries: Arc<AtomicU64>,
    ended: bool,
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<State, Error>> {
        if self.ended {
            return None;
        }
        loop {
            let streaming = self.streaming();
            let heard = if streaming {
                self.hear_stream().await
            } else {
                self.hear_long_poll().await
            };
            match heard {
                Ok(Heard::State(state)) => {
                    if self.last.is_none_or(|last| state.id > last) {
                        self.last = Some(state.id);
                        return Some(Ok(state));
                    }
                    // An older or repeated head, from a replica behind the
                    // others: a long poll would answer it again at once.
                    if !streaming {
                        tokio::time::sleep(jittered(Duration::from_millis(250))).await;
                    }
                }
                Ok(Heard::Nothing(pause)) => tokio::time::sleep(pause).await,
                Err(e) => {
                    self.open = None;
                    if let Some(e) = self.retry_or_end(e, streaming).await {
                        self.ended = true;
                        return Some(Err(e));
                    }
                }
            }
        }
    }

    fn streaming(&mut self) -> bool {
        match self.options.transport {
            Transport::Stream => true,
            Transport::LongPoll => false,
            Transport::Auto => match self.streams_refused_until {
                Some(until) if Instant::now() < until => false,
                _ => {
                    self.streams_refused_until = None;
                    true
                }
            },
        }
    }

    /// Waits before the next attempt, or answers the error that ends the
    /// watch.
    async fn retry_or_end(&mut self, e: Error, streaming: bool) -> Option<Error> {
        let told = match &e {
            Error::RateLimited { retry_after } => {
                if streaming && self.options.transport == Transport::Auto {
                    // Streams refused: long polls for a while, starting now.
                    let fallback = self.options.fallback_for.max(*retry_after);
                    self.streams_refused_until = Some(Instant::now() + fallback);
                    self.retried(&e, Duration::ZERO);
                    return None;
                }
                *retry_after
            }
            Error::Unavailable { retry_after, .. } => *retry_after,
            Error::Timeout | Error::Transport(_) => Duration::ZERO,
            Error::Unauthorized { .. } | Error::Forbidden { .. } | Error::Invalid { .. } => {
                return Some(e);
            }
        };
        let pause = backoff(self.failures, self.options.max_backoff).max(told);
        self.retried(&e, pause);
        self.failures = self.failures.saturating_add(1);
        tokio::time::sleep(pause).await;
        None
    }

    fn retried(&self, e: &Error, pause: Duration) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        if let Some(hook) = &self.options.on_retry {
            hook(e, pause);
        }
    }

    async fn hear_long_poll(&mut self) -> Result<Heard, Error> {
        let (state, poll_after) = self
            .client
            .wait_paced(self.last.unwrap_or(0), self.options.long_poll)
            .await?;
        self.failures = 0;
        Ok(match state {
            Some(state) => Heard::State(state),
            // secapp says 0 after a long poll. No pacing header means a
            // server that does not hold polls (the prototype): a second
            // between polls, not a loop as fast as it answers.
            None => Heard::Nothing(poll_after.unwrap_or(Duration::from_secs(1))),
        })
    }

    async fn hear_stream(&mut self) -> Result<Heard, Error> {
        let idle = self.options.stream_idle;
        if self.open.is_none() {
            let open = tokio::time::timeout(idle, connect(&self.client, self.last))
                .await
                .map_err(|_| Error::Timeout)??;
            self.open = Some(open);
        }
        let Some(open) = self.open.as_mut() else {
            return Err(Error::Transport("no open stream".to_owned()));
        };
        loop {
            while let Some(item) = open.ready.pop_front() {
                // Any bytes mean the connection is alive: the backoff starts over.
                self.failures = 0;
                if let Item::Event { data, .. } = item {
                    let state: CurrentState = serde_json::from_str(&data).map_err(|e| {
                        Error::Transport(format!("an event that is not a state: {e}"))
                    })?;
                    return Ok(Heard::State(state.into()));
                }
            }
            let chunk = tokio::time::timeout(idle, open.body.next())
                .await
                .map_err(|_| Error::Timeout)?;
            match chunk {
                Some(Ok(bytes)) => {
                    let items = open.parser.push(&bytes);
                    open.ready.extend(items);
                }
                Some(Err(e)) => return Err(Error::from_reqwest(e)),
                None => return Err(Error::Transport("the stream ended".to_owned())),
            }
        }
    }
}

/// Opens a stream that resumes after `last`.
async fn connect(client: &Client, last: Option<i64>) -> Result<OpenStream, Error> {
    let mut request = client
        .http
        .get(&client.stream)
        .header(ACCEPT, HeaderValue::from_static("text/event-stream"));
    if let Some(last) = last {
        request = request.header("Last-Event-ID", last);
    }
    let response = request.send().await.map_err(Error::from_reqwest)?;
    let response = error::check(response).await?;
    Ok(OpenStream {
        body: Box::pin(response.bytes_stream()),
        parser: sse::Parser::default(),
        ready: std::collections::VecDeque::new(),
    })
}

/// The pause before retry number `failures` + 1: a random time up to half
/// a second doubled `failures` times, bounded by `max`.
fn backoff(failures: u32, max: Duration) -> Duration {
    let ceiling = Duration::from_millis(500)
        .saturating_mul(2_u32.saturating_pow(failures.min(16)))
        .min(max);
    ceiling.mul_f64(fastrand::f64())
}

/// `base` give or take half.
fn jittered(base: Duration) -> Duration {
    base.mul_f64(0.5 + fastrand::f64())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::backoff;

    #[test]
    fn backoff_doubles_up_to_its_bound_and_stays_below_it() {
        let max = Duration::from_secs(30);
        for failures in 0..40 {
            let ceiling = Duration::from_millis(500)
                .saturating_mul(1 << failures.min(16))
                .min(max);
            for _ in 0..50 {
                assert!(backoff(failures, max) <= ceiling);
            }
        }
        // Full jitter: the pauses spread over the whole range, not near its top.
        let pauses: Vec<Duration> = (0..200).map(|_| backoff(10, max)).collect();
        assert!(pauses.iter().any(|p| *p < Duration::from_secs(10)));
        assert!(pauses.iter().any(|p| *p > Duration::from_secs(20)));
    }
}

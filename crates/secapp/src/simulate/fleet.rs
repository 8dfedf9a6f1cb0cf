//! The simulated fleet's members: producers publishing a random level at
//! random intervals, and consumers learning it in one of four ways.
//!
//! Plain, cursor and long-poll consumers make the raw calls and hand every
//! answer to the tally, so a server that repeats or regresses is caught. A
//! stream consumer uses the library's `watch()`, as a real service would:
//! its check is that the library's guarantees hold end to end.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use secapp_client::{Client, Publish, State, Transport, WatchOptions};
use tokio::sync::watch;

use super::tally::Tally;
use super::{Fault, Mode, Pace};

/// The shared tally.
pub type Shared = Arc<Mutex<Tally>>;

/// Runs `f` on the tally (a poisoned lock still holds the counts).
pub fn with<T>(tally: &Shared, f: impl FnOnce(&mut Tally) -> T) -> T {
    let mut guard = tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut guard)
}

/// Sleeps `pause`, or less if told to stop; answers whether to go on.
async fn pause_or_stop(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(pause) => !*stop.borrow(),
        _ = stop.changed() => false,
    }
}

/// A producer: waits an interval, publishes a random level, again, until
/// told to stop. A publish under way is finished, so the tally knows it.
pub async fn produce(
    client: Client,
    pace: Pace,
    max_level: i64,
    tally: Shared,
    mut stop: watch::Receiver<bool>,
) {
    while pause_or_stop(pace.publish(), &mut stop).await {
        let level = fastrand::i64(1..=max_level);
        let sent = Instant::now();
        match client.publish(&Publish::level(level)).await {
            Ok(id) => with(&tally, |t| t.published(id, level, sent)),
            Err(_) => with(&tally, |t| t.failed(1)),
        }
    }
}

/// One consumer, by index into the tally.
pub struct Consumer {
    pub index: usize,
    pub client: Client,
    pub mode: Mode,
    pub pace: Pace,
    /// The fault to play, if this consumer plays one.
    pub fault: Option<Fault>,
}

impl Consumer {
    /// Learns the level its way until told to stop.
    pub async fn run(self, tally: Shared, mut stop: watch::Receiver<bool>) {
        match self.mode {
            Mode::Stream => self.stream(&tally, &mut stop).await,
            Mode::Plain | Mode::Cursor | Mode::LongPoll => self.poll(&tally, &mut stop).await,
        }
    }

    async fn poll(self, tally: &Shared, stop: &mut watch::Receiver<bool>) {
        let mut faulted = false;
        loop {
            let pause = match self.mode {
                Mode::LongPoll => Duration::ZERO,
                _ => self.pace.poll(),
            };
            if !pause_or_stop(pause, stop).await {
                return;
            }
            let after = with(tally, |t| t.last(self.index)).unwrap_or(0);
            let asked = async {
                match self.mode {
                    Mode::Plain => self.client.poll().await,
                    Mode::Cursor => self.client.poll_after(after).await,
                    _ => self.client.wait(after, Duration::from_secs(30)).await,
                }
            };
            let answer = tokio::select! {
                answer = asked => answer,
                _ = stop.changed() => return,
            };
            match answer {
                Ok(Some(state)) => {
                    if !self.told(tally, &state, &mut faulted) {
                        return;
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    with(tally, |t| t.failed(1));
                    // Not a tight loop against a server that is down.
                    if !pause_or_stop(self.pace.retry(), stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// Watches through the library. An error that ends a watch (such as a
    /// new token another replica does not know yet) is counted, and the
    /// consumer starts a new watch after the last state it was told, as a
    /// service that must keep watching would.
    async fn stream(self, tally: &Shared, stop: &mut watch::Receiver<bool>) {
        let mut faulted = false;
        loop {
            let mut options = WatchOptions::default()
                .transport(Transport::Stream)
                .max_backoff(Duration::from_secs(2));
            if let Some(last) = with(tally, |t| t.last(self.index)) {
                options = options.after(last);
            }
            let mut changes = self.client.watch_with(options);
            let ended = loop {
                let next = tokio::select! {
                    next = changes.next() => next,
                    _ = stop.changed() => break true,
                };
                match next {
                    Some(Ok(state)) => {
                        if !self.told(tally, &state, &mut faulted) {
                            break true;
                        }
                    }
                    Some(Err(_)) | None => {
                        with(tally, |t| t.failed(1));
                        break false;
                    }
                }
            };
            let retries = changes.retries();
            with(tally, |t| t.failed(retries));
            if ended || !pause_or_stop(self.pace.retry(), stop).await {
                return;
            }
        }
    }

    /// Hands a state to the tally, playing the fault if there is one;
    /// answers whether to go on.
    fn told(&self, tally: &Shared, state: &State, faulted: &mut bool) -> bool {
        let at = Instant::now();
        with(tally, |t| t.delivered(self.index, state, at));
        match self.fault {
            Some(Fault::Repeat) if !*faulted => {
                *faulted = true;
                with(tally, |t| t.delivered(self.index, state, at));
                true
            }
            Some(Fault::Stall) => false,
            _ => true,
        }
    }
}

//! The background task that delivers the outbox: one loop per sink, on the
//! server holding the once-only duties. Each round claims the sink's
//! oldest pending deliveries (in event order, none while the oldest waits
//! for its retry), hands them to the sink, and records the outcome of each
//! in one transaction:
//! - those the sink confirmed, from the start of the batch: delivered;
//! - the first it did not: retried after an exponential backoff (1 s, 2 s,
//!   4 s, … at most 5 minutes apart, each wait scaled by a random factor
//!   between 0.5 and 1 so receivers coming back are not hit by every sender
//!   at once), or, once the sink's `retry_for` has passed since the event,
//!   a dead letter; the sink then moves on to the next;
//! - the rest: put back untried, behind it.
//!
//! The relay works under the duties' lease ([`Leadership`]): the outbox
//! refuses claims and records under a lease another server has since
//! taken, and every sink checks the lease still holds before each message,
//! so a server paused past its term sends nothing once it resumes.
//!
//! So a sink receives its events in the order they were committed, each at
//! least once: a batch cut short (a crash, a lost connection, a send that
//! timed out) is sent again from its first unconfirmed event, which a
//! receiver may then see twice (deduplicate by the CloudEvents `id`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use super::{Configured, Sent, Sinks, cloudevent};
use crate::clock::Clock;
use crate::leadership::Leadership;
use crate::metrics::{Metrics, RelayOutcome};
use crate::store::{Delivery, DeliveryOutcome, Lease, Store};

/// The first retry's wait, before jitter.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts, before jitter.
const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// Added to a sink's timeout to hold a claimed batch: no other relay sends
/// it meanwhile, and if this one stops it is due again when the hold ends.
const HOLD_MARGIN: Duration = Duration::from_secs(10);

/// What the relay needs.
pub struct Relay {
    /// Where the outbox is.
    pub store: Arc<dyn Store>,
    /// Whether this server holds the once-only duties, and under which epoch.
    pub leadership: Arc<Leadership>,
    /// Where to send.
    pub sinks: Arc<Sinks>,
    /// The time source: due times use it.
    pub clock: Arc<dyn Clock>,
    /// Counts outcomes.
    pub metrics: Arc<Metrics>,
}

/// How a round ended.
enum Round {
    /// Nothing was due.
    Idle,
    /// A full batch went out: there may be more.
    More,
    /// A delivery failed: try again after this long (or when woken).
    Failed(Duration),
}

impl Relay {
    /// Delivers until `stop` is cancelled, every `interval` and whenever
    /// woken, each sink on its own.
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        let relay = Arc::new(self);
        let loops = relay.sinks.all().iter().map(|sink| {
            let (relay, sink, stop) = (relay.clone(), sink.clone(), stop.clone());
            async move { relay.serve(&sink, interval, stop).await }
        });
        futures_util::future::join_all(loops).await;
    }

    async fn serve(&self, sink: &Configured, interval: Duration, stop: CancellationToken) {
        let mut bell = self.sinks.bell();
        loop {
            // Sending from the server holding the once-only duties keeps
            // each sink's order in one place; the outbox refuses claims and
            // records made under a lease another server has since taken.
            let mut wait = interval;
            if let Some(lease) = self.leadership.lease().await {
                let round = tokio::select! {
                    () = stop.cancelled() => return,
                    round = self.round(sink, &lease) => round,
                };
                match round {
                    Round::More => continue,
                    Round::Idle => {}
                    Round::Failed(after) => wait = wait.min(after),
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                _ = bell.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn round(&self, sink: &Configured, lease: &Lease) -> Round {
        let now = self.clock.now();
        let hold_until = now + to_delta(sink.timeout + HOLD_MARGIN);
        let due = match self
            .store
            .claim_deliveries(lease, &sink.name, now, hold_until, sink.batch)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(sink = %sink.name, error = %e, "cannot read the outbox; will retry");
                return Round::Idle;
            }
        };
        if due.is_empty() {
            return Round::Idle;
        }
        let claimed = due.len();
        let outgoing: Vec<_> = due.into_iter().map(cloudevent::outgoing).collect();
        let sending = sink.sink.send(&outgoing, lease);
        let sent = match tokio::time::timeout(sink.timeout, sending).await {
            Ok(sent) => sent,
            Err(_) => Sent::failed_after(
                0,
                format!(
                    "not confirmed within {}",
                    humantime::format_duration(sink.timeout)
                ),
            ),
        };
        let at = self.clock.now();
        let (finished, retry_after) = self.outcomes(sink, outgoing, &sent, at);
        if let Err(e) = self.store.finish_deliveries(lease, finished, at).await {
            // Their hold ends and they are sent again: at least once.
            tracing::warn!(sink = %sink.name, error = %e, "cannot record deliveries");
            return Round::Idle;
        }
        match retry_after {
            Some(after) => Round::Failed(after),
            None if sent.confirmed < claimed => {
                tracing::info!(sink = %sink.name, "the once-only duties' lease ended mid-batch; sent no more");
                Round::Idle
            }
            None if claimed == sink.batch as usize => Round::More,
            None => Round::Idle,
        }
    }

    /// Each delivery's outcome after `sent`, counted and logged; and, when
    /// one failed, how long until its retry.
    fn outcomes(
        &self,
        sink: &Configured,
        outgoing: Vec<super::Outgoing>,
        sent: &Sent,
        at: DateTime<Utc>,
    ) -> (Vec<(Delivery, DeliveryOutcome)>, Option<Duration>) {
        let mut finished = Vec::with_capacity(outgoing.len());
        let mut retry_after = None;
        let confirmed = sent.confirmed.min(outgoing.len());
        let kind = sink.kind.as_str();
        self.metrics
            .relayed(&sink.name, kind, RelayOutcome::Delivered, confirmed as u64);
        for (index, event) in outgoing.into_iter().enumerate() {
            let outcome = match (&sent.error, index.cmp(&confirmed)) {
                (_, std::cmp::Ordering::Less) => DeliveryOutcome::Delivered,
                (Some(error), std::cmp::Ordering::Equal) => {
                    let delivery = &event.delivery;
                    let wait = backoff(delivery.attempts + 1, fastrand::f64());
                    let next_at = at + to_delta(wait);
                    if next_at > delivery.occurred_at + to_delta(sink.retry_for) {
                        tracing::error!(sink = %sink.name, event = %event.id, %error, "an event is a dead letter: its retry period is over");
                        self.metrics
                            .relayed(&sink.name, kind, RelayOutcome::Dead, 1);
                        DeliveryOutcome::Dead {
                            error: error.clone(),
                        }
                    } else {
                        tracing::warn!(sink = %sink.name, event = %event.id, %error, next_at = %next_at, "a delivery failed; will retry");
                        self.metrics
                            .relayed(&sink.name, kind, RelayOutcome::Failed, 1);
                        retry_after = Some(wait);
                        DeliveryOutcome::Retry {
                            next_at,
                            error: error.clone(),
                        }
                    }
                }
                _ => DeliveryOutcome::Unsent,
            };
            finished.push((event.delivery, outcome));
        }
        (finished, retry_after)
    }
}

/// The wait before attempt `attempt + 1` after `attempt` failed ones:
/// 1 s doubled each time, at most 5 minutes, scaled by `0.5 + jitter / 2`
/// (`jitter` in 0..1).
fn backoff(attempt: u32, jitter: f64) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(20));
    doubled
        .min(MAX_BACKOFF)
        .mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

fn to_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_five_minutes_and_jitter_only_shortens_it() {
        assert_eq!(backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(5, 1.0), Duration::from_secs(16));
        assert_eq!(backoff(9, 1.0), Duration::from_secs(256));
        assert_eq!(backoff(10, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(1_000, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(3, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(10, 0.0), MAX_BACKOFF / 2);
    }
}

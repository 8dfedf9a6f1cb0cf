//! The background task that delivers the outbox: every `watch_interval`,
//! or at once when woken, it claims each webhook's due deliveries, posts
//! them and records how each attempt ended.
//!
//! A failed attempt is retried after an exponential backoff (1 s, 2 s,
//! 4 s, … at most 5 minutes apart), each wait scaled by a random factor
//! between 0.5 and 1 so receivers coming back are not hit by every sender
//! at once. Once `webhook_retry_for` has passed since the event, a failure
//! makes it a dead letter: kept in the store with its last error, counted
//! in `secapp_webhook_deliveries_total{outcome="dead"}`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use super::{EVENT_ID_HEADER, SIGNATURE_HEADER, Webhook, Webhooks};
use crate::clock::Clock;
use crate::metrics::{Metrics, WebhookOutcome};
use crate::store::{Delivery, DeliveryOutcome, Store};

/// Deliveries claimed at once per webhook, then sent one after another.
const BATCH: u32 = 8;
/// The first retry's wait, before jitter.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts, before jitter.
const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// What the sender needs.
pub struct Sender {
    /// Where the outbox is.
    pub store: Arc<dyn Store>,
    /// Where to send.
    pub webhooks: Arc<Webhooks>,
    /// The time source: due times and signatures use it.
    pub clock: Arc<dyn Clock>,
    /// Counts outcomes.
    pub metrics: Arc<Metrics>,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// How long after an event it is still retried.
    pub retry_for: Duration,
}

impl Sender {
    /// Delivers until `stop` is cancelled, every `interval` and whenever woken.
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        if self.webhooks.all().is_empty() {
            return;
        }
        let client = match reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("secapp/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the webhook client; no webhook will be sent");
                return;
            }
        };
        loop {
            // Claims are safe from any number of senders; sending from the
            // server holding the once-only duties keeps them in one place.
            let leading = self.store.lead().await.unwrap_or(false);
            let rounds = self
                .webhooks
                .all()
                .iter()
                .map(|hook| self.deliver_due(&client, hook));
            if leading {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = futures_util::future::join_all(rounds) => {}
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.webhooks.woken() => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Sends every delivery of `hook` that is due now.
    async fn deliver_due(&self, client: &reqwest::Client, hook: &Webhook) {
        loop {
            let now = self.clock.now();
            // Held for longer than the whole batch can take, so no other
            // sender tries one meanwhile; if this one stops, they are due
            // again when the hold ends.
            let hold_until = now + to_delta(self.timeout * (BATCH + 1) + Duration::from_secs(30));
            let due = match self
                .store
                .claim_deliveries(&hook.name, now, hold_until, BATCH)
                .await
            {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(webhook = %hook.name, error = %e, "cannot read the outbox; will retry");
                    return;
                }
            };
            let claimed = due.len();
            for delivery in due {
                let result = self.attempt(client, hook, &delivery).await;
                let at = self.clock.now();
                let outcome = self.outcome(&delivery, result, at);
                let counted = match &outcome {
                    DeliveryOutcome::Delivered => WebhookOutcome::Delivered,
                    DeliveryOutcome::Retry { error, next_at } => {
                        tracing::warn!(webhook = %hook.name, event = delivery.event_id, %error, next_at = %next_at, "a webhook attempt failed; will retry");
                        WebhookOutcome::Failed
                    }
                    DeliveryOutcome::Dead { error } => {
                        tracing::error!(webhook = %hook.name, event = delivery.event_id, %error, "a webhook event is a dead letter: its retry period is over");
                        WebhookOutcome::Dead
                    }
                };
                self.metrics.webhook(counted);
                if let Err(e) = self.store.finish_delivery(&delivery, outcome, at).await {
                    // Its hold ends and it is sent again: at least once.
                    tracing::warn!(webhook = %hook.name, event = delivery.event_id, error = %e, "cannot record a webhook attempt");
                }
            }
            if claimed < BATCH as usize {
                return;
            }
        }
    }

    /// Posts one event; `Err` says why it did not count as delivered.
    async fn attempt(
        &self,
        client: &reqwest::Client,
        hook: &Webhook,
        delivery: &Delivery,
    ) -> Result<(), String> {
        let body = super::body(delivery);
        let signature = hook.signature(self.clock.now().timestamp(), &body);
        let response = client
            .post(hook.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_ID_HEADER, super::event_id(delivery.event_id))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!(
                        "no answer within {}",
                        humantime::format_duration(self.timeout)
                    )
                } else {
                    format!("cannot reach the receiver: {e}")
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }

    fn outcome(
        &self,
        delivery: &Delivery,
        result: Result<(), String>,
        at: DateTime<Utc>,
    ) -> DeliveryOutcome {
        let Err(error) = result else {
            return DeliveryOutcome::Delivered;
        };
        let next_at = at + to_delta(backoff(delivery.attempts + 1, fastrand::f64()));
        let gives_up_at = delivery.occurred_at + to_delta(self.retry_for);
        if next_at > gives_up_at {
            DeliveryOutcome::Dead { error }
        } else {
            DeliveryOutcome::Retry { next_at, error }
        }
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

//! Outgoing webhooks: which are configured and what each wants, how an
//! event's body is built and signed, and ([`sender`]) the background task
//! that delivers the outbox.
//!
//! Events are written to the store's outbox in the transaction of their
//! cause (a publish that changes the level, a consumer's alert state
//! changing), one delivery per subscribed webhook, so a crash loses none.
//! The sender claims due deliveries, `POST`s them and records the outcome:
//! at least once, retried with exponential backoff and jitter, until
//! `webhook_retry_for` after the event, then a dead letter.
//!
//! Each request is signed as Stripe signs its webhooks:
//! `Secapp-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
//! keyed with the webhook's secret; a receiver recomputes it over the raw
//! body and refuses a `t` too far from its own clock (a replay).

pub mod sender;

use std::collections::HashSet;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::config::WebhookConfig;
use crate::store::{Delivery, EventKind};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Secapp-Signature";
/// The header carrying the event id (also in the body), for receivers
/// that deduplicate before parsing.
pub const EVENT_ID_HEADER: &str = "Secapp-Event-Id";

/// One configured webhook.
#[derive(Clone)]
pub struct Webhook {
    /// Its name, under which its deliveries are kept.
    pub name: String,
    /// Where events are posted.
    pub url: reqwest::Url,
    secret: String,
    events: HashSet<EventKind>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// The `Secapp-Signature` value of `body` sent at unix time `t`.
    #[must_use]
    pub fn signature(&self, t: i64, body: &[u8]) -> String {
        sign(self.secret.as_bytes(), t, body)
    }
}

/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with secret>`.
#[must_use]
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        unreachable!("HMAC-SHA256 accepts every key length")
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// The body of an event as posted: `id`, `type`, `time` and `data`. Built
/// from the stored columns, so every attempt sends the same bytes.
#[must_use]
pub fn body(delivery: &Delivery) -> Vec<u8> {
    let data: serde_json::Value =
        serde_json::from_str(&delivery.data).unwrap_or(serde_json::Value::Null);
    let event = serde_json::json!({
        "id": event_id(delivery.event_id),
        "type": delivery.kind.as_str(),
        "time": secapp_domain::shown(delivery.occurred_at),
        "data": data,
    });
    serde_json::to_vec(&event).unwrap_or_default()
}

/// An event's public id.
#[must_use]
pub fn event_id(id: i64) -> String {
    format!("evt_{id}")
}

/// Every configured webhook, and a bell that wakes the sender when an
/// event has just been written.
#[derive(Debug, Default)]
pub struct Webhooks {
    hooks: Vec<Webhook>,
    wake: Notify,
}

impl Webhooks {
    /// The webhooks of a checked configuration (see `Config::check`); a
    /// table that does not parse is left out.
    #[must_use]
    pub fn new(configured: &[WebhookConfig]) -> Self {
        let hooks = configured
            .iter()
            .filter_map(|hook| {
                Some(Webhook {
                    name: hook.name.clone(),
                    url: reqwest::Url::parse(&hook.url).ok()?,
                    secret: hook.secret.clone(),
                    events: hook
                        .events
                        .iter()
                        .filter_map(|event| EventKind::parse(event))
                        .collect(),
                })
            })
            .collect();
        Self {
            hooks,
            wake: Notify::new(),
        }
    }

    /// The webhooks.
    #[must_use]
    pub fn all(&self) -> &[Webhook] {
        &self.hooks
    }

    /// The names of the webhooks that want `kind`.
    #[must_use]
    pub fn subscribed(&self, kind: EventKind) -> Vec<String> {
        self.hooks
            .iter()
            .filter(|hook| hook.events.contains(&kind))
            .map(|hook| hook.name.clone())
            .collect()
    }

    /// Tells the sender that events are waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until [`wake`](Self::wake) is called (or was, since the last wait).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_time_a_dot_and_the_body() {
        // RFC 4231 test case 2 is HMAC-SHA256("Jefe", "what do ya want for
        // nothing?"); here the message is "<t>.<body>" split as such.
        let signed = sign(b"Jefe", 0, b"");
        assert!(signed.starts_with("t=0,v1="), "{signed}");
        assert_eq!(signed.len(), "t=0,v1=".len() + 64);
        let rfc = {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
            mac.update(b"what do ya want for nothing?");
            mac.finalize().into_bytes()
        };
        let hex: String = rfc.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(sign(b"Jefe", 1, b"{}"), sign(b"Jefe", 2, b"{}"));
        assert_ne!(sign(b"Jefe", 1, b"{}"), sign(b"other", 1, b"{}"));
    }

    #[test]
    fn only_subscribers_of_a_kind_are_named() {
        let hook = |name: &str, events: &[&str]| WebhookConfig {
            name: name.into(),
            url: "http://127.0.0.1:9/hook".into(),
            secret: "0123456789abcdef".into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
        };
        let hooks = Webhooks::new(&[
            hook("ops", &["consumer_stale", "consumer_recovered"]),
            hook("all", &["level_changed", "consumer_stale"]),
        ]);
        assert_eq!(hooks.subscribed(EventKind::LevelChanged), ["all"]);
        assert_eq!(hooks.subscribed(EventKind::ConsumerStale), ["ops", "all"]);
        assert_eq!(hooks.subscribed(EventKind::ConsumerRecovered), ["ops"]);
    }
}

//! Webhooks: each event `POST`ed as its CloudEvent, one after another,
//! signed twice with the webhook's secret:
//! - `Secapp-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
//!   as Stripe signs its webhooks;
//! - Standard Webhooks: `webhook-id` (the event's id), `webhook-timestamp`
//!   (`t`) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//!   "<id>.<t>.<body>">`. A secret written `whsec_<base64>` is keyed with
//!   its decoded bytes, as Standard Webhooks libraries read it; any other
//!   with its own bytes.
//!
//! A receiver recomputes either over the raw body and refuses a `t` too far
//! from its own clock (a replay). Any 2xx answer is delivered.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::{Outgoing, Sent, Sink, cloudevent};
use crate::config::{SinkConfig, SinkKind, WebhookConfig, shown_url};
use crate::store::Lease;

/// The header carrying the Stripe-style signature.
pub const SIGNATURE_HEADER: &str = "Secapp-Signature";
/// The header carrying the event id (also in the body), for receivers
/// that deduplicate before parsing.
pub const EVENT_ID_HEADER: &str = "Secapp-Event-Id";
/// Deliveries claimed at once per webhook, then posted one after another.
pub const BATCH: u32 = 8;

/// One webhook.
pub struct WebhookSink {
    url: reqwest::Url,
    secret: String,
    client: reqwest::Client,
}

/// A `[[webhooks]]` table as the `[[sinks]]` table of kind `webhook` it
/// stands for.
pub(super) fn as_sink(hook: &WebhookConfig) -> SinkConfig {
    SinkConfig {
        name: hook.name.clone(),
        kind: SinkKind::Webhook,
        url: hook.url.clone(),
        events: hook.events.clone(),
        exchange: None,
        routing_key: None,
        task: None,
        queue: None,
        topic: None,
        subject: None,
        stream: None,
        secret: Some(hook.secret.clone()),
        timeout: None,
        retry_for: None,
    }
}

impl WebhookSink {
    /// Posts to `url`, signing with `secret`, each attempt cut at `timeout`.
    /// `None` when no HTTP client can be built (no TLS roots).
    pub fn new(url: reqwest::Url, secret: String, timeout: Duration) -> Option<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("secapp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot build the webhook client"))
            .ok()?;
        Some(Self {
            url,
            secret,
            client,
        })
    }

    /// Posts one event; `Err` says why it did not count as delivered.
    async fn post(&self, event: &Outgoing) -> Result<(), String> {
        // The wall clock, not the server's injected one: the receiver holds
        // `t` against its own wall clock to refuse replays.
        let t = chrono::Utc::now().timestamp();
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, cloudevent::CONTENT_TYPE)
            .header(
                SIGNATURE_HEADER,
                sign(self.secret.as_bytes(), t, &event.body),
            )
            .header(EVENT_ID_HEADER, &event.id)
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", t.to_string())
            .header(
                "webhook-signature",
                standard_signature(&self.secret, &event.id, t, &event.body),
            )
            .body(event.body.clone())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "no answer in time".to_owned()
                } else {
                    format!("cannot reach the receiver: {}", without_url(&e))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }
}

#[async_trait]
impl Sink for WebhookSink {
    async fn send(&self, batch: &[Outgoing], lease: &Lease) -> Sent {
        for (sent, event) in batch.iter().enumerate() {
            if !lease.holds() {
                return Sent::stopped(sent);
            }
            if let Err(error) = self.post(event).await {
                return Sent::failed_after(sent, error);
            }
        }
        Sent::all(batch.len())
    }
}

/// A reqwest error without the URL it names (which may carry a secret).
fn without_url(error: &reqwest::Error) -> String {
    let mut shown = error.to_string();
    if let Some(url) = error.url() {
        shown = shown.replace(url.as_str(), &shown_url(url.as_str()));
    }
    shown
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC-SHA256 accepts every key length")
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with secret>`.
#[must_use]
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let digest = hmac(secret, &[t.to_string().as_bytes(), b".", body]);
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// The Standard Webhooks `webhook-signature`: `v1,<base64 HMAC-SHA256 of
/// "<id>.<t>.<body>">`.
#[must_use]
pub fn standard_signature(secret: &str, id: &str, t: i64, body: &[u8]) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| engine.decode(encoded).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let digest = hmac(
        &key,
        &[id.as_bytes(), b".", t.to_string().as_bytes(), b".", body],
    );
    format!("v1,{}", engine.encode(digest))
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
        let rfc: String = hmac(b"Jefe", &[b"what do ya want for nothing?"])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            rfc,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(sign(b"Jefe", 1, b"{}"), sign(b"Jefe", 2, b"{}"));
        assert_ne!(sign(b"Jefe", 1, b"{}"), sign(b"other", 1, b"{}"));
    }

    #[test]
    fn a_standard_webhooks_secret_is_keyed_with_its_decoded_bytes() {
        let engine = base64::engine::general_purpose::STANDARD;
        let raw = b"0123456789abcdef0123";
        let encoded = format!("whsec_{}", engine.encode(raw));
        let expected = format!(
            "v1,{}",
            engine.encode(hmac(raw, &[b"17", b".", b"1700000000", b".", b"{}"]))
        );
        assert_eq!(
            standard_signature(&encoded, "17", 1_700_000_000, b"{}"),
            expected
        );
        // Not in that form: its own bytes.
        assert_eq!(
            standard_signature("0123456789abcdef0123", "17", 1_700_000_000, b"{}"),
            expected
        );
    }
}

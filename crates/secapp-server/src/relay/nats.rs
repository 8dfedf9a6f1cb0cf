//! NATS JetStream with `async-nats`: each event published to
//! `<subject>.<event>` (`secapp.state_changed`, `secapp.consumer_stale`, …;
//! `subject` defaults to `secapp`) with `Nats-Msg-Id` set to the event's
//! id, so JetStream drops a redelivered one inside its duplicate window
//! (2 minutes by default). The stream (default `SECAPP`, capturing
//! `<subject>.>`) is created when absent, keeping every message under the
//! server's default limits.
//!
//! A subscriber that wants the current level at once asks a consumer with
//! deliver policy "last per subject" on `<subject>.state_changed` (or
//! whichever state event the sink carries): the newest message of that
//! subject is the current state.
//!
//! A batch is published without waiting, then JetStream's acknowledgements
//! are awaited in order.

use std::time::Duration;

use async_nats::jetstream;
use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{Outgoing, Sent, Sink, pipelined};
use crate::config::{SinkConfig, shown_url};
use crate::store::Lease;

/// An `[[sinks]]` table of kind `nats`.
pub struct NatsSink {
    url: String,
    subject: String,
    stream: String,
    context: Mutex<Option<jetstream::Context>>,
}

impl NatsSink {
    /// The sink a checked table describes.
    #[must_use]
    pub fn new(config: &SinkConfig) -> Self {
        Self {
            url: config.url.clone(),
            subject: config.subject.clone().unwrap_or_else(|| "secapp".into()),
            stream: config.stream.clone().unwrap_or_else(|| "SECAPP".into()),
            context: Mutex::new(None),
        }
    }

    /// The JetStream context, connecting and creating the stream first
    /// when there is none. The client reconnects by itself once connected.
    async fn context(&self) -> Result<jetstream::Context, String> {
        let mut context = self.context.lock().await;
        if let Some(context) = context.as_ref() {
            return Ok(context.clone());
        }
        let shown = shown_url(&self.url);
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(self.url.as_str())
            .await
            .map_err(|e| format!("cannot connect to {shown}: {e}"))?;
        let js = jetstream::new(client);
        js.get_or_create_stream(jetstream::stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.subject)],
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot create the stream `{}` on {shown}: {e}", self.stream))?;
        tracing::info!(broker = %shown, stream = %self.stream, "connected to NATS JetStream");
        *context = Some(js.clone());
        Ok(js)
    }
}

#[async_trait]
impl Sink for NatsSink {
    async fn send(&self, batch: &[Outgoing], lease: &Lease) -> Sent {
        let js = match self.context().await {
            Ok(js) => js,
            Err(error) => return Sent::failed_after(0, error),
        };
        pipelined(batch, lease, |event| {
            let js = js.clone();
            async move {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", event.id.as_str());
                headers.insert("Content-Type", super::cloudevent::CONTENT_TYPE);
                let subject = format!("{}.{}", self.subject, event.delivery.kind.as_str());
                let ack = js
                    .publish_with_headers(subject, headers, event.body.clone().into())
                    .await
                    .map_err(|e| format!("cannot publish: {e}"))?;
                Ok(async move {
                    ack.await
                        .map(drop)
                        .map_err(|e| format!("no acknowledgement: {e}"))
                })
            }
        })
        .await
    }
}

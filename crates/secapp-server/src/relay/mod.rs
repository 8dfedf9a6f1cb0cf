//! The relay: every event the outbox holds, delivered to each sink that
//! wants it — webhooks and message brokers alike, through one machinery.
//!
//! Events are written to the outbox in the transaction of their cause (a
//! publish, a consumer's alert state changing), one delivery per sink that
//! wants the event's kind, so a crash loses none. [`run::Relay`] then, per
//! sink and on the server holding the once-only duties, claims the sink's
//! oldest pending deliveries in event order, hands them to the sink, and
//! records how each ended: at least once, in order, retried with
//! exponential backoff and jitter until the sink's `retry_for` after the
//! event, then a dead letter (kept, counted, listed by the admin API).
//!
//! Every sink gets the same message: the event as a CloudEvents 1.0 JSON
//! document ([`cloudevent`]). The kinds:
//! - [`webhook`]: an HTTP `POST`, signed (`Secapp-Signature` and Standard
//!   Webhooks' `webhook-signature`);
//! - [`amqp`]: a persistent message to an AMQP 0-9-1 exchange (RabbitMQ),
//!   each confirmed by the broker;
//! - [`celery`]: a Celery task message (protocol 2) that a stock `celery
//!   worker` executes, over the same AMQP connection code;
//! - [`kafka`]: a Kafka record from an idempotent producer, keyed by the
//!   scope it is about;
//! - [`nats`]: a NATS JetStream message, deduplicated by its id.

pub mod amqp;
pub mod celery;
pub mod cloudevent;
pub mod dead_letters;
pub mod kafka;
pub mod nats;
pub mod run;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::config::{Config, SinkConfig, SinkKind, shown_url};
use crate::store::{Delivery, EventKind, Lease, Subscribers};

/// One event as every sink sends it, built once per attempt from the
/// stored columns, so every attempt sends the same bytes.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The delivery it is.
    pub delivery: Delivery,
    /// Its CloudEvents `id`: receivers deduplicate by it.
    pub id: String,
    /// Its `data`, parsed from the stored text.
    pub data: serde_json::Value,
    /// The CloudEvents JSON document.
    pub body: Vec<u8>,
}

/// How a send ended: how many of the batch, from its start, the receiver
/// confirmed, and why the next one was not when that is not all of them
/// (no reason: the sink stopped because the duties' lease ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Confirmed, from the start of the batch.
    pub confirmed: usize,
    /// Why the one after those failed (`None`: all confirmed, or the lease
    /// ended before the rest were sent).
    pub error: Option<String>,
}

impl Sent {
    /// All `n` confirmed.
    #[must_use]
    pub fn all(n: usize) -> Self {
        Self {
            confirmed: n,
            error: None,
        }
    }

    /// `confirmed` of them, then nothing more: the lease ended, and a
    /// server that may no longer hold the duties sends nothing.
    #[must_use]
    pub fn stopped(confirmed: usize) -> Self {
        Self {
            confirmed,
            error: None,
        }
    }

    /// `confirmed` of them, then `error`.
    #[must_use]
    pub fn failed_after(confirmed: usize, error: impl Into<String>) -> Self {
        Self {
            confirmed,
            error: Some(error.into()),
        }
    }
}

/// Sends `batch` the way every broker sink does: each item started
/// (`start`, answering the confirmation to await) while `lease` holds,
/// without waiting for the broker, then each confirmation awaited in
/// order; it stops at the first that cannot be started or is not confirmed.
pub(crate) async fn pipelined<'a, T, S, C>(
    batch: &'a [T],
    lease: &Lease,
    mut start: impl FnMut(&'a T) -> S,
) -> Sent
where
    S: Future<Output = Result<C, String>>,
    C: Future<Output = Result<(), String>>,
{
    let mut confirms = Vec::with_capacity(batch.len());
    let mut cut = None;
    for item in batch {
        if !lease.holds() {
            break;
        }
        match start(item).await {
            Ok(confirm) => confirms.push(confirm),
            Err(error) => {
                cut = Some(error);
                break;
            }
        }
    }
    let started = confirms.len();
    for (index, confirm) in confirms.into_iter().enumerate() {
        if let Err(error) = confirm.await {
            return Sent::failed_after(index, error);
        }
    }
    match cut {
        // Every one started before it was confirmed.
        Some(error) => Sent::failed_after(started, error),
        None if started < batch.len() => Sent::stopped(started),
        None => Sent::all(batch.len()),
    }
}

/// Where events go.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Sends `batch`, in order, and answers how far it got. A sink may
    /// send several before the first is confirmed, but must stop at the
    /// first it cannot be sure of, and must check `lease` still
    /// [holds](Lease::holds) before each message it sends.
    async fn send(&self, batch: &[Outgoing], lease: &Lease) -> Sent;
}

/// One configured sink: what it wants and how it is driven.
pub struct Configured {
    /// Its name, under which its deliveries are kept.
    pub name: String,
    /// What it is.
    pub kind: SinkKind,
    /// Its address, password hidden.
    pub shown_url: String,
    /// The events it wants.
    pub events: Vec<EventKind>,
    /// How long one send may take.
    pub timeout: Duration,
    /// How long after an event it is still retried.
    pub retry_for: Duration,
    /// Deliveries claimed and sent at once.
    pub batch: u32,
    /// The sink itself.
    pub sink: Box<dyn Sink>,
}

impl std::fmt::Debug for Configured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Configured")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.shown_url)
            .finish_non_exhaustive()
    }
}

/// Every configured sink (the `[[webhooks]]` and the `[[sinks]]`), who
/// wants which events, and a bell that wakes the relay when an event has
/// just been written.
#[derive(Debug)]
pub struct Sinks {
    all: Vec<Arc<Configured>>,
    subscribers: Arc<Subscribers>,
    wake: watch::Sender<u64>,
}

impl Default for Sinks {
    fn default() -> Self {
        Self::from_configured(Vec::new())
    }
}

impl Sinks {
    /// The sinks of a checked configuration (see `Config::check`); a table
    /// that does not parse is left out.
    #[must_use]
    pub fn new(config: &Config) -> Self {
        let webhooks = config.webhooks.iter().map(webhook::as_sink);
        let all = webhooks
            .chain(config.sinks.iter().cloned())
            .filter_map(|sink| configured(&sink, config))
            .map(Arc::new)
            .collect();
        Self::from_configured(all)
    }

    fn from_configured(all: Vec<Arc<Configured>>) -> Self {
        let subscribers = Subscribers::new(
            all.iter()
                .map(|sink| (sink.name.as_str(), sink.events.as_slice())),
        );
        Self {
            all,
            subscribers: Arc::new(subscribers),
            wake: watch::Sender::new(0),
        }
    }

    /// The sinks.
    #[must_use]
    pub fn all(&self) -> &[Arc<Configured>] {
        &self.all
    }

    /// Who wants which events: what a publish or an alert writes deliveries for.
    #[must_use]
    pub fn subscribers(&self) -> Arc<Subscribers> {
        self.subscribers.clone()
    }

    /// The names of the sinks that want `kind`.
    #[must_use]
    pub fn subscribed(&self, kind: EventKind) -> Vec<String> {
        self.subscribers.of(kind).to_vec()
    }

    /// Tells every sink's relay that events are waiting.
    pub fn wake(&self) {
        self.wake.send_modify(|rung| *rung = rung.wrapping_add(1));
    }

    /// A bell that rings at every [`wake`](Self::wake) from now on.
    #[must_use]
    pub fn bell(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }
}

/// A `[[sinks]]` (or `[[webhooks]]`) table as a sink.
fn configured(sink: &SinkConfig, config: &Config) -> Option<Configured> {
    let events = sink
        .events
        .iter()
        .filter_map(|event| EventKind::parse(event))
        .collect();
    let timeout = sink.timeout.unwrap_or(config.webhook_timeout);
    let (driver, batch): (Box<dyn Sink>, u32) = match sink.kind {
        SinkKind::Amqp => (Box::new(amqp::AmqpSink::new(sink)), BROKER_BATCH),
        SinkKind::Celery => (Box::new(celery::CelerySink::new(sink)?), BROKER_BATCH),
        SinkKind::Kafka => (
            Box::new(kafka::KafkaSink::new(sink, timeout)?),
            BROKER_BATCH,
        ),
        SinkKind::Nats => (Box::new(nats::NatsSink::new(sink)), BROKER_BATCH),
        SinkKind::Webhook => (
            Box::new(webhook::WebhookSink::new(
                reqwest::Url::parse(&sink.url).ok()?,
                sink.secret.clone()?,
                timeout,
            )?),
            webhook::BATCH,
        ),
    };
    Some(Configured {
        name: sink.name.clone(),
        kind: sink.kind,
        shown_url: shown_url(&sink.url),
        events,
        timeout,
        retry_for: sink.retry_for.unwrap_or(config.webhook_retry_for),
        batch,
        sink: driver,
    })
}

/// Deliveries a broker sink is handed at once: sent one after another
/// without waiting, then their confirmations awaited in order.
const BROKER_BATCH: u32 = 256;

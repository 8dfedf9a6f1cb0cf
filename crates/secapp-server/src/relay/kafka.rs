//! Kafka with `rdkafka` (librdkafka): an idempotent producer
//! (`enable.idempotence=true`, `acks=all`), so the broker drops the
//! duplicates its own retries would make and keeps each partition in the
//! order produced. Each event is one record on the sink's `topic`
//! (default `secapp`), CloudEvents in structured mode (the JSON document
//! as the value, `content-type: application/cloudevents+json`), its
//! timestamp the event's time, its key the scope the event is about:
//! `level` for the state (the one organisation-wide level, so every state
//! event of a sink lands on one partition, in commit order) and
//! `consumer.<app>` for a consumer's alerts. A topic secapp creates has
//! one partition, so there the whole sink keeps one order.
//!
//! The topic is created when absent (one partition, the broker's default
//! replication). A batch is produced without waiting, then each delivery
//! report is awaited in order; after a failure the producer is dropped
//! with what it still holds, so nothing of the failed batch arrives late
//! behind its retry.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::Mutex;

use super::{Outgoing, Sent, Sink, cloudevent, pipelined};
use crate::config::{SinkConfig, kafka_brokers};
use crate::store::{EventKind, Lease};

/// An `[[sinks]]` table of kind `kafka`.
pub struct KafkaSink {
    brokers: String,
    topic: String,
    timeout: Duration,
    producer: Mutex<Option<FutureProducer>>,
}

impl KafkaSink {
    /// The sink a checked table describes; three quarters of `timeout`
    /// bound each record's delivery inside librdkafka.
    #[must_use]
    pub fn new(config: &SinkConfig, timeout: Duration) -> Option<Self> {
        Some(Self {
            brokers: kafka_brokers(&config.url).ok()?.1,
            topic: config.topic.clone().unwrap_or_else(|| "secapp".into()),
            timeout,
            producer: Mutex::new(None),
        })
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "secapp")
            .set("socket.connection.setup.timeout.ms", "5000");
        config
    }

    /// The producer, creating the topic and the producer first when there
    /// is none (or the last one hit an error it cannot recover from).
    async fn producer(&self) -> Result<FutureProducer, String> {
        let mut producer = self.producer.lock().await;
        if let Some(ready) = producer.as_ref() {
            match ready.client().fatal_error() {
                None => return Ok(ready.clone()),
                Some((code, reason)) => {
                    tracing::warn!(brokers = %self.brokers, %code, %reason, "the Kafka producer failed for good; starting a new one");
                    *producer = None;
                }
            }
        }
        self.create_topic().await?;
        // librdkafka gives a record up before the relay gives the batch up,
        // so the failure is seen here and the producer purged.
        let delivery_ms = (self.timeout * 3 / 4)
            .as_millis()
            .clamp(1_000, i32::MAX as u128);
        let created: FutureProducer = self
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", delivery_ms.to_string())
            .set("linger.ms", "2")
            .create()
            .map_err(|e| format!("cannot start a Kafka producer for {}: {e}", self.brokers))?;
        tracing::info!(brokers = %self.brokers, topic = %self.topic, "Kafka producer started");
        *producer = Some(created.clone());
        Ok(created)
    }

    /// Drops the producer, purging what it still holds, so a batch that
    /// failed is not delivered late behind its retry; the next send starts
    /// a new one (and creates the topic again if the broker lost it).
    async fn forget(&self) {
        if let Some(producer) = self.producer.lock().await.take() {
            // Dropping purges and flushes for up to half a second.
            let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
        }
    }

    /// Creates the topic with one partition unless it exists.
    async fn create_topic(&self) -> Result<(), String> {
        let admin: AdminClient<DefaultClientContext> = self
            .client_config()
            .create()
            .map_err(|e| format!("cannot reach Kafka at {}: {e}", self.brokers))?;
        let topic = NewTopic::new(&self.topic, 1, TopicReplication::Fixed(-1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        let results = admin.create_topics([&topic], &options).await.map_err(|e| {
            format!(
                "cannot create the topic `{}` on {}: {e}",
                self.topic, self.brokers
            )
        })?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(format!(
                        "cannot create the topic `{}` on {}: {code}",
                        self.topic, self.brokers
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The record key of an event: the scope it is about.
fn key(event: &Outgoing) -> String {
    match event.delivery.kind {
        EventKind::ConsumerStale | EventKind::ConsumerRecovered => format!(
            "consumer.{}",
            event.data["app"].as_str().unwrap_or_default()
        ),
        EventKind::PublishAccepted | EventKind::StateChanged | EventKind::LevelChanged => {
            "level".to_owned()
        }
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn send(&self, batch: &[Outgoing], lease: &Lease) -> Sent {
        let producer = match self.producer().await {
            Ok(producer) => producer,
            Err(error) => return Sent::failed_after(0, error),
        };
        let sent = pipelined(batch, lease, |event| {
            let key = key(event);
            let record = FutureRecord::to(&self.topic)
                .key(&key)
                .payload(&event.body)
                .timestamp(event.delivery.occurred_at.timestamp_millis())
                .headers(OwnedHeaders::new().insert(Header {
                    key: "content-type",
                    value: Some(cloudevent::CONTENT_TYPE),
                }));
            let started = producer
                .send_result(record)
                .map_err(|(e, _)| format!("cannot produce: {e}"));
            std::future::ready(started.map(|report| async move {
                match report.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(format!("not delivered: {e}")),
                    Err(_) => Err("the producer dropped the record".to_owned()),
                }
            }))
        })
        .await;
        if sent.error.is_some() {
            self.forget().await;
        }
        sent
    }
}

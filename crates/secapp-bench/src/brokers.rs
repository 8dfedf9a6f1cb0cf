//! The brokers of the relay benchmark, on this machine as `.ci/brokers.sh`
//! leaves them: RabbitMQ on 127.0.0.1:5672 (guest/guest), NATS JetStream
//! on 127.0.0.1:4222, a Kafka-protocol broker (tansu) on 127.0.0.1:9092.
//! For each kind: the `[[sinks]]` table secapp relays through, the same
//! messages published straight from the broker's own client library (the
//! baseline), and a consumer that notes when each event arrives.
//!
//! AMQP messages go to a durable queue, as a deployment's would (with none
//! bound RabbitMQ drops them unwritten); Celery's is the queue the sink
//! declares. What a run leaves (queues, streams) is deleted after it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use rdkafka::Message as _;
use rdkafka::consumer::Consumer as _;

use crate::BenchResult;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const NATS: &str = "nats://127.0.0.1:4222";
const KAFKA: &str = "127.0.0.1:9092";

/// Messages sent before the confirmations are awaited, as the relay does.
const BATCH: usize = 256;

/// A sink kind, with names of its own for one run.
#[derive(Debug, Clone)]
pub struct Broker {
    /// `amqp`, `celery`, `nats` or `kafka`.
    pub kind: &'static str,
    /// The exchange, queue, subject prefix or topic of this run.
    pub name: String,
}

impl Broker {
    /// `kind` with fresh names.
    pub fn new(kind: &'static str) -> Self {
        let name = format!("secapp_bench_{:x}", fastrand::u64(..));
        Self { kind, name }
    }

    /// The `[[sinks]]` table (named `bench`, carrying every recorded
    /// publish) at the broker, or at a port nobody listens on.
    pub fn sink_toml(&self, reachable: bool) -> String {
        let (url, fields) = match self.kind {
            "amqp" => (AMQP.to_owned(), format!("exchange = \"{}\"", self.name)),
            "celery" => (
                AMQP.to_owned(),
                format!("task = \"bench.level\"\nqueue = \"{}\"", self.name),
            ),
            "nats" => (
                NATS.to_owned(),
                format!(
                    "subject = \"{}\"\nstream = \"{}\"",
                    self.name,
                    self.name.to_uppercase()
                ),
            ),
            _ => (
                format!("kafka://{KAFKA}"),
                format!("topic = \"{}\"", self.name),
            ),
        };
        let url = if reachable {
            url
        } else {
            url.replace(":5672", ":1")
                .replace(":4222", ":1")
                .replace(":9092", ":1")
        };
        format!(
            "[[sinks]]\nname = \"bench\"\nkind = \"{}\"\nurl = \"{url}\"\n\
             events = [\"publish_accepted\"]\ntimeout = \"10s\"\n{fields}\n",
            self.kind
        )
    }

    /// Publishes `n` messages of `body` straight to the broker with its
    /// client library, `BATCH` at a time, each batch confirmed before the
    /// next, as the relay sends; messages per second (Celery's baseline is
    /// `amqp`'s: persistent messages to a durable queue). `None` for a kind
    /// without one.
    pub async fn direct_rate(&self, n: usize, body: &[u8]) -> BenchResult<Option<f64>> {
        let started = Instant::now();
        match self.kind {
            "amqp" => self.direct_amqp(n, body).await?,
            "nats" => self.direct_nats(n, body).await?,
            "kafka" => self.direct_kafka(n, body).await?,
            _ => return Ok(None),
        }
        Ok(Some(n as f64 / started.elapsed().as_secs_f64()))
    }

    async fn direct_amqp(&self, n: usize, body: &[u8]) -> BenchResult<()> {
        let (_connection, channel) = amqp_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("confirm mode: {e}"))?;
        self.bind_durable_queue().await?;
        for start in (0..n).step_by(BATCH) {
            let mut confirms = Vec::with_capacity(BATCH);
            for i in start..(start + BATCH).min(n) {
                let properties = lapin::BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(i.to_string().into());
                confirms.push(
                    channel
                        .basic_publish(
                            self.name.as_str().into(),
                            "secapp.publish_accepted".into(),
                            BasicPublishOptions::default(),
                            body,
                            properties,
                        )
                        .await
                        .map_err(|e| format!("publish: {e}"))?,
                );
            }
            for confirm in confirms {
                confirm.await.map_err(|e| format!("confirm: {e}"))?;
            }
        }
        self.clean_up().await
    }

    /// For `amqp`: a durable queue named as the exchange, bound to all of
    /// it, so persistent messages are written as in a deployment.
    pub async fn bind_durable_queue(&self) -> BenchResult<()> {
        if self.kind != "amqp" {
            return Ok(());
        }
        let (_connection, channel) = amqp_channel().await?;
        bound_queue(
            &channel,
            &self.name,
            &self.name,
            QueueDeclareOptions::durable(),
        )
        .await?;
        Ok(())
    }

    /// Deletes what this run left on the broker: its queue (amqp, celery)
    /// or its streams (nats). Kafka topics stay: tansu keeps them in memory.
    pub async fn clean_up(&self) -> BenchResult<()> {
        match self.kind {
            "amqp" | "celery" => {
                let (_connection, channel) = amqp_channel().await?;
                channel
                    .queue_delete(
                        self.name.as_str().into(),
                        lapin::options::QueueDeleteOptions::default(),
                    )
                    .await
                    .map_err(|e| format!("delete the queue: {e}"))?;
            }
            "nats" => {
                let client = async_nats::connect(NATS)
                    .await
                    .map_err(|e| format!("NATS at {NATS}: {e}"))?;
                let js = async_nats::jetstream::new(client);
                for stream in [
                    self.name.to_uppercase(),
                    format!("{}_DIRECT", self.name.to_uppercase()),
                ] {
                    let _ = js.delete_stream(&stream).await;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn direct_nats(&self, n: usize, body: &[u8]) -> BenchResult<()> {
        let client = async_nats::connect(NATS)
            .await
            .map_err(|e| format!("NATS at {NATS}: {e}"))?;
        let js = async_nats::jetstream::new(client);
        let stream = format!("{}_DIRECT", self.name.to_uppercase());
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{}.>", self.name)],
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream: {e}"))?;
        let _ = &stream;
        for start in (0..n).step_by(BATCH) {
            let mut acks = Vec::with_capacity(BATCH);
            for i in start..(start + BATCH).min(n) {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", i.to_string().as_str());
                acks.push(
                    js.publish_with_headers(
                        format!("{}.publish_accepted", self.name),
                        headers,
                        body.to_vec().into(),
                    )
                    .await
                    .map_err(|e| format!("publish: {e}"))?,
                );
            }
            for ack in acks {
                ack.await.map_err(|e| format!("ack: {e}"))?;
            }
        }
        self.clean_up().await
    }

    async fn direct_kafka(&self, n: usize, body: &[u8]) -> BenchResult<()> {
        let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", KAFKA)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .create()
            .map_err(|e| format!("Kafka producer: {e}"))?;
        let topic = format!("{}_direct", self.name);
        // Created as the sink creates its own: one partition.
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", KAFKA)
                .create()
                .map_err(|e| format!("Kafka admin: {e}"))?;
        admin
            .create_topics(
                [&rdkafka::admin::NewTopic::new(
                    &topic,
                    1,
                    rdkafka::admin::TopicReplication::Fixed(-1),
                )],
                &rdkafka::admin::AdminOptions::new(),
            )
            .await
            .map_err(|e| format!("create the topic: {e}"))?;
        for start in (0..n).step_by(BATCH) {
            let mut reports = Vec::with_capacity(BATCH);
            for _ in start..(start + BATCH).min(n) {
                let record = rdkafka::producer::FutureRecord::to(&topic)
                    .key("level")
                    .payload(body);
                reports.push(
                    producer
                        .send_result(record)
                        .map_err(|(e, _)| format!("produce: {e}"))?,
                );
            }
            for report in reports {
                report
                    .await
                    .map_err(|_| "the producer dropped a record".to_owned())?
                    .map_err(|(e, _)| format!("not delivered: {e}"))?;
            }
        }
        Ok(())
    }

    /// A consumer of what the sink `bench` sends: every arrival, as (the
    /// event id, when it arrived), on the returned channel. Started before
    /// the first publish (Kafka: after the topic exists).
    pub async fn consume(
        &self,
    ) -> BenchResult<tokio::sync::mpsc::UnboundedReceiver<(i64, Instant)>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        match self.kind {
            "amqp" => {
                let (connection, channel) = amqp_channel().await?;
                let exclusive = QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                };
                let queue = bound_queue(&channel, &self.name, "", exclusive).await?;
                let mut consumer = channel
                    .basic_consume(
                        queue.as_str().into(),
                        "bench".into(),
                        BasicConsumeOptions {
                            no_ack: true,
                            ..BasicConsumeOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| format!("consume: {e}"))?;
                tokio::spawn(async move {
                    let _open = (connection, channel);
                    while let Some(Ok(delivery)) = consumer.next().await {
                        let id = delivery
                            .properties
                            .message_id()
                            .as_ref()
                            .and_then(|id| id.as_str().parse().ok());
                        if let Some(id) = id
                            && tx.send((id, Instant::now())).is_err()
                        {
                            return;
                        }
                    }
                });
            }
            "nats" => {
                let client = async_nats::connect(NATS)
                    .await
                    .map_err(|e| format!("NATS at {NATS}: {e}"))?;
                let mut messages = client
                    .subscribe(format!("{}.>", self.name))
                    .await
                    .map_err(|e| format!("subscribe: {e}"))?;
                tokio::spawn(async move {
                    let _client = client;
                    while let Some(message) = messages.next().await {
                        let id = message
                            .headers
                            .as_ref()
                            .and_then(|h| h.get("Nats-Msg-Id"))
                            .and_then(|id| id.as_str().parse().ok());
                        if let Some(id) = id
                            && tx.send((id, Instant::now())).is_err()
                        {
                            return;
                        }
                    }
                });
            }
            _ => {
                let consumer: rdkafka::consumer::StreamConsumer = rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", KAFKA)
                    .set("group.id", &self.name)
                    .set("enable.auto.commit", "false")
                    .set("fetch.wait.max.ms", "5")
                    .create()
                    .map_err(|e| format!("Kafka consumer: {e}"))?;
                let mut partitions = rdkafka::TopicPartitionList::new();
                partitions
                    .add_partition_offset(&self.name, 0, rdkafka::Offset::Beginning)
                    .map_err(|e| format!("assign: {e}"))?;
                consumer
                    .assign(&partitions)
                    .map_err(|e| format!("assign: {e}"))?;
                tokio::spawn(async move {
                    loop {
                        let Ok(message) = consumer.recv().await else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        let id = message
                            .payload()
                            .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
                            .and_then(|event| event["id"].as_str()?.parse().ok());
                        if let Some(id) = id
                            && tx.send((id, Instant::now())).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        }
        Ok(rx)
    }
}

/// Waits until every id of `wanted` has arrived on `arrivals` (or `within`
/// passes); when each first arrived.
pub async fn arrivals_of(
    arrivals: &mut tokio::sync::mpsc::UnboundedReceiver<(i64, Instant)>,
    wanted: usize,
    within: Duration,
) -> HashMap<i64, Instant> {
    let mut seen = HashMap::new();
    let deadline = tokio::time::Instant::now() + within;
    while seen.len() < wanted {
        match tokio::time::timeout_at(deadline, arrivals.recv()).await {
            Ok(Some((id, at))) => {
                seen.entry(id).or_insert(at);
            }
            _ => break,
        }
    }
    seen
}

/// A connection to RabbitMQ and a channel on it; the channel works while
/// the connection is kept.
async fn amqp_channel() -> BenchResult<(lapin::Connection, lapin::Channel)> {
    let connection = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default())
        .await
        .map_err(|e| format!("RabbitMQ at 127.0.0.1:5672: {e}"))?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| format!("channel: {e}"))?;
    Ok((connection, channel))
}

/// `queue` (a server-named one for `""`) declared with `options` and bound
/// to every message of the topic exchange `exchange` (declared too); its name.
async fn bound_queue(
    channel: &lapin::Channel,
    exchange: &str,
    queue: &str,
    options: QueueDeclareOptions,
) -> BenchResult<String> {
    declare_exchange(channel, exchange).await?;
    let declared = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .map_err(|e| format!("queue: {e}"))?;
    channel
        .queue_bind(
            declared.name().clone(),
            exchange.into(),
            "secapp.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("bind: {e}"))?;
    Ok(declared.name().to_string())
}

async fn declare_exchange(channel: &lapin::Channel, name: &str) -> BenchResult<()> {
    channel
        .exchange_declare(
            name.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("exchange: {e}"))
}

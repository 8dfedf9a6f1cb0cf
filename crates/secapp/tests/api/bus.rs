//! The message bus against real brokers: RabbitMQ (AMQP and Celery, with a
//! real `celery worker`) on 127.0.0.1:5672 and NATS JetStream on
//! 127.0.0.1:4222, which `.ci/brokers.sh` makes sure of. Each kind receives
//! every change once and in order; what is published while the broker is
//! out of reach (a proxy between secapp and the broker, cut and restored)
//! arrives once it is back; and a `kill -9` between commit and relay loses
//! nothing. A broker that is not there fails these tests, never skips them.

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use secapp_server::config::{Config, SinkConfig};
use serde_json::{Value, json};

use crate::helpers::{Api, ServerProcess, spawn_app_with};
use crate::tcp_proxy::TcpProxy;

const RABBITMQ: &str = "127.0.0.1:5672";
const NATS: &str = "127.0.0.1:4222";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", fastrand::u64(..))
}

fn sink(value: Value) -> SinkConfig {
    serde_json::from_value(value).unwrap()
}

fn with_sink(sink: SinkConfig) -> impl FnOnce(&mut Config) {
    move |config: &mut Config| {
        config.watch_interval = Duration::from_millis(100);
        config.webhook_timeout = Duration::from_secs(3);
        config.sinks = vec![sink];
    }
}

/// Publishes `levels` one after another, a minute apart; their ids.
async fn publish_all(api: &Api, levels: &[(i64, u32)]) -> Vec<i64> {
    let mut ids = Vec::new();
    for (level, minute) in levels {
        ids.push(
            api.publish(
                "security",
                *level,
                &format!("2026-03-01T12:{minute:02}:00Z"),
            )
            .await,
        );
    }
    ids
}

/// An exclusive queue bound to every message of `exchange`, declared as
/// secapp declares the exchange.
async fn amqp_queue(exchange: &str) -> lapin::Consumer {
    let connection = lapin::Connection::connect(
        &format!("amqp://guest:guest@{RABBITMQ}/%2f"),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ on 127.0.0.1:5672 (.ci/brokers.sh)");
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            "secapp.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            "test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    // The connection lives as long as the consumer's channel needs it.
    std::mem::forget(connection);
    consumer
}

/// The next `n` AMQP messages: (message id, CloudEvent), each checked to
/// be persistent and a structured CloudEvent.
async fn amqp_take(consumer: &mut lapin::Consumer, n: usize) -> Vec<(String, Value)> {
    amqp_take_within(consumer, n, Duration::from_secs(20)).await
}

async fn amqp_take_within(
    consumer: &mut lapin::Consumer,
    n: usize,
    within: Duration,
) -> Vec<(String, Value)> {
    let mut taken = Vec::new();
    while taken.len() < n {
        let delivery = tokio::time::timeout(within, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} messages arrived", taken.len()))
            .unwrap()
            .unwrap();
        let properties = &delivery.properties;
        assert_eq!(properties.delivery_mode(), &Some(2), "persistent");
        assert_eq!(
            properties.content_type().as_ref().map(|t| t.as_str()),
            Some("application/cloudevents+json")
        );
        let id = properties.message_id().as_ref().unwrap().to_string();
        let event: Value = serde_json::from_slice(&delivery.data).unwrap();
        assert_eq!(event["id"], id.as_str());
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        taken.push((id, event));
    }
    taken
}

fn ids_of(events: &[(String, Value)]) -> Vec<i64> {
    events.iter().map(|(id, _)| id.parse().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_gets_each_change_once_in_order_and_what_was_published_while_the_broker_was_away() {
    let exchange = unique("secapp-test");
    let mut consumer = amqp_queue(&exchange).await;
    let proxy = TcpProxy::start(RABBITMQ.parse().unwrap()).await;
    let app = spawn_app_with(with_sink(sink(json!({
        "name": "bus",
        "kind": "amqp",
        "url": format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port),
        "exchange": exchange,
    }))))
    .await;
    let api = app.api();
    let first = publish_all(&api, &[(2, 0), (4, 1), (3, 2)]).await;
    let got = amqp_take(&mut consumer, 3).await;
    assert_eq!(ids_of(&got), first, "each change once, in order");
    assert_eq!(got[1].1["type"], "secapp.state.changed");
    assert_eq!(got[1].1["data"]["current_status"], 4);
    assert_eq!(got[1].1["data"]["previous_status"], 2);

    proxy.cut();
    let meanwhile = publish_all(&api, &[(5, 3), (1, 4)]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    let got = amqp_take(&mut consumer, 2).await;
    assert_eq!(
        ids_of(&got),
        meanwhile,
        "what was published while away, in order"
    );
    // Counted once the broker's confirmation is back, which may be just
    // after the consumer has the message.
    let delivered = r#"secapp_sink_deliveries_total{sink="bus",kind="amqp",outcome="delivered"}"#;
    let mut counted = 0.0;
    for _ in 0..100 {
        counted = crate::metrics::value(&crate::metrics::scrape(&app).await, delivered);
        if counted >= 5.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counted, 5.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_committed_is_lost_to_a_kill_9_before_it_was_relayed() {
    let exchange = unique("secapp-test");
    let mut consumer = amqp_queue(&exchange).await;
    let proxy = TcpProxy::start(RABBITMQ.parse().unwrap()).await;
    proxy.cut();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("secapp.toml");
    std::fs::write(
        &config,
        format!(
            "watch_interval = \"100ms\"\n\
             [[sinks]]\nname = \"bus\"\nkind = \"amqp\"\n\
             url = \"amqp://guest:guest@127.0.0.1:{}/%2f\"\nexchange = \"{exchange}\"\n",
            proxy.port
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let envs = [("SECAPP_CONFIG", config.to_str().unwrap())];
    let server = ServerProcess::start(&data, &envs);
    let api = Api::own_tokens(
        reqwest::Client::new(),
        &server.base(),
        &server.admin_token(),
    );
    let committed = publish_all(&api, &[(2, 0), (3, 1), (4, 2)]).await;
    server.kill_9();
    proxy.restore();
    let _restarted = ServerProcess::start(&data, &envs);
    // A relay killed mid-send leaves its batch held for the sink's timeout
    // (here 10 s) and 30 s more; then the restarted one sends it.
    let got = amqp_take_within(&mut consumer, 3, Duration::from_secs(60)).await;
    assert_eq!(ids_of(&got), committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_jetstream_gets_each_change_once_in_order_and_keeps_the_current_state() {
    let prefix = unique("secapp_test").replace('-', "_");
    let stream = prefix.to_uppercase();
    let proxy = TcpProxy::start(NATS.parse().unwrap()).await;
    let app = spawn_app_with(with_sink(sink(json!({
        "name": "bus",
        "kind": "nats",
        "url": format!("nats://127.0.0.1:{}", proxy.port),
        "subject": prefix,
        "stream": stream,
    }))))
    .await;
    let api = app.api();
    let mut ids = publish_all(&api, &[(2, 0), (4, 1), (3, 2)]).await;
    let client = async_nats::connect(NATS)
        .await
        .expect("NATS with JetStream on 127.0.0.1:4222 (.ci/brokers.sh)");
    let js = async_nats::jetstream::new(client);
    let got = nats_take(&js, &stream, 3).await;
    assert_eq!(got.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);

    proxy.cut();
    ids.extend(publish_all(&api, &[(5, 3), (1, 4)]).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    let got = nats_take(&js, &stream, 5).await;
    assert_eq!(
        got.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ids,
        "everything, once each, in order (JetStream drops a resent id)"
    );
    // A subscriber arriving now gets the current state at once.
    let current = last_per_subject(&js, &stream, &format!("{prefix}.state_changed")).await;
    assert_eq!(current["data"]["current_status"], 1);
    assert_eq!(current["id"], ids[4].to_string());
    app.stop().await;
}

/// Waits until the stream holds `n` messages, then reads them all from the
/// start: (the change id in `Nats-Msg-Id`, the CloudEvent).
async fn nats_take(
    js: &async_nats::jetstream::Context,
    stream: &str,
    n: usize,
) -> Vec<(i64, Value)> {
    let mut stream = {
        let mut found = None;
        for _ in 0..200 {
            if let Ok(mut s) = js.get_stream(stream).await
                && s.info().await.map(|i| i.state.messages).unwrap_or(0) >= n as u64
            {
                found = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found.unwrap_or_else(|| panic!("the stream {stream} never held {n} messages"))
    };
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, n as u64, "no duplicate kept");
    let mut taken = Vec::new();
    for sequence in 1..=info.state.last_sequence {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .unwrap()
            .as_str()
            .to_owned();
        let event: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(event["id"], id.as_str());
        taken.push((id.parse().unwrap(), event));
    }
    taken
}

/// The newest message of `subject`, as a consumer delivering the last
/// message per subject gets it.
async fn last_per_subject(
    js: &async_nats::jetstream::Context,
    stream: &str,
    subject: &str,
) -> Value {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull};
    let stream = js.get_stream(stream).await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::LastPerSubject,
            filter_subject: subject.to_owned(),
            ..pull::Config::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.fetch().max_messages(1).messages().await.unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    serde_json::from_slice(&message.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_celery_worker_runs_a_task_per_change_with_the_state_as_kwargs() {
    let queue = unique("secapp-test");
    let dir = tempfile::tempdir().unwrap();
    let recorded = dir.path().join("recorded.jsonl");
    std::fs::write(
        dir.path().join("secapp_tasks.py"),
        format!(
            "import json\n\
             from celery import Celery\n\
             app = Celery('secapp_tasks', broker='amqp://guest:guest@{RABBITMQ}//')\n\
             @app.task(name='secapp.level')\n\
             def level(**state):\n\
             \x20   with open({recorded:?}, 'a') as out:\n\
             \x20       out.write(json.dumps(state) + '\\n')\n"
        ),
    )
    .unwrap();
    let app = spawn_app_with(with_sink(sink(json!({
        "name": "workers",
        "kind": "celery",
        "url": format!("amqp://guest:guest@{RABBITMQ}/%2f"),
        "task": "secapp.level",
        "queue": queue,
    }))))
    .await;
    let ids = publish_all(&app.api(), &[(2, 0), (4, 1), (3, 2)]).await;
    let mut worker = CeleryWorker::start(dir.path(), &queue);
    let mut lines = Vec::new();
    for _ in 0..600 {
        lines = std::fs::read_to_string(&recorded)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .collect();
        if lines.len() >= 3 {
            break;
        }
        worker.check();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        lines
            .iter()
            .map(|state| state["status_change_id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        ids,
        "the worker ran one task per change, in order: {lines:?}"
    );
    assert_eq!(lines[1]["current_status"], 4);
    assert_eq!(lines[1]["Change_at"], "2026-03-01T12:01:00Z");
    assert_eq!(lines[1]["previous_status"], 2);
    app.stop().await;
}

/// A `celery worker` (one process, so tasks run in order) on `queue`, from
/// the virtualenv `.ci/brokers.sh` installs, killed when dropped.
struct CeleryWorker(std::process::Child);

impl CeleryWorker {
    fn start(dir: &std::path::Path, queue: &str) -> Self {
        let celery = std::env::var("SECAPP_CELERY").unwrap_or_else(|_| {
            format!(
                "{}/.cache/secapp-celery/bin/celery",
                std::env::var("HOME").unwrap_or_else(|_| "/root".into())
            )
        });
        let child = std::process::Command::new(&celery)
            .current_dir(dir)
            .args([
                "-A",
                "secapp_tasks",
                "worker",
                "--pool",
                "solo",
                "--queues",
                queue,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ])
            .env("PYTHONPATH", dir)
            .spawn()
            .unwrap_or_else(|e| panic!("start {celery} (.ci/brokers.sh installs it): {e}"));
        Self(child)
    }

    /// Fails the test if the worker has exited.
    fn check(&mut self) {
        if let Ok(Some(status)) = self.0.try_wait() {
            panic!("the celery worker exited: {status}");
        }
    }
}

impl Drop for CeleryWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

//! Kafka: records from an idempotent producer, in order, keyed by scope;
//! tried against tansu, a Kafka-protocol broker: the one `.ci/brokers.sh`
//! runs on 127.0.0.1:9092, and one of the test's own that it stops and
//! starts again.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Value, json};

use super::{publish_all, sink, unique, with_sink};
use crate::helpers::spawn_app_with;

const KAFKA: &str = "127.0.0.1:9092";

/// One record as a consumer reads it: (CloudEvents id, key, CloudEvent).
type Record = (i64, String, Value);

/// Reads `topic`'s partition 0 from the start until `n` records arrived,
/// then makes sure no more follow within a second.
async fn kafka_take(brokers: &str, topic: &str, n: usize) -> Vec<Record> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("secapp-test"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&partitions).unwrap();
    let started = Instant::now();
    let mut taken = Vec::new();
    while taken.len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "only {} of {n} records arrived",
            taken.len()
        );
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await
        else {
            // Nothing yet, or the topic is not there yet.
            continue;
        };
        let content_type = message
            .headers()
            .and_then(|headers| headers.iter().find(|h| h.key == "content-type"))
            .and_then(|header| header.value)
            .map(|value| String::from_utf8_lossy(value).into_owned());
        assert_eq!(
            content_type.as_deref(),
            Some("application/cloudevents+json")
        );
        let key = String::from_utf8_lossy(message.key().unwrap()).into_owned();
        let event: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let id = event["id"].as_str().unwrap().parse().unwrap();
        taken.push((id, key, event));
    }
    let more = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await;
    assert!(more.is_err(), "a record more than the {n} expected");
    taken
}

fn ids(records: &[Record]) -> Vec<i64> {
    records.iter().map(|(id, _, _)| *id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_gets_each_change_once_in_order_keyed_by_scope() {
    let topic = unique("secapp-test");
    let app = spawn_app_with(with_sink(sink(json!({
        "name": "bus",
        "kind": "kafka",
        "url": format!("kafka://{KAFKA}"),
        "topic": topic,
    }))))
    .await;
    let published = publish_all(&app.api(), &[(2, 0), (4, 1), (3, 2), (5, 3)]).await;
    let got = kafka_take(KAFKA, &topic, 4).await;
    assert_eq!(ids(&got), published, "each change once, in order");
    assert!(got.iter().all(|(_, key, _)| key == "level"), "{got:?}");
    assert_eq!(got[1].2["type"], "secapp.state.changed");
    assert_eq!(got[1].2["data"]["current_status"], 4);
    assert_eq!(got[1].2["data"]["previous_status"], 2);
    app.stop().await;
}

/// A tansu broker of the test's own, keeping its topics in memory: what it
/// held is gone once it stops.
struct Tansu(Child);

impl Tansu {
    fn start(port: u16) -> Self {
        let tansu = std::env::var("SECAPP_TANSU").unwrap_or_else(|_| {
            format!(
                "{}/.cache/secapp-tansu/bin/tansu",
                std::env::var("HOME").unwrap_or_else(|_| "/root".into())
            )
        });
        let listener = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(&tansu)
            .args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {tansu} (.ci/brokers.sh builds it): {e}"));
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self(child);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("tansu never listened on {port}");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_gets_what_was_published_while_the_broker_was_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let brokers = format!("127.0.0.1:{port}");
    let broker = Tansu::start(port);
    let topic = unique("secapp-test");
    let app = spawn_app_with(with_sink(sink(json!({
        "name": "bus",
        "kind": "kafka",
        "url": format!("kafka://{brokers}"),
        "topic": topic,
    }))))
    .await;
    let api = app.api();
    let first = publish_all(&api, &[(2, 0), (4, 1)]).await;
    assert_eq!(ids(&kafka_take(&brokers, &topic, 2).await), first);

    drop(broker);
    let meanwhile = publish_all(&api, &[(5, 2), (1, 3), (3, 4)]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _back = Tansu::start(port);
    // The broker came back empty: what it gets now is what was published
    // while it was down, in order, each once.
    assert_eq!(ids(&kafka_take(&brokers, &topic, 3).await), meanwhile);
    app.stop().await;
}

//! RabbitMQ over AMQP 0-9-1: persistent messages, confirmed, in order.

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use serde_json::{Value, json};

use super::{publish_all, sink, unique, with_sink};
use crate::helpers::{Api, ServerProcess, spawn_app_with};
use crate::tcp_proxy::TcpProxy;

pub const RABBITMQ: &str = "127.0.0.1:5672";

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
    // (here 10 s) and 10 s more; then the restarted one sends it.
    let got = amqp_take_within(&mut consumer, 3, Duration::from_secs(60)).await;
    assert_eq!(ids_of(&got), committed);
}

//! NATS JetStream: deduplicated by id, the current state kept per subject.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::{publish_all, sink, unique, with_sink};
use crate::helpers::spawn_app_with;
use crate::tcp_proxy::TcpProxy;

const NATS: &str = "127.0.0.1:4222";

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

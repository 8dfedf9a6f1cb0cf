//! The message bus against real brokers, which `.ci/brokers.sh` makes sure
//! of: RabbitMQ (AMQP, and Celery with a real `celery worker`) on
//! 127.0.0.1:5672, NATS JetStream on 127.0.0.1:4222 and a Kafka-protocol
//! broker (tansu) on 127.0.0.1:9092. Each kind receives every change once
//! and in order; what is published while the broker is out of reach (a
//! proxy between secapp and the broker, cut and restored) arrives once it
//! is back; and a `kill -9` between commit and relay loses nothing. A
//! broker that is not there fails these tests, never skips them.

mod amqp;
mod celery;
mod kafka;
mod nats;

use std::time::Duration;

use secapp_server::config::{Config, SinkConfig};
use serde_json::Value;

use crate::helpers::Api;

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", fastrand::u64(..))
}

pub fn sink(value: Value) -> SinkConfig {
    serde_json::from_value(value).unwrap()
}

pub fn with_sink(sink: SinkConfig) -> impl FnOnce(&mut Config) {
    move |config: &mut Config| {
        config.watch_interval = Duration::from_millis(100);
        config.webhook_timeout = Duration::from_secs(3);
        config.sinks = vec![sink];
    }
}

/// Publishes `levels` one after another, a minute apart; their ids.
pub async fn publish_all(api: &Api, levels: &[(i64, u32)]) -> Vec<i64> {
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

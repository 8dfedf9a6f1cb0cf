//! Celery: each event a task message (Celery's message protocol 2) that a
//! stock `celery worker` executes, published over AMQP like [`super::amqp`]
//! (persistent, confirmed) to the default exchange with the queue as
//! routing key; the queue (default `celery`) is declared durable, as Celery
//! declares it.
//!
//! The task is called with no positional arguments and the event's `data`
//! as keyword arguments — for a publish, `current_status`,
//! `status_change_id`, `Change_at`, `outcome`, `head_version`,
//! `previous_status` and `published_by` — so a task written
//! `def level_changed(**state)` keeps working as fields are added. Its id is
//! derived from the sink and the event's id, the same on every attempt.

use async_trait::async_trait;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use sha2::{Digest as _, Sha256};

use super::amqp::{Declare, Link, Message};
use super::{Outgoing, Sent, Sink};
use crate::config::SinkConfig;
use crate::store::Lease;

/// An `[[sinks]]` table of kind `celery`.
pub struct CelerySink {
    name: String,
    link: Link,
    task: String,
    queue: String,
}

impl CelerySink {
    /// The sink a checked table describes (`None` without a task).
    #[must_use]
    pub fn new(config: &SinkConfig) -> Option<Self> {
        let queue = config.queue.clone().unwrap_or_else(|| "celery".into());
        Some(Self {
            name: config.name.clone(),
            link: Link::new(&config.url, Declare::Queue(queue.clone())),
            task: config.task.clone()?,
            queue,
        })
    }

    /// The task message of one event.
    fn message(&self, event: &Outgoing) -> Message<'static> {
        let kwargs = match &event.data {
            serde_json::Value::Object(_) => event.data.clone(),
            _ => serde_json::json!({}),
        };
        let task_id = task_id(&self.name, &event.id);
        let body = serde_json::json!([
            [],
            kwargs,
            {"callbacks": null, "errbacks": null, "chain": null, "chord": null}
        ]);
        let mut headers = FieldTable::default();
        let text = |value: &str| AMQPValue::LongString(LongString::from(value));
        headers.insert("lang".into(), text("py"));
        headers.insert("task".into(), text(&self.task));
        headers.insert("id".into(), text(&task_id));
        headers.insert("root_id".into(), text(&task_id));
        headers.insert("parent_id".into(), AMQPValue::Void);
        headers.insert("group".into(), AMQPValue::Void);
        headers.insert("shadow".into(), AMQPValue::Void);
        headers.insert("eta".into(), AMQPValue::Void);
        headers.insert("expires".into(), AMQPValue::Void);
        headers.insert("retries".into(), AMQPValue::LongInt(0));
        headers.insert(
            "timelimit".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Void, AMQPValue::Void])),
        );
        headers.insert("argsrepr".into(), text("()"));
        headers.insert("kwargsrepr".into(), text(&kwargs.to_string()));
        headers.insert(
            "origin".into(),
            text(concat!("secapp/", env!("CARGO_PKG_VERSION"))),
        );
        headers.insert("ignore_result".into(), AMQPValue::Boolean(false));
        Message {
            exchange: "",
            routing_key: self.queue.clone(),
            payload: body.to_string().into_bytes(),
            properties: BasicProperties::default()
                .with_correlation_id(task_id.as_str().into())
                .with_content_type("application/json".into())
                .with_content_encoding("utf-8".into())
                .with_delivery_mode(2)
                .with_priority(0)
                .with_headers(headers),
        }
    }
}

/// A task id in UUID form, from SHA-256 of the sink's name and the event's
/// id: the same on every attempt, different for every sink.
fn task_id(sink: &str, event: &str) -> String {
    let digest = Sha256::digest(format!("{sink}\n{event}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[async_trait]
impl Sink for CelerySink {
    async fn send(&self, batch: &[Outgoing], lease: &Lease) -> Sent {
        let messages = batch.iter().map(|event| self.message(event)).collect();
        self.link.publish(messages, lease).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_id_is_uuid_shaped_and_stable_per_sink_and_event() {
        let id = task_id("workers", "17");
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(id, task_id("workers", "17"));
        assert_ne!(id, task_id("workers", "18"));
        assert_ne!(id, task_id("other", "17"));
    }
}

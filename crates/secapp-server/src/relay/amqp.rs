//! AMQP 0-9-1 (RabbitMQ) with `lapin`: each event a persistent message
//! (delivery mode 2) to the sink's exchange under its routing key, on a
//! channel in confirm mode. A batch is published without waiting, then the
//! broker's confirmations are awaited in order: an ack is delivered, a nack
//! or a lost connection is a retry from that message on.
//!
//! The message is the CloudEvent in structured mode: body the JSON
//! document, `content-type: application/cloudevents+json`, `message-id` the
//! event's id, `type` its CloudEvents type, `app-id` `secapp`, `timestamp`
//! its time. The exchange (default `secapp`) is declared durable, of type
//! `topic`, unless it is the default exchange `""` or an `amq.` one; the
//! routing key defaults to `secapp.<event>` (`secapp.state_changed`, …).
//! No queue is declared: bind your own. A message no queue is bound to is
//! dropped by the broker, as any AMQP publish is.

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use lapin::{Confirmation, PublisherConfirm};
use tokio::sync::Mutex;

use super::{Outgoing, Sent, Sink, cloudevent, pipelined};
use crate::config::{SinkConfig, shown_url};
use crate::store::Lease;

/// What a link declares once per connection before publishing.
#[derive(Debug, Clone)]
pub(super) enum Declare {
    /// A durable topic exchange (none for `""` and `amq.*`).
    Exchange(String),
    /// A durable queue, as Celery declares its own.
    Queue(String),
}

/// One connection and channel to a broker, opened when first needed and
/// again after it is lost.
pub(super) struct Link {
    url: String,
    declare: Declare,
    open: Mutex<Option<(Connection, Channel)>>,
}

/// One message to publish.
pub(super) struct Message<'a> {
    pub exchange: &'a str,
    pub routing_key: String,
    pub payload: Vec<u8>,
    pub properties: BasicProperties,
}

impl Link {
    pub(super) fn new(url: &str, declare: Declare) -> Self {
        Self {
            url: url.to_owned(),
            declare,
            open: Mutex::new(None),
        }
    }

    /// The channel, connecting and declaring first when there is none.
    async fn channel(&self) -> Result<Channel, String> {
        let mut open = self.open.lock().await;
        if let Some((connection, channel)) = open.as_ref()
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *open = None;
        let shown = shown_url(&self.url);
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .map_err(|e| format!("cannot connect to {shown}: {e}"))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel on {shown}: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("cannot turn on publisher confirms on {shown}: {e}"))?;
        match &self.declare {
            Declare::Exchange(name) if !name.is_empty() && !name.starts_with("amq.") => channel
                .exchange_declare(
                    name.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| format!("cannot declare the exchange `{name}` on {shown}: {e}"))?,
            Declare::Exchange(_) => {}
            Declare::Queue(name) => {
                channel
                    .queue_declare(
                        name.as_str().into(),
                        lapin::options::QueueDeclareOptions::durable(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| format!("cannot declare the queue `{name}` on {shown}: {e}"))?;
            }
        }
        tracing::info!(broker = %shown, "connected to the broker");
        *open = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// Forgets the connection, so the next send opens a new one.
    async fn forget(&self) {
        if let Some((connection, _)) = self.open.lock().await.take() {
            let _ = connection.close(200, "reconnecting".into()).await;
        }
    }

    /// Publishes `messages` in order while `lease` holds, then awaits each
    /// confirmation (a nack is a failure); after a failure the connection
    /// is opened anew.
    pub(super) async fn publish(&self, messages: Vec<Message<'_>>, lease: &Lease) -> Sent {
        let channel = match self.channel().await {
            Ok(channel) => channel,
            Err(error) => return Sent::failed_after(0, error),
        };
        let sent = pipelined(&messages, lease, |message| {
            let channel = channel.clone();
            async move {
                let confirm: PublisherConfirm = channel
                    .basic_publish(
                        message.exchange.into(),
                        message.routing_key.as_str().into(),
                        BasicPublishOptions::default(),
                        &message.payload,
                        message.properties.clone(),
                    )
                    .await
                    .map_err(|e| format!("cannot publish: {e}"))?;
                Ok(async move {
                    match confirm.await {
                        Ok(Confirmation::Ack(_)) => Ok(()),
                        Ok(Confirmation::Nack(_)) => {
                            Err("the broker refused the message (nack)".to_owned())
                        }
                        Ok(Confirmation::NotRequested) => {
                            Err("the channel lost confirm mode".to_owned())
                        }
                        Err(e) => Err(format!("no confirmation: {e}")),
                    }
                })
            }
        })
        .await;
        if sent.error.is_some() {
            self.forget().await;
        }
        sent
    }
}

/// An `[[sinks]]` table of kind `amqp`.
pub struct AmqpSink {
    link: Link,
    exchange: String,
    routing_key: Option<String>,
}

impl AmqpSink {
    /// The sink a checked table describes.
    #[must_use]
    pub fn new(config: &SinkConfig) -> Self {
        let exchange = config.exchange.clone().unwrap_or_else(|| "secapp".into());
        Self {
            link: Link::new(&config.url, Declare::Exchange(exchange.clone())),
            exchange,
            routing_key: config.routing_key.clone(),
        }
    }
}

#[async_trait]
impl Sink for AmqpSink {
    async fn send(&self, batch: &[Outgoing], lease: &Lease) -> Sent {
        let messages = batch
            .iter()
            .map(|event| Message {
                exchange: &self.exchange,
                routing_key: self
                    .routing_key
                    .clone()
                    .unwrap_or_else(|| format!("secapp.{}", event.delivery.kind.as_str())),
                payload: event.body.clone(),
                properties: BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type(cloudevent::CONTENT_TYPE.into())
                    .with_message_id(event.id.as_str().into())
                    .with_type(event.delivery.kind.cloud_type().into())
                    .with_app_id("secapp".into())
                    .with_timestamp(
                        event
                            .delivery
                            .occurred_at
                            .timestamp()
                            .max(0)
                            .cast_unsigned(),
                    ),
            })
            .collect();
        self.link.publish(messages, lease).await
    }
}

//! `[[sinks]]` in the config file: the message brokers (and webhooks)
//! every event is relayed to, and the checks a table must pass before the
//! server starts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::store::EventKind;

/// What a sink is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// AMQP 0-9-1 (RabbitMQ): a persistent message to an exchange.
    Amqp,
    /// A Celery task message (protocol 2) over AMQP.
    Celery,
    /// A Kafka topic, by an idempotent producer.
    Kafka,
    /// A NATS JetStream subject.
    Nats,
    /// An HTTP `POST`, signed.
    Webhook,
}

impl SinkKind {
    /// Its name in the configuration and the metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Amqp => "amqp",
            Self::Celery => "celery",
            Self::Kafka => "kafka",
            Self::Nats => "nats",
            Self::Webhook => "webhook",
        }
    }

    fn schemes(self) -> &'static [&'static str] {
        match self {
            Self::Amqp | Self::Celery => &["amqp", "amqps"],
            Self::Kafka => &["kafka"],
            Self::Nats => &["nats", "tls"],
            Self::Webhook => &["http", "https"],
        }
    }
}

/// One `[[sinks]]` table. Fields a kind does not use are refused.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Its name: deliveries are kept under it, so the URL may change
    /// without losing events waiting for it. Unique among sinks and webhooks.
    pub name: String,
    /// `amqp`, `celery`, `kafka`, `nats` or `webhook`.
    pub kind: SinkKind,
    /// The broker: `amqp://user:password@host:5672/vhost`,
    /// `kafka://host:9092` (several bootstrap brokers separated by
    /// commas: `kafka://k1:9092,k2:9092`), `nats://host:4222`, or the
    /// webhook's `https://` address. Its password is never logged.
    pub url: String,
    /// Which events; `state_changed` and the consumer alerts when left
    /// out. At most one of `publish_accepted`, `state_changed` and
    /// `level_changed`, which all carry the change.
    #[serde(default = "default_events")]
    pub events: Vec<String>,
    /// amqp: the exchange (declared durable, `topic`, when absent; `""`
    /// is the default exchange). Default `secapp`.
    pub exchange: Option<String>,
    /// amqp: the routing key. Default `secapp.<event>`, e.g.
    /// `secapp.state_changed`.
    pub routing_key: Option<String>,
    /// celery: the task's registered name, e.g. `tasks.level_changed`.
    pub task: Option<String>,
    /// celery: the queue (declared durable when absent). Default `celery`.
    pub queue: Option<String>,
    /// kafka: the topic (created with one partition when absent, so the
    /// whole sink keeps one order). Default `secapp`.
    pub topic: Option<String>,
    /// nats: the subject prefix; each event goes to `<subject>.<event>`.
    /// Default `secapp`.
    pub subject: Option<String>,
    /// nats: the JetStream stream holding `<subject>.>` (created when
    /// absent). Default `SECAPP`.
    pub stream: Option<String>,
    /// webhook: the key of each event's signatures (at least 16 characters).
    pub secret: Option<String>,
    /// How long one send (a batch, up to its last confirmation) may take;
    /// `--webhook-timeout` when left out.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// How long an event is retried before it becomes a dead letter;
    /// `--webhook-retry-for` when left out.
    #[serde(default, with = "humantime_serde")]
    pub retry_for: Option<Duration>,
}

impl std::fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &shown_url(&self.url))
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

fn default_events() -> Vec<String> {
    [
        EventKind::StateChanged,
        EventKind::ConsumerStale,
        EventKind::ConsumerRecovered,
    ]
    .iter()
    .map(|kind| kind.as_str().to_owned())
    .collect()
}

/// `url` with its password (if any) replaced by `***`: how a sink's
/// address appears in logs, errors and the admin API.
#[must_use]
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<not a URL>".to_owned(),
    }
}

/// `raw` as a URL with a host, refusing spaces and control characters
/// (which the URL parser would drop without a word); errors show it with
/// its password hidden.
pub(super) fn parse_url(raw: &str) -> Result<reqwest::Url, String> {
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("url must not contain spaces or control characters".into());
    }
    let url = reqwest::Url::parse(raw).map_err(|e| format!("url `{}`: {e}", shown_url(raw)))?;
    if url.host().is_none() {
        return Err(format!("url `{}` names no host", shown_url(raw)));
    }
    Ok(url)
}

/// The shortest webhook secret.
pub(super) const MIN_SECRET: usize = 16;

/// Whether a sink or webhook name is 1 to 64 letters, digits, `-` or `_`.
pub(super) fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The kinds a list of event names stands for, refusing unknown names.
pub(super) fn event_kinds(events: &[String]) -> Result<Vec<EventKind>, String> {
    if events.is_empty() {
        return Err("events must name at least one event, or be left out".into());
    }
    events
        .iter()
        .map(|event| {
            EventKind::parse(event).ok_or_else(|| {
                let known: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("`{event}` is not an event; use {}", known.join(", "))
            })
        })
        .collect()
}

/// A `kafka://` URL's bootstrap brokers, `host:port` each, separated by
/// commas: the first parsed as a URL (for its scheme and checks), and all
/// of them as librdkafka's `bootstrap.servers`.
///
/// # Errors
/// What is wrong with the URL or one of its brokers.
pub fn kafka_brokers(url: &str) -> Result<(reqwest::Url, String), String> {
    let Some(list) = url.strip_prefix("kafka://") else {
        return parse_url(url).map(|parsed| (parsed, String::new()));
    };
    let list = list.trim_end_matches('/');
    let mut first = None;
    let mut brokers = Vec::new();
    for broker in list.split(',') {
        let parsed = parse_url(&format!("kafka://{broker}"))?;
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port()) else {
            return Err(format!(
                "url `{}`: each broker must be host:port, as in kafka://k1:9092,k2:9092",
                shown_url(url)
            ));
        };
        if !parsed.username().is_empty() || parsed.path().len() > 1 || parsed.query().is_some() {
            return Err(format!(
                "url `{}`: kafka sinks take brokers only (no user, path or query)",
                shown_url(url)
            ));
        }
        brokers.push(format!("{host}:{port}"));
        first.get_or_insert(parsed);
    }
    let first = first.ok_or_else(|| "url names no broker".to_owned())?;
    Ok((first, brokers.join(",")))
}

/// Checks every table: a name unique among sinks and the `webhooks` names
/// already taken, a URL of the kind's scheme, the fields the kind needs and
/// no others, known events.
pub(super) fn check<'a>(
    sinks: &'a [SinkConfig],
    webhooks: impl IntoIterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    let mut names: std::collections::HashSet<&str> = webhooks.into_iter().collect();
    for (index, sink) in sinks.iter().enumerate() {
        let invalid = |problem: String| ConfigError::Sink { index, problem };
        if !name_ok(&sink.name) {
            return Err(invalid(
                "name must be 1 to 64 letters, digits, `-` or `_`".into(),
            ));
        }
        if !names.insert(sink.name.as_str()) {
            return Err(invalid(format!(
                "the name `{}` is used twice (sinks and webhooks share names)",
                sink.name
            )));
        }
        let url = match sink.kind {
            SinkKind::Kafka => kafka_brokers(&sink.url).map_err(&invalid)?.0,
            _ => parse_url(&sink.url).map_err(&invalid)?,
        };
        if !sink.kind.schemes().contains(&url.scheme()) {
            return Err(invalid(format!(
                "url `{}` must be a {} address",
                shown_url(&sink.url),
                sink.kind
                    .schemes()
                    .iter()
                    .map(|scheme| format!("{scheme}://"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        let kinds = event_kinds(&sink.events).map_err(&invalid)?;
        if kinds.iter().filter(|kind| kind.is_state()).count() > 1 {
            return Err(invalid(
                "events may name only one of publish_accepted, state_changed and level_changed: \
                 they carry the same change under the same id"
                    .into(),
            ));
        }
        check_fields(sink).map_err(invalid)?;
    }
    Ok(())
}

/// The per-kind fields: each required one present, none of another kind's.
fn check_fields(sink: &SinkConfig) -> Result<(), String> {
    let given = [
        ("exchange", sink.exchange.is_some(), SinkKind::Amqp),
        ("routing_key", sink.routing_key.is_some(), SinkKind::Amqp),
        ("task", sink.task.is_some(), SinkKind::Celery),
        ("queue", sink.queue.is_some(), SinkKind::Celery),
        ("topic", sink.topic.is_some(), SinkKind::Kafka),
        ("subject", sink.subject.is_some(), SinkKind::Nats),
        ("stream", sink.stream.is_some(), SinkKind::Nats),
        ("secret", sink.secret.is_some(), SinkKind::Webhook),
    ];
    if let Some((field, _, owner)) = given
        .iter()
        .find(|(_, set, owner)| *set && *owner != sink.kind)
    {
        return Err(format!(
            "`{field}` belongs to {} sinks, not {}",
            owner.as_str(),
            sink.kind.as_str()
        ));
    }
    let nonblank = |value: &Option<String>, field: &str| match value {
        Some(value) if value.trim().is_empty() => Err(format!("`{field}` must not be empty")),
        _ => Ok(()),
    };
    match sink.kind {
        SinkKind::Amqp => nonblank(&sink.routing_key, "routing_key"),
        SinkKind::Celery => {
            if sink
                .task
                .as_deref()
                .is_none_or(|task| task.trim().is_empty())
            {
                return Err("celery sinks need `task`, the task's registered name".into());
            }
            nonblank(&sink.queue, "queue")
        }
        SinkKind::Kafka => nonblank(&sink.topic, "topic"),
        SinkKind::Nats => {
            nonblank(&sink.subject, "subject")?;
            nonblank(&sink.stream, "stream")
        }
        SinkKind::Webhook => match &sink.secret {
            Some(secret) if secret.chars().count() >= MIN_SECRET => Ok(()),
            _ => Err(format!(
                "webhook sinks need `secret`, at least {MIN_SECRET} characters"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(extra: serde_json::Value) -> SinkConfig {
        let mut base = serde_json::json!({
            "name": "bus", "kind": "amqp", "url": "amqp://user:hunter2@mq:5672/%2f",
        });
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    fn refusal(sinks: &[SinkConfig], webhooks: &[&str]) -> String {
        check(sinks, webhooks.iter().copied())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_table_is_checked_for_its_kind() {
        assert!(check(&[table(serde_json::json!({}))], []).is_ok());
        assert!(refusal(&[table(serde_json::json!({}))], &["bus"]).contains("used twice"));
        assert!(
            refusal(&[table(serde_json::json!({"url": "nats://mq:4222"}))], &[])
                .contains("amqp:// or amqps://")
        );
        assert!(
            refusal(
                &[table(serde_json::json!({"url": "amqp://mq:5672/\n%2f"}))],
                &[]
            )
            .contains("control characters"),
            "the URL parser would have dropped the newline"
        );
        assert!(
            refusal(&[table(serde_json::json!({"subject": "x"}))], &[])
                .contains("`subject` belongs to nats sinks")
        );
        assert!(
            refusal(&[table(serde_json::json!({"kind": "celery"}))], &[]).contains("need `task`")
        );
        assert!(
            refusal(
                &[table(
                    serde_json::json!({"events": ["state_changed", "level_changed"]})
                )],
                &[]
            )
            .contains("only one of")
        );
        assert!(
            refusal(&[table(serde_json::json!({"events": ["nope"]}))], &[])
                .contains("`nope` is not an event")
        );
        let kafka =
            |url: &str| table(serde_json::json!({"kind": "kafka", "url": url, "topic": "levels"}));
        assert!(check(&[kafka("kafka://k1:9092,k2:9093")], []).is_ok());
        assert_eq!(
            kafka_brokers("kafka://k1:9092,k2:9093/").unwrap().1,
            "k1:9092,k2:9093"
        );
        for bad in [
            "kafka://k1",
            "kafka://k1:9092,",
            "kafka://u:p@k1:9092",
            "kafka://k1:9092/x",
        ] {
            assert!(check(&[kafka(bad)], []).is_err(), "{bad}");
        }
        assert!(
            refusal(&[table(serde_json::json!({"topic": "x"}))], &[])
                .contains("`topic` belongs to kafka sinks")
        );
    }

    #[test]
    fn a_password_never_shows() {
        let sink = table(serde_json::json!({}));
        assert_eq!(shown_url(&sink.url), "amqp://user:***@mq:5672/%2f");
        assert!(!format!("{sink:?}").contains("hunter2"));
        let error = refusal(
            &[table(
                serde_json::json!({"url": "nats://user:hunter2@mq:4222"}),
            )],
            &[],
        );
        assert!(!error.contains("hunter2"), "{error}");
    }
}

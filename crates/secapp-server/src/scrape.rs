//! The figures read at each scrape: the level and head, every consumer
//! application's polls, last sighting, whether it is behind and whether it
//! is stale, open streams, and refused authentications by reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::access::Access;
use crate::alerts::Alerts;
use crate::clock::Clock;
use crate::hub::Hub;
use crate::sightings::{AppsSeen, OTHER};
use crate::streams::StreamLimits;

/// Reads the server's parts when Prometheus scrapes; registered with
/// [`Metrics::watch`](crate::metrics::Metrics::watch).
pub struct Scrape {
    /// The head.
    pub hub: Arc<Hub>,
    /// The registry and its refusal counts.
    pub access: Arc<Access>,
    /// Open streams.
    pub streams: Arc<StreamLimits>,
    /// The consumer watch's last evaluation.
    pub alerts: Arc<Alerts>,
    /// Polls and sightings per application.
    pub apps: Arc<AppsSeen>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

type Fmt = Result<(), std::fmt::Error>;

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Fmt {
    encoder
        .encode_descriptor(name, help, unit, MetricType::Gauge)?
        .encode_gauge(&value)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Fmt {
        let head = self.hub.head();
        if let Some(head) = &head {
            gauge(
                &mut encoder,
                "level",
                "The current criticality level",
                None,
                head.change.level.get() as f64,
            )?;
            gauge(
                &mut encoder,
                "head_version",
                "How many times the current state has changed",
                None,
                head.version.0 as f64,
            )?;
            gauge(
                &mut encoder,
                "head_changed_timestamp",
                "When the current state changed (its Change_at), as Unix time",
                Some(&Unit::Seconds),
                head.change.changed_at.instant().timestamp_millis() as f64 / 1000.0,
            )?;
        }
        gauge(
            &mut encoder,
            "streams_open",
            "Event streams open now",
            None,
            self.streams.open() as f64,
        )?;

        // An application holding a stream is seen now.
        let now_ms = self.clock.now().timestamp_millis();
        let streaming: std::collections::HashSet<String> = self
            .streams
            .apps()
            .iter()
            .map(ToString::to_string)
            .collect();
        let seen: Vec<(String, u64, Option<i64>)> = self
            .apps
            .snapshot()
            .into_iter()
            .map(|(app, polls, at)| {
                let at = if streaming.contains(&app) {
                    Some(now_ms)
                } else {
                    at
                };
                (app, polls, at)
            })
            .collect();
        let mut polls = encoder.encode_descriptor(
            "polls",
            "Polls by consumer application (app=\"other\": unregistered names beyond the cap)",
            None,
            MetricType::Counter,
        )?;
        for (app, count, _) in &seen {
            polls
                .encode_family(&[("app", app.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(count, None)?;
        }
        let mut last = encoder.encode_descriptor(
            "consumer_last_seen_timestamp",
            "When each consumer application last polled or held a stream, as Unix time",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (app, _, at) in &seen {
            if let Some(at) = at {
                last.encode_family(&[("app", app.as_str())])?
                    .encode_gauge(&(*at as f64 / 1000.0))?;
            }
        }
        // Behind: every consumer the hub knows, and every registered
        // consumer it never heard from (the most behind of all).
        let head_id = head.as_ref().map(|head| head.change.id);
        let mut behind: BTreeMap<String, bool> = self
            .access
            .consuming_apps()
            .into_iter()
            .map(|app| (app.to_string(), head_id.is_some()))
            .collect();
        let labelled: std::collections::HashSet<&str> =
            seen.iter().map(|(app, _, _)| app.as_str()).collect();
        for record in self.hub.consumers() {
            let name = record.app.as_str();
            // Unregistered names beyond the cap have no label of their own.
            if labelled.contains(name) || behind.contains_key(name) {
                behind.insert(name.to_owned(), record.consumer.knowledge.behind(head_id));
            }
        }
        behind.remove(OTHER);
        let mut family = encoder.encode_descriptor(
            "consumer_behind",
            "1 while a consumer application does not hold the current state",
            None,
            MetricType::Gauge,
        )?;
        for (app, is_behind) in &behind {
            family
                .encode_family(&[("app", app.as_str())])?
                .encode_gauge(&i64::from(*is_behind))?;
        }
        let mut family = encoder.encode_descriptor(
            "consumer_stale",
            "1 while a consumer application is stale: unseen for longer than its allowance",
            None,
            MetricType::Gauge,
        )?;
        for alert in self.alerts.current() {
            let stale = alert.standing.state == crate::store::AlertState::Stale;
            family
                .encode_family(&[("app", alert.app.as_str())])?
                .encode_gauge(&i64::from(stale))?;
        }
        gauge(
            &mut encoder,
            "leader",
            "1 while this server holds the once-only duties (consumer alerts, relaying events)",
            None,
            f64::from(u8::from(self.alerts.leading())),
        )?;
        let refusals = self.access.failures.report().by_reason;
        let mut family = encoder.encode_descriptor(
            "auth_refusals",
            "Refused authentications by reason (the error code answered)",
            None,
            MetricType::Counter,
        )?;
        for (reason, count) in &refusals {
            family
                .encode_family(&[("reason", *reason)])?
                .encode_counter::<NoLabelSet, _, u64>(count, None)?;
        }
        Ok(())
    }
}

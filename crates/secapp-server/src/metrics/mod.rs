//! Prometheus metrics, in the OpenMetrics text format from
//! `prometheus-client`, served at `GET /metrics` (`viewer` or `admin`
//! token).
//!
//! Counters and histograms are updated as requests happen; what is state
//! rather than an event (the level, the head, each consumer's last sighting
//! and whether it is behind, open streams, refused authentications) is read
//! from the hub and the registry at each scrape ([`crate::scrape`], which
//! sits above the parts it reads, so this module depends on none of them).
//! Every figure is this process's: with several replicas, Prometheus
//! scrapes each and sums. Sightings per application are
//! [`crate::sightings`]'s, shared with the consumer watch.
//!
//! - `http.rs`: the layer that counts and times every request by route.

mod http;

pub use http::{MetricsLayer, route_of};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::sightings::AppsSeen;

/// The content type of the answer to `GET /metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a publish did, as `secapp_publishes_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublishOutcome {
    /// It became the head.
    Head,
    /// It tied with the head.
    Tie,
    /// It was older than the head.
    Older,
    /// A retry answered with the first id.
    Replayed,
    /// It was refused (bad body, key reused, store unavailable).
    Refused,
}

impl PublishOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::Tie => "tie",
            Self::Older => "older",
            Self::Replayed => "replayed",
            Self::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

/// How a delivery attempt ended, as `secapp_sink_deliveries_total` (and, for
/// webhooks, `secapp_webhook_deliveries_total`) counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayOutcome {
    /// The receiver took the event.
    Delivered,
    /// It failed and will be retried.
    Failed,
    /// It failed after its retry period: a dead letter.
    Dead,
}

impl RelayOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }
}

/// Publishes counted by outcome (`secapp_publishes_total`): a cheap
/// handle, held by the hub, which counts what it records.
#[derive(Debug, Clone, Default)]
pub struct PublishCounts(Family<OutcomeLabel, Counter>);

impl PublishCounts {
    /// Counts a publish.
    pub fn count(&self, outcome: PublishOutcome) {
        self.0
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
    }
}

/// The route of polls, the one [`Metrics::answered`] keeps a series at hand for.
const POLL_ROUTE: &str = "/secapp/update";

/// The metrics of one server.
pub struct Metrics {
    registry: Registry,
    publishes: PublishCounts,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabel, Histogram>,
    /// The series of `GET /secapp/update` answered 200, looked up once: a
    /// poll is most of the traffic, and a family lookup hashes its labels
    /// under a lock. Made by the first such poll, so the exposition lists
    /// no series before it happens.
    polled: OnceLock<(Counter, Histogram)>,
    store_duration: Family<OperationLabel, Histogram>,
    long_polls_waiting: Gauge,
    webhook_deliveries: Family<OutcomeLabel, Counter>,
    sink_deliveries: Family<SinkLabels, Counter>,
    apps: Arc<AppsSeen>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Latency buckets: 0.5 ms to about 33 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

impl Metrics {
    /// The metrics families, before the server's parts exist; see
    /// [`Metrics::watch`]. At most `max_unregistered_apps` names spoken for
    /// by the shared token get their own `app` label.
    #[must_use]
    pub fn new(max_unregistered_apps: u64) -> Self {
        let mut registry = Registry::with_prefix("secapp");
        let publishes = PublishCounts::default();
        registry.register(
            "publishes",
            "Publishes by what they did: head, tie, older, replayed, refused",
            publishes.0.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<RouteLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer a request (to the start of the answer for streams), by route",
            Unit::Seconds,
            http_duration.clone(),
        );
        let store_duration = Family::<OperationLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> _,
        );
        registry.register_with_unit(
            "store_operation_duration",
            "Time of each store operation, by operation",
            Unit::Seconds,
            store_duration.clone(),
        );
        let long_polls_waiting = Gauge::default();
        registry.register(
            "long_polls_waiting",
            "Long polls held open now",
            long_polls_waiting.clone(),
        );
        let webhook_deliveries = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook attempts by how they ended: delivered, failed (to be retried), dead (retry period over)",
            webhook_deliveries.clone(),
        );
        let sink_deliveries = Family::<SinkLabels, Counter>::default();
        registry.register(
            "sink_deliveries",
            "Delivery attempts by sink (webhooks and brokers) and how they ended: delivered, failed (to be retried), dead (retry period over)",
            sink_deliveries.clone(),
        );
        for outcome in [
            RelayOutcome::Delivered,
            RelayOutcome::Failed,
            RelayOutcome::Dead,
        ] {
            // Present from the start, so a rate over them is never empty.
            let _ = webhook_deliveries.get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            });
        }
        Self {
            registry,
            webhook_deliveries,
            sink_deliveries,
            publishes,
            http_requests,
            http_duration,
            polled: OnceLock::new(),
            store_duration,
            long_polls_waiting,
            apps: Arc::new(AppsSeen::new(max_unregistered_apps)),
        }
    }

    /// Adds the figures read at each scrape from the server's parts
    /// ([`crate::scrape::Scrape`]).
    #[must_use]
    pub fn watch(mut self, figures: Box<dyn prometheus_client::collector::Collector>) -> Self {
        self.registry.register_collector(figures);
        self
    }

    /// The exposition, in the OpenMetrics text format.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        text
    }

    /// Counts a publish refused before it reached the hub (which counts
    /// the rest).
    pub fn refused_publish(&self) {
        self.publishes.count(PublishOutcome::Refused);
    }

    /// The publish counts, for the hub.
    #[must_use]
    pub fn publish_counts(&self) -> PublishCounts {
        self.publishes.clone()
    }

    /// Polls and sightings per application.
    #[must_use]
    pub fn apps(&self) -> &Arc<AppsSeen> {
        &self.apps
    }

    /// Counts `count` delivery attempts to `sink` (of `kind`) that ended so.
    pub fn relayed(&self, sink: &str, kind: &'static str, outcome: RelayOutcome, count: u64) {
        if count == 0 {
            return;
        }
        self.sink_deliveries
            .get_or_create(&SinkLabels {
                sink: sink.to_owned(),
                kind,
                outcome: outcome.as_str(),
            })
            .inc_by(count);
        if kind == "webhook" {
            self.webhook_deliveries
                .get_or_create(&OutcomeLabel {
                    outcome: outcome.as_str(),
                })
                .inc_by(count);
        }
    }

    /// Marks a long poll held until the guard is dropped.
    #[must_use]
    pub fn long_poll(&self) -> LongPollGuard {
        self.long_polls_waiting.inc();
        LongPollGuard(self.long_polls_waiting.clone())
    }

    fn answered(&self, route: &'static str, method: &'static str, status: u16, took: Duration) {
        if route == POLL_ROUTE && method == "GET" && status == 200 {
            let (count, duration) = self.polled.get_or_init(|| {
                (
                    self.http_requests
                        .get_or_create(&HttpLabels {
                            route,
                            method,
                            status,
                        })
                        .clone(),
                    self.http_duration
                        .get_or_create(&RouteLabel { route })
                        .clone(),
                )
            });
            count.inc();
            duration.observe(took.as_secs_f64());
            return;
        }
        self.http_requests
            .get_or_create(&HttpLabels {
                route,
                method,
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
    }

    /// Where a store reports the time of each operation
    /// (`secapp_store_operation_duration_seconds{operation}`).
    #[must_use]
    pub fn store_timings(&self) -> crate::store::Timings {
        let durations = self.store_duration.clone();
        crate::store::Timings::to(move |operation, took| {
            durations
                .get_or_create(&OperationLabel { operation })
                .observe(took.as_secs_f64());
        })
    }
}

/// Counts a long poll as waiting while it lives.
#[derive(Debug)]
pub struct LongPollGuard(Gauge);

impl Drop for LongPollGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves `GET /metrics` without authentication on `listener` (for
/// `--metrics-listen` on a private network) until `stop` is cancelled.
///
/// # Errors
/// The I/O error that stopped serving.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                    metrics.encode(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

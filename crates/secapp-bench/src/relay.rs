//! The relay (`--only relay`; needs the brokers of `.ci/brokers.sh`):
//!
//! - **throughput**: a backlog of changes is published while the sink's
//!   broker is out of reach, then the server restarts with the broker's
//!   address and the outbox drains; the rate is counted from the first
//!   confirmed delivery to the last (`secapp_sink_deliveries_total`), next
//!   to the broker's own client library publishing the same number of
//!   messages in the same batches, in the same run;
//! - **latency**: 100 changes a second, each timed from the moment its
//!   publish was sent to the moment a consumer of the broker has it, which
//!   bounds the relay's commit → broker acknowledgement from above.

use std::time::{Duration, Instant};

use crate::brokers::{Broker, arrivals_of};
use crate::servers::{Server, free_addr};
use crate::stats::{median, percentile, summary};
use crate::{BenchResult, RunArgs};

/// The servers log errors only: the unreachable broker's retries are expected.
const QUIET: (&str, &str) = ("SECAPP_LOG", "error");

/// Changes in each backlog.
const BACKLOG: usize = 20_000;
/// Publishers building it.
const PUBLISHERS: usize = 64;
/// A state event's CloudEvent, about the size the relay sends.
const SAMPLE_BODY: &[u8] = br#"{"specversion":"1.0","id":"12345","source":"/secapp","type":"secapp.publish.accepted","time":"2026-03-01T14:05:00.250Z","datacontenttype":"application/json","data":{"current_status":4,"status_change_id":12345,"Change_at":"2026-03-01T14:05:00Z","outcome":"head","head_version":9,"previous_status":3,"published_by":"bench-publisher"}}"#;

pub async fn relay(args: &RunArgs) -> BenchResult<()> {
    println!(
        "### Relay throughput: a backlog of {BACKLOG} changes drained into each broker \
         (batches of 256, confirmed)\n"
    );
    println!(
        "| kind | relayed by secapp, per second | the broker's client library alone, same batches | ratio |"
    );
    println!("|---|---|---|---|");
    for kind in ["amqp", "celery", "nats", "kafka"] {
        let (mut relayed, mut direct) = (Vec::new(), Vec::new());
        for _ in 0..args.runs {
            relayed.push(drain_rate(args, kind).await?);
            let direct_to = Broker::new(if kind == "celery" { "amqp" } else { kind });
            if let Some(rate) = direct_to.direct_rate(BACKLOG, SAMPLE_BODY).await? {
                direct.push(rate);
            }
        }
        let ratio = format!("{:.2}", sorted_median(&relayed) / sorted_median(&direct));
        let baseline = summary(&direct, 0);
        println!(
            "| {kind} | {} | {baseline} | {ratio} |",
            summary(&relayed, 0)
        );
    }
    println!();

    let seconds = args.duration.as_secs_f64();
    println!(
        "### Relay latency at 100 changes/s ({seconds:.0} s per run): publish sent → a consumer of \
         the broker has it, ms\n"
    );
    println!("| kind | p50 | p99 | max |");
    println!("|---|---|---|---|");
    for kind in ["amqp", "nats", "kafka"] {
        let (mut p50, mut p99, mut max) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let mut latencies = latencies(args, kind).await?;
            latencies.sort_by(f64::total_cmp);
            p50.push(percentile(&latencies, 50.0));
            p99.push(percentile(&latencies, 99.0));
            max.push(percentile(&latencies, 100.0));
        }
        println!(
            "| {kind} | {} | {} | {} |",
            summary(&p50, 1),
            summary(&p99, 1),
            summary(&max, 1)
        );
    }
    println!();
    Ok(())
}

fn sorted_median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    median(&sorted)
}

/// A server's configuration for one run: a file holding the broker's sink,
/// and an address for its unauthenticated metrics.
struct RunConfig {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    shown_path: String,
    metrics: String,
}

impl RunConfig {
    fn new() -> BenchResult<Self> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let path = dir.path().join("secapp.toml");
        Ok(Self {
            shown_path: path.to_string_lossy().into_owned(),
            path,
            _dir: dir,
            metrics: free_addr()?.to_string(),
        })
    }

    /// Writes `broker`'s sink, at the broker or at a port nobody listens on.
    fn write(&self, broker: &Broker, reachable: bool) -> BenchResult<()> {
        std::fs::write(&self.path, broker.sink_toml(reachable))
            .map_err(|e| format!("write the config: {e}"))
    }

    /// The server's environment: this file, the metrics listener, quiet logs.
    fn env(&self) -> [(&str, &str); 3] {
        [
            ("SECAPP_CONFIG", &self.shown_path),
            ("SECAPP_METRICS_LISTEN", &self.metrics),
            QUIET,
        ]
    }
}

/// Builds a backlog of [`BACKLOG`] events for an unreachable `kind` sink,
/// then drains it into the broker: deliveries per second.
async fn drain_rate(args: &RunArgs, kind: &'static str) -> BenchResult<f64> {
    let broker = Broker::new(kind);
    broker.bind_durable_queue().await?;
    let config = RunConfig::new()?;
    config.write(&broker, false)?;
    let server = Server::secapp_with_env(args, &config.env()).await?;
    publish_backlog(&server).await?;
    config.write(&broker, true)?;
    let server = server.restart_with_env(args, &config.env()).await?;
    let metrics = &config.metrics;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut first: Option<(Instant, f64)> = None;
    loop {
        let delivered = delivered(&client, metrics, kind).await?;
        let now = Instant::now();
        if delivered > 0.0 && first.is_none() {
            first = Some((now, delivered));
        }
        if delivered >= BACKLOG as f64 {
            let (since, counted) = first.unwrap_or((now, delivered));
            drop(server);
            broker.clean_up().await?;
            let seconds = now.duration_since(since).as_secs_f64().max(0.001);
            return Ok((delivered - counted).max(1.0) / seconds);
        }
        if now > deadline {
            return Err(format!(
                "{kind}: only {delivered} of {BACKLOG} relayed in 5 minutes"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`BACKLOG`] publishes from [`PUBLISHERS`] concurrent publishers.
async fn publish_backlog(server: &Server) -> BenchResult<()> {
    let client = reqwest::Client::new();
    let each = BACKLOG / PUBLISHERS;
    let extra = BACKLOG % PUBLISHERS;
    let publishers = (0..PUBLISHERS).map(|n| {
        let client = client.clone();
        let count = each + usize::from(n < extra);
        async move {
            for i in 0..count {
                let level = i64::try_from(i % 5).unwrap_or(0) + 1;
                server.publish(&client, level).await?;
            }
            BenchResult::Ok(())
        }
    });
    for result in futures_util::future::join_all(publishers).await {
        result?;
    }
    Ok(())
}

/// The sink `bench`'s confirmed deliveries so far, from the metrics listener.
async fn delivered(client: &reqwest::Client, metrics: &str, kind: &str) -> BenchResult<f64> {
    let text = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .map_err(|e| format!("scrape: {e}"))?
        .text()
        .await
        .map_err(|e| format!("scrape: {e}"))?;
    let kind_label = format!("kind=\"{kind}\"");
    Ok(text
        .lines()
        .filter(|line| {
            line.starts_with("secapp_sink_deliveries_total{")
                && line.contains("sink=\"bench\"")
                && line.contains(&kind_label)
                && line.contains("outcome=\"delivered\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// One run of 100 changes a second for `--duration` through a `kind`
/// sink: each change's milliseconds from its publish to its arrival.
async fn latencies(args: &RunArgs, kind: &'static str) -> BenchResult<Vec<f64>> {
    let broker = Broker::new(kind);
    let config = RunConfig::new()?;
    config.write(&broker, true)?;
    let server = Server::secapp_with_env(args, &config.env()).await?;
    let metrics = &config.metrics;
    let client = reqwest::Client::new();
    // Kafka's topic is made by the sink's first send: consume after it.
    let mut arrivals = if kind == "kafka" {
        None
    } else {
        Some(broker.consume().await?)
    };
    let (warm_up, _) = server.publish(&client, 1).await?;
    let mut arrivals = match arrivals.take() {
        Some(arrivals) => arrivals,
        None => {
            let deadline = Instant::now() + Duration::from_secs(30);
            while delivered(&client, metrics, kind).await? < 1.0 {
                if Instant::now() > deadline {
                    return Err(format!("{kind}: the first change was never relayed"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            broker.consume().await?
        }
    };
    if !arrivals_of(&mut arrivals, 1, Duration::from_secs(30))
        .await
        .contains_key(&warm_up)
    {
        return Err(format!("{kind}: the consumer never got the first change"));
    }
    let mut sent = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    while started.elapsed() < args.duration {
        ticks.tick().await;
        let at = Instant::now();
        let (id, _) = server.publish(&client, 2 + (sent.len() % 3) as i64).await?;
        sent.push((id, at));
    }
    let seen = arrivals_of(&mut arrivals, sent.len(), Duration::from_secs(30)).await;
    let mut latencies = Vec::with_capacity(sent.len());
    for (id, at) in &sent {
        let arrived = seen
            .get(id)
            .ok_or_else(|| format!("{kind}: change {id} never reached the consumer"))?;
        latencies.push(arrived.saturating_duration_since(*at).as_secs_f64() * 1_000.0);
    }
    drop(server);
    broker.clean_up().await?;
    Ok(latencies)
}

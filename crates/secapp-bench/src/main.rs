//! The secapp benchmark harness. `secapp-bench run` starts the release
//! `secapp` binary (and a bare axum baseline) as separate processes on
//! loopback, measures them, and prints Markdown tables:
//!
//! 1. poll throughput (plain, `after`, `If-None-Match`) next to a bare axum
//!    handler that only reads the two headers, with `wrk`, same settings;
//! 2. fan-out latency from a publish's acknowledgement to each stream
//!    watcher's receipt, and server memory per idle stream;
//! 3. the same for held long polls, and the memory a bare axum server holds
//!    per idle connection, the floor under both;
//! 4. durable publishes per second at 1, 16 and 64 producers next to the
//!    disk's own rate of synced small writes, measured in the same run;
//! 5. a flood of idle sockets beyond the server's file descriptors: what
//!    connected clients, new clients and the idle sockets see;
//! 6. (`--only replicas`, not in the default set: it needs PostgreSQL and
//!    HAProxy) one server on SQLite next to three on PostgreSQL behind
//!    HAProxy: polls and publishes;
//! 7. (`--only relay`, not in the default set: it needs the brokers of
//!    `.ci/brokers.sh`) the relay: a backlog drained into RabbitMQ (AMQP
//!    and Celery), NATS JetStream and Kafka next to each broker's client
//!    library alone, and the latency from publish to a broker's consumer
//!    at 100 changes a second.
//!
//! Every figure is the median of `--runs` runs with the range beside it.
//! Map: [`servers`] starts and measures processes, [`load`] drives `wrk`,
//! [`watchers`] holds thousands of streams and long polls, [`flood`] floods
//! with idle sockets, [`relay`] drains the outbox into the [`brokers`],
//! [`stats`] sums up, [`baseline`] is the bare handler.

mod baseline;
mod brokers;
mod flood;
mod load;
mod relay;
mod replicas;
mod servers;
mod stats;
mod watchers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "secapp-bench",
    about = "Benchmarks of secapp against a bare baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every benchmark and print the tables.
    Run(RunArgs),
    /// Serve the bare baseline handler (started by `run`).
    Baseline {
        /// Address to listen on.
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

/// What to run and how often.
#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
    /// The secapp binary to measure.
    #[arg(long, default_value = "target/release/secapp")]
    secapp: PathBuf,
    /// Runs per figure; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Length of each wrk run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Watcher counts for the fan-out and long-poll benchmarks.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    watchers: Vec<usize>,
    /// Only these parts: poll, fanout, longpoll, floor, publish, flood,
    /// replicas (not in the default: it needs PostgreSQL and HAProxy),
    /// relay (not in the default: it needs the brokers).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "poll,fanout,longpoll,floor,publish,flood"
    )]
    only: Vec<String>,
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    let seconds = raw.trim_end_matches('s');
    seconds
        .parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|e| format!("{raw}: {e} (write e.g. 10s)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("secapp-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Baseline { listen } => runtime.block_on(baseline::serve(listen)),
        Command::Run(args) => runtime.block_on(run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("secapp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Everything a benchmark can fail with, as text for the operator.
pub type BenchResult<T> = Result<T, String>;

async fn run(args: RunArgs) -> BenchResult<()> {
    if !args.secapp.is_file() {
        return Err(format!(
            "{} not found: build it with cargo build --release -p secapp",
            args.secapp.display()
        ));
    }
    let wants = |part: &str| args.only.iter().any(|p| p == part);
    println!(
        "secapp benchmarks: {} run(s) per figure, median (min–max); {} cores\n",
        args.runs,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    if wants("poll") {
        load::poll_throughput(&args).await?;
    }
    if wants("fanout") {
        watchers::fan_out(&args, watchers::Kind::Stream).await?;
    }
    if wants("longpoll") {
        watchers::fan_out(&args, watchers::Kind::LongPoll).await?;
    }
    if wants("floor") {
        watchers::connection_floor(&args).await?;
    }
    if wants("publish") {
        load::publish_throughput(&args).await?;
    }
    if wants("flood") {
        flood::idle_flood(&args).await?;
    }
    if wants("replicas") {
        replicas::replicas(&args).await?;
    }
    if wants("relay") {
        relay::relay(&args).await?;
    }
    Ok(())
}

//! Idle sockets flooding a server: more connections that send nothing than
//! the server has file descriptors for. What the issue that led to
//! connection limits saw was accept failing ("Too many open files") and new
//! clients timing out until the sockets were closed by their owner.
//!
//! The server runs with an open-file limit of [`OPEN_FILES`] (so the harness,
//! with its own limit, can exceed it) and its default limits: the connection
//! cap derived from that limit, the 10 s header-read timeout. Measured per
//! run: polls on a connection opened before the flood (median latency), how
//! long a client connecting during the flood waits for its answer, and how
//! many of the idle sockets the server has closed within [`SHED_WITHIN`].

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt as _;

use crate::servers::{Server, TOKEN};
use crate::stats::{median, summary};
use crate::watchers::connect;
use crate::{BenchResult, RunArgs};

/// The server's open-file limit during the flood.
const OPEN_FILES: u32 = 4096;
/// Idle sockets opened: more than the server has descriptors for, fewer
/// than its connection cap (3,687 for 4,096 files) and its listen backlog
/// (1,024) together, so each connect completes.
const FLOOD: usize = 4300;
/// How long the server is given to close the idle sockets: two header-read
/// timeouts and room for those accepted late.
const SHED_WITHIN: Duration = Duration::from_secs(60);
/// Polls measured on the kept connection.
const POLLS: usize = 100;
/// Sockets opened at once: few enough that no SYN is dropped.
const CONNECT_BATCH: usize = 100;

/// One run's figures.
struct Run {
    /// Median latency of the polls that were answered.
    kept_poll_ms: f64,
    /// Polls on the kept connection that failed.
    kept_failed: usize,
    newcomer_s: Option<f64>,
    shed: usize,
    opened: usize,
    /// Seconds it took to open them.
    opening_s: f64,
}

/// Prints the flood table.
pub async fn idle_flood(args: &RunArgs) -> BenchResult<()> {
    println!(
        "### Idle-socket flood: {FLOOD} sockets that send nothing, server limited to {OPEN_FILES} open files\n"
    );
    println!(
        "| idle sockets opened (s to open) | poll on a connection opened before (median ms) | a new client's poll, once they are open, answered after (s) | idle sockets closed by the server within {} s |",
        SHED_WITHIN.as_secs()
    );
    println!("|---|---|---|---|");
    let mut runs = Vec::new();
    for _ in 0..args.runs {
        runs.push(flood_once(args).await?);
    }
    let kept: Vec<f64> = runs.iter().map(|run| run.kept_poll_ms).collect();
    let failed: usize = runs.iter().map(|run| run.kept_failed).sum();
    let kept = if failed == 0 {
        summary(&kept, 2)
    } else {
        format!(
            "{} ({failed} of {} polls failed)",
            summary(&kept, 2),
            POLLS * runs.len()
        )
    };
    let newcomer: Vec<f64> = runs.iter().filter_map(|run| run.newcomer_s).collect();
    let unanswered = runs.len() - newcomer.len();
    let shed: Vec<String> = runs
        .iter()
        .map(|run| format!("{} of {}", run.shed, run.opened))
        .collect();
    let opened: Vec<String> = runs
        .iter()
        .map(|run| format!("{} ({:.0} s)", run.opened, run.opening_s))
        .collect();
    let newcomer = if unanswered == 0 {
        summary(&newcomer, 1)
    } else {
        format!(
            "not answered within {} s in {unanswered} of {} runs",
            SHED_WITHIN.as_secs(),
            runs.len()
        )
    };
    println!(
        "| {} | {kept} | {newcomer} | {} |\n",
        opened.join(", "),
        shed.join(", ")
    );
    Ok(())
}

async fn flood_once(args: &RunArgs) -> BenchResult<Run> {
    let server = Server::secapp_with_open_files(args, OPEN_FILES).await?;
    let kept = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .map_err(|e| e.to_string())?;
    let poll = |client: &reqwest::Client| {
        client
            .get(format!("{}/secapp/update?after=0", server.base()))
            .header("App-name", "flood-poller")
            .header("Token", TOKEN)
            .timeout(SHED_WITHIN)
            .send()
    };
    poll(&kept).await.map_err(|e| format!("first poll: {e}"))?;

    let opening = Instant::now();
    let mut idle = Vec::with_capacity(FLOOD);
    for batch in (0..FLOOD).collect::<Vec<_>>().chunks(CONNECT_BATCH) {
        // Past the server's listen backlog a connect hangs in SYN retries:
        // those are given up, the rest kept.
        let connecting: Vec<_> = batch
            .iter()
            .map(|&n| {
                tokio::spawn(tokio::time::timeout(
                    Duration::from_secs(10),
                    connect(server.addr, n),
                ))
            })
            .collect();
        for socket in connecting {
            if let Ok(Ok(Ok(socket))) = socket.await {
                idle.push(socket);
            }
        }
    }
    let opened = idle.len();
    let opening_s = opening.elapsed().as_secs_f64();
    let flooded = Instant::now();
    let shedding: Vec<_> = idle
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                let mut byte = [0_u8; 1];
                matches!(
                    tokio::time::timeout(SHED_WITHIN, socket.read(&mut byte)).await,
                    Ok(Ok(0) | Err(_))
                )
            })
        })
        .collect();

    let mut latencies = Vec::with_capacity(POLLS);
    let mut kept_failed = 0;
    for _ in 0..POLLS {
        let started = Instant::now();
        match poll(&kept).await {
            Ok(answer) if answer.status().is_success() => {
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            _ => kept_failed += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);

    let newcomer_client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| e.to_string())?;
    let newcomer_s = match poll(&newcomer_client).await {
        Ok(answer) if answer.status().is_success() => Some(flooded.elapsed().as_secs_f64()),
        _ => None,
    };
    let mut shed = 0;
    for closed in shedding {
        if closed.await.map_err(|e| format!("reader task: {e}"))? {
            shed += 1;
        }
    }
    Ok(Run {
        kept_poll_ms: median(&latencies),
        kept_failed,
        newcomer_s,
        shed,
        opened,
        opening_s,
    })
}

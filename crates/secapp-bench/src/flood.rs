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
/// Idle sockets opened: more than the server can hold.
const FLOOD: usize = 5000;
/// How long the server is given to close the idle sockets.
const SHED_WITHIN: Duration = Duration::from_secs(40);
/// Polls measured on the kept connection.
const POLLS: usize = 100;

/// One run's figures.
struct Run {
    kept_poll_ms: f64,
    newcomer_s: Option<f64>,
    shed: usize,
    opened: usize,
}

/// Prints the flood table.
pub async fn idle_flood(args: &RunArgs) -> BenchResult<()> {
    println!(
        "### Idle-socket flood: {FLOOD} sockets that send nothing, server limited to {OPEN_FILES} open files\n"
    );
    println!(
        "| poll on a connection opened before (median ms) | a new client's poll answered after (s) | idle sockets closed by the server within {} s |",
        SHED_WITHIN.as_secs()
    );
    println!("|---|---|---|");
    let mut runs = Vec::new();
    for _ in 0..args.runs {
        runs.push(flood_once(args).await?);
    }
    let kept: Vec<f64> = runs.iter().map(|run| run.kept_poll_ms).collect();
    let newcomer: Vec<f64> = runs.iter().filter_map(|run| run.newcomer_s).collect();
    let unanswered = runs.len() - newcomer.len();
    let shed: Vec<String> = runs
        .iter()
        .map(|run| format!("{} of {}", run.shed, run.opened))
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
        "| {} | {newcomer} | {} |\n",
        summary(&kept, 2),
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

    let mut idle = Vec::with_capacity(FLOOD);
    for n in 0..FLOOD {
        // Past the server's backlog a connect hangs in SYN retries.
        match tokio::time::timeout(Duration::from_secs(1), connect(server.addr, n)).await {
            Ok(Ok(socket)) => idle.push(socket),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let opened = idle.len();
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
    for _ in 0..POLLS {
        let started = Instant::now();
        poll(&kept)
            .await
            .map_err(|e| format!("poll during the flood: {e}"))?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
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
        newcomer_s,
        shed,
        opened,
    })
}

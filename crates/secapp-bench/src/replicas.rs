//! One server on SQLite next to three on one PostgreSQL database behind
//! HAProxy (the deploy kit's configuration), in the same run, interleaved:
//! plain polls and durable publishes with `wrk`, 64 connections each.
//!
//! Needs a PostgreSQL (`SECAPP_BENCH_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; a database of its own is
//! created and dropped) with `psql`, and `haproxy` (`apt-get install haproxy`).

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::load::{PUBLISH_LUA, header, median_of, wrk};
use crate::servers::{Server, TOKEN};
use crate::stats::{percentile, summary};
use crate::watchers::{self, CONNECT_BATCH, Kind};
use crate::{BenchResult, RunArgs};

/// HAProxy in the foreground, stopped on drop.
struct Balancer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn psql(url: &str, sql: &str) -> BenchResult<()> {
    let output = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .map_err(|e| format!("run psql: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "psql {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn balancer(servers: &[&Server]) -> BenchResult<Balancer> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .map_err(|e| format!("probe a port: {e}"))?
        .port();
    let backends: String = servers
        .iter()
        .enumerate()
        .map(|(n, server)| format!("    server secapp{n} {} check\n", server.addr))
        .collect();
    let config = include_str!("../../../deploy/haproxy/haproxy.cfg")
        .replace("bind :8080", &format!("bind 127.0.0.1:{port}"))
        .replace(
            "    server-template secapp 3 secapp:8000 check resolvers docker init-addr none\n",
            &backends,
        )
        .replace("    log stdout format raw local0 info\n", "")
        .lines()
        .filter(|line| {
            !line.starts_with("resolvers") && !line.trim_start().starts_with("nameserver")
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let path = dir.path().join("haproxy.cfg");
    std::fs::File::create(&path)
        .and_then(|mut file| file.write_all(config.as_bytes()))
        .map_err(|e| format!("write the HAProxy config: {e}"))?;
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start haproxy (apt-get install haproxy): {e}"))?;
    Ok(Balancer {
        child,
        port,
        _dir: dir,
    })
}

/// Waits until the balancer answers `/readyz` with 200 several times in a
/// row (every server up and checked).
async fn wait_ready(base: &str) -> BenchResult<()> {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let mut ready = 0;
        for _ in 0..6 {
            if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
                ready += usize::from(response.status() == 200);
            }
        }
        if ready == 6 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the balanced servers never became ready".into())
}

/// The table of one server on SQLite against three on PostgreSQL.
pub async fn replicas(args: &RunArgs) -> BenchResult<()> {
    let server_url = std::env::var("SECAPP_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let database = format!("secapp_bench_{}", std::process::id());
    psql(&server_url, &format!("DROP DATABASE IF EXISTS {database}"))?;
    psql(&server_url, &format!("CREATE DATABASE {database}"))?;
    let (base_url, _) = server_url
        .rsplit_once('/')
        .ok_or("SECAPP_BENCH_DATABASE_URL has no database part")?;
    let database_url = format!("{base_url}/{database}");
    let measured = measure(args, &database_url).await;
    psql(
        &server_url,
        &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
    )?;
    measured
}

async fn measure(args: &RunArgs, database_url: &str) -> BenchResult<()> {
    let single = Server::secapp(args).await?;
    let env = [("SECAPP_DATABASE_URL", database_url)];
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Server::secapp_with_env(args, &env).await?);
    }
    let balancer = balancer(&replicas.iter().collect::<Vec<_>>())?;
    let balanced = format!("http://127.0.0.1:{}", balancer.port);
    wait_ready(&balanced).await?;

    let mut script = tempfile::NamedTempFile::new().map_err(|e| format!("temp file: {e}"))?;
    script
        .write_all(PUBLISH_LUA.as_bytes())
        .map_err(|e| format!("write the wrk script: {e}"))?;
    let script_path = script.path().to_string_lossy().into_owned();
    let poll_args = [header("App-name", "bench-poller"), header("Token", TOKEN)].concat();
    let publish_args = [
        header("App-name", "bench-publisher"),
        header("Token", TOKEN),
        ["-s".to_owned(), script_path],
    ]
    .concat();
    let poll_args: Vec<&str> = poll_args.iter().map(String::as_str).collect();
    let publish_args: Vec<&str> = publish_args.iter().map(String::as_str).collect();
    let targets = [single.base(), balanced];
    // Per target: polls, publishes.
    let mut rates = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for _ in 0..args.runs {
        for (target, rates) in targets.iter().zip(rates.iter_mut()) {
            let url = format!("{target}/secapp/update");
            rates[0].push(wrk(64, args.duration, &url, &poll_args)?);
            rates[1].push(wrk(64, args.duration, &url, &publish_args)?);
        }
    }
    println!(
        "### One server on SQLite and three on PostgreSQL behind HAProxy (wrk, 64 connections, {} s per run)\n",
        args.duration.as_secs()
    );
    println!("| case | one server, SQLite | three servers, PostgreSQL, HAProxy | ratio |");
    println!("|---|---|---|---|");
    for (row, name) in ["plain poll, nothing new", "durable publish"]
        .iter()
        .enumerate()
    {
        println!(
            "| {name} | {} | {} | {:.2} |",
            summary(&rates[0][row], 0),
            summary(&rates[1][row], 0),
            median_of(&rates[1][row]) / median_of(&rates[0][row])
        );
    }
    println!();
    drop(balancer);

    println!(
        "### Fan-out to event streams spread over the servers (publish acknowledged → each watcher's receipt)\n"
    );
    println!(
        "| watchers | one server, SQLite: p50 ms | p99 ms | three servers, PostgreSQL: p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|");
    for &count in &args.watchers {
        let alone = spread_fan_out(args, &[&single], count).await?;
        let spread = spread_fan_out(args, &replicas.iter().collect::<Vec<_>>(), count).await?;
        println!(
            "| {count} | {} | {} | {} | {} |",
            alone.0, alone.1, spread.0, spread.1
        );
    }
    println!();
    Ok(())
}

/// `count` stream watchers spread evenly over `servers`; each run publishes
/// on the first and times every watcher's receipt. Answers p50 and p99.
async fn spread_fan_out(
    args: &RunArgs,
    servers: &[&Server],
    count: usize,
) -> BenchResult<(String, String)> {
    let client = reqwest::Client::new();
    let publisher = servers[0];
    let (mut head, _) = publisher.publish(&client, 1).await?;
    // Every server has heard of it before the watchers connect.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (receipts, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(count);
    for batch in (0..count).collect::<Vec<_>>().chunks(CONNECT_BATCH) {
        let connecting: Vec<_> = batch
            .iter()
            .map(|&n| tokio::spawn(watchers::connect(servers[n % servers.len()].addr, n)))
            .collect();
        for (stream, &n) in connecting.into_iter().zip(batch) {
            let stream = stream.await.map_err(|e| format!("connect task: {e}"))??;
            tasks.push(tokio::spawn(watchers::watch(
                stream,
                Kind::Stream,
                n,
                head,
                receipts.clone(),
            )));
        }
    }
    drop(receipts);
    watchers::collect(&mut inbox, head, count, Duration::from_secs(60)).await?;
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for level in 0..args.runs {
        let (id, acked) = publisher.publish(&client, 2 + (level % 4) as i64).await?;
        head = id;
        let seen = watchers::collect(&mut inbox, head, count, Duration::from_secs(60)).await?;
        let mut latencies: Vec<f64> = seen
            .iter()
            .map(|at| at.saturating_duration_since(acked).as_secs_f64() * 1000.0)
            .collect();
        latencies.sort_by(f64::total_cmp);
        p50.push(percentile(&latencies, 50.0));
        p99.push(percentile(&latencies, 99.0));
    }
    for task in tasks {
        task.abort();
    }
    Ok((summary(&p50, 1), summary(&p99, 1)))
}

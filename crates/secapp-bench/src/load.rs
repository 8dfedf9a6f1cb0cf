//! Request rates with `wrk`: polls against the baseline, and durable
//! publishes against the disk's own sync rate.

use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::servers::{REGISTERED_APP, Server, TOKEN};
use crate::stats::{median, summary};
use crate::{BenchResult, RunArgs};

/// wrk script: every request publishes a change ("now", so each may become
/// the head).
pub(crate) const PUBLISH_LUA: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format('{"current_status": %d}', 1 + n % 5))
end
"#;

/// One wrk run: requests per second. Any error answer fails the run.
pub(crate) fn wrk(
    connections: usize,
    duration: Duration,
    url: &str,
    args: &[&str],
) -> BenchResult<f64> {
    let threads = connections.clamp(1, 2).to_string();
    let output = Command::new("wrk")
        .args(["-t", &threads, "-c", &connections.to_string()])
        .args(["-d", &format!("{}s", duration.as_secs().max(1))])
        .args(args)
        .arg(url)
        .output()
        .map_err(|e| format!("run wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(format!("wrk saw errors against {url}:\n{text}"));
    }
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .ok_or_else(|| format!("no rate in wrk's output:\n{text}"))
}

pub(crate) fn header(name: &str, value: &str) -> [String; 2] {
    ["-H".to_owned(), format!("{name}: {value}")]
}

/// Poll rates of the three cursor modes and of the baseline, interleaved run
/// by run so the machine's noise falls on all of them alike.
pub async fn poll_throughput(args: &RunArgs) -> BenchResult<()> {
    let baseline = Server::baseline().await?;
    let secapp = Server::secapp_with_registered_app(args).await?;
    let client = reqwest::Client::new();
    let (head, _) = secapp.publish(&client, 3).await?;
    // The plain poller has been told the head: every poll is "nothing new".
    client
        .get(format!("{}/secapp/update", secapp.base()))
        .header("App-name", "bench-poller")
        .header("Token", TOKEN)
        .send()
        .await
        .map_err(|e| format!("prime the poller: {e}"))?;
    let registered = secapp
        .registered_token
        .clone()
        .ok_or("the secapp server has no registered token")?;
    client
        .get(format!("{}/secapp/update", secapp.base()))
        .bearer_auth(&registered)
        .send()
        .await
        .map_err(|e| format!("prime the registered poller: {e}"))?;
    let ident = [header("App-name", "bench-poller"), header("Token", TOKEN)].concat();
    let own_token = [
        header("App-name", REGISTERED_APP),
        header("Authorization", &format!("Bearer {registered}")),
    ]
    .concat();
    let etag = [
        ident.clone(),
        header("If-None-Match", &format!("\"{head}\"")).to_vec(),
    ]
    .concat();
    let plain = format!("{}/secapp/update", secapp.base());
    let after = format!("{}/secapp/update?after={head}", secapp.base());
    let bare = format!("{}/secapp/update", baseline.base());
    let cases: [(&str, &str, &[String]); 5] = [
        (
            "baseline: bare axum handler reading the two headers",
            &bare,
            &ident,
        ),
        (
            "plain poll, nothing new (server-held cursor)",
            &plain,
            &ident,
        ),
        (
            "plain poll, nothing new, with an application's own token (hashed look-up)",
            &plain,
            &own_token,
        ),
        ("`?after=<head>` → `{}`", &after, &ident),
        ("`If-None-Match: \"<head>\"` → 304", &plain, &etag),
    ];
    println!(
        "### Poll throughput (wrk, {} s per run)\n",
        args.duration.as_secs()
    );
    println!("| case | connections | requests/s | ratio to baseline (medians) |");
    println!("|---|---|---|---|");
    for connections in [64, 256] {
        let mut rates = vec![Vec::new(); cases.len()];
        for _ in 0..args.runs {
            for (i, (_, url, extra)) in cases.iter().enumerate() {
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                rates[i].push(wrk(connections, args.duration, url, &extra)?);
            }
        }
        let base = median_of(&rates[0]);
        for ((name, _, _), rates) in cases.iter().zip(&rates) {
            println!(
                "| {name} | {connections} | {} | {:.2} |",
                summary(rates, 0),
                median_of(rates) / base
            );
        }
    }
    println!();
    Ok(())
}

/// Durable publishes per second at 1, 16 and 64 producers, and the disk's
/// rate of synced 100-byte writes in the same data dir.
pub async fn publish_throughput(args: &RunArgs) -> BenchResult<()> {
    let secapp = Server::secapp(args).await?;
    let dir = secapp
        .data_dir
        .as_ref()
        .map(|d| d.path().to_owned())
        .ok_or("no data dir")?;
    let mut script = tempfile::NamedTempFile::new().map_err(|e| format!("temp file: {e}"))?;
    script
        .write_all(PUBLISH_LUA.as_bytes())
        .map_err(|e| format!("write the wrk script: {e}"))?;
    let script_path = script.path().to_string_lossy().into_owned();
    let url = format!("{}/secapp/update", secapp.base());
    let extra = [
        header("App-name", "bench-publisher"),
        header("Token", TOKEN),
        ["-s".to_owned(), script_path],
    ]
    .concat();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();

    let mut disk = Vec::new();
    let producer_counts = [1, 16, 64];
    let mut rates = vec![Vec::new(); producer_counts.len()];
    for _ in 0..args.runs {
        let probe = dir.clone();
        disk.push(
            tokio::task::spawn_blocking(move || {
                synced_writes_per_second(&probe, Duration::from_secs(3))
            })
            .await
            .map_err(|e| format!("disk probe: {e}"))??,
        );
        for (i, producers) in producer_counts.iter().enumerate() {
            rates[i].push(wrk(*producers, args.duration, &url, &extra)?);
        }
    }
    let disk_median = median_of(&disk);
    println!(
        "### Durable publishes (wrk, {} s per run)\n",
        args.duration.as_secs()
    );
    println!("| case | concurrent producers | per second | ratio to one disk sync |");
    println!("|---|---|---|---|");
    println!(
        "| disk: 100-byte write + fdatasync, one writer | 1 | {} | 1.00 |",
        summary(&disk, 0)
    );
    for (producers, rates) in producer_counts.iter().zip(&rates) {
        println!(
            "| POST /secapp/update, acknowledged after a synced commit | {producers} | {} | {:.2} |",
            summary(rates, 0),
            median_of(rates) / disk_median
        );
    }
    println!();
    Ok(())
}

fn synced_writes_per_second(dir: &std::path::Path, length: Duration) -> BenchResult<f64> {
    let path = dir.join("sync-probe");
    let mut file = std::fs::File::create(&path).map_err(|e| format!("disk probe: {e}"))?;
    let started = Instant::now();
    let mut writes = 0_u32;
    while started.elapsed() < length {
        file.write_all(&[b'x'; 100])
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("disk probe: {e}"))?;
        writes += 1;
    }
    let rate = f64::from(writes) / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    Ok(rate)
}

pub(crate) fn median_of(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    median(&sorted)
}

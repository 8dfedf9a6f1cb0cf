//! Thousands of watchers on raw loopback TCP: event streams or held long
//! polls. Each watcher reports when it received each new head; the harness
//! measures from the publish's acknowledgement to every receipt, and the
//! server's memory with the watchers connected and idle.
//!
//! Raw sockets rather than an HTTP client keep the watchers' own cost low,
//! since they share the machine with the server. Connections are spread over
//! several loopback source addresses, so their count is not bounded by one
//! address's ephemeral ports.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::servers::{Server, TOKEN};
use crate::stats::{percentile, summary};
use crate::{BenchResult, RunArgs};

/// Connections per loopback source address (ephemeral ports are ~28,000).
const PER_SOURCE: usize = 20_000;
/// Connections opened at once, under the server's accept backlog.
pub(crate) const CONNECT_BATCH: usize = 500;

/// Which kind of watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET /secapp/stream`.
    Stream,
    /// `GET /secapp/update?after=<head>&wait=55`, re-issued after each answer.
    LongPoll,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Stream => "event streams",
            Self::LongPoll => "long polls",
        }
    }
}

/// A watcher saw head `id` at `at`.
pub(crate) struct Receipt {
    id: i64,
    at: Instant,
}

/// Fan-out latency and memory per watcher for each configured count.
pub async fn fan_out(args: &RunArgs, kind: Kind) -> BenchResult<()> {
    println!(
        "### Fan-out to {} (publish acknowledged → each watcher's receipt)\n",
        kind.name()
    );
    println!("| watchers | p50 ms | p99 ms | max ms | server memory per watcher |");
    println!("|---|---|---|---|---|");
    for &count in &args.watchers {
        let row = measure(args, kind, count).await?;
        println!("| {count} | {row} |");
    }
    println!();
    Ok(())
}

async fn measure(args: &RunArgs, kind: Kind, count: usize) -> BenchResult<String> {
    let server = Server::secapp(args).await?;
    let client = reqwest::Client::new();
    let (mut head, _) = server.publish(&client, 1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = server.rss_kib()?;

    let (receipts, mut inbox) = mpsc::unbounded_channel();
    // Each watcher sends its request as soon as it is connected, as a real
    // client does: a connection that stays silent is closed at the server's
    // header-read timeout, and connecting 10,000 takes longer than that.
    let mut tasks = Vec::with_capacity(count);
    for batch in (0..count).collect::<Vec<_>>().chunks(CONNECT_BATCH) {
        let connecting: Vec<_> = batch
            .iter()
            .map(|&n| tokio::spawn(connect(server.addr, n)))
            .collect();
        for (stream, &n) in connecting.into_iter().zip(batch) {
            let stream = stream.await.map_err(|e| format!("connect task: {e}"))??;
            tasks.push(tokio::spawn(watch(stream, kind, n, head, receipts.clone())));
        }
    }
    drop(receipts);
    // Streams announce themselves with the head they are sent at connect;
    // long polls are held silently, so give the server time to take them all.
    match kind {
        Kind::Stream => {
            collect(&mut inbox, head, count, Duration::from_secs(60)).await?;
        }
        Kind::LongPoll => {
            tokio::time::sleep(Duration::from_millis(1000 + count as u64 / 10)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded_rss = server.rss_kib()?;
    let per_watcher = loaded_rss.saturating_sub(idle_rss) as f64 * 1024.0 / count as f64;

    let (mut p50, mut p99, mut max) = (Vec::new(), Vec::new(), Vec::new());
    for level in 0..args.runs {
        let (id, acked) = server.publish(&client, 2 + (level % 4) as i64).await?;
        head = id;
        let seen = collect(&mut inbox, head, count, Duration::from_secs(60)).await?;
        let mut latencies: Vec<f64> = seen
            .iter()
            .map(|at| at.saturating_duration_since(acked).as_secs_f64() * 1000.0)
            .collect();
        latencies.sort_by(f64::total_cmp);
        p50.push(percentile(&latencies, 50.0));
        p99.push(percentile(&latencies, 99.0));
        max.push(percentile(&latencies, 100.0));
        // Let long pollers re-issue their requests before the next publish.
        if kind == Kind::LongPoll {
            tokio::time::sleep(Duration::from_millis(500 + count as u64 / 20)).await;
        }
    }
    for task in tasks {
        task.abort();
    }
    Ok(format!(
        "{} | {} | {} | {:.0} B ({:.1} KiB)",
        summary(&p50, 1),
        summary(&p99, 1),
        summary(&max, 1),
        per_watcher,
        per_watcher / 1024.0
    ))
}

/// Waits for `count` receipts of head `id`, ignoring older ones.
pub(crate) async fn collect(
    inbox: &mut mpsc::UnboundedReceiver<Receipt>,
    id: i64,
    count: usize,
    patience: Duration,
) -> BenchResult<Vec<Instant>> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        match tokio::time::timeout_at(deadline, inbox.recv()).await {
            Ok(Some(receipt)) if receipt.id == id => seen.push(receipt.at),
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(format!(
                    "watchers hung up after {} of {count} receipts",
                    seen.len()
                ));
            }
            Err(_) => {
                return Err(format!(
                    "only {} of {count} watchers saw head {id} within {patience:?}",
                    seen.len()
                ));
            }
        }
    }
    Ok(seen)
}

/// Opens `count` connections, a batch at a time.
async fn connect_all(server: SocketAddr, count: usize) -> BenchResult<Vec<TcpStream>> {
    let mut open = Vec::with_capacity(count);
    for batch in (0..count).collect::<Vec<_>>().chunks(CONNECT_BATCH) {
        let connecting: Vec<_> = batch
            .iter()
            .map(|&n| tokio::spawn(connect(server, n)))
            .collect();
        for stream in connecting {
            open.push(stream.await.map_err(|e| format!("connect task: {e}"))??);
        }
    }
    Ok(open)
}

/// Opens connection `n` from its loopback source address.
pub async fn connect(server: SocketAddr, n: usize) -> BenchResult<TcpStream> {
    let source = Ipv4Addr::new(
        127,
        0,
        1,
        1 + u8::try_from(n / PER_SOURCE).map_err(|_| "too many watchers")?,
    );
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::from((source, 0)))
        .map_err(|e| format!("bind {source}: {e}"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| format!("connect watcher {n}: {e} (raise `ulimit -n`?)"))
}

/// One watcher: reads heads and reports each receipt until the socket closes.
pub(crate) async fn watch(
    mut stream: TcpStream,
    kind: Kind,
    n: usize,
    head: i64,
    receipts: mpsc::UnboundedSender<Receipt>,
) -> BenchResult<()> {
    let app = format!("watcher-{n}");
    match kind {
        Kind::Stream => {
            let request = format!(
                "GET /secapp/stream HTTP/1.1\r\nHost: bench\r\nApp-name: {app}\r\nToken: {TOKEN}\r\n\r\n"
            );
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut pending = Vec::new();
            let mut buf = [0_u8; 4096];
            loop {
                let read = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
                if read == 0 {
                    return Ok(());
                }
                let at = Instant::now();
                pending.extend_from_slice(&buf[..read]);
                for id in take_event_ids(&mut pending) {
                    let _ = receipts.send(Receipt { id, at });
                }
            }
        }
        Kind::LongPoll => {
            let mut held = head;
            loop {
                let request = format!(
                    "GET /secapp/update?after={held}&wait=55 HTTP/1.1\r\nHost: bench\r\nApp-name: {app}\r\nToken: {TOKEN}\r\n\r\n"
                );
                stream
                    .write_all(request.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let body = read_response(&mut stream).await?;
                let at = Instant::now();
                if let Some(id) = json_id(&body) {
                    held = id;
                    let _ = receipts.send(Receipt { id, at });
                }
            }
        }
    }
}

/// Removes complete events from `pending` and returns their ids.
fn take_event_ids(pending: &mut Vec<u8>) -> Vec<i64> {
    let mut ids = Vec::new();
    while let Some(end) = find(pending, b"\n\n") {
        let block: Vec<u8> = pending.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&block);
        if let Some(id) = text
            .lines()
            .find_map(|line| line.strip_prefix("id: "))
            .and_then(|id| id.trim().parse().ok())
        {
            ids.push(id);
        }
    }
    ids
}

/// Reads one HTTP/1.1 response with a `content-length` and returns its body.
async fn read_response(stream: &mut TcpStream) -> BenchResult<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0_u8; 2048];
    loop {
        if let Some(end) = find(&data, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or("a long-poll answer without content-length")?;
            if data.len() >= end + 4 + length {
                return Ok(data[end + 4..end + 4 + length].to_vec());
            }
        }
        let read = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("the server closed a long poll".into());
        }
        data.extend_from_slice(&buf[..read]);
    }
}

fn json_id(body: &[u8]) -> Option<i64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value["status_change_id"].as_i64()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The floor under the memory figures: what the bare baseline server holds
/// per idle HTTP/1.1 keep-alive connection that has served one request.
pub async fn connection_floor(args: &RunArgs) -> BenchResult<()> {
    println!("### Memory floor: the bare axum baseline holding idle keep-alive connections\n");
    println!("| connections | baseline memory per connection |");
    println!("|---|---|");
    for &count in &args.watchers {
        let server = Server::baseline().await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss = server.rss_kib()?;
        let mut open = connect_all(server.addr, count).await?;
        for (n, stream) in open.iter_mut().enumerate() {
            let request = format!(
                "GET /secapp/update HTTP/1.1\r\nHost: bench\r\nApp-name: watcher-{n}\r\nToken: {TOKEN}\r\n\r\n"
            );
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            read_response(stream).await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let per = server.rss_kib()?.saturating_sub(idle_rss) as f64 * 1024.0 / count as f64;
        println!("| {count} | {per:.0} B ({:.1} KiB) |", per / 1024.0);
        drop(open);
    }
    println!();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_taken_from_complete_events_only() {
        let mut pending = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\nid: 4\ndata: {}\n\n:heartbeat\n\nid: 5\nda".to_vec();
        assert_eq!(take_event_ids(&mut pending), vec![4]);
        pending.extend_from_slice(b"ta: {}\n\n");
        assert_eq!(take_event_ids(&mut pending), vec![5]);
        assert!(pending.is_empty());
    }
}

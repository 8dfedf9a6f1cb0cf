//! The client library's `watch()` through what a fleet lives through: the
//! real binary stopped with SIGTERM and killed with SIGKILL and started
//! again on the same address, connections cut, idle streams taken for dead,
//! and a balancer moving the client to another replica. Each watcher must
//! hand out ids that only grow, and end on the final head.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use secapp_client::{Client, Publish, State, Transport, WatchOptions};
use secapp_server::config::Config;
use secapp_server::store::conformance::TempPostgres;
use tokio::sync::mpsc;

use crate::helpers::{ServerProcess, TOKEN, spawn_app_with, with_shared_token};
use crate::tcp_proxy::TcpProxy;

/// Watchers in tasks, reporting what they hand out.
struct Watchers {
    names: Vec<&'static str>,
    seen: Vec<Vec<State>>,
    told: mpsc::UnboundedReceiver<(usize, State)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Watchers {
    /// One watcher per transport, as `app` at `base`.
    fn start(
        base: &str,
        app: &str,
        transports: &[(&'static str, Transport)],
        idle: Duration,
    ) -> Self {
        let (tell, told) = mpsc::unbounded_channel();
        let client = client(base, app);
        let tasks = transports
            .iter()
            .enumerate()
            .map(|(index, (_, transport))| {
                let options = WatchOptions::default()
                    .transport(*transport)
                    .max_backoff(Duration::from_millis(400))
                    .stream_idle(idle)
                    .long_poll(Duration::from_secs(5));
                let mut watch = client.watch_with(options);
                let tell = tell.clone();
                tokio::spawn(async move {
                    while let Some(state) = watch.next().await {
                        let state = state.expect("only errors retrying cures");
                        if tell.send((index, state)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Self {
            names: transports.iter().map(|(name, _)| *name).collect(),
            seen: vec![Vec::new(); transports.len()],
            told,
            tasks,
        }
    }

    /// Waits until every watcher's last state is `id`.
    async fn until_all_on(&mut self, id: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self
            .seen
            .iter()
            .any(|seen| seen.last().map(|s| s.id) != Some(id))
        {
            let (index, state) = tokio::time::timeout_at(deadline, self.told.recv())
                .await
                .unwrap_or_else(|_| panic!("not all on {id} within 30 s: {:?}", self.ids()))
                .expect("the watchers run");
            self.seen[index].push(state);
        }
    }

    fn ids(&self) -> Vec<(&'static str, Vec<i64>)> {
        self.names
            .iter()
            .zip(&self.seen)
            .map(|(name, seen)| (*name, seen.iter().map(|s| s.id).collect()))
            .collect()
    }

    /// Every watcher's ids only grew, and each saw every id in `must`.
    fn assert_exact(&self, must: &[i64]) {
        for (name, ids) in self.ids() {
            assert!(
                ids.windows(2).all(|pair| pair[0] < pair[1]),
                "{name} repeated or went back: {ids:?}"
            );
            for id in must {
                assert!(ids.contains(id), "{name} missed {id}: {ids:?}");
            }
        }
    }
}

fn client(base: &str, app: &str) -> Client {
    Client::builder(base)
        .app(app)
        .token(TOKEN)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn publish(producer: &Client, level: i64) -> i64 {
    producer.publish(&Publish::level(level)).await.unwrap()
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

const BOTH: [(&str, Transport); 2] = [
    ("stream", Transport::Stream),
    ("long-poll", Transport::LongPoll),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_come_through_sigterm_and_sigkill_restarts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let envs = [("SECAPP_API_TOKEN", TOKEN)];
    let mut server = ServerProcess::start_at(dir.path(), addr, &envs);
    let base = server.base();
    let producer = client(&base, "security-team");
    let mut watchers = Watchers::start(&base, "billing", &BOTH, Duration::from_secs(45));

    let first = publish(&producer, 2).await;
    watchers.until_all_on(first).await;
    let mut must = vec![first];
    for stop in ["TERM", "KILL"] {
        if stop == "TERM" {
            assert_eq!(server.terminate(), Some(0));
        } else {
            server.kill_9();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        server = ServerProcess::start_at(dir.path(), addr, &envs);
        // Reconnected (the backoff is at most 400 ms) before the next
        // change: a watcher that did not resume would be sent `first` again.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let id = publish(&producer, 3).await;
        watchers.until_all_on(id).await;
        must.push(id);
    }
    // Two changes while the watchers are still reconnecting: the final
    // one is what they must end on; the one before it they may skip.
    server.kill_9();
    server = ServerProcess::start_at(dir.path(), addr, &envs);
    publish(&producer, 4).await;
    let last = publish(&producer, 5).await;
    watchers.until_all_on(last).await;
    must.push(last);
    // Nothing more arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok((index, state)) = watchers.told.try_recv() {
        watchers.seen[index].push(state);
    }
    watchers.assert_exact(&must);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_come_through_cut_connections_and_idle_streams_exactly() {
    let app = spawn_app_with(with_shared_token).await;
    let target: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let proxy = TcpProxy::start(target).await;
    let through = format!("http://127.0.0.1:{}", proxy.port);
    let producer = client(&app.base, "security-team");
    // Streams are taken for dead after 700 ms without a byte (the server's
    // heartbeat is 15 s): idle streams reopen, with Last-Event-ID, all along.
    let transports = [
        ("auto", Transport::Auto),
        ("stream", Transport::Stream),
        ("long-poll", Transport::LongPoll),
    ];
    let mut watchers =
        Watchers::start(&through, "billing", &transports, Duration::from_millis(700));

    let first = publish(&producer, 2).await;
    watchers.until_all_on(first).await;
    let mut must = vec![first];
    for _ in 0..3 {
        proxy.cut();
        let id = publish(&producer, 4).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        proxy.restore();
        watchers.until_all_on(id).await;
        must.push(id);
        // Idle long enough for the streams to be reopened twice.
        tokio::time::sleep(Duration::from_millis(1600)).await;
    }
    watchers.assert_exact(&must);
}

async fn replica(database: &str) -> crate::helpers::TestApp {
    let url = database.to_owned();
    spawn_app_with(move |config: &mut Config| {
        config.database_url = Some(url.parse().expect("a PostgreSQL URL"));
        with_shared_token(config);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_moved_to_another_replica_resume_exactly() {
    let database = TempPostgres::new();
    let a = replica(database.url().await).await;
    let b = replica(database.url().await).await;
    let addr = |base: &str| {
        base.trim_start_matches("http://")
            .parse::<SocketAddr>()
            .unwrap()
    };
    let proxy = TcpProxy::start(addr(&a.base)).await;
    let through = format!("http://127.0.0.1:{}", proxy.port);
    let on_b = client(&b.base, "security-team");
    let transports = [
        ("auto", Transport::Auto),
        ("long-poll", Transport::LongPoll),
    ];
    let mut watchers = Watchers::start(&through, "billing", &transports, Duration::from_secs(45));

    // Published on b, heard through a.
    let first = publish(&on_b, 3).await;
    watchers.until_all_on(first).await;
    // The balancer moves everyone to b; a goes away.
    proxy.retarget(addr(&b.base));
    proxy.cut();
    proxy.restore();
    a.stop().await;
    // Reconnected to b before the next change: a watcher that did not
    // resume would be sent `first` again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = publish(&on_b, 5).await;
    watchers.until_all_on(second).await;
    let third = publish(&on_b, 1).await;
    watchers.until_all_on(third).await;
    watchers.assert_exact(&[first, second, third]);
}

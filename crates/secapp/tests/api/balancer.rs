//! Three real `secapp` servers on one PostgreSQL database behind a real
//! HAProxy (round robin, health-checked on `/readyz`), as
//! `deploy/haproxy/haproxy.cfg` sets it up: every guarantee holds through
//! the balancer, and when one server is killed with SIGKILL mid-load the
//! balancer routes around it and no acknowledged change is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secapp_server::store::conformance::TempPostgres;
use serde_json::Value;

use crate::helpers::{Api, ServerProcess, SseReader, binary};

/// HAProxy in the foreground, stopped when dropped.
struct Balancer {
    child: Child,
    base: String,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Balancer {
    /// The deploy kit's configuration, with the servers and port of this test.
    fn start(dir: &Path, servers: &[String]) -> Self {
        let port = free_port();
        let kit = include_str!("../../../../deploy/haproxy/haproxy.cfg");
        let backends: String = servers
            .iter()
            .enumerate()
            .map(|(n, addr)| format!("    server secapp{n} {addr} check\n"))
            .collect();
        let config = kit
            .replace("bind :8080", &format!("bind 127.0.0.1:{port}"))
            .replace(
                "    server-template secapp 3 secapp:8000 check resolvers docker init-addr none\n",
                &backends,
            )
            .lines()
            .filter(|line| {
                !line.starts_with("resolvers") && !line.trim_start().starts_with("nameserver")
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("haproxy (apt-get install haproxy)");
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, base }
    }

    /// Waits until six requests in a row find a ready server (two rounds
    /// over the three).
    async fn wait_all_ready(&self, client: &reqwest::Client) {
        wait_until("every server is ready behind the balancer", async || {
            let mut ready = 0;
            for _ in 0..6 {
                if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await {
                    ready += usize::from(r.status() == 200);
                }
            }
            ready == 6
        })
        .await;
    }
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test]
async fn three_servers_behind_haproxy_keep_every_guarantee_and_survive_a_kill_9() {
    let database = TempPostgres::new();
    let url = database.url().await.to_owned();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("SECAPP_DATABASE_URL", url.as_str()),
        ("SECAPP_WATCH_INTERVAL", "300ms"),
        // A killed leader's duties pass on when its lease runs out.
        ("SECAPP_LEADER_LEASE", "2s"),
    ];
    let first = ServerProcess::start(&dir.path().join("a"), &env);
    let admin = first.admin_token();
    let mut servers = vec![
        Some(first),
        Some(ServerProcess::start(&dir.path().join("b"), &env)),
        Some(ServerProcess::start(&dir.path().join("c"), &env)),
    ];
    let addrs: Vec<String> = servers
        .iter()
        .map(|s| s.as_ref().unwrap().addr.to_string())
        .collect();
    let balancer = Balancer::start(dir.path(), &addrs);
    let client = reqwest::Client::new();
    let api = Api::own_tokens(client.clone(), &balancer.base, &admin);
    balancer.wait_all_ready(&client).await;

    // 200 consumers, registered through whichever server the balancer picks.
    let apps: Vec<String> = (0..200).map(|n| format!("fleet-{n}")).collect();
    for app in &apps {
        api.token(app).await;
    }
    for n in 0..3 {
        api.token(&format!("watcher-{n}")).await;
        api.token(&format!("waiter-{n}")).await;
    }
    api.token("security").await;
    // A new token is known to every server within about a second.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Watchers on every server: a stream and a long poll each.
    let mut streams = Vec::new();
    for n in 0..3 {
        let watcher = format!("watcher-{n}");
        streams.push(SseReader::new(SseReader::open(&api, &watcher, &[]).await));
    }
    let mut long_polls = Vec::new();
    for n in 0..3 {
        let request = api
            .request(
                reqwest::Method::GET,
                "/secapp/update?wait=30",
                &format!("waiter-{n}"),
            )
            .await;
        long_polls.push(tokio::spawn(async move {
            request.send().await.unwrap().json::<Value>().await.unwrap()
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let id = api.publish("security", 4, "2026-03-01T12:00:00Z").await;
    for stream in &mut streams {
        let (event, data) = stream
            .next_event(Duration::from_secs(5))
            .await
            .expect("a stream event");
        assert_eq!(
            (event, data["current_status"].as_i64()),
            (id.to_string(), Some(4))
        );
    }
    for long_poll in long_polls {
        let answer = tokio::time::timeout(Duration::from_secs(5), long_poll)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer["status_change_id"], id);
    }
    // Each of the 200 is told the change once, however its polls are spread.
    let api_ref = &api;
    let polls = apps
        .iter()
        .flat_map(|app| (0..3).map(move |_| async move { (app.clone(), api_ref.poll(app).await) }));
    let mut told: BTreeMap<String, usize> = BTreeMap::new();
    for (app, (status, answer)) in futures_util::future::join_all(polls).await {
        assert_eq!(status, 200);
        if answer["status_change_id"] == id {
            *told.entry(app).or_default() += 1;
        }
    }
    assert!(apps.iter().all(|app| told.get(app) == Some(&1)), "{told:?}");
    // The balancer spread the polls over all three servers.
    for addr in &addrs {
        let text = client
            .get(format!("http://{addr}/metrics"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let polls: f64 = text
            .lines()
            .filter(|line| line.starts_with("secapp_polls_total{app=\"fleet-"))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        assert!(polls >= 100.0, "{addr} answered {polls} of the 600 polls");
    }

    // A token revoked through one server is refused by all.
    let (token, token_id) = {
        let response = client
            .post(format!("{}/admin/apps/fleet-0/tokens", balancer.base))
            .bearer_auth(&admin)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let issued: Value = response.json().await.unwrap();
        (
            issued["token"].as_str().unwrap().to_owned(),
            issued["id"].as_str().unwrap().to_owned(),
        )
    };
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let revoked = client
        .delete(format!("{}/admin/tokens/{token_id}", balancer.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    wait_until("every server refuses the revoked token", async || {
        let mut refused = 0;
        for _ in 0..6 {
            let status = client
                .get(format!("{}/secapp/update", balancer.base))
                .header("App-name", "fleet-0")
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status();
            refused += usize::from(status == 401);
        }
        refused == 6
    })
    .await;

    // One server holds the once-only duties; it is the one killed below.
    let leaders = |alive: Vec<String>| {
        let client = client.clone();
        let admin = admin.clone();
        async move {
            let mut leading = Vec::new();
            for addr in alive {
                let text = client
                    .get(format!("http://{addr}/metrics"))
                    .bearer_auth(&admin)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                if text
                    .lines()
                    .any(|line| line == "secapp_leader 1.0" || line == "secapp_leader 1")
                {
                    leading.push(addr);
                }
            }
            leading
        }
    };
    let mut leader = Vec::new();
    wait_until("exactly one server leads", async || {
        leader = leaders(addrs.clone()).await;
        leader.len() == 1
    })
    .await;
    let victim = addrs.iter().position(|addr| *addr == leader[0]).unwrap();

    // Kill the leader mid-load: every publish acknowledged is kept. Each is
    // retried with its idempotency key until acknowledged.
    let producer = api.token("security").await;
    let publisher = {
        let client = client.clone();
        let base = balancer.base.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..60u32 {
                let body = format!(
                    r#"{{"current_status": {}, "Change_at": "2026-03-01T13:{:02}:{:02}Z"}}"#,
                    1 + n % 5,
                    n / 60,
                    n % 60
                );
                loop {
                    let response = client
                        .post(format!("{base}/secapp/update"))
                        .header("App-name", "security")
                        .header("Idempotency-Key", format!("load-{n}"))
                        .bearer_auth(&producer)
                        .body(body.clone())
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status() == 200 => {
                            let answer: Value = r.json().await.unwrap();
                            acknowledged.push(answer["processed_id"].as_i64().unwrap());
                            break;
                        }
                        // The balancer's 502/503 or ours: try again.
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    servers[victim].take().unwrap().kill_9();
    let acknowledged = tokio::time::timeout(Duration::from_secs(60), publisher)
        .await
        .expect("publishing goes on through the two servers left")
        .unwrap();
    assert_eq!(acknowledged.len(), 60);
    let unique: BTreeSet<i64> = acknowledged.iter().copied().collect();
    assert_eq!(unique.len(), 60, "a retry is never recorded twice");
    let history: Value = client
        .get(format!(
            "{}/secapp/history?limit=1000&app=security",
            balancer.base
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recorded: BTreeSet<i64> = history["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["processed_id"].as_i64().unwrap())
        .collect();
    assert!(
        unique.is_subset(&recorded),
        "every acknowledged change is kept"
    );
    assert_eq!(recorded.len(), 61, "the first change and the 60: no others");
    let survivors: Vec<String> = addrs
        .iter()
        .enumerate()
        .filter(|(n, _)| *n != victim)
        .map(|(_, addr)| addr.clone())
        .collect();
    wait_until(
        "another server takes the once-only duties over",
        async || leaders(survivors.clone()).await.len() == 1,
    )
    .await;
    for server in servers.into_iter().flatten() {
        server.terminate();
    }
    drop(balancer);
}

#[tokio::test]
async fn a_simulated_fleet_through_three_servers_and_haproxy_sees_no_violation() {
    let database = TempPostgres::new();
    let url = database.url().await.to_owned();
    let dir = tempfile::tempdir().unwrap();
    let env = [("SECAPP_DATABASE_URL", url.as_str())];
    let first = ServerProcess::start(&dir.path().join("a"), &env);
    let admin = first.admin_token();
    let servers = [
        first,
        ServerProcess::start(&dir.path().join("b"), &env),
        ServerProcess::start(&dir.path().join("c"), &env),
    ];
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let balancer = Balancer::start(dir.path(), &addrs);
    let client = reqwest::Client::new();
    balancer.wait_all_ready(&client).await;

    // Registered through the balancer, then polled and watched through it:
    // plain pollers are told each head once whichever server answers, and
    // every consumer ends on the final head.
    let output = tokio::process::Command::new(binary())
        .args([
            "simulate",
            "--server",
            &balancer.base,
            "--admin-token",
            &admin,
            "--producers",
            "2",
            "--consumers",
            "12",
            "--speed",
            "600",
            "--duration",
            "30m",
            "--json",
        ])
        .env_remove("SECAPP_TOKEN")
        .env("SECAPP_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    assert!(report["publishes"].as_u64().unwrap() >= 4, "{report}");
    drop(balancer);
    drop(servers);
}

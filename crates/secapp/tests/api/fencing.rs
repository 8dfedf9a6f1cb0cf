//! Two replicas on one PostgreSQL database relaying to one webhook receiver
//! (a sink of the same relay as the brokers). The leader is paused
//! (SIGSTOP) in the middle of a batch, past its lease but not past its
//! send's timeout: once resumed, its send goes on, and only its lease check
//! stops it from sending the rest of the batch. The other replica takes the
//! duties over and, once the batch's hold ends, delivers it all; the
//! paused one's record of what it sent is refused (its epoch is old), so
//! the one it sent is sent again.

use std::time::{Duration, Instant};

use secapp_server::store::conformance::TempPostgres;
use serde_json::Value;

use crate::helpers::{Api, ServerProcess};
use crate::receiver::{Receiver, SECRET};

/// Whether the server at `base` holds the once-only duties, by its metrics.
async fn leads(client: &reqwest::Client, base: &str, admin: &str) -> bool {
    let Ok(response) = client
        .get(format!("{base}/metrics"))
        .bearer_auth(admin)
        .send()
        .await
    else {
        return false;
    };
    response
        .text()
        .await
        .unwrap_or_default()
        .lines()
        .any(|line| line == "secapp_leader 1.0" || line == "secapp_leader 1")
}

/// The event ids the receiver was sent, in arrival order.
fn sent_ids(receiver: &Receiver) -> Vec<i64> {
    receiver
        .received()
        .iter()
        .map(|request| {
            let event: Value = request.json();
            event["id"].as_str().unwrap().parse().unwrap()
        })
        .collect()
}

async fn wait_for_requests(receiver: &Receiver, n: usize, within: Duration) {
    let started = Instant::now();
    while receiver.received().len() < n {
        assert!(
            started.elapsed() < within,
            "only {:?} of {n} requests arrived",
            sent_ids(receiver)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_sends_nothing_once_it_resumes() {
    let database = TempPostgres::new();
    let url = database.url().await.to_owned();
    let receiver = Receiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("secapp.toml");
    std::fs::write(
        &config,
        format!(
            "watch_interval = \"100ms\"\nleader_lease = \"2s\"\nwebhook_timeout = \"8s\"\n\
             [[sinks]]\nname = \"hooks\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
            receiver.url
        ),
    )
    .unwrap();
    let env = [
        ("SECAPP_DATABASE_URL", url.as_str()),
        ("SECAPP_CONFIG", config.to_str().unwrap()),
    ];
    let first = ServerProcess::start(&dir.path().join("a"), &env);
    let admin = first.admin_token();
    let servers = [first, ServerProcess::start(&dir.path().join("b"), &env)];
    let client = reqwest::Client::new();
    let started = Instant::now();
    let leader = loop {
        let mut leading = Vec::new();
        for (n, server) in servers.iter().enumerate() {
            if leads(&client, &server.base(), &admin).await {
                leading.push(n);
            }
        }
        if let [one] = leading[..] {
            break one;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no single leader: {leading:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let other = 1 - leader;
    let api = Api::own_tokens(client.clone(), &servers[other].base(), &admin);

    // The leader claims all three and sends the first, whose answer waits.
    receiver.hold_answers();
    let mut ids = Vec::new();
    for (level, minute) in [(2, 0), (4, 1), (3, 2)] {
        ids.push(
            api.publish("security", level, &format!("2026-03-01T12:{minute:02}:00Z"))
                .await,
        );
    }
    wait_for_requests(&receiver, 1, Duration::from_secs(10)).await;
    servers[leader].signal("STOP");
    receiver.answer();
    // Paused for twice its lease, well inside its 8 s send timeout: the
    // other replica takes the duties meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    servers[leader].signal("CONT");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sent_ids(&receiver),
        [ids[0]],
        "the resumed leader got its answer and sent no more of its batch"
    );
    assert!(
        !leads(&client, &servers[leader].base(), &admin).await,
        "and does not lead again"
    );

    // Once the batch's hold ends (the 8 s timeout and 10 s more), the new
    // leader sends all three, the first again: the fenced one's record of
    // it was refused.
    wait_for_requests(&receiver, 4, Duration::from_secs(40)).await;
    assert_eq!(
        sent_ids(&receiver),
        [ids[0], ids[0], ids[1], ids[2]],
        "the first from the fenced leader, then all three in order from the new one"
    );

    // The new leader goes on relaying, each change once.
    let next = api.publish("security", 5, "2026-03-01T12:03:00Z").await;
    wait_for_requests(&receiver, 5, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sent_ids(&receiver), [ids[0], ids[0], ids[1], ids[2], next]);
    drop(servers);
}

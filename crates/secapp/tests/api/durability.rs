//! What survives a restart and a `kill -9`, tested on the real binary.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{Api, ServerProcess, register_offline};

/// Every change recorded in the data dir's database: id → (level, Change_at).
fn recorded_changes(data_dir: &std::path::Path) -> BTreeMap<i64, (i64, String)> {
    let conn = rusqlite::Connection::open(data_dir.join("secapp.db")).unwrap();
    let mut statement = conn
        .prepare("SELECT id, level, changed_at FROM changes")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_change_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let api = Api::own_tokens(
        reqwest::Client::new(),
        &server.base(),
        &server.admin_token(),
    );
    api.token("producer").await;
    let acked: Arc<Mutex<BTreeMap<i64, (i64, String)>>> = Arc::default();
    let mut producers = tokio::task::JoinSet::new();
    for producer in 0..8_i64 {
        let api = api.clone();
        let acked = acked.clone();
        producers.spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            for n in 0..10_000_i64 {
                let level = 1 + (producer + n) % 5;
                let at = format!(
                    "2026-03-01T{:02}:{:02}:{:02}.{:03}Z",
                    n / 3600 % 24,
                    n / 60 % 60,
                    n % 60,
                    producer
                );
                let body = json!({"current_status": level, "Change_at": at}).to_string();
                let Ok(response) = api
                    .with_client(client.clone())
                    .try_publish_raw("producer", body)
                    .await
                else {
                    return; // the server is gone
                };
                let Ok(answer) = response.json::<serde_json::Value>().await else {
                    return;
                };
                let id = answer["processed_id"].as_i64().expect("acknowledged");
                acked.lock().unwrap().insert(id, (level, at));
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill_9();
    while producers.join_next().await.is_some() {}

    let acked = acked.lock().unwrap().clone();
    eprintln!("acknowledged before kill -9: {}", acked.len());
    assert!(
        acked.len() > 20,
        "the test must kill mid-stream, after some acks ({})",
        acked.len()
    );
    let recorded = recorded_changes(dir.path());
    for (id, change) in &acked {
        assert_eq!(
            recorded.get(id),
            Some(change),
            "acknowledged change {id} was lost"
        );
    }

    // The restarted server's head is the latest Change_at among what was
    // recorded (first recorded on a tie), and ids continue after the last one.
    let server = ServerProcess::start(dir.path(), &[]);
    let api = api.at(&server.base());
    let expected = recorded
        .iter()
        .max_by(|(a_id, (_, a_at)), (b_id, (_, b_at))| a_at.cmp(b_at).then(b_id.cmp(a_id)))
        .map(|(id, (level, at))| json!({"current_status": level, "status_change_id": id, "Change_at": at}))
        .unwrap();
    assert_eq!(api.poll("checker").await.1, expected);
    let next = api.publish("producer", 1, "2026-03-02T00:00:00Z").await;
    assert!(next > *recorded.keys().last().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_restart_keeps_ids_the_head_and_every_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let api = Api::own_tokens(
        reqwest::Client::new(),
        &server.base(),
        &server.admin_token(),
    );
    api.token("not-told-before").await;
    let first = api.publish("security", 4, "2026-03-01T12:00:00Z").await;
    let (_, told) = api.poll("told-before").await;
    assert_eq!(told["status_change_id"], json!(first));
    // Exit straight after the poll: the cursor is written back at shutdown,
    // not only by the periodic flush.
    assert_eq!(server.terminate(), Some(0), "a SIGTERM shutdown exits 0");

    let server = ServerProcess::start(dir.path(), &[]);
    let api = api.at(&server.base());
    assert_eq!(
        api.poll("told-before").await.1,
        json!({}),
        "told again after restart"
    );
    let (_, untold) = api.poll("not-told-before").await;
    assert_eq!(untold["status_change_id"], json!(first));
    assert_eq!(untold["current_status"], json!(4));
    let second = api.publish("security", 5, "2026-03-01T13:00:00Z").await;
    assert!(second > first);
    let (_, news) = api.poll("told-before").await;
    assert_eq!(
        news["status_change_id"],
        json!(second),
        "the head version continued"
    );
    assert_eq!(server.terminate(), Some(0));
}

#[tokio::test]
async fn a_graceful_stop_writes_back_cursors_the_timer_has_not() {
    // With an hour between periodic flushes, only the shutdown flush can
    // have saved the cursor.
    let hour = |config: &mut secapp_server::config::Config| {
        config.cursor_flush_interval = Duration::from_secs(3600);
    };
    let app = crate::helpers::spawn_app_with(hour).await;
    let id = app
        .api()
        .publish("security", 3, "2026-03-01T12:00:00Z")
        .await;
    assert_eq!(
        app.api().poll("told").await.1["status_change_id"],
        json!(id)
    );
    let dir = app.stop().await;

    let app = crate::helpers::spawn_app_in(dir, hour).await;
    assert_eq!(app.api().poll("told").await.1, json!({}));
    assert_eq!(
        app.api().poll("untold").await.1["status_change_id"],
        json!(id)
    );
}

#[test]
fn sigint_lets_a_request_in_flight_finish_before_exiting_0() {
    use std::io::{Read as _, Write as _};

    let dir = tempfile::tempdir().unwrap();
    let token = register_offline(dir.path(), "late", "publish");
    let server = ServerProcess::start(dir.path(), &[]);
    let body = r#"{"current_status": 5, "Change_at": "2026-03-01T12:00:00Z"}"#;
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /secapp/update HTTP/1.1\r\nHost: x\r\nApp-name: late\r\nToken: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body.as_bytes()[..10]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));

    // Ctrl-C while the request is half sent: the server stops accepting but
    // must answer this request before it exits.
    server.signal("INT");
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body.as_bytes()[10..]).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#"{"processed_id":1}"#), "{answer}");
    assert_eq!(server.wait(), Some(0));
    assert_eq!(recorded_changes(dir.path()).len(), 1);
}

//! Hostile and careless clients: sockets that send nothing, heads and bodies
//! that trickle in, idle keep-alive connections, more connections than the
//! cap, requests the HTTP layer refuses. None of them may stop the server
//! from serving everyone else. Timeouts are short here, so no test waits
//! longer than a few seconds.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{SseReader, TestApp, spawn_app_with};

const PATIENCE: Duration = Duration::from_secs(10);

/// Opens a raw connection to the server.
async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection; returns what it sent and
/// how long that took. Panics after [`PATIENCE`].
async fn read_to_close(socket: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let read = tokio::time::timeout(PATIENCE, socket.read(&mut chunk))
            .await
            .expect("the server kept the connection open");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// Sends raw bytes on a new connection; returns the status and JSON body of
/// the answer, which must close the connection.
async fn raw_request(app: &TestApp, bytes: &[u8]) -> (u16, Value) {
    let mut socket = connect(app).await;
    socket.write_all(bytes).await.expect("send");
    let (answer, _) = read_to_close(&mut socket).await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head[9..12].parse().expect("a status");
    let json = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("the answer's body is not JSON ({e}): {answer:?}"));
    (status, json)
}

/// A plain poll over a new connection; the server answers it. (A pooled
/// connection could have outlived the short keep-alive timeout here.)
async fn polls_normally(app: &TestApp) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (status, _) = app.api().with_client(client).poll("bystander").await;
    assert_eq!(status, 200);
}

fn short_timeouts(config: &mut secapp_server::config::Config) {
    config.header_read_timeout = Duration::from_millis(500);
    config.body_read_timeout = Duration::from_millis(500);
    config.keep_alive_timeout = Duration::from_millis(800);
}

#[tokio::test]
async fn a_silent_socket_and_a_slow_head_are_cut_at_the_header_timeout_while_others_poll() {
    let app = spawn_app_with(short_timeouts).await;
    let mut silent = connect(&app).await;
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    polls_normally(&app).await;
    let (answer, took) = read_to_close(&mut silent).await;
    assert_eq!(answer, "", "nothing is said to a socket that said nothing");
    assert!(took < Duration::from_secs(3), "cut after {took:?}");
    // A head that keeps trickling does not reset its deadline.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = slow.write_all(b"x").await;
    }
    let (_, took) = read_to_close(&mut slow).await;
    assert!(took < Duration::from_secs(3), "cut after {took:?}");
    polls_normally(&app).await;
}

#[tokio::test]
async fn a_slow_body_is_answered_408_at_the_body_timeout_while_others_poll() {
    let app = spawn_app_with(short_timeouts).await;
    let token = app.api().token("slowpoke").await;
    let mut socket = connect(&app).await;
    let head = format!(
        "POST /secapp/update HTTP/1.1\r\nHost: x\r\nApp-name: slowpoke\r\nToken: {token}\r\n\
         Content-Length: 60\r\n\r\n{{\"current_status\""
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    polls_normally(&app).await;
    let (answer, took) = read_to_close(&mut socket).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("\"error\":\"body_timeout\""), "{answer}");
    assert!(took < Duration::from_secs(3), "cut after {took:?}");
    let (_, seen) = app.api().poll("after-the-slow-body").await;
    assert_eq!(
        seen,
        serde_json::json!({}),
        "the slow publish changed nothing"
    );
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_at_once() {
    let app = spawn_app_with(short_timeouts).await;
    let token = app.api().token("bulky").await;
    let mut socket = connect(&app).await;
    let head = format!(
        "POST /secapp/update HTTP/1.1\r\nHost: x\r\nApp-name: bulky\r\nToken: {token}\r\n\
         Content-Length: 1000000000000\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let (answer, took) = read_to_close(&mut socket).await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("\"error\":\"body_too_large\""), "{answer}");
    assert!(
        took < Duration::from_millis(400),
        "waited {took:?} for the body"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_but_not_a_stream_or_a_held_long_poll() {
    let app = spawn_app_with(short_timeouts).await;
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let api = app.api();
    let mut stream = SseReader::new(SseReader::open(&api, "watcher", &[]).await);
    let long_poll = app
        .request_as(
            reqwest::Method::GET,
            "/secapp/update?after=0&wait=5",
            "waiter",
        )
        .await
        .send();
    let long_poll = tokio::spawn(long_poll);
    let (answer, took) = read_to_close(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    // Both have outlived the keep-alive timeout, and still get the change.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let id = api.publish("security", 4, "2026-03-01T12:00:00Z").await;
    let (event_id, _) = stream.next_event(PATIENCE).await.expect("an event");
    assert_eq!(event_id, id.to_string());
    let answer = long_poll.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["status_change_id"], id);
}

#[tokio::test]
async fn at_the_connection_cap_open_clients_keep_working_and_the_server_recovers() {
    let app = spawn_app_with(|config| {
        config.header_read_timeout = Duration::from_secs(1);
        config.keep_alive_timeout = Duration::from_secs(5);
        config.max_connections = Some(6);
    })
    .await;
    // Two clients that keep one connection each: a stream, and a poller
    // that also publishes.
    let api = app.api();
    let mut stream = SseReader::new(SseReader::open(&api, "watcher", &[]).await);
    let poller = app.api().with_client(
        reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap(),
    );
    let (status, _) = poller.poll("poller").await;
    assert_eq!(status, 200);
    // Four sockets that say nothing fill the cap.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect(&app).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A newcomer waits in the listen backlog...
    let newcomer = tokio::spawn(app.client.get(app.url("/healthz")).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!newcomer.is_finished(), "served beyond the cap");
    // ...while those already connected are served.
    let id = poller.publish("security", 3, "2026-03-01T12:00:00Z").await;
    let (event_id, _) = stream.next_event(PATIENCE).await.expect("an event");
    assert_eq!(event_id, id.to_string());
    let (status, seen) = poller.poll("poller").await;
    assert_eq!((status, seen["status_change_id"].as_i64()), (200, Some(id)));
    // The silent sockets are cut at the header timeout; the newcomer gets in.
    let started = Instant::now();
    let answer = tokio::time::timeout(PATIENCE, newcomer)
        .await
        .expect("the server did not recover")
        .unwrap()
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(3));
    for mut socket in idle {
        let (answer, _) = read_to_close(&mut socket).await;
        assert_eq!(answer, "");
    }
}

#[tokio::test]
async fn refusals_of_the_http_layer_carry_a_json_error() {
    let app = spawn_app_with(short_timeouts).await;
    let many_headers: String = (0..150).map(|i| format!("X-Field-{i}: v\r\n")).collect();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "v".repeat(90_000)
            )
            .into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "p".repeat(70_000)).into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            b"BREW /pot HTCPCP/1.0\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
    ];
    for (bytes, status, code) in cases {
        let (got, body) = raw_request(&app, &bytes).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    // The same refusal after a good request on one kept-alive connection.
    let mut socket = connect(&app).await;
    socket
        .write_all(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nX-Bad: \x7f\r\n\r\n",
        )
        .await
        .unwrap();
    let (answer, _) = read_to_close(&mut socket).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        answer.contains("HTTP/1.1 400 Bad Request") && answer.ends_with("\"}"),
        "{answer}"
    );
    assert!(
        answer.contains("\"error\":\"malformed_request\""),
        "{answer}"
    );
    polls_normally(&app).await;
}

#[tokio::test]
async fn out_of_file_descriptors_the_server_backs_off_and_recovers_by_itself() {
    // A cap above what the process may open: `accept` fails with EMFILE
    // once the descriptors run out.
    let dir = tempfile::tempdir().unwrap();
    let server = crate::helpers::ServerProcess::start_with_open_files(
        dir.path(),
        &[
            ("SECAPP_MAX_CONNECTIONS", "1000"),
            ("SECAPP_HEADER_READ_TIMEOUT", "1s"),
        ],
        64,
    );
    let addr = server.addr;
    let mut sockets = Vec::new();
    for _ in 0..100 {
        sockets.push(TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(sockets);
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let answer = client
            .get(format!("http://{addr}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if answer.is_ok_and(|answer| answer.status() == 200) {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the server did not recover from running out of descriptors"
        );
    }
    assert_eq!(server.terminate(), Some(0));
}

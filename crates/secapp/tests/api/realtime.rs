//! Lossless delivery: client-held cursors, long polls, the event stream,
//! pacing hints and the consumer report.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Lcg, Sse, SseReader, TestApp, spawn_app, spawn_app_with, status_and_json};

const SECOND: Duration = Duration::from_secs(1);
const PATIENCE: Duration = Duration::from_secs(10);

/// `GET /secapp/update` as `app` with a query string and headers.
async fn get(
    app: &TestApp,
    name: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = app
        .request_as(
            reqwest::Method::GET,
            &format!("/secapp/update{query}"),
            name,
        )
        .await;
    for (header, value) in headers {
        request = request.header(*header, *value);
    }
    request.send().await.unwrap()
}

fn etag(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Starts a poll (a long poll, given `wait` in `query`) in the background;
/// resolves to its `Secapp-Poll-After`, status and body.
async fn spawn_long_poll(
    app: &TestApp,
    name: &str,
    query: &str,
) -> tokio::task::JoinHandle<(Option<String>, u16, Value)> {
    let request = app
        .request_as(
            reqwest::Method::GET,
            &format!("/secapp/update{query}"),
            name,
        )
        .await;
    tokio::spawn(async move {
        let response = request.send().await.unwrap();
        let poll_after = response
            .headers()
            .get("secapp-poll-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = status_and_json(response).await;
        (poll_after, status, body)
    })
}

#[tokio::test]
async fn after_answers_empty_only_when_it_names_the_head() {
    let app = spawn_app().await;
    let id = app
        .api()
        .publish("security", 4, "2026-03-01T12:00:00Z")
        .await;
    for (query, news) in [
        (format!("?after={id}"), false),
        ("?after=0".to_owned(), true),
        (format!("?after={}", id + 100), true),
    ] {
        let response = get(&app, "billing", &query, &[]).await;
        let tag = etag(&response);
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, 200);
        if news {
            assert_eq!(body["status_change_id"], json!(id), "{query}");
            assert_eq!(
                tag,
                Some(format!("\"{id}\"")),
                "every non-empty answer has an ETag"
            );
        } else {
            assert_eq!(body, json!({}), "{query}");
        }
    }
    // Repeating is safe, and the server-held cursor was never moved.
    assert_eq!(
        status_and_json(get(&app, "billing", &format!("?after={id}"), &[]).await)
            .await
            .1,
        json!({})
    );
    assert_eq!(
        app.api().poll("billing").await.1["status_change_id"],
        json!(id)
    );
}

#[tokio::test]
async fn if_none_match_answers_304_with_the_etag() {
    let app = spawn_app().await;
    let old = app
        .api()
        .publish("security", 2, "2026-03-01T12:00:00Z")
        .await;
    let id = app
        .api()
        .publish("security", 4, "2026-03-01T12:05:00Z")
        .await;
    let current = format!("\"{id}\"");
    for held in [
        current.clone(),
        format!("W/\"{id}\""),
        format!("\"{old}\", \"{id}\""),
        "*".to_owned(),
    ] {
        let response = get(&app, "billing", "", &[("If-None-Match", &held)]).await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{held}");
        assert_eq!(etag(&response), Some(current.clone()));
        assert!(response.text().await.unwrap().is_empty());
    }
    let response = get(
        &app,
        "billing",
        "",
        &[("If-None-Match", &format!("\"{old}\""))],
    )
    .await;
    assert_eq!(etag(&response), Some(current.clone()));
    let (status, body) = status_and_json(response).await;
    assert_eq!((status, body["status_change_id"].clone()), (200, json!(id)));
    // If-None-Match took precedence over after, and touched no server cursor.
    let response = get(
        &app,
        "billing",
        &format!("?after={old}"),
        &[("If-None-Match", &current)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        app.api().poll("billing").await.1["status_change_id"],
        json!(id)
    );
}

#[tokio::test]
async fn a_plain_answer_carries_an_etag_a_client_can_send_back() {
    let app = spawn_app().await;
    let id = app
        .api()
        .publish("security", 3, "2026-03-01T12:00:00Z")
        .await;
    let response = get(&app, "billing", "", &[]).await;
    let tag = etag(&response).unwrap();
    assert_eq!(tag, format!("\"{id}\""));
    let again = get(&app, "billing", "", &[("If-None-Match", &tag)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

/// Query string, headers, expected error code.
type QueryCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[tokio::test]
async fn bad_cursor_and_wait_values_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let id = app
        .api()
        .publish("security", 3, "2026-03-01T12:00:00Z")
        .await;
    let cases: [QueryCase; 8] = [
        ("?after=abc", &[], "invalid_after"),
        ("?after=-1", &[], "invalid_after"),
        ("?after=", &[], "invalid_after"),
        ("?wait=-1", &[], "invalid_wait"),
        ("?wait=soon", &[], "invalid_wait"),
        ("?wait=NaN", &[], "invalid_wait"),
        ("", &[("If-None-Match", "17")], "invalid_if_none_match"),
        ("", &[("If-None-Match", "\"x\"")], "invalid_if_none_match"),
    ];
    for (query, headers, code) in cases {
        let (status, body) = status_and_json(get(&app, "billing", query, headers).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(code)),
            "{query} {headers:?}"
        );
    }
    assert_eq!(
        app.api().poll("billing").await.1["status_change_id"],
        json!(id)
    );
}

#[tokio::test]
async fn a_long_poll_wakes_when_the_head_changes() {
    let app = spawn_app().await;
    let first = app
        .api()
        .publish("security", 2, "2026-03-01T12:00:00Z")
        .await;
    let waiting = spawn_long_poll(&app, "billing", &format!("?after={first}&wait=30")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the long poll is held while nothing changes"
    );
    let second = app
        .api()
        .publish("security", 5, "2026-03-01T12:01:00Z")
        .await;
    let (poll_after, status, body) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body["status_change_id"],
        json!(second),
        "woken with the new head, not timed out"
    );
    assert_eq!(
        poll_after,
        Some("0".into()),
        "a long poller re-polls at once"
    );
}

#[tokio::test]
async fn a_plain_long_poll_is_told_each_head_once() {
    let app = spawn_app().await;
    app.api()
        .publish("security", 2, "2026-03-01T12:00:00Z")
        .await;
    app.api().poll("billing").await;
    let waiting = spawn_long_poll(&app, "billing", "?wait=30").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = app
        .api()
        .publish("security", 4, "2026-03-01T12:01:00Z")
        .await;
    let (_, _, body) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body["status_change_id"], json!(id));
    assert_eq!(
        app.api().poll("billing").await.1,
        json!({}),
        "told once, by the long poll"
    );
}

#[tokio::test]
async fn a_long_poll_with_nothing_to_say_answers_empty_at_the_end_of_its_wait() {
    let app = spawn_app_with(|config| config.max_wait = Duration::from_millis(300)).await;
    let id = app
        .api()
        .publish("security", 2, "2026-03-01T12:00:00Z")
        .await;
    let started = Instant::now();
    // 30 s asked, 0.3 s allowed: the server's maximum wins.
    let response = get(&app, "billing", &format!("?after={id}&wait=30"), &[]).await;
    assert_eq!(status_and_json(response).await, (200, json!({})));
    assert!(
        started.elapsed() < 5 * SECOND,
        "the wait was cut to --max-wait"
    );
    let response = get(
        &app,
        "billing",
        "?wait=0.2",
        &[("If-None-Match", &format!("\"{id}\""))],
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn every_poll_answer_carries_pacing_hints() {
    let app = spawn_app().await;
    let response = get(&app, "billing", "", &[]).await;
    assert!(
        response.headers().get("secapp-state-age").is_none(),
        "no state, no age"
    );
    let at = (chrono::Utc::now() - chrono::TimeDelta::seconds(90)).to_rfc3339();
    app.api().publish("security", 2, &at).await;
    for (query, headers) in [
        ("", vec![]),
        ("?after=0", vec![]),
        ("", vec![("If-None-Match", "\"1\"")]),
    ] {
        let response = get(&app, "billing", query, &headers).await;
        let h = response.headers();
        let next: u64 = h["secapp-poll-after"].to_str().unwrap().parse().unwrap();
        assert!((48..=72).contains(&next), "60 s ± 20%: {next}");
        let age: i64 = h["secapp-state-age"].to_str().unwrap().parse().unwrap();
        assert!((89..120).contains(&age), "{age}");
        let server_time =
            chrono::DateTime::parse_from_rfc3339(h["secapp-server-time"].to_str().unwrap())
                .unwrap();
        assert!(
            (chrono::Utc::now() - server_time.to_utc())
                .num_seconds()
                .abs()
                < 5
        );
        assert_eq!(h["cache-control"], "no-store");
    }
}

#[tokio::test]
async fn a_stream_sends_the_head_at_connect_and_every_new_head() {
    let app = spawn_app().await;
    let api = app.api();
    let first = api.publish("security", 2, "2026-03-01T12:00:00Z").await;
    let mut stream = SseReader::new(SseReader::open(&api, "billing", &[]).await);
    let (id, data) = stream.next_event(PATIENCE).await.unwrap();
    assert_eq!(id, first.to_string());
    assert_eq!(
        data,
        json!({"current_status": 2, "status_change_id": first, "Change_at": "2026-03-01T12:00:00Z"})
    );
    let second = api
        .publish("security", 5, "2026-03-01T13:05:00+01:00")
        .await;
    let (id, data) = stream.next_event(PATIENCE).await.unwrap();
    assert_eq!(
        (id, data["Change_at"].clone()),
        (second.to_string(), json!("2026-03-01T12:05:00Z"))
    );
    // An older change is not a new head: nothing is pushed for it, and the
    // next event is the next head.
    api.publish("security", 1, "2026-03-01T10:00:00Z").await;
    let third = api.publish("security", 4, "2026-03-01T12:30:00Z").await;
    let (id, _) = stream.next_event(PATIENCE).await.unwrap();
    assert_eq!(id, third.to_string());
}

#[tokio::test]
async fn a_stream_resumes_from_last_event_id() {
    let app = spawn_app_with(|config| config.heartbeat = Duration::from_millis(100)).await;
    let api = app.api();
    let old = api.publish("security", 2, "2026-03-01T12:00:00Z").await;
    let id = api.publish("security", 3, "2026-03-01T12:01:00Z").await;

    // Holding the head: nothing is sent until something changes.
    let mut held = SseReader::new(
        SseReader::open(&api, "billing", &[("Last-Event-ID", &id.to_string())]).await,
    );
    assert!(
        matches!(held.next(PATIENCE).await, Some(Sse::Comment(_))),
        "a heartbeat, not the head again"
    );
    // Holding an older state: the head at once.
    let mut behind = SseReader::new(
        SseReader::open(&api, "payroll", &[("Last-Event-ID", &old.to_string())]).await,
    );
    assert_eq!(behind.next_event(PATIENCE).await.unwrap().0, id.to_string());

    let next = api.publish("security", 4, "2026-03-01T12:02:00Z").await;
    assert_eq!(held.next_event(PATIENCE).await.unwrap().0, next.to_string());
    assert_eq!(
        behind.next_event(PATIENCE).await.unwrap().0,
        next.to_string()
    );

    let (status, body) =
        status_and_json(SseReader::open(&api, "billing", &[("Last-Event-ID", "x")]).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_last_event_id"))
    );
}

#[tokio::test]
async fn an_idle_stream_gets_heartbeats() {
    let app = spawn_app_with(|config| config.heartbeat = Duration::from_millis(100)).await;
    let mut stream = SseReader::new(SseReader::open(&app.api(), "billing", &[]).await);
    for _ in 0..3 {
        assert_eq!(
            stream.next(PATIENCE).await,
            Some(Sse::Comment("heartbeat".into()))
        );
    }
}

#[tokio::test]
async fn stream_caps_answer_429_with_retry_after_and_free_up_on_disconnect() {
    let app = spawn_app_with(|config| {
        config.max_streams = 3;
        config.max_streams_per_app = 2;
    })
    .await;
    let api = app.api();
    let a1 = SseReader::open(&api, "a", &[]).await;
    let _a2 = SseReader::open(&api, "a", &[]).await;
    let refused = SseReader::open(&api, "a", &[]).await;
    assert_eq!(refused.headers()["retry-after"], "5");
    let (status, body) = status_and_json(refused).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_streams"))
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("this application")
    );

    let _b = SseReader::open(&api, "b", &[]).await;
    let (status, body) = status_and_json(SseReader::open(&api, "c", &[]).await).await;
    assert_eq!(status, 429);
    assert!(body["detail"].as_str().unwrap().contains("this server"));

    drop(a1);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let response = SseReader::open(&api, "a", &[]).await;
        if response.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed stream gives its place back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_blocks_neither_publishers_nor_other_readers() {
    use tokio::io::AsyncWriteExt as _;

    let app = spawn_app().await;
    let api = app.api();
    api.publish("security", 1, "2026-03-01T00:00:00Z").await;
    // A reader with a tiny receive window that never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let token = api.token("stalled").await;
    let mut stalled = socket
        .connect(app.base.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    stalled
        .write_all(format!("GET /secapp/stream HTTP/1.1\r\nHost: x\r\nApp-name: stalled\r\nToken: {token}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut fast = SseReader::new(SseReader::open(&api, "fast", &[]).await);
    fast.next_event(PATIENCE).await.unwrap();

    let mut last = 0;
    for n in 1..=300 {
        let at = format!("2026-03-01T{:02}:{:02}:00Z", n / 60, n % 60);
        last = api.publish("security", 1 + n % 5, &at).await;
    }
    // The fast reader reaches the final head; it may skip intermediate ones,
    // but never goes back.
    let mut seen = 0;
    while seen != last {
        let (id, _) = fast.next_event(PATIENCE).await.unwrap();
        let id: i64 = id.parse().unwrap();
        assert!(id > seen, "never an older head after a newer one");
        seen = id;
    }
    drop(stalled);
}

#[tokio::test]
async fn shutdown_ends_streams_and_answers_long_polls() {
    let app = spawn_app().await;
    let api = app.api();
    let id = api.publish("security", 3, "2026-03-01T12:00:00Z").await;
    let mut stream = SseReader::new(SseReader::open(&api, "billing", &[]).await);
    stream.next_event(PATIENCE).await.unwrap();
    let long_poll = spawn_long_poll(&app, "b", &format!("?after={id}&wait=50")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < 5 * SECOND,
        "nothing held the shutdown for its 50 s wait"
    );
    assert_eq!(stream.next(PATIENCE).await, None, "the stream ended");
    let (_, status, body) = long_poll.await.unwrap();
    assert_eq!((status, body), (200, json!({})));
}

#[tokio::test]
async fn the_consumer_report_says_who_holds_the_current_state() {
    let app = spawn_app_with(|config| config.heartbeat = Duration::from_millis(100)).await;
    let api = app.api();
    // The producer only publishes: it is no consumer to report.
    let producer = app.register("security", &["publish"]).await;
    api.remember("security", &producer).await;
    let old = api.publish("security", 2, "2026-03-01T12:00:00Z").await;
    api.poll("plain").await; // sent `old` by a plain poll
    let id = api.publish("security", 4, "2026-03-01T12:05:00Z").await;
    get(&app, "cursor", &format!("?after={old}"), &[]).await; // acked old, sent id
    get(&app, "etag", "", &[("If-None-Match", &format!("\"{id}\""))]).await; // acked id
    let mut stream = SseReader::new(SseReader::open(&api, "streamer", &[]).await);
    stream.next_event(PATIENCE).await.unwrap(); // sent id by the stream

    let report = consumers(&app, "").await;
    assert_eq!(report["head"]["status_change_id"], json!(id));
    let by_app = |name: &str| {
        report["consumers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["app"] == name)
            .cloned()
            .unwrap()
    };
    let plain = by_app("plain");
    assert_eq!(plain["sent"]["status_change_id"], json!(old));
    assert_eq!(plain["sent"]["mode"], "poll");
    assert_eq!(plain["acknowledged"], Value::Null);
    assert_eq!(plain["behind"], json!(true));
    let cursor = by_app("cursor");
    assert_eq!(cursor["acknowledged"]["status_change_id"], json!(old));
    assert_eq!(cursor["acknowledged"]["mode"], "after");
    assert_eq!(cursor["sent"]["status_change_id"], json!(id));
    assert_eq!(cursor["behind"], json!(false));
    let etag = by_app("etag");
    assert_eq!(etag["acknowledged"]["mode"], "if-none-match");
    assert_eq!(etag["sent"], Value::Null, "a 304 sends nothing");
    assert_eq!(etag["behind"], json!(false));
    assert_eq!(by_app("streamer")["sent"]["mode"], "stream");

    let behind = consumers(&app, "?behind=true").await;
    let names: Vec<&str> = behind["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["app"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["plain"]);

    // What the server learnt survives a restart.
    drop(stream);
    let dir = app.stop().await;
    let app = crate::helpers::spawn_app_in(dir, |_| {}).await;
    let report = consumers(&app, "").await;
    assert_eq!(report["consumers"].as_array().unwrap().len(), 4);
    let (status, body) = status_and_json(
        app.as_admin(reqwest::Method::GET, "/secapp/consumers?behind=maybe")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_query"))
    );
}

async fn consumers(app: &TestApp, query: &str) -> Value {
    let response = app
        .as_admin(reqwest::Method::GET, &format!("/secapp/consumers{query}"))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn client_held_modes_never_move_the_plain_cursor() {
    let app = spawn_app().await;
    let api = app.api();
    let id = api.publish("security", 3, "2026-03-01T12:00:00Z").await;
    get(&app, "mixed", "?after=0", &[]).await;
    get(&app, "mixed", "", &[("If-None-Match", "\"0\"")]).await;
    let mut stream = SseReader::new(SseReader::open(&api, "mixed", &[]).await);
    stream.next_event(PATIENCE).await.unwrap();
    assert_eq!(
        api.poll("mixed").await.1["status_change_id"],
        json!(id),
        "pods of one app may mix modes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleavings_never_go_back_and_never_miss_the_final_head() {
    for seed in [1_u64, 2, 3] {
        let app = spawn_app().await;
        let api = app.api();
        let mut rng = Lcg(seed);
        // Independent model of the ordering rule: (Change_at, id) of the head.
        let mut model: Option<(String, i64)> = None;
        let mut streams = Vec::new();
        for n in 0..3 {
            let reader = SseReader::new(SseReader::open(&api, &format!("stream-{n}"), &[]).await);
            let last = Arc::new(AtomicI64::new(0));
            streams.push((tokio::spawn(watch_stream(reader, last.clone())), last));
        }
        let mut plain_seen: Vec<Vec<i64>> = vec![Vec::new(); 3];
        let mut held: Vec<i64> = vec![0; 3];
        for _ in 0..120 {
            match rng.below(4) {
                0 => {
                    // Few distinct times, so ties and older changes are common.
                    let at = format!("2026-03-01T12:{:02}:00Z", rng.below(8));
                    let level = 1 + i64::try_from(rng.below(5)).unwrap();
                    let id = api.publish("producer", level, &at).await;
                    if model.as_ref().is_none_or(|(head_at, _)| at > *head_at) {
                        model = Some((at, id));
                    }
                }
                1 => {
                    let n = usize::try_from(rng.below(3)).unwrap();
                    let (_, body) = api.poll(&format!("plain-{n}")).await;
                    if let Some(id) = body["status_change_id"].as_i64() {
                        plain_seen[n].push(id);
                    }
                }
                _ => {
                    let n = usize::try_from(rng.below(3)).unwrap();
                    let name = format!("holder-{n}");
                    let response = if rng.below(2) == 0 {
                        get(&app, &name, &format!("?after={}", held[n]), &[]).await
                    } else {
                        get(
                            &app,
                            &name,
                            "",
                            &[("If-None-Match", &format!("\"{}\"", held[n]))],
                        )
                        .await
                    };
                    if response.status() == 200 {
                        let (_, body) = status_and_json(response).await;
                        if let Some(id) = body["status_change_id"].as_i64() {
                            assert!(
                                id > held[n],
                                "seed {seed}: a cursor client went back from {} to {id}",
                                held[n]
                            );
                            held[n] = id;
                        }
                    }
                }
            }
        }
        let (_, final_id) = model.expect("the run published something");
        for (n, seen) in plain_seen.iter().enumerate() {
            assert!(
                seen.windows(2).all(|w| w[0] < w[1]),
                "seed {seed}: plain-{n} saw {seen:?}"
            );
            let (_, last) = api.poll(&format!("plain-{n}")).await;
            let last = last["status_change_id"].as_i64().or(seen.last().copied());
            assert_eq!(
                last,
                Some(final_id),
                "seed {seed}: plain-{n} missed the final head"
            );
        }
        for (n, held) in held.iter().enumerate() {
            let (_, body) = status_and_json(
                get(&app, &format!("holder-{n}"), &format!("?after={held}"), &[]).await,
            )
            .await;
            let last = body["status_change_id"].as_i64().unwrap_or(*held);
            assert_eq!(
                last, final_id,
                "seed {seed}: holder-{n} missed the final head"
            );
        }
        let mut late = SseReader::new(SseReader::open(&api, "late", &[]).await);
        assert_eq!(
            late.next_event(PATIENCE).await.unwrap().0,
            final_id.to_string()
        );
        drop(late);
        let deadline = Instant::now() + PATIENCE;
        while streams
            .iter()
            .any(|(_, last)| last.load(Ordering::SeqCst) != final_id)
        {
            assert!(
                Instant::now() < deadline,
                "seed {seed}: a stream missed the final head {final_id}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app.stop().await;
        for (task, _) in streams {
            // A panic inside the task (an id going back) fails the test here.
            task.await.unwrap();
        }
    }
}

/// Reads a stream until it ends, asserting ids only ever increase, and
/// publishing the newest id seen in `last`.
async fn watch_stream(mut reader: SseReader, last: Arc<AtomicI64>) {
    while let Some((id, _)) = reader.next_event(Duration::from_secs(3600)).await {
        let id: i64 = id.parse().unwrap();
        let previous = last.load(Ordering::SeqCst);
        assert!(id > previous, "a stream went back from {previous} to {id}");
        last.store(id, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn if_none_match_before_any_publish_answers_empty_not_304() {
    let app = spawn_app().await;
    for held in ["\"5\"", "*"] {
        let response = get(&app, "billing", "", &[("If-None-Match", held)]).await;
        assert!(response.headers().get("etag").is_none());
        assert_eq!(status_and_json(response).await, (200, json!({})), "{held}");
    }
}

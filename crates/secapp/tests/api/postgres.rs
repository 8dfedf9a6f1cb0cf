//! The server on PostgreSQL (`--database-url postgres://…`), each test on a
//! database of its own: what is recorded lives in the database, not in the
//! data dir, and two servers on one database publish in one order.

use std::collections::BTreeSet;

use secapp_server::config::Config;
use secapp_server::store::conformance::TempPostgres;
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app_with};

async fn on(database: &str) -> TestApp {
    let url = database.to_owned();
    spawn_app_with(move |config: &mut Config| {
        config.database_url = Some(url.parse().expect("a PostgreSQL URL"));
    })
    .await
}

/// Two servers on a database of their own (kept while the handle lives).
async fn two_servers() -> (TempPostgres, TestApp, TestApp) {
    let database = TempPostgres::new();
    let a = on(database.url().await).await;
    let b = on(database.url().await).await;
    (database, a, b)
}

#[tokio::test]
async fn changes_apps_and_cursors_live_in_the_database_not_the_data_dir() {
    let database = TempPostgres::new();
    let url = database.url().await;
    let app = on(url).await;
    let api = app.api();
    let first = api.publish("security", 3, "2026-03-01T12:00:00Z").await;
    let (status, told) = api.poll("billing").await;
    assert_eq!(
        (status, told["status_change_id"].as_i64()),
        (200, Some(first))
    );
    let second = api.publish("security", 4, "2026-03-01T12:05:00Z").await;
    assert!(second > first);
    app.stop().await;

    // Another server, with a fresh data dir, on the same database.
    let app = on(url).await;
    let api = app.api();
    assert_eq!(app.recorded().await, [second, first]);
    let (_, told) = api.poll("billing").await;
    assert_eq!(
        told["current_status"], 4,
        "billing was told 3, not 4: {told}"
    );
    let (_, again) = api.poll("billing").await;
    assert_eq!(again, serde_json::json!({}), "told once");
    let history: Value = app
        .as_admin(reqwest::Method::GET, "/secapp/history?app=security")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["changes"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn two_servers_racing_ten_thousand_publishes_agree_on_one_order() {
    use futures_util::StreamExt as _;

    let (_database, a, b) = two_servers().await;
    let (api_a, api_b) = (a.api(), b.api());
    // Warm both servers' tokens before racing.
    api_a.token("left").await;
    api_b.token("right").await;
    // 5,000 publishes on each server, 8 at a time, with times that
    // interleave: in one order every later time wins.
    let publish = |api: crate::helpers::Api, app: &'static str, offset: u32| async move {
        futures_util::stream::iter(0..5_000u32)
            .map(|n| {
                let api = api.clone();
                async move {
                    let step = n * 2 + offset;
                    let at = format!(
                        "2026-03-01T{:02}:{:02}:{:02}Z",
                        step / 3600,
                        step / 60 % 60,
                        step % 60
                    );
                    api.publish(app, 1 + i64::from(n % 5), &at).await
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<i64>>()
            .await
    };
    let (left, right) = tokio::join!(publish(api_a, "left", 0), publish(api_b, "right", 1));
    let ids: BTreeSet<i64> = left.iter().chain(&right).copied().collect();
    assert_eq!(ids.len(), 10_000, "every publish got an id of its own");
    // The whole history, page by page: complete, and in id order every
    // head is newer than the one before.
    let mut changes = Vec::new();
    let mut before = String::new();
    loop {
        let page: Value = a
            .as_admin(
                reqwest::Method::GET,
                &format!("/secapp/history?limit=1000{before}"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        changes.extend(page["changes"].as_array().unwrap().iter().cloned());
        match page["next_before"].as_i64() {
            Some(next) => before = format!("&before={next}"),
            None => break,
        }
    }
    let recorded: BTreeSet<i64> = changes
        .iter()
        .map(|c| c["processed_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        recorded, ids,
        "the history holds exactly the acknowledged publishes"
    );
    let mut heads: Vec<(i64, String)> = changes
        .iter()
        .filter(|c| c["outcome"] == "head")
        .map(|c| {
            (
                c["processed_id"].as_i64().unwrap(),
                c["Change_at"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    heads.sort();
    assert!(
        heads.windows(2).all(|w| w[0].1 < w[1].1),
        "heads move forward in id order"
    );
    let newest = "2026-03-01T02:46:39Z";
    assert_eq!(heads.last().unwrap().1, newest);
    // Both servers serve that one head (the other's within a second).
    for api in [a.api(), b.api()] {
        let mut served = Value::Null;
        for _ in 0..40 {
            served = api
                .request(reqwest::Method::GET, "/secapp/update?after=0", "reader")
                .await
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if served["Change_at"] == newest {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(served["Change_at"], newest);
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_change_made_on_one_server_reaches_the_other_within_a_second_or_two() {
    use std::time::{Duration, Instant};

    use crate::helpers::SseReader;
    use secapp_api::admin::NewToken;

    let (_database, a, b) = two_servers().await;
    let (api_a, api_b) = (a.api(), b.api());
    // A watcher on B: a stream and a held long poll.
    let mut stream = SseReader::new(SseReader::open(&api_b, "watcher", &[]).await);
    let long_poll = {
        let request = api_b
            .request(reqwest::Method::GET, "/secapp/update?wait=20", "poller")
            .await;
        tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let id = api_a.publish("security", 4, "2026-03-01T12:00:00Z").await;
    let (event_id, data) = stream
        .next_event(Duration::from_secs(5))
        .await
        .expect("the stream on the other server gets the change");
    assert_eq!(event_id, id.to_string());
    assert_eq!(data["current_status"], 4);
    let answered = tokio::time::timeout(Duration::from_secs(5), long_poll)
        .await
        .expect("the long poll on the other server is answered")
        .unwrap();
    assert_eq!(answered["status_change_id"], id);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A token issued on B, then revoked on A, is refused by B.
    let (token, token_id) = b.issue_token("watcher", NewToken::default()).await;
    let poll_on_b = |token: String| {
        let client = b.client.clone();
        let url = b.url("/secapp/update");
        async move {
            client
                .get(url)
                .header("App-name", "watcher")
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(poll_on_b(token.clone()).await, 200);
    a.revoke(&token_id).await;
    let revoked = Instant::now();
    let mut status = 200;
    while revoked.elapsed() < Duration::from_secs(5) {
        status = poll_on_b(token.clone()).await;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 401, "the revocation reached the other server");
    assert!(
        revoked.elapsed() < Duration::from_secs(3),
        "{:?}",
        revoked.elapsed()
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn applications_polling_both_servers_are_told_each_change_once() {
    use std::collections::BTreeMap;
    use std::time::Duration;

    let (_database, a, b) = two_servers().await;
    let (api_a, api_b) = (a.api(), b.api());
    let apps: Vec<String> = (0..200).map(|n| format!("consumer-{n}")).collect();
    for app in &apps {
        let token = api_a.token(app).await;
        api_b.remember(app, &token).await;
    }
    let mut told: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut published = Vec::new();
    for (round, level) in [3, 4, 2].into_iter().enumerate() {
        let at = format!("2026-03-01T12:0{round}:00Z");
        published.push(api_a.publish("security", level, &at).await);
        // Let the other server hear of it, then every application polls
        // each server twice, alternating, all at once.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let polls = apps.iter().flat_map(|app| {
            [&api_a, &api_b, &api_a, &api_b]
                .into_iter()
                .map(move |api| async move { (app.clone(), api.poll(app).await) })
        });
        for (app, (status, answer)) in futures_util::future::join_all(polls).await {
            assert_eq!(status, 200);
            if let Some(id) = answer["status_change_id"].as_i64() {
                told.entry(app).or_default().push(id);
            }
        }
    }
    for app in &apps {
        let mut ids = told.get(app).cloned().unwrap_or_default();
        ids.sort_unstable();
        assert_eq!(ids, published, "{app} is told each change exactly once");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn while_the_database_is_away_publishes_are_refused_reads_answer_and_all_recovers() {
    use std::time::Duration;

    use crate::tcp_proxy::TcpProxy;

    let database = TempPostgres::new();
    let direct = database.url().await.to_owned();
    let config: tokio_postgres::Config = direct.parse().unwrap();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let proxy = TcpProxy::start(([127, 0, 0, 1], port).into()).await;
    let proxied = direct.replacen(&format!(":{port}/"), &format!(":{}/", proxy.port), 1);
    let a = on(&proxied).await;
    let b = on(&direct).await;
    let (api_a, api_b) = (a.api(), b.api());
    let first = api_a.publish("security", 3, "2026-03-01T12:00:00Z").await;
    assert_eq!(api_a.poll("billing").await.1["status_change_id"], first);
    let producer = api_a.token("security").await;

    proxy.cut();
    let publish = |at: &'static str| {
        let client = a.client.clone();
        let url = a.url("/secapp/update");
        let token = producer.clone();
        async move {
            let response = client
                .post(url)
                .header("App-name", "security")
                .bearer_auth(token)
                .body(format!(r#"{{"current_status": 5, "Change_at": "{at}"}}"#))
                .send()
                .await
                .unwrap();
            let retry_after = response.headers().get("retry-after").is_some();
            let status = response.status().as_u16();
            (status, retry_after, response.json::<Value>().await.unwrap())
        }
    };
    let (status, retry_after, body) = publish("2026-03-01T12:01:00Z").await;
    assert_eq!((status, retry_after), (503, true), "{body}");
    assert_eq!(body["error"], "store_unavailable");
    // Memory still answers reads: nothing new for billing.
    let (status, answer) = api_a.poll("billing").await;
    assert_eq!((status, answer), (200, serde_json::json!({})));
    let ready = a.client.get(a.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    // Meanwhile the other server publishes; then the database comes back.
    let during = api_b.publish("security", 4, "2026-03-01T12:02:00Z").await;
    proxy.restore();
    let mut recovered = None;
    for _ in 0..100 {
        let (status, _, body) = publish("2026-03-01T12:03:00Z").await;
        if status == 200 {
            recovered = Some(body["processed_id"].as_i64().unwrap());
            break;
        }
        assert_eq!(status, 503, "never anything but 503 or 200: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = recovered.expect("publishes work again without a restart");
    let ready = a.client.get(a.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // The refused publish left nothing; the other server's change and the
    // one after recovery are there, and billing is told the newest.
    assert_eq!(b.recorded().await, [after, during, first]);
    let (_, told) = api_a.poll("billing").await;
    assert_eq!(told["status_change_id"], after);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_consumer_report_is_the_fleets_whichever_server_answers() {
    use std::time::Duration;

    let (_database, a, b) = two_servers().await;
    let id = a.api().publish("security", 4, "2026-03-01T12:00:00Z").await;
    // billing polls only server A; payroll only server B.
    let (api_a, api_b) = (a.api(), b.api());
    let token = api_a.token("billing").await;
    api_b.remember("billing", &token).await;
    let token = api_b.token("payroll").await;
    api_a.remember("payroll", &token).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(api_a.poll("billing").await.1["status_change_id"], id);
    assert_eq!(api_b.poll("payroll").await.1["status_change_id"], id);
    // Past one write-back of each server's records.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for server in [&a, &b] {
        let report: Value = server
            .as_admin(reqwest::Method::GET, "/secapp/consumers")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for app in ["billing", "payroll"] {
            let consumer = report["consumers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["app"] == app)
                .unwrap_or_else(|| panic!("{app} in {report:#}"));
            assert_eq!(
                consumer["sent"]["status_change_id"], id,
                "{app}: {consumer}"
            );
            assert_eq!(consumer["behind"], false, "{app}: {consumer}");
        }
    }
    a.stop().await;
    b.stop().await;
}

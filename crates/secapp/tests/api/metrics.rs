//! `GET /metrics`: who may read it, that it parses, and that its figures
//! follow real traffic without growing with invented names.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;

use crate::helpers::{
    Api, SseReader, TOKEN, TestApp, spawn_app, spawn_app_with, with_shared_token,
};

/// The samples of an exposition, by series (`name{labels}` as written).
/// Panics on a line that is neither a comment nor a sample, or when the
/// exposition does not end with `# EOF`.
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "the exposition ends with # EOF");
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            let kind = line.split_whitespace().nth(1).unwrap_or_default();
            assert!(
                ["HELP", "TYPE", "UNIT", "EOF"].contains(&kind),
                "an unknown comment: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .expect("a sample is a series and a value");
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "a metric name: {line}"
        );
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "one sample per series: {line}"
        );
    }
    samples
}

pub async fn scrape(app: &TestApp) -> BTreeMap<String, f64> {
    let response = app.as_admin(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    parse(&response.text().await.unwrap())
}

pub fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in {samples:#?}"))
}

#[tokio::test]
async fn metrics_need_a_viewer_or_admin_token() {
    let app = spawn_app().await;
    let (status, body) =
        crate::helpers::status_and_json(app.client.get(app.url("/metrics")).send().await.unwrap())
            .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_token"))
    );
    let consumer = app.register("billing", &["consume"]).await;
    let refused = app
        .with_token(Method::GET, "/metrics", &consumer)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let viewer = app.register("grafana", &["viewer"]).await;
    let allowed = app
        .with_token(Method::GET, "/metrics", &viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
}

#[tokio::test]
async fn the_figures_follow_publishes_polls_streams_and_refusals() {
    let app = spawn_app_with(|config| config.heartbeat = Duration::from_millis(100)).await;
    let api = app.api();
    let before = scrape(&app).await;
    assert!(
        !before.contains_key("secapp_level"),
        "no level before any publish"
    );

    let first = api.publish("security", 4, "2026-03-01T12:00:00Z").await;
    api.publish("security", 2, "2026-03-01T11:00:00Z").await; // older
    api.publish("security", 5, "2026-03-01T12:00:00Z").await; // tie
    let keyed = || {
        let api = api.clone();
        async move {
            api.request(Method::POST, "/secapp/update", "security")
                .await
                .header("Idempotency-Key", "k1")
                .body(r#"{"current_status": 3, "Change_at": "2026-03-01T12:30:00Z"}"#)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(keyed().await, 200);
    assert_eq!(keyed().await, 200); // replayed
    let refused = api
        .publish_raw(
            "security",
            r#"{"current_status": 9, "Change_at": "2026-03-01T13:00:00Z"}"#,
        )
        .await;
    assert_eq!(refused.status(), 422);
    let malformed = api.publish_raw("security", "{").await;
    assert_eq!(malformed.status(), 400);

    assert_eq!(api.poll("billing").await.0, 200);
    assert_eq!(api.poll("billing").await.0, 200);
    let mut stream = SseReader::new(SseReader::open(&api, "watcher", &[]).await);
    stream.next_event(Duration::from_secs(5)).await.unwrap();
    api.token("idle").await; // registered, never polls: behind
    let wrong = app
        .with_token(Method::GET, "/secapp/update", "secapp_wrong")
        .header("App-name", "billing")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let samples = scrape(&app).await;
    for (outcome, count) in [
        ("head", 2.0),
        ("older", 1.0),
        ("tie", 1.0),
        ("replayed", 1.0),
        ("refused", 2.0),
    ] {
        assert_eq!(
            value(
                &samples,
                &format!("secapp_publishes_total{{outcome=\"{outcome}\"}}")
            ),
            count,
            "{outcome}"
        );
    }
    assert_eq!(value(&samples, "secapp_level"), 3.0);
    assert_eq!(value(&samples, "secapp_head_version"), 2.0);
    assert_eq!(
        value(&samples, "secapp_head_changed_timestamp_seconds"),
        chrono::DateTime::parse_from_rfc3339("2026-03-01T12:30:00Z")
            .unwrap()
            .timestamp() as f64
    );
    assert_eq!(value(&samples, r#"secapp_polls_total{app="billing"}"#), 2.0);
    assert!(
        value(
            &samples,
            r#"secapp_consumer_last_seen_timestamp_seconds{app="watcher"}"#
        ) > 0.0
    );
    assert_eq!(
        value(&samples, r#"secapp_consumer_behind{app="watcher"}"#),
        0.0
    );
    assert_eq!(
        value(&samples, r#"secapp_consumer_behind{app="billing"}"#),
        0.0,
        "billing was told the head"
    );
    assert_eq!(
        value(&samples, r#"secapp_consumer_behind{app="idle"}"#),
        1.0
    );
    assert_eq!(value(&samples, "secapp_streams_open"), 1.0);
    assert_eq!(
        value(
            &samples,
            r#"secapp_auth_refusals_total{reason="invalid_token"}"#
        ),
        1.0
    );
    assert!(
        value(
            &samples,
            r#"secapp_http_requests_total{route="/secapp/update",method="POST",status="422"}"#
        ) >= 1.0
    );
    assert!(
        value(
            &samples,
            r#"secapp_store_operation_duration_seconds_count{operation="publish"}"#
        ) >= 4.0
    );
    assert!(first > 0);

    // A new head: the stream is sent it, the poller is behind until it polls.
    api.publish("security", 1, "2026-03-01T14:00:00Z").await;
    stream.next_event(Duration::from_secs(5)).await.unwrap();
    let samples = scrape(&app).await;
    assert_eq!(value(&samples, "secapp_level"), 1.0);
    assert_eq!(
        value(&samples, r#"secapp_consumer_behind{app="billing"}"#),
        1.0
    );
    assert_eq!(
        value(&samples, r#"secapp_consumer_behind{app="watcher"}"#),
        0.0
    );
}

#[tokio::test]
async fn a_flood_of_invented_app_names_grows_no_series_beyond_the_cap() {
    let app = spawn_app_with(|config| {
        with_shared_token(config);
        config.metrics_max_shared_apps = 5;
    })
    .await;
    let shared = Api::shared(app.client.clone(), &app.base, TOKEN);
    for n in 0..200 {
        assert_eq!(shared.poll(&format!("invented-{n}")).await.0, 200);
    }
    app.api().poll("registered").await;
    let samples = scrape(&app).await;
    let polls: Vec<(&String, &f64)> = samples
        .iter()
        .filter(|(series, _)| series.starts_with("secapp_polls_total"))
        .collect();
    assert_eq!(
        polls.len(),
        5 + 1 + 1,
        "five names, other, the registered one: {polls:?}"
    );
    assert_eq!(value(&samples, r#"secapp_polls_total{app="other"}"#), 195.0);
    assert_eq!(
        value(&samples, r#"secapp_polls_total{app="registered"}"#),
        1.0
    );
    let behind = samples
        .keys()
        .filter(|series| series.starts_with("secapp_consumer_behind"))
        .count();
    assert!(behind <= 6, "{behind} consumer_behind series");
}

#[tokio::test]
async fn a_metrics_listener_serves_metrics_without_a_token_and_nothing_else() {
    let app = spawn_app_with(|config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    app.api()
        .publish("security", 4, "2026-03-01T12:00:00Z")
        .await;
    let base = app.metrics_base.clone().expect("a metrics listener");
    let response = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let samples = parse(&response.text().await.unwrap());
    assert_eq!(value(&samples, "secapp_level"), 4.0);
    let elsewhere = app
        .client
        .get(format!("{base}/secapp/update"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
    // The main listener still wants a token.
    let main = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(main.status(), 401);
    app.stop().await;
}

//! `GET /secapp/history`: the audit history of publishes, over HTTP.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, status_and_json};

async fn history(app: &TestApp, query: &str) -> (u16, Value) {
    let response = app
        .as_admin(reqwest::Method::GET, &format!("/secapp/history{query}"))
        .send()
        .await
        .unwrap();
    status_and_json(response).await
}

#[tokio::test]
async fn every_publish_is_in_the_history_with_who_from_where_and_what_it_did() {
    let app = spawn_app().await;
    let api = app.api();
    let first = api.publish("alpha", 3, "2026-03-01T12:00:00Z").await;
    let older = api.publish("beta", 1, "2026-03-01T11:00:00Z").await;
    let tie = api.publish("beta", 5, "2026-03-01T13:00:00+01:00").await;
    let (status, body) = history(&app, "").await;
    assert_eq!(status, 200);
    let changes = body["changes"].as_array().unwrap();
    let ids: Vec<i64> = changes
        .iter()
        .map(|c| c["processed_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![tie, older, first], "newest first");
    assert_eq!(changes[0]["outcome"], "tie");
    assert_eq!(changes[0]["Change_at"], "2026-03-01T12:00:00Z");
    assert_eq!(changes[1]["outcome"], "older");
    assert_eq!(changes[2]["outcome"], "head");
    assert_eq!(changes[2]["published_by"], "alpha");
    assert_eq!(changes[2]["current_status"], json!(3));
    assert_eq!(changes[2]["source_address"], "127.0.0.1");
    assert!(
        chrono::DateTime::parse_from_rfc3339(changes[2]["received_at"].as_str().unwrap()).is_ok()
    );
    assert_eq!(body["next_before"], Value::Null, "one page holds it all");
}

#[tokio::test]
async fn pages_and_filters_narrow_the_history() {
    let app = spawn_app().await;
    let api = app.api();
    let mut ids = Vec::new();
    for n in 0..5 {
        let publisher = if n % 2 == 0 { "alpha" } else { "beta" };
        ids.push(
            api.publish(publisher, 2, &format!("2026-03-01T12:0{n}:00Z"))
                .await,
        );
    }
    let (_, page) = history(&app, "?limit=2").await;
    let first: Vec<i64> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["processed_id"].as_i64().unwrap())
        .collect();
    assert_eq!(first, vec![ids[4], ids[3]]);
    assert_eq!(page["next_before"], json!(ids[3]));
    let (_, page) = history(&app, &format!("?limit=2&before={}", ids[3])).await;
    assert_eq!(page["changes"][0]["processed_id"], json!(ids[2]));
    let (_, beta) = history(&app, "?app=beta").await;
    assert_eq!(beta["changes"].as_array().unwrap().len(), 2);
    let (_, none) = history(&app, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!(none["changes"], json!([]));

    for bad in [
        "?limit=0",
        "?limit=1001",
        "?limit=x",
        "?before=-1",
        "?app=",
        "?since=yesterday",
        "?until=2026-13-01T00:00:00Z",
    ] {
        let (status, body) = history(&app, bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_query")),
            "{bad}"
        );
    }
}

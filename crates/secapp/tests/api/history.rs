//! `GET /secapp/history`: the audit history of publishes, over HTTP.

use secapp_api::HistoryAnswer;
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app, status_and_json};

async fn history(app: &TestApp, query: &str) -> (u16, Value) {
    let response = app
        .as_admin(reqwest::Method::GET, &format!("/secapp/history{query}"))
        .send()
        .await
        .unwrap();
    status_and_json(response).await
}

/// One page of the history, as its typed answer.
async fn page(app: &TestApp, query: &str) -> HistoryAnswer {
    let (status, body) = history(app, query).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("a history page")
}

fn ids(page: &HistoryAnswer) -> Vec<i64> {
    page.changes
        .iter()
        .map(|entry| entry.processed_id)
        .collect()
}

#[tokio::test]
async fn every_publish_is_in_the_history_with_who_from_where_and_what_it_did() {
    let app = spawn_app().await;
    let api = app.api();
    let first = api.publish("alpha", 3, "2026-03-01T12:00:00Z").await;
    let older = api.publish("beta", 1, "2026-03-01T11:00:00Z").await;
    let tie = api.publish("beta", 5, "2026-03-01T13:00:00+01:00").await;
    let body = page(&app, "").await;
    assert_eq!(ids(&body), vec![tie, older, first], "newest first");
    let changes = &body.changes;
    assert_eq!(changes[0].outcome, "tie");
    assert_eq!(changes[0].change_at, "2026-03-01T12:00:00Z");
    assert_eq!(changes[1].outcome, "older");
    assert_eq!(changes[2].outcome, "head");
    assert_eq!(changes[2].published_by, "alpha");
    assert_eq!(changes[2].current_status, 3);
    assert_eq!(changes[2].source_address.as_deref(), Some("127.0.0.1"));
    assert!(chrono::DateTime::parse_from_rfc3339(&changes[2].received_at).is_ok());
    assert_eq!(body.next_before, None, "one page holds it all");
}

#[tokio::test]
async fn pages_and_filters_narrow_the_history() {
    let app = spawn_app().await;
    let api = app.api();
    let mut ids_published = Vec::new();
    for n in 0..5 {
        let publisher = if n % 2 == 0 { "alpha" } else { "beta" };
        ids_published.push(
            api.publish(publisher, 2, &format!("2026-03-01T12:0{n}:00Z"))
                .await,
        );
    }
    let first = page(&app, "?limit=2").await;
    assert_eq!(ids(&first), vec![ids_published[4], ids_published[3]]);
    assert_eq!(first.next_before, Some(ids_published[3]));
    let next = page(&app, &format!("?limit=2&before={}", ids_published[3])).await;
    assert_eq!(ids(&next)[0], ids_published[2]);
    assert_eq!(page(&app, "?app=beta").await.changes.len(), 2);
    assert!(
        page(&app, "?since=2999-01-01T00:00:00Z")
            .await
            .changes
            .is_empty()
    );

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

//! `Idempotency-Key`: a producer that times out and retries cannot create
//! two changes.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_in, spawn_app_with, status_and_json};

async fn publish_with_key(app: &TestApp, key: &str, body: &str) -> reqwest::Response {
    app.request_as(reqwest::Method::POST, "/secapp/update", "security")
        .await
        .header("Idempotency-Key", key)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

const BODY: &str = r#"{"current_status": 4, "Change_at": "2026-03-01T12:00:00Z"}"#;

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_gets_the_first_id_and_records_nothing() {
    let app = spawn_app().await;
    let (status, first) = status_and_json(publish_with_key(&app, "incident-1", BODY).await).await;
    assert_eq!(status, 200);
    let retry = publish_with_key(
        &app,
        "incident-1",
        r#"{"Change_at":"2026-03-01T12:00:00Z","current_status":4}"#,
    )
    .await;
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let (status, again) = status_and_json(retry).await;
    assert_eq!(
        (status, &again),
        (200, &first),
        "same id, even with fields reordered"
    );
    let first_id = first["processed_id"].as_i64().unwrap();
    assert_eq!(
        app.recorded().await,
        [first_id],
        "the retry recorded nothing"
    );
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_refused() {
    let app = spawn_app().await;
    let (_, first) = status_and_json(publish_with_key(&app, "k", BODY).await).await;
    let different = r#"{"current_status": 5, "Change_at": "2026-03-01T12:00:00Z"}"#;
    let (status, body) = status_and_json(publish_with_key(&app, "k", different).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    let (_, head) = app.api().poll("observer").await;
    assert_eq!(head["status_change_id"], first["processed_id"]);
    assert_eq!(head["current_status"], json!(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_key_produce_exactly_one_change() {
    let app = spawn_app().await;
    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let request = app
            .request_as(reqwest::Method::POST, "/secapp/update", "security")
            .await
            .header("Idempotency-Key", "storm")
            .body(BODY);
        retries.spawn(async move { status_and_json(request.send().await.unwrap()).await });
    }
    let mut ids = Vec::new();
    while let Some(answer) = retries.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
        ids.push(body["processed_id"].as_i64().unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every retry got the one id: {ids:?}");
    assert_eq!(app.recorded().await, ids, "exactly one change was recorded");
}

#[tokio::test]
async fn keys_survive_a_restart_and_are_forgotten_after_their_window() {
    let app = spawn_app().await;
    let (_, first) = status_and_json(publish_with_key(&app, "k", BODY).await).await;
    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    let (_, again) = status_and_json(publish_with_key(&app, "k", BODY).await).await;
    assert_eq!(again, first);

    let app = spawn_app_with(|config| config.idempotency_window = Duration::from_millis(200)).await;
    let (_, first) = status_and_json(publish_with_key(&app, "k", BODY).await).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, later) = status_and_json(publish_with_key(&app, "k", BODY).await).await;
    assert_eq!(status, 200);
    assert!(
        later["processed_id"].as_i64() > first["processed_id"].as_i64(),
        "a new change"
    );
}

#[tokio::test]
async fn a_retry_without_change_at_replays_the_first_time_of_receipt() {
    let app = spawn_app().await;
    let body = r#"{"current_status": 3}"#;
    let (_, first) = status_and_json(publish_with_key(&app, "now", body).await).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, again) = status_and_json(publish_with_key(&app, "now", body).await).await;
    assert_eq!(again, first);
}

#[tokio::test]
async fn keys_are_scoped_to_the_publishing_app_and_bad_keys_are_refused() {
    let app = spawn_app().await;
    let (_, mine) = status_and_json(publish_with_key(&app, "shared", BODY).await).await;
    let theirs = app
        .request_as(reqwest::Method::POST, "/secapp/update", "other-producer")
        .await
        .header("Idempotency-Key", "shared")
        .body(BODY)
        .send()
        .await
        .unwrap();
    let (_, theirs) = status_and_json(theirs).await;
    assert_ne!(theirs["processed_id"], mine["processed_id"]);
    for bad in [String::new(), "x".repeat(256), "has space".to_owned()] {
        let (status, body) = status_and_json(publish_with_key(&app, &bad, BODY).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_idempotency_key")),
            "{bad:?}"
        );
    }
}

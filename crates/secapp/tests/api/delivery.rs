//! The server-held cursor under concurrency: each app told each head once.

use std::collections::HashMap;

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_apps_polling_at_once_are_each_told_exactly_once() {
    let app = spawn_app().await;
    let id = app
        .api()
        .publish("security", 4, "2026-03-01T12:00:00Z")
        .await;
    let mut polls = tokio::task::JoinSet::new();
    for round in 0..3 {
        for n in 0..200 {
            let api = app.api();
            polls.spawn(async move {
                let name = format!("app-{n}");
                let (status, body) = api.poll(&name).await;
                assert_eq!(status, 200, "round {round}");
                (name, body)
            });
        }
    }
    let mut told: HashMap<String, usize> = HashMap::new();
    while let Some(result) = polls.join_next().await {
        let (name, body) = result.unwrap();
        if body != json!({}) {
            assert_eq!(body["status_change_id"], json!(id));
            *told.entry(name).or_default() += 1;
        }
    }
    assert_eq!(told.len(), 200, "every app is told");
    assert!(
        told.values().all(|&n| n == 1),
        "no app is told twice: {told:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_polls_by_one_app_yield_one_delivery() {
    let app = spawn_app().await;
    for version in 0..3 {
        let at = format!("2026-03-01T12:0{version}:00Z");
        let id = app.api().publish("security", 2 + version, &at).await;
        let mut polls = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let api = app.api();
            polls.spawn(async move { api.poll("billing").await.1 });
        }
        let mut deliveries = Vec::new();
        while let Some(body) = polls.join_next().await {
            let body = body.unwrap();
            if body != json!({}) {
                deliveries.push(body);
            }
        }
        assert_eq!(deliveries.len(), 1, "head {id}: {deliveries:?}");
        assert_eq!(deliveries[0]["status_change_id"], json!(id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishes_get_distinct_ids_and_the_latest_time_wins() {
    let app = spawn_app().await;
    let mut publishes = tokio::task::JoinSet::new();
    for n in 0..50_i64 {
        let api = app.api();
        publishes.spawn(async move {
            let at = format!("2026-03-01T12:{:02}:00Z", n % 25);
            (
                n,
                api.publish(&format!("producer-{n}"), 1 + n % 5, &at).await,
            )
        });
    }
    let mut ids = Vec::new();
    let mut latest_first: Option<(i64, i64)> = None; // (id, level) of the first recorded 12:24
    while let Some(result) = publishes.join_next().await {
        let (n, id) = result.unwrap();
        ids.push(id);
        if n % 25 == 24 && latest_first.is_none_or(|(first, _)| id < first) {
            latest_first = Some((id, 1 + n % 5));
        }
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 50, "ids are distinct");
    let (_, head) = app.api().poll("observer").await;
    let (id, level) = latest_first.unwrap();
    assert_eq!(
        head["status_change_id"],
        json!(id),
        "the first change at the latest time wins"
    );
    assert_eq!(head["current_status"], json!(level));
    assert_eq!(head["Change_at"], json!("2026-03-01T12:24:00Z"));
}

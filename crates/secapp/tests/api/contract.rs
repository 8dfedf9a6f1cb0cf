//! The prototype's wire contract: publish, poll, ordering, normalisation.

use serde_json::json;

use crate::helpers::{spawn_app, status_and_json};

#[tokio::test]
async fn a_publish_answers_its_processed_id() {
    let app = spawn_app().await;
    let api = app.api();
    let first = api.publish("security", 4, "2026-03-01T12:05:00Z").await;
    let second = api.publish("security", 3, "2026-03-01T12:06:00Z").await;
    assert!(first >= 1);
    assert!(second > first, "processed_id must strictly increase");
}

#[tokio::test]
async fn a_new_app_is_told_the_state_and_then_nothing() {
    let app = spawn_app().await;
    let api = app.api();
    let id = api.publish("security", 4, "2026-03-01T12:05:00Z").await;
    let (status, body) = api.poll("billing").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"current_status": 4, "status_change_id": id, "Change_at": "2026-03-01T12:05:00Z"})
    );
    assert_eq!(api.poll("billing").await, (200, json!({})));
    // Another app has its own cursor.
    assert_eq!(api.poll("payroll").await.1["status_change_id"], json!(id));
}

#[tokio::test]
async fn before_any_publish_a_poll_answers_an_empty_object() {
    let app = spawn_app().await;
    assert_eq!(app.api().poll("billing").await, (200, json!({})));
}

#[tokio::test]
async fn each_new_head_is_told_once_more() {
    let app = spawn_app().await;
    let api = app.api();
    api.publish("security", 2, "2026-03-01T12:00:00Z").await;
    api.poll("billing").await;
    let id = api.publish("security", 5, "2026-03-01T13:00:00Z").await;
    let (_, body) = api.poll("billing").await;
    assert_eq!(body["status_change_id"], json!(id));
    assert_eq!(body["current_status"], json!(5));
    assert_eq!(api.poll("billing").await.1, json!({}));
}

#[tokio::test]
async fn an_older_change_is_recorded_but_does_not_win() {
    let app = spawn_app().await;
    let api = app.api();
    let head = api.publish("security", 4, "2026-03-01T12:05:00Z").await;
    api.poll("billing").await;
    let older = api.publish("security", 1, "2026-03-01T12:00:00Z").await;
    assert!(older > head, "an older change still gets a new id");
    assert_eq!(
        api.poll("billing").await.1,
        json!({}),
        "not news: the head did not change"
    );
    let (_, fresh) = api.poll("fresh").await;
    assert_eq!(fresh["status_change_id"], json!(head));
    assert_eq!(fresh["current_status"], json!(4));
}

#[tokio::test]
async fn a_tie_keeps_the_first_change() {
    let app = spawn_app().await;
    let api = app.api();
    let first = api.publish("security", 4, "2026-03-01T12:05:00Z").await;
    api.poll("billing").await;
    // The same instant written with an offset and a zero fraction.
    api.publish("security", 2, "2026-03-01T14:05:00.000+02:00")
        .await;
    assert_eq!(api.poll("billing").await.1, json!({}));
    let (_, fresh) = api.poll("fresh").await;
    assert_eq!(fresh["status_change_id"], json!(first));
    assert_eq!(fresh["current_status"], json!(4));
}

#[tokio::test]
async fn timestamps_are_echoed_in_utc_with_fractions_only_when_given() {
    let cases = [
        ("2026-03-01T15:05:00+03:00", "2026-03-01T12:05:00Z"),
        ("2026-03-01T12:05:00", "2026-03-01T12:05:00Z"),
        ("2026-03-01T12:05:00.250Z", "2026-03-01T12:05:00.250Z"),
        ("2026-03-01T07:05:00.5-05:00", "2026-03-01T12:05:00.5Z"),
    ];
    for (sent, echoed) in cases {
        let app = spawn_app().await;
        let api = app.api();
        api.publish("security", 3, sent).await;
        let (_, body) = api.poll("billing").await;
        assert_eq!(body["Change_at"], json!(echoed), "sent {sent}");
    }
}

#[tokio::test]
async fn a_publish_without_change_at_takes_the_time_of_receipt() {
    let app = spawn_app().await;
    let api = app.api();
    let before = chrono::Utc::now();
    let (status, _) = status_and_json(
        api.publish_raw("security", r#"{"current_status": 2}"#)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = api.poll("billing").await;
    let at = chrono::DateTime::parse_from_rfc3339(body["Change_at"].as_str().unwrap()).unwrap();
    let after = chrono::Utc::now();
    assert!(
        at >= before - chrono::TimeDelta::milliseconds(1) && at <= after,
        "{at}"
    );
}

#[tokio::test]
async fn header_names_are_case_insensitive_and_the_body_needs_no_content_type() {
    let app = spawn_app().await;
    let producer = app.api().token("security").await;
    let token = app.api().token("billing").await;
    let response = app
        .client
        .post(app.url("/secapp/update"))
        .header("app-name", "security")
        .header("TOKEN", producer.as_str())
        .body(r#"{"current_status": 3, "Change_at": "2026-03-01T12:00:00Z"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .get(app.url("/secapp/update"))
        .header("APP-NAME", "billing")
        .header("token", token.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_and_json(response).await.1["current_status"],
        json!(3)
    );
}

#[tokio::test]
async fn a_head_request_does_not_count_as_telling_the_app() {
    let app = spawn_app().await;
    let api = app.api();
    api.publish("security", 3, "2026-03-01T12:00:00Z").await;
    let response = app
        .request_as(reqwest::Method::HEAD, "/secapp/update", "billing")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(api.poll("billing").await.1["current_status"], json!(3));
}

#[tokio::test]
async fn poll_answers_are_not_cacheable() {
    let app = spawn_app().await;
    let response = app
        .request_as(reqwest::Method::GET, "/secapp/update", "billing")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn a_custom_level_range_is_enforced() {
    let app = crate::helpers::spawn_app_with(|config| {
        config.min_level = 0;
        config.max_level = 10;
    })
    .await;
    let api = app.api();
    api.publish("security", 0, "2026-03-01T12:00:00Z").await;
    api.publish("security", 10, "2026-03-01T12:00:01Z").await;
    let (status, body) = status_and_json(
        api.publish_raw(
            "security",
            r#"{"current_status": 11, "Change_at": "2026-03-01T12:00:02Z"}"#,
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("level_out_of_range"))
    );
}

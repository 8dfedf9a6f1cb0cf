//! Stale-consumer alerts on a manual clock: fresh, stale, recovered, each
//! change kept and sent once to a real receiver, and nothing raised again
//! by a restart; per-application allowances; never-seen applications.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use secapp_server::clock::{Clock as _, ManualClock};
use secapp_server::config::Config;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_on, status_and_json};
use crate::metrics::{scrape, value};
use crate::receiver::{Receiver, SECRET, verifies, webhook};

const MINUTE: Duration = Duration::from_secs(60);

fn configure(url: String) -> impl Fn(&mut Config) + Clone {
    move |config: &mut Config| {
        config.watch_interval = Duration::from_millis(50);
        config.webhooks = vec![webhook(
            "ops",
            &url,
            &["consumer_stale", "consumer_recovered"],
        )];
    }
}

async fn alerts(app: &TestApp, query: &str) -> Value {
    let response = app
        .as_admin(Method::GET, &format!("/secapp/alerts{query}"))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits up to 10 s until `name` is in `state`; returns its entry.
async fn wait_state(app: &TestApp, name: &str, state: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = alerts(app, "").await;
        if let Some(found) = last["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|alert| alert["app"] == name && alert["state"] == state)
        {
            return found.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never became {state}: {last:#}");
}

fn events_for(receiver: &Receiver, kind: &str, app: &str) -> usize {
    receiver
        .delivered_of(kind)
        .iter()
        .filter(|event| event["data"]["app"] == app)
        .count()
}

#[tokio::test]
async fn a_quiet_consumer_goes_stale_and_recovers_once_each_and_a_restart_raises_nothing_again() {
    let receiver = Receiver::start(0).await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let configure = configure(receiver.url.clone());
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_on(dir, clock.clone(), configure.clone()).await;
    let api = app.api();

    assert_eq!(api.poll("billing").await.0, 200);
    let fresh = wait_state(&app, "billing", "fresh").await;
    assert_eq!(fresh["registered"], true);
    assert_eq!(fresh["stale_after"], "15m");
    assert_eq!(fresh["stale_after_seconds"], 900);
    assert_eq!(fresh["since"], fresh["last_seen"]);

    clock.advance(16 * MINUTE);
    let stale = wait_state(&app, "billing", "stale").await;
    let seen = chrono::DateTime::parse_from_rfc3339(fresh["last_seen"].as_str().unwrap()).unwrap();
    let since = chrono::DateTime::parse_from_rfc3339(stale["since"].as_str().unwrap()).unwrap();
    assert_eq!(
        since - seen,
        chrono::TimeDelta::minutes(15),
        "stale since its allowance ran out"
    );
    let listed = alerts(&app, "?state=stale").await;
    assert!(
        listed["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["app"] == "billing")
    );
    let fresh_only = alerts(&app, "?state=fresh").await;
    assert!(
        !fresh_only["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["app"] == "billing")
    );
    let report = app
        .as_admin(Method::GET, "/secapp/consumers")
        .send()
        .await
        .unwrap();
    let report: Value = report.json().await.unwrap();
    let billing = report["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["app"] == "billing")
        .unwrap();
    assert_eq!(billing["alert"]["state"], "stale");
    assert_eq!(billing["alert"]["since"], stale["since"]);
    let samples = scrape(&app).await;
    assert_eq!(
        value(&samples, r#"secapp_consumer_stale{app="billing"}"#),
        1.0
    );

    receiver
        .wait_for("one consumer_stale", |_| {
            events_for(&receiver, "consumer_stale", "billing") == 1
        })
        .await;
    let request = receiver
        .received()
        .into_iter()
        .find(|r| r.json()["type"] == "secapp.consumer.stale")
        .unwrap();
    assert!(
        verifies(SECRET, &request.signature, &request.body),
        "{}",
        request.signature
    );
    assert!(!verifies(
        "another-secret-0123",
        &request.signature,
        &request.body
    ));
    let event = request.json();
    assert_eq!(request.event_id, event["id"].as_str().unwrap());
    assert_eq!(event["data"]["stale_since"], stale["since"]);
    assert_eq!(event["data"]["last_seen"], fresh["last_seen"]);
    assert_eq!(event["data"]["stale_after_seconds"], 900);

    // Seen again: recovered, once.
    assert_eq!(api.poll("billing").await.0, 200);
    wait_state(&app, "billing", "fresh").await;
    receiver
        .wait_for("one consumer_recovered", |_| {
            events_for(&receiver, "consumer_recovered", "billing") == 1
        })
        .await;
    let samples = scrape(&app).await;
    assert_eq!(
        value(&samples, r#"secapp_consumer_stale{app="billing"}"#),
        0.0
    );

    // Quiet again: a second alert, then a restart on a later clock.
    clock.advance(16 * MINUTE);
    let stale_again = wait_state(&app, "billing", "stale").await;
    receiver
        .wait_for("a second consumer_stale", |_| {
            events_for(&receiver, "consumer_stale", "billing") == 2
        })
        .await;
    let history = app
        .as_admin(Method::GET, "/secapp/alerts/history?app=billing")
        .send()
        .await
        .unwrap();
    let history: Value = history.json().await.unwrap();
    let steps: Vec<(String, String)> = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().to_owned(),
                t["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let step = |from: &str, to: &str| (from.to_owned(), to.to_owned());
    let mut expected = vec![
        step("fresh", "stale"),
        step("stale", "fresh"),
        step("fresh", "stale"),
    ];
    // A check that ran between billing's registration and its first poll
    // saw it registered and never seen: then its first step is recorded too.
    if steps.len() == 4 {
        expected.push(step("never_seen", "fresh"));
    }
    assert_eq!(steps, expected, "newest first");

    let dir = app.stop().await;
    let later = Arc::new(ManualClock::new(
        clock.now() + chrono::TimeDelta::minutes(5),
    ));
    let app = spawn_app_on(dir, later.clone(), configure).await;
    let after = wait_state(&app, "billing", "stale").await;
    assert_eq!(
        after["since"], stale_again["since"],
        "the open alert survived the restart"
    );
    later.advance(MINUTE);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        events_for(&receiver, "consumer_stale", "billing"),
        2,
        "no alert raised again"
    );
    assert_eq!(events_for(&receiver, "consumer_recovered", "billing"), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_registered_consumer_never_seen_goes_stale_on_its_own_allowance() {
    let receiver = Receiver::start(0).await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_on(dir, clock.clone(), configure(receiver.url.clone())).await;
    app.register("nightly", &["consume"]).await;
    app.register("hourly", &["consume"]).await;
    app.register("publisher", &["publish"]).await;

    let patched = app
        .as_admin(Method::PATCH, "/admin/apps/hourly")
        .json(&json!({"stale_after": "5m"}))
        .send()
        .await
        .unwrap();
    let (status, view) = status_and_json(patched).await;
    assert_eq!((status, view["stale_after"].as_str()), (200, Some("5m")));
    let refused = app
        .as_admin(Method::PATCH, "/admin/apps/hourly")
        .json(&json!({"stale_after": "5 minutes"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(refused).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("stale_after"),
        "{body}"
    );

    let waiting = wait_state(&app, "hourly", "never_seen").await;
    assert_eq!(waiting["stale_after_seconds"], 300);
    assert_eq!(waiting["last_seen"], Value::Null);
    wait_state(&app, "nightly", "never_seen").await;
    let listed = alerts(&app, "").await;
    assert!(
        !listed["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["app"] == "publisher"),
        "only consumers are watched: {listed:#}"
    );

    clock.advance(6 * MINUTE);
    wait_state(&app, "hourly", "stale").await;
    wait_state(&app, "nightly", "never_seen").await;
    receiver
        .wait_for("hourly's alert", |_| {
            events_for(&receiver, "consumer_stale", "hourly") == 1
        })
        .await;
    let event = &receiver.delivered_of("consumer_stale")[0];
    assert_eq!(event["data"]["last_seen"], Value::Null);
    assert_eq!(event["data"]["stale_after_seconds"], 300);

    // Back to the server's allowance: nightly goes stale after 15 minutes.
    let reset = app
        .as_admin(Method::PATCH, "/admin/apps/hourly")
        .json(&json!({"stale_after": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_json(reset).await.1["stale_after"], Value::Null);
    clock.advance(10 * MINUTE);
    wait_state(&app, "nightly", "stale").await;
    let bad = app
        .as_admin(Method::GET, "/secapp/alerts?state=gone")
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_json(bad).await.1["error"], "invalid_query");
    app.stop().await;
}

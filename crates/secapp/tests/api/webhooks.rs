//! Webhooks to a real receiver: level changes signed and delivered once,
//! after the receiver's failures, across a restart, and dead-lettered once
//! the retry period is over. A manual clock makes the backoff pass at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secapp_server::clock::{Clock as _, ManualClock};
use secapp_server::config::Config;

use crate::helpers::spawn_app_on;
use crate::metrics::{scrape, value};
use crate::receiver::{Receiver, SECRET, verifies, verifies_standard, webhook};

fn level_hook(url: String, retry_for: Duration) -> impl Fn(&mut Config) + Clone {
    move |config: &mut Config| {
        config.watch_interval = Duration::from_millis(50);
        config.webhook_retry_for = retry_for;
        config.webhooks = vec![webhook("ops", &url, &["level_changed"])];
    }
}

/// Moves `clock` on by 10 s every 50 ms until `done`, for at most 20 s.
async fn run_clock_until(clock: &ManualClock, what: &str, done: impl Fn() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        clock.advance(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test]
async fn a_level_change_is_signed_and_delivered_once_after_the_receiver_fails_twice() {
    let receiver = Receiver::start(2).await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_on(
        dir,
        clock.clone(),
        level_hook(receiver.url.clone(), Duration::from_secs(86_400)),
    )
    .await;
    let api = app.api();
    let id = api.publish("security", 3, "2026-03-01T12:00:00Z").await;

    run_clock_until(&clock, "the delivery", || receiver.delivered().len() == 1).await;
    let attempts = receiver.received();
    assert_eq!(
        attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        [500, 500, 204]
    );
    for attempt in &attempts {
        assert_eq!(
            attempt.body, attempts[0].body,
            "every attempt sends the same bytes"
        );
        assert!(
            verifies(SECRET, &attempt.signature, &attempt.body),
            "{}",
            attempt.signature
        );
    }
    let event = attempts[2].json();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "secapp.level.changed");
    assert_eq!(event["source"], "/secapp");
    assert_eq!(event["id"], id.to_string(), "named by the change");
    assert_eq!(attempts[2].event_id, event["id"].as_str().unwrap());
    assert_eq!(event["data"]["current_status"], 3);
    assert_eq!(event["data"]["previous_status"], serde_json::Value::Null);
    assert_eq!(event["data"]["status_change_id"], id);
    assert_eq!(event["data"]["published_by"], "security");
    assert!(
        verifies_standard(SECRET, &attempts[2]),
        "the Standard Webhooks signature holds"
    );

    // Delivered: never sent again, however long the clock runs.
    for _ in 0..6 {
        clock.advance(Duration::from_secs(600));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.received().len(), 3);

    // A new head at the same level is no level change; another level is.
    api.publish("security", 3, "2026-03-01T12:01:00Z").await;
    let second = api.publish("security", 4, "2026-03-01T12:02:00Z").await;
    let delivered = receiver
        .wait_for("the second change", |events| events.len() == 2)
        .await;
    assert_eq!(delivered[1]["data"]["current_status"], 4);
    assert_eq!(delivered[1]["data"]["previous_status"], 3);
    assert_eq!(delivered[1]["data"]["status_change_id"], second);
    assert_ne!(delivered[0]["id"], delivered[1]["id"]);
    let samples = scrape(&app).await;
    assert_eq!(
        value(
            &samples,
            r#"secapp_webhook_deliveries_total{outcome="failed"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            r#"secapp_webhook_deliveries_total{outcome="delivered"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            r#"secapp_webhook_deliveries_total{outcome="dead"}"#
        ),
        0.0
    );
    app.stop().await;
}

#[tokio::test]
async fn an_event_not_yet_delivered_is_delivered_after_a_restart() {
    let down = Receiver::start(usize::MAX).await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let dir = tempfile::tempdir().unwrap();
    let day = Duration::from_secs(86_400);
    let app = spawn_app_on(dir, clock.clone(), level_hook(down.url.clone(), day)).await;
    app.api()
        .publish("security", 5, "2026-03-01T12:00:00Z")
        .await;
    for _ in 0..200 {
        if !down.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tried = down.received();
    assert!(!tried.is_empty(), "the first attempt was made");
    let dir = app.stop().await;

    // The receiver moved; the webhook keeps its name, so its event follows.
    let up = Receiver::start(0).await;
    let later = Arc::new(ManualClock::new(clock.now() + chrono::TimeDelta::hours(1)));
    let app = spawn_app_on(dir, later.clone(), level_hook(up.url.clone(), day)).await;
    let delivered = up
        .wait_for("the event after the restart", |events| events.len() == 1)
        .await;
    assert_eq!(delivered[0]["id"], tried[0].json()["id"]);
    assert_eq!(delivered[0]["data"]["current_status"], 5);
    app.stop().await;
}

#[tokio::test]
async fn an_event_is_dead_lettered_once_its_retry_period_is_over() {
    let receiver = Receiver::start(usize::MAX).await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_on(
        dir,
        clock.clone(),
        level_hook(receiver.url.clone(), Duration::from_secs(60)),
    )
    .await;
    app.api()
        .publish("security", 2, "2026-03-01T12:00:00Z")
        .await;
    let dead = || async {
        value(
            &scrape(&app).await,
            r#"secapp_webhook_deliveries_total{outcome="dead"}"#,
        )
    };
    for _ in 0..400 {
        if dead().await == 1.0 {
            break;
        }
        clock.advance(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dead().await, 1.0);
    let tries = receiver.received().len();
    assert!(tries >= 2, "retried before giving up: {tries}");
    clock.advance(Duration::from_secs(3_600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        tries,
        "a dead letter is not tried again"
    );

    // Listed for an operator, with its last error, and sent again on request.
    let (status, listed) = app
        .admin_json(reqwest::Method::GET, "/admin/dead-letters", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        secapp_cli(&app, &["dead-letters", "list", "--sink", "ops", "--json"]).await,
        listed,
        "the command line lists what the API does"
    );
    let letters = listed["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{listed}");
    assert_eq!(letters[0]["sink"], "ops");
    assert_eq!(letters[0]["event"], "level_changed");
    assert!(
        letters[0]["last_error"].as_str().unwrap().contains("500"),
        "{listed}"
    );
    assert_eq!(listed["next_before"], serde_json::Value::Null);
    let event_id = letters[0]["event_id"].as_i64().unwrap();
    for (path, code) in [
        (
            "/admin/dead-letters/nope/1/retry".to_owned(),
            "unknown_sink",
        ),
        (
            format!("/admin/dead-letters/ops/{}/retry", event_id + 1),
            "unknown_dead_letter",
        ),
    ] {
        let refused = app
            .as_admin(reqwest::Method::POST, &path)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 404, "{path}");
        assert_eq!(
            refused.json::<serde_json::Value>().await.unwrap()["error"],
            code
        );
    }
    receiver.stop_failing();
    let retried = secapp_cli(
        &app,
        &[
            "dead-letters",
            "retry",
            "ops",
            &event_id.to_string(),
            "--json",
        ],
    )
    .await;
    assert_eq!(retried["event_id"], event_id);
    receiver
        .wait_for("the retried dead letter", |delivered| delivered.len() == 1)
        .await;
    let (_, listed) = app
        .admin_json(reqwest::Method::GET, "/admin/dead-letters", None)
        .await;
    assert_eq!(listed["dead_letters"], serde_json::json!([]));
    let (_, audit) = app
        .admin_json(reqwest::Method::GET, "/admin/audit?limit=1", None)
        .await;
    assert_eq!(audit["events"][0]["action"], "dead_letter.retry");
    assert_eq!(audit["events"][0]["target"], format!("ops/{event_id}"));
    app.stop().await;
}

/// `secapp ARGS --server <app> --token <admin>`, its output as JSON.
async fn secapp_cli(app: &crate::helpers::TestApp, args: &[&str]) -> serde_json::Value {
    let output = tokio::process::Command::new(crate::helpers::binary())
        .args(args)
        .args(["--server", &app.base, "--token", &app.admin_token])
        .env("SECAPP_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

//! The client against a real server started here (SQLite in a fresh data
//! dir, on port 0): every method, and every kind of error.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use secapp_client::{Client, Error, Publish};
use secapp_server::Server;
use secapp_server::config::Config;
use serde_json::json;

struct Running {
    base: String,
    admin: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(adjust: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    adjust(&mut config);
    let server = Server::open(config).await.unwrap();
    let admin = server.first_admin().unwrap().token.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(listener, async {
        let _ = stopped.await;
    }));
    Running {
        base,
        admin,
        _dir: dir,
        stop: Some(stop),
    }
}

/// Registers `app` with `roles` and returns a client speaking for it.
async fn client_for(server: &Running, app: &str, roles: &[&str]) -> Client {
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/admin/apps", server.base))
        .bearer_auth(&server.admin)
        .json(&json!({"name": app, "roles": roles}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let issued: serde_json::Value = http
        .post(format!("{}/admin/apps/{app}/tokens", server.base))
        .bearer_auth(&server.admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["token"].as_str().unwrap();
    Client::builder(&server.base)
        .app(app)
        .token(token)
        .build()
        .unwrap()
}

#[tokio::test]
async fn publish_poll_poll_after_and_wait_follow_the_server() {
    let server = start(|config| config.publish_rate = 0).await;
    let producer = client_for(&server, "security-team", &["publish"]).await;
    let consumer = client_for(&server, "billing", &["consume"]).await;
    assert_eq!(
        consumer.poll().await.unwrap(),
        None,
        "nothing published yet"
    );

    let first = producer
        .publish(&Publish::level(3).at("2026-03-01T12:00:00Z"))
        .await
        .unwrap();
    let told = consumer.poll().await.unwrap().unwrap();
    assert_eq!((told.level, told.id), (3, first));
    assert_eq!(told.changed_at, "2026-03-01T12:00:00Z");
    assert_eq!(consumer.poll().await.unwrap(), None, "told once");
    assert_eq!(consumer.poll_after(first).await.unwrap(), None);
    assert_eq!(consumer.poll_after(0).await.unwrap().unwrap().id, first);

    // A retry with the same key is recorded once.
    let again = Publish::level(4)
        .at("2026-03-01T12:05:00Z")
        .key("change-42");
    let second = producer.publish(&again).await.unwrap();
    assert_eq!(producer.publish(&again).await.unwrap(), second);

    // A held wait answers as soon as there is news.
    let waiting = {
        let consumer = consumer.clone();
        tokio::spawn(async move { consumer.wait(second, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = producer.publish(&Publish::level(5)).await.unwrap();
    let news = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((news.level, news.id), (5, third));
    // A wait with nothing new ends empty.
    assert_eq!(
        consumer
            .wait(third, Duration::from_millis(300))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn every_refusal_is_its_own_kind_of_error() {
    let server = start(|config| config.publish_rate = 1).await;
    let producer = client_for(&server, "security-team", &["publish"]).await;
    let consumer = client_for(&server, "billing", &["consume"]).await;

    let wrong = Client::builder(&server.base)
        .app("billing")
        .token("secapp_not-a-token")
        .build()
        .unwrap();
    assert!(matches!(
        wrong.poll().await,
        Err(Error::Unauthorized { code, .. }) if code == "invalid_token"
    ));
    assert!(matches!(
        consumer.publish(&Publish::level(3)).await,
        Err(Error::Forbidden { code, .. }) if code == "missing_role"
    ));
    assert!(matches!(
        producer.publish(&Publish::level(9)).await,
        Err(Error::Invalid { code, .. }) if code == "level_out_of_range"
    ));
    let mut limited = None;
    for n in 0..10 {
        if let Err(e) = producer.publish(&Publish::level(1 + n % 5)).await {
            limited = Some(e);
            break;
        }
    }
    assert!(
        matches!(limited, Some(Error::RateLimited { retry_after }) if retry_after >= Duration::from_secs(1)),
        "{limited:?}"
    );
    assert!(matches!(
        Client::builder(&server.base).app("x").build(),
        Err(Error::Invalid { code, .. }) if code == "client_setup"
    ));
    let nowhere = Client::builder("http://127.0.0.1:9")
        .app("billing")
        .token("t")
        .build()
        .unwrap();
    assert!(matches!(nowhere.poll().await, Err(Error::Transport(_))));
}

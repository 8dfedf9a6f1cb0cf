//! The client against a real server started here (SQLite in a fresh data
//! dir, on port 0): every method, and every kind of error.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod common;

use common::{client_for, start};
use secapp_client::{Client, Error, Publish};

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

/// A listener answering every connection with `answer` (or, if `None`,
/// holding it silent): what a balancer with no healthy server, or a hung
/// one, looks like to a client. Also answers the requests it read.
async fn canned(
    answer: Option<&'static str>,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut request = [0_u8; 4096];
                let read = socket.read(&mut request).await.unwrap_or(0);
                let _ = seen.send(String::from_utf8_lossy(&request[..read]).into_owned());
                match answer {
                    Some(answer) => {
                        let _ = socket.write_all(answer.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    (base, requests)
}

#[tokio::test]
async fn a_server_that_cannot_serve_is_unavailable_and_one_that_hangs_times_out() {
    let (busy, mut requests) = canned(Some(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    ))
    .await;
    let client = Client::builder(&busy).app("a").token("t").build().unwrap();
    assert_eq!(
        client.poll().await,
        Err(Error::Unavailable {
            status: 503,
            retry_after: Duration::from_secs(7)
        })
    );
    // Every request names the crate and its version.
    let request = requests.recv().await.unwrap().to_lowercase();
    let agent = format!(
        "user-agent: secapp-client/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    assert!(request.contains(&agent), "{request}");
    let (hung, _) = canned(None).await;
    let client = Client::builder(&hung)
        .app("a")
        .token("t")
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    assert_eq!(client.poll().await, Err(Error::Timeout));
    assert_eq!(
        client.publish(&Publish::level(2)).await,
        Err(Error::Timeout)
    );
}

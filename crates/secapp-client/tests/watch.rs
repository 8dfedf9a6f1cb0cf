//! `watch()` against a real server started here: each new state once and
//! in order, the long-poll fallback when streams are refused, retrying a
//! server that is not there yet, and the error that ends a watch. Restarts
//! of the real binary, cut connections and replica changes are in the
//! `secapp` crate's end-to-end tests (`tests/api/watch.rs`).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{client_for, start, start_on, token_for};
use futures_util::StreamExt;
use secapp_client::{Client, Error, Publish, State, Transport, Watch, WatchOptions};

/// The next item, within 10 s.
async fn next(watch: &mut Watch) -> Option<Result<State, Error>> {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("the watch said nothing within 10 s")
}

async fn next_state(watch: &mut Watch) -> State {
    next(watch).await.unwrap().unwrap()
}

/// Publishes `level` at minute `minute` of a fixed hour; answers its id.
async fn publish(producer: &Client, level: i64, minute: u32) -> i64 {
    let at = format!("2026-03-01T12:{minute:02}:00Z");
    producer
        .publish(&Publish::level(level).at(at))
        .await
        .unwrap()
}

#[tokio::test]
async fn each_transport_hands_out_each_new_state_once_in_order() {
    let server = start(|config| config.publish_rate = 0).await;
    let producer = client_for(&server, "security-team", &["publish"]).await;
    let consumer = client_for(&server, "billing", &["consume"]).await;
    let first = publish(&producer, 2, 1).await;
    let mut minute = 1;
    for transport in [Transport::Auto, Transport::Stream, Transport::LongPoll] {
        let mut watch = consumer.watch_with(WatchOptions::default().transport(transport));
        let current = next_state(&mut watch).await;
        assert!(current.id >= first, "{transport:?}: {current:?}");
        let mut last = current.id;
        for _ in 0..3 {
            minute += 1;
            let id = publish(&producer, 3, minute).await;
            let state = next_state(&mut watch).await;
            assert_eq!((state.id, state.level), (id, 3), "{transport:?}");
            assert!(state.id > last);
            last = state.id;
        }
        // An older change is recorded but is not the head: nothing to tell.
        publish(&producer, 5, 0).await;
        minute += 1;
        let newest = publish(&producer, 1, minute).await;
        assert_eq!(next_state(&mut watch).await.id, newest, "{transport:?}");
        assert_eq!(watch.retries(), 0, "{transport:?}");
    }
}

#[tokio::test]
async fn a_watch_after_an_id_does_not_hand_that_state_out_again() {
    let server = start(|config| config.publish_rate = 0).await;
    let producer = client_for(&server, "security-team", &["publish"]).await;
    let consumer = client_for(&server, "billing", &["consume"]).await;
    let mut seen = publish(&producer, 4, 0).await;
    for transport in [Transport::Stream, Transport::LongPoll] {
        let options = WatchOptions::default().after(seen).transport(transport);
        let mut watch = consumer.watch_with(options);
        let quiet = tokio::time::timeout(Duration::from_millis(500), watch.next()).await;
        assert!(quiet.is_err(), "{transport:?} repeated {quiet:?}");
        seen = publish(&producer, 5, 5 + transport as u32).await;
        assert_eq!(next_state(&mut watch).await.id, seen, "{transport:?}");
    }
}

#[tokio::test]
async fn refused_streams_fall_back_to_long_polls_and_lose_nothing() {
    let server = start(|config| {
        config.publish_rate = 0;
        config.max_streams_per_app = 1;
    })
    .await;
    let producer = client_for(&server, "security-team", &["publish"]).await;
    let token = token_for(&server, "billing", &["consume"]).await;
    // Another instance of billing holds the one stream billing may have.
    let held = reqwest::Client::new()
        .get(format!("{}/secapp/stream", server.base))
        .header("App-name", "billing")
        .header("Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 200);

    let consumer = Client::builder(&server.base)
        .app("billing")
        .token(&token)
        .build()
        .unwrap();
    let refusals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let options = {
        let refusals = refusals.clone();
        WatchOptions::default().on_retry(move |e, _| refusals.lock().unwrap().push(e.clone()))
    };
    let mut watch = consumer.watch_with(options);
    let first = publish(&producer, 3, 1).await;
    assert_eq!(next_state(&mut watch).await.id, first);
    let second = publish(&producer, 4, 2).await;
    assert_eq!(next_state(&mut watch).await.id, second);
    assert!(watch.retries() >= 1);
    assert!(
        matches!(
            refusals.lock().unwrap().first(),
            Some(Error::RateLimited { .. })
        ),
        "{refusals:?}"
    );

    // With streams only, a refusal is waited out; once the stream is free
    // the watch gets it.
    let pauses = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let options = {
        let pauses = pauses.clone();
        WatchOptions::default()
            .after(second)
            .transport(Transport::Stream)
            .max_backoff(Duration::from_millis(300))
            .on_retry(move |e, pause| pauses.lock().unwrap().push((e.clone(), pause)))
    };
    let mut streaming = consumer.watch_with(options);
    let third = publish(&producer, 5, 3).await;
    let waiting = tokio::spawn(async move {
        let state = next_state(&mut streaming).await;
        (state, streaming.retries())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(held);
    let (state, retries) = waiting.await.unwrap();
    assert_eq!(state.id, third);
    assert!(retries >= 1, "{retries}");
    // The pause honours the server's Retry-After, above max_backoff.
    for (e, pause) in pauses.lock().unwrap().iter() {
        let Error::RateLimited { retry_after } = e else {
            panic!("{e:?}");
        };
        assert!(*retry_after >= Duration::from_secs(1));
        assert!(pause >= retry_after, "{pause:?} < {retry_after:?}");
    }
}

#[tokio::test]
async fn a_server_not_there_yet_is_retried_until_it_is() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let consumer = Client::builder(format!("http://{addr}"))
        .app("billing")
        .token("not-yet")
        .build()
        .unwrap();
    let options = WatchOptions::default().max_backoff(Duration::from_millis(200));
    let mut watch = consumer.watch_with(options);
    let waiting = tokio::spawn(async move {
        let item = next(&mut watch).await;
        (item, watch.retries())
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = start_on(listener, |config| config.publish_rate = 0).await;
    // The watch's token is unknown here: once the server is up, the refusal
    // ends the watch (retrying cannot cure it).
    let (item, retries) = waiting.await.unwrap();
    assert!(
        matches!(item, Some(Err(Error::Unauthorized { ref code, .. })) if code == "invalid_token"),
        "{item:?}"
    );
    assert!(retries >= 1, "{retries}");
    drop(server);
}

#[tokio::test]
async fn an_error_retrying_cannot_cure_is_the_last_item() {
    let server = start(|_| {}).await;
    let producer = client_for(&server, "security-team", &["publish"]).await;
    for transport in [Transport::Stream, Transport::LongPoll] {
        let mut watch = producer.watch_with(WatchOptions::default().transport(transport));
        assert!(
            matches!(next(&mut watch).await, Some(Err(Error::Forbidden { ref code, .. })) if code == "missing_role"),
            "{transport:?}"
        );
        assert!(next(&mut watch).await.is_none(), "{transport:?}");
    }
}

//! The consumer watch and the outbox: sightings only move forward, a
//! change of alert state is recorded once however many servers evaluate,
//! events are written with their cause, and a delivery is held by one
//! sender at a time.

use chrono::{DateTime, TimeDelta, Utc};
use secapp_domain::AppName;

use super::{Backend, change, now_micros};
use crate::store::{
    AlertState, DeliveryOutcome, EventKind, NewChange, NewEvent, Standing, WatchChange,
};

fn app(name: &str) -> AppName {
    AppName::parse(name).unwrap()
}

fn standing(state: AlertState, since: DateTime<Utc>) -> Standing {
    Standing { state, since }
}

/// A last sighting never moves back, whoever writes it.
pub async fn sightings_only_move_forward(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let t = now_micros();
    a.watch(vec![(app("billing"), t)]).await.unwrap();
    let read = b
        .watch(vec![(app("billing"), t - TimeDelta::minutes(5))])
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].last_seen, Some(t), "an older sighting is ignored");
    assert_eq!(read[0].standing, None);
    let later = t + TimeDelta::seconds(1);
    let read = a.watch(vec![(app("billing"), later)]).await.unwrap();
    assert_eq!(read[0].last_seen, Some(later));
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Two servers raising one alert record it, its history entry and its
/// event once between them.
pub async fn two_watchers_record_a_change_of_state_once(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let t = now_micros();
    let first = WatchChange {
        app: app("billing"),
        from: None,
        to: standing(AlertState::Fresh, t),
        last_seen: Some(t),
        event: None,
    };
    assert_eq!(a.change_watch(vec![first]).await.unwrap(), [true]);
    let stale = |by: &str| WatchChange {
        app: app("billing"),
        from: Some(standing(AlertState::Fresh, t)),
        to: standing(AlertState::Stale, t + TimeDelta::minutes(15)),
        last_seen: Some(t),
        event: Some(NewEvent {
            kind: EventKind::ConsumerStale,
            at: t + TimeDelta::minutes(16),
            data: serde_json::json!({"app": "billing", "by": by}),
            webhooks: vec!["ops".into()],
        }),
    };
    let (from_a, from_b) = tokio::join!(
        a.change_watch(vec![stale("a")]),
        b.change_watch(vec![stale("b")])
    );
    let applied = [from_a.unwrap()[0], from_b.unwrap()[0]];
    assert_eq!(applied.iter().filter(|won| **won).count(), 1, "{applied:?}");
    let history = b.watch_history(Some(app("billing")), 10).await.unwrap();
    assert_eq!(history.len(), 1, "the first state has no history entry");
    assert_eq!(
        (history[0].from, history[0].to),
        (AlertState::Fresh, AlertState::Stale)
    );
    assert_eq!(history[0].at, t + TimeDelta::minutes(15));
    let later = t + TimeDelta::hours(1);
    let due = a
        .claim_deliveries("ops", later, later + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "one event between them");
    assert_eq!(due[0].kind, EventKind::ConsumerStale);
    let read = a.watch(Vec::new()).await.unwrap();
    assert_eq!(
        read[0].standing,
        Some(standing(AlertState::Stale, t + TimeDelta::minutes(15)))
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// A publish that changes the level writes its event in the same
/// transaction; one that keeps the level writes none.
pub async fn a_level_change_writes_its_event_with_the_publish(backend: &dyn Backend) {
    let store = backend.open().await;
    let hooked = |level: i64, at: &str| NewChange {
        level_webhooks: vec!["ops".into(), "audit".into()],
        ..change(level, at)
    };
    store
        .publish(hooked(3, "2026-03-01T12:00:00Z"))
        .await
        .unwrap();
    store
        .publish(hooked(3, "2026-03-01T12:01:00Z"))
        .await
        .unwrap();
    store
        .publish(hooked(2, "2026-03-01T11:00:00Z"))
        .await
        .unwrap();
    store
        .publish(change(4, "2026-03-01T12:02:00Z"))
        .await
        .unwrap();
    store
        .publish(hooked(5, "2026-03-01T12:03:00Z"))
        .await
        .unwrap();
    let later = Utc::now() + TimeDelta::hours(1);
    let hold = later + TimeDelta::minutes(1);
    let due = store
        .claim_deliveries("ops", later, hold, 10)
        .await
        .unwrap();
    let levels: Vec<serde_json::Value> = due
        .iter()
        .map(|d| {
            let data: serde_json::Value = serde_json::from_str(&d.data).unwrap();
            serde_json::json!([data["level"], data["previous_level"]])
        })
        .collect();
    assert_eq!(
        levels,
        [serde_json::json!([3, null]), serde_json::json!([5, 4])],
        "the first head, and 4 → 5; not the tie at 3, the older 2 or the unhooked 4"
    );
    assert_eq!(
        store
            .claim_deliveries("audit", later, hold, 10)
            .await
            .unwrap()
            .len(),
        2,
        "one delivery per webhook"
    );
    store.close().await.unwrap();
}

/// A claimed delivery is held from other senders until its hold ends;
/// a retry is due at its time; a delivered or dead one is never due again.
pub async fn a_delivery_is_held_by_one_sender_at_a_time(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let t = now_micros();
    let event = |n: i64| WatchChange {
        app: app(&format!("app-{n}")),
        from: None,
        to: standing(AlertState::Stale, t),
        last_seen: None,
        event: Some(NewEvent {
            kind: EventKind::ConsumerStale,
            at: t,
            data: serde_json::json!({"n": n}),
            webhooks: vec!["ops".into()],
        }),
    };
    a.change_watch(vec![event(1), event(2), event(3)])
        .await
        .unwrap();
    let hold = t + TimeDelta::minutes(1);
    let claimed = a.claim_deliveries("ops", t, hold, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(
        b.claim_deliveries("ops", t, hold, 10)
            .await
            .unwrap()
            .is_empty(),
        "held by the first sender"
    );
    let at = t + TimeDelta::seconds(1);
    a.finish_delivery(&claimed[0], DeliveryOutcome::Delivered, at)
        .await
        .unwrap();
    a.finish_delivery(
        &claimed[1],
        DeliveryOutcome::Retry {
            next_at: t + TimeDelta::seconds(10),
            error: "the receiver answered 500".into(),
        },
        at,
    )
    .await
    .unwrap();
    a.finish_delivery(
        &claimed[2],
        DeliveryOutcome::Dead {
            error: "gone".into(),
        },
        at,
    )
    .await
    .unwrap();
    let early = t + TimeDelta::seconds(5);
    assert!(
        b.claim_deliveries("ops", early, early + TimeDelta::minutes(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = t + TimeDelta::seconds(10);
    let retried = b
        .claim_deliveries("ops", due, due + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].event_id, claimed[1].event_id);
    assert_eq!(retried[0].attempts, 1);
    // A sender that stopped mid-attempt: the delivery is due again once
    // its hold ends, and only then.
    let after_hold = due + TimeDelta::minutes(2);
    let again = a
        .claim_deliveries("ops", after_hold, after_hold + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event_id, claimed[1].event_id);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// One server at a time holds the once-only duties; when it goes, another
/// takes them. Alone on a database (no notices), a store always leads.
pub async fn one_server_leads_at_a_time(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    if a.notices().is_none() {
        assert!(a.lead().await.unwrap());
        a.close().await.unwrap();
        b.close().await.unwrap();
        return;
    }
    assert!(a.lead().await.unwrap());
    assert!(!b.lead().await.unwrap(), "one leader at a time");
    assert!(a.lead().await.unwrap(), "the leader keeps leading");
    a.close().await.unwrap();
    let mut took_over = false;
    for _ in 0..50 {
        if b.lead().await.unwrap() {
            took_over = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(took_over, "another server takes the duties over");
    b.close().await.unwrap();
}

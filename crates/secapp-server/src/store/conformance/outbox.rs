//! The outbox: a publish writes the events sinks asked for in its own
//! transaction; a sink's deliveries are claimed in event order, held from
//! other relays, retried without letting later ones pass, and dead letters
//! are listed and can be made pending again.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use secapp_domain::AppName;

use super::{Backend, change, now_micros};
use crate::store::{
    DeliveryOutcome, EventKind, NewChange, NewEvent, Store, Subscribers, WatchChange,
};

/// Each sink is told of the publishes it asked for: `all` every recorded
/// one, `heads` each new head, `levels` each new head with another level.
pub async fn a_publish_writes_the_events_sinks_asked_for(backend: &dyn Backend) {
    let store = backend.open().await;
    let lease = super::lease(&store).await;
    let sinks = Arc::new(Subscribers::new([
        ("all", &[EventKind::PublishAccepted][..]),
        ("heads", &[EventKind::StateChanged][..]),
        ("levels", &[EventKind::LevelChanged][..]),
    ]));
    let hooked = |level: i64, at: &str| NewChange {
        sinks: sinks.clone(),
        ..change(level, at)
    };
    let mut ids = Vec::new();
    for published in [
        hooked(3, "2026-03-01T12:00:00Z"),
        hooked(3, "2026-03-01T12:01:00Z"),
        hooked(2, "2026-03-01T11:00:00Z"),
        change(4, "2026-03-01T12:02:00Z"),
        hooked(5, "2026-03-01T12:03:00Z"),
    ] {
        ids.push(
            store
                .publish(published)
                .await
                .unwrap()
                .recorded()
                .unwrap()
                .id
                .0,
        );
    }
    let later = Utc::now() + TimeDelta::hours(1);
    let hold = later + TimeDelta::minutes(1);
    let told = |sink: &'static str| {
        let store = store.clone();
        async move {
            store
                .claim_deliveries(&lease, sink, later, hold, 10)
                .await
                .unwrap()
                .iter()
                .map(|d| serde_json::from_str::<serde_json::Value>(&d.data).unwrap())
                .map(|data| {
                    serde_json::json!([
                        data["status_change_id"],
                        data["current_status"],
                        data["outcome"],
                        data["previous_status"]
                    ])
                })
                .collect::<Vec<_>>()
        }
    };
    let row = |id: i64, level: i64, outcome: &str, previous: Option<i64>| {
        serde_json::json!([id, level, outcome, previous])
    };
    assert_eq!(
        told("all").await,
        [
            row(ids[0], 3, "head", None),
            row(ids[1], 3, "head", Some(3)),
            row(ids[2], 2, "older", Some(3)),
            row(ids[4], 5, "head", Some(4)),
        ],
        "every recorded publish that asked, in order; not the unhooked 4"
    );
    assert_eq!(
        told("heads").await,
        [
            row(ids[0], 3, "head", None),
            row(ids[1], 3, "head", Some(3)),
            row(ids[4], 5, "head", Some(4)),
        ]
    );
    assert_eq!(
        told("levels").await,
        [
            row(ids[0], 3, "head", None),
            row(ids[4], 5, "head", Some(4))
        ],
        "the first head and 4 → 5; not the same level again or the older 2"
    );
    store.close().await.unwrap();
}

/// A sink's deliveries are claimed oldest first and held from other
/// relays; one waiting for its retry holds back those behind it; an untried
/// one is due again with no attempt counted; a dead letter is listed and
/// can be made pending again.
pub async fn a_sinks_deliveries_go_in_order_and_dead_letters_can_be_retried(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    // Both relays under the one lease: the holds alone keep them apart.
    let lease = super::lease(&a).await;
    let t = now_micros();
    stale_events(&a, t, 3).await;
    let hold = t + TimeDelta::minutes(1);
    let claimed = a
        .claim_deliveries(&lease, "ops", t, hold, 10)
        .await
        .unwrap();
    let ids: Vec<i64> = claimed.iter().map(|d| d.event_id).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");
    assert!(
        b.claim_deliveries(&lease, "ops", t, hold, 10)
            .await
            .unwrap()
            .is_empty(),
        "held by the first relay"
    );
    let at = t + TimeDelta::seconds(1);
    let retry_at = t + TimeDelta::seconds(10);
    a.finish_deliveries(
        &lease,
        vec![
            (claimed[0].clone(), DeliveryOutcome::Delivered),
            (
                claimed[1].clone(),
                DeliveryOutcome::Retry {
                    next_at: retry_at,
                    error: "the broker refused the message (nack)".into(),
                },
            ),
            (claimed[2].clone(), DeliveryOutcome::Unsent),
        ],
        at,
    )
    .await
    .unwrap();
    let early = t + TimeDelta::seconds(5);
    assert!(
        b.claim_deliveries(&lease, "ops", early, early + TimeDelta::minutes(1), 10)
            .await
            .unwrap()
            .is_empty(),
        "the untried one waits behind the one waiting for its retry"
    );
    let again = b
        .claim_deliveries(
            &lease,
            "ops",
            retry_at,
            retry_at + TimeDelta::minutes(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        again
            .iter()
            .map(|d| (d.event_id, d.attempts))
            .collect::<Vec<_>>(),
        [(ids[1], 1), (ids[2], 0)]
    );
    // A relay that stopped mid-batch: due again once the hold ends.
    let after_hold = retry_at + TimeDelta::minutes(2);
    let resumed = a
        .claim_deliveries(
            &lease,
            "ops",
            after_hold,
            after_hold + TimeDelta::minutes(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(resumed.len(), 2);
    a.finish_deliveries(
        &lease,
        vec![
            (
                resumed[0].clone(),
                DeliveryOutcome::Dead {
                    error: "gone".into(),
                },
            ),
            (resumed[1].clone(), DeliveryOutcome::Delivered),
        ],
        after_hold,
    )
    .await
    .unwrap();
    let dead = b.dead_letters(None, None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].event_id, dead[0].sink.as_str()), (ids[1], "ops"));
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].last_error.as_deref(), Some("gone"));
    assert_eq!(dead[0].dead_at, Some(after_hold));
    assert!(
        b.dead_letters(Some("other".into()), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        b.dead_letters(None, Some(ids[1]), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !b.retry_dead_letter("ops", ids[0], after_hold, retried(ids[0]))
            .await
            .unwrap(),
        "delivered, not dead"
    );
    assert!(
        b.retry_dead_letter("ops", ids[1], after_hold, retried(ids[1]))
            .await
            .unwrap()
    );
    assert!(
        !b.retry_dead_letter("ops", ids[1], after_hold, retried(ids[1]))
            .await
            .unwrap(),
        "pending now"
    );
    let retried = a
        .claim_deliveries(
            &lease,
            "ops",
            after_hold,
            after_hold + TimeDelta::minutes(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        retried
            .iter()
            .map(|d| (d.event_id, d.attempts))
            .collect::<Vec<_>>(),
        [(ids[1], 0)]
    );
    assert!(a.dead_letters(None, None, 10).await.unwrap().is_empty());
    let audit = a
        .audit(crate::store::AuditQuery {
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .map(|r| r.event.target.as_str())
            .collect::<Vec<_>>(),
        [format!("ops/{}", ids[1])],
        "the one retry made, audited; not the refused ones"
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// A server whose lease ran out while it was paused is fenced: once
/// another server has taken the duties, the outbox refuses the first one's
/// claims and records, and hands the deliveries to the new holder.
pub async fn a_lease_taken_over_fences_the_server_that_held_it(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    if a.notices().is_none() {
        // Alone on its database: nobody can take the duties over.
        a.close().await.unwrap();
        b.close().await.unwrap();
        return;
    }
    let term = std::time::Duration::from_secs(1);
    let old = a.lead(term).await.unwrap().expect("the first to ask leads");
    let t = now_micros();
    stale_events(&a, t, 2).await;
    let hold = t + TimeDelta::minutes(1);
    let claimed = a.claim_deliveries(&old, "ops", t, hold, 1).await.unwrap();
    assert_eq!(claimed.len(), 1, "claimed under its lease");
    // Paused past its term: another server takes the duties.
    tokio::time::sleep(term + std::time::Duration::from_millis(200)).await;
    assert!(!old.holds(), "the local clock says the lease is over");
    let new = b
        .lead(term)
        .await
        .unwrap()
        .expect("a lapsed lease is taken");
    assert!(new.epoch > old.epoch);
    assert!(
        a.lead(term).await.unwrap().is_none(),
        "the paused server does not get them back"
    );
    let later = t + TimeDelta::minutes(5);
    a.finish_deliveries(
        &old,
        vec![(claimed[0].clone(), DeliveryOutcome::Delivered)],
        later,
    )
    .await
    .unwrap();
    assert!(
        a.claim_deliveries(&old, "ops", later, later + TimeDelta::minutes(1), 10)
            .await
            .unwrap()
            .is_empty(),
        "no claim under the old epoch"
    );
    let taken = b
        .claim_deliveries(&new, "ops", later, later + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 2, "both still pending");
    assert_eq!(
        taken[0].event_id, claimed[0].event_id,
        "the fenced server's record was refused: its delivery is still pending, first"
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// The audit event of retrying `ops`'s dead letter `event_id`.
fn retried(event_id: i64) -> crate::store::AuditEvent {
    super::audit_event("dead_letter.retry", &format!("ops/{event_id}"))
}

/// Writes `count` stale-consumer events for the sink `ops`.
async fn stale_events(store: &Arc<dyn Store>, t: chrono::DateTime<Utc>, count: usize) {
    let changes = (0..count)
        .map(|n| WatchChange {
            app: AppName::parse(&format!("app-{n}")).unwrap(),
            from: None,
            to: crate::store::Standing {
                state: crate::store::AlertState::Stale,
                since: t,
            },
            last_seen: None,
            event: Some(NewEvent {
                kind: EventKind::ConsumerStale,
                at: t,
                data: serde_json::json!({"n": n}),
                sinks: vec!["ops".into()],
            }),
        })
        .collect();
    store.change_watch(changes).await.unwrap();
}

//! The change log: the ordering rule, persistence, idempotency keys, the
//! history, and two writers on one database.

use chrono::Utc;
use secapp_domain::{AppName, ChangeId, Consumer, Mode, Outcome, Sighting, Version};

use super::{Backend, change, cursor, keyed, now_micros};
use std::sync::Arc;

use crate::store::{ConsumerRecord, HistoryQuery, NewChange, Published, Recorded, Store};

/// Ids increase, the latest `Change_at` wins, ties and older changes do not,
/// and the head version counts wins only.
pub async fn applies_the_ordering_rule(backend: &dyn Backend) {
    let store = backend.open().await;
    let a = store
        .publish(change(3, "2026-03-01T12:00:00Z"))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    assert_eq!((a.outcome, a.head.version), (Outcome::Head, Version(1)));
    assert_eq!(a.head.change.id, a.id);
    let tie = store
        .publish(change(5, "2026-03-01T12:00:00Z"))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    assert!(tie.id > a.id);
    assert_eq!((tie.outcome, tie.head.change.id), (Outcome::Tie, a.id));
    let older = store
        .publish(change(1, "2026-03-01T11:00:00Z"))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    assert!(older.id > tie.id);
    assert_eq!(
        (older.outcome, older.head.version),
        (Outcome::Older, Version(1))
    );
    let b = store
        .publish(change(4, "2026-03-01T13:00:00Z"))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    assert_eq!((b.outcome, b.head.version), (Outcome::Head, Version(2)));
    assert_eq!(b.head.change.level.get(), 4);
    store.close().await.unwrap();
}

/// The head, its version, the id sequence and cursors survive a reopen.
pub async fn persists_across_a_reopen(backend: &dyn Backend) {
    let store = backend.open().await;
    store
        .publish(change(3, "2026-03-01T12:00:00Z"))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    let head = store
        .publish(change(4, "2026-03-01T12:30:00.125Z"))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    store
        .publish(change(2, "2026-03-01T12:10:00Z"))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    let mut billing = cursor("billing", 2);
    billing.consumer.told_at = Some(now_micros());
    let mut knows = ConsumerRecord {
        app: AppName::parse("knows").unwrap(),
        consumer: Consumer::default(),
    };
    knows.consumer.knowledge.sent(Sighting {
        id: head.id,
        at: now_micros(),
        mode: Mode::Stream,
        long_poll: false,
    });
    knows.consumer.knowledge.acknowledged(Sighting {
        id: ChangeId(1),
        at: now_micros(),
        mode: Mode::IfNoneMatch,
        long_poll: true,
    });
    store
        .save_consumers(vec![billing.clone(), knows.clone()])
        .await
        .unwrap();
    store.close().await.unwrap();

    let store = backend.open().await;
    let snapshot = store.snapshot().await.unwrap();
    let loaded = snapshot.head.unwrap();
    assert_eq!(loaded, head.head);
    assert_eq!(
        loaded.change.changed_at.to_string(),
        "2026-03-01T12:30:00.125Z"
    );
    let mut consumers = snapshot.consumers;
    consumers.sort_by(|a, b| a.app.cmp(&b.app));
    assert_eq!(consumers, vec![billing, knows]);
    let next = store
        .publish(change(5, "2026-03-01T14:00:00Z"))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    assert!(next.id > ChangeId(3));
    assert_eq!(next.head.version, Version(3));
    store.close().await.unwrap();
}

/// Many concurrent publishes get distinct ids and a consistent head: every
/// head version from 1 to the last is used exactly once.
pub async fn concurrent_publishes_are_serialised(backend: &dyn Backend) {
    let store = backend.open().await;
    let all = publish_at_once(std::slice::from_ref(&store), 200, |n| {
        format!("2026-03-01T12:00:{:02}Z", n % 60)
    })
    .await;
    assert_eq!(all.len(), 200);
    assert_one_order(&all);
    let last = store.snapshot().await.unwrap().head.unwrap();
    assert_eq!(last.change.changed_at.to_string(), "2026-03-01T12:00:59Z");
    store.close().await.unwrap();
}

/// A key already used in its window replays the first id for the same
/// request, refuses a different one, and records nothing either way; it is
/// scoped to the app, survives a reopen, and is forgotten after its window.
pub async fn honours_idempotency_keys(backend: &dyn Backend) {
    let long_ago = "2000-01-01T00:00:00Z";
    let store = backend.open().await;
    let first = store
        .publish(keyed(3, "2026-03-01T12:00:00Z", "producer", "k1", long_ago))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    let again = store
        .publish(keyed(3, "2026-03-01T12:00:00Z", "producer", "k1", long_ago))
        .await
        .unwrap();
    assert!(matches!(again, Published::Replayed { id } if id == first.id));
    let other = store
        .publish(keyed(5, "2026-03-01T12:00:00Z", "producer", "k1", long_ago))
        .await
        .unwrap();
    assert!(matches!(other, Published::KeyReused));
    let other_app = store
        .publish(keyed(3, "2026-03-01T12:00:00Z", "another", "k1", long_ago))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    assert!(other_app.id > first.id);
    let recorded = store
        .history(HistoryQuery {
            limit: 10,
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        recorded.iter().map(|entry| entry.id).collect::<Vec<_>>(),
        [other_app.id, first.id],
        "the replay and the refusal recorded nothing (ids may have gaps)"
    );
    store.close().await.unwrap();

    let store = backend.open().await;
    let after_reopen = store
        .publish(keyed(3, "2026-03-01T12:00:00Z", "producer", "k1", long_ago))
        .await
        .unwrap();
    assert!(matches!(after_reopen, Published::Replayed { id } if id == first.id));
    // A window that starts after the first use has forgotten the key.
    let later = Utc::now() + chrono::TimeDelta::minutes(1);
    let expired = store
        .publish(keyed(
            3,
            "2026-03-01T12:00:00Z",
            "producer",
            "k1",
            &later.to_rfc3339(),
        ))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    assert!(expired.id > other_app.id);
    store.close().await.unwrap();
}

/// Every publish is in the history, newest first, with who, from where,
/// when and what it did; paging and filters narrow it.
pub async fn keeps_the_history(backend: &dyn Backend) {
    let store = backend.open().await;
    let at = |minute: u32| format!("2026-03-01T12:{minute:02}:00Z");
    let mut ids = Vec::new();
    for (n, (app, level, minute)) in [
        ("alpha", 3, 10),
        ("beta", 4, 20),
        ("alpha", 1, 5),
        ("beta", 5, 20),
        ("alpha", 2, 30),
    ]
    .into_iter()
    .enumerate()
    {
        let change = NewChange {
            published_by: AppName::parse(app).unwrap(),
            source: Some(format!("10.0.0.{n}")),
            ..change(level, &at(minute))
        };
        ids.push(store.publish(change).await.unwrap().recorded().unwrap().id);
    }
    let all = store
        .history(HistoryQuery {
            limit: 10,
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    let got: Vec<ChangeId> = all.iter().map(|e| e.id).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(got, newest_first);
    let outcomes: Vec<Outcome> = all.iter().rev().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Head,
            Outcome::Head,
            Outcome::Older,
            Outcome::Tie,
            Outcome::Head
        ]
    );
    assert_eq!(all[0].published_by, "alpha");
    assert_eq!(all[0].source.as_deref(), Some("10.0.0.4"));
    assert_eq!(all[0].changed_at.to_string(), at(30));

    let page = store
        .history(HistoryQuery {
            limit: 2,
            before: Some(ids[3]),
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    let alpha = store
        .history(HistoryQuery {
            limit: 10,
            app: Some(AppName::parse("alpha").unwrap()),
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(alpha.len(), 3);
    let future = store
        .history(HistoryQuery {
            limit: 10,
            since: Some(Utc::now() + chrono::TimeDelta::minutes(1)),
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert!(future.is_empty());
    let past = store
        .history(HistoryQuery {
            limit: 10,
            until: Some(Utc::now() - chrono::TimeDelta::minutes(1)),
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert!(past.is_empty());
    store.close().await.unwrap();
}

/// Two stores open on one database (two replicas) publishing at once agree
/// on one order: distinct, increasing ids, every head version given once,
/// each winner's version rising with its id, and one head read by both.
pub async fn two_writers_agree_on_one_order(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let all = publish_at_once(&[a.clone(), b.clone()], 120, |n| {
        format!("2026-03-01T12:{:02}:00Z", (n * 7) % 60)
    })
    .await;
    assert_one_order(&all);
    let (head_a, head_b) = (
        a.snapshot().await.unwrap().head.unwrap(),
        b.snapshot().await.unwrap().head.unwrap(),
    );
    assert_eq!(head_a, head_b);
    assert_eq!(head_a.change.changed_at.to_string(), "2026-03-01T12:59:00Z");
    let first_at_59 = all
        .iter()
        .find(|r| r.head.change.changed_at.to_string() == "2026-03-01T12:59:00Z")
        .unwrap();
    assert_eq!(
        head_a.change.id, first_at_59.head.change.id,
        "a tie keeps the first"
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Two replicas receiving the same keyed publish at once (a retry that
/// reached both) record it once: one records it, the other replays its id.
pub async fn two_writers_claim_an_idempotency_key_once(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let long_ago = "2000-01-01T00:00:00Z";
    for round in 0..20 {
        let key = format!("retry-{round}");
        let at = format!("2026-03-01T13:{round:02}:00Z");
        let (first, second) = tokio::join!(
            a.publish(keyed(4, &at, "producer", &key, long_ago)),
            b.publish(keyed(4, &at, "producer", &key, long_ago)),
        );
        let outcomes = [first.unwrap(), second.unwrap()];
        let recorded: Vec<ChangeId> = outcomes
            .iter()
            .filter_map(|p| match p {
                Published::New(recorded) => Some(recorded.id),
                _ => None,
            })
            .collect();
        let replayed: Vec<ChangeId> = outcomes
            .iter()
            .filter_map(|p| match p {
                Published::Replayed { id } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(recorded.len(), 1, "round {round}: {outcomes:?}");
        assert_eq!(
            replayed, recorded,
            "round {round}: the other replays its id"
        );
    }
    let history = a
        .history(HistoryQuery {
            limit: 100,
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(history.len(), 20);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// A head published through one store is what another store on the same
/// database decides against: it never reuses a version or re-wins a tie.
pub async fn a_second_writer_decides_against_what_the_first_recorded(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let first = a
        .publish(change(2, "2026-03-01T12:00:00Z"))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    let tie = b
        .publish(change(5, "2026-03-01T12:00:00Z"))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    assert_eq!((tie.outcome, tie.head.change.id), (Outcome::Tie, first.id));
    let next = b
        .publish(change(3, "2026-03-01T12:05:00Z"))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    assert_eq!(
        (next.outcome, next.head.version),
        (Outcome::Head, Version(2))
    );
    let older = a
        .publish(change(4, "2026-03-01T12:01:00Z"))
        .await
        .unwrap()
        .recorded()
        .unwrap();
    assert_eq!(
        (older.outcome, older.head.change.id),
        (Outcome::Older, next.id)
    );
    assert!(older.id > next.id && next.id > tie.id && tie.id > first.id);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Publishes `count` changes at once, spread over `stores`, the `n`th made
/// at `at(n)`; returns what was recorded, by id.
async fn publish_at_once(
    stores: &[Arc<dyn Store>],
    count: i64,
    at: impl Fn(i64) -> String,
) -> Vec<Recorded> {
    let mut tasks = tokio::task::JoinSet::new();
    for (n, store) in (0..count).zip(stores.iter().cycle()) {
        let (store, at) = (store.clone(), at(n));
        tasks.spawn(async move {
            store
                .publish(change(1 + n % 5, &at))
                .await
                .unwrap()
                .recorded()
                .unwrap()
        });
    }
    let mut all = Vec::new();
    while let Some(recorded) = tasks.join_next().await {
        all.push(recorded.unwrap());
    }
    all.sort_by_key(|r| r.id);
    all
}

/// One order: no id given twice, and in id order the winners were given
/// the head versions 1, 2, 3… each once, each the head it reports. (A
/// backend must decide the head and assign the id under one lock.)
fn assert_one_order(by_id: &[Recorded]) {
    let ids: std::collections::BTreeSet<ChangeId> = by_id.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), by_id.len(), "no id given twice");
    let wins: Vec<u64> = by_id
        .iter()
        .filter(|r| r.outcome == Outcome::Head)
        .map(|r| r.head.version.0)
        .collect();
    let expected: Vec<u64> = (1..=u64::try_from(wins.len()).unwrap()).collect();
    assert_eq!(
        wins, expected,
        "head versions rise with ids, each given once"
    );
    for recorded in by_id {
        assert!(
            recorded.outcome != Outcome::Head || recorded.head.change.id == recorded.id,
            "a winner is the head it reports"
        );
    }
}

//! The behaviour every [`Store`] must show, written once and run against each
//! backend through [`conformance_tests!`](crate::conformance_tests).
//!
//! A backend provides a [`Backend`]: something that opens the same database
//! again each time it is asked, so persistence across a reopen is tested too.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use secapp_domain::{
    AppName, ChangeId, ChangedAt, Consumer, Cursor, Knowledge, LevelRange, Mode, Outcome, Sighting,
    Version,
};

use super::{
    AccessChange, AppRecord, AuditEvent, AuditQuery, ConsumerRecord, HistoryQuery, Idempotency,
    NewChange, Published, Store, StoreError, TokenRecord,
};

/// Opens one database, fresh at first, the same one on every later call.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Opens the store; the previous one returned has been closed.
    async fn open(&self) -> Arc<dyn Store>;
}

fn change(level: i64, at: &str) -> NewChange {
    NewChange {
        level: LevelRange::default().level(level).unwrap(),
        changed_at: ChangedAt::parse(at).unwrap(),
        published_by: AppName::parse("producer").unwrap(),
        received_at: Utc::now(),
        idempotency: None,
        source: None,
        token_id: None,
    }
}

fn cursor(app: &str, version: u64) -> ConsumerRecord {
    ConsumerRecord {
        app: AppName::parse(app).unwrap(),
        consumer: Consumer {
            cursor: Cursor::at(Version(version)),
            told_at: Some(Utc::now()),
            knowledge: Knowledge::default(),
        },
    }
}

/// Instants as stored: microsecond precision.
fn now_micros() -> chrono::DateTime<Utc> {
    let now = Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap()
}

/// A new store holds no head and no cursors.
pub async fn starts_empty(backend: &dyn Backend) {
    let store = backend.open().await;
    let snapshot = store.snapshot().await.unwrap();
    assert!(snapshot.head.is_none());
    assert!(snapshot.consumers.is_empty());
    store.ping().await.unwrap();
    store.close().await.unwrap();
}

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

/// A cursor write never moves a cursor backwards.
pub async fn never_moves_a_cursor_back(backend: &dyn Backend) {
    let store = backend.open().await;
    store
        .save_consumers(vec![cursor("billing", 5)])
        .await
        .unwrap();
    store
        .save_consumers(vec![cursor("billing", 3)])
        .await
        .unwrap();
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(
        snapshot.consumers[0].consumer.cursor,
        Cursor::at(Version(5))
    );
    store.close().await.unwrap();
}

/// Many concurrent publishes get distinct ids and a consistent head: every
/// head version from 1 to the last is used exactly once.
pub async fn concurrent_publishes_are_serialised(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..200_i64 {
        let store = store.clone();
        tasks.spawn(async move {
            let at = format!("2026-03-01T12:00:{:02}Z", n % 60);
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
    let ids: std::collections::BTreeSet<_> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 200);
    let mut wins: Vec<u64> = all
        .iter()
        .filter(|r| r.outcome == Outcome::Head)
        .map(|r| r.head.version.0)
        .collect();
    wins.sort_unstable();
    let expected: Vec<u64> = (1..=u64::try_from(wins.len()).unwrap()).collect();
    assert_eq!(wins, expected);
    let last = store.snapshot().await.unwrap().head.unwrap();
    assert_eq!(last.change.changed_at.to_string(), "2026-03-01T12:00:59Z");
    store.close().await.unwrap();
}

fn keyed(level: i64, at: &str, app: &str, key: &str, not_before: &str) -> NewChange {
    NewChange {
        published_by: AppName::parse(app).unwrap(),
        idempotency: Some(Idempotency {
            key: key.to_owned(),
            request: format!("{level} {at}"),
            not_before: chrono::DateTime::parse_from_rfc3339(not_before)
                .unwrap()
                .to_utc(),
        }),
        ..change(level, at)
    }
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
    assert_eq!(
        other_app.id.0,
        first.id.0 + 1,
        "the replay and the refusal took no id"
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

fn audit_event(action: &str, target: &str) -> AuditEvent {
    AuditEvent {
        at: now_micros(),
        actor: "admin".into(),
        actor_token: Some("tok_0001".into()),
        source: Some("10.0.0.9".into()),
        action: action.into(),
        target: target.into(),
        detail: r#"{"k":"v"}"#.into(),
    }
}

/// Applications and tokens survive a reopen exactly as written, each change
/// with its audit event; a change to something missing records nothing;
/// last-used times never move back; the token id of a publish is kept.
pub async fn keeps_applications_tokens_and_their_audit(backend: &dyn Backend) {
    use secapp_domain::{Role, Roles};
    let store = backend.open().await;
    let created = now_micros();
    let app = AppRecord {
        name: AppName::parse("billing").unwrap(),
        roles: Roles::of(&[Role::Consume, Role::Viewer]),
        description: Some("Invoices".into()),
        owner: None,
        created_at: created,
        updated_at: created,
        disabled_at: None,
    };
    let token = TokenRecord {
        id: "tok_0002".into(),
        app: app.name.clone(),
        hash: [7; 32],
        label: Some("prod".into()),
        created_at: created,
        expires_at: Some(created + chrono::Duration::days(30)),
        revoked_at: None,
        last_used_at: None,
    };
    store
        .change_access(
            AccessChange::CreateApp(app.clone()),
            audit_event("app.create", "billing"),
        )
        .await
        .unwrap();
    store
        .change_access(
            AccessChange::IssueToken(token.clone()),
            audit_event("token.issue", "tok_0002"),
        )
        .await
        .unwrap();
    let disabled = AppRecord {
        disabled_at: Some(created),
        ..app.clone()
    };
    store
        .change_access(
            AccessChange::UpdateApp(disabled.clone()),
            audit_event("app.update", "billing"),
        )
        .await
        .unwrap();
    let missing = store
        .change_access(
            AccessChange::RevokeToken {
                id: "tok_none".into(),
                at: created,
            },
            audit_event("token.revoke", "tok_none"),
        )
        .await;
    assert!(missing.is_err(), "revoking an unknown token must fail");
    let used = created + chrono::Duration::minutes(5);
    store
        .save_token_usage(vec![("tok_0002".into(), used)])
        .await
        .unwrap();
    store
        .save_token_usage(vec![("tok_0002".into(), created)])
        .await
        .unwrap();
    let change = NewChange {
        token_id: Some("tok_0002".into()),
        ..change(3, "2026-03-01T12:00:00Z")
    };
    store.publish(change).await.unwrap();
    store.close().await.unwrap();

    let store = backend.open().await;
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.apps, vec![disabled]);
    assert_eq!(
        snapshot.tokens,
        vec![TokenRecord {
            last_used_at: Some(used),
            ..token
        }]
    );
    let audit = store
        .audit(AuditQuery {
            limit: 10,
            before: None,
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.event.action.as_str()).collect();
    assert_eq!(
        actions,
        ["app.update", "token.issue", "app.create"],
        "newest first, no failed change"
    );
    assert_eq!(
        audit[2].event,
        audit_event("app.create", "billing").with_at(audit[2].event.at)
    );
    let older = store
        .audit(AuditQuery {
            limit: 10,
            before: Some(audit[0].id),
        })
        .await
        .unwrap();
    assert_eq!(older.len(), 2);
    let history = store
        .history(HistoryQuery {
            limit: 1,
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(history[0].token_id.as_deref(), Some("tok_0002"));
    store.close().await.unwrap();
}

impl AuditEvent {
    fn with_at(self, at: chrono::DateTime<Utc>) -> Self {
        Self { at, ..self }
    }
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

/// After `close`, every call fails with [`StoreError::Closed`] instead of hanging.
pub async fn refuses_work_after_close(backend: &dyn Backend) {
    let store = backend.open().await;
    store.close().await.unwrap();
    assert!(matches!(store.ping().await, Err(StoreError::Closed)));
    assert!(matches!(
        store.publish(change(3, "2026-03-01T12:00:00Z")).await,
        Err(StoreError::Closed)
    ));
}

/// Generates one `#[tokio::test]` per conformance check for a backend.
#[macro_export]
#[doc(hidden)]
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::conformance_tests!(@each $backend;
            starts_empty,
            applies_the_ordering_rule,
            persists_across_a_reopen,
            never_moves_a_cursor_back,
            concurrent_publishes_are_serialised,
            honours_idempotency_keys,
            keeps_the_history,
            keeps_applications_tokens_and_their_audit,
            refuses_work_after_close,
        );
    };
    (@each $backend:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let backend = $backend;
                $crate::store::conformance::$check(&backend).await;
            }
        )*
    };
}

//! Property tests: every value of every type a store writes is read back
//! equal, after a reopen, over generated values that include the extremes
//! (the first and last instants secapp accepts, the largest versions and
//! ids, empty and longest texts). A value the server accepts but a store
//! cannot read back would stop the next start; these tests are what says
//! none exists.
//!
//! Instants are kept to the microsecond: the clock gives no finer ones, and
//! a `Change_at` keeps its own digits as text.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use secapp_domain::{
    AppName, ChangeId, ChangedAt, Consumer, Cursor, Knowledge, Level, Mode, Role, Roles, Sighting,
    Version,
};

use super::conformance::Backend;
use super::{
    AccessChange, AppRecord, AuditEvent, AuditQuery, ConsumerRecord, HistoryQuery, NewChange,
    Store, TokenRecord,
};

/// Opens a fresh database on the first call, the same one on the second.
pub type Fresh = dyn Fn() -> Box<dyn Backend>;

const CASES: u32 = 24;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Instants from the first to the last secapp accepts, to the microsecond,
/// the ends among them.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let first = secapp_domain::earliest().timestamp_micros();
    let last = secapp_domain::latest().timestamp_micros();
    prop_oneof![
        1 => Just(first),
        1 => Just(last),
        8 => first..=last,
    ]
    .prop_map(|micros| DateTime::from_timestamp_micros(micros).unwrap())
}

fn optional_instant() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    prop::option::of(instant())
}

/// Valid application names, empty-free, up to the longest.
fn app_name() -> impl Strategy<Value = AppName> {
    prop_oneof![
        1 => Just("x".repeat(128)),
        8 => "[!-~]([ -~]{0,30}[!-~])?",
    ]
    .prop_map(|name| AppName::parse(&name).unwrap())
}

/// Any text, empty and long included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        1 => Just("é".repeat(512)),
        8 => any::<String>(),
    ]
}

fn roles() -> impl Strategy<Value = Roles> {
    prop::collection::vec(prop::sample::select(Role::ALL.to_vec()), 0..=4)
        .prop_map(|roles| Roles::of(&roles))
}

/// A `Change_at` as a producer might send it: an instant and as many
/// fractional digits as it gave (up to nanoseconds).
fn changed_at() -> impl Strategy<Value = ChangedAt> {
    (instant(), 0..1_000_u32, 0..=9_usize).prop_map(|(at, extra_nanos, digits)| {
        let nanos = format!("{:09}", at.timestamp_subsec_nanos() + extra_nanos);
        let seconds = at.format("%Y-%m-%dT%H:%M:%S");
        let text = if digits == 0 {
            format!("{seconds}Z")
        } else {
            format!("{seconds}.{}Z", &nanos[..digits])
        };
        ChangedAt::parse(&text).unwrap()
    })
}

fn new_change() -> impl Strategy<Value = NewChange> {
    (
        prop_oneof![Just(i64::MIN), Just(i64::MAX), any::<i64>()],
        changed_at(),
        app_name(),
        instant(),
        prop::option::of(text()),
        prop::option::of(text()),
    )
        .prop_map(
            |(level, changed_at, published_by, received_at, source, token_id)| NewChange {
                level: Level::from_stored(level),
                changed_at,
                published_by,
                received_at,
                idempotency: None,
                source,
                token_id,
                sinks: Default::default(),
            },
        )
}

fn app_record() -> impl Strategy<Value = AppRecord> {
    (
        app_name(),
        roles(),
        prop::option::of(text()),
        prop::option::of(text()),
        instant(),
        instant(),
        optional_instant(),
        prop::option::of(1..=3_153_600_000_000_u64),
    )
        .prop_map(
            |(name, roles, description, owner, created_at, updated_at, disabled_at, stale_ms)| {
                AppRecord {
                    name,
                    roles,
                    description,
                    owner,
                    created_at,
                    updated_at,
                    disabled_at,
                    stale_after: stale_ms.map(std::time::Duration::from_millis),
                }
            },
        )
}

fn token_record(app: AppName) -> impl Strategy<Value = TokenRecord> {
    (
        "[ -~]{1,40}",
        any::<[u8; 32]>(),
        prop::option::of(text()),
        instant(),
        optional_instant(),
        optional_instant(),
        optional_instant(),
    )
        .prop_map(
            move |(id, hash, label, created_at, expires_at, revoked_at, last_used_at)| {
                TokenRecord {
                    id,
                    app: app.clone(),
                    hash,
                    label,
                    created_at,
                    expires_at,
                    revoked_at,
                    last_used_at,
                }
            },
        )
}

fn sighting() -> impl Strategy<Value = Option<Sighting>> {
    prop::option::of(
        (
            prop_oneof![Just(0), Just(i64::MAX), 0..=i64::MAX],
            instant(),
            prop::sample::select(vec![
                Mode::Poll,
                Mode::After,
                Mode::IfNoneMatch,
                Mode::Stream,
            ]),
            any::<bool>(),
        )
            .prop_map(|(id, at, mode, long_poll)| Sighting {
                id: ChangeId(id),
                at,
                mode,
                long_poll,
            }),
    )
}

fn consumer_record() -> impl Strategy<Value = ConsumerRecord> {
    (
        app_name(),
        prop_oneof![Just(0_u64), Just(i64::MAX as u64), 0..=i64::MAX as u64],
        optional_instant(),
        sighting(),
        sighting(),
    )
        .prop_map(|(app, told, told_at, sent, acknowledged)| ConsumerRecord {
            app,
            consumer: Consumer {
                cursor: Cursor::at(Version(told)),
                told_at,
                knowledge: Knowledge { sent, acknowledged },
            },
        })
}

fn audit_event() -> impl Strategy<Value = AuditEvent> {
    (
        instant(),
        text(),
        prop::option::of(text()),
        prop::option::of(text()),
        text(),
        text(),
        text(),
    )
        .prop_map(
            |(at, actor, actor_token, source, action, target, detail)| AuditEvent {
                at,
                actor,
                actor_token,
                source,
                action,
                target,
                detail,
            },
        )
}

/// Opens the backend's database, hands the store to `write`, closes it,
/// opens it again and hands that store to `read`.
async fn write_then_read<W, R>(backend: &dyn Backend, write: W, read: R)
where
    W: AsyncFnOnce(&dyn Store),
    R: AsyncFnOnce(&dyn Store),
{
    let store = backend.open().await;
    write(store.as_ref()).await;
    store.close().await.unwrap();
    let store = backend.open().await;
    read(store.as_ref()).await;
    store.close().await.unwrap();
}

/// A published change is in the history as it was given.
pub fn changes_round_trip(fresh: &Fresh) {
    run(fresh, new_change(), async |backend, change: NewChange| {
        let expected = change.clone();
        write_then_read(
            backend,
            async |store| {
                store.publish(change).await.unwrap();
            },
            async |store| {
                let history = store
                    .history(HistoryQuery {
                        limit: 1,
                        ..HistoryQuery::default()
                    })
                    .await
                    .unwrap();
                let entry = &history[0];
                assert_eq!(entry.level, expected.level);
                assert_eq!(entry.changed_at, expected.changed_at);
                assert_eq!(
                    entry.changed_at.to_string(),
                    expected.changed_at.to_string()
                );
                assert_eq!(entry.published_by, expected.published_by.as_str());
                assert_eq!(entry.received_at, expected.received_at);
                assert_eq!(entry.source, expected.source);
                assert_eq!(entry.token_id, expected.token_id);
                let head = store.snapshot().await.unwrap().head.unwrap();
                assert_eq!(
                    head.change.changed_at.to_string(),
                    expected.changed_at.to_string()
                );
                assert_eq!(head.change.level, expected.level);
            },
        )
        .await;
    });
}

/// Applications, their tokens and the audit events of the changes read
/// back as written.
pub fn access_round_trips(fresh: &Fresh) {
    let strategy =
        (app_record(), audit_event(), audit_event()).prop_flat_map(|(app, created, issued)| {
            let name = app.name.clone();
            (Just(app), token_record(name), Just(created), Just(issued))
        });
    run(
        fresh,
        strategy,
        async |backend, (app, token, created, issued): (AppRecord, TokenRecord, AuditEvent, AuditEvent)| {
            let (app2, token2) = (app.clone(), token.clone());
            let (created2, issued2) = (created.clone(), issued.clone());
            write_then_read(
                backend,
                async |store| {
                    store
                        .change_access(AccessChange::CreateApp(app2), created2, crate::store::AdminGuard::Off)
                        .await
                        .unwrap();
                    store
                        .change_access(AccessChange::IssueToken(token2), issued2, crate::store::AdminGuard::Off)
                        .await
                        .unwrap();
                },
                async |store| {
                    let snapshot = store.snapshot().await.unwrap();
                    assert_eq!(snapshot.apps, vec![app]);
                    assert_eq!(snapshot.tokens, vec![token]);
                    assert!(snapshot.unreadable.is_empty() && snapshot.unreadable_tokens.is_empty());
                    let audit = store
                        .audit(AuditQuery {
                            limit: 10,
                            before: None,
                        })
                        .await
                        .unwrap();
                    let events: Vec<AuditEvent> =
                        audit.into_iter().rev().map(|record| record.event).collect();
                    assert_eq!(events, vec![created, issued]);
                },
            )
            .await;
        },
    );
}

/// Consumer records read back as written.
pub fn consumers_round_trip(fresh: &Fresh) {
    run(
        fresh,
        prop::collection::vec(consumer_record(), 1..4),
        async |backend, records: Vec<ConsumerRecord>| {
            // One record per application; each sighting only moves forward
            // (to a higher id, or the same id seen later), whatever the
            // order of the writes.
            let forward = |held: Option<Sighting>, written: Option<Sighting>| match (held, written)
            {
                (Some(held), Some(written)) if (written.id, written.at) < (held.id, held.at) => {
                    Some(held)
                }
                (held, None) => held,
                (_, written) => written,
            };
            let mut expected: std::collections::BTreeMap<AppName, ConsumerRecord> =
                std::collections::BTreeMap::new();
            for record in &records {
                let entry = expected
                    .entry(record.app.clone())
                    .or_insert_with(|| record.clone());
                let (held, written) = (&mut entry.consumer.knowledge, record.consumer.knowledge);
                held.sent = forward(held.sent, written.sent);
                held.acknowledged = forward(held.acknowledged, written.acknowledged);
            }
            let records2 = records.clone();
            write_then_read(
                backend,
                async |store| store.save_consumers(records2).await.unwrap(),
                async |store| {
                    let snapshot = store.snapshot().await.unwrap();
                    let mut loaded = snapshot.consumers;
                    loaded.sort_by(|a, b| a.app.cmp(&b.app));
                    let expected: Vec<ConsumerRecord> = expected.into_values().collect();
                    // A plain-poll cursor never moves back: a repeated app
                    // keeps the furthest one written.
                    for (loaded, expected) in loaded.iter().zip(&expected) {
                        assert_eq!(loaded.app, expected.app);
                        assert_eq!(loaded.consumer.knowledge, expected.consumer.knowledge);
                        let furthest = records
                            .iter()
                            .filter(|record| record.app == expected.app)
                            .map(|record| record.consumer.cursor.told())
                            .max()
                            .unwrap();
                        assert_eq!(loaded.consumer.cursor.told(), furthest);
                    }
                    assert_eq!(loaded.len(), expected.len());
                },
            )
            .await;
        },
    );
}

/// An idempotency key and the request it was first used with are read back
/// exactly: the same pair replays the first id, after a reopen, and any
/// other request with the key is told it was reused.
pub fn idempotency_keys_round_trip(fresh: &Fresh) {
    let strategy = (new_change(), "[!-~]{1,255}", text(), text());
    run(
        fresh,
        strategy,
        async |backend, (change, key, request, other): (NewChange, String, String, String)| {
            let keyed = |request: &str| NewChange {
                idempotency: Some(super::Idempotency {
                    key: key.clone(),
                    request: request.to_owned(),
                    not_before: secapp_domain::earliest(),
                }),
                ..change.clone()
            };
            let first = keyed(&request);
            let id = std::cell::Cell::new(None);
            write_then_read(
                backend,
                async |store| {
                    let recorded = store.publish(first).await.unwrap().recorded().unwrap();
                    id.set(Some(recorded.id));
                },
                async |store| {
                    match store.publish(keyed(&request)).await.unwrap() {
                        super::Published::Replayed { id: replayed } => {
                            assert_eq!(Some(replayed), id.get());
                        }
                        other => panic!("not replayed: {other:?}"),
                    }
                    if other != request {
                        assert!(matches!(
                            store.publish(keyed(&other)).await.unwrap(),
                            super::Published::KeyReused
                        ));
                    }
                },
            )
            .await;
        },
    );
}

fn run<S, C>(fresh: &Fresh, strategy: S, check: C)
where
    S: Strategy,
    S::Value: Clone + std::fmt::Debug,
    C: AsyncFn(&dyn Backend, S::Value),
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let result = runner().run(&strategy, |value| {
        let backend = fresh();
        runtime.block_on(check(backend.as_ref(), value));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Declares the round-trip tests for a backend, given an expression that
/// makes a fresh [`Backend`].
#[macro_export]
macro_rules! round_trip_tests {
    ($backend:expr) => {
        $crate::round_trip_tests!(@each $backend;
            changes_round_trip,
            access_round_trips,
            consumers_round_trip,
            idempotency_keys_round_trip,
        );
    };
    (@each $backend:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::store::round_trip::$check(&|| Box::new($backend));
            }
        )*
    };
}

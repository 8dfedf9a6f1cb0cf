//! The SQLite store against the conformance suite, and what only SQLite has:
//! upgrades from older schemas and rows edited outside secapp.

use std::sync::Arc;

use super::SqliteStore;
use crate::store::conformance::Backend;
use crate::store::{ChangeLog as _, Deliveries as _, Registry as _, Store};

/// One temporary data dir, reopened on every `open`.
struct TempSqlite(tempfile::TempDir);

impl TempSqlite {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
}

#[async_trait::async_trait]
impl Backend for TempSqlite {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.0.path().join(super::DATABASE_FILE)).unwrap())
    }
}

crate::conformance_tests!(TempSqlite::new());
crate::round_trip_tests!(TempSqlite::new());

#[tokio::test]
async fn a_database_from_before_tokens_upgrades_and_keeps_its_history() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The schema as the release before migration 5 left it.
        let mut conn = rusqlite::Connection::open(dir.path().join(super::DATABASE_FILE)).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                             applied_at TEXT NOT NULL)",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        for (version, name, sql) in &super::schema::MIGRATIONS[..4] {
            tx.execute_batch(sql).unwrap();
            tx.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2, 'then')",
                rusqlite::params![version, name],
            )
            .unwrap();
        }
        tx.execute(
            "INSERT INTO changes (level, changed_at, published_by, received_at, outcome,
                                  head_version, source_address)
             VALUES (4, '2026-03-01T12:00:00Z', 'security-team',
                     '2026-03-01T12:00:01.000000Z', 'head', 1, '10.0.0.1')",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let store = SqliteStore::open(&dir.path().join(super::DATABASE_FILE)).unwrap();
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.head.unwrap().change.id.0, 1);
    assert!(snapshot.apps.is_empty() && snapshot.tokens.is_empty());
    let history = store
        .history(crate::store::HistoryQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].published_by, "security-team");
    assert_eq!(history[0].token_id, None, "kept as unknown, not invented");
    store.close().await.unwrap();
}

#[tokio::test]
async fn unreadable_rows_are_reported_left_out_and_never_stop_an_open() {
    use crate::store::{AccessChange, AppRecord, AuditEvent, ConsumerRecord, NewChange};
    use secapp_domain::{
        AppName, ChangedAt, Consumer, Cursor, Knowledge, LevelRange, Roles, Version,
    };

    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let store = SqliteStore::open(&dir.path().join(super::DATABASE_FILE)).unwrap();
    let publish = |minute: u32| NewChange {
        level: LevelRange::default().level(3).unwrap(),
        changed_at: ChangedAt::parse(&format!("2026-03-01T12:{minute:02}:00Z")).unwrap(),
        published_by: AppName::parse("producer").unwrap(),
        received_at: now,
        idempotency: None,
        source: None,
        token_id: None,
        sinks: Default::default(),
    };
    let first = store.publish(publish(1)).await.unwrap().recorded().unwrap();
    store.publish(publish(2)).await.unwrap();
    for name in ["billing", "ghost"] {
        let app = AppRecord {
            name: AppName::parse(name).unwrap(),
            roles: Roles::of(&[secapp_domain::Role::Consume]),
            description: None,
            owner: None,
            created_at: now,
            updated_at: now,
            disabled_at: None,
            stale_after: None,
        };
        let audit = AuditEvent {
            at: now,
            actor: "secapp".into(),
            actor_token: None,
            source: None,
            action: "app.create".into(),
            target: name.into(),
            detail: "{}".into(),
        };
        store
            .change_access(
                AccessChange::CreateApp(app),
                audit,
                crate::store::AdminGuard::Off,
            )
            .await
            .unwrap();
    }
    let consumer = |name: &str| ConsumerRecord {
        app: AppName::parse(name).unwrap(),
        consumer: Consumer {
            cursor: Cursor::at(Version(2)),
            told_at: Some(now),
            knowledge: Knowledge::default(),
        },
    };
    store
        .save_consumers(vec![consumer("billing"), consumer("other")])
        .await
        .unwrap();
    store.close().await.unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join(super::DATABASE_FILE)).unwrap();
        conn.execute_batch(
            "UPDATE changes SET changed_at = 'soon' WHERE head_version = 2;
             UPDATE apps SET roles = 'root' WHERE name = 'ghost';
             UPDATE consumers SET told_at = 'never' WHERE app_name = 'other';",
        )
        .unwrap();
    }

    let store = SqliteStore::open(&dir.path().join(super::DATABASE_FILE)).unwrap();
    let snapshot = store.snapshot().await.unwrap();
    let mut unreadable: Vec<(&str, &str)> = snapshot
        .unreadable
        .iter()
        .map(|row| (row.table, row.key.as_str()))
        .collect();
    unreadable.sort_unstable();
    assert_eq!(
        unreadable,
        [("apps", "ghost"), ("changes", "2"), ("consumers", "other")]
    );
    let head = snapshot.head.unwrap();
    assert_eq!(
        head.change.id, first.id,
        "the newest readable head stands in"
    );
    assert_eq!(
        snapshot
            .apps
            .iter()
            .map(|app| app.name.as_str())
            .collect::<Vec<_>>(),
        ["billing"]
    );
    assert_eq!(snapshot.consumers.len(), 1);
    // No head version is given twice, and the history leaves the row out.
    let next = store.publish(publish(3)).await.unwrap().recorded().unwrap();
    assert_eq!(next.head.version, Version(3));
    let history = store
        .history(crate::store::HistoryQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|entry| entry.id).collect::<Vec<_>>(),
        [next.id, first.id]
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_database_from_a_newer_secapp_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    SqliteStore::open(&dir.path().join(super::DATABASE_FILE))
        .unwrap()
        .close()
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(dir.path().join(super::DATABASE_FILE)).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(&dir.path().join(super::DATABASE_FILE))
        .unwrap_err()
        .to_string();
    assert!(err.contains("newer secapp"), "{err}");
}

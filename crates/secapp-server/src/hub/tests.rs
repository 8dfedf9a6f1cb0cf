use super::*;
use crate::store::conformance::change;
use crate::store::sqlite::SqliteStore;
use chrono::Utc;
use secapp_domain::{AppName, Version};

const DELIVER: Look = Look::Deliver { long_poll: false };

#[test]
fn a_list_of_etags_is_held_as_the_head_when_it_names_it() {
    let held = ClientCursor::IfNoneMatch(Some(vec![ChangeId(3), ChangeId(9)]));
    assert_eq!(held.id(None), Some(ChangeId(9)));
    assert_eq!(ClientCursor::IfNoneMatch(None).id(None), None);
}

async fn open_hub(dir: &std::path::Path) -> (Hub, Arc<dyn Store>) {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.join(crate::store::sqlite::DATABASE_FILE)).unwrap());
    let snapshot = store.snapshot().await.unwrap();
    (Hub::new(Parts::alone(store.clone()), snapshot), store)
}

#[tokio::test]
async fn a_server_behind_on_a_shared_store_catches_up_before_answering_a_newer_cursor() {
    let database = crate::store::conformance::TempPostgres::new();
    let url: crate::store::DatabaseUrl = database.url().await.parse().unwrap();
    let open = async || {
        let store = crate::store::connect(&url, crate::store::Timings::default())
            .await
            .unwrap();
        let snapshot = store.snapshot().await.unwrap();
        Hub::new(Parts::alone(store), snapshot)
    };
    let (ahead, behind) = (open().await, open().await);
    let app = AppName::parse("billing").unwrap();
    let first = ahead
        .publish(change(2, "2026-03-01T12:00:00Z"))
        .await
        .unwrap();
    let Published::New(first) = first else {
        panic!("{first:?}")
    };
    behind.advance(&first.head);
    // `ahead` publishes again; `behind` follows no notices here, so it
    // still holds the first head when a client names the second.
    let second = ahead
        .publish(change(4, "2026-03-01T12:05:00Z"))
        .await
        .unwrap();
    let Published::New(second) = second else {
        panic!("{second:?}")
    };
    let held = ClientCursor::After(second.head.change.id);
    let stale = behind.compare(&app, &held, Utc::now(), Look::Peek);
    assert_eq!(
        stale.news.map(|head| head.change.id),
        Some(first.head.change.id)
    );
    behind.catch_up(&held).await;
    let compared = behind.compare(&app, &held, Utc::now(), Look::Peek);
    assert!(compared.news.is_none(), "{compared:?}");
    assert_eq!(behind.head().unwrap().change.id, second.head.change.id);
    // An id no server ever gave: the head is the answer, as alone.
    let bogus = ClientCursor::LastEventId(ChangeId(second.head.change.id.0 + 100));
    behind.catch_up(&bogus).await;
    let compared = behind.compare(&app, &bogus, Utc::now(), Look::Peek);
    assert_eq!(
        compared.news.map(|head| head.change.id),
        Some(second.head.change.id)
    );
}

#[tokio::test]
async fn a_poll_before_any_publish_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, store) = open_hub(dir.path()).await;
    let app = AppName::parse("billing").unwrap();
    assert!(hub.poll(&app, Utc::now(), DELIVER).is_none());
    assert_eq!(hub.flush_consumers().await.unwrap(), 0);
    store.close().await.unwrap();
}

#[tokio::test]
async fn flushed_cursors_survive_a_reopen_and_unflushed_ones_are_told_again() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, store) = open_hub(dir.path()).await;
    hub.publish(change(3, "2026-03-01T12:00:00Z"))
        .await
        .unwrap();
    let told = AppName::parse("told").unwrap();
    let lost = AppName::parse("lost").unwrap();
    assert!(hub.poll(&told, Utc::now(), DELIVER).is_some());
    assert_eq!(hub.flush_consumers().await.unwrap(), 1);
    assert!(hub.poll(&lost, Utc::now(), DELIVER).is_some());
    // `lost` is never flushed: as after a crash.
    store.close().await.unwrap();
    drop(hub);

    let (hub, store) = open_hub(dir.path()).await;
    assert!(hub.poll(&told, Utc::now(), DELIVER).is_none());
    let again = hub.poll(&lost, Utc::now(), DELIVER).unwrap();
    assert_eq!(again.version, Version(1));
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_failed_flush_keeps_the_records_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, store) = open_hub(dir.path()).await;
    hub.publish(change(3, "2026-03-01T12:00:00Z"))
        .await
        .unwrap();
    hub.poll(&AppName::parse("a").unwrap(), Utc::now(), DELIVER)
        .unwrap();
    store.close().await.unwrap();
    assert!(hub.flush_consumers().await.is_err());
    assert_eq!(hub.lock_consumers().dirty.len(), 1);
}

#[tokio::test]
async fn a_subscription_wakes_on_a_new_head_refuses_a_caller_no_longer_admitted_and_ends_at_shutdown()
 {
    use crate::access::{Lapsed, Principal, SHARED_TOKEN_ID};
    use secapp_domain::Role;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join(crate::store::sqlite::DATABASE_FILE)).unwrap());
    let parts = Parts::alone(store.clone());
    let (access, shutdown) = (parts.access.clone(), parts.shutdown.clone());
    let hub = Hub::new(parts, store.snapshot().await.unwrap());
    let caller = |name: &str| Principal {
        app: AppName::parse(name).unwrap(),
        roles: crate::auth::SHARED_TOKEN_ROLES,
        token_id: Arc::from(SHARED_TOKEN_ID),
        token: None,
    };
    let soon = Duration::from_secs(5);
    let mut billing = hub.subscribe(&caller("billing"), Role::Consume);
    hub.publish(change(3, "2026-03-01T12:00:00Z"))
        .await
        .unwrap();
    let woken = tokio::time::timeout(soon, billing.changed()).await.unwrap();
    assert!(
        matches!(&woken, Woken::Head(Some(head)) if head.version == Version(1)),
        "{woken:?}"
    );

    // The shared token speaking as `admin`, until `admin` is registered.
    let mut as_admin = hub.subscribe(&caller("admin"), Role::Consume);
    access.bootstrap(Utc::now()).await.unwrap().unwrap();
    let woken = tokio::time::timeout(soon, as_admin.changed())
        .await
        .unwrap();
    assert!(
        matches!(woken, Woken::Refused(Lapsed::NameRegistered)),
        "{woken:?}"
    );
    // `billing` is still admitted: the registry change does not wake it.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), billing.changed())
            .await
            .is_err()
    );

    shutdown.cancel();
    let woken = tokio::time::timeout(soon, billing.changed()).await.unwrap();
    assert!(matches!(woken, Woken::Ended), "{woken:?}");
    store.close().await.unwrap();
}

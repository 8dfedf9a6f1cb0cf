//! Deliveries: consumer records only ever move forward, whoever writes them.

use secapp_domain::{ChangeId, Cursor, Knowledge, Mode, Sighting, Version};

use super::{Backend, cursor};

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

/// A writer holding an older record (another replica, or a late flush)
/// never moves a newer one back: not the cursor, not the newest sent or
/// acknowledged state; the same state seen later does move forward.
pub async fn a_stale_writer_never_moves_a_record_back(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let t = |minute: i64| super::now_micros() + chrono::TimeDelta::minutes(minute);
    let sighting = |id: i64, at| Sighting {
        id: ChangeId(id),
        at,
        mode: Mode::After,
        long_poll: false,
    };
    let record = |version: u64, sent: Sighting, acked: Sighting| {
        let mut record = cursor("billing", version);
        record.consumer.knowledge = Knowledge {
            sent: Some(sent),
            acknowledged: Some(acked),
        };
        record
    };
    let newer = record(5, sighting(10, t(2)), sighting(9, t(2)));
    a.save_consumers(vec![newer.clone()]).await.unwrap();
    let stale = record(3, sighting(8, t(3)), sighting(9, t(1)));
    b.save_consumers(vec![stale]).await.unwrap();
    let read = |store: &std::sync::Arc<dyn crate::store::Store>| {
        let store = store.clone();
        async move { store.snapshot().await.unwrap().consumers }
    };
    let held = read(&b).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].consumer.cursor, Cursor::at(Version(5)));
    assert_eq!(held[0].consumer.knowledge, newer.consumer.knowledge);
    let refreshed = record(5, sighting(10, t(4)), sighting(9, t(4)));
    b.save_consumers(vec![refreshed.clone()]).await.unwrap();
    let held = read(&a).await;
    assert_eq!(held[0].consumer.knowledge, refreshed.consumer.knowledge);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Two servers telling one application one head: one claim succeeds.
pub async fn two_servers_claim_a_delivery_once(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let app = secapp_domain::AppName::parse("billing").unwrap();
    let at = chrono::Utc::now();
    for version in 1..=20 {
        let version = secapp_domain::Version(version);
        let (first, second) = tokio::join!(
            a.claim_told(&app, version, at),
            b.claim_told(&app, version, at)
        );
        assert!(
            first.unwrap() ^ second.unwrap(),
            "exactly one server tells version {version:?}"
        );
    }
    assert!(
        !a.claim_told(&app, secapp_domain::Version(3), at)
            .await
            .unwrap(),
        "an older version is never told again"
    );
    let flushed = a.snapshot().await.unwrap();
    let record = flushed.consumers.iter().find(|r| r.app == app).unwrap();
    assert_eq!(record.consumer.cursor.told(), secapp_domain::Version(20));
    a.close().await.unwrap();
    b.close().await.unwrap();
}

//! The behaviour every [`Store`] must show, written once and run against each
//! backend through [`conformance_tests!`](crate::conformance_tests).
//!
//! Built with the `testing` feature (and in this crate's own tests), so a
//! backend in another crate or module runs the same suite: implement
//! [`Backend`] and invoke the macro. The checks are grouped by aggregate:
//! - `change_log.rs`: the ordering rule, idempotency keys, the history, and
//!   two writers publishing on one database;
//! - `deliveries.rs`: consumer records only moving forward, whoever writes;
//! - `registry.rs`: applications, tokens, their audit, and conflicts
//!   between two writers;
//! - `watch.rs`: the consumer watch and who leads, with two servers;
//! - `outbox.rs`: events written with their cause, and sinks' deliveries
//!   in order, held, retried and dead-lettered;
//! - `postgres.rs`: a PostgreSQL database of its own per test ([`TempPostgres`]);
//! - here: starting empty and refusing work after close.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod change_log;
mod deliveries;
mod outbox;
mod postgres;
mod registry;
mod watch;

pub use change_log::*;
pub use deliveries::*;
pub use outbox::*;
pub use postgres::TempPostgres;
pub use registry::*;
pub use watch::*;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use secapp_domain::{AppName, ChangedAt, Consumer, Cursor, Knowledge, LevelRange, Version};

use super::{AuditEvent, ConsumerRecord, Idempotency, Lease, NewChange, Store, StoreError};

/// Opens stores on one database: a fresh database on the first call, the
/// same one on every later call, whether or not the stores opened before
/// are still open. Two open at once play two replicas.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Opens a store on the database.
    async fn open(&self) -> Arc<dyn Store>;
}

/// A change of `level` at `at` by `producer`, with no key: for tests.
pub fn change(level: i64, at: &str) -> NewChange {
    NewChange {
        level: LevelRange::default().level(level).unwrap(),
        changed_at: ChangedAt::parse(at).unwrap(),
        published_by: AppName::parse("producer").unwrap(),
        received_at: Utc::now(),
        idempotency: None,
        source: None,
        token_id: None,
        sinks: Default::default(),
    }
}

pub(super) fn cursor(app: &str, version: u64) -> ConsumerRecord {
    ConsumerRecord {
        app: AppName::parse(app).unwrap(),
        consumer: Consumer {
            cursor: Cursor::at(Version(version)),
            told_at: Some(Utc::now()),
            knowledge: Knowledge::default(),
        },
    }
}

/// The once-only duties' lease for `store`, for a term longer than any check.
pub(super) async fn lease(store: &Arc<dyn Store>) -> Lease {
    store
        .lead(std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the first server to ask takes the duties")
}

/// Instants as stored: microsecond precision.
pub(super) fn now_micros() -> chrono::DateTime<Utc> {
    let now = Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap()
}

pub(super) fn keyed(level: i64, at: &str, app: &str, key: &str, not_before: &str) -> NewChange {
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

pub(super) fn audit_event(action: &str, target: &str) -> AuditEvent {
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

impl AuditEvent {
    pub(super) fn with_at(self, at: chrono::DateTime<Utc>) -> Self {
        Self { at, ..self }
    }
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
            two_writers_agree_on_one_order,
            two_writers_claim_an_idempotency_key_once,
            a_second_writer_decides_against_what_the_first_recorded,
            a_stale_writer_never_moves_a_record_back,
            two_servers_claim_a_delivery_once,
            a_second_writer_conflicts_instead_of_overwriting,
            two_writers_cannot_remove_the_last_two_admins,
            sightings_only_move_forward,
            two_watchers_record_a_change_of_state_once,
            a_publish_writes_the_events_sinks_asked_for,
            a_sinks_deliveries_go_in_order_and_dead_letters_can_be_retried,
            one_server_leads_at_a_time,
            a_lease_taken_over_fences_the_server_that_held_it,
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

//! A store that times every operation of the store it wraps, for
//! `secapp_store_operation_duration_seconds{operation}`, each in a debug
//! span (`store`, with its `operation`).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::Instrument as _;

use super::StoreTimer;
use secapp_domain::{AppName, Head};

use crate::store::{
    AccessChange, AuditEvent, AuditLog, AuditQuery, AuditRecord, ChangeLog, ConsumerRecord,
    ConsumerWatch, Deliveries, Delivery, DeliveryOutcome, HistoryEntry, HistoryQuery, NewChange,
    Notice, Outbox, Published, Registry, Snapshot, Store, StoreError, WatchChange, WatchRecord,
    WatchTransition,
};

/// Wraps a store; every call is timed under its operation's name.
pub struct TimedStore {
    inner: Arc<dyn Store>,
    timer: StoreTimer,
}

impl TimedStore {
    /// Times the operations of `inner` with `timer`.
    #[must_use]
    pub fn new(inner: Arc<dyn Store>, timer: StoreTimer) -> Self {
        Self { inner, timer }
    }

    /// Runs `call` in a debug span named for the operation, and times it.
    async fn timed<T>(&self, operation: &'static str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call
            .instrument(tracing::debug_span!("store", operation))
            .await;
        self.timer.record(operation, started.elapsed());
        result
    }
}

#[async_trait]
impl ChangeLog for TimedStore {
    async fn publish(&self, change: NewChange) -> Result<Published, StoreError> {
        self.timed("publish", self.inner.publish(change)).await
    }

    async fn history(&self, query: HistoryQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        self.timed("history", self.inner.history(query)).await
    }
}

#[async_trait]
impl Deliveries for TimedStore {
    async fn save_consumers(&self, consumers: Vec<ConsumerRecord>) -> Result<(), StoreError> {
        self.timed("save_consumers", self.inner.save_consumers(consumers))
            .await
    }

    async fn claim_told(
        &self,
        app: &AppName,
        version: secapp_domain::Version,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.timed("claim_told", self.inner.claim_told(app, version, at))
            .await
    }
}

#[async_trait]
impl Registry for TimedStore {
    async fn change_access(
        &self,
        change: AccessChange,
        audit: AuditEvent,
        guard: crate::store::AdminGuard,
    ) -> Result<crate::store::Changed, StoreError> {
        self.timed(
            "change_access",
            self.inner.change_access(change, audit, guard),
        )
        .await
    }

    async fn save_token_usage(&self, used: Vec<(String, DateTime<Utc>)>) -> Result<(), StoreError> {
        self.timed("save_token_usage", self.inner.save_token_usage(used))
            .await
    }
}

#[async_trait]
impl AuditLog for TimedStore {
    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.timed("audit", self.inner.audit(query)).await
    }
}

#[async_trait]
impl ConsumerWatch for TimedStore {
    async fn watch(
        &self,
        sightings: Vec<(AppName, DateTime<Utc>)>,
    ) -> Result<Vec<WatchRecord>, StoreError> {
        self.timed("watch", self.inner.watch(sightings)).await
    }

    async fn change_watch(&self, changes: Vec<WatchChange>) -> Result<Vec<bool>, StoreError> {
        self.timed("change_watch", self.inner.change_watch(changes))
            .await
    }

    async fn watch_history(
        &self,
        app: Option<AppName>,
        limit: u32,
    ) -> Result<Vec<WatchTransition>, StoreError> {
        self.timed("watch_history", self.inner.watch_history(app, limit))
            .await
    }
}

#[async_trait]
impl Outbox for TimedStore {
    async fn claim_deliveries(
        &self,
        webhook: &str,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.timed(
            "claim_deliveries",
            self.inner.claim_deliveries(webhook, now, hold_until, limit),
        )
        .await
    }

    async fn finish_delivery(
        &self,
        delivery: &Delivery,
        outcome: DeliveryOutcome,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.timed(
            "finish_delivery",
            self.inner.finish_delivery(delivery, outcome, at),
        )
        .await
    }
}

#[async_trait]
impl Store for TimedStore {
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.timed("snapshot", self.inner.snapshot()).await
    }

    async fn head(&self) -> Result<Option<Head>, StoreError> {
        self.timed("head", self.inner.head()).await
    }

    async fn registry_revision(&self) -> Result<i64, StoreError> {
        self.timed("registry_revision", self.inner.registry_revision())
            .await
    }

    async fn lead(&self) -> Result<bool, StoreError> {
        self.timed("lead", self.inner.lead()).await
    }

    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<Notice>> {
        self.inner.notices()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", self.inner.ping()).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}

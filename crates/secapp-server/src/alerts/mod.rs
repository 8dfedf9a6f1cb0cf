//! Stale-consumer alerts: a consumer application is *stale* when it has not
//! polled, long-polled or held a stream for longer than its allowance
//! (`--stale-after`, or its own `stale_after`).
//!
//! [`Alerts::check`] runs every `watch_interval` on the injected clock. It
//! writes this server's sightings to the store (last seen only moves
//! forward, so replicas add theirs), reads every watched application's
//! record back, decides each state ([`rules`]) and records the changes: each
//! only if the stored state is still the one read, with its history entry
//! and its webhook event in the same transaction. The database holds the
//! truth, so a restart neither forgets an open alert nor raises it again,
//! and two replicas raise it once between them. What is kept in memory is
//! the last evaluation, for `GET /secapp/alerts`, the consumer report and
//! `secapp_consumer_stale`.
//!
//! Watched: every enabled registered application with the `consume` role
//! and, while the shared token is accepted, the names it spoke for that the
//! metrics label (at most `--metrics-max-shared-apps` of them).

pub mod rules;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use secapp_domain::{AppName, Role};
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::clock::Clock;
use crate::leadership::Leadership;
use crate::relay::Sinks;
use crate::sightings::AppsSeen;
use crate::store::{
    AlertState, EventKind, NewEvent, Standing, Store, StoreError, WatchChange, WatchRecord,
};
use crate::streams::StreamLimits;

/// One watched application as last evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerAlert {
    /// The application.
    pub app: AppName,
    /// Whether it is registered (else the shared token spoke for it).
    pub registered: bool,
    /// Its state and since when.
    pub standing: Standing,
    /// When it last polled or held a stream.
    pub last_seen: Option<DateTime<Utc>>,
    /// How long it may go unseen.
    pub allowance: Duration,
}

/// The parts [`Alerts`] reads.
pub struct Parts {
    /// Where states are kept.
    pub store: Arc<dyn Store>,
    /// Which applications are registered, with their allowances.
    pub access: Arc<Access>,
    /// This server's sightings (polls, long polls, stream openings).
    pub seen: Arc<AppsSeen>,
    /// Streams open now: an application holding one is seen.
    pub streams: Arc<StreamLimits>,
    /// Who to tell.
    pub sinks: Arc<Sinks>,
    /// Whether this server holds the once-only duties (records changes).
    pub leadership: Arc<Leadership>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// `--stale-after`.
    pub default_allowance: Duration,
}

/// The consumer watch of one server.
pub struct Alerts {
    parts: Parts,
    /// When this server started: a never-seen application's allowance runs
    /// from its registration or from here, whichever is later.
    started_at: DateTime<Utc>,
    /// The last evaluation, by application.
    current: RwLock<BTreeMap<AppName, ConsumerAlert>>,
    /// The sightings already written, so each is written once.
    written: Mutex<HashMap<AppName, DateTime<Utc>>>,
    /// When the last evaluation ran.
    checked_at: RwLock<Option<DateTime<Utc>>>,
    /// Whether this server held the once-only duties at the last check.
    leading: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
}

impl Alerts {
    /// A watch starting now.
    #[must_use]
    pub fn new(parts: Parts) -> Self {
        let started_at = parts.clock.now();
        Self {
            parts,
            started_at,
            current: RwLock::default(),
            written: Mutex::default(),
            checked_at: RwLock::default(),
            leading: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Every watched application as last evaluated, by name.
    #[must_use]
    pub fn current(&self) -> Vec<ConsumerAlert> {
        self.read().values().cloned().collect()
    }

    /// One application as last evaluated, if it is watched.
    #[must_use]
    pub fn of(&self, app: &AppName) -> Option<ConsumerAlert> {
        self.read().get(app.as_str()).cloned()
    }

    /// Whether this server held the once-only duties (recording alert
    /// changes, sending webhooks) at the last check.
    #[must_use]
    pub fn leading(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When the states were last evaluated.
    #[must_use]
    pub fn checked_at(&self) -> Option<DateTime<Utc>> {
        *self
            .checked_at
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes of alert state, newest first, from the store.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn history(
        &self,
        app: Option<AppName>,
        limit: u32,
    ) -> Result<Vec<crate::store::WatchTransition>, StoreError> {
        self.parts.store.watch_history(app, limit).await
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<AppName, ConsumerAlert>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Evaluates every watched application now and records what changed.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read or written; nothing is
    /// raised then, and the next check tries again.
    pub async fn check(&self) -> Result<(), StoreError> {
        let now = self.parts.clock.now();
        let sightings = self.new_sightings(now);
        let records = self.parts.store.watch(sightings.clone()).await?;
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(sightings);
        let watched = self.watched(records);
        let mut changes = Vec::new();
        let mut evaluated = BTreeMap::new();
        for (app, found) in watched {
            let allowance = found.allowance;
            let facts = rules::Facts {
                current: found.record.standing,
                last_seen: found.record.last_seen,
                watched_from: found.watched_from.max(self.started_at),
                allowance: TimeDelta::from_std(allowance).unwrap_or(TimeDelta::MAX),
            };
            let standing = rules::standing(&facts, now);
            if Some(standing) != facts.current {
                changes.push(self.change(&app, &found, standing));
            }
            evaluated.insert(
                app.clone(),
                ConsumerAlert {
                    app,
                    registered: found.registered,
                    standing,
                    last_seen: found.record.last_seen,
                    allowance,
                },
            );
        }
        // Every server writes its sightings and keeps a view; only the one
        // holding the once-only duties records changes (and so raises alerts).
        let leading = self.parts.leadership.lease().await.is_some();
        self.leading
            .store(leading, std::sync::atomic::Ordering::Relaxed);
        let recorded = if leading {
            self.parts.store.change_watch(changes.clone()).await?
        } else {
            vec![false; changes.len()]
        };
        let mut events = false;
        for (change, applied) in changes.iter().zip(recorded) {
            if !applied {
                // Another server changed it first; the next check reads it.
                continue;
            }
            events |= change.event.is_some();
            log_change(change);
        }
        if events {
            self.parts.sinks.wake();
        }
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = evaluated;
        *self
            .checked_at
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(now);
        Ok(())
    }

    /// Checks every `interval` until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {
                    if let Err(e) = self.check().await {
                        tracing::warn!(error = %e, "checking for stale consumers failed; will retry");
                    }
                }
            }
        }
    }

    /// This server's sightings not yet written: the metrics' (polls, long
    /// polls, stream openings), and now for every application holding a
    /// stream. Only names the metrics label (registered applications, and
    /// at most `--metrics-max-shared-apps` others) are written, so invented
    /// names cannot grow the store.
    fn new_sightings(&self, now: DateTime<Utc>) -> Vec<(AppName, DateTime<Utc>)> {
        let mut seen: HashMap<AppName, DateTime<Utc>> =
            self.parts.seen.sightings().into_iter().collect();
        for app in self.parts.streams.apps() {
            if let Some(at) = seen.get_mut(app.as_str()) {
                *at = now;
            }
        }
        let written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        seen.into_iter()
            .filter(|(app, at)| written.get(app.as_str()).is_none_or(|before| at > before))
            .collect()
    }

    /// The applications to evaluate, with their records and allowances.
    fn watched(&self, records: Vec<WatchRecord>) -> BTreeMap<AppName, Watched> {
        let default = self.parts.default_allowance;
        let mut records: HashMap<AppName, WatchRecord> = records
            .into_iter()
            .map(|record| (record.app.clone(), record))
            .collect();
        let mut watched = BTreeMap::new();
        for details in self.parts.access.apps() {
            let app = details.record;
            let registered = app.name.clone();
            if app.disabled_at.is_some() || !app.roles.contains(Role::Consume) {
                records.remove(registered.as_str());
                continue;
            }
            let record = records.remove(registered.as_str()).unwrap_or(WatchRecord {
                app: registered.clone(),
                last_seen: None,
                standing: None,
            });
            watched.insert(
                registered,
                Watched {
                    record,
                    registered: true,
                    watched_from: app.created_at,
                    allowance: app.stale_after.unwrap_or(default),
                },
            );
        }
        if self.parts.access.shared_token_enabled() {
            let labelled: std::collections::HashSet<AppName> = self
                .parts
                .seen
                .sightings()
                .into_iter()
                .map(|(app, _)| app)
                .collect();
            for (app, record) in records {
                // Names the shared token spoke for: those this server
                // labels, and those another server already evaluated.
                if record.standing.is_some() || labelled.contains(app.as_str()) {
                    watched.insert(
                        app,
                        Watched {
                            watched_from: record.last_seen.unwrap_or(self.started_at),
                            record,
                            registered: false,
                            allowance: default,
                        },
                    );
                }
            }
        }
        watched
    }

    fn change(&self, app: &AppName, found: &Watched, to: Standing) -> WatchChange {
        let from = found.record.standing;
        let allowance_seconds = found.allowance.as_secs();
        let event = match (from.map(|s| s.state), to.state) {
            (Some(AlertState::Stale), AlertState::Stale) | (_, AlertState::NeverSeen) => None,
            (_, AlertState::Stale) => Some((
                EventKind::ConsumerStale,
                serde_json::json!({
                    "app": app.as_str(),
                    "registered": found.registered,
                    "stale_since": secapp_domain::shown(to.since),
                    "last_seen": found.record.last_seen.map(secapp_domain::shown),
                    "stale_after_seconds": allowance_seconds,
                }),
            )),
            (Some(AlertState::Stale), AlertState::Fresh) => Some((
                EventKind::ConsumerRecovered,
                serde_json::json!({
                    "app": app.as_str(),
                    "registered": found.registered,
                    "stale_since": from.map(|s| secapp_domain::shown(s.since)),
                    "seen_at": secapp_domain::shown(to.since),
                    "stale_after_seconds": allowance_seconds,
                }),
            )),
            (_, AlertState::Fresh) => None,
        };
        WatchChange {
            app: app.clone(),
            from,
            to,
            last_seen: found.record.last_seen,
            event: event.and_then(|(kind, data)| {
                let sinks = self.parts.sinks.subscribed(kind);
                (!sinks.is_empty()).then(|| NewEvent {
                    kind,
                    at: to.since.max(self.parts.clock.now()),
                    data,
                    sinks,
                })
            }),
        }
    }
}

/// One application to evaluate.
struct Watched {
    record: WatchRecord,
    registered: bool,
    watched_from: DateTime<Utc>,
    allowance: Duration,
}

fn log_change(change: &WatchChange) {
    let from = change.from.map(|s| s.state);
    match (from, change.to.state) {
        (_, AlertState::Stale) => tracing::warn!(
            app = %change.app,
            since = %secapp_domain::shown(change.to.since),
            last_seen = ?change.last_seen.map(secapp_domain::shown),
            "a consumer application is stale: it has not polled or held a stream within its allowance"
        ),
        (Some(AlertState::Stale), AlertState::Fresh) => tracing::info!(
            app = %change.app,
            "a stale consumer application was seen again"
        ),
        _ => {
            tracing::debug!(app = %change.app, state = change.to.state.as_str(), "consumer watch state")
        }
    }
}

//! Polls and last sightings per consumer application, with a bounded
//! number of label values: every registered application has its own, the
//! names the shared token speaks for share at most a configured number, and
//! the rest count under `other`. A flood of invented `App-name`s grows
//! neither memory nor series beyond that bound. Counted by the routes,
//! read by the metrics at each scrape and by the consumer watch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use secapp_domain::AppName;

use crate::access::Principal;

/// The label value that unregistered names beyond the cap share.
pub const OTHER: &str = "other";

/// What was seen of one application (or of the `other` bucket).
#[derive(Debug, Default)]
pub struct Seen {
    /// Polls (plain, cursor or long).
    pub polls: AtomicU64,
    /// Unix milliseconds of the last poll, long poll or stream; 0 for never.
    pub last_seen_ms: AtomicI64,
}

impl Seen {
    fn saw(&self, now: DateTime<Utc>, poll: bool) {
        if poll {
            self.polls.fetch_add(1, Ordering::Relaxed);
        }
        self.last_seen_ms
            .fetch_max(now.timestamp_millis(), Ordering::Relaxed);
    }
}

/// Every application seen, by name.
#[derive(Debug)]
pub struct AppsSeen {
    /// A std lock: read for a look-up, written once per new name.
    by_app: RwLock<HashMap<AppName, Arc<Seen>>>,
    unregistered: AtomicU64,
    max_unregistered: u64,
    other: Seen,
}

/// Whether a name is a registered application's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registered {
    /// It spoke with its own token.
    Yes,
    /// It spoke with the shared compatibility token.
    No,
}

impl Registered {
    /// A caller with its own token speaks for a registered application;
    /// with the shared token, for a name nobody registered.
    fn of(caller: &Principal) -> Self {
        if caller.token.is_some() {
            Self::Yes
        } else {
            Self::No
        }
    }
}

impl AppsSeen {
    /// Keeps at most `max_unregistered` names that are not registered.
    #[must_use]
    pub fn new(max_unregistered: u64) -> Self {
        Self {
            by_app: RwLock::default(),
            unregistered: AtomicU64::new(0),
            max_unregistered,
            other: Seen::default(),
        }
    }

    /// Notes a poll by `caller`.
    pub fn polled(&self, caller: &Principal, now: DateTime<Utc>) {
        self.seen(&caller.app, Registered::of(caller), now, true);
    }

    /// Notes that `caller` opened a stream.
    pub fn streamed(&self, caller: &Principal, now: DateTime<Utc>) {
        self.seen(&caller.app, Registered::of(caller), now, false);
    }

    fn seen(&self, app: &AppName, registered: Registered, now: DateTime<Utc>, poll: bool) {
        let known = self
            .by_app
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(app.as_str())
            .cloned();
        if let Some(seen) = known {
            seen.saw(now, poll);
            return;
        }
        let mut by_app = self.by_app.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(seen) = by_app.get(app.as_str()) {
            seen.saw(now, poll);
            return;
        }
        if registered == Registered::No {
            if self.unregistered.load(Ordering::Relaxed) >= self.max_unregistered {
                self.other.saw(now, poll);
                return;
            }
            self.unregistered.fetch_add(1, Ordering::Relaxed);
        }
        let seen = Arc::new(Seen::default());
        seen.saw(now, poll);
        by_app.insert(app.clone(), seen);
    }

    /// When each application with its own label was last seen (never
    /// `other`): what the consumer watch writes to the store.
    #[must_use]
    pub fn sightings(&self) -> Vec<(AppName, DateTime<Utc>)> {
        self.by_app
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(app, seen)| {
                let ms = seen.last_seen_ms.load(Ordering::Relaxed);
                let at = DateTime::<Utc>::from_timestamp_millis(ms).filter(|_| ms > 0)?;
                Some((app.clone(), at))
            })
            .collect()
    }

    /// Every label value with what was seen, `other` last when it was used.
    #[must_use]
    pub fn snapshot(&self) -> Vec<(String, u64, Option<i64>)> {
        let read = |seen: &Seen| {
            let last = seen.last_seen_ms.load(Ordering::Relaxed);
            (
                seen.polls.load(Ordering::Relaxed),
                (last > 0).then_some(last),
            )
        };
        let mut rows: Vec<(String, u64, Option<i64>)> = self
            .by_app
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(app, seen)| {
                let (polls, last) = read(seen);
                (app.to_string(), polls, last)
            })
            .collect();
        rows.sort_unstable();
        let (polls, last) = read(&self.other);
        if last.is_some() {
            rows.push((OTHER.to_owned(), polls, last));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unregistered_names_beyond_the_cap_share_one_bucket_and_registered_ones_never_do() {
        let seen = AppsSeen::new(3);
        let now = Utc::now();
        for n in 0..1000 {
            let app = AppName::parse(&format!("invented-{n}")).unwrap();
            seen.seen(&app, Registered::No, now, true);
        }
        let billing = AppName::parse("billing").unwrap();
        seen.seen(&billing, Registered::Yes, now, true);
        seen.seen(&billing, Registered::Yes, now, false);
        let rows = seen.snapshot();
        assert_eq!(rows.len(), 3 + 1 + 1, "three names, billing, other");
        let other = rows.iter().find(|row| row.0 == OTHER).unwrap();
        assert_eq!(other.1, 997);
        let billing = rows.iter().find(|row| row.0 == "billing").unwrap();
        assert_eq!(billing.1, 1, "a stream is a sighting, not a poll");
        assert_eq!(billing.2, Some(now.timestamp_millis()));
    }
}

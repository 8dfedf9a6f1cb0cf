//! What the simulated fleet did, shared by its tasks: publishes, deliveries
//! with their lag, errors, and the invariants checked as it goes.
//!
//! A delivery's lag runs from the moment its publish was sent to the moment
//! the consumer had it. A stream can deliver a change before its producer
//! has read the publish's answer, so deliveries wait in `pending` until the
//! publish is known, then are timed and their level checked.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use secapp_client::State;
use serde::Serialize;

use super::Mode;
use super::check::{Published, Told, Violation};

/// A delivery whose publish is not known yet.
#[derive(Debug)]
struct Delivery {
    consumer: usize,
    id: i64,
    level: i64,
    at: Instant,
}

/// The whole run's counts and checks.
#[derive(Debug)]
pub struct Tally {
    published: Published,
    sent_at: HashMap<i64, Instant>,
    publishes: u64,
    deliveries: u64,
    errors: u64,
    consumers: Vec<(Mode, Told)>,
    pending: Vec<Delivery>,
    lags: HashMap<Mode, Vec<Duration>>,
    violations: Vec<Violation>,
    unreported: Vec<Violation>,
}

/// Delivery lag percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Lag {
    /// How many deliveries were timed.
    pub timed: usize,
    /// The median.
    pub p50_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
}

impl Tally {
    /// A tally for consumers named and moded as given, in index order.
    pub fn new(consumers: impl IntoIterator<Item = (String, Mode)>) -> Self {
        Self {
            published: Published::default(),
            sent_at: HashMap::new(),
            publishes: 0,
            deliveries: 0,
            errors: 0,
            consumers: consumers
                .into_iter()
                .map(|(name, mode)| (mode, Told::new(name)))
                .collect(),
            pending: Vec::new(),
            lags: HashMap::new(),
            violations: Vec::new(),
            unreported: Vec::new(),
        }
    }

    /// A publish sent at `sent` was recorded as change `id`.
    pub fn published(&mut self, id: i64, level: i64, sent: Instant) {
        self.publishes += 1;
        self.published.record(id, level);
        self.sent_at.insert(id, sent);
        self.resolve();
    }

    /// Consumer `consumer` was told `state` at `at`.
    pub fn delivered(&mut self, consumer: usize, state: &State, at: Instant) {
        self.deliveries += 1;
        if let Some((_, told)) = self.consumers.get_mut(consumer)
            && let Some(violation) = told.told(state.id)
        {
            self.violate(violation);
        }
        self.pending.push(Delivery {
            consumer,
            id: state.id,
            level: state.level,
            at,
        });
        self.resolve();
    }

    /// A request failed (`n` times).
    pub fn failed(&mut self, n: u64) {
        self.errors += n;
    }

    /// The last id consumer `consumer` was told.
    pub fn last(&self, consumer: usize) -> Option<i64> {
        self.consumers
            .get(consumer)
            .and_then(|(_, told)| told.last())
    }

    /// Whether every consumer was last told `head`.
    pub fn all_on(&self, head: Option<i64>) -> bool {
        self.consumers
            .iter()
            .all(|(_, told)| told.ends_on(head).is_none())
    }

    /// The end of the run: every consumer must be on `head`.
    pub fn finish(&mut self, head: Option<i64>) {
        self.resolve();
        let missed: Vec<Violation> = self
            .consumers
            .iter()
            .filter_map(|(_, told)| told.ends_on(head))
            .collect();
        for violation in missed {
            self.violate(violation);
        }
    }

    /// Violations not yet shown, oldest first.
    pub fn take_unreported(&mut self) -> Vec<Violation> {
        std::mem::take(&mut self.unreported)
    }

    /// Every violation so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Publishes, deliveries and errors so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.publishes, self.deliveries, self.errors)
    }

    /// Lag over every mode, or one.
    pub fn lag(&self, mode: Option<Mode>) -> Lag {
        let mut lags: Vec<Duration> = match mode {
            Some(mode) => self.lags.get(&mode).cloned().unwrap_or_default(),
            None => self.lags.values().flatten().copied().collect(),
        };
        lags.sort_unstable();
        Lag {
            timed: lags.len(),
            p50_ms: percentile(&lags, 0.50),
            p99_ms: percentile(&lags, 0.99),
        }
    }

    /// How many consumers use `mode`.
    pub fn consumers_in(&self, mode: Mode) -> usize {
        self.consumers.iter().filter(|(m, _)| *m == mode).count()
    }

    fn resolve(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for delivery in pending {
            let Some(sent) = self.sent_at.get(&delivery.id).copied() else {
                self.pending.push(delivery);
                continue;
            };
            let (mode, told) = &self.consumers[delivery.consumer];
            let mode = *mode;
            let wrong = self
                .published
                .check(told.name(), delivery.id, delivery.level);
            self.lags
                .entry(mode)
                .or_default()
                .push(delivery.at.saturating_duration_since(sent));
            if let Some(violation) = wrong {
                self.violate(violation);
            }
        }
    }

    fn violate(&mut self, violation: Violation) {
        self.violations.push(violation.clone());
        self.unreported.push(violation);
    }
}

/// The `q` quantile of sorted durations, in milliseconds (0 when empty).
fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    // Microseconds are precision enough.
    (sorted[index].as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use secapp_client::State;

    use super::{Mode, Tally};

    fn state(id: i64, level: i64) -> State {
        State {
            level,
            id,
            changed_at: "2026-03-01T12:05:00Z".into(),
        }
    }

    #[test]
    fn a_delivery_before_its_publish_is_answered_is_timed_once_it_is() {
        let mut tally = Tally::new([("c0".to_owned(), Mode::Stream)]);
        let sent = Instant::now();
        tally.delivered(0, &state(1, 3), sent + Duration::from_millis(5));
        assert_eq!(tally.lag(None).timed, 0);
        tally.published(1, 3, sent);
        let lag = tally.lag(Some(Mode::Stream));
        assert_eq!(lag.timed, 1);
        assert!((lag.p50_ms - 5.0).abs() < 0.5, "{lag:?}");
        assert!(tally.violations().is_empty());
        tally.finish(Some(1));
        assert!(tally.violations().is_empty());
        assert_eq!(tally.counts(), (1, 1, 0));
    }

    #[test]
    fn wrong_levels_repeats_and_a_missed_final_head_are_all_reported() {
        let mut tally = Tally::new([
            ("c0".to_owned(), Mode::Plain),
            ("c1".to_owned(), Mode::Cursor),
        ]);
        let now = Instant::now();
        tally.published(1, 2, now);
        tally.delivered(0, &state(1, 4), now);
        tally.delivered(0, &state(1, 2), now);
        tally.delivered(1, &state(1, 2), now);
        assert!(tally.all_on(Some(1)));
        tally.published(2, 5, now);
        tally.delivered(1, &state(2, 5), now);
        assert!(!tally.all_on(Some(2)));
        tally.finish(Some(2));
        let said: Vec<String> = tally
            .take_unreported()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            said,
            [
                "c0 was told level 4 for change 1, published as level 2",
                "c0 was told change 1 twice",
                "c0 ended on change 1, not on the final head 2",
            ]
        );
        assert!(tally.take_unreported().is_empty());
        assert_eq!(tally.violations().len(), 3);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let ms = |n: u64| Duration::from_millis(n);
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert!((super::percentile(&sorted, 0.5) - 50.0).abs() < 1e-9);
        assert!((super::percentile(&sorted, 0.99) - 99.0).abs() < 1e-9);
        assert!((super::percentile(&[ms(7)], 0.99) - 7.0).abs() < 1e-9);
        assert!(super::percentile(&[], 0.5).abs() < 1e-9);
    }
}

//! Refused authentications: logged (never with the token) and counted by
//! reason, with the latest kept for `GET /admin/auth-failures`.
//!
//! Every refusal is counted, but the log takes at most [`LOG_PER_SECOND`]
//! lines a second (bursts of [`LOG_BURST`]): a client hammering the server
//! with bad tokens cannot fill the disk with log lines. The next line logged
//! says how many were left out.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// How many recent refusals are kept.
const RECENT: usize = 100;

/// Refusals logged per second, at most.
pub const LOG_PER_SECOND: u32 = 20;
/// Refusals logged in a burst, at most.
pub const LOG_BURST: u32 = 100;

/// One refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// When.
    pub at: DateTime<Utc>,
    /// The error code the caller got.
    pub reason: &'static str,
    /// The application the caller claimed or its token belongs to.
    pub app: Option<String>,
    /// Where the request came from.
    pub source: Option<String>,
    /// Method and path.
    pub request: String,
}

#[derive(Default)]
struct Tally {
    total: u64,
    by_reason: BTreeMap<&'static str, u64>,
    recent: VecDeque<Failure>,
}

/// Counts since start-up. A std `Mutex`: held for a few map updates only.
pub struct AuthFailures {
    tally: Mutex<Tally>,
    log: DefaultDirectRateLimiter,
    /// Refusals not logged since the last line.
    unlogged: AtomicU64,
}

impl Default for AuthFailures {
    fn default() -> Self {
        let quota = Quota::per_second(NonZeroU32::MIN.saturating_add(LOG_PER_SECOND - 1))
            .allow_burst(NonZeroU32::MIN.saturating_add(LOG_BURST - 1));
        Self {
            tally: Mutex::default(),
            log: RateLimiter::direct(quota),
            unlogged: AtomicU64::new(0),
        }
    }
}

/// What [`AuthFailures::report`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureReport {
    /// Every refusal counted.
    pub total: u64,
    /// By error code.
    pub by_reason: BTreeMap<&'static str, u64>,
    /// The latest, newest first.
    pub recent: Vec<Failure>,
}

impl AuthFailures {
    /// Logs and counts one refusal.
    pub fn record(&self, failure: Failure) {
        if self.log.check().is_ok() {
            tracing::warn!(
                reason = failure.reason,
                app = failure.app.as_deref().unwrap_or("-"),
                source = failure.source.as_deref().unwrap_or("-"),
                request = %failure.request,
                not_logged_before = self.unlogged.swap(0, Ordering::Relaxed),
                "authentication refused"
            );
        } else {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
        }
        let Ok(mut tally) = self.tally.lock() else {
            return;
        };
        tally.total += 1;
        *tally.by_reason.entry(failure.reason).or_default() += 1;
        if tally.recent.len() == RECENT {
            tally.recent.pop_back();
        }
        tally.recent.push_front(failure);
    }

    /// The counts and the latest refusals.
    #[must_use]
    pub fn report(&self) -> FailureReport {
        self.tally
            .lock()
            .map(|tally| FailureReport {
                total: tally.total,
                by_reason: tally.by_reason.clone(),
                recent: tally.recent.iter().cloned().collect(),
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(reason: &'static str, n: usize) -> Failure {
        Failure {
            at: Utc::now(),
            reason,
            app: Some(format!("app-{n}")),
            source: None,
            request: "GET /secapp/update".into(),
        }
    }

    #[test]
    fn counts_by_reason_and_keeps_the_latest_hundred() {
        let failures = AuthFailures::default();
        for n in 0..150 {
            failures.record(failure(
                if n % 3 == 0 {
                    "invalid_token"
                } else {
                    "missing_role"
                },
                n,
            ));
        }
        let report = failures.report();
        assert_eq!(report.total, 150);
        assert_eq!(report.by_reason["invalid_token"], 50);
        assert_eq!(report.by_reason["missing_role"], 100);
        assert_eq!(report.recent.len(), 100);
        assert_eq!(report.recent[0].app.as_deref(), Some("app-149"));
        assert_eq!(report.recent[99].app.as_deref(), Some("app-50"));
        // Every refusal is counted; the log took the first burst and left
        // out the rest (a few more may pass as the allowance refills).
        let unlogged = failures.unlogged.load(Ordering::Relaxed);
        assert!((40..=50).contains(&unlogged), "{unlogged}");
    }
}

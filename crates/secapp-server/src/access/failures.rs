//! Refused authentications: logged one by one (never with the token) and
//! counted by reason, with the latest kept for `GET /admin/auth-failures`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// How many recent refusals are kept.
const RECENT: usize = 100;

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
#[derive(Default)]
pub struct AuthFailures(Mutex<Tally>);

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
        tracing::warn!(
            reason = failure.reason,
            app = failure.app.as_deref().unwrap_or("-"),
            source = failure.source.as_deref().unwrap_or("-"),
            request = %failure.request,
            "authentication refused"
        );
        let Ok(mut tally) = self.0.lock() else {
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
        self.0
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
    }
}

//! The once-only duties (relaying events to sinks, recording consumer
//! alerts) held for a term: what [`Store::lead`](super::Store::lead) hands
//! out, and what every write made under the duties is checked against.
//!
//! Each time the duties change hands, or lapse and are taken again, their
//! epoch grows. A write the duties make carries the epoch it was taken
//! under, and the database refuses it, in the statement that writes, once
//! the epoch is no longer current: a server that was paused past its term
//! (SIGSTOP, a long GC-like stall, a frozen VM) cannot act on duties
//! another server has since taken. Before it talks to anything outside the
//! database (a broker, a webhook receiver) the server also checks the term
//! on its own monotonic clock, [`Lease::holds`], which keeps ending a
//! little before the database's.

use std::time::{Duration, Instant};

/// The duties, held until a moment this process can check without asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Grows each time the duties are taken anew; writes under an older one
    /// are refused.
    pub epoch: i64,
    /// Until when, on this process's monotonic clock, they are surely held.
    pub until: Instant,
}

impl Lease {
    /// A lease of `term` asked for at `asked`, ending a tenth early on this
    /// process's clock so that clock running a little slow against the
    /// database's cannot stretch it.
    #[must_use]
    pub fn asked_at(epoch: i64, asked: Instant, term: Duration) -> Self {
        Self {
            epoch,
            until: asked + term - term / 10,
        }
    }

    /// Whether the duties are still held now.
    #[must_use]
    pub fn holds(&self) -> bool {
        Instant::now() < self.until
    }

    /// How much of the term is left now.
    #[must_use]
    pub fn left(&self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_ends_a_tenth_early_on_the_local_clock() {
        let asked = Instant::now();
        let lease = Lease::asked_at(3, asked, Duration::from_secs(10));
        assert_eq!(lease.until, asked + Duration::from_secs(9));
        assert!(lease.holds());
        let over = Lease::asked_at(3, asked - Duration::from_secs(9), Duration::from_secs(10));
        assert!(!over.holds());
        assert_eq!(over.left(), Duration::ZERO);
    }
}

//! The server's notion of now, injected so tests can pin it.

use chrono::{DateTime, Timelike as _, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock, to the microsecond: the precision the store keeps, so
/// what memory holds is what a restart reads back.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        // Cheaper than a round trip through a timestamp: no date arithmetic.
        now.with_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }
}

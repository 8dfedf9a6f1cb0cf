//! Which change is the current state: the ordering rule and head versions.

use std::fmt;

use crate::level::Level;
use crate::time::ChangedAt;

/// The identifier of a recorded change (`processed_id` on the wire).
/// Assigned by the store; strictly increases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeId(pub i64);

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How many times the head has changed. `Version(0)` means "no head yet";
/// the first head is `Version(1)`. Consumers are tracked by the version they
/// were last told, so "has this app been told?" never compares clocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

impl Version {
    /// The version that follows this one.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A recorded change of the criticality level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its `processed_id`.
    pub id: ChangeId,
    /// The level it announces.
    pub level: Level,
    /// When the producer says the level changed.
    pub changed_at: ChangedAt,
}

/// The current state: the change with the latest `Change_at`, and the head
/// version it was given when it won.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The winning change.
    pub change: Change,
    /// The head version this change was given.
    pub version: Version,
}

/// What recording a change did to the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The change is the new head.
    Head,
    /// Its `Change_at` equals the head's: the first one keeps the head.
    Tie,
    /// Its `Change_at` is older than the head's: recorded in the history only.
    Older,
}

impl Outcome {
    /// The stable name stored with each change.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::Tie => "tie",
            Self::Older => "older",
        }
    }

    /// Reads back [`Outcome::as_str`].
    #[must_use]
    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw {
            "head" => Some(Self::Head),
            "tie" => Some(Self::Tie),
            "older" => Some(Self::Older),
            _ => None,
        }
    }
}

/// The ordering state: the current head, if any change was ever recorded.
///
/// Stores hold one of these (or rebuild it inside a transaction) and feed it
/// every change in the order the ids were assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    head: Option<Head>,
    /// The latest head version given, which the next head's follows.
    version: Version,
}

impl Ledger {
    /// A ledger whose head is `head` (as loaded from storage).
    #[must_use]
    pub fn with_head(head: Option<Head>) -> Self {
        let version = head.as_ref().map(|h| h.version).unwrap_or_default();
        Self { head, version }
    }

    /// A ledger whose head is `head` while `version` was already given (to
    /// a head storage cannot read back): the next head gets a version after
    /// both, so no version is ever given twice.
    #[must_use]
    pub fn resume(head: Option<Head>, version: Version) -> Self {
        let mut ledger = Self::with_head(head);
        ledger.version = ledger.version.max(version);
        ledger
    }

    /// The current head.
    #[must_use]
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// The latest head version given (`Version(0)` before any change).
    #[must_use]
    pub fn version(&self) -> Version {
        self.version
    }

    /// What recording a change made at `changed_at` would do, without recording
    /// it: stores use this to write the outcome in the same row as the change.
    #[must_use]
    pub fn classify(&self, changed_at: &ChangedAt) -> Outcome {
        match &self.head {
            None => Outcome::Head,
            Some(head) => match changed_at.cmp(&head.change.changed_at) {
                std::cmp::Ordering::Greater => Outcome::Head,
                std::cmp::Ordering::Equal => Outcome::Tie,
                std::cmp::Ordering::Less => Outcome::Older,
            },
        }
    }

    /// Records `change`: it becomes the head only if its `Change_at` is strictly
    /// later than the head's, and the head version then increases by one.
    pub fn apply(&mut self, change: Change) -> Outcome {
        let outcome = self.classify(&change.changed_at);
        if outcome == Outcome::Head {
            self.version = self.version.next();
            self.head = Some(Head {
                change,
                version: self.version,
            });
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::LevelRange;

    fn change(id: i64, level: i64, at: &str) -> Change {
        Change {
            id: ChangeId(id),
            level: LevelRange::default().level(level).unwrap(),
            changed_at: ChangedAt::parse(at).unwrap(),
        }
    }

    #[test]
    fn the_first_change_is_head_version_one() {
        let mut ledger = Ledger::default();
        assert_eq!(ledger.version(), Version(0));
        assert!(ledger.head().is_none());
        assert_eq!(
            ledger.apply(change(1, 3, "2026-03-01T12:00:00Z")),
            Outcome::Head
        );
        assert_eq!(ledger.version(), Version(1));
        assert_eq!(ledger.head().unwrap().change.id, ChangeId(1));
    }

    #[test]
    fn a_later_change_wins_and_bumps_the_version() {
        let mut ledger = Ledger::default();
        ledger.apply(change(1, 3, "2026-03-01T12:00:00Z"));
        assert_eq!(
            ledger.apply(change(2, 4, "2026-03-01T12:00:01Z")),
            Outcome::Head
        );
        assert_eq!(ledger.version(), Version(2));
        assert_eq!(ledger.head().unwrap().change.level.get(), 4);
    }

    #[test]
    fn a_tie_keeps_the_first_change_and_the_version() {
        let mut ledger = Ledger::default();
        ledger.apply(change(1, 3, "2026-03-01T12:00:00Z"));
        assert_eq!(
            ledger.apply(change(2, 5, "2026-03-01T14:00:00+02:00")),
            Outcome::Tie
        );
        let head = ledger.head().unwrap();
        assert_eq!((head.change.id, head.version), (ChangeId(1), Version(1)));
    }

    #[test]
    fn an_older_change_is_recorded_but_does_not_win() {
        let mut ledger = Ledger::default();
        ledger.apply(change(1, 3, "2026-03-01T12:00:00Z"));
        assert_eq!(
            ledger.apply(change(2, 1, "2026-03-01T11:59:59.999Z")),
            Outcome::Older
        );
        assert_eq!(ledger.head().unwrap().change.id, ChangeId(1));
        assert_eq!(ledger.version(), Version(1));
    }

    #[test]
    fn the_same_level_at_a_later_time_is_a_new_head() {
        let mut ledger = Ledger::default();
        ledger.apply(change(1, 3, "2026-03-01T12:00:00Z"));
        assert_eq!(
            ledger.apply(change(2, 3, "2026-03-01T13:00:00Z")),
            Outcome::Head
        );
        assert_eq!(ledger.version(), Version(2));
    }

    #[test]
    fn any_order_of_arrival_ends_on_the_latest_first_seen_change() {
        // Every permutation of five changes (two sharing the latest time) must
        // end with the earliest-recorded of the latest-timed ones as head.
        let times = [
            "2026-03-01T10:00:00Z",
            "2026-03-01T12:00:00Z",
            "2026-03-01T11:00:00Z",
            "2026-03-01T12:00:00Z",
            "2026-03-01T09:00:00Z",
        ];
        let mut order: Vec<usize> = (0..times.len()).collect();
        let mut count = 0;
        permute(&mut order, 0, &mut |perm| {
            count += 1;
            let mut ledger = Ledger::default();
            let mut last_version = Version(0);
            for (seq, &i) in perm.iter().enumerate() {
                let id = i64::try_from(seq).unwrap() + 1;
                ledger.apply(change(id, 1 + i64::try_from(i).unwrap(), times[i]));
                assert!(ledger.version() >= last_version);
                last_version = ledger.version();
            }
            let head = ledger.head().unwrap();
            assert_eq!(head.change.changed_at, ChangedAt::parse(times[1]).unwrap());
            let first_latest = perm.iter().position(|&i| i == 1 || i == 3).unwrap();
            assert_eq!(head.change.id.0, i64::try_from(first_latest).unwrap() + 1);
        });
        assert_eq!(count, 120);
    }

    fn permute(items: &mut Vec<usize>, k: usize, visit: &mut dyn FnMut(&[usize])) {
        if k == items.len() {
            visit(items);
            return;
        }
        for i in k..items.len() {
            items.swap(k, i);
            permute(items, k + 1, visit);
            items.swap(k, i);
        }
    }

    #[test]
    fn a_resumed_ledger_never_gives_a_version_twice() {
        let head = Head {
            change: change(1, 3, "2026-03-01T12:00:00Z"),
            version: Version(2),
        };
        let mut ledger = Ledger::resume(Some(head), Version(5));
        assert_eq!(ledger.version(), Version(5));
        ledger.apply(change(7, 4, "2026-03-01T13:00:00Z"));
        assert_eq!(ledger.head().unwrap().version, Version(6));
        let mut empty = Ledger::resume(None, Version(3));
        assert_eq!(
            empty.apply(change(8, 1, "2020-01-01T00:00:00Z")),
            Outcome::Head
        );
        assert_eq!(empty.version(), Version(4));
    }

    #[test]
    fn outcomes_round_trip_through_their_stored_names() {
        for outcome in [Outcome::Head, Outcome::Tie, Outcome::Older] {
            assert_eq!(Outcome::from_stored(outcome.as_str()), Some(outcome));
        }
        assert_eq!(Outcome::from_stored("other"), None);
    }
}

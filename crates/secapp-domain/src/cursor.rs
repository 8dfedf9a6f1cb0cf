//! What one application has been told, and whether it must be told again.

use crate::ledger::{Head, Version};

/// The head version an application was last told through the server-held
/// cursor (a plain poll). Starts at `Version(0)`: told nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    told: Version,
}

impl Cursor {
    /// A cursor that has been told `told` (as loaded from storage).
    #[must_use]
    pub fn at(told: Version) -> Self {
        Self { told }
    }

    /// The version last told.
    #[must_use]
    pub fn told(self) -> Version {
        self.told
    }

    /// Decides whether `head` is news for this application and, if so, moves
    /// the cursor to it. The cursor never moves back: a caller holding an
    /// older snapshot of the head cannot undo a newer delivery.
    pub fn deliver(&mut self, head: &Head) -> bool {
        if head.version > self.told {
            self.told = head.version;
            true
        } else {
            false
        }
    }

    /// Merges another record of the same application's cursor, keeping the
    /// newest (used when a write-back fails and is retried).
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        std::cmp::max(self, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Change, ChangeId, ChangedAt, LevelRange};

    fn head(version: u64) -> Head {
        Head {
            change: Change {
                id: ChangeId(i64::try_from(version).unwrap() * 10),
                level: LevelRange::default().level(2).unwrap(),
                changed_at: ChangedAt::parse("2026-03-01T12:00:00Z").unwrap(),
            },
            version: Version(version),
        }
    }

    #[test]
    fn each_head_is_delivered_once() {
        let mut cursor = Cursor::default();
        assert!(cursor.deliver(&head(1)));
        assert!(!cursor.deliver(&head(1)));
        assert!(cursor.deliver(&head(2)));
        assert!(!cursor.deliver(&head(2)));
        assert_eq!(cursor.told(), Version(2));
    }

    #[test]
    fn a_stale_head_never_moves_the_cursor_back() {
        let mut cursor = Cursor::at(Version(5));
        assert!(!cursor.deliver(&head(4)));
        assert_eq!(cursor.told(), Version(5));
    }

    #[test]
    fn a_restored_cursor_skips_heads_already_told() {
        let mut cursor = Cursor::at(Version(3));
        assert!(!cursor.deliver(&head(3)));
        assert!(cursor.deliver(&head(7)));
    }

    #[test]
    fn merging_keeps_the_newest() {
        assert_eq!(
            Cursor::at(Version(2)).max(Cursor::at(Version(5))),
            Cursor::at(Version(5))
        );
        assert_eq!(
            Cursor::at(Version(6)).max(Cursor::at(Version(5))),
            Cursor::at(Version(6))
        );
    }
}

//! What the server knows about each consumer's grasp of the current state:
//! the newest head it was *sent* and the newest it has *acknowledged*.
//!
//! A client-held cursor (`after`, `If-None-Match`, `Last-Event-ID`) is an
//! acknowledgement: the client proves it holds that state. A plain poll or a
//! stream event is only a send: the server cannot know it arrived. Neither
//! record moves the plain-poll [`Cursor`](crate::Cursor): pods of one
//! application may mix modes.

use chrono::{DateTime, Utc};

use crate::cursor::Cursor;
use crate::ledger::{ChangeId, Head};

/// How a consumer learned or acknowledged a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A plain `GET /secapp/update` (the server-held cursor).
    Poll,
    /// `GET /secapp/update?after=<id>`.
    After,
    /// `GET /secapp/update` with `If-None-Match: "<id>"`.
    IfNoneMatch,
    /// `GET /secapp/stream`.
    Stream,
}

impl Mode {
    /// The stable name used on the wire and in storage.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poll => "poll",
            Self::After => "after",
            Self::IfNoneMatch => "if-none-match",
            Self::Stream => "stream",
        }
    }

    /// Reads back [`Mode::as_str`].
    #[must_use]
    pub fn from_stored(raw: &str) -> Option<Self> {
        [Self::Poll, Self::After, Self::IfNoneMatch, Self::Stream]
            .into_iter()
            .find(|mode| mode.as_str() == raw)
    }
}

/// One sighting: a state id, when, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    /// The `status_change_id` sent or acknowledged.
    pub id: ChangeId,
    /// When.
    pub at: DateTime<Utc>,
    /// Through which mode.
    pub mode: Mode,
    /// Whether it happened in a long poll (`?wait=`).
    pub long_poll: bool,
}

/// The newest state sent to, and acknowledged by, one application.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Knowledge {
    /// The newest head sent, by any mode.
    pub sent: Option<Sighting>,
    /// The newest head the application proved it holds.
    pub acknowledged: Option<Sighting>,
}

impl Knowledge {
    /// Records a send. Keeps the newest id; a later send of the same id
    /// refreshes when and how.
    pub fn sent(&mut self, sighting: Sighting) {
        keep_newest(&mut self.sent, sighting);
    }

    /// Records an acknowledgement, under the same rule as [`Knowledge::sent`].
    pub fn acknowledged(&mut self, sighting: Sighting) {
        keep_newest(&mut self.acknowledged, sighting);
    }

    /// Whether the application may not hold the head `head`: neither the
    /// newest send nor the newest acknowledgement is it.
    #[must_use]
    pub fn behind(&self, head: Option<ChangeId>) -> bool {
        let Some(head) = head else {
            return false;
        };
        let is_head = |s: &Option<Sighting>| s.is_some_and(|s| s.id == head);
        !is_head(&self.sent) && !is_head(&self.acknowledged)
    }
}

/// Everything the server keeps about one consumer application.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consumer {
    /// The server-held cursor of plain polls.
    pub cursor: Cursor,
    /// When the cursor last moved.
    pub told_at: Option<DateTime<Utc>>,
    /// The newest state sent and acknowledged, by any mode.
    pub knowledge: Knowledge,
}

impl Consumer {
    /// A plain poll: if `head` is news to the server-held cursor, moves the
    /// cursor, records the send and returns true.
    pub fn poll(&mut self, head: &Head, now: DateTime<Utc>, long_poll: bool) -> bool {
        if !self.cursor.deliver(head) {
            return false;
        }
        self.told_at = Some(now);
        self.knowledge.sent(Sighting {
            id: head.change.id,
            at: now,
            mode: Mode::Poll,
            long_poll,
        });
        true
    }

    /// A client-held cursor: the client holds state `held`. Records it as
    /// acknowledged when it names the head or an earlier change (an id from
    /// the future proves nothing), and returns true — recording the send —
    /// when `head` is a different state the client must be given.
    pub fn holds(
        &mut self,
        held: ChangeId,
        head: Option<&Head>,
        mode: Mode,
        now: DateTime<Utc>,
        long_poll: bool,
    ) -> bool {
        let Some(head) = head else {
            return false;
        };
        let sighting = |id| Sighting {
            id,
            at: now,
            mode,
            long_poll,
        };
        if held.0 > 0 && held <= head.change.id {
            self.knowledge.acknowledged(sighting(held));
        }
        if held == head.change.id {
            return false;
        }
        self.knowledge.sent(sighting(head.change.id));
        true
    }

    /// A stream pushed `head` to this application.
    pub fn streamed(&mut self, head: &Head, now: DateTime<Utc>) {
        self.knowledge.sent(Sighting {
            id: head.change.id,
            at: now,
            mode: Mode::Stream,
            long_poll: false,
        });
    }
}

fn keep_newest(slot: &mut Option<Sighting>, sighting: Sighting) {
    if slot.is_none_or(|held| sighting.id >= held.id) {
        *slot = Some(sighting);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: i64, mode: Mode) -> Sighting {
        Sighting {
            id: ChangeId(id),
            at: DateTime::from_timestamp(id * 60, 0).unwrap(),
            mode,
            long_poll: false,
        }
    }

    #[test]
    fn the_newest_id_is_kept_and_an_older_one_ignored() {
        let mut knowledge = Knowledge::default();
        knowledge.sent(at(5, Mode::Poll));
        knowledge.sent(at(3, Mode::Stream));
        assert_eq!(knowledge.sent, Some(at(5, Mode::Poll)));
        knowledge.sent(at(7, Mode::Stream));
        assert_eq!(knowledge.sent.unwrap().id, ChangeId(7));
    }

    #[test]
    fn a_repeat_of_the_same_id_refreshes_when_and_how() {
        let mut knowledge = Knowledge::default();
        knowledge.acknowledged(at(5, Mode::After));
        let later = Sighting {
            at: DateTime::from_timestamp(10_000, 0).unwrap(),
            mode: Mode::IfNoneMatch,
            ..at(5, Mode::After)
        };
        knowledge.acknowledged(later);
        assert_eq!(knowledge.acknowledged, Some(later));
    }

    #[test]
    fn behind_means_neither_sent_nor_acknowledged_the_head() {
        let mut knowledge = Knowledge::default();
        assert!(!knowledge.behind(None), "nothing to be behind of");
        assert!(knowledge.behind(Some(ChangeId(5))));
        knowledge.sent(at(5, Mode::Stream));
        assert!(!knowledge.behind(Some(ChangeId(5))));
        assert!(knowledge.behind(Some(ChangeId(6))));
        knowledge.acknowledged(at(6, Mode::After));
        assert!(!knowledge.behind(Some(ChangeId(6))));
    }

    fn head(id: i64, version: u64) -> Head {
        Head {
            change: crate::Change {
                id: ChangeId(id),
                level: crate::LevelRange::default().level(3).unwrap(),
                changed_at: crate::ChangedAt::parse("2026-03-01T12:00:00Z").unwrap(),
            },
            version: crate::Version(version),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn a_plain_poll_moves_the_cursor_and_records_a_send() {
        let mut consumer = Consumer::default();
        assert!(consumer.poll(&head(4, 1), now(), false));
        assert_eq!(consumer.cursor.told(), crate::Version(1));
        assert_eq!(consumer.told_at, Some(now()));
        assert_eq!(consumer.knowledge.sent.unwrap().mode, Mode::Poll);
        assert!(!consumer.poll(&head(4, 1), now(), false));
    }

    #[test]
    fn a_held_cursor_acknowledges_and_never_moves_the_plain_cursor() {
        let mut consumer = Consumer::default();
        let current = head(9, 3);
        assert!(!consumer.holds(ChangeId(9), Some(&current), Mode::After, now(), true));
        let ack = consumer.knowledge.acknowledged.unwrap();
        assert_eq!(
            (ack.id, ack.mode, ack.long_poll),
            (ChangeId(9), Mode::After, true)
        );
        assert!(consumer.knowledge.sent.is_none(), "nothing was sent");
        assert_eq!(consumer.cursor, Cursor::default());
        assert!(
            consumer.poll(&current, now(), false),
            "the plain cursor still owes it"
        );
    }

    #[test]
    fn an_old_held_id_gets_the_head_and_a_future_one_is_not_an_acknowledgement() {
        let mut consumer = Consumer::default();
        let current = head(9, 3);
        assert!(consumer.holds(ChangeId(4), Some(&current), Mode::IfNoneMatch, now(), false));
        assert_eq!(consumer.knowledge.acknowledged.unwrap().id, ChangeId(4));
        assert_eq!(consumer.knowledge.sent.unwrap().id, ChangeId(9));

        let mut fresh = Consumer::default();
        assert!(fresh.holds(ChangeId(99), Some(&current), Mode::After, now(), false));
        assert!(fresh.knowledge.acknowledged.is_none());
        assert!(
            !fresh.holds(ChangeId(0), None, Mode::After, now(), false),
            "no head: nothing to say"
        );
    }

    #[test]
    fn modes_round_trip_through_their_names() {
        for mode in [Mode::Poll, Mode::After, Mode::IfNoneMatch, Mode::Stream] {
            assert_eq!(Mode::from_stored(mode.as_str()), Some(mode));
        }
        assert_eq!(Mode::from_stored("carrier-pigeon"), None);
    }
}

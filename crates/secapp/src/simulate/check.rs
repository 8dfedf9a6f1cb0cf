//! The simulator's invariants, as pure bookkeeping: what each consumer was
//! told, in order, against what the producers published.
//!
//! - No consumer is told a head twice, or an older head after a newer one
//!   (ids only grow).
//! - A consumer told a change the simulator published is told the level that
//!   was published.
//! - Every consumer ends on the final head.

use std::collections::HashMap;
use std::fmt;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Told the same change twice.
    Repeated { consumer: String, id: i64 },
    /// Told an older change after a newer one.
    Regressed {
        consumer: String,
        id: i64,
        after: i64,
    },
    /// Told a level other than the one published for that change.
    WrongLevel {
        consumer: String,
        id: i64,
        told: i64,
        published: i64,
    },
    /// Did not end on the final head.
    MissedFinal {
        consumer: String,
        last: Option<i64>,
        head: i64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Repeated { consumer, id } => {
                write!(f, "{consumer} was told change {id} twice")
            }
            Self::Regressed {
                consumer,
                id,
                after,
            } => write!(
                f,
                "{consumer} was told change {id} after the newer change {after}"
            ),
            Self::WrongLevel {
                consumer,
                id,
                told,
                published,
            } => write!(
                f,
                "{consumer} was told level {told} for change {id}, published as level {published}"
            ),
            Self::MissedFinal {
                consumer,
                last,
                head,
            } => match last {
                Some(last) => write!(
                    f,
                    "{consumer} ended on change {last}, not on the final head {head}"
                ),
                None => write!(
                    f,
                    "{consumer} was never told anything; the final head is {head}"
                ),
            },
        }
    }
}

/// What one consumer was told so far.
#[derive(Debug, Clone)]
pub struct Told {
    name: String,
    last: Option<i64>,
}

impl Told {
    /// A consumer told nothing yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            last: None,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The id of the last change it was told.
    pub fn last(&self) -> Option<i64> {
        self.last
    }

    /// It was told change `id`: a violation if that breaks the order. The
    /// newest id stays the reference either way.
    pub fn told(&mut self, id: i64) -> Option<Violation> {
        let violation = match self.last {
            Some(last) if id == last => Some(Violation::Repeated {
                consumer: self.name.clone(),
                id,
            }),
            Some(last) if id < last => Some(Violation::Regressed {
                consumer: self.name.clone(),
                id,
                after: last,
            }),
            _ => None,
        };
        self.last = Some(self.last.map_or(id, |last| last.max(id)));
        violation
    }

    /// At the end: a violation unless it was last told `head` (when there
    /// is one).
    pub fn ends_on(&self, head: Option<i64>) -> Option<Violation> {
        let head = head?;
        (self.last != Some(head)).then(|| Violation::MissedFinal {
            consumer: self.name.clone(),
            last: self.last,
            head,
        })
    }
}

/// The levels the simulator published, by change id.
#[derive(Debug, Default)]
pub struct Published {
    levels: HashMap<i64, i64>,
}

impl Published {
    /// Change `id` was published with `level`.
    pub fn record(&mut self, id: i64, level: i64) {
        self.levels.insert(id, level);
    }

    /// The published level of `id`, if the simulator published it.
    pub fn level(&self, id: i64) -> Option<i64> {
        self.levels.get(&id).copied()
    }

    /// A violation if `consumer` was told `told` for a change published
    /// with another level.
    pub fn check(&self, consumer: &str, id: i64, told: i64) -> Option<Violation> {
        let published = self.level(id)?;
        (published != told).then(|| Violation::WrongLevel {
            consumer: consumer.to_owned(),
            id,
            told,
            published,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Published, Told, Violation};

    #[test]
    fn growing_ids_are_fine_and_gaps_are_allowed() {
        let mut told = Told::new("c");
        assert_eq!(told.told(3), None);
        assert_eq!(told.told(7), None);
        assert_eq!(told.last(), Some(7));
        assert_eq!(told.ends_on(Some(7)), None);
        assert_eq!(told.ends_on(None), None);
    }

    #[test]
    fn a_repeat_and_a_regression_are_violations_and_the_newest_stays() {
        let mut told = Told::new("c");
        told.told(5);
        assert_eq!(
            told.told(5),
            Some(Violation::Repeated {
                consumer: "c".into(),
                id: 5
            })
        );
        assert_eq!(
            told.told(4),
            Some(Violation::Regressed {
                consumer: "c".into(),
                id: 4,
                after: 5
            })
        );
        assert_eq!(told.last(), Some(5));
        let missed = told.ends_on(Some(6)).unwrap();
        assert_eq!(
            missed.to_string(),
            "c ended on change 5, not on the final head 6"
        );
        assert!(
            Told::new("d")
                .ends_on(Some(1))
                .unwrap()
                .to_string()
                .contains("never told")
        );
    }

    #[test]
    fn levels_are_checked_only_for_changes_the_simulator_published() {
        let mut published = Published::default();
        published.record(9, 4);
        assert_eq!(published.check("c", 9, 4), None);
        assert_eq!(published.check("c", 8, 1), None);
        assert_eq!(
            published.check("c", 9, 2).unwrap().to_string(),
            "c was told level 2 for change 9, published as level 4"
        );
    }
}

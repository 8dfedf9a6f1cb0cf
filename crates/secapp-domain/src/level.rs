//! Criticality levels and the range the operator allows.

use std::fmt;

/// A criticality level that has been checked against the configured range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Level(i64);

impl Level {
    /// The level as the integer the wire carries.
    #[must_use]
    pub fn get(self) -> i64 {
        self.0
    }

    /// Rebuilds a level read back from storage, where it was checked when written.
    ///
    /// The range may have been narrowed since; a stored level stays what it was.
    #[must_use]
    pub fn from_stored(raw: i64) -> Self {
        Self(raw)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The inclusive range of levels an operator allows (1..=5 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelRange {
    min: i64,
    max: i64,
}

impl Default for LevelRange {
    fn default() -> Self {
        Self { min: 1, max: 5 }
    }
}

/// Why a level or a range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    /// The level lies outside the configured range.
    #[error("level {level} is outside the allowed range {min}..={max}")]
    OutOfRange {
        /// The level that was offered.
        level: i64,
        /// The lowest allowed level.
        min: i64,
        /// The highest allowed level.
        max: i64,
    },
    /// A range whose minimum exceeds its maximum.
    #[error("the minimum level {min} is greater than the maximum level {max}")]
    EmptyRange {
        /// The configured minimum.
        min: i64,
        /// The configured maximum.
        max: i64,
    },
}

impl LevelRange {
    /// Builds a range.
    ///
    /// # Errors
    /// [`LevelError::EmptyRange`] when `min > max`.
    pub fn new(min: i64, max: i64) -> Result<Self, LevelError> {
        if min > max {
            return Err(LevelError::EmptyRange { min, max });
        }
        Ok(Self { min, max })
    }

    /// The lowest allowed level.
    #[must_use]
    pub fn min(self) -> i64 {
        self.min
    }

    /// The highest allowed level.
    #[must_use]
    pub fn max(self) -> i64 {
        self.max
    }

    /// Checks a raw level against the range.
    ///
    /// # Errors
    /// [`LevelError::OutOfRange`] when `raw` is outside `min..=max`.
    pub fn level(self, raw: i64) -> Result<Level, LevelError> {
        if (self.min..=self.max).contains(&raw) {
            Ok(Level(raw))
        } else {
            Err(LevelError::OutOfRange {
                level: raw,
                min: self.min,
                max: self.max,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_range_is_one_to_five_inclusive() {
        let range = LevelRange::default();
        assert_eq!(range.level(1).map(Level::get), Ok(1));
        assert_eq!(range.level(5).map(Level::get), Ok(5));
        assert!(matches!(range.level(0), Err(LevelError::OutOfRange { .. })));
        assert!(matches!(range.level(6), Err(LevelError::OutOfRange { .. })));
        assert!(range.level(i64::MIN).is_err());
        assert!(range.level(i64::MAX).is_err());
    }

    #[test]
    fn a_custom_range_is_honoured_and_an_empty_one_refused() {
        let range = LevelRange::new(0, 10).unwrap();
        assert!(range.level(0).is_ok());
        assert!(range.level(10).is_ok());
        assert!(range.level(11).is_err());
        assert_eq!(
            LevelRange::new(3, 2),
            Err(LevelError::EmptyRange { min: 3, max: 2 })
        );
        assert!(LevelRange::new(4, 4).is_ok());
    }
}

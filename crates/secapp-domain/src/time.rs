//! `Change_at` timestamps: parsing, UTC normalisation and the future-skew
//! guard; and the range of instants secapp accepts anywhere, [`earliest`] to
//! [`latest`]: what RFC 3339's four-digit years can write and read back.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};

/// The most fractional-second digits kept (nanoseconds).
const MAX_DIGITS: usize = 9;

/// Naive (zone-less) forms accepted and taken as UTC, as ISO 8601 allows:
/// with seconds (and a fraction), or without.
const NAIVE_FORMATS: [&str; 2] = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"];

/// An instant the server reports (when something was received, sent,
/// used...), as the API shows it everywhere: RFC 3339 in UTC with
/// milliseconds, such as `2026-03-01T12:00:00.250Z`. A producer's
/// `Change_at` is not one of these: it is echoed as it was normalised.
#[must_use]
pub fn shown(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The earliest instant secapp accepts or stores: `0000-01-01T00:00:00Z`.
#[must_use]
pub fn earliest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(0, 1, 1)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MIN_UTC, |at| at.and_utc())
}

/// The latest instant secapp accepts or stores:
/// `9999-12-31T23:59:59.999999999Z`. RFC 3339 writes years with four digits,
/// so a later instant could be written but never read back.
#[must_use]
pub fn latest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|day| day.and_hms_nano_opt(23, 59, 59, 999_999_999))
        .map_or(DateTime::<Utc>::MAX_UTC, |at| at.and_utc())
}

/// Whether `at` lies in [`earliest`]`..=`[`latest`]: every instant secapp
/// accepts, from a client or its own configuration, must, so that what it
/// stores can always be read back.
#[must_use]
pub fn in_range(at: DateTime<Utc>) -> bool {
    (earliest()..=latest()).contains(&at)
}

/// When a level changed: an instant in UTC plus how many fractional-second
/// digits the producer gave, so the echo shows fractions only when given.
///
/// Two values are equal when they name the same instant, whatever their
/// precision: `12:05:00Z` and `12:05:00.000Z` tie.
#[derive(Debug, Clone, Copy)]
pub struct ChangedAt {
    at: DateTime<Utc>,
    digits: u8,
}

/// Why a `Change_at` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not a timestamp in any accepted form, or not a real date and time
    /// (February 30th, hour 25, a leap second).
    #[error(
        "`{0}` is not a valid timestamp: use RFC 3339 such as 2026-03-01T12:05:00Z or \
         2026-03-01T15:05:00+03:00, or a naive ISO 8601 time such as 2026-03-01T12:05:00 (taken as UTC)"
    )]
    Invalid(String),
    /// A real timestamp outside the years 0000 to 9999.
    #[error(
        "`{0}` is outside the years 0000 to 9999: secapp stores timestamps as RFC 3339, \
         which writes years with four digits"
    )]
    OutOfRange(String),
    /// Later than the server's clock allows.
    #[error(
        "`{at}` is {ahead_s} s ahead of the server's clock; at most {allowed_s} s is allowed. \
         Check the publishing host's clock"
    )]
    InFuture {
        /// The refused timestamp, normalised.
        at: String,
        /// How far ahead of the server's clock it is, in whole seconds.
        ahead_s: i64,
        /// The configured allowance, in whole seconds.
        allowed_s: u64,
    },
}

impl ChangedAt {
    /// Parses RFC 3339 (`Z` or an offset) or a naive ISO 8601 time taken as
    /// UTC. The text must have exactly the form [`Shape`] reads (the pattern
    /// the API documents); then it must name a real instant.
    ///
    /// # Errors
    /// [`TimestampError::Invalid`] when the text is not a real timestamp,
    /// [`TimestampError::OutOfRange`] when it lies outside the years 0000 to
    /// 9999 in UTC.
    pub fn parse(raw: &str) -> Result<Self, TimestampError> {
        let invalid = || TimestampError::Invalid(shorten(raw));
        let shape = Shape::of(raw).ok_or_else(invalid)?;
        let at = if shape.zoned {
            DateTime::parse_from_rfc3339(raw)
                .map_err(|_| invalid())?
                .with_timezone(&Utc)
        } else {
            // The date and time as one naive form: `T` between them.
            let text = format!("{}T{}", &raw[..10], &raw[11..]);
            NAIVE_FORMATS
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(&text, format).ok())
                .ok_or_else(invalid)?
                .and_utc()
        };
        // chrono represents a leap second as nanoseconds past 1e9; no clock a
        // producer should trust emits one, and it cannot be echoed faithfully.
        if at.nanosecond() >= 1_000_000_000 {
            return Err(invalid());
        }
        // A naive form takes signed and five-digit years, which RFC 3339
        // cannot write back.
        if !in_range(at) {
            return Err(TimestampError::OutOfRange(shorten(raw)));
        }
        Ok(Self {
            at,
            digits: shape.digits,
        })
    }

    /// A timestamp for an instant the server observed itself (e.g. receipt time),
    /// kept to the microsecond.
    #[must_use]
    pub fn from_instant(at: DateTime<Utc>) -> Self {
        let micros = at.timestamp_subsec_micros();
        let at = at.with_nanosecond(micros * 1_000).unwrap_or(at);
        Self { at, digits: 6 }
    }

    /// The instant in UTC.
    #[must_use]
    pub fn instant(&self) -> DateTime<Utc> {
        self.at
    }

    /// Refuses a timestamp more than `allowed` ahead of `now`: one producer with
    /// a broken clock must not pin the state for the future.
    ///
    /// # Errors
    /// [`TimestampError::InFuture`] when `self > now + allowed`.
    pub fn not_after(self, now: DateTime<Utc>, allowed: Duration) -> Result<Self, TimestampError> {
        let ahead = self.at.signed_duration_since(now);
        let allowed_delta = chrono::TimeDelta::from_std(allowed).unwrap_or(chrono::TimeDelta::MAX);
        if ahead > allowed_delta {
            return Err(TimestampError::InFuture {
                at: self.to_string(),
                ahead_s: ahead.num_seconds(),
                allowed_s: allowed.as_secs(),
            });
        }
        Ok(self)
    }
}

impl PartialEq for ChangedAt {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for ChangedAt {}

impl PartialOrd for ChangedAt {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ChangedAt {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

/// The normalised form: `YYYY-MM-DDTHH:MM:SS[.f…]Z`, with as many fractional
/// digits as were given.
///
/// Written field by field rather than through a format string: this runs for
/// every poll answer and stream event.
impl fmt::Display for ChangedAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            at.year(),
            at.month(),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        )?;
        if self.digits > 0 {
            // Keep the first `digits` of the nine nanosecond digits.
            let scale = 10_u32.pow(9 - u32::from(self.digits));
            write!(
                f,
                ".{:0width$}",
                at.nanosecond() / scale,
                width = usize::from(self.digits)
            )?;
        }
        f.write_char('Z')
    }
}

/// The form of an accepted `Change_at`, read without a parser generator:
/// `YYYY-MM-DD`, then `T`, `t` or a space, then `hh:mm`; optionally `:ss`,
/// then optionally `.` and 1 to 9 digits, then optionally `Z`, `z` or
/// `+hh:mm`/`-hh:mm`. Exactly what
/// `secapp_server::routes::openapi::patterns::CHANGE_AT` states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    /// Whether a zone (`Z` or an offset) is given.
    zoned: bool,
    /// Fractional-second digits given.
    digits: u8,
}

impl Shape {
    fn of(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let digits_at = |positions: &[usize]| {
            positions
                .iter()
                .all(|&i| b.get(i).is_some_and(u8::is_ascii_digit))
        };
        let date_and_minutes = digits_at(&[0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15])
            && b.get(4) == Some(&b'-')
            && b.get(7) == Some(&b'-')
            && matches!(b.get(10), Some(b'T' | b't' | b' '))
            && b.get(13) == Some(&b':');
        if !date_and_minutes {
            return None;
        }
        if b.len() == 16 {
            return Some(Self {
                zoned: false,
                digits: 0,
            });
        }
        if b.get(16) != Some(&b':') || !digits_at(&[17, 18]) {
            return None;
        }
        let mut rest = &b[19..];
        let mut digits = 0;
        if let Some(after_dot) = rest.strip_prefix(b".") {
            let count = after_dot.iter().take_while(|c| c.is_ascii_digit()).count();
            if !(1..=MAX_DIGITS).contains(&count) {
                return None;
            }
            digits = u8::try_from(count).ok()?;
            rest = &after_dot[count..];
        }
        let zoned = match rest {
            [] => false,
            [b'Z' | b'z'] => true,
            [b'+' | b'-', h1, h2, b':', m1, m2] => {
                if ![h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                true
            }
            _ => return None,
        };
        Some(Self { zoned, digits })
    }
}

/// Keeps an echoed bad value short enough for an error message.
fn shorten(raw: &str) -> String {
    const MAX: usize = 64;
    if raw.chars().count() <= MAX {
        raw.to_owned()
    } else {
        let mut short: String = raw.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> String {
        ChangedAt::parse(raw).unwrap().to_string()
    }

    #[test]
    fn offsets_are_normalised_to_utc_with_z() {
        assert_eq!(norm("2026-03-01T15:05:00+03:00"), "2026-03-01T12:05:00Z");
        assert_eq!(norm("2026-03-01T12:05:00Z"), "2026-03-01T12:05:00Z");
        assert_eq!(norm("2026-03-01T00:30:00-01:00"), "2026-03-01T01:30:00Z");
        assert_eq!(norm("2026-03-01T00:30:00+05:30"), "2026-02-28T19:00:00Z");
        assert_eq!(norm("2026-03-01t12:05:00z"), "2026-03-01T12:05:00Z");
    }

    #[test]
    fn a_naive_time_is_taken_as_utc() {
        assert_eq!(norm("2026-03-01T12:05:00"), "2026-03-01T12:05:00Z");
        assert_eq!(norm("2026-03-01 12:05:00"), "2026-03-01T12:05:00Z");
        assert_eq!(norm("2026-03-01T12:05"), "2026-03-01T12:05:00Z");
    }

    #[test]
    fn fractional_seconds_are_echoed_only_when_given() {
        assert_eq!(norm("2026-03-01T12:05:00.5Z"), "2026-03-01T12:05:00.5Z");
        assert_eq!(norm("2026-03-01T12:05:00.120Z"), "2026-03-01T12:05:00.120Z");
        assert_eq!(
            norm("2026-03-01T12:05:00.123456789+01:00"),
            "2026-03-01T11:05:00.123456789Z"
        );
        assert_eq!(norm("2026-03-01T12:05:00.250"), "2026-03-01T12:05:00.250Z");
    }

    #[test]
    fn equal_instants_are_equal_whatever_their_precision_or_zone() {
        let a = ChangedAt::parse("2026-03-01T12:05:00Z").unwrap();
        let b = ChangedAt::parse("2026-03-01T12:05:00.000Z").unwrap();
        let c = ChangedAt::parse("2026-03-01T14:05:00+02:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        let later = ChangedAt::parse("2026-03-01T12:05:00.001Z").unwrap();
        assert!(later > a);
    }

    #[test]
    fn bad_and_impossible_timestamps_are_refused() {
        for bad in [
            "",
            "yesterday",
            "2026-02-30T12:00:00Z",
            "2026-13-01T12:00:00Z",
            "2026-03-01T25:00:00Z",
            "2026-03-01T12:60:00Z",
            "2026-06-30T23:59:60Z",
            "2026-03-01T12:05:00+25:00",
            "2026-03-01",
            "1772366700",
            "2026-03-01T12:05:00Zjunk",
        ] {
            assert!(
                matches!(ChangedAt::parse(bad), Err(TimestampError::Invalid(_))),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn years_outside_0000_to_9999_are_refused() {
        // Signed and five-digit years could not be written back as RFC 3339:
        // a head stored so would stop the next start.
        for raw in [
            "-0001-01-01T00:00:00",
            "+10000-01-01T00:00:00",
            "-0001-12-31 23:59",
        ] {
            assert!(
                matches!(ChangedAt::parse(raw), Err(TimestampError::Invalid(_))),
                "{raw:?} should be refused"
            );
        }
        // An offset can carry a four-digit year beyond either end in UTC.
        for raw in ["0000-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"] {
            assert!(
                matches!(ChangedAt::parse(raw), Err(TimestampError::OutOfRange(_))),
                "{raw:?} should be refused"
            );
        }
        assert_eq!(norm("0000-01-01T00:00:00Z"), "0000-01-01T00:00:00Z");
        assert_eq!(
            norm("9999-12-31T23:59:59.999999999Z"),
            "9999-12-31T23:59:59.999999999Z"
        );
    }

    #[test]
    fn only_the_documented_forms_are_read() {
        assert_eq!(norm("2026-03-01 12:05:00+01:00"), "2026-03-01T11:05:00Z");
        assert_eq!(norm("2026-03-01t12:05"), "2026-03-01T12:05:00Z");
        for bad in [
            " 2026-03-01T12:05:00Z",
            "2026-03-01T12:05:00Z ",
            "2026-3-01T12:05:00",
            "2026-03-01T12:5",
            "2026-03-01T12:05Z",
            "2026-03-01T12:05:00.Z",
            "2026-03-01T12:05:00.1234567891Z",
            "2026-03-01T12:05:00+0100",
            "2026-03-01T12:05:00+01",
        ] {
            assert!(ChangedAt::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    proptest::proptest! {
        /// Whatever text is accepted is in range and echoes as text that
        /// reads back as the same instant with the same digits: what the
        /// store writes for a head, it can read.
        #[test]
        fn every_accepted_time_echoes_as_text_that_reads_back_equal(
            raw in r"[+-]?[0-9]{1,6}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9](:[0-6][0-9](\.[0-9]{1,12})?)?(Z|[+-][0-2][0-9]:[0-5][0-9])?"
        ) {
            if let Ok(at) = ChangedAt::parse(&raw) {
                proptest::prop_assert!(in_range(at.instant()));
                let echoed = at.to_string();
                let again = ChangedAt::parse(&echoed).unwrap();
                proptest::prop_assert_eq!(again, at);
                proptest::prop_assert_eq!(again.to_string(), echoed);
            }
        }

        #[test]
        fn no_text_at_all_makes_parsing_panic(raw in ".{0,64}") {
            let _ = ChangedAt::parse(&raw);
        }
    }

    #[test]
    fn the_range_ends_are_the_four_digit_years() {
        assert_eq!(earliest().to_rfc3339(), "0000-01-01T00:00:00+00:00");
        assert_eq!(latest().to_rfc3339(), "9999-12-31T23:59:59.999999999+00:00");
        assert!(in_range(earliest()) && in_range(latest()));
        assert!(!in_range(earliest() - chrono::TimeDelta::nanoseconds(1)));
        assert!(!in_range(latest() + chrono::TimeDelta::nanoseconds(1)));
    }

    #[test]
    fn a_long_bad_value_is_shortened_in_the_error() {
        let err = ChangedAt::parse(&"x".repeat(10_000)).unwrap_err();
        assert!(err.to_string().len() < 400);
    }

    #[test]
    fn the_future_guard_allows_the_skew_and_no_more() {
        let now = ChangedAt::parse("2026-03-01T12:00:00Z").unwrap().instant();
        let skew = Duration::from_secs(300);
        let edge = ChangedAt::parse("2026-03-01T12:05:00Z").unwrap();
        assert!(edge.not_after(now, skew).is_ok());
        let past = ChangedAt::parse("2020-01-01T00:00:00Z").unwrap();
        assert!(past.not_after(now, skew).is_ok());
        let beyond = ChangedAt::parse("2026-03-01T12:05:00.001Z").unwrap();
        assert!(matches!(
            beyond.not_after(now, skew),
            Err(TimestampError::InFuture { allowed_s: 300, .. })
        ));
    }

    #[test]
    fn server_instants_keep_microseconds() {
        let at = ChangedAt::parse("2026-03-01T12:00:00.123456789Z")
            .unwrap()
            .instant();
        assert_eq!(
            ChangedAt::from_instant(at).to_string(),
            "2026-03-01T12:00:00.123456Z"
        );
    }
}

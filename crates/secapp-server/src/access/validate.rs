//! The fields of admin requests, checked before anything is stored and
//! turned into the specs the admin operations take ([`AppSpec`],
//! [`AppChanges`], [`TokenSpec`]): roles, free text, and token expiries,
//! which must lie within what the store can write and read back (up to
//! 9999-12-31).
//!
//! The rules here are exactly those the OpenAPI document states (lengths,
//! patterns, the expiry grammar), so a client generated from it never sends
//! what is refused, and what it would refuse is refused here.

use chrono::{DateTime, TimeDelta, Utc};
use secapp_api::admin::{AppPatch, NewApp, NewToken};
use secapp_domain::{AppName, Roles};

use super::AccessError;

/// Longest description or owner, in characters.
const MAX_TEXT: usize = 512;
/// Longest token label, in characters.
const MAX_LABEL: usize = 128;

/// The units of `expires_in`, with the most digits each takes: every
/// lifetime they can write ends before the year 9999 from any time this
/// century, so a lifetime is refused for its form, not its size.
const LIFETIME_UNITS: [(char, usize, i64); 4] = [
    ('d', 6, 24 * 60 * 60),
    ('h', 7, 60 * 60),
    ('m', 9, 60),
    ('s', 10, 1),
];

/// An application to register, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// Its name.
    pub name: AppName,
    /// At least one role.
    pub roles: Roles,
    /// What it is.
    pub description: Option<String>,
    /// Who runs it.
    pub owner: Option<String>,
}

/// Changes to an application, checked; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppChanges {
    /// The new roles (at least one).
    pub roles: Option<Roles>,
    /// The new description; `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// The new owner; `Some(None)` clears it.
    pub owner: Option<Option<String>>,
    /// Disable (`true`) or enable (`false`).
    pub disabled: Option<bool>,
    /// Its own stale-consumer allowance; `Some(None)` returns it to the
    /// server's `--stale-after`.
    pub stale_after: Option<Option<std::time::Duration>>,
}

impl AppChanges {
    /// Whether it changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A token to issue, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSpec {
    /// A note, such as where it is deployed.
    pub label: Option<String>,
    /// When it stops working, if ever: in the future, before year 10000.
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /admin/apps`, checked.
///
/// # Errors
/// [`AccessError::Invalid`] naming the field.
pub fn new_app(new: NewApp) -> Result<AppSpec, AccessError> {
    Ok(AppSpec {
        name: AppName::parse(&new.name).map_err(|e| AccessError::Invalid(format!("name: {e}")))?,
        roles: roles(&new.roles)?,
        description: text("description", new.description, MAX_TEXT)?,
        owner: text("owner", new.owner, MAX_TEXT)?,
    })
}

/// `PATCH /admin/apps/{name}`, checked.
///
/// # Errors
/// [`AccessError::Invalid`] naming the field.
pub fn app_patch(patch: AppPatch) -> Result<AppChanges, AccessError> {
    Ok(AppChanges {
        roles: patch.roles.as_deref().map(roles).transpose()?,
        description: patch
            .description
            .map(|value| text("description", Some(value), MAX_TEXT))
            .transpose()?,
        owner: patch
            .owner
            .map(|value| text("owner", Some(value), MAX_TEXT))
            .transpose()?,
        disabled: patch.disabled,
        stale_after: patch.stale_after.as_deref().map(stale_after).transpose()?,
    })
}

/// `stale_after`: a span as `expires_in` writes it (`5m`, `2h`, `1d`);
/// `""` means the server's default. The longest (999999d) is as good as
/// never stale.
///
/// # Errors
/// [`AccessError::Invalid`] naming the field.
pub fn stale_after(raw: &str) -> Result<Option<std::time::Duration>, AccessError> {
    if raw.is_empty() {
        return Ok(None);
    }
    parse_span("stale_after", raw)?
        .to_std()
        .map(Some)
        .map_err(|_| AccessError::Invalid("stale_after must be positive".to_owned()))
}

/// `POST /admin/apps/{name}/tokens` at `now`, checked.
///
/// # Errors
/// [`AccessError::Invalid`] naming the field.
pub fn new_token(new: NewToken, now: DateTime<Utc>) -> Result<TokenSpec, AccessError> {
    Ok(TokenSpec {
        expires_at: expiry(&new, now)?,
        label: text("label", new.label, MAX_LABEL)?,
    })
}

/// A set of at least one role.
///
/// # Errors
/// [`AccessError::Invalid`] for an unknown role or an empty set.
fn roles(names: &[String]) -> Result<Roles, AccessError> {
    let roles = Roles::parse(names.iter().map(String::as_str))
        .map_err(|e| AccessError::Invalid(format!("roles: {e}")))?;
    if roles.is_empty() {
        return Err(AccessError::Invalid(
            "roles: give at least one of publish, consume, viewer and admin".to_owned(),
        ));
    }
    Ok(roles)
}

/// A free-text field, kept as sent: `""` means none; at most `max`
/// characters; no control characters (they would garble logs and
/// terminals).
///
/// # Errors
/// [`AccessError::Invalid`] naming the field.
pub fn text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, AccessError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.chars().count() > max {
        return Err(AccessError::Invalid(format!(
            "{field}: at most {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(AccessError::Invalid(format!(
            "{field}: control characters are not allowed"
        )));
    }
    Ok((!value.is_empty()).then_some(value))
}

/// When a token to issue at `now` expires: never, after `expires_in`, or at
/// `expires_at`.
///
/// # Errors
/// [`AccessError::Invalid`] when both are sent, one cannot be read, or the
/// expiry is not in the future or lies beyond 9999-12-31T23:59:59Z.
pub fn expiry(new: &NewToken, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, AccessError> {
    let at = match (&new.expires_in, &new.expires_at) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(AccessError::Invalid(
                "send expires_in or expires_at, not both".to_owned(),
            ));
        }
        (Some(lifetime), None) => now
            .checked_add_signed(parse_span("expires_in", lifetime)?)
            .ok_or_else(|| {
                AccessError::Invalid(
                    "the expiry must be no later than 9999-12-31T23:59:59Z".to_owned(),
                )
            })?,
        (None, Some(at)) => DateTime::parse_from_rfc3339(at)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| {
                AccessError::Invalid(format!(
                    "expires_at must be an RFC 3339 time such as 2027-01-01T00:00:00Z, got `{}`",
                    shorten(at)
                ))
            })?,
    };
    if at <= now {
        return Err(AccessError::Invalid(
            "the expiry must be in the future".to_owned(),
        ));
    }
    if !secapp_domain::in_range(at) {
        return Err(AccessError::Invalid(
            "the expiry must be no later than 9999-12-31T23:59:59Z".to_owned(),
        ));
    }
    Ok(Some(at))
}

/// A span such as `expires_in`: a positive whole number and one unit, such
/// as `90d`, `12h`, `30m` or `45s`, with at most 6, 7, 9 or 10 digits.
fn parse_span(field: &str, raw: &str) -> Result<TimeDelta, AccessError> {
    let refused = || {
        AccessError::Invalid(format!(
            "{field} must be a whole number and a unit, such as 90d, 12h, 30m or 45s \
             (at most 999999d, 9999999h, 999999999m or 9999999999s), got `{}`",
            shorten(raw)
        ))
    };
    let unit = raw.chars().last().ok_or_else(refused)?;
    let (_, max_digits, seconds) = LIFETIME_UNITS
        .iter()
        .find(|(name, _, _)| *name == unit)
        .ok_or_else(refused)?;
    let digits = &raw[..raw.len() - unit.len_utf8()];
    let well_formed = (1..=*max_digits).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if !well_formed {
        return Err(refused());
    }
    let count: i64 = digits.parse().map_err(|_| refused())?;
    count
        .checked_mul(*seconds)
        .and_then(TimeDelta::try_seconds)
        .ok_or_else(refused)
}

fn shorten(raw: &str) -> String {
    raw.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn lifetime(raw: &str) -> Result<Option<DateTime<Utc>>, AccessError> {
        expiry(
            &NewToken {
                expires_in: Some(raw.into()),
                ..NewToken::default()
            },
            now(),
        )
    }

    fn until(raw: &str) -> Result<Option<DateTime<Utc>>, AccessError> {
        expiry(
            &NewToken {
                expires_at: Some(raw.into()),
                ..NewToken::default()
            },
            now(),
        )
    }

    #[test]
    fn lifetimes_are_a_number_and_one_unit() {
        assert_eq!(lifetime("90d").unwrap(), Some(now() + TimeDelta::days(90)));
        assert_eq!(lifetime("12h").unwrap(), Some(now() + TimeDelta::hours(12)));
        assert_eq!(
            lifetime("30m").unwrap(),
            Some(now() + TimeDelta::minutes(30))
        );
        assert_eq!(
            lifetime("45s").unwrap(),
            Some(now() + TimeDelta::seconds(45))
        );
        for bad in [
            "", "d", "0d", "07d", "1.5d", "-1d", "1w", "1h30m", " 1d", "1d ", "90 days", "١d",
        ] {
            assert!(lifetime(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_longest_lifetimes_stay_within_the_years_secapp_stores() {
        for longest in ["999999d", "9999999h", "999999999m", "9999999999s"] {
            assert!(lifetime(longest).is_ok(), "{longest}");
        }
        // The lifetime that used to be written as an unreadable year.
        let err = lifetime("3000000d").unwrap_err().to_string();
        assert!(err.contains("at most 999999d"), "{err}");
        for too_many_digits in ["1000000d", "10000000h", "1000000000m", "10000000000s"] {
            assert!(lifetime(too_many_digits).is_err(), "{too_many_digits}");
        }
    }

    #[test]
    fn an_expiry_time_must_be_ahead_and_storable() {
        assert!(until("2027-01-01T00:00:00Z").unwrap().is_some());
        assert!(until("9999-12-31T23:59:59Z").unwrap().is_some());
        // Within year 9999 as written, in year 10000 in UTC.
        let err = until("9999-12-31T23:00:00-05:00").unwrap_err().to_string();
        assert!(err.contains("9999-12-31"), "{err}");
        assert!(until("2026-11-29T11:59:59Z").is_err());
        assert!(until(" 2027-01-01T00:00:00Z").is_err());
    }

    proptest::proptest! {
        /// Every expiry accepted, from any lifetime or time text, is one the
        /// store can write and read back.
        #[test]
        fn every_accepted_expiry_is_storable(
            lifetime_text in r"[0-9]{1,12}[a-z]",
            time_text in r"[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-][0-2][0-9]:[0-5][0-9])",
        ) {
            if let Ok(Some(at)) = lifetime(&lifetime_text) {
                proptest::prop_assert!(secapp_domain::in_range(at) && at > now());
            }
            if let Ok(Some(at)) = until(&time_text) {
                proptest::prop_assert!(secapp_domain::in_range(at) && at > now());
            }
        }
    }

    #[test]
    fn a_stale_allowance_is_a_span_or_empty_for_the_default() {
        assert_eq!(
            stale_after("5m").unwrap(),
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(stale_after("").unwrap(), None);
        assert!(stale_after("999999d").is_ok());
        for bad in ["0m", "1000000d", "5 m", "1w", "-5m", "5"] {
            let err = stale_after(bad).unwrap_err().to_string();
            assert!(err.contains("stale_after"), "{bad}: {err}");
        }
    }

    #[test]
    fn text_is_kept_as_sent_and_bounded() {
        assert_eq!(
            text("owner", Some("  ops ".into()), 512)
                .unwrap()
                .as_deref(),
            Some("  ops ")
        );
        assert_eq!(text("owner", Some(String::new()), 512).unwrap(), None);
        assert!(text("owner", Some("é".repeat(512)), 512).is_ok());
        assert!(text("owner", Some("é".repeat(513)), 512).is_err());
        assert!(text("owner", Some("a\u{85}b".into()), 512).is_err());
        assert!(text("owner", Some("a\tb".into()), 512).is_err());
    }
}

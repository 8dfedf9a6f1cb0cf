//! The readers of query parameters and header values a consumer sends back:
//! cursors (`after`, `If-None-Match`, `Last-Event-ID`) and waits. Each takes
//! untrusted text and answers a value or the refusal that names it, and
//! accepts exactly what the OpenAPI document states
//! ([`patterns`](crate::routes::openapi::patterns)).

use std::time::Duration;

use secapp_domain::ChangeId;

use crate::error::ApiError;

/// A `status_change_id` as a client sends it back: 1 to 18 decimal digits
/// (ids count publishes; 18 digits outlast any deployment).
#[must_use]
pub fn parse_id(raw: &str) -> Option<ChangeId> {
    let digits = (1..=18).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| raw.parse().ok().map(ChangeId)).flatten()
}

/// `?after=<status_change_id>`.
///
/// # Errors
/// [`ApiError::InvalidAfter`] naming the value.
pub fn parse_after(raw: &str) -> Result<ChangeId, ApiError> {
    parse_id(raw).ok_or_else(|| ApiError::InvalidAfter(shorten(raw)))
}

/// What an `If-None-Match` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    /// Nothing: the header was empty.
    None,
    /// `*`: any current state.
    Any,
    /// These ids.
    Ids(Vec<ChangeId>),
}

/// `If-None-Match`, from every line it was sent on: `"17"`, `W/"17"`,
/// `"16", "17"` or `*`; an empty line holds nothing.
///
/// # Errors
/// [`ApiError::InvalidIfNoneMatch`] when one tag is not an ETag this server
/// gives.
pub fn parse_if_none_match<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Tags, ApiError> {
    let mut ids = Vec::new();
    let mut any = false;
    for raw in values {
        let text = std::str::from_utf8(raw).map_err(|_| ApiError::InvalidIfNoneMatch)?;
        if text.is_empty() {
            continue;
        }
        if text == "*" {
            any = true;
            continue;
        }
        // Spaces and tabs may stand around commas, not at either end.
        if text.starts_with([' ', '\t']) || text.ends_with([' ', '\t']) {
            return Err(ApiError::InvalidIfNoneMatch);
        }
        for tag in text.split(',') {
            let tag = tag.trim_matches([' ', '\t']);
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            let id = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .and_then(parse_id)
                .ok_or(ApiError::InvalidIfNoneMatch)?;
            ids.push(id);
        }
    }
    Ok(if any {
        Tags::Any
    } else if ids.is_empty() {
        Tags::None
    } else {
        Tags::Ids(ids)
    })
}

/// `Last-Event-ID`, when sent; an empty value is as none.
///
/// # Errors
/// [`ApiError::InvalidLastEventId`].
pub fn parse_last_event_id(raw: Option<&[u8]>) -> Result<Option<ChangeId>, ApiError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let text = std::str::from_utf8(raw).map_err(|_| ApiError::InvalidLastEventId)?;
    if text.is_empty() {
        return Ok(None);
    }
    parse_id(text).map(Some).ok_or(ApiError::InvalidLastEventId)
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters.
///
/// # Errors
/// [`ApiError::InvalidIdempotencyKey`].
pub fn parse_idempotency_key(raw: &[u8]) -> Result<String, ApiError> {
    let valid = (1..=255).contains(&raw.len()) && raw.iter().all(u8::is_ascii_graphic);
    if !valid {
        return Err(ApiError::InvalidIdempotencyKey);
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

/// `?wait=<seconds>`, possibly fractional, cut to `max`.
///
/// # Errors
/// [`ApiError::InvalidWait`] naming the value.
pub fn parse_wait(raw: &str, max: Duration) -> Result<Duration, ApiError> {
    let seconds: f64 = raw
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| ApiError::InvalidWait(shorten(raw)))?;
    Ok(Duration::from_secs_f64(seconds.min(max.as_secs_f64())))
}

fn shorten(raw: &str) -> String {
    raw.chars().take(40).collect()
}

/// Entries per page of a paged list when `limit` is not given.
const DEFAULT_LIMIT: u32 = 100;
/// The most entries one page holds.
const MAX_LIMIT: u32 = 1000;

/// A page size: 1 to 1000, 100 when not given.
pub fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::InvalidQuery("limit must be an integer from 1 to 1000".to_owned())
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inm(values: &[&[u8]]) -> Result<Tags, ApiError> {
        parse_if_none_match(values.iter().copied())
    }

    fn ids(ids: &[i64]) -> Tags {
        Tags::Ids(ids.iter().copied().map(ChangeId).collect())
    }

    #[test]
    fn if_none_match_accepts_strong_weak_lists_and_star() {
        assert_eq!(inm(&[b"\"17\""]).unwrap(), ids(&[17]));
        assert_eq!(inm(&[b"W/\"17\""]).unwrap(), ids(&[17]));
        assert_eq!(inm(&[b"\"16\",\tW/\"17\""]).unwrap(), ids(&[16, 17]));
        assert_eq!(inm(&[b"*"]).unwrap(), Tags::Any);
        assert_eq!(inm(&[b""]).unwrap(), Tags::None);
        for bad in [
            &b" "[..],
            b"\"0\"\t",
            b" \"0\"",
            b"17",
            b"\"x\"",
            b"\"-1\"",
            b"\"17",
            b"\"1\",",
            b"\xff",
        ] {
            assert!(inm(&[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn if_none_match_sent_on_several_lines_is_one_list() {
        assert_eq!(inm(&[b"\"3\"", b"\"4\", \"5\""]).unwrap(), ids(&[3, 4, 5]));
        assert_eq!(inm(&[b"\"3\"", b"*"]).unwrap(), Tags::Any);
        assert!(inm(&[b"\"3\"", b"x"]).is_err());
    }

    #[test]
    fn wait_is_seconds_cut_to_the_maximum() {
        let max = Duration::from_secs(55);
        assert_eq!(parse_wait("30", max).unwrap(), Duration::from_secs(30));
        assert_eq!(parse_wait("0.25", max).unwrap(), Duration::from_millis(250));
        assert_eq!(parse_wait("1e9", max).unwrap(), max);
        for bad in ["", "-1", " 1", "NaN", "inf", "soon"] {
            assert!(parse_wait(bad, max).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn last_event_id_is_an_id_or_nothing() {
        assert_eq!(parse_last_event_id(None).unwrap(), None);
        assert_eq!(parse_last_event_id(Some(b"")).unwrap(), None);
        assert_eq!(
            parse_last_event_id(Some(b"17")).unwrap(),
            Some(ChangeId(17))
        );
        for bad in [
            &b"-1"[..],
            b" ",
            b" 1",
            b"x",
            b"\xff",
            b"1234567890123456789",
        ] {
            assert!(parse_last_event_id(Some(bad)).is_err(), "{bad:?}");
        }
    }
}

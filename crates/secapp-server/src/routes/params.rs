//! The readers of query parameters and header values a consumer sends back:
//! cursors (`after`, `If-None-Match`, `Last-Event-ID`) and waits. Each takes
//! untrusted text and answers a value or the refusal that names it.

use std::time::Duration;

use secapp_domain::ChangeId;

use crate::error::ApiError;

/// A `status_change_id` as a client sends it back: a non-negative integer.
#[must_use]
pub fn parse_id(raw: &str) -> Option<ChangeId> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .map(ChangeId)
}

/// `?after=<status_change_id>`.
///
/// # Errors
/// [`ApiError::InvalidAfter`] naming the value.
pub fn parse_after(raw: &str) -> Result<ChangeId, ApiError> {
    parse_id(raw).ok_or_else(|| ApiError::InvalidAfter(shorten(raw)))
}

/// `If-None-Match`, from every line it was sent on: `"17"`, `W/"17"`,
/// `"16", "17"` or `*`. `None` for `*` (any current state).
///
/// # Errors
/// [`ApiError::InvalidIfNoneMatch`] when one tag is not an ETag this server
/// gives.
pub fn parse_if_none_match<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<Vec<ChangeId>>, ApiError> {
    let mut ids = Vec::new();
    let mut any = false;
    for raw in values {
        let text = std::str::from_utf8(raw).map_err(|_| ApiError::InvalidIfNoneMatch)?;
        if text.trim() == "*" {
            any = true;
            continue;
        }
        for tag in text.split(',') {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            let id = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .and_then(parse_id)
                .ok_or(ApiError::InvalidIfNoneMatch)?;
            ids.push(id);
        }
    }
    Ok((!any).then_some(ids))
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
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse_id(text).map(Some).ok_or(ApiError::InvalidLastEventId)
}

/// `?wait=<seconds>`, possibly fractional, cut to `max`.
///
/// # Errors
/// [`ApiError::InvalidWait`] naming the value.
pub fn parse_wait(raw: &str, max: Duration) -> Result<Duration, ApiError> {
    let seconds: f64 = raw
        .trim()
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| ApiError::InvalidWait(shorten(raw)))?;
    Ok(Duration::from_secs_f64(seconds.min(max.as_secs_f64())))
}

fn shorten(raw: &str) -> String {
    raw.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inm(values: &[&[u8]]) -> Result<Option<Vec<ChangeId>>, ApiError> {
        parse_if_none_match(values.iter().copied())
    }

    #[test]
    fn if_none_match_accepts_strong_weak_lists_and_star() {
        assert_eq!(inm(&[b"\"17\""]).unwrap(), Some(vec![ChangeId(17)]));
        assert_eq!(inm(&[b"W/\"17\""]).unwrap(), Some(vec![ChangeId(17)]));
        assert_eq!(
            inm(&[b"\"16\", W/\"17\""]).unwrap(),
            Some(vec![ChangeId(16), ChangeId(17)])
        );
        assert_eq!(inm(&[b" * "]).unwrap(), None);
        for bad in [
            &b""[..],
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
        assert_eq!(
            inm(&[b"\"3\"", b"\"4\", \"5\""]).unwrap(),
            Some(vec![ChangeId(3), ChangeId(4), ChangeId(5)])
        );
        assert_eq!(inm(&[b"\"3\"", b"*"]).unwrap(), None);
        assert!(inm(&[b"\"3\"", b"x"]).is_err());
    }

    #[test]
    fn wait_is_seconds_cut_to_the_maximum() {
        let max = Duration::from_secs(55);
        assert_eq!(parse_wait("30", max).unwrap(), Duration::from_secs(30));
        assert_eq!(parse_wait("0.25", max).unwrap(), Duration::from_millis(250));
        assert_eq!(parse_wait("1e9", max).unwrap(), max);
        for bad in ["", "-1", "NaN", "inf", "soon"] {
            assert!(parse_wait(bad, max).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn last_event_id_is_an_id_or_nothing() {
        assert_eq!(parse_last_event_id(None).unwrap(), None);
        assert_eq!(parse_last_event_id(Some(b" ")).unwrap(), None);
        assert_eq!(
            parse_last_event_id(Some(b"17")).unwrap(),
            Some(ChangeId(17))
        );
        for bad in [&b"-1"[..], b"x", b"\xff"] {
            assert!(parse_last_event_id(Some(bad)).is_err(), "{bad:?}");
        }
    }
}

//! The header names the server reads and writes that `http` does not name,
//! parsed once. A `&str` name is parsed and checked on every lookup or
//! insert; a [`HeaderName`] constant is only hashed, which a poll — three
//! lookups and three inserts of such names — notices.

use axum::http::HeaderName;

/// A header a request may carry: its parsed name and its spelling in the
/// contract, which refusals quote.
#[derive(Debug)]
pub struct Known {
    /// The parsed, lower-case name.
    pub name: HeaderName,
    /// As the contract and the documentation spell it.
    pub spelt: &'static str,
}

impl Known {
    const fn new(lower: &'static str, spelt: &'static str) -> Self {
        Self {
            name: HeaderName::from_static(lower),
            spelt,
        }
    }
}

/// `App-name`: who is polling or publishing.
pub static APP_NAME: Known = Known::new("app-name", secapp_api::APP_NAME_HEADER);
/// `Token`: the prototype's credential header.
pub static TOKEN: Known = Known::new("token", secapp_api::TOKEN_HEADER);
/// `Authorization`: `Bearer <token>`.
pub static AUTHORIZATION: Known = Known::new("authorization", "Authorization");
/// `Idempotency-Key`: a publish retried under the same key is one publish.
pub static IDEMPOTENCY_KEY: Known =
    Known::new("idempotency-key", secapp_api::IDEMPOTENCY_KEY_HEADER);
/// `Last-Event-ID`: where a reconnecting stream resumes.
pub static LAST_EVENT_ID: Known = Known::new("last-event-id", "Last-Event-ID");
/// `traceparent`: the W3C trace a request continues.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// `Secapp-Poll-After`: seconds until the next poll.
pub static POLL_AFTER: HeaderName = HeaderName::from_static("secapp-poll-after");
/// `Secapp-State-Age`: seconds since the current state's `Change_at`.
pub static STATE_AGE: HeaderName = HeaderName::from_static("secapp-state-age");
/// `Secapp-Server-Time`: the server's clock.
pub static SERVER_TIME: HeaderName = HeaderName::from_static("secapp-server-time");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_parsed_name_is_its_contract_spelling() {
        for known in [
            &APP_NAME,
            &TOKEN,
            &AUTHORIZATION,
            &IDEMPOTENCY_KEY,
            &LAST_EVENT_ID,
        ] {
            assert!(known.name.as_str().eq_ignore_ascii_case(known.spelt));
        }
        for (name, spelt) in [
            (&POLL_AFTER, secapp_api::POLL_AFTER_HEADER),
            (&STATE_AGE, secapp_api::STATE_AGE_HEADER),
            (&SERVER_TIME, secapp_api::SERVER_TIME_HEADER),
        ] {
            assert!(name.as_str().eq_ignore_ascii_case(spelt));
        }
    }
}

//! Every refusal the server answers, as one table: its stable code, its
//! HTTP status, what it asks of the caller ([`Class`]), when to retry, and
//! whether the connection closes. The server's error type names a row for
//! each of its variants and derives its answer from it; the OpenAPI
//! document's shared refusals and its checks, and the command line's exit
//! codes, read the same rows. Codes are part of the API: clients may match
//! on them, so a code is never renamed.

/// What a refusal asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The request is wrong: change it before sending it again.
    Invalid,
    /// The credentials or roles do not allow it: get another token or role.
    Refused,
    /// Not now: send the same request again later (after `Retry-After`).
    Retry,
    /// A fault of the server's own, logged there.
    Internal,
}

/// When a refused request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// No `Retry-After`: retrying the same request is refused the same way.
    No,
    /// `Retry-After` is always these seconds.
    Seconds(u64),
    /// `Retry-After` is worked out for each refusal (a rate limit's refill).
    Computed,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The stable code, sent as `error`.
    pub code: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What it asks of the caller.
    pub class: Class,
    /// When to retry.
    pub retry_after: RetryAfter,
    /// Whether the server closes the connection after answering (the rest
    /// of an unread body would be taken for the next request).
    pub closes: bool,
}

macro_rules! table {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $status:literal, $class:ident, $retry:expr, $closes:literal;)*) => {
        /// A refusal, by name; [`ErrorCode::refusal`] is its row.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
        }

        impl ErrorCode {
            /// Every refusal, in the table's order.
            pub const ALL: &'static [Self] = &[$(Self::$name,)*];

            /// Its row of the table.
            #[must_use]
            pub const fn refusal(self) -> Refusal {
                match self {
                    $(Self::$name => Refusal {
                        code: $code,
                        status: $status,
                        class: Class::$class,
                        retry_after: $retry,
                        closes: $closes,
                    },)*
                }
            }
        }
    };
}

table! {
    /// No `App-name` header.
    MissingAppName = "missing_app_name", 400, Invalid, RetryAfter::No, false;
    /// An `App-name` that is not a valid name (or sent twice).
    InvalidAppName = "invalid_app_name", 400, Invalid, RetryAfter::No, false;
    /// Neither `Token` nor `Authorization: Bearer`.
    MissingToken = "missing_token", 401, Refused, RetryAfter::No, false;
    /// A token that matches no issued token (or sent twice).
    InvalidToken = "invalid_token", 401, Refused, RetryAfter::No, false;
    /// `Token` and `Authorization` carry different tokens.
    ConflictingCredentials = "conflicting_credentials", 401, Refused, RetryAfter::No, false;
    /// A token whose expiry has passed.
    TokenExpired = "token_expired", 401, Refused, RetryAfter::No, false;
    /// A revoked token.
    TokenRevoked = "token_revoked", 401, Refused, RetryAfter::No, false;
    /// A token of a disabled application.
    AppDisabled = "app_disabled", 403, Refused, RetryAfter::No, false;
    /// `App-name` names another application than the token's.
    AppNameMismatch = "app_name_mismatch", 403, Refused, RetryAfter::No, false;
    /// The shared token used with a registered application's name.
    SharedTokenNotAllowed = "shared_token_not_allowed", 403, Refused, RetryAfter::No, false;
    /// The caller lacks the role the endpoint needs.
    MissingRole = "missing_role", 403, Refused, RetryAfter::No, false;
    /// No registered application by that name.
    UnknownApp = "unknown_app", 404, Invalid, RetryAfter::No, false;
    /// No token with that id.
    UnknownToken = "unknown_token", 404, Invalid, RetryAfter::No, false;
    /// No configured sink by that name.
    UnknownSink = "unknown_sink", 404, Invalid, RetryAfter::No, false;
    /// The sink has no dead letter for that event.
    UnknownDeadLetter = "unknown_dead_letter", 404, Invalid, RetryAfter::No, false;
    /// The application name is taken.
    AppExists = "app_exists", 409, Invalid, RetryAfter::No, false;
    /// An admin request field that cannot be used.
    InvalidField = "invalid_field", 422, Invalid, RetryAfter::No, false;
    /// The change would leave no enabled admin application with a live token.
    LastAdmin = "last_admin", 409, Invalid, RetryAfter::No, false;
    /// A body that is not JSON at all.
    MalformedJson = "malformed_json", 400, Invalid, RetryAfter::No, false;
    /// JSON of the wrong shape.
    InvalidBody = "invalid_body", 422, Invalid, RetryAfter::No, false;
    /// A level outside the configured range.
    LevelOutOfRange = "level_out_of_range", 422, Invalid, RetryAfter::No, false;
    /// A `Change_at` that is not a real timestamp.
    InvalidChangeAt = "invalid_change_at", 422, Invalid, RetryAfter::No, false;
    /// A `Change_at` too far in the future.
    ChangeAtInFuture = "change_at_in_future", 422, Invalid, RetryAfter::No, false;
    /// A body over the limit.
    BodyTooLarge = "body_too_large", 413, Invalid, RetryAfter::No, true;
    /// A body that did not arrive in time.
    BodyTimeout = "body_timeout", 408, Invalid, RetryAfter::No, true;
    /// A body that could not be read.
    UnreadableBody = "unreadable_body", 400, Invalid, RetryAfter::No, false;
    /// `?after=` that is not a `status_change_id`.
    InvalidAfter = "invalid_after", 400, Invalid, RetryAfter::No, false;
    /// `?wait=` that is not a number of seconds.
    InvalidWait = "invalid_wait", 400, Invalid, RetryAfter::No, false;
    /// An `If-None-Match` that is not a list of ETags this server gave.
    InvalidIfNoneMatch = "invalid_if_none_match", 400, Invalid, RetryAfter::No, false;
    /// A `Last-Event-ID` that is not a `status_change_id`.
    InvalidLastEventId = "invalid_last_event_id", 400, Invalid, RetryAfter::No, false;
    /// A query string that cannot be read.
    InvalidQuery = "invalid_query", 400, Invalid, RetryAfter::No, false;
    /// A path segment that cannot be read.
    InvalidPath = "invalid_path", 400, Invalid, RetryAfter::No, false;
    /// A request that is not valid HTTP/1.1.
    MalformedRequest = "malformed_request", 400, Invalid, RetryAfter::No, false;
    /// A request head with too many or too large header fields.
    HeadersTooLarge = "headers_too_large", 431, Invalid, RetryAfter::No, false;
    /// A URI longer than the HTTP layer takes.
    UriTooLong = "uri_too_long", 414, Invalid, RetryAfter::No, false;
    /// Too many streams open, for this application or on this server.
    TooManyStreams = "too_many_streams", 429, Retry, RetryAfter::Seconds(5), false;
    /// An `Idempotency-Key` that is empty, too long or not visible ASCII.
    InvalidIdempotencyKey = "invalid_idempotency_key", 400, Invalid, RetryAfter::No, false;
    /// An `Idempotency-Key` already used for a different request.
    IdempotencyKeyReused = "idempotency_key_reused", 422, Invalid, RetryAfter::No, false;
    /// An application over its request rate.
    RateLimited = "rate_limited", 429, Retry, RetryAfter::Computed, false;
    /// No such route.
    NotFound = "not_found", 404, Invalid, RetryAfter::No, false;
    /// The route exists but not with this method.
    MethodNotAllowed = "method_not_allowed", 405, Invalid, RetryAfter::No, false;
    /// The store failed; the cause is logged on the server.
    StoreUnavailable = "store_unavailable", 503, Retry, RetryAfter::Seconds(1), false;
    /// A bug on the server, logged there.
    Internal = "internal_error", 500, Internal, RetryAfter::No, false;
}

impl ErrorCode {
    /// The stable code, sent as `error`.
    #[must_use]
    pub const fn code(self) -> &'static str {
        self.refusal().code
    }

    /// The HTTP status.
    #[must_use]
    pub const fn status(self) -> u16 {
        self.refusal().status
    }

    /// What it asks of the caller.
    #[must_use]
    pub const fn class(self) -> Class {
        self.refusal().class
    }

    /// The refusal a server's `error` code names, if this version knows it.
    #[must_use]
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|known| known.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_one_refusal_and_its_class_fits_its_status() {
        let mut codes: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ErrorCode::ALL.len(), "a code is used twice");
        for code in ErrorCode::ALL {
            let row = code.refusal();
            assert_eq!(ErrorCode::from_code(row.code), Some(*code));
            let fits = match row.class {
                Class::Refused => matches!(row.status, 401 | 403),
                Class::Invalid => {
                    (400..500).contains(&row.status) && !matches!(row.status, 401 | 403 | 429)
                }
                Class::Retry => matches!(row.status, 429 | 503),
                Class::Internal => row.status == 500,
            };
            assert!(fits, "{row:?}");
            assert_eq!(
                matches!(row.status, 429 | 503),
                row.retry_after != RetryAfter::No,
                "{row:?}: a retry-later answer says when"
            );
        }
    }
}

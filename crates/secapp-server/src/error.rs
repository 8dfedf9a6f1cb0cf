//! The one error type of the HTTP layer and its JSON rendering.
//!
//! Every refusal is `{"error": "<stable code>", "detail": "<what to do>"}`.
//! Codes are part of the API: clients may match on them, so never rename one.
//! Each variant names its row of the refusal table (`secapp_api::errors`),
//! from which its code, status, `Retry-After` and whether the connection
//! closes all follow; the variant adds only the sentence for a person.
//! Storage failures are logged here with their cause and answered with a
//! generic 503: a database message never reaches a client.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secapp_api::ErrorBody;
use secapp_api::errors::{ErrorCode, RetryAfter};
use secapp_domain::{AppNameError, LevelError, Role, Roles, TimestampError};

use crate::access::AccessError;

use crate::store::StoreError;

/// Everything a request can be refused for.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `App-name` header.
    #[error("the App-name header is missing: send the name of your application in it")]
    MissingAppName,
    /// An `App-name` that is not a valid name.
    #[error("the App-name header is invalid: {0}")]
    InvalidAppName(AppNameError),
    /// A header that may appear once was sent more than once.
    #[error("the {0} header was sent more than once: send it once")]
    RepeatedHeader(&'static str),
    /// Neither `Token` nor `Authorization: Bearer`.
    #[error("no token was sent: send it as `Token: <token>` or `Authorization: Bearer <token>`")]
    MissingToken,
    /// A token that matches no issued token.
    #[error("the token is not valid: check the token you were given")]
    InvalidToken,
    /// `Token` and `Authorization` both sent, with different tokens.
    #[error("Token and Authorization carry different tokens: send one token, once")]
    ConflictingCredentials,
    /// A token whose expiry has passed.
    #[error("the token has expired: ask an admin for a new one")]
    TokenExpired,
    /// A revoked token.
    #[error("the token has been revoked: ask an admin for a new one")]
    TokenRevoked,
    /// A token of a disabled application.
    #[error("this application is disabled: ask an admin to enable it")]
    AppDisabled,
    /// `App-name` names another application than the token's.
    #[error(
        "App-name is `{sent}` but the token belongs to `{token_app}`: an application may only speak for itself"
    )]
    AppNameMismatch {
        /// The `App-name` sent.
        sent: String,
        /// The application the token belongs to.
        token_app: String,
    },
    /// The shared token used with the name of a registered application.
    #[error("`{0}` is a registered application: use its own token, not the shared one")]
    SharedTokenForRegisteredApp(String),
    /// The caller lacks the role the endpoint needs.
    #[error("{}", missing_role(needed, app, *held))]
    MissingRole {
        /// Any of these would do.
        needed: &'static [Role],
        /// The caller.
        app: String,
        /// What it holds.
        held: Roles,
    },
    /// No registered application by that name.
    #[error("{0}")]
    UnknownApp(String),
    /// No token with that id.
    #[error("{0}")]
    UnknownToken(String),
    /// No configured sink by that name.
    #[error("no sink is named `{0}` in this server's configuration")]
    UnknownSink(String),
    /// The sink has no dead letter for that event.
    #[error("the sink `{sink}` has no dead letter for event {event_id}")]
    UnknownDeadLetter {
        /// The sink named.
        sink: String,
        /// The event named.
        event_id: i64,
    },
    /// The application name is taken.
    #[error("{0}")]
    AppExists(String),
    /// An admin request field that cannot be used.
    #[error("{0}")]
    InvalidField(String),
    /// The change would lock every admin out.
    #[error("{0}")]
    LastAdmin(String),
    /// A body that is not JSON at all.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// JSON of the wrong shape: not an object, a missing field, a wrong type.
    #[error("the body does not have the expected fields: {problem}. Send {expected}")]
    InvalidBody {
        /// What is wrong with it.
        problem: String,
        /// The shape this endpoint takes, for a person to copy.
        expected: &'static str,
    },
    /// A level outside the configured range.
    #[error("current_status is invalid: {0}")]
    LevelOutOfRange(LevelError),
    /// A `Change_at` that is not a real timestamp.
    #[error("Change_at is invalid: {0}")]
    InvalidChangeAt(TimestampError),
    /// A `Change_at` too far in the future.
    #[error("Change_at is too far in the future: {0}")]
    ChangeAtInFuture(TimestampError),
    /// A body over the limit.
    #[error("the body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A body that did not arrive in time.
    #[error("the body did not arrive within {seconds} s of the request: send it at once")]
    BodyTimeout {
        /// The body-read timeout, in seconds.
        seconds: u64,
    },
    /// A body that could not be read.
    #[error("the body could not be read: {0}")]
    UnreadableBody(String),
    /// `?after=` that is not a `status_change_id`.
    #[error("the after parameter must be a status_change_id (a non-negative integer), got `{0}`")]
    InvalidAfter(String),
    /// `?wait=` that is not a number of seconds.
    #[error("the wait parameter must be a number of seconds (0 or more), got `{0}`")]
    InvalidWait(String),
    /// An `If-None-Match` that is not a list of ETags this server gave.
    #[error(
        "If-None-Match must be an ETag this server sent, such as \"17\" (with the quotes), a list of them, or *"
    )]
    InvalidIfNoneMatch,
    /// A `Last-Event-ID` that is not a `status_change_id`.
    #[error("Last-Event-ID must be the id of an event this server sent (a non-negative integer)")]
    InvalidLastEventId,
    /// A query string that cannot be read.
    #[error("the query string is invalid: {0}")]
    InvalidQuery(String),
    /// A path segment that cannot be read.
    #[error("the path is invalid: {0}")]
    InvalidPath(String),
    /// A request hyper could not parse: refused before it reached a route.
    #[error(
        "the request is not valid HTTP/1.1 (a malformed request line or header field, or a control character in one): check what the client sends"
    )]
    MalformedRequest,
    /// A request head with too many or too large header fields.
    #[error(
        "the request's header fields are too many or too large: at most {max_headers} fields and {max_kib} KiB for the request line and all fields",
        max_headers = crate::http_limits::MAX_HEADERS,
        max_kib = crate::http_limits::MAX_HEAD_BYTES / 1024
    )]
    HeadersTooLarge,
    /// A URI longer than the HTTP layer takes.
    #[error("the URI is too long: at most 65,534 bytes")]
    UriTooLong,
    /// Too many streams open, for this application or on this server.
    #[error(
        "too many streams are open {scope} (at most {limit}); retry later, or poll with ?wait="
    )]
    TooManyStreams {
        /// `for this application` or `on this server`.
        scope: &'static str,
        /// The configured cap.
        limit: usize,
    },
    /// An `Idempotency-Key` that is empty, too long or not visible ASCII.
    #[error("Idempotency-Key must be 1 to 255 visible ASCII characters, sent once")]
    InvalidIdempotencyKey,
    /// An `Idempotency-Key` already used for a different request.
    #[error(
        "this Idempotency-Key was already used for a different request: use a new key for a new change, or repeat the first request exactly to retry it"
    )]
    IdempotencyKeyReused,
    /// An application over its request rate.
    #[error("this application is over its request rate: retry after {retry_after_s} s")]
    RateLimited {
        /// Seconds until a request would pass.
        retry_after_s: u64,
    },
    /// No such route.
    #[error("there is no such endpoint: see /docs for the API")]
    NotFound,
    /// The route exists but not with this method.
    #[error("this endpoint does not accept that method: see /docs for the API")]
    MethodNotAllowed,
    /// The store failed; the cause is logged, not shown.
    #[error("storage is unavailable: retry shortly")]
    StoreUnavailable(#[source] StoreError),
    /// A bug: a handler panicked. Logged; the client sees nothing more.
    #[error("an internal error occurred; it has been logged")]
    Internal,
}

impl ApiError {
    /// Which refusal of the table (`secapp_api::errors`) this is: its code,
    /// status, retry and whether the connection closes all follow from it.
    #[must_use]
    pub fn kind(&self) -> ErrorCode {
        match self {
            Self::MissingAppName => ErrorCode::MissingAppName,
            Self::InvalidAppName(_) => ErrorCode::InvalidAppName,
            Self::RepeatedHeader(header) => repeated_header_code(header),
            Self::MissingToken => ErrorCode::MissingToken,
            Self::InvalidToken => ErrorCode::InvalidToken,
            Self::ConflictingCredentials => ErrorCode::ConflictingCredentials,
            Self::TokenExpired => ErrorCode::TokenExpired,
            Self::TokenRevoked => ErrorCode::TokenRevoked,
            Self::AppDisabled => ErrorCode::AppDisabled,
            Self::AppNameMismatch { .. } => ErrorCode::AppNameMismatch,
            Self::SharedTokenForRegisteredApp(_) => ErrorCode::SharedTokenNotAllowed,
            Self::MissingRole { .. } => ErrorCode::MissingRole,
            Self::UnknownApp(_) => ErrorCode::UnknownApp,
            Self::UnknownToken(_) => ErrorCode::UnknownToken,
            Self::UnknownSink(_) => ErrorCode::UnknownSink,
            Self::UnknownDeadLetter { .. } => ErrorCode::UnknownDeadLetter,
            Self::AppExists(_) => ErrorCode::AppExists,
            Self::InvalidField(_) => ErrorCode::InvalidField,
            Self::LastAdmin(_) => ErrorCode::LastAdmin,
            Self::MalformedJson(_) => ErrorCode::MalformedJson,
            Self::InvalidBody { .. } => ErrorCode::InvalidBody,
            Self::LevelOutOfRange(_) => ErrorCode::LevelOutOfRange,
            Self::InvalidChangeAt(_) => ErrorCode::InvalidChangeAt,
            Self::ChangeAtInFuture(_) => ErrorCode::ChangeAtInFuture,
            Self::BodyTooLarge { .. } => ErrorCode::BodyTooLarge,
            Self::BodyTimeout { .. } => ErrorCode::BodyTimeout,
            Self::UnreadableBody(_) => ErrorCode::UnreadableBody,
            Self::InvalidAfter(_) => ErrorCode::InvalidAfter,
            Self::InvalidWait(_) => ErrorCode::InvalidWait,
            Self::InvalidIfNoneMatch => ErrorCode::InvalidIfNoneMatch,
            Self::InvalidLastEventId => ErrorCode::InvalidLastEventId,
            Self::InvalidQuery(_) => ErrorCode::InvalidQuery,
            Self::InvalidPath(_) => ErrorCode::InvalidPath,
            Self::MalformedRequest => ErrorCode::MalformedRequest,
            Self::HeadersTooLarge => ErrorCode::HeadersTooLarge,
            Self::UriTooLong => ErrorCode::UriTooLong,
            Self::TooManyStreams { .. } => ErrorCode::TooManyStreams,
            Self::InvalidIdempotencyKey => ErrorCode::InvalidIdempotencyKey,
            Self::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::NotFound => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::StoreUnavailable(_) => ErrorCode::StoreUnavailable,
            Self::Internal => ErrorCode::Internal,
        }
    }

    /// The stable machine code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.kind().code()
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.kind().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl ApiError {
    /// Whether this refusal is about the caller's credentials or roles: such
    /// refusals are logged and counted.
    #[must_use]
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        )
    }
}

/// The refusal of a header sent twice: that header's other refusal (a
/// credential sent twice is refused like a bad credential).
fn repeated_header_code(header: &str) -> ErrorCode {
    if header.eq_ignore_ascii_case(secapp_api::APP_NAME_HEADER) {
        ErrorCode::InvalidAppName
    } else if header.eq_ignore_ascii_case(secapp_api::IDEMPOTENCY_KEY_HEADER) {
        ErrorCode::InvalidIdempotencyKey
    } else if header.eq_ignore_ascii_case("last-event-id") {
        ErrorCode::InvalidLastEventId
    } else if header.eq_ignore_ascii_case("if-none-match") {
        ErrorCode::InvalidIfNoneMatch
    } else {
        ErrorCode::InvalidToken
    }
}

fn missing_role(needed: &[Role], app: &str, held: Roles) -> String {
    let needed = needed
        .iter()
        .map(|role| format!("`{role}`"))
        .collect::<Vec<_>>()
        .join(" or ");
    let held = if held.is_empty() {
        "no role".to_owned()
    } else {
        format!("the roles {held}")
    };
    format!("this endpoint needs the {needed} role; `{app}` has {held}: ask an admin to grant it")
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        let text = e.to_string();
        match e {
            AccessError::UnknownApp(_) => Self::UnknownApp(text),
            AccessError::UnknownToken(_) => Self::UnknownToken(text),
            AccessError::AppExists(_) => Self::AppExists(text),
            AccessError::Invalid(_) => Self::InvalidField(text),
            AccessError::LastAdmin => Self::LastAdmin(text),
            // The host is failing, not the request: answered like a store
            // failure, 503 with Retry-After.
            AccessError::Random(_) => Self::StoreUnavailable(StoreError::unavailable(text)),
            AccessError::Store(e) => Self::StoreUnavailable(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::StoreUnavailable(cause) = &self {
            tracing::error!(error = %cause, "storage failed while serving a request");
        }
        let body = ErrorBody {
            error: self.code().to_owned(),
            detail: self.to_string(),
        };
        let row = self.kind().refusal();
        let retry_after = match (row.retry_after, &self) {
            (RetryAfter::Seconds(seconds), _) => Some(HeaderValue::from(seconds)),
            (RetryAfter::Computed, Self::RateLimited { retry_after_s }) => {
                Some(HeaderValue::from((*retry_after_s).max(1)))
            }
            (RetryAfter::Computed, _) => Some(HeaderValue::from(1)),
            (RetryAfter::No, _) => None,
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        if row.closes {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::StoreUnavailable(e)
    }
}

impl From<LevelError> for ApiError {
    fn from(e: LevelError) -> Self {
        Self::LevelOutOfRange(e)
    }
}

impl From<TimestampError> for ApiError {
    fn from(e: TimestampError) -> Self {
        match e {
            TimestampError::InFuture { .. } => Self::ChangeAtInFuture(e),
            TimestampError::Invalid(_) | TimestampError::OutOfRange(_) => Self::InvalidChangeAt(e),
        }
    }
}

impl From<AppNameError> for ApiError {
    fn from(e: AppNameError) -> Self {
        Self::InvalidAppName(e)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::InvalidQuery(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::InvalidPath(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_cause_is_never_shown_to_the_client() {
        let err = ApiError::from(StoreError::unavailable("disk I/O error at /var/x"));
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!err.to_string().contains("/var/x"));
    }

    #[test]
    fn the_documented_error_example_is_what_the_server_says() {
        let schema =
            serde_json::to_value(<secapp_api::ErrorBody as utoipa::PartialSchema>::schema())
                .unwrap();
        let example = &schema["example"];
        assert_eq!(example["error"], ApiError::InvalidToken.code());
        assert_eq!(example["detail"], ApiError::InvalidToken.to_string());
    }
}

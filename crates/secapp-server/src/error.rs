//! The one error type of the HTTP layer and its JSON rendering.
//!
//! Every refusal is `{"error": "<stable code>", "detail": "<what to do>"}`.
//! Codes are part of the API: clients may match on them, so never rename one.
//! Storage failures are logged here with their cause and answered with a
//! generic 503: a database message never reaches a client.

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secapp_api::ErrorBody;
use secapp_domain::{AppNameError, LevelError, Role, Roles, TimestampError};

use crate::access::AccessError;

use crate::store::StoreError;

/// Seconds a client refused a stream should wait before trying again.
pub const STREAM_RETRY_AFTER: &str = "5";

/// Everything a request can be refused for.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `App-name` header.
    #[error("the App-name header is missing: send the name of your application in it")]
    MissingAppName,
    /// An `App-name` that is not a valid name.
    #[error("the App-name header is invalid: {0}")]
    InvalidAppName(AppNameError),
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
    /// JSON of the wrong shape: a missing field, a wrong type.
    #[error(
        "the body does not have the expected fields: {0}. Send {{\"current_status\": <integer>, \"Change_at\": \"<RFC 3339 time>\"}}"
    )]
    InvalidBody(String),
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
    /// The stable machine code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingAppName => "missing_app_name",
            Self::InvalidAppName(_) => "invalid_app_name",
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token",
            Self::ConflictingCredentials => "conflicting_credentials",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::AppDisabled => "app_disabled",
            Self::AppNameMismatch { .. } => "app_name_mismatch",
            Self::SharedTokenForRegisteredApp(_) => "shared_token_not_allowed",
            Self::MissingRole { .. } => "missing_role",
            Self::UnknownApp(_) => "unknown_app",
            Self::UnknownToken(_) => "unknown_token",
            Self::AppExists(_) => "app_exists",
            Self::InvalidField(_) => "invalid_field",
            Self::LastAdmin(_) => "last_admin",
            Self::MalformedJson(_) => "malformed_json",
            Self::InvalidBody(_) => "invalid_body",
            Self::LevelOutOfRange(_) => "level_out_of_range",
            Self::InvalidChangeAt(_) => "invalid_change_at",
            Self::ChangeAtInFuture(_) => "change_at_in_future",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::UnreadableBody(_) => "unreadable_body",
            Self::InvalidAfter(_) => "invalid_after",
            Self::InvalidWait(_) => "invalid_wait",
            Self::InvalidIfNoneMatch => "invalid_if_none_match",
            Self::InvalidLastEventId => "invalid_last_event_id",
            Self::InvalidQuery(_) => "invalid_query",
            Self::TooManyStreams { .. } => "too_many_streams",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::Internal => "internal_error",
        }
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingAppName
            | Self::InvalidAppName(_)
            | Self::MalformedJson(_)
            | Self::UnreadableBody(_)
            | Self::InvalidAfter(_)
            | Self::InvalidWait(_)
            | Self::InvalidIfNoneMatch
            | Self::InvalidLastEventId
            | Self::InvalidQuery(_)
            | Self::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            Self::TooManyStreams { .. } | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::MissingToken
            | Self::InvalidToken
            | Self::ConflictingCredentials
            | Self::TokenExpired
            | Self::TokenRevoked => StatusCode::UNAUTHORIZED,
            Self::AppDisabled
            | Self::AppNameMismatch { .. }
            | Self::SharedTokenForRegisteredApp(_)
            | Self::MissingRole { .. } => StatusCode::FORBIDDEN,
            Self::UnknownApp(_) | Self::UnknownToken(_) => StatusCode::NOT_FOUND,
            Self::AppExists(_) | Self::LastAdmin(_) => StatusCode::CONFLICT,
            Self::InvalidBody(_)
            | Self::LevelOutOfRange(_)
            | Self::InvalidChangeAt(_)
            | Self::ChangeAtInFuture(_)
            | Self::IdempotencyKeyReused
            | Self::InvalidField(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
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
            AccessError::Random(_) => Self::StoreUnavailable(StoreError::Backend(text)),
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
        let retry_after = match self {
            Self::StoreUnavailable(_) => Some(HeaderValue::from_static("1")),
            Self::TooManyStreams { .. } => Some(HeaderValue::from_static(STREAM_RETRY_AFTER)),
            Self::RateLimited { retry_after_s } => Some(HeaderValue::from(retry_after_s.max(1))),
            _ => None,
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
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
            TimestampError::Invalid(_) => Self::InvalidChangeAt(e),
        }
    }
}

impl From<AppNameError> for ApiError {
    fn from(e: AppNameError) -> Self {
        Self::InvalidAppName(e)
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::BodyTooLarge {
                limit: crate::routes::MAX_BODY_BYTES,
            }
        } else {
            Self::UnreadableBody(rejection.body_text())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::InvalidQuery(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::InvalidQuery(rejection.body_text())
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => Self::InvalidBody(e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => Self::MalformedJson(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_split_into_syntax_and_shape() {
        let syntax = serde_json::from_str::<secapp_api::PublishRequest>("{nope").unwrap_err();
        assert_eq!(ApiError::from(syntax).status(), StatusCode::BAD_REQUEST);
        let shape = serde_json::from_str::<secapp_api::PublishRequest>(r#"{"current_status":"4"}"#)
            .unwrap_err();
        assert_eq!(
            ApiError::from(shape).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn a_storage_cause_is_never_shown_to_the_client() {
        let err = ApiError::from(StoreError::Backend("disk I/O error at /var/x".into()));
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!err.to_string().contains("/var/x"));
    }
}

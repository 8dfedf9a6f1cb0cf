//! The one error type, read from the server's JSON error bodies.

use std::time::Duration;

use serde_json::Value;

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// 401: the token is missing, unknown, expired or revoked.
    #[error("unauthorised ({code}): {detail}")]
    Unauthorized {
        /// The server's code, such as `token_revoked`.
        code: String,
        /// What to do about it.
        detail: String,
    },
    /// 403: the token may not do this.
    #[error("forbidden ({code}): {detail}")]
    Forbidden {
        /// The server's code, such as `missing_role`.
        code: String,
        /// What to do about it.
        detail: String,
    },
    /// 429: over the application's rate; try again after `retry_after`.
    #[error("rate limited: try again in {retry_after:?}")]
    RateLimited {
        /// The server's `Retry-After`.
        retry_after: Duration,
    },
    /// 4xx: the request itself is wrong (or the client is set up wrong).
    #[error("invalid ({code}): {detail}")]
    Invalid {
        /// The server's code, such as `level_out_of_range`.
        code: String,
        /// What is wrong.
        detail: String,
    },
    /// 5xx: the server cannot serve now; try again after `retry_after`.
    #[error("unavailable ({status}): try again in {retry_after:?}")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, or a second.
        retry_after: Duration,
    },
    /// The request did not complete in time.
    #[error("timed out")]
    Timeout,
    /// The connection failed, or the answer could not be read.
    #[error("transport: {0}")]
    Transport(String),
}

impl Error {
    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout
        } else {
            Self::Transport(e.to_string())
        }
    }
}

/// Reads a successful answer as `T`, or the error the server answered.
pub(crate) async fn read<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, Error> {
    check(response)
        .await?
        .json()
        .await
        .map_err(Error::from_reqwest)
}

/// The answer if it is a success, or the error the server answered.
pub(crate) async fn check(response: reqwest::Response) -> Result<reqwest::Response, Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
    let (code, detail) = (text("error"), text("detail"));
    Err(match status.as_u16() {
        401 => Error::Unauthorized { code, detail },
        403 => Error::Forbidden { code, detail },
        429 => Error::RateLimited { retry_after },
        400..=499 => Error::Invalid { code, detail },
        status => Error::Unavailable {
            status,
            retry_after,
        },
    })
}

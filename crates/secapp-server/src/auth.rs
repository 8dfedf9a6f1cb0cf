//! Who is calling: the `Token` and `App-name` headers become a [`Principal`].
//!
//! Handlers take a `Principal` argument and never read identity headers
//! themselves. The token is checked first, so an unauthenticated caller
//! learns nothing about name rules.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use secapp_api::{APP_NAME_HEADER, TOKEN_HEADER};
use secapp_domain::AppName;

use crate::error::ApiError;
use crate::state::AppState;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The application it speaks for.
    pub app: AppName,
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = single(&parts.headers, TOKEN_HEADER)
            .map_err(|()| ApiError::InvalidToken)?
            .ok_or(ApiError::MissingToken)?;
        if !state.token.matches(token) {
            return Err(ApiError::InvalidToken);
        }
        let name = single(&parts.headers, APP_NAME_HEADER)
            .map_err(|()| ApiError::InvalidAppName(secapp_domain::AppNameError::NotPrintable))?
            .ok_or(ApiError::MissingAppName)?;
        let name = std::str::from_utf8(name)
            .map_err(|_| ApiError::InvalidAppName(secapp_domain::AppNameError::NotPrintable))?;
        Ok(Self {
            app: AppName::parse(name)?,
        })
    }
}

/// The value of a header that must appear at most once; `Err` when repeated,
/// since two names or two tokens leave the caller's identity ambiguous.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a [u8]>, ()> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }
    Ok(first.map(axum::http::HeaderValue::as_bytes))
}

/// The network address a request came from, when the server was started
/// with connection info (it always is; tests driving a bare router are not).
#[derive(Debug, Clone, Copy)]
pub struct SourceAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for SourceAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

//! Who is calling and whether they may: the `Token` (or `Authorization:
//! Bearer`) and `App-name` headers become a [`Principal`], and the extractors
//! [`AsPublisher`], [`AsConsumer`], [`AsViewer`] and [`AsAdmin`] admit it only
//! with the role the endpoint needs.
//!
//! Handlers take one of those extractors and never read identity headers
//! themselves; the extractor also takes the request from the caller's
//! rate-limit allowance (publishes or reads). The token is checked first, so an unauthenticated caller
//! learns nothing about name rules. Every refusal is logged (application,
//! source address, reason; never the token) and counted in
//! [`Access::failures`](crate::access::Access).
//!
//! A registered token speaks for its own application only: when `App-name`
//! is sent it must be that application (403 `app_name_mismatch` otherwise).
//! The prototype's endpoints, `/secapp/update` and `/secapp/stream`, need
//! `App-name` as the contract says (400 without it); the reports and the
//! admin API take the application from the token. The shared compatibility
//! token always needs `App-name`, holds the `publish` and `consume` roles,
//! and may not speak for a registered application.

use std::marker::PhantomData;
use std::sync::{Arc, LazyLock};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use secapp_domain::{AppName, AppNameError, Role, Roles};

pub use crate::access::Principal;
use crate::access::failures::Failure;
use crate::access::{Authenticated, Lapsed, Refused, SHARED_TOKEN_ID};
use crate::error::ApiError;
use crate::headers::{self, Known};
use crate::limits::Class;
use crate::state::AppState;

/// What the shared token may do: what the prototype's clients did.
pub const SHARED_TOKEN_ROLES: Roles = Roles::NONE.with(Role::Publish).with(Role::Consume);

static SHARED_ID: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(SHARED_TOKEN_ID));

/// Which roles admit a caller to an endpoint (any one of them suffices),
/// whether it needs `App-name`, and which rate-limit allowance the request
/// draws on: checked by the extractor, so no handler can forget it.
pub trait Need {
    /// The roles, any of which admits.
    const ROLES: &'static [Role];
    /// Whether `App-name` must be sent even with an application's own token.
    const APP_NAME_REQUIRED: bool;
    /// The allowance an admitted request draws on.
    const CLASS: Class;
}

/// Roles needed, by kind of endpoint.
pub mod need {
    use super::{Class, Need, Role};

    /// `POST /secapp/update`.
    #[derive(Debug)]
    pub struct Publish;
    /// Polls and streams.
    #[derive(Debug)]
    pub struct Consume;
    /// The consumer report and the history.
    #[derive(Debug)]
    pub struct View;
    /// The admin API.
    #[derive(Debug)]
    pub struct Administer;

    impl Need for Publish {
        const ROLES: &'static [Role] = &[Role::Publish];
        const APP_NAME_REQUIRED: bool = true;
        const CLASS: Class = Class::Publish;
    }
    impl Need for Consume {
        const ROLES: &'static [Role] = &[Role::Consume];
        const APP_NAME_REQUIRED: bool = true;
        const CLASS: Class = Class::Read;
    }
    impl Need for View {
        const ROLES: &'static [Role] = &[Role::Viewer, Role::Admin];
        const APP_NAME_REQUIRED: bool = false;
        const CLASS: Class = Class::Read;
    }
    impl Need for Administer {
        const ROLES: &'static [Role] = &[Role::Admin];
        const APP_NAME_REQUIRED: bool = false;
        const CLASS: Class = Class::Read;
    }
}

/// A caller admitted by `N`'s roles. Derefs to the [`Principal`].
#[derive(Debug)]
pub struct Authorized<N>(pub Principal, PhantomData<N>);

/// A caller with the `publish` role.
pub type AsPublisher = Authorized<need::Publish>;
/// A caller with the `consume` role.
pub type AsConsumer = Authorized<need::Consume>;
/// A caller with the `viewer` or `admin` role.
pub type AsViewer = Authorized<need::View>;
/// A caller with the `admin` role.
pub type AsAdmin = Authorized<need::Administer>;

impl<N> std::ops::Deref for Authorized<N> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<N: Need + Send + Sync> FromRequestParts<AppState> for Authorized<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let admitted = identify(parts, state, N::APP_NAME_REQUIRED).and_then(|principal| {
            if principal.roles.any_of(N::ROLES) {
                if let Some(token) = &principal.token {
                    token.record(state.clock.now());
                }
                Ok(principal)
            } else {
                Err(ApiError::MissingRole {
                    needed: N::ROLES,
                    app: principal.app.to_string(),
                    held: principal.roles,
                })
            }
        });
        match admitted {
            Ok(principal) => {
                tracing::Span::current().record("app", principal.app.as_str());
                // After authentication, so only a known application's
                // allowance is ever spent, and before any other extractor.
                state.limits.check(&principal.app, N::CLASS)?;
                Ok(Self(principal, PhantomData))
            }
            Err(refusal) => {
                if refusal.is_auth_failure() {
                    record_failure(parts, state, &refusal);
                }
                Err(refusal)
            }
        }
    }
}

/// The refusal a caller admitted earlier now gets, when a check during a
/// request that lasts (a long poll, a stream) found `lapsed`.
#[must_use]
pub fn lapsed(caller: &Principal, role: Role, lapsed: Lapsed) -> ApiError {
    match lapsed {
        Lapsed::Refused(refused) => refused.into(),
        Lapsed::RoleRemoved(held) => ApiError::MissingRole {
            needed: match role {
                Role::Publish => &[Role::Publish],
                Role::Consume => &[Role::Consume],
                Role::Viewer => &[Role::Viewer],
                Role::Admin => &[Role::Admin],
            },
            app: caller.app.to_string(),
            held,
        },
        Lapsed::NameRegistered => ApiError::SharedTokenForRegisteredApp(caller.app.to_string()),
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Invalid => Self::InvalidToken,
            Refused::Expired => Self::TokenExpired,
            Refused::Revoked => Self::TokenRevoked,
            Refused::Disabled => Self::AppDisabled,
        }
    }
}

/// Authenticates the token, then reconciles it with `App-name`.
fn identify(
    parts: &Parts,
    state: &AppState,
    app_name_required: bool,
) -> Result<Principal, ApiError> {
    let token = credential(&parts.headers)?;
    let now = state.clock.now();
    let authenticated = state.access.authenticate(token, now)?;
    let claimed = app_name(&parts.headers)?;
    match authenticated {
        Authenticated::Shared => {
            let app = claimed.ok_or(ApiError::MissingAppName)?;
            if state.access.is_registered(&app) {
                return Err(ApiError::SharedTokenForRegisteredApp(app.to_string()));
            }
            Ok(Principal {
                app,
                roles: SHARED_TOKEN_ROLES,
                token_id: SHARED_ID.clone(),
                token: None,
            })
        }
        Authenticated::App { app, roles, token } => {
            match claimed {
                None if app_name_required => return Err(ApiError::MissingAppName),
                Some(claimed) if claimed != app => {
                    return Err(ApiError::AppNameMismatch {
                        sent: claimed.to_string(),
                        token_app: app.to_string(),
                    });
                }
                _ => {}
            }
            Ok(Principal {
                app,
                roles,
                token_id: token.id().clone(),
                token: Some(token),
            })
        }
    }
}

/// The offered token: `Token: <t>` or `Authorization: Bearer <t>`. Both may
/// be sent if they agree.
///
/// # Errors
/// The refusal when none is sent, one is sent twice, `Authorization` is not
/// `Bearer`, or the two disagree.
pub fn credential(headers: &HeaderMap) -> Result<&[u8], ApiError> {
    let token = single(headers, &headers::TOKEN)?;
    let bearer = single(headers, &headers::AUTHORIZATION)?
        .map(|value| bearer_token(value).ok_or(ApiError::InvalidToken))
        .transpose()?;
    match (token, bearer) {
        (None, None) => Err(ApiError::MissingToken),
        (Some(one), None) | (None, Some(one)) => Ok(one),
        (Some(token), Some(bearer)) if token == bearer => Ok(token),
        (Some(_), Some(_)) => Err(ApiError::ConflictingCredentials),
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is
/// case-insensitive, RFC 9110 section 11.1).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// The `App-name` header, when sent.
fn app_name(headers: &HeaderMap) -> Result<Option<AppName>, ApiError> {
    let Some(raw) = single(headers, &headers::APP_NAME)? else {
        return Ok(None);
    };
    let name = std::str::from_utf8(raw)
        .map_err(|_| ApiError::InvalidAppName(AppNameError::NotPrintable))?;
    Ok(Some(AppName::parse(name)?))
}

/// The value of a header that must appear at most once; refused when
/// repeated, since two names or two tokens leave the caller's identity
/// ambiguous.
pub(crate) fn single<'a>(
    headers: &'a HeaderMap,
    known: &'static Known,
) -> Result<Option<&'a [u8]>, ApiError> {
    let mut values = headers.get_all(&known.name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::RepeatedHeader(known.spelt));
    }
    Ok(first.map(axum::http::HeaderValue::as_bytes))
}

/// Logs and counts a refusal. The application is the one claimed in
/// `App-name` (made printable and cut to 128 characters), or the one the
/// refused request's token belongs to when the refusal says so.
fn record_failure(parts: &Parts, state: &AppState, refusal: &ApiError) {
    let app = match refusal {
        ApiError::MissingRole { app, .. } | ApiError::AppNameMismatch { token_app: app, .. } => {
            Some(app.clone())
        }
        _ => parts.headers.get(&headers::APP_NAME.name).map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .chars()
                .map(|c| if c.is_ascii_graphic() { c } else { '?' })
                .take(128)
                .collect()
        }),
    };
    state.access.failures.record(Failure {
        at: state.clock.now(),
        reason: refusal.code(),
        app,
        source: SourceAddress::of(parts).0.map(|ip| ip.to_string()),
        request: format!("{} {}", parts.method, parts.uri.path()),
    });
}

/// The network address a request came from, when the server was started
/// with connection info (it always is; tests driving a bare router are not).
#[derive(Debug, Clone, Copy)]
pub struct SourceAddress(pub Option<std::net::IpAddr>);

impl SourceAddress {
    fn of(parts: &Parts) -> Self {
        Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SourceAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_with_any_scheme_case() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"BEARER abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bear"), None);
    }

    #[test]
    fn token_and_bearer_must_agree() {
        let mut headers = HeaderMap::new();
        assert!(matches!(credential(&headers), Err(ApiError::MissingToken)));
        headers.insert(
            axum::http::header::AUTHORIZATION,
            "Bearer one".parse().unwrap(),
        );
        assert_eq!(credential(&headers).unwrap(), b"one");
        headers.insert(secapp_api::TOKEN_HEADER, "one".parse().unwrap());
        assert_eq!(credential(&headers).unwrap(), b"one");
        headers.insert(secapp_api::TOKEN_HEADER, "two".parse().unwrap());
        assert!(matches!(
            credential(&headers),
            Err(ApiError::ConflictingCredentials)
        ));
        headers.insert(
            axum::http::header::AUTHORIZATION,
            "Basic b25lOg==".parse().unwrap(),
        );
        assert!(matches!(credential(&headers), Err(ApiError::InvalidToken)));
    }

    #[test]
    fn the_shared_token_holds_what_the_prototype_allowed() {
        assert!(SHARED_TOKEN_ROLES.contains(Role::Publish));
        assert!(SHARED_TOKEN_ROLES.contains(Role::Consume));
        assert!(!SHARED_TOKEN_ROLES.any_of(&[Role::Viewer, Role::Admin]));
    }
}

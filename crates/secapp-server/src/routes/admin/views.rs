//! The registry's domain records as the admin API shows them (and the
//! offline command line prints them): the one place they become wire views.

use chrono::{DateTime, Utc};
use secapp_api::admin::{AppView, IssuedToken, TokenView};
use secapp_domain::{Role, shown};

use crate::access::{AppDetails, Issued, TokenListing, TokenState};
use crate::store::UnreadableToken;

/// An application and its tokens, their status as of `now`.
#[must_use]
pub fn app(details: &AppDetails, now: DateTime<Utc>) -> AppView {
    let app = &details.record;
    AppView {
        name: app.name.to_string(),
        roles: app
            .roles
            .iter()
            .map(|role| Role::as_str(role).to_owned())
            .collect(),
        description: app.description.clone(),
        owner: app.owner.clone(),
        created_at: shown(app.created_at),
        updated_at: shown(app.updated_at),
        disabled: app.disabled_at.is_some(),
        stale_after: app
            .stale_after
            .map(|span| humantime::format_duration(span).to_string()),
        last_used_at: details
            .tokens
            .iter()
            .filter_map(|token| token.last_used_at)
            .max()
            .map(shown),
        tokens: details
            .tokens
            .iter()
            .map(|token| self::token(token, now))
            .collect(),
    }
}

/// A token, its status as of `now`.
#[must_use]
pub fn token(token: &TokenState, now: DateTime<Utc>) -> TokenView {
    let record = &token.record;
    let status = if record.revoked_at.is_some() {
        "revoked"
    } else if record.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    };
    TokenView {
        id: record.id.clone(),
        app: record.app.to_string(),
        label: record.label.clone(),
        status: status.to_owned(),
        created_at: shown(record.created_at),
        expires_at: record.expires_at.map(shown),
        revoked_at: record.revoked_at.map(shown),
        last_used_at: token.last_used_at.map(shown),
        unreadable: None,
    }
}

/// A token in a list, readable or not.
#[must_use]
pub fn listing(listing: &TokenListing, now: DateTime<Utc>) -> TokenView {
    match listing {
        TokenListing::Readable(state) => token(state, now),
        TokenListing::Unreadable(row) => unreadable_token(row),
    }
}

/// A token just issued: the only answer that carries the token itself.
#[must_use]
pub fn issued(issued: &Issued, now: DateTime<Utc>) -> IssuedToken {
    IssuedToken {
        token: issued.secret.expose().to_owned(),
        details: token(&issued.token, now),
    }
}

/// A token row the store cannot read, its fields as stored.
fn unreadable_token(token: &UnreadableToken) -> TokenView {
    TokenView {
        id: token.id.clone(),
        app: token.app.clone(),
        label: token.label.clone(),
        status: if token.revoked_at.is_some() {
            "revoked"
        } else {
            "unreadable"
        }
        .to_owned(),
        created_at: token.created_at.clone(),
        expires_at: token.expires_at.clone(),
        revoked_at: token.revoked_at.clone(),
        last_used_at: token.last_used_at.clone(),
        unreadable: Some(token.problem.clone()),
    }
}

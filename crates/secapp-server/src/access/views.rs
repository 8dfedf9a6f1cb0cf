//! Registry records as the admin API and the command line show them.

use chrono::{DateTime, SecondsFormat, Utc};
use secapp_api::admin::{AppView, TokenView};
use secapp_domain::Role;

use super::TokenEntry;
use crate::store::{AppRecord, UnreadableToken};

/// Times as the admin API shows them: RFC 3339 UTC with milliseconds.
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn app<'a>(
    app: &AppRecord,
    tokens: impl Iterator<Item = &'a TokenEntry>,
    now: DateTime<Utc>,
) -> AppView {
    let mut tokens: Vec<&TokenEntry> = tokens.collect();
    tokens.sort_by_key(|entry| entry.record.created_at);
    AppView {
        name: app.name.to_string(),
        roles: app
            .roles
            .iter()
            .map(|role| Role::as_str(role).to_owned())
            .collect(),
        description: app.description.clone(),
        owner: app.owner.clone(),
        created_at: time(app.created_at),
        updated_at: time(app.updated_at),
        disabled: app.disabled_at.is_some(),
        last_used_at: tokens
            .iter()
            .filter_map(|entry| entry.last_used())
            .max()
            .map(time),
        tokens: tokens.into_iter().map(|entry| token(entry, now)).collect(),
    }
}

pub(super) fn token(entry: &TokenEntry, now: DateTime<Utc>) -> TokenView {
    let record = &entry.record;
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
        created_at: time(record.created_at),
        expires_at: record.expires_at.map(time),
        revoked_at: record.revoked_at.map(time),
        last_used_at: entry.last_used().map(time),
        unreadable: None,
    }
}

/// A token row the store cannot read, its fields as stored.
pub(super) fn unreadable_token(token: &UnreadableToken) -> TokenView {
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

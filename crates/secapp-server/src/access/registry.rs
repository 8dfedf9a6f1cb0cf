//! The registry in memory: applications, tokens by id and by hash, and the
//! one rule that admits a token ([`Registry::admit`]), used both when a
//! request arrives and when a long request is checked again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use secapp_domain::Role;

use super::{Refused, TokenState};
use crate::store::{AccessChange, AppRecord, TokenRecord, UnreadableToken};

/// A token in memory: its record, and when it was last used, kept in atomics
/// so authenticating needs only the read lock.
pub(super) struct TokenEntry {
    pub(super) record: TokenRecord,
    pub(super) id: Arc<str>,
    /// Unix seconds of the last accepted use; 0 for never.
    pub(super) used: AtomicI64,
    /// The value of `used` last written to the store.
    pub(super) saved: AtomicI64,
}

impl TokenEntry {
    fn new(record: TokenRecord) -> Self {
        let saved = record.last_used_at.map_or(0, |at| at.timestamp());
        Self {
            id: Arc::from(record.id.as_str()),
            record,
            used: AtomicI64::new(saved),
            saved: AtomicI64::new(saved),
        }
    }

    fn last_used(&self) -> Option<DateTime<Utc>> {
        let seconds = self.used.load(Ordering::Relaxed);
        let in_memory = (seconds > 0)
            .then(|| DateTime::from_timestamp(seconds, 0))
            .flatten();
        in_memory.max(self.record.last_used_at)
    }

    /// The token as the admin operations show it.
    pub(super) fn state(&self) -> TokenState {
        TokenState {
            record: self.record.clone(),
            last_used_at: self.last_used(),
        }
    }

    /// The same token with a changed record, keeping its use times.
    fn with_record(&self, record: TokenRecord) -> Self {
        Self {
            id: self.id.clone(),
            record,
            used: AtomicI64::new(self.used.load(Ordering::Relaxed)),
            saved: AtomicI64::new(self.saved.load(Ordering::Relaxed)),
        }
    }

    fn live(&self, now: DateTime<Utc>) -> bool {
        self.record.revoked_at.is_none() && self.record.expires_at.is_none_or(|at| at > now)
    }
}

/// Every application and token one server knows.
#[derive(Default)]
pub(super) struct Registry {
    pub(super) apps: BTreeMap<String, AppRecord>,
    /// By token id. Entries are shared with `TokenUse` handles and never
    /// changed in place: a change replaces the entry.
    pub(super) tokens: BTreeMap<String, Arc<TokenEntry>>,
    /// Token id by hash.
    by_hash: HashMap<[u8; 32], String>,
    /// Token rows the store cannot read, by id: never accepted, but listed
    /// and revocable.
    pub(super) unreadable: BTreeMap<String, UnreadableToken>,
}

impl Registry {
    pub(super) fn new(apps: Vec<AppRecord>, tokens: Vec<TokenRecord>) -> Self {
        let mut registry = Self::default();
        for app in apps {
            registry.apps.insert(app.name.to_string(), app);
        }
        for token in tokens {
            registry.insert_token(token);
        }
        registry
    }

    fn insert_token(&mut self, record: TokenRecord) {
        self.by_hash.insert(record.hash, record.id.clone());
        self.tokens
            .insert(record.id.clone(), Arc::new(TokenEntry::new(record)));
    }

    /// The token with this hash.
    pub(super) fn by_hash(&self, hash: &[u8; 32]) -> Option<&Arc<TokenEntry>> {
        self.by_hash.get(hash).and_then(|id| self.tokens.get(id))
    }

    /// The one rule for letting a token in, now or again later: it is not
    /// revoked, has not expired at `now`, and its application is registered
    /// and enabled. Answers that application.
    ///
    /// # Errors
    /// [`Refused`] saying which part failed, in that order.
    pub(super) fn admit(
        &self,
        token: &TokenEntry,
        now: DateTime<Utc>,
    ) -> Result<&AppRecord, Refused> {
        let record = &token.record;
        if record.revoked_at.is_some() {
            return Err(Refused::Revoked);
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(Refused::Expired);
        }
        let app = self.apps.get(record.app.as_str()).ok_or(Refused::Invalid)?;
        if app.disabled_at.is_some() {
            return Err(Refused::Disabled);
        }
        Ok(app)
    }

    /// Merges what the store holds now (another server changed it). Only
    /// ever forward, so a read that started before one of this server's
    /// own changes cannot undo it: nothing is ever deleted, an application
    /// is replaced by a record changed no earlier, and a token once revoked
    /// stays revoked (tokens change in nothing else). Use times are kept.
    pub(super) fn reload(
        &mut self,
        apps: Vec<AppRecord>,
        tokens: Vec<TokenRecord>,
        unreadable: Vec<UnreadableToken>,
    ) {
        for app in apps {
            let newer = self
                .apps
                .get(app.name.as_str())
                .is_none_or(|held| app.updated_at >= held.updated_at);
            if newer {
                self.apps.insert(app.name.to_string(), app);
            }
        }
        for mut record in tokens {
            match self.tokens.get_mut(&record.id) {
                Some(held) => {
                    if held.record.revoked_at.is_none() && record.revoked_at.is_some() {
                        record.last_used_at = record.last_used_at.max(held.record.last_used_at);
                        *held = Arc::new(held.with_record(record));
                    }
                }
                None => self.insert_token(record),
            }
        }
        for token in unreadable {
            self.unreadable.insert(token.id.clone(), token);
        }
    }

    /// Applies a change the store has made durable.
    pub(super) fn apply(&mut self, change: AccessChange) {
        match change {
            AccessChange::CreateApp(app) | AccessChange::UpdateApp(app) => {
                self.apps.insert(app.name.to_string(), app);
            }
            AccessChange::IssueToken(token) => self.insert_token(token),
            AccessChange::RevokeToken { id, at } => {
                if let Some(entry) = self.tokens.get_mut(&id) {
                    let mut record = entry.record.clone();
                    record.revoked_at.get_or_insert(at);
                    *entry = Arc::new(entry.with_record(record));
                }
            }
        }
    }

    /// `app`'s tokens, oldest first.
    pub(super) fn tokens_of(&self, app: &str) -> Vec<TokenState> {
        let mut tokens: Vec<TokenState> = self
            .tokens
            .values()
            .filter(|entry| entry.record.app.as_str() == app)
            .map(|entry| entry.state())
            .collect();
        tokens.sort_by_key(|token| token.record.created_at);
        tokens
    }

    /// Whether some enabled admin application holds a live token, once
    /// `change` is applied.
    pub(super) fn has_admin_after(
        &self,
        change: Option<&AccessChange>,
        now: DateTime<Utc>,
    ) -> bool {
        let admins: HashSet<&str> = self
            .apps
            .values()
            .map(|app| match change {
                Some(AccessChange::UpdateApp(new)) if new.name == app.name => new,
                _ => app,
            })
            .filter(|app| app.disabled_at.is_none() && app.roles.contains(Role::Admin))
            .map(|app| app.name.as_str())
            .collect();
        self.tokens.values().any(|entry| {
            let revoked_now =
                matches!(change, Some(AccessChange::RevokeToken { id, .. }) if *id == entry.record.id);
            admins.contains(entry.record.app.as_str()) && entry.live(now) && !revoked_now
        })
    }
}

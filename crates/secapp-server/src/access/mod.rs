//! Who may do what: registered applications, their tokens, and the shared
//! compatibility token of the prototype.
//!
//! [`Access`] keeps every application and token in memory, so authenticating
//! a request is one hash and one map look-up, never a database read. Changes
//! go to the store first (with their audit event, in one transaction) and
//! reach memory only once durable, under one lock that serialises admin
//! writes: what an admin reads back is what a restart would load.
//!
//! - `registry.rs`: the maps in memory and [`Registry::admit`](registry), the
//!   one rule that lets a token in, at the first request and at every re-check.
//! - `admin.rs`: the admin operations, taking the specs `validate.rs` checks;
//!   the admin API and the offline command line call the same ones.
//! - `validate.rs`: admin request fields, checked and turned into specs.
//! - `usage.rs`: when tokens were last used, and writing that back.
//! - `secret.rs`: generating and hashing tokens; `failures.rs`: counting
//!   refusals.
//!
//! What it returns is domain data ([`AppDetails`], [`TokenListing`]); the
//! HTTP layer (`routes/admin/views.rs`) turns it into the wire's views.

mod admin;
pub mod failures;
mod registry;
pub mod secret;
mod usage;
pub mod validate;

pub use admin::Issued;
pub use usage::TokenUse;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use secapp_domain::{AppName, Role, Roles};

use crate::store::{
    AppRecord, AuditQuery, AuditRecord, Store, StoreError, TokenRecord, UnreadableToken,
};
use crate::token::ApiToken;
use failures::AuthFailures;
use registry::Registry;

/// The `token_id` recorded for requests made with the shared token.
pub const SHARED_TOKEN_ID: &str = "shared";

/// The actor named in the audit for the server itself (first start) and the
/// offline command line.
pub const SERVER_ACTOR: &str = "secapp";

/// The name of the application created at first start.
pub const FIRST_ADMIN_APP: &str = "admin";

/// An authenticated caller, as the extractors in [`crate::auth`] admit it.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The application it speaks for.
    pub app: AppName,
    /// What it may do.
    pub roles: Roles,
    /// The id of the token it used ([`SHARED_TOKEN_ID`] for the shared one).
    pub token_id: Arc<str>,
    /// The registered token it used, `None` for the shared one.
    pub token: Option<TokenUse>,
}

/// Who a request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticated {
    /// The shared compatibility token: it names no application.
    Shared,
    /// A registered application's token.
    App {
        /// The application.
        app: AppName,
        /// Its roles.
        roles: Roles,
        /// The token, to record its use once the request is admitted.
        token: TokenUse,
    },
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No token matches.
    Invalid,
    /// The token's expiry has passed.
    Expired,
    /// The token was revoked.
    Revoked,
    /// The token's application is disabled.
    Disabled,
}

/// Why a caller admitted earlier no longer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lapsed {
    /// Its token would now be refused, for this reason.
    Refused(Refused),
    /// Its application no longer holds the role; these are the roles it has.
    RoleRemoved(Roles),
    /// The name it used with the shared token has been registered.
    NameRegistered,
}

/// Why an admin operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No application by that name.
    #[error("there is no registered application named `{0}`")]
    UnknownApp(String),
    /// The name is taken.
    #[error("an application named `{0}` is already registered")]
    AppExists(String),
    /// No token with that id.
    #[error("there is no token with id `{0}`")]
    UnknownToken(String),
    /// A field that cannot be used; the text says which and why.
    #[error("{0}")]
    Invalid(String),
    /// The change would leave nobody able to administer the server online.
    #[error(
        "this would leave no enabled application with the admin role and a live token; \
         issue another admin token first (the offline command line can still recover a locked-out data dir)"
    )]
    LastAdmin,
    /// The system's random source failed.
    #[error("cannot generate a token: the system random source failed: {0}")]
    Random(getrandom::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who performs an admin operation, for the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The application, or [`SERVER_ACTOR`].
    pub name: String,
    /// The token it used.
    pub token: Option<String>,
    /// The address the request came from.
    pub source: Option<String>,
}

impl Actor {
    /// The server itself, or the offline command line.
    #[must_use]
    pub fn server() -> Self {
        Self {
            name: SERVER_ACTOR.to_owned(),
            token: None,
            source: None,
        }
    }
}

/// An application and its tokens, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDetails {
    /// The application.
    pub record: AppRecord,
    /// Its tokens, revoked and expired ones included.
    pub tokens: Vec<TokenState>,
}

/// A token as the registry holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    /// As stored.
    pub record: TokenRecord,
    /// When it was last accepted, including uses not yet written back.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// One token in a list: readable, or a row the store cannot read (listed so
/// it can be revoked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenListing {
    /// A token the registry holds.
    Readable(TokenState),
    /// A stored row that cannot be read; it is refused.
    Unreadable(UnreadableToken),
}

/// Applications, tokens and the shared token of one server.
pub struct Access {
    store: Arc<dyn Store>,
    /// A std lock: held for a look-up, never across an `.await`.
    registry: RwLock<Registry>,
    /// Serialises admin writes, so a check and the change it allows cannot
    /// interleave with another change.
    writes: tokio::sync::Mutex<()>,
    shared: Option<ApiToken>,
    guard_last_admin: bool,
    /// Whether other servers may change the store (PostgreSQL).
    shared_store: bool,
    /// Bumped after every change, so holders of long requests (streams)
    /// re-check that they are still admitted.
    revision: tokio::sync::watch::Sender<u64>,
    /// Refused authentications.
    pub failures: AuthFailures,
}

impl Access {
    /// Builds the registry from what the store holds. `shared` is the shared
    /// compatibility token, when that mode is on.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        apps: Vec<AppRecord>,
        tokens: Vec<TokenRecord>,
        shared: Option<ApiToken>,
    ) -> Self {
        let registry = Registry::new(apps, tokens);
        Self {
            shared_store: store.notices().is_some(),
            store,
            registry: RwLock::new(registry),
            writes: tokio::sync::Mutex::new(()),
            shared,
            guard_last_admin: true,
            revision: tokio::sync::watch::Sender::new(0),
            failures: AuthFailures::default(),
        }
    }

    /// Adds the token rows the store could not read: each is refused (its
    /// hash is not loaded), listed with the reason, and can be revoked.
    #[must_use]
    pub fn with_unreadable(self, tokens: Vec<UnreadableToken>) -> Self {
        {
            let mut registry = self.write();
            for token in tokens {
                registry.unreadable.insert(token.id.clone(), token);
            }
        }
        self
    }

    /// How many unreadable token rows are not revoked: each needs an
    /// operator to revoke it (or repair the row).
    #[must_use]
    pub fn unreadable_tokens_unrevoked(&self) -> usize {
        self.read()
            .unreadable
            .values()
            .filter(|token| token.revoked_at.is_none())
            .count()
    }

    /// For the offline command line: changes that leave no usable admin are
    /// allowed, since this is how a locked-out data dir is recovered.
    #[must_use]
    pub fn without_lockout_guard(mut self) -> Self {
        self.guard_last_admin = false;
        self
    }

    /// Whether the shared compatibility token is accepted.
    #[must_use]
    pub fn shared_token_enabled(&self) -> bool {
        self.shared.is_some()
    }

    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks an offered token.
    ///
    /// # Errors
    /// [`Refused`] saying why the token is not accepted.
    pub fn authenticate(
        &self,
        offered: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Authenticated, Refused> {
        if let Some(shared) = &self.shared
            && shared.matches(offered)
        {
            return Ok(Authenticated::Shared);
        }
        let hash = secret::hash(offered);
        let registry = self.read();
        let entry = registry.by_hash(&hash).ok_or(Refused::Invalid)?;
        let app = registry.admit(entry, now)?;
        Ok(Authenticated::App {
            app: app.name.clone(),
            roles: app.roles,
            token: TokenUse(entry.clone()),
        })
    }

    /// Before an admin change, when other servers share the store: merges
    /// what the store holds now, so the change is checked against (and may
    /// name) what another server did a moment ago.
    pub(super) async fn catch_up(&self) -> Result<(), AccessError> {
        if !self.shared_store {
            return Ok(());
        }
        let snapshot = self.store.snapshot().await?;
        self.reload(snapshot.apps, snapshot.tokens, snapshot.unreadable_tokens);
        Ok(())
    }

    /// Merges what the store holds now, after another server changed it;
    /// streams and long polls check their callers again.
    pub fn reload(
        &self,
        apps: Vec<AppRecord>,
        tokens: Vec<TokenRecord>,
        unreadable: Vec<UnreadableToken>,
    ) {
        self.write().reload(apps, tokens, unreadable);
        self.revision.send_modify(|revision| *revision += 1);
    }

    /// Wakes whenever applications or tokens change.
    #[must_use]
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// Checks again a caller admitted earlier, for requests that last
    /// (streams, long polls): its token (`None` for the shared one) still
    /// live, its application enabled and holding `role`; for the shared
    /// token, `app` still unregistered.
    ///
    /// # Errors
    /// [`Lapsed`] saying what changed.
    pub fn recheck(
        &self,
        token: Option<&str>,
        app: &AppName,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<(), Lapsed> {
        let registry = self.read();
        let Some(token) = token else {
            return if registry.apps.contains_key(app.as_str()) {
                Err(Lapsed::NameRegistered)
            } else {
                Ok(())
            };
        };
        let entry = registry
            .tokens
            .get(token)
            .ok_or(Lapsed::Refused(Refused::Invalid))?;
        let record = registry.admit(entry, now).map_err(Lapsed::Refused)?;
        if record.name != *app {
            return Err(Lapsed::Refused(Refused::Invalid));
        }
        if !record.roles.contains(role) {
            return Err(Lapsed::RoleRemoved(record.roles));
        }
        Ok(())
    }

    /// Whether `app` is registered (the shared token may not speak for it).
    #[must_use]
    pub fn is_registered(&self, app: &AppName) -> bool {
        self.read().apps.contains_key(app.as_str())
    }

    /// The enabled applications holding the `consume` role, by name.
    #[must_use]
    pub fn consuming_apps(&self) -> Vec<AppName> {
        self.read()
            .apps
            .values()
            .filter(|app| app.disabled_at.is_none() && app.roles.contains(Role::Consume))
            .map(|app| app.name.clone())
            .collect()
    }

    /// Every application, by name.
    #[must_use]
    pub fn apps(&self) -> Vec<AppDetails> {
        let registry = self.read();
        // One pass over the tokens, not one per application.
        let mut by_app: HashMap<&str, Vec<TokenState>> = HashMap::new();
        for entry in registry.tokens.values() {
            by_app
                .entry(entry.record.app.as_str())
                .or_default()
                .push(entry.state());
        }
        registry
            .apps
            .values()
            .map(|app| {
                let mut tokens = by_app.remove(app.name.as_str()).unwrap_or_default();
                tokens.sort_by_key(|token| token.record.created_at);
                AppDetails {
                    record: app.clone(),
                    tokens,
                }
            })
            .collect()
    }

    /// One application.
    ///
    /// # Errors
    /// [`AccessError::UnknownApp`].
    pub fn app(&self, name: &str) -> Result<AppDetails, AccessError> {
        let registry = self.read();
        let app = registry
            .apps
            .get(name)
            .ok_or_else(|| AccessError::UnknownApp(name.to_owned()))?;
        Ok(AppDetails {
            record: app.clone(),
            tokens: registry.tokens_of(name),
        })
    }

    /// Tokens, of one application or of all, oldest first; unreadable rows
    /// last.
    ///
    /// # Errors
    /// [`AccessError::UnknownApp`] when `app` is given and not registered.
    pub fn tokens(&self, app: Option<&str>) -> Result<Vec<TokenListing>, AccessError> {
        let registry = self.read();
        if let Some(app) = app
            && !registry.apps.contains_key(app)
        {
            return Err(AccessError::UnknownApp(app.to_owned()));
        }
        let mut tokens: Vec<TokenState> = registry
            .tokens
            .values()
            .filter(|entry| app.is_none_or(|app| entry.record.app.as_str() == app))
            .map(|entry| entry.state())
            .collect();
        tokens.sort_by_key(|token| token.record.created_at);
        let unreadable = registry
            .unreadable
            .values()
            .filter(|token| app.is_none_or(|app| token.app == app))
            .cloned()
            .map(TokenListing::Unreadable);
        Ok(tokens
            .into_iter()
            .map(TokenListing::Readable)
            .chain(unreadable)
            .collect())
    }

    /// The audit of admin actions, newest first.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.store.audit(query).await
    }
}

#[cfg(test)]
mod tests;

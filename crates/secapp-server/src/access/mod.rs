//! Who may do what: registered applications, their tokens, and the shared
//! compatibility token of the prototype.
//!
//! [`Access`] keeps every application and token in memory, so authenticating
//! a request is one hash and one map look-up, never a database read. Changes
//! go to the store first (with their audit event, in one transaction) and
//! reach memory only once durable, under one lock that serialises admin
//! writes: what an admin reads back is what a restart would load.
//!
//! The same operations serve the admin API and the offline command line
//! (`secapp apps ...` on a stopped server's data dir), so both validate and
//! audit alike.

pub mod failures;
pub mod secret;
pub mod validate;
mod views;

pub use views::time;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use secapp_api::admin::{AppPatch, AppView, IssuedToken, NewApp, NewToken, TokenView};
use secapp_domain::{AppName, Role, Roles};

use crate::store::{
    AccessChange, AppRecord, AuditEvent, AuditQuery, AuditRecord, Store, StoreError, TokenRecord,
    UnreadableToken,
};
use crate::token::ApiToken;
use failures::AuthFailures;
use secret::Secret;
use validate::{MAX_LABEL, MAX_TEXT, expiry, roles, text};

/// The `token_id` recorded for requests made with the shared token.
pub const SHARED_TOKEN_ID: &str = "shared";

/// The actor named in the audit for the server itself (first start) and the
/// offline command line.
pub const SERVER_ACTOR: &str = "secapp";

/// The name of the application created at first start.
pub const FIRST_ADMIN_APP: &str = "admin";

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

/// A handle on an accepted token: its id, and where its last use is noted.
#[derive(Clone)]
pub struct TokenUse(Arc<TokenEntry>);

impl TokenUse {
    /// The token's id.
    #[must_use]
    pub fn id(&self) -> &Arc<str> {
        &self.0.id
    }

    /// When the token stops working, if ever.
    #[must_use]
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.record.expires_at
    }

    /// Notes that the token was used at `now`: called only for admitted
    /// requests, so a refusal changes nothing.
    pub fn record(&self, now: DateTime<Utc>) {
        self.0.used.fetch_max(now.timestamp(), Ordering::Relaxed);
    }
}

impl std::fmt::Debug for TokenUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TokenUse").field(&self.0.id).finish()
    }
}

impl PartialEq for TokenUse {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for TokenUse {}

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

/// A token in memory: its record, and when it was last used, kept in atomics
/// so authenticating needs only the read lock.
struct TokenEntry {
    record: TokenRecord,
    id: Arc<str>,
    /// Unix seconds of the last accepted use; 0 for never.
    used: AtomicI64,
    /// The value of `used` last written to the store.
    saved: AtomicI64,
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

#[derive(Default)]
struct Registry {
    apps: BTreeMap<String, AppRecord>,
    /// By token id. Entries are shared with [`TokenUse`] handles and never
    /// changed in place: a change replaces the entry.
    tokens: BTreeMap<String, Arc<TokenEntry>>,
    /// Token id by hash.
    by_hash: HashMap<[u8; 32], String>,
    /// Token rows the store cannot read, by id: never accepted, but listed
    /// and revocable.
    unreadable: BTreeMap<String, UnreadableToken>,
}

impl Registry {
    fn insert_token(&mut self, record: TokenRecord) {
        self.by_hash.insert(record.hash, record.id.clone());
        self.tokens
            .insert(record.id.clone(), Arc::new(TokenEntry::new(record)));
    }

    fn apply(&mut self, change: AccessChange) {
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

    fn tokens_of<'a>(&'a self, app: &'a str) -> impl Iterator<Item = &'a TokenEntry> + 'a {
        self.tokens
            .values()
            .map(|entry| &**entry)
            .filter(move |entry| entry.record.app.as_str() == app)
    }

    /// Whether some enabled admin application holds a live token, once
    /// `change` is applied.
    fn has_admin_after(&self, change: Option<&AccessChange>, now: DateTime<Utc>) -> bool {
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
        let mut registry = Registry::default();
        for app in apps {
            registry.apps.insert(app.name.to_string(), app);
        }
        for token in tokens {
            registry.insert_token(token);
        }
        Self {
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
        let entry = registry
            .by_hash
            .get(&hash)
            .and_then(|id| registry.tokens.get(id))
            .ok_or(Refused::Invalid)?;
        let token = &entry.record;
        if token.revoked_at.is_some() {
            return Err(Refused::Revoked);
        }
        if token.expires_at.is_some_and(|at| at <= now) {
            return Err(Refused::Expired);
        }
        let app = registry
            .apps
            .get(token.app.as_str())
            .ok_or(Refused::Invalid)?;
        if app.disabled_at.is_some() {
            return Err(Refused::Disabled);
        }
        Ok(Authenticated::App {
            app: app.name.clone(),
            roles: app.roles,
            token: TokenUse(entry.clone()),
        })
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
        if entry.record.revoked_at.is_some() {
            return Err(Lapsed::Refused(Refused::Revoked));
        }
        if !entry.live(now) {
            return Err(Lapsed::Refused(Refused::Expired));
        }
        let record = registry
            .apps
            .get(app.as_str())
            .ok_or(Lapsed::Refused(Refused::Invalid))?;
        if record.disabled_at.is_some() {
            return Err(Lapsed::Refused(Refused::Disabled));
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
    pub fn apps(&self, now: DateTime<Utc>) -> Vec<AppView> {
        let registry = self.read();
        // One pass over the tokens, not one per application.
        let mut by_app: HashMap<&str, Vec<&TokenEntry>> = HashMap::new();
        for entry in registry.tokens.values() {
            by_app
                .entry(entry.record.app.as_str())
                .or_default()
                .push(entry);
        }
        registry
            .apps
            .values()
            .map(|app| {
                let tokens = by_app.remove(app.name.as_str()).unwrap_or_default();
                views::app(app, tokens.into_iter(), now)
            })
            .collect()
    }

    /// One application.
    ///
    /// # Errors
    /// [`AccessError::UnknownApp`].
    pub fn app(&self, name: &str, now: DateTime<Utc>) -> Result<AppView, AccessError> {
        let registry = self.read();
        let app = registry
            .apps
            .get(name)
            .ok_or_else(|| AccessError::UnknownApp(name.to_owned()))?;
        Ok(views::app(app, registry.tokens_of(name), now))
    }

    /// Tokens, of one application or of all, oldest first.
    ///
    /// # Errors
    /// [`AccessError::UnknownApp`] when `app` is given and not registered.
    pub fn tokens(
        &self,
        app: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<TokenView>, AccessError> {
        let registry = self.read();
        if let Some(app) = app
            && !registry.apps.contains_key(app)
        {
            return Err(AccessError::UnknownApp(app.to_owned()));
        }
        let mut tokens: Vec<&TokenEntry> = registry
            .tokens
            .values()
            .map(|entry| &**entry)
            .filter(|entry| app.is_none_or(|app| entry.record.app.as_str() == app))
            .collect();
        tokens.sort_by_key(|entry| entry.record.created_at);
        let unreadable = registry
            .unreadable
            .values()
            .filter(|token| app.is_none_or(|app| token.app == app))
            .map(views::unreadable_token);
        Ok(tokens
            .into_iter()
            .map(|entry| views::token(entry, now))
            .chain(unreadable)
            .collect())
    }

    /// Registers an application.
    ///
    /// # Errors
    /// [`AccessError`] when a field is invalid, the name is taken or the
    /// store fails.
    pub async fn create_app(
        &self,
        actor: &Actor,
        new: NewApp,
        now: DateTime<Utc>,
    ) -> Result<AppView, AccessError> {
        let name =
            AppName::parse(&new.name).map_err(|e| AccessError::Invalid(format!("name: {e}")))?;
        let record = AppRecord {
            roles: roles(&new.roles)?,
            description: text("description", new.description, MAX_TEXT)?,
            owner: text("owner", new.owner, MAX_TEXT)?,
            created_at: now,
            updated_at: now,
            disabled_at: None,
            name,
        };
        let detail = serde_json::json!({
            "roles": record.roles.iter().map(Role::as_str).collect::<Vec<_>>(),
            "description": record.description,
            "owner": record.owner,
        });
        let _writing = self.writes.lock().await;
        if self.read().apps.contains_key(record.name.as_str()) {
            return Err(AccessError::AppExists(record.name.to_string()));
        }
        let target = record.name.to_string();
        self.commit(actor, AccessChange::CreateApp(record), detail, now)
            .await?;
        self.app(&target, now)
    }

    /// Changes an application's roles, description, owner or disabled state.
    ///
    /// # Errors
    /// [`AccessError`] when the application is unknown, a field is invalid,
    /// the change would lock every admin out, or the store fails.
    pub async fn update_app(
        &self,
        actor: &Actor,
        name: &str,
        patch: AppPatch,
        now: DateTime<Utc>,
    ) -> Result<AppView, AccessError> {
        let _writing = self.writes.lock().await;
        let mut record = self
            .read()
            .apps
            .get(name)
            .cloned()
            .ok_or_else(|| AccessError::UnknownApp(name.to_owned()))?;
        if patch == AppPatch::default() {
            // Nothing to change: nothing written, nothing audited.
            return self.app(name, now);
        }
        if let Some(names) = &patch.roles {
            record.roles = roles(names)?;
        }
        if patch.description.is_some() {
            record.description = text("description", patch.description.clone(), MAX_TEXT)?;
        }
        if patch.owner.is_some() {
            record.owner = text("owner", patch.owner.clone(), MAX_TEXT)?;
        }
        match patch.disabled {
            Some(true) => {
                record.disabled_at.get_or_insert(now);
            }
            Some(false) => record.disabled_at = None,
            None => {}
        }
        record.updated_at = now;
        let detail = serde_json::to_value(&patch).unwrap_or_default();
        self.commit(actor, AccessChange::UpdateApp(record), detail, now)
            .await?;
        self.app(name, now)
    }

    /// Issues a token for `app`; the answer is the only place the token
    /// itself ever appears.
    ///
    /// # Errors
    /// [`AccessError`] when the application is unknown, the expiry or label
    /// is invalid, or the store fails.
    pub async fn issue_token(
        &self,
        actor: &Actor,
        app: &str,
        new: NewToken,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, AccessError> {
        let expires_at = expiry(&new, now)?;
        let label = text("label", new.label, MAX_LABEL)?;
        let secret = Secret::generate().map_err(AccessError::Random)?;
        let id = secret::new_token_id().map_err(AccessError::Random)?;
        let _writing = self.writes.lock().await;
        let app = self
            .read()
            .apps
            .get(app)
            .map(|record| record.name.clone())
            .ok_or_else(|| AccessError::UnknownApp(app.to_owned()))?;
        let record = TokenRecord {
            id: id.clone(),
            app,
            hash: secret.hash(),
            label,
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        let detail = serde_json::json!({
            "app": record.app.as_str(),
            "label": record.label,
            "expires_at": record.expires_at.map(views::time),
        });
        self.commit(actor, AccessChange::IssueToken(record), detail, now)
            .await?;
        let registry = self.read();
        let entry = registry
            .tokens
            .get(&id)
            .ok_or_else(|| AccessError::UnknownToken(id.clone()))?;
        Ok(IssuedToken {
            token: secret.expose().to_owned(),
            details: views::token(entry, now),
        })
    }

    /// Revokes a token; it is refused from now on. Revoking a revoked token
    /// changes nothing and answers as the first time.
    ///
    /// # Errors
    /// [`AccessError`] when the token is unknown, it is the last admin
    /// token, or the store fails.
    pub async fn revoke_token(
        &self,
        actor: &Actor,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenView, AccessError> {
        let _writing = self.writes.lock().await;
        let unreadable = self.read().unreadable.get(id).cloned();
        if let Some(token) = unreadable {
            return self.revoke_unreadable(actor, token, now).await;
        }
        let (app, revoked) = {
            let registry = self.read();
            let entry = registry
                .tokens
                .get(id)
                .ok_or_else(|| AccessError::UnknownToken(id.to_owned()))?;
            (
                entry.record.app.to_string(),
                entry.record.revoked_at.is_some(),
            )
        };
        if !revoked {
            let change = AccessChange::RevokeToken {
                id: id.to_owned(),
                at: now,
            };
            let detail = serde_json::json!({ "app": app });
            self.commit(actor, change, detail, now).await?;
        }
        let registry = self.read();
        let entry = registry
            .tokens
            .get(id)
            .ok_or_else(|| AccessError::UnknownToken(id.to_owned()))?;
        Ok(views::token(entry, now))
    }

    /// Revokes a token row the store cannot read: it was refused already;
    /// now it is marked so, and no longer counted as needing attention.
    /// Called with `writes` held.
    async fn revoke_unreadable(
        &self,
        actor: &Actor,
        mut token: UnreadableToken,
        now: DateTime<Utc>,
    ) -> Result<TokenView, AccessError> {
        if token.revoked_at.is_none() {
            let change = AccessChange::RevokeToken {
                id: token.id.clone(),
                at: now,
            };
            let detail = serde_json::json!({ "app": token.app, "unreadable": token.problem });
            self.commit(actor, change, detail, now).await?;
            token.revoked_at = Some(views::time(now));
            self.write()
                .unreadable
                .insert(token.id.clone(), token.clone());
        }
        Ok(views::unreadable_token(&token))
    }

    /// At first start (no application holds the admin role yet): registers
    /// the [`FIRST_ADMIN_APP`] application with the admin role and issues its
    /// token, to print once. `None` when an admin application exists, or
    /// when the name is taken by an application without the role (then
    /// the offline command line must grant it).
    ///
    /// # Errors
    /// [`AccessError`] when the store fails.
    pub async fn bootstrap(&self, now: DateTime<Utc>) -> Result<Option<IssuedToken>, AccessError> {
        {
            let registry = self.read();
            if registry
                .apps
                .values()
                .any(|app| app.roles.contains(Role::Admin))
            {
                return Ok(None);
            }
            if registry.apps.contains_key(FIRST_ADMIN_APP) {
                tracing::warn!(
                    "no application has the admin role and `{FIRST_ADMIN_APP}` is taken: grant the role with \
                     `secapp apps update <name> --role admin` on the stopped server's data dir"
                );
                return Ok(None);
            }
        }
        let actor = Actor::server();
        let app = NewApp {
            name: FIRST_ADMIN_APP.to_owned(),
            roles: vec![Role::Admin.as_str().to_owned()],
            description: Some("Created at first start to administer secapp.".to_owned()),
            owner: None,
        };
        self.create_app(&actor, app, now).await?;
        let token = NewToken {
            label: Some("first start".to_owned()),
            ..NewToken::default()
        };
        self.issue_token(&actor, FIRST_ADMIN_APP, token, now)
            .await
            .map(Some)
    }

    /// The audit of admin actions, newest first.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.store.audit(query).await
    }

    /// Writes back when tokens were last used; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; the times stay pending.
    pub async fn flush_usage(&self) -> Result<usize, StoreError> {
        let pending: Vec<(String, i64)> = self
            .read()
            .tokens
            .values()
            .filter_map(|entry| {
                let used = entry.used.load(Ordering::Relaxed);
                (used > entry.saved.load(Ordering::Relaxed))
                    .then(|| (entry.record.id.clone(), used))
            })
            .collect();
        let writes: Vec<(String, DateTime<Utc>)> = pending
            .iter()
            .filter_map(|(id, used)| DateTime::from_timestamp(*used, 0).map(|at| (id.clone(), at)))
            .collect();
        let count = writes.len();
        self.store.save_token_usage(writes).await?;
        let registry = self.read();
        for (id, used) in pending {
            if let Some(entry) = registry.tokens.get(&id) {
                entry.saved.fetch_max(used, Ordering::Relaxed);
            }
        }
        Ok(count)
    }

    /// Stores `change` with its audit event, then applies it in memory.
    /// Called with `writes` held.
    async fn commit(
        &self,
        actor: &Actor,
        change: AccessChange,
        detail: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), AccessError> {
        if self.guard_last_admin {
            let registry = self.read();
            if registry.has_admin_after(None, now) && !registry.has_admin_after(Some(&change), now)
            {
                return Err(AccessError::LastAdmin);
            }
        }
        let event = AuditEvent {
            at: now,
            actor: actor.name.clone(),
            actor_token: actor.token.clone(),
            source: actor.source.clone(),
            action: change.action().to_owned(),
            target: change.target().to_owned(),
            detail: detail.to_string(),
        };
        match self.store.change_access(change.clone(), event).await {
            Ok(()) => {}
            // Another writer changed the same thing first: said as what
            // the caller would have been told had it seen that change.
            Err(StoreError::Conflict(cause)) => {
                tracing::warn!(%cause, "an admin change conflicted with another writer");
                return Err(match change {
                    AccessChange::CreateApp(app) => AccessError::AppExists(app.name.to_string()),
                    AccessChange::UpdateApp(app) => AccessError::UnknownApp(app.name.to_string()),
                    AccessChange::IssueToken(token) => {
                        AccessError::UnknownApp(token.app.to_string())
                    }
                    AccessChange::RevokeToken { id, .. } => AccessError::UnknownToken(id),
                });
            }
            Err(e) => return Err(e.into()),
        }
        self.write().apply(change);
        self.revision.send_modify(|revision| *revision += 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests;

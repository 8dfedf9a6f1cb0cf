//! The admin operations: each takes a validated spec (see `validate.rs`),
//! stores the change with its audit event, then applies it in memory. The
//! admin API and the offline command line call the same ones.

use chrono::{DateTime, Utc};
use secapp_domain::{AppName, Role, Roles};

use super::secret::{self, Secret};
use super::validate::{AppChanges, AppSpec, TokenSpec};
use super::{Access, AccessError, Actor, AppDetails, FIRST_ADMIN_APP, TokenListing, TokenState};
use crate::store::{
    AccessChange, AdminGuard, AppRecord, AuditEvent, Changed, StoreError, TokenRecord,
};

/// A token just issued: the secret, shown this once, and its record.
#[derive(Debug)]
pub struct Issued {
    /// The token itself; only its hash is kept.
    pub secret: Secret,
    /// Its record.
    pub token: TokenState,
}

impl Access {
    /// Registers an application.
    ///
    /// # Errors
    /// [`AccessError`] when the name is taken or the store fails.
    pub async fn create_app(
        &self,
        actor: &Actor,
        spec: AppSpec,
        now: DateTime<Utc>,
    ) -> Result<AppDetails, AccessError> {
        let record = AppRecord {
            name: spec.name,
            roles: spec.roles,
            description: spec.description,
            owner: spec.owner,
            created_at: now,
            updated_at: now,
            disabled_at: None,
            stale_after: None,
        };
        let detail = serde_json::json!({
            "roles": role_names(record.roles),
            "description": record.description,
            "owner": record.owner,
        });
        let _writing = self.writes.lock().await;
        self.catch_up().await?;
        if self.read().apps.contains_key(record.name.as_str()) {
            return Err(AccessError::AppExists(record.name.to_string()));
        }
        let name = record.name.to_string();
        self.commit(actor, AccessChange::CreateApp(record), detail, now)
            .await?;
        self.app(&name)
    }

    /// Changes an application's roles, description, owner or disabled state.
    ///
    /// # Errors
    /// [`AccessError`] when the application is unknown, the change would
    /// lock every admin out, or the store fails.
    pub async fn update_app(
        &self,
        actor: &Actor,
        name: &str,
        changes: AppChanges,
        now: DateTime<Utc>,
    ) -> Result<AppDetails, AccessError> {
        let _writing = self.writes.lock().await;
        self.catch_up().await?;
        let mut record = self
            .read()
            .apps
            .get(name)
            .cloned()
            .ok_or_else(|| AccessError::UnknownApp(name.to_owned()))?;
        if changes.is_empty() {
            // Nothing to change: nothing written, nothing audited.
            return self.app(name);
        }
        let mut detail = serde_json::Map::new();
        if let Some(roles) = changes.roles {
            record.roles = roles;
            detail.insert("roles".into(), role_names(roles).into());
        }
        if let Some(description) = changes.description {
            detail.insert("description".into(), cleared(description.as_deref()));
            record.description = description;
        }
        if let Some(owner) = changes.owner {
            detail.insert("owner".into(), cleared(owner.as_deref()));
            record.owner = owner;
        }
        if let Some(disabled) = changes.disabled {
            if disabled {
                record.disabled_at.get_or_insert(now);
            } else {
                record.disabled_at = None;
            }
            detail.insert("disabled".into(), disabled.into());
        }
        if let Some(stale_after) = changes.stale_after {
            record.stale_after = stale_after;
            detail.insert(
                "stale_after".into(),
                stale_after.map_or(serde_json::Value::Null, |span| {
                    humantime::format_duration(span).to_string().into()
                }),
            );
        }
        record.updated_at = now;
        self.commit(actor, AccessChange::UpdateApp(record), detail.into(), now)
            .await?;
        self.app(name)
    }

    /// Issues a token for `app`; the answer is the only place the token
    /// itself ever appears.
    ///
    /// # Errors
    /// [`AccessError`] when the application is unknown, the random source
    /// fails, or the store fails.
    pub async fn issue_token(
        &self,
        actor: &Actor,
        app: &str,
        spec: TokenSpec,
        now: DateTime<Utc>,
    ) -> Result<Issued, AccessError> {
        let secret = Secret::generate().map_err(AccessError::Random)?;
        let id = secret::new_token_id().map_err(AccessError::Random)?;
        let _writing = self.writes.lock().await;
        self.catch_up().await?;
        let app: AppName = self
            .read()
            .apps
            .get(app)
            .map(|record| record.name.clone())
            .ok_or_else(|| AccessError::UnknownApp(app.to_owned()))?;
        let record = TokenRecord {
            id: id.clone(),
            app,
            hash: secret.hash(),
            label: spec.label,
            created_at: now,
            expires_at: spec.expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        let detail = serde_json::json!({
            "app": record.app.as_str(),
            "label": record.label,
            "expires_at": record.expires_at.map(secapp_domain::shown),
        });
        self.commit(actor, AccessChange::IssueToken(record), detail, now)
            .await?;
        let token = self
            .read()
            .tokens
            .get(&id)
            .map(|entry| entry.state())
            .ok_or_else(|| AccessError::UnknownToken(id.clone()))?;
        Ok(Issued { secret, token })
    }

    /// Revokes a token; it is refused from now on. Revoking a revoked token
    /// changes nothing and answers as the first time. A token row the store
    /// cannot read can be revoked too.
    ///
    /// # Errors
    /// [`AccessError`] when the token is unknown, it is the last admin
    /// token, or the store fails.
    pub async fn revoke_token(
        &self,
        actor: &Actor,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenListing, AccessError> {
        let _writing = self.writes.lock().await;
        self.catch_up().await?;
        let unreadable = self.read().unreadable.get(id).cloned();
        if let Some(mut token) = unreadable {
            if token.revoked_at.is_none() {
                let change = AccessChange::RevokeToken {
                    id: token.id.clone(),
                    at: now,
                };
                let detail = serde_json::json!({ "app": token.app, "unreadable": token.problem });
                self.commit(actor, change, detail, now).await?;
                token.revoked_at = Some(secapp_domain::shown(now));
                self.write()
                    .unreadable
                    .insert(token.id.clone(), token.clone());
            }
            return Ok(TokenListing::Unreadable(token));
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
        self.read()
            .tokens
            .get(id)
            .map(|entry| TokenListing::Readable(entry.state()))
            .ok_or_else(|| AccessError::UnknownToken(id.to_owned()))
    }

    /// At first start (no application holds the admin role yet): registers
    /// the [`FIRST_ADMIN_APP`] application with the admin role and issues its
    /// token, to print once. `None` when an admin application exists, or
    /// when the name is taken by an application without the role (then
    /// the offline command line must grant it).
    ///
    /// # Errors
    /// [`AccessError`] when the store fails.
    pub async fn bootstrap(&self, now: DateTime<Utc>) -> Result<Option<Issued>, AccessError> {
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
        let spec = AppSpec {
            name: AppName::parse(FIRST_ADMIN_APP)
                .map_err(|e| AccessError::Invalid(e.to_string()))?,
            roles: Roles::of(&[Role::Admin]),
            description: Some("Created at first start to administer secapp.".to_owned()),
            owner: None,
        };
        self.create_app(&actor, spec, now).await?;
        let token = TokenSpec {
            label: Some("first start".to_owned()),
            expires_at: None,
        };
        self.issue_token(&actor, FIRST_ADMIN_APP, token, now)
            .await
            .map(Some)
    }

    /// Stores `change` with its audit event (its action and target come
    /// from the change), then applies it in memory. Called with `writes` held.
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
        let guard = if self.guard_last_admin {
            AdminGuard::KeepOne
        } else {
            AdminGuard::Off
        };
        match self.store.change_access(change.clone(), event, guard).await {
            Ok(Changed::Applied) => {}
            // Another server's change meanwhile made this one the last.
            Ok(Changed::WouldLeaveNoAdmin) => return Err(AccessError::LastAdmin),
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

fn role_names(roles: Roles) -> Vec<&'static str> {
    roles.iter().map(Role::as_str).collect()
}

/// A free-text field as the audit shows it: `""` when it was cleared.
fn cleared(value: Option<&str>) -> serde_json::Value {
    value.unwrap_or_default().into()
}

//! Wire types of the admin API (`/admin/...`): registered applications,
//! their tokens, the audit of admin actions and failed authentications.
//!
//! Requests refuse unknown fields, so a misspelt field is an error rather
//! than a silently ignored setting. Times are RFC 3339 UTC with milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /admin/apps`: register an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "billing", "roles": ["consume"], "description": "Invoices", "owner": "team-billing@example.com"}))]
pub struct NewApp {
    /// The `App-name` its tokens will speak for: 1 to 128 printable ASCII
    /// characters, case-sensitive.
    pub name: String,
    /// At least one of `publish`, `consume`, `viewer`, `admin`.
    pub roles: Vec<String>,
    /// What it is, for people (at most 512 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who runs it, for people (at most 512 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// Body of `PATCH /admin/apps/{name}`: only the fields sent change; `{}`
/// changes nothing and records nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"roles": ["consume", "viewer"], "disabled": false}))]
pub struct AppPatch {
    /// The new set of roles (replaces the old one; at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// The new description; `""` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The new owner; `""` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `true` disables the application (its tokens are refused at once),
    /// `false` enables it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// How long it may go without polling or holding a stream before it
    /// counts as stale: a whole number and one unit, such as `5m` or `2h`;
    /// `""` returns it to the server's `--stale-after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<String>,
}

/// A registered application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppView {
    /// Its name, the `App-name` its tokens speak for.
    pub name: String,
    /// What it may do.
    pub roles: Vec<String>,
    /// What it is.
    pub description: Option<String>,
    /// Who runs it.
    pub owner: Option<String>,
    /// When it was registered.
    pub created_at: String,
    /// When it was last changed.
    pub updated_at: String,
    /// Whether its tokens are refused.
    pub disabled: bool,
    /// Its own stale-consumer allowance (`5m`), or null for the server's
    /// `--stale-after`.
    pub stale_after: Option<String>,
    /// When one of its tokens was last accepted (to within a minute).
    pub last_used_at: Option<String>,
    /// Its tokens, revoked and expired ones included; never the secrets.
    pub tokens: Vec<TokenView>,
}

/// Answer to `GET /admin/apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppsAnswer {
    /// Every registered application, by name.
    pub apps: Vec<AppView>,
}

/// Body of `POST /admin/apps/{name}/tokens`: issue a token. Send at most one
/// of `expires_in` and `expires_at`; neither means it never expires.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"expires_in": "90d", "label": "billing-prod"}))]
pub struct NewToken {
    /// Lifetime from now, such as `90d`, `12h` or `30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// Expiry time, RFC 3339, in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// A note, such as where the token is deployed (at most 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Its public id, shown in the history as `token_id`.
    pub id: String,
    /// The application it speaks for.
    pub app: String,
    /// Its note.
    pub label: Option<String>,
    /// `active`, `expired` or `revoked`; `unreadable` for a stored token
    /// this version of secapp cannot read (it is refused; revoke it).
    pub status: String,
    /// When it was issued.
    pub created_at: String,
    /// When it stops working, if ever.
    pub expires_at: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// When it was last accepted (to within a minute).
    pub last_used_at: Option<String>,
    /// Why secapp cannot read this token as stored (its times are then shown
    /// as stored). Absent for every token it can read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// Answer to issuing a token: the only time the token itself is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    /// The token: send it as `Token: <token>` or `Authorization: Bearer
    /// <token>`. It is not stored and cannot be shown again.
    pub token: String,
    /// What is kept about it.
    #[serde(flatten)]
    pub details: TokenView,
}

/// Answer to `GET /admin/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokensAnswer {
    /// The tokens, oldest first.
    pub tokens: Vec<TokenView>,
}

/// One admin action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Increases with every action.
    pub id: i64,
    /// When it happened.
    pub at: String,
    /// The application that did it, or `secapp` for the server itself (first
    /// start) and the offline command line.
    pub actor: String,
    /// The token the actor used.
    pub actor_token: Option<String>,
    /// The address the request came from.
    pub source_address: Option<String>,
    /// `app.create`, `app.update`, `token.issue`, `token.revoke` or
    /// `dead_letter.retry`.
    pub action: String,
    /// The application name, token id or `sink/event_id` acted on.
    pub target: String,
    /// The fields the action set.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// Answer to `GET /admin/audit`: admin actions, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditAnswer {
    /// One page of actions, newest first.
    pub events: Vec<AuditEntry>,
    /// Pass as `before` to read the next (older) page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// One refused authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthFailureView {
    /// When it happened.
    pub at: String,
    /// The error code the caller was given, such as `invalid_token`.
    pub reason: String,
    /// The `App-name` the caller sent, or its token's application.
    pub app: Option<String>,
    /// Where the request came from.
    pub source_address: Option<String>,
    /// The method and path asked for.
    pub request: String,
}

/// Answer to `GET /admin/auth-failures`: counts since the server started,
/// and the most recent refusals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthFailuresAnswer {
    /// Every refusal counted.
    pub total: u64,
    /// Refusals by error code.
    pub by_reason: BTreeMap<String, u64>,
    /// The latest refusals (at most 100), newest first.
    pub recent: Vec<AuthFailureView>,
}

/// One event a sink gave up on: kept until retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterView {
    /// The sink it was for.
    pub sink: String,
    /// The event's id in the outbox (what `retry` names).
    pub event_id: i64,
    /// What it is about: `state_changed`, `consumer_stale`, …
    pub event: String,
    /// When it happened.
    pub occurred_at: String,
    /// How many times it was tried.
    pub attempts: u32,
    /// When it was given up on.
    pub dead_at: Option<String>,
    /// What went wrong last.
    pub last_error: Option<String>,
}

/// Answer to `GET /admin/dead-letters`: newest event first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeadLettersAnswer {
    /// One page, newest event first.
    pub dead_letters: Vec<DeadLetterView>,
    /// Pass as `before` to read the next (older) page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// Answer to `POST /admin/dead-letters/{sink}/{event_id}/retry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetriedDeadLetter {
    /// The sink.
    pub sink: String,
    /// The event, pending again: the relay sends it next (before the
    /// sink's newer pending events), with its attempts counted afresh.
    pub event_id: i64,
}

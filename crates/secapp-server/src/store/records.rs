//! The records a store reads and writes: plain data, no behaviour beyond
//! small conversions, shared by every backend.

use chrono::{DateTime, Utc};
use secapp_domain::{AppName, ChangeId, ChangedAt, Consumer, Head, Level, Outcome, Roles};

/// A validated change about to be recorded.
#[derive(Debug, Clone)]
pub struct NewChange {
    /// The level announced.
    pub level: Level,
    /// When the producer says it changed.
    pub changed_at: ChangedAt,
    /// Who published it.
    pub published_by: AppName,
    /// When the server received it.
    pub received_at: DateTime<Utc>,
    /// The producer's `Idempotency-Key`, if it sent one.
    pub idempotency: Option<Idempotency>,
    /// The network address the publish came from, when known.
    pub source: Option<String>,
    /// The id of the token it was published with (`shared` for the shared
    /// compatibility token).
    pub token_id: Option<String>,
    /// The sinks (webhooks, brokers) that want each kind of event about a
    /// publish: their deliveries are written in the same transaction.
    pub sinks: std::sync::Arc<super::Subscribers>,
}

/// Which part of the history to read, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// At most this many entries.
    pub limit: u32,
    /// Only changes with a smaller id (the page after one ending there).
    pub before: Option<ChangeId>,
    /// Only changes published by this application.
    pub app: Option<AppName>,
    /// Only changes received at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only changes received before this time.
    pub until: Option<DateTime<Utc>>,
}

/// One published change as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Its `processed_id`.
    pub id: ChangeId,
    /// The level announced.
    pub level: Level,
    /// When the producer said it changed.
    pub changed_at: ChangedAt,
    /// Who published it.
    pub published_by: String,
    /// When the server received it.
    pub received_at: DateTime<Utc>,
    /// Where it came from, when known.
    pub source: Option<String>,
    /// The token it was published with, when known.
    pub token_id: Option<String>,
    /// Whether it became the head, tied, or was older.
    pub outcome: Outcome,
}

/// An `Idempotency-Key` and what it must match to be a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The key, scoped to the publishing application.
    pub key: String,
    /// The request as received (level and `Change_at` as given): a retry
    /// must repeat it exactly.
    pub request: String,
    /// Keys recorded before this are forgotten: the retry window.
    pub not_before: DateTime<Utc>,
}

/// What a publish did.
#[derive(Debug, Clone)]
pub enum Published {
    /// The change was recorded now.
    New(Recorded),
    /// A retry of an earlier publish with the same key and request: nothing
    /// new was recorded.
    Replayed {
        /// The `processed_id` the first publish was given.
        id: ChangeId,
    },
    /// The key was already used for a different request; nothing recorded.
    KeyReused,
}

impl Published {
    /// The change recorded now, if this publish recorded one.
    #[must_use]
    pub fn recorded(self) -> Option<Recorded> {
        match self {
            Self::New(recorded) => Some(recorded),
            Self::Replayed { .. } | Self::KeyReused => None,
        }
    }
}

/// A change as recorded: durable once this is returned.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The id given to the change (`processed_id`).
    pub id: ChangeId,
    /// Whether it became the head.
    pub outcome: Outcome,
    /// The head after recording it.
    pub head: Head,
}

impl Recorded {
    /// What a store answers once `change`, recorded as `id` with `outcome`
    /// and committed, is applied to `ledger` (the head as the transaction
    /// read it).
    ///
    /// # Errors
    /// [`super::StoreError::Corrupt`] when no head follows, which would be a bug.
    pub fn after_commit(
        ledger: &mut secapp_domain::Ledger,
        change: &NewChange,
        id: ChangeId,
        outcome: Outcome,
    ) -> Result<Self, super::StoreError> {
        let applied = ledger.apply(secapp_domain::Change {
            id,
            level: change.level,
            changed_at: change.changed_at,
        });
        debug_assert_eq!(applied, outcome);
        let head = ledger.head().cloned().ok_or_else(|| {
            super::StoreError::corrupt("a change was recorded but no head followed")
        })?;
        Ok(Self { id, outcome, head })
    }
}

/// One consumer application's record, as loaded or to write back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The application.
    pub app: AppName,
    /// Its cursor and what it was sent and acknowledged.
    pub consumer: Consumer,
}

/// What a store holds at start-up.
///
/// A row this version of secapp cannot read never stops a start: it is left
/// out (an unreadable token cannot be used, an unreadable consumer record is
/// as none, an unreadable head gives way to the newest readable one) and
/// reported in [`unreadable`](Self::unreadable), to be logged and counted in
/// the health answer.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The current head, if anything was ever published.
    pub head: Option<Head>,
    /// Every consumer application's record.
    pub consumers: Vec<ConsumerRecord>,
    /// Every registered application.
    pub apps: Vec<AppRecord>,
    /// Every token ever issued, revoked and expired ones included.
    pub tokens: Vec<TokenRecord>,
    /// Token rows that cannot be read, as stored, so they can still be
    /// listed and revoked.
    pub unreadable_tokens: Vec<UnreadableToken>,
    /// Other rows that cannot be read.
    pub unreadable: Vec<UnreadableRow>,
}

/// What one read of a table gives: the records read, and the rows that
/// could not be.
pub type Loaded<T, U = UnreadableRow> = (Vec<T>, Vec<U>);

impl Snapshot {
    /// The snapshot of what a backend read in one transaction: the head
    /// (with the head rows it could not read), consumer records,
    /// applications and tokens.
    #[must_use]
    pub fn assemble(
        (head, mut unreadable): (Option<Head>, Vec<UnreadableRow>),
        (consumers, unreadable_consumers): Loaded<ConsumerRecord>,
        (apps, unreadable_apps): Loaded<AppRecord>,
        (tokens, unreadable_tokens): Loaded<TokenRecord, UnreadableToken>,
    ) -> Self {
        unreadable.extend(unreadable_consumers);
        unreadable.extend(unreadable_apps);
        Self {
            head,
            consumers,
            apps,
            tokens,
            unreadable_tokens,
            unreadable,
        }
    }
}

/// A stored row that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRow {
    /// Its table: `apps`, `consumers` or `changes`.
    pub table: &'static str,
    /// Its key there: an application name or a change id.
    pub key: String,
    /// What cannot be read.
    pub problem: String,
}

/// A token row that cannot be read back, its fields as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableToken {
    /// Its id.
    pub id: String,
    /// The application it was issued to, as stored.
    pub app: String,
    /// Its label.
    pub label: Option<String>,
    /// When it was issued, as stored.
    pub created_at: String,
    /// When it expires, as stored.
    pub expires_at: Option<String>,
    /// When it was revoked, as stored.
    pub revoked_at: Option<String>,
    /// When it was last used, as stored.
    pub last_used_at: Option<String>,
    /// What cannot be read.
    pub problem: String,
}

/// A registered application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// Its name: the `App-name` its tokens speak for.
    pub name: AppName,
    /// What it may do.
    pub roles: Roles,
    /// What it is, for people.
    pub description: Option<String>,
    /// Who runs it, for people.
    pub owner: Option<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was disabled, while it is.
    pub disabled_at: Option<DateTime<Utc>>,
    /// How long it may go unseen before it counts as stale, when it has an
    /// allowance of its own; `None` uses the server's `--stale-after`.
    pub stale_after: Option<std::time::Duration>,
}

/// An issued token. The token itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its public id (`tok_…`), shown in lists and the history.
    pub id: String,
    /// The application it speaks for.
    pub app: AppName,
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    /// A note, such as where it is deployed.
    pub label: Option<String>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last accepted (written back about once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A change to applications or tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessChange {
    /// Registers a new application.
    CreateApp(AppRecord),
    /// Replaces an application's roles, description, owner or disabled time.
    UpdateApp(AppRecord),
    /// Records a new token.
    IssueToken(TokenRecord),
    /// Marks a token revoked.
    RevokeToken {
        /// The token.
        id: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Whether an admin change may leave no enabled admin application with a
/// live token, when one had one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminGuard {
    /// Refuse it: the server's own admin API.
    KeepOne,
    /// Allow it: the offline command line, recovering a locked-out install.
    Off,
}

/// What an admin change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// It is recorded, with its audit event.
    Applied,
    /// Nothing is recorded: it would have left no live admin (checked in
    /// the transaction, against what every server committed).
    WouldLeaveNoAdmin,
}

impl AccessChange {
    /// The audit action this change is recorded as.
    #[must_use]
    pub fn action(&self) -> &'static str {
        match self {
            Self::CreateApp(_) => "app.create",
            Self::UpdateApp(_) => "app.update",
            Self::IssueToken(_) => "token.issue",
            Self::RevokeToken { .. } => "token.revoke",
        }
    }

    /// What the change is done to, as the audit names it: an application
    /// name or a token id.
    #[must_use]
    pub fn target(&self) -> &str {
        match self {
            Self::CreateApp(app) | Self::UpdateApp(app) => app.name.as_str(),
            Self::IssueToken(token) => &token.id,
            Self::RevokeToken { id, .. } => id,
        }
    }
}

/// One admin action, as the audit keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it: an application, or `secapp` for the server and the
    /// offline command line.
    pub actor: String,
    /// The token the actor used, when there was one.
    pub actor_token: Option<String>,
    /// The network address the request came from, when known.
    pub source: Option<String>,
    /// What was done: `app.create`, `app.update`, `token.issue`, `token.revoke`.
    pub action: String,
    /// What it was done to: an application name or a token id.
    pub target: String,
    /// The fields it set, as a JSON object.
    pub detail: String,
}

/// A stored [`AuditEvent`] with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increases with every event.
    pub id: i64,
    /// The event.
    pub event: AuditEvent,
}

/// Which part of the admin audit to read, newest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// At most this many events.
    pub limit: u32,
    /// Only events with a smaller id.
    pub before: Option<i64>,
}

/// What another server sharing the database changed, as its store hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A publish became the head.
    Head,
    /// Applications or tokens changed.
    Registry,
    /// The feed was interrupted (a lost connection): anything may have
    /// changed meanwhile, so read both again.
    Resync,
}

//! The events a sink gave up on, for an operator: listed newest first and
//! made pending again one at a time, each retry audited. The admin API
//! (`/admin/dead-letters`) and the offline command line (`secapp
//! dead-letters`) both go through here.
//!
//! A retried event is sent next, before the sink's newer pending events but
//! after those it already delivered: a consumer that keeps the highest
//! `head_version` (or id) seen ignores it when it is older.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secapp_api::admin::DeadLetterView;

use super::Sinks;
use crate::access::Actor;
use crate::error::ApiError;
use crate::store::{AuditEvent, DeadLetter, Store};

/// The dead letters of one store, and the sinks they may be retried for.
pub struct DeadLetters {
    store: Arc<dyn Store>,
    /// The configured sinks; `None` offline, where any stored sink name goes.
    sinks: Option<Arc<Sinks>>,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters").finish_non_exhaustive()
    }
}

/// One page of dead letters.
#[derive(Debug)]
pub struct Page {
    /// Newest event first.
    pub dead_letters: Vec<DeadLetterView>,
    /// The `before` of the next page, if there may be one.
    pub next_before: Option<i64>,
}

impl DeadLetters {
    /// The dead letters of `store`, retried only for the configured `sinks`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, sinks: Arc<Sinks>) -> Self {
        Self {
            store,
            sinks: Some(sinks),
        }
    }

    /// The dead letters of a stopped server's `store`, for the command line.
    #[must_use]
    pub fn offline(store: Arc<dyn Store>) -> Self {
        Self { store, sinks: None }
    }

    /// Up to `limit` dead letters, of `sink` or all, of events older than
    /// `before` when given. A page never ends in the middle of one event's
    /// letters (unless one event alone fills it), so paging by `before`
    /// skips none.
    ///
    /// # Errors
    /// [`ApiError`] when the sink is unknown or the store fails.
    pub async fn list(
        &self,
        sink: Option<String>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Page, ApiError> {
        if let Some(sink) = &sink {
            self.known(sink)?;
        }
        let mut page = self.store.dead_letters(sink, before, limit).await?;
        let next_before = match page.last().map(|letter| letter.event_id) {
            Some(last) if page.len() == limit as usize => {
                if page.iter().any(|letter| letter.event_id != last) {
                    page.retain(|letter| letter.event_id != last);
                    Some(last + 1)
                } else {
                    Some(last)
                }
            }
            _ => None,
        };
        Ok(Page {
            dead_letters: page.into_iter().map(view).collect(),
            next_before,
        })
    }

    /// Makes `sink`'s dead letter of `event_id` pending again, due at `now`,
    /// audited as `actor`'s `dead_letter.retry`.
    ///
    /// # Errors
    /// [`ApiError::UnknownSink`], [`ApiError::UnknownDeadLetter`], or the
    /// store's failure.
    pub async fn retry(
        &self,
        actor: &Actor,
        sink: &str,
        event_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        self.known(sink)?;
        let audit = AuditEvent {
            at: now,
            actor: actor.name.clone(),
            actor_token: actor.token.clone(),
            source: actor.source.clone(),
            action: "dead_letter.retry".to_owned(),
            target: format!("{sink}/{event_id}"),
            detail: serde_json::json!({ "sink": sink, "event_id": event_id }).to_string(),
        };
        if !self
            .store
            .retry_dead_letter(sink, event_id, now, audit)
            .await?
        {
            return Err(ApiError::UnknownDeadLetter {
                sink: sink.to_owned(),
                event_id,
            });
        }
        if let Some(sinks) = &self.sinks {
            sinks.wake();
        }
        Ok(())
    }

    fn known(&self, sink: &str) -> Result<(), ApiError> {
        match &self.sinks {
            Some(sinks) if !sinks.all().iter().any(|s| s.name == sink) => {
                Err(ApiError::UnknownSink(sink.to_owned()))
            }
            _ => Ok(()),
        }
    }
}

/// A dead letter as the admin API shows it.
#[must_use]
pub fn view(letter: DeadLetter) -> DeadLetterView {
    DeadLetterView {
        sink: letter.sink,
        event_id: letter.event_id,
        event: letter.kind.as_str().to_owned(),
        occurred_at: secapp_domain::shown(letter.occurred_at),
        attempts: letter.attempts,
        dead_at: letter.dead_at.map(secapp_domain::shown),
        last_error: letter.last_error,
    }
}

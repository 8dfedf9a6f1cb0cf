//! What can go wrong in a store, sorted by what the caller should do about it.

use std::sync::Arc;

/// A storage failure, by what a caller can do about it. The text is for logs
/// only; clients are told the store is unavailable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another writer got there first: a unique key or an invariant the
    /// database enforces clashed with a concurrent change. Retrying the
    /// operation from a fresh read can succeed; an admin change answers 409.
    #[error("conflicting write: {0}")]
    Conflict(Cause),
    /// The database cannot be reached, locked, read or written just now.
    /// Safe to retry: nothing was recorded. Answered 503 with `Retry-After`.
    #[error("storage unavailable: {0}")]
    Unavailable(Cause),
    /// The database holds something this version cannot read, or broke an
    /// invariant the code relies on: damage or a bug, for an operator.
    #[error("storage holds unreadable data: {0}")]
    Corrupt(Cause),
    /// The store has been closed, or its worker has stopped.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// An [`Unavailable`](Self::Unavailable) error saying `context`.
    #[must_use]
    pub fn unavailable(context: impl Into<String>) -> Self {
        Self::Unavailable(Cause::new(context))
    }

    /// A [`Corrupt`](Self::Corrupt) error saying `context`.
    #[must_use]
    pub fn corrupt(context: impl Into<String>) -> Self {
        Self::Corrupt(Cause::new(context))
    }

    /// A [`Conflict`](Self::Conflict) error saying `context`.
    #[must_use]
    pub fn conflict(context: impl Into<String>) -> Self {
        Self::Conflict(Cause::new(context))
    }
}

/// What failed, and the driver's error behind it (kept for the logs).
#[derive(Debug, Clone)]
pub struct Cause {
    context: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    /// A cause with no underlying error.
    fn new(context: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            source: None,
        }
    }

    /// A cause with the driver's error behind it.
    #[must_use]
    pub fn with_source(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            context: context.into(),
            source: Some(Arc::new(source)),
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.context)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

//! When tokens were last used: noted in memory on every admitted request
//! (an atomic, no lock taken for writing) and written back in batches.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use super::Access;
use super::registry::TokenEntry;
use crate::store::StoreError;

/// A handle on an accepted token: its id, and where its last use is noted.
#[derive(Clone)]
pub struct TokenUse(pub(super) Arc<TokenEntry>);

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

impl Access {
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
}

//! How long each store operation takes, reported where the server says
//! (the `secapp_store_operation_duration_seconds{operation}` histogram),
//! each operation in a debug span (`store`, with its `operation`). Each
//! backend times its own operations at the point every call passes
//! through, so a new store method is timed by being written.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument as _;

/// Where a store reports the time of each operation; cheap to clone.
#[derive(Clone, Default)]
pub struct Timings(Option<Arc<dyn Fn(&'static str, Duration) + Send + Sync>>);

impl std::fmt::Debug for Timings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Timings").field(&self.0.is_some()).finish()
    }
}

impl Timings {
    /// Reports each operation's name and time to `record`.
    pub fn to(record: impl Fn(&'static str, Duration) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(record)))
    }

    /// Runs `call` in a debug span named for `operation`, and reports its time.
    pub async fn timed<T>(&self, operation: &'static str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call
            .instrument(tracing::debug_span!("store", operation))
            .await;
        if let Some(record) = &self.0 {
            record(operation, started.elapsed());
        }
        result
    }
}

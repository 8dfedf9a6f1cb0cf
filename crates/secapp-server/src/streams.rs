//! Caps on open streams, overall and per application. A permit is held for
//! the life of a stream and given back when the stream is dropped, however
//! it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use secapp_domain::AppName;

use crate::error::ApiError;

/// Counts open streams against the configured caps.
#[derive(Debug)]
pub struct StreamLimits {
    max_total: usize,
    max_per_app: usize,
    /// A std `Mutex`: taken once when a stream opens and once when it closes.
    open: Mutex<OpenStreams>,
}

#[derive(Debug, Default)]
struct OpenStreams {
    total: usize,
    per_app: HashMap<AppName, usize>,
}

/// One open stream's place under the caps; released on drop.
#[derive(Debug)]
pub struct StreamPermit {
    limits: Arc<StreamLimits>,
    app: AppName,
}

impl StreamLimits {
    /// Caps of `max_total` streams in all and `max_per_app` per application.
    #[must_use]
    pub fn new(max_total: usize, max_per_app: usize) -> Self {
        Self {
            max_total,
            max_per_app,
            open: Mutex::default(),
        }
    }

    /// Takes a place for a stream of `app`.
    ///
    /// # Errors
    /// [`ApiError::TooManyStreams`] when a cap is reached.
    pub fn acquire(self: &Arc<Self>, app: &AppName) -> Result<StreamPermit, ApiError> {
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(ApiError::TooManyStreams {
                scope: "on this server",
                limit: self.max_total,
            });
        }
        let for_app = open.per_app.get(app.as_str()).copied().unwrap_or(0);
        if for_app >= self.max_per_app {
            return Err(ApiError::TooManyStreams {
                scope: "for this application",
                limit: self.max_per_app,
            });
        }
        open.total += 1;
        open.per_app.insert(app.clone(), for_app + 1);
        Ok(StreamPermit {
            limits: Arc::clone(self),
            app: app.clone(),
        })
    }

    /// Streams open now.
    #[must_use]
    pub fn open(&self) -> usize {
        self.lock().total
    }

    /// The applications holding at least one stream now.
    #[must_use]
    pub fn apps(&self) -> Vec<AppName> {
        self.lock().per_app.keys().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, OpenStreams> {
        // Counters are updated together in one short section; a poisoned
        // lock still holds consistent numbers.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_app.get_mut(self.app.as_str()) {
            *count -= 1;
            if *count == 0 {
                open.per_app.remove(self.app.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> AppName {
        AppName::parse(name).unwrap()
    }

    #[test]
    fn the_per_app_cap_leaves_other_apps_alone_and_permits_come_back() {
        let limits = Arc::new(StreamLimits::new(10, 2));
        let a1 = limits.acquire(&app("a")).unwrap();
        let _a2 = limits.acquire(&app("a")).unwrap();
        assert!(matches!(
            limits.acquire(&app("a")),
            Err(ApiError::TooManyStreams { limit: 2, .. })
        ));
        let _b = limits.acquire(&app("b")).unwrap();
        drop(a1);
        let _a3 = limits.acquire(&app("a")).unwrap();
        assert_eq!(limits.open(), 3);
    }

    #[test]
    fn the_overall_cap_holds_across_apps() {
        let limits = Arc::new(StreamLimits::new(2, 5));
        let _a = limits.acquire(&app("a")).unwrap();
        let _b = limits.acquire(&app("b")).unwrap();
        assert!(matches!(
            limits.acquire(&app("c")),
            Err(ApiError::TooManyStreams {
                scope: "on this server",
                ..
            })
        ));
    }
}

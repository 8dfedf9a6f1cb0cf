//! Per-application request rate limits, one class for publishes and one for
//! everything that reads (polls, streams, reports), so a misbehaving app
//! exhausts its own allowance and nobody else's.
//!
//! Each class has a default allowance per application and optional
//! per-application overrides from the config file. Allowances are
//! generic-cell-rate (token bucket) limits from `governor`: `n` requests per
//! second with bursts of `2n`. Zero means unlimited.

use std::collections::HashMap;
use std::num::NonZeroU32;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use secapp_domain::AppName;

use crate::config::RateLimitConfig;
use crate::error::ApiError;

/// Which allowance a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `POST /secapp/update`.
    Publish,
    /// Polls, streams, the consumer report and the history.
    Read,
}

/// The limits of one server.
pub struct RateLimits {
    publish: Allowances,
    read: Allowances,
    clock: DefaultClock,
}

/// One class: the default per app, and the overridden apps' own limiters.
struct Allowances {
    default: Option<DefaultKeyedRateLimiter<AppName>>,
    /// `None` for an app whose override is "unlimited".
    overrides: HashMap<AppName, Option<DefaultDirectRateLimiter>>,
}

impl RateLimits {
    /// Builds the limiters from the configuration.
    #[must_use]
    pub fn new(config: &RateLimitConfig) -> Self {
        let allowances =
            |default: u32, pick: fn(&crate::config::AppLimits) -> Option<u32>| Allowances {
                default: quota(default).map(RateLimiter::dashmap),
                overrides: config
                    .per_app
                    .iter()
                    .filter_map(|(app, limits)| {
                        pick(limits).map(|rate| (app.clone(), quota(rate).map(RateLimiter::direct)))
                    })
                    .collect(),
            };
        Self {
            publish: allowances(config.publish_per_second, |l| l.publish_per_second),
            read: allowances(config.read_per_second, |l| l.read_per_second),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request of `class` from `app`'s allowance.
    ///
    /// # Errors
    /// [`ApiError::RateLimited`] with the seconds until a request would pass.
    pub fn check(&self, app: &AppName, class: Class) -> Result<(), ApiError> {
        let allowances = match class {
            Class::Publish => &self.publish,
            Class::Read => &self.read,
        };
        let outcome = match allowances.overrides.get(app.as_str()) {
            Some(None) => return Ok(()),
            Some(Some(limiter)) => limiter.check(),
            None => match &allowances.default {
                None => return Ok(()),
                Some(limiter) => limiter.check_key(app),
            },
        };
        outcome.map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited {
                retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    /// Forgets applications whose allowance is full again, so the keyed
    /// state does not keep every name ever seen.
    pub fn forget_idle(&self) {
        for allowances in [&self.publish, &self.read] {
            if let Some(limiter) = &allowances.default {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }
}

fn quota(per_second: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AppLimits;

    fn app(name: &str) -> AppName {
        AppName::parse(name).unwrap()
    }

    #[test]
    fn an_app_over_its_allowance_is_refused_and_others_are_not() {
        let limits = RateLimits::new(&RateLimitConfig {
            publish_per_second: 1,
            read_per_second: 0,
            per_app: HashMap::new(),
        });
        // A burst of two, then refusals with a wait of about a second.
        assert!(limits.check(&app("noisy"), Class::Publish).is_ok());
        assert!(limits.check(&app("noisy"), Class::Publish).is_ok());
        assert!(matches!(
            limits.check(&app("noisy"), Class::Publish),
            Err(ApiError::RateLimited { retry_after_s: 1 })
        ));
        assert!(limits.check(&app("quiet"), Class::Publish).is_ok());
        for _ in 0..1000 {
            assert!(
                limits.check(&app("noisy"), Class::Read).is_ok(),
                "0 = unlimited"
            );
        }
    }

    #[test]
    fn overrides_replace_the_default_for_one_app() {
        let mut per_app = HashMap::new();
        per_app.insert(
            app("vip"),
            AppLimits {
                publish_per_second: Some(0),
                read_per_second: Some(1),
            },
        );
        let limits = RateLimits::new(&RateLimitConfig {
            publish_per_second: 1,
            read_per_second: 100,
            per_app,
        });
        for _ in 0..10 {
            assert!(limits.check(&app("vip"), Class::Publish).is_ok());
        }
        assert!(limits.check(&app("vip"), Class::Read).is_ok());
        assert!(limits.check(&app("vip"), Class::Read).is_ok());
        assert!(limits.check(&app("vip"), Class::Read).is_err());
        limits.forget_idle();
    }
}

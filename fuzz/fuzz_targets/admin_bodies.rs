//! The admin API's bodies, through the checks the registry makes before
//! anything is stored (the specs `access::validate` builds, as the handlers
//! do). Nothing may panic; an accepted expiry is storable, an accepted
//! stale allowance positive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secapp_api::admin::{AppPatch, NewApp, NewToken};
use secapp_server::access::validate;
use secapp_server::routes::body;

fuzz_target!(|data: &[u8]| {
    if let Ok(new) = body::parse::<NewApp>(data) {
        let _ = validate::new_app(new);
    }
    if let Ok(patch) = body::parse::<AppPatch>(data)
        && let Ok(changes) = validate::app_patch(patch)
        && let Some(Some(allowance)) = changes.stale_after
    {
        assert!(!allowance.is_zero());
    }
    if let Ok(new) = body::parse::<NewToken>(data) {
        let now = chrono::DateTime::from_timestamp(1_796_000_000, 0).expect("a time");
        if let Ok(spec) = validate::new_token(new, now)
            && let Some(at) = spec.expires_at
        {
            assert!(secapp_domain::in_range(at) && at > now);
        }
    }
});

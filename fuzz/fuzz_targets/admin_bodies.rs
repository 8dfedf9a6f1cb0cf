//! The admin API's bodies, through the checks the registry makes before
//! anything is stored. Nothing may panic; an accepted expiry is storable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secapp_api::admin::{AppPatch, NewApp, NewToken};
use secapp_domain::AppName;
use secapp_server::access::validate;
use secapp_server::routes::body;

fuzz_target!(|data: &[u8]| {
    if let Ok(new) = body::parse::<NewApp>(data) {
        let _ = AppName::parse(&new.name);
        let _ = validate::roles(&new.roles);
        let _ = validate::text("description", new.description, validate::MAX_TEXT);
        let _ = validate::text("owner", new.owner, validate::MAX_TEXT);
    }
    if let Ok(patch) = body::parse::<AppPatch>(data) {
        if let Some(roles) = &patch.roles {
            let _ = validate::roles(roles);
        }
        let _ = validate::text("owner", patch.owner, validate::MAX_TEXT);
    }
    if let Ok(new) = body::parse::<NewToken>(data) {
        let now = chrono::DateTime::from_timestamp(1_796_000_000, 0).expect("a time");
        if let Ok(Some(at)) = validate::expiry(&new, now) {
            assert!(secapp_domain::in_range(at) && at > now);
        }
        let _ = validate::text("label", new.label, validate::MAX_LABEL);
    }
});

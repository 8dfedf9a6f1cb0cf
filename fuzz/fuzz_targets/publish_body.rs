//! `POST /secapp/update`'s body, as the route reads it: one JSON object,
//! then its level and `Change_at`. Nothing may panic; whatever is accepted
//! must be storable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secapp_api::PublishRequest;
use secapp_domain::{ChangedAt, LevelRange};
use secapp_server::routes::body;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = body::parse::<PublishRequest>(data) else {
        return;
    };
    let _ = LevelRange::default().level(request.current_status);
    if let Some(raw) = &request.change_at
        && let Ok(at) = ChangedAt::parse(raw)
    {
        assert!(secapp_domain::in_range(at.instant()));
    }
});

//! Every header value secapp reads: `App-name`, the token in `Token` and
//! `Authorization`, `Idempotency-Key`, `If-None-Match`, `Last-Event-ID`.
//! Nothing may panic; a name or key accepted is the text sent.
#![no_main]

use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use secapp_domain::AppName;
use secapp_server::auth;
use secapp_server::routes::params;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let bytes = value.as_bytes();
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(name) = AppName::parse(text)
    {
        assert_eq!(name.as_str(), text);
    }
    if let Ok(key) = params::parse_idempotency_key(bytes) {
        assert_eq!(key.as_bytes(), bytes);
    }
    let _ = params::parse_if_none_match(std::iter::once(bytes));
    let _ = params::parse_last_event_id(Some(bytes));
    let mut headers = HeaderMap::new();
    headers.insert("authorization", value.clone());
    let _ = auth::credential(&headers);
    headers.insert("token", value);
    let _ = auth::credential(&headers);
});

//! The query string of every endpoint that reads one, through axum's
//! extractor and secapp's own checks. Nothing may panic; what is accepted
//! is within the documented bounds.
#![no_main]

use std::time::Duration;

use axum::extract::Query;
use axum::http::Uri;
use libfuzzer_sys::fuzz_target;
use secapp_server::routes::{admin, alerts, consumers, history, poll};

fuzz_target!(|text: &str| {
    let Ok(uri) = format!("/x?{text}").parse::<Uri>() else {
        return;
    };
    let max_wait = Duration::from_secs(55);
    if let Ok(Query(params)) = Query::<poll::PollParams>::try_from_uri(&uri)
        && let Ok((_, wait)) = params.read(max_wait)
    {
        assert!(wait.is_none_or(|wait| wait <= max_wait));
    }
    if let Ok(Query(params)) = Query::<history::HistoryParams>::try_from_uri(&uri)
        && let Ok(query) = params.read()
    {
        assert!((1..=1000).contains(&query.limit));
    }
    if let Ok(Query(params)) = Query::<admin::AuditParams>::try_from_uri(&uri)
        && let Ok(query) = params.read()
    {
        assert!((1..=1000).contains(&query.limit));
    }
    if let Ok(Query(params)) = Query::<alerts::AlertsParams>::try_from_uri(&uri) {
        let _ = params.read();
    }
    if let Ok(Query(params)) = Query::<alerts::AlertHistoryParams>::try_from_uri(&uri)
        && let Ok((_, limit)) = params.read()
    {
        assert!((1..=1000).contains(&limit));
    }
    let _ = Query::<consumers::ConsumersParams>::try_from_uri(&uri);
    let _ = Query::<admin::TokensParams>::try_from_uri(&uri);
});

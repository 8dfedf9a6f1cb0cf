//! axum's `Query` and `Path`, refusing with our JSON [`ApiError`] (400
//! `invalid_query` / `invalid_path`) instead of axum's plain-text rejection,
//! so no handler converts a rejection itself.

use axum::extract::FromRequestParts;

use crate::error::ApiError;

/// Query parameters, deserialised; a malformed query string is 400 `invalid_query`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters; one that cannot be read is 400 `invalid_path`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

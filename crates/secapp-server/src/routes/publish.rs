//! `POST /secapp/update`: publish a change, answered once it is durable.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use secapp_api::{PublishAnswer, PublishRequest};
use secapp_domain::ChangedAt;

use crate::auth::{AsPublisher, Principal, SourceAddress, single};
use crate::error::ApiError;
use crate::routes::body::JsonBody;
use crate::routes::params;
use crate::state::AppState;
use crate::store::{Idempotency, NewChange, Published};

/// Publish a change of the criticality level.
///
/// Answers once the change is durable (committed and synced). The change with
/// the latest `Change_at` is the current state; a change whose `Change_at`
/// equals the current state's does not replace it (the first one wins), and an
/// older change is recorded in the history without winning.
///
/// Send an `Idempotency-Key` to make retries safe: a retry with the same key
/// and the same body (within the retry window, 24 h by default) is answered
/// with the first publish's `processed_id` and records nothing new.
#[utoipa::path(
    post,
    path = "/secapp/update",
    tag = "criticality",
    params(
        ("App-name" = String, Header, description = "Name of the publishing application. With an application's own token it must be that application.", example = "security-team"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: 1–255 visible ASCII characters, unique per intended change.", example = "3f1c9a2e-incident-4711"),
    ),
    request_body(content = PublishRequest, content_type = "application/json",
        description = "The new level and when it changed. `Change_at` may be omitted: the server's time of receipt is used."),
    responses(
        (status = 200, description = "Recorded durably, or a retry answered with the first id (then `Idempotent-Replayed: true`).", body = PublishAnswer),
        (status = 400, description = "`missing_app_name`, `invalid_app_name`, `malformed_json`, `unreadable_body` or `invalid_idempotency_key`.", body = secapp_api::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `conflicting_credentials`, `token_expired` or `token_revoked`.", body = secapp_api::ErrorBody),
        (status = 403, description = "`missing_role` (needs `publish`), `app_disabled`, `app_name_mismatch` or `shared_token_not_allowed`.", body = secapp_api::ErrorBody),
        (status = 413, description = "`body_too_large`: the body exceeds 16 KiB.", body = secapp_api::ErrorBody),
        (status = 422, description = "`invalid_body` (missing field, wrong type), `level_out_of_range`, `invalid_change_at`, `change_at_in_future`, or `idempotency_key_reused` (the key was used for a different body).", body = secapp_api::ErrorBody),
        (status = 503, description = "`store_unavailable`: retry after the `Retry-After` seconds.", body = secapp_api::ErrorBody),
    ),
    security(("token" = []), ("bearer" = [])),
)]
pub async fn publish(
    State(state): State<AppState>,
    principal: AsPublisher,
    source: SourceAddress,
    key: Result<IdempotencyKey, ApiError>,
    body: Result<JsonBody<PublishRequest>, ApiError>,
) -> Result<Response, ApiError> {
    // The header and body are checked here, not before the handler, so
    // every refusal of an admitted producer is counted.
    let answered = record(&state, &principal, source, key, body).await;
    if answered.is_err() {
        state.metrics.refused_publish();
    }
    answered
}

async fn record(
    state: &AppState,
    principal: &Principal,
    source: SourceAddress,
    key: Result<IdempotencyKey, ApiError>,
    body: Result<JsonBody<PublishRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let key = key?;
    let JsonBody(request) = body?;
    let mut change = validate(state, principal, key, request)?;
    change.source = source.0.map(|ip| ip.to_string());
    match state.hub.publish(change).await? {
        Published::New(recorded) => Ok(Json(PublishAnswer {
            processed_id: recorded.id.0,
        })
        .into_response()),
        Published::Replayed { id } => {
            let mut response = Json(PublishAnswer { processed_id: id.0 }).into_response();
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            Ok(response)
        }
        Published::KeyReused => Err(ApiError::IdempotencyKeyReused),
    }
}

/// Answer header marking a publish answered from an earlier one with the
/// same `Idempotency-Key`.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// The optional `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub struct IdempotencyKey(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        single(&parts.headers, &crate::headers::IDEMPOTENCY_KEY)?
            .map(params::parse_idempotency_key)
            .transpose()
            .map(Self)
    }
}

/// Turns a well-formed body into a change the domain accepts.
fn validate(
    state: &AppState,
    principal: &Principal,
    key: IdempotencyKey,
    request: PublishRequest,
) -> Result<NewChange, ApiError> {
    let now = state.clock.now();
    let level = state.requests.levels.level(request.current_status)?;
    let changed_at = match &request.change_at {
        Some(raw) => ChangedAt::parse(raw)?.not_after(now, state.requests.max_clock_skew)?,
        None => ChangedAt::from_instant(now),
    };
    let not_before = chrono::TimeDelta::from_std(state.requests.idempotency_window)
        .ok()
        .and_then(|window| now.checked_sub_signed(window))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let idempotency = key.0.map(|key| Idempotency {
        key,
        // The request as the producer sent it, re-serialised so spacing and
        // field order do not matter.
        request: serde_json::to_string(&request).unwrap_or_default(),
        not_before,
    });
    Ok(NewChange {
        level,
        changed_at,
        published_by: principal.app.clone(),
        received_at: now,
        idempotency,
        source: None,
        token_id: Some(principal.token_id.to_string()),
        // Filled in by the hub from the configuration.
        sinks: Default::default(),
    })
}

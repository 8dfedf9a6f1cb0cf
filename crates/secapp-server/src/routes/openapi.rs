//! The OpenAPI 3.1 document at `/openapi.json`: generated from the handlers'
//! annotations, then completed by the rules declared once here, so that it
//! states every constraint the server enforces and every status it answers.
//!
//! - [`patterns`]: the grammar of each constrained text on the wire. The
//!   server's parsers accept exactly these; a property test holds the two
//!   together.
//! - Parameters and body fields get their constraints by name, wherever they
//!   appear ([`PARAMETERS`], [`FIELDS`]).
//! - Every operation gets the refusals shared by all of its kind: any
//!   request (400), a caller's credentials (401, 403, 429), a body (408,
//!   413, 422).
//! - The level range is the server's configured one.

use secapp_api::errors::{ErrorCode, RetryAfter};
use secapp_domain::{LevelRange, Role};
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, alerts, consumers, health, history, poll, publish, stream};
use crate::http_limits::{MAX_HEAD_BYTES, MAX_HEADERS};
use crate::routes::body::MAX_BODY_BYTES;

/// The grammar of each constrained text on the wire, as the patterns the
/// document states (ECMA-262 regular expressions, which Python and Rust read
/// alike for these).
pub mod patterns {
    /// `App-name`, and application names everywhere: 1 to 128 printable
    /// ASCII characters, no space at either end.
    pub const APP_NAME: &str = r"^[!-~]([ -~]{0,126}[!-~])?$";
    /// `Idempotency-Key`: 1 to 255 visible ASCII characters.
    pub const IDEMPOTENCY_KEY: &str = r"^[!-~]{1,255}$";
    /// `If-None-Match`: `*`, or a list of ETags this server gives; empty is
    /// as not sent.
    pub const IF_NONE_MATCH: &str =
        r#"^(\*|(W/)?"[0-9]{1,18}"([ \t]*,[ \t]*(W/)?"[0-9]{1,18}")*)?$"#;
    /// `Last-Event-ID`: an event's id, or nothing.
    pub const LAST_EVENT_ID: &str = r"^([0-9]{1,18})?$";
    /// `Change_at`: RFC 3339 (`T`, `t` or a space between date and time;
    /// `Z`, `z` or an offset), or a naive ISO 8601 time taken as UTC, with or
    /// without seconds; up to nine fractional digits.
    pub const CHANGE_AT: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})?)?$";
    /// Free text (descriptions, owners, labels): no control characters.
    pub const TEXT: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";
    /// A token's `expires_in`: a whole number and one unit.
    pub const LIFETIME: &str =
        r"^([1-9][0-9]{0,5}d|[1-9][0-9]{0,6}h|[1-9][0-9]{0,8}m|[1-9][0-9]{0,9}s)$";
    /// An application's `stale_after`: a span as `expires_in` writes it,
    /// or empty for the server's default.
    pub const STALE_AFTER: &str =
        r"^([1-9][0-9]{0,5}d|[1-9][0-9]{0,6}h|[1-9][0-9]{0,8}m|[1-9][0-9]{0,9}s)?$";
}

/// The largest `status_change_id` a client may send back: 18 digits.
pub const MAX_ID: i64 = 999_999_999_999_999_999;

/// The generated part of the document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "secapp",
        description = "Broadcasts one organisation-wide security criticality level to every application in a fleet. \
            Authenticate with your application's token in the `Token` header or as `Authorization: Bearer` (use **Authorize**). \
            `App-name` must name the token's application: `/secapp/update` and `/secapp/stream` require it, \
            the reports and the admin API take it from the token.",
    ),
    paths(
        publish::publish,
        poll::poll,
        stream::stream,
        consumers::consumers,
        alerts::alerts,
        alerts::alert_history,
        history::history,
        admin::list_apps,
        admin::create_app,
        admin::show_app,
        admin::update_app,
        admin::issue_token,
        admin::list_tokens,
        admin::revoke_token,
        admin::audit,
        admin::auth_failures,
        admin::dead_letters::list,
        admin::dead_letters::retry,
        health::healthz,
        health::readyz,
        health::metrics
    ),
    components(schemas(
        secapp_api::PublishRequest,
        secapp_api::PublishAnswer,
        secapp_api::PollAnswer,
        secapp_api::CurrentState,
        secapp_api::Empty,
        secapp_api::ErrorBody,
        secapp_api::ConsumersAnswer,
        secapp_api::ConsumerView,
        secapp_api::SightingView,
        secapp_api::alerts::AlertStatus,
        secapp_api::alerts::AlertView,
        secapp_api::alerts::AlertsAnswer,
        secapp_api::alerts::AlertTransitionView,
        secapp_api::alerts::AlertHistoryAnswer,
        secapp_api::HistoryAnswer,
        secapp_api::HistoryEntry,
        secapp_api::admin::NewApp,
        secapp_api::admin::AppPatch,
        secapp_api::admin::AppView,
        secapp_api::admin::AppsAnswer,
        secapp_api::admin::NewToken,
        secapp_api::admin::TokenView,
        secapp_api::admin::IssuedToken,
        secapp_api::admin::TokensAnswer,
        secapp_api::admin::AuditEntry,
        secapp_api::admin::AuditAnswer,
        secapp_api::admin::AuthFailureView,
        secapp_api::admin::AuthFailuresAnswer,
        secapp_api::admin::DeadLetterView,
        secapp_api::admin::DeadLettersAnswer,
        secapp_api::admin::RetriedDeadLetter,
    )),
    modifiers(&TokenScheme),
    tags(
        (name = "criticality", description = "Publish and learn the criticality level."),
        (name = "admin", description = "Applications, tokens and audits; needs the `admin` role."),
        (name = "operations", description = "Probes for orchestrators and load balancers."),
    ),
)]
pub struct ApiDoc;

/// Declares the two ways to send a token: the `Token` header and
/// `Authorization: Bearer`.
struct TokenScheme;

impl Modify for TokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                secapp_api::TOKEN_HEADER,
                "An application's token (the first admin token is printed at first start), or the shared compatibility token.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Where a parameter is sent, and its name.
type ParameterKey = (&'static str, &'static str);

/// Makes a schema (or the constraints to merge into one).
type Rules = fn() -> Value;

/// The schema of each parameter, by where it is sent and its name.
const PARAMETERS: &[(ParameterKey, Rules)] = &[
    (("header", "App-name"), app_name),
    (("path", "name"), app_name),
    (("query", "app"), app_name),
    (
        ("header", "Idempotency-Key"),
        || json!({"type": "string", "pattern": patterns::IDEMPOTENCY_KEY}),
    ),
    (
        ("header", "If-None-Match"),
        || json!({"type": "string", "pattern": patterns::IF_NONE_MATCH}),
    ),
    (
        ("header", "Last-Event-ID"),
        || json!({"type": "string", "pattern": patterns::LAST_EVENT_ID}),
    ),
    (("query", "after"), change_id),
    (("query", "before"), change_id),
    (("path", "event_id"), change_id),
    (
        ("query", "limit"),
        || json!({"type": "integer", "minimum": 1, "maximum": 1000}),
    ),
    (
        ("query", "wait"),
        || json!({"type": "number", "minimum": 0}),
    ),
    (
        ("query", "since"),
        || json!({"type": "string", "format": "date-time"}),
    ),
    (
        ("query", "until"),
        || json!({"type": "string", "format": "date-time"}),
    ),
    (("query", "behind"), || json!({"type": "boolean"})),
    (
        ("query", "state"),
        || json!({"type": "string", "enum": ["fresh", "stale", "never_seen"]}),
    ),
];

/// The constraints of each request body field, by schema and field; merged
/// into what the derive wrote.
const FIELDS: &[(&str, &str, Rules)] = &[
    (
        "PublishRequest",
        "Change_at",
        || json!({"type": ["string", "null"], "pattern": patterns::CHANGE_AT}),
    ),
    ("NewApp", "name", app_name),
    ("NewApp", "roles", || roles(false)),
    ("NewApp", "description", || text(512)),
    ("NewApp", "owner", || text(512)),
    ("AppPatch", "roles", || roles(true)),
    ("AppPatch", "description", || text(512)),
    ("AppPatch", "owner", || text(512)),
    (
        "AppPatch",
        "stale_after",
        || json!({"type": ["string", "null"], "pattern": patterns::STALE_AFTER}),
    ),
    (
        "NewToken",
        "expires_in",
        || json!({"type": ["string", "null"], "pattern": patterns::LIFETIME}),
    ),
    (
        "NewToken",
        "expires_at",
        || json!({"type": ["string", "null"], "format": "date-time"}),
    ),
    ("NewToken", "label", || text(128)),
];

fn app_name() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 128, "pattern": patterns::APP_NAME})
}

fn change_id() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": MAX_ID})
}

fn text(max: usize) -> Value {
    json!({"type": ["string", "null"], "maxLength": max, "pattern": patterns::TEXT})
}

fn roles(nullable: bool) -> Value {
    let names: Vec<&str> = Role::ALL.iter().map(|role| role.as_str()).collect();
    let kind = if nullable {
        json!(["array", "null"])
    } else {
        json!("array")
    };
    json!({"type": kind, "minItems": 1, "items": {"type": "string", "enum": names}})
}

/// The complete document, for a server accepting `levels`.
#[must_use]
pub fn document(levels: LevelRange) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    constrain_fields(&mut doc, levels);
    describe_stream(&mut doc);
    for operation in operations(&mut doc) {
        constrain_parameters(operation);
        add_shared_refusals(operation);
    }
    // Bodies that may be left out entirely (every field optional).
    for path in ["/admin/apps/{name}", "/admin/apps/{name}/tokens"] {
        for method in ["patch", "post"] {
            if let Some(body) = doc.pointer_mut(&format!(
                "/paths/{}/{method}/requestBody",
                path.replace('/', "~1")
            )) {
                body["required"] = json!(false);
            }
        }
    }
    doc
}

/// Every operation of the document.
fn operations(doc: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    doc.get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|methods| methods.values_mut())
        .filter_map(Value::as_object_mut)
}

fn constrain_parameters(operation: &mut Map<String, Value>) {
    let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for parameter in parameters {
        let location = parameter["in"].as_str().unwrap_or_default().to_owned();
        let name = parameter["name"].as_str().unwrap_or_default().to_owned();
        if let Some((_, schema)) = PARAMETERS
            .iter()
            .find(|((at, called), _)| *at == location && *called == name)
        {
            parameter["schema"] = schema();
        }
    }
}

fn constrain_fields(doc: &mut Value, levels: LevelRange) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (schema, field, rules) in FIELDS {
        if let Some(property) = schemas
            .get_mut(*schema)
            .and_then(|schema| schema.pointer_mut(&format!("/properties/{field}")))
            .and_then(Value::as_object_mut)
        {
            property.remove("format");
            if let Value::Object(rules) = rules() {
                property.extend(rules);
            }
        }
    }
    // At most one of the two expiries.
    if let Some(new_token) = schemas.get_mut("NewToken") {
        new_token["not"] = json!({
            "required": ["expires_in", "expires_at"],
            "properties": {"expires_in": {"type": "string"}, "expires_at": {"type": "string"}},
        });
    }
    if let Some(level) = schemas
        .get_mut("PublishRequest")
        .and_then(|schema| schema.pointer_mut("/properties/current_status"))
    {
        level["minimum"] = json!(levels.min());
        level["maximum"] = json!(levels.max());
    }
}

/// Open API 3.1 reads the schema of an event stream as that of each event.
fn describe_stream(doc: &mut Value) {
    let event = json!({
        "type": "object",
        "description": "One event: the state, as a poll answers it; comments (heartbeats) are not events.",
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The state's `status_change_id`."},
            "event": {"type": "string", "enum": ["message"]},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": "#/components/schemas/CurrentState"},
            },
        },
        "required": ["id", "data"],
    });
    if let Some(content) = doc.pointer_mut("/paths/~1secapp~1stream/get/responses/200/content") {
        *content = json!({"text/event-stream": {"schema": event}});
    }
}

fn error_response(description: String) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    })
}

/// `` `a`, `b` or `c` ``.
fn listed(codes: &[ErrorCode]) -> String {
    let names: Vec<String> = codes
        .iter()
        .map(|code| format!("`{}`", code.code()))
        .collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Documents each of `codes` under its status from the refusal table
/// (`secapp_api::errors`), where the operation does not document that
/// status itself; `notes` adds a sentence to a status.
fn refusals(operation: &mut Map<String, Value>, codes: &[ErrorCode], notes: &[(u16, String)]) {
    let responses = operation.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else {
        return;
    };
    let mut statuses: Vec<u16> = codes.iter().map(|code| code.status()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let key = status.to_string();
        if responses.contains_key(&key) {
            continue;
        }
        let these: Vec<ErrorCode> = codes
            .iter()
            .copied()
            .filter(|code| code.status() == status)
            .collect();
        let mut description = format!("{}.", listed(&these));
        for (_, note) in notes.iter().filter(|(at, _)| *at == status) {
            description.push(' ');
            description.push_str(note);
        }
        let mut response = error_response(description);
        if these
            .iter()
            .any(|code| code.refusal().retry_after != RetryAfter::No)
        {
            response["headers"] = json!({"Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 1},
            }});
        }
        responses.insert(key, response);
    }
}

/// Refusals every operation can answer (a request hyper refuses, a bad
/// path), every authenticated one (credentials, roles, rate), and every one
/// with a body.
fn add_shared_refusals(operation: &mut Map<String, Value>) {
    use ErrorCode as E;
    refusals(
        operation,
        &[E::MalformedRequest, E::InvalidPath, E::HeadersTooLarge],
        &[
            (400, "Also a header sent twice; `malformed_request` is a request that is not valid HTTP/1.1.".to_owned()),
            (
                431,
                format!(
                    "More than {MAX_HEADERS} header fields or {} KiB of head.",
                    MAX_HEAD_BYTES / 1024
                ),
            ),
        ],
    );
    if operation.contains_key("security") {
        refusals(
            operation,
            &[
                E::MissingToken,
                E::InvalidToken,
                E::ConflictingCredentials,
                E::TokenExpired,
                E::TokenRevoked,
                E::MissingRole,
                E::AppDisabled,
                E::AppNameMismatch,
                E::SharedTokenNotAllowed,
                E::RateLimited,
            ],
            &[(
                429,
                "The application is over its request rate; retry after `Retry-After` seconds."
                    .to_owned(),
            )],
        );
    }
    if operation.contains_key("requestBody") {
        refusals(
            operation,
            &[E::BodyTimeout, E::BodyTooLarge, E::InvalidBody],
            &[
                (
                    408,
                    "The body did not arrive within the body-read timeout.".to_owned(),
                ),
                (
                    413,
                    format!("The body exceeds {} KiB.", MAX_BODY_BYTES / 1024),
                ),
                (
                    422,
                    "Not one JSON object of the documented shape.".to_owned(),
                ),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::validate;
    use crate::routes::params;
    use proptest::prelude::*;
    use proptest::string::string_regex;

    /// Strings the pattern generates, strings near it, and any at all.
    fn around(pattern: &'static str) -> BoxedStrategy<String> {
        let inner = &pattern[1..pattern.len() - 1];
        prop_oneof![
            4 => string_regex(inner).unwrap(),
            2 => string_regex(&format!(".?{inner}.?")).unwrap(),
            2 => "[ -~\t]{0,40}",
            1 => any::<String>(),
        ]
        .boxed()
    }

    fn agree(pattern: &str, text: &str, accepted: bool) -> Result<(), TestCaseError> {
        let matches = regex::Regex::new(pattern).unwrap().is_match(text);
        prop_assert_eq!(matches, accepted, "{:?} against {}", text, pattern);
        Ok(())
    }

    proptest! {
        #[test]
        fn app_names_are_read_as_the_document_says(text in around(patterns::APP_NAME)) {
            agree(patterns::APP_NAME, &text, secapp_domain::AppName::parse(&text).is_ok())?;
        }

        #[test]
        fn idempotency_keys_are_read_as_the_document_says(text in around(patterns::IDEMPOTENCY_KEY)) {
            let accepted = params::parse_idempotency_key(text.as_bytes()).is_ok();
            agree(patterns::IDEMPOTENCY_KEY, &text, accepted)?;
        }

        #[test]
        fn etags_are_read_as_the_document_says(text in around(patterns::IF_NONE_MATCH)) {
            let accepted = params::parse_if_none_match(std::iter::once(text.as_bytes())).is_ok();
            agree(patterns::IF_NONE_MATCH, &text, accepted)?;
        }

        #[test]
        fn event_ids_are_read_as_the_document_says(text in around(patterns::LAST_EVENT_ID)) {
            let accepted = params::parse_last_event_id(Some(text.as_bytes())).is_ok();
            agree(patterns::LAST_EVENT_ID, &text, accepted)?;
        }

        #[test]
        fn free_text_is_read_as_the_document_says(text in around(patterns::TEXT)) {
            let accepted = validate::text("label", Some(text.clone()), usize::MAX).is_ok();
            agree(patterns::TEXT, &text, accepted)?;
        }

        #[test]
        fn stale_allowances_are_read_as_the_document_says(text in around(patterns::STALE_AFTER)) {
            agree(patterns::STALE_AFTER, &text, validate::stale_after(&text).is_ok())?;
        }

        #[test]
        fn token_lifetimes_are_read_as_the_document_says(text in around(patterns::LIFETIME)) {
            let new = secapp_api::admin::NewToken {
                expires_in: Some(text.clone()),
                ..Default::default()
            };
            let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z").unwrap().to_utc();
            agree(patterns::LIFETIME, &text, validate::expiry(&new, now).is_ok())?;
        }

        /// A `Change_at` must have the documented form; of those, the ones
        /// naming no real instant (February 30th) are refused too.
        #[test]
        fn change_at_is_read_only_in_the_documented_form(text in around(patterns::CHANGE_AT)) {
            if secapp_domain::ChangedAt::parse(&text).is_ok() {
                agree(patterns::CHANGE_AT, &text, true)?;
            }
        }
    }

    #[test]
    fn the_ends_of_each_length_are_where_the_document_says() {
        let app_name = regex::Regex::new(patterns::APP_NAME).unwrap();
        for (name, accepted) in [("x".repeat(128), true), ("x".repeat(129), false)] {
            assert_eq!(app_name.is_match(&name), accepted);
            assert_eq!(secapp_domain::AppName::parse(&name).is_ok(), accepted);
        }
        let key = regex::Regex::new(patterns::IDEMPOTENCY_KEY).unwrap();
        for (text, accepted) in [("k".repeat(255), true), ("k".repeat(256), false)] {
            assert_eq!(key.is_match(&text), accepted);
            assert_eq!(
                params::parse_idempotency_key(text.as_bytes()).is_ok(),
                accepted
            );
        }
        let id = regex::Regex::new(patterns::LAST_EVENT_ID).unwrap();
        for (text, accepted) in [("9".repeat(18), true), ("1".repeat(19), false)] {
            assert_eq!(id.is_match(&text), accepted);
            assert_eq!(
                params::parse_last_event_id(Some(text.as_bytes())).is_ok(),
                accepted
            );
        }
        assert_eq!(MAX_ID.to_string(), "9".repeat(18));
    }

    #[test]
    fn every_documented_form_of_change_at_is_read() {
        let change_at = regex::Regex::new(patterns::CHANGE_AT).unwrap();
        for text in [
            "2026-03-01T12:05:00Z",
            "2026-03-01t12:05:00.5z",
            "2026-03-01 12:05:00+03:00",
            "2026-03-01T12:05:00.123456789-05:30",
            "2026-03-01T12:05:00",
            "2026-03-01 12:05",
        ] {
            assert!(change_at.is_match(text));
            assert!(secapp_domain::ChangedAt::parse(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn every_refusal_the_document_names_is_under_the_status_the_table_gives_it() {
        let doc = document(LevelRange::default());
        let code = regex::Regex::new("`([a-z_]+)`").unwrap();
        let mut seen = 0;
        for (path, methods) in doc["paths"].as_object().unwrap() {
            for (method, operation) in methods.as_object().unwrap() {
                for (status, response) in operation["responses"].as_object().unwrap() {
                    let text = response["description"].as_str().unwrap_or_default();
                    for found in code.captures_iter(text) {
                        let Some(known) = ErrorCode::from_code(&found[1]) else {
                            continue;
                        };
                        seen += 1;
                        assert_eq!(
                            status,
                            &known.status().to_string(),
                            "{method} {path}: `{}` is documented under {status}",
                            known.code()
                        );
                    }
                }
            }
        }
        assert!(seen > 100, "only {seen} refusals found in the document");
    }

    #[test]
    fn every_rule_finds_what_it_constrains() {
        let doc = document(LevelRange::default());
        for (schema, field, _) in FIELDS {
            assert!(
                doc.pointer(&format!("/components/schemas/{schema}/properties/{field}"))
                    .is_some(),
                "{schema}.{field}"
            );
        }
        let mut found: Vec<ParameterKey> = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let key = (
                        parameter["in"].as_str().unwrap(),
                        parameter["name"].as_str().unwrap(),
                    );
                    if let Some((rule, _)) = PARAMETERS.iter().find(|(rule, _)| *rule == key) {
                        found.push(*rule);
                    }
                }
            }
        }
        for (key, _) in PARAMETERS {
            assert!(found.contains(key), "no parameter {key:?}");
        }
    }
}

//! Request bodies: read within a size limit and a deadline, then parsed as
//! one JSON object of the endpoint's shape.
//!
//! A declared `Content-Length` over the limit is refused before a byte is
//! read; a body that trickles in is cut at the body-read timeout. The text
//! must be UTF-8 and JSON throughout, ignored fields included (a lone UTF-16
//! surrogate escape is refused wherever it is), and its top level an
//! object: an array holding the right values in order is not one.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::ApiError;
use crate::state::AppState;

/// The largest request body accepted; a publish is under 100 bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A request type read from a JSON body.
pub trait JsonShape: DeserializeOwned {
    /// The shape to send, shown to a person whose body was refused.
    const EXPECTED: &'static str;
    /// Whether an empty body means `{}` (every field optional).
    const EMPTY_IS_OBJECT: bool = false;
}

/// A JSON object body of shape `T`, as the extractor of a handler.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: JsonShape> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read(request, state.requests.body_read_timeout).await?;
        parse(&bytes).map(Self)
    }
}

/// Reads a whole body, refusing one declared or found larger than
/// [`MAX_BODY_BYTES`], or not received within `timeout`.
///
/// # Errors
/// [`ApiError::BodyTooLarge`], [`ApiError::BodyTimeout`] or
/// [`ApiError::UnreadableBody`].
pub async fn read(request: Request, timeout: std::time::Duration) -> Result<Bytes, ApiError> {
    let too_large = ApiError::BodyTooLarge {
        limit: MAX_BODY_BYTES,
    };
    if declared_length(request.headers()).is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES);
    match tokio::time::timeout(timeout, body.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large),
        Ok(Err(e)) => Err(ApiError::UnreadableBody(e.to_string())),
        Err(_) => Err(ApiError::BodyTimeout {
            seconds: timeout.as_secs().max(1),
        }),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Parses a body as one JSON object of shape `T`.
///
/// # Errors
/// [`ApiError::MalformedJson`] for anything that is not UTF-8 JSON
/// throughout; [`ApiError::InvalidBody`] for JSON that is not an object of
/// shape `T`.
pub fn parse<T: JsonShape>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::MalformedJson(format!(
            "the body is not UTF-8 text (at byte {})",
            e.valid_up_to()
        ))
    })?;
    let text = if text.trim().is_empty() {
        if !T::EMPTY_IS_OBJECT {
            return Err(ApiError::MalformedJson("the body is empty".to_owned()));
        }
        "{}"
    } else {
        text
    };
    let top = serde_json::from_str::<Checked>(text)
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let invalid = |problem: String| ApiError::InvalidBody {
        problem,
        expected: T::EXPECTED,
    };
    if top.0 != Kind::Object {
        return Err(invalid(format!(
            "the body must be a JSON object, not {}",
            top.0.name()
        )));
    }
    serde_json::from_str(text).map_err(|e| invalid(e.to_string()))
}

/// What a JSON value is, at the top of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Array,
    Scalar,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Object => "an object",
            Self::Array => "an array",
            Self::Scalar => "a single value",
        }
    }
}

/// Any JSON value, every string of it decoded: serde_json skips the fields
/// a type ignores without decoding them, so this pass is what refuses a bad
/// escape inside one.
struct Checked(Kind);

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked(Kind::Scalar))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked(Kind::Scalar))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked(Kind::Scalar))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked(Kind::Scalar))
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked(Kind::Scalar))
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked(Kind::Scalar))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked(Kind::Array))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_key::<CheckedKey>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(Checked(Kind::Object))
    }
}

/// An object key, decoded.
struct CheckedKey;

impl<'de> Deserialize<'de> for CheckedKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(CheckedVisitor).map(|_| Self)
    }
}

impl JsonShape for secapp_api::PublishRequest {
    const EXPECTED: &'static str = r#"{"current_status": <integer>, "Change_at": "<RFC 3339 time>"} ("Change_at" may be left out)"#;
}

impl JsonShape for secapp_api::admin::NewApp {
    const EXPECTED: &'static str = r#"{"name": "<application>", "roles": ["publish" | "consume" | "viewer" | "admin", …], "description": "<text>", "owner": "<text>"} (description and owner may be left out)"#;
}

impl JsonShape for secapp_api::admin::AppPatch {
    const EXPECTED: &'static str = r#"any of {"roles": [<role>, …], "description": "<text>", "owner": "<text>", "disabled": <true|false>}"#;
    const EMPTY_IS_OBJECT: bool = true;
}

impl JsonShape for secapp_api::admin::NewToken {
    const EXPECTED: &'static str = r#"any of {"expires_in": "<90d, 12h, 30m or 45s>" or "expires_at": "<RFC 3339 time>", "label": "<text>"}"#;
    const EMPTY_IS_OBJECT: bool = true;
}

#[cfg(test)]
mod tests {
    use super::*;
    use secapp_api::PublishRequest;
    use secapp_api::admin::{AppPatch, NewApp};

    fn code<T: JsonShape + std::fmt::Debug>(body: &[u8]) -> &'static str {
        parse::<T>(body).unwrap_err().code()
    }

    #[test]
    fn an_object_of_the_right_shape_is_read() {
        let request: PublishRequest =
            parse(br#"{"current_status": 4, "Change_at": "2026-03-01T12:05:00Z", "x": [1]}"#)
                .unwrap();
        assert_eq!(request.current_status, 4);
        assert_eq!(parse::<AppPatch>(b"  ").unwrap(), AppPatch::default());
    }

    #[test]
    fn an_array_or_a_scalar_is_not_an_object() {
        assert_eq!(
            code::<PublishRequest>(br#"[3, "2026-11-29T09:20:00Z"]"#),
            "invalid_body"
        );
        assert_eq!(
            code::<NewApp>(br#"["billing", ["consume"]]"#),
            "invalid_body"
        );
        assert_eq!(code::<PublishRequest>(b"3"), "invalid_body");
        let err = parse::<PublishRequest>(b"[3]").unwrap_err().to_string();
        assert!(err.contains("must be a JSON object, not an array"), "{err}");
    }

    #[test]
    fn malformed_text_is_refused_even_in_an_ignored_field() {
        for body in [
            &br#"{"current_status": 3, "x": "\ud800"}"#[..],
            br#"{"current_status": 3, "x": "\udc00\ud800"}"#,
            b"{\"current_status\": 3, \"x\": \"\xff\"}",
            br#"{"current_status": 3, "\ud800": 1}"#,
            b"",
            b"{",
        ] {
            assert_eq!(
                code::<PublishRequest>(body),
                "malformed_json",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let pair: PublishRequest = parse(br#"{"current_status": 3, "x": "\ud83d\ude00"}"#).unwrap();
        assert_eq!(pair.current_status, 3);
    }

    #[test]
    fn each_shape_names_itself_when_refused() {
        let publish = parse::<PublishRequest>(b"{}").unwrap_err().to_string();
        assert!(publish.contains("current_status"), "{publish}");
        let app = parse::<NewApp>(br#"{"name": "x"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            app.contains("roles") && !app.contains("current_status"),
            "{app}"
        );
    }
}

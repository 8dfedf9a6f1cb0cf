//! hyper's own refusals, given the JSON error body every refusal of secapp
//! has.
//!
//! hyper answers a request head it cannot parse by itself — 400 for a
//! malformed line or a control byte, 431 for too many or too large header
//! fields, 414 for a too-long URI — with an empty body, then closes the
//! connection; it offers no hook to change that answer. It writes it only
//! when no request is being served, as the last bytes it writes, and it has
//! no header fields but `content-length: 0`, `date` and `connection`: every
//! answer of secapp's own carries others (at least
//! `x-content-type-options`). So a write made while no request is in flight
//! that ends in such an answer is passed on with that answer replaced by the
//! JSON one ([`Outgoing`]).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use secapp_api::ErrorBody;
use tokio::io::AsyncWrite;

use crate::error::ApiError;

/// Bytes written while hyper may be refusing, not yet on the socket.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    pending: Vec<u8>,
    sent: usize,
}

impl Outgoing {
    /// When `written` (all hyper asks to write) ends in hyper's refusal:
    /// holds it with the JSON refusal in its place, and answers true (send it
    /// with [`poll_send`](Self::poll_send)). False, holding nothing,
    /// otherwise.
    pub(super) fn take_refusal(&mut self, written: &[u8]) -> bool {
        let Some((start, status)) = find_refusal(written) else {
            return false;
        };
        self.pending.extend_from_slice(&written[..start]);
        self.pending.extend_from_slice(&render(status));
        true
    }

    /// Writes what is held; ready once all of it is on the socket.
    pub(super) fn poll_send<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut *io).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

/// Whether `bytes` may end in an answer with no body, as hyper's refusal
/// does: the cheap test made before looking closer.
pub(super) fn may_end_a_head(bytes: &[u8]) -> bool {
    bytes.ends_with(b"\r\n\r\n")
}

/// Where hyper's refusal begins in `bytes`, and its status, if `bytes` end
/// with one: a 4xx status line followed by nothing but `content-length: 0`,
/// `date` and `connection` fields.
fn find_refusal(bytes: &[u8]) -> Option<(usize, u16)> {
    let head = bytes.strip_suffix(b"\r\n\r\n")?;
    let start = head.windows(7).rposition(|w| w == b"HTTP/1.")?;
    let text = std::str::from_utf8(&head[start..]).ok()?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.get(9..12)?.parse().ok()?;
    if status_line.as_bytes().get(8) != Some(&b' ') || !(400..500).contains(&status) {
        return None;
    }
    let only_hypers_fields = lines.all(|line| {
        let Some((name, value)) = line.split_once(':') else {
            return false;
        };
        let name = name.to_ascii_lowercase();
        (name == "content-length" && value.trim() == "0") || name == "date" || name == "connection"
    });
    only_hypers_fields.then_some((start, status))
}

/// The whole HTTP/1.1 answer secapp gives instead of hyper's refusal with
/// this status.
fn render(status: u16) -> Vec<u8> {
    let error = match status {
        431 => ApiError::HeadersTooLarge,
        414 => ApiError::UriTooLong,
        _ => ApiError::MalformedRequest,
    };
    let body = ErrorBody {
        error: error.code().to_owned(),
        detail: error.to_string(),
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Bad Request");
    let mut answer = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 12:00:00 GMT\r\n\r\n";

    #[test]
    fn hypers_refusal_is_found_alone_or_after_the_end_of_an_answer() {
        assert_eq!(find_refusal(HYPER_431), Some((0, 431)));
        let mut after =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
                .to_vec();
        let start = after.len();
        after.extend_from_slice(HYPER_431);
        assert_eq!(find_refusal(&after), Some((start, 431)));
    }

    #[test]
    fn secapps_own_answers_are_left_alone() {
        for answer in [
            &b"HTTP/1.1 304 Not Modified\r\netag: \"3\"\r\ncache-control: no-store\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\nx",
            b"{\"detail\":\"HTTP/1.1 400 x\"}",
        ] {
            assert_eq!(find_refusal(answer), None, "{}", String::from_utf8_lossy(answer));
        }
    }

    #[test]
    fn the_rewritten_refusal_is_json_with_a_listed_code() {
        for (status, code) in [
            (431, "headers_too_large"),
            (414, "uri_too_long"),
            (400, "malformed_request"),
        ] {
            let answer = String::from_utf8(render(status)).unwrap();
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            assert!(head.contains(&format!("content-length: {}", body.len())));
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(body["error"], code);
        }
    }

    #[test]
    fn a_refusal_is_replaced_and_what_came_before_is_kept() {
        let mut outgoing = Outgoing::default();
        let mut written = b"tail of an earlier answer".to_vec();
        written.extend_from_slice(HYPER_431);
        assert!(outgoing.take_refusal(&written));
        let held = String::from_utf8(outgoing.pending.clone()).unwrap();
        assert!(held.starts_with("tail of an earlier answer"));
        assert!(held.contains("headers_too_large"), "{held}");
        assert!(
            !outgoing.take_refusal(b"HTTP/1.1 200 OK\r\nx-content-type-options: nosniff\r\n\r\n")
        );
    }
}

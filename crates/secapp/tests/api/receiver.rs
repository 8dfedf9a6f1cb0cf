//! A real webhook receiver for the tests: an HTTP server on port 0 that
//! keeps every request, answers 500 to the first few when asked to, holds
//! its answers back while its gate is closed, and checks signatures as a
//! receiver would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::Sha256;

/// The secret the tests' webhooks are configured with.
pub const SECRET: &str = "whsec-test-0123456789";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// `Secapp-Signature`.
    pub signature: String,
    /// `Secapp-Event-Id`.
    pub event_id: String,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    pub standard: [String; 3],
    /// The raw body.
    pub body: Bytes,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct Inbox {
    received: Mutex<Vec<Received>>,
    failures_left: AtomicUsize,
    /// Whether answers go out (`true`) or wait.
    gate: tokio::sync::watch::Sender<bool>,
}

/// A receiver running in this test process until dropped.
pub struct Receiver {
    pub url: String,
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn take(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let failing = inbox
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    let status = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    let mut gate = inbox.gate.subscribe();
    inbox.received.lock().unwrap().push(Received {
        signature: header("secapp-signature"),
        event_id: header("secapp-event-id"),
        standard: [
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
        ],
        body,
        status: status.as_u16(),
    });
    // Taken and kept; the answer waits while the gate is closed.
    let _ = gate.wait_for(|open| *open).await;
    status
}

impl Receiver {
    /// Starts one that answers 500 to its first `fail_first` requests.
    pub async fn start(fail_first: usize) -> Self {
        let inbox = Arc::new(Inbox {
            received: Mutex::default(),
            failures_left: AtomicUsize::new(fail_first),
            gate: tokio::sync::watch::Sender::new(true),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/secapp", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hooks/secapp", axum::routing::post(take))
            .with_state(inbox.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, inbox, task }
    }

    /// Answers 2xx from now on.
    pub fn stop_failing(&self) {
        self.inbox.failures_left.store(0, Ordering::SeqCst);
    }

    /// Closes the gate: requests are still taken, their answers wait.
    pub fn hold_answers(&self) {
        self.inbox.gate.send_replace(false);
    }

    /// Opens the gate: waiting answers go out, and new ones at once.
    pub fn answer(&self) {
        self.inbox.gate.send_replace(true);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().unwrap().clone()
    }

    /// The events taken (answered 2xx), as JSON.
    pub fn delivered(&self) -> Vec<Value> {
        self.received()
            .iter()
            .filter(|r| r.status < 300)
            .map(Received::json)
            .collect()
    }

    /// The events of `kind` (`consumer_stale`, …) taken, as JSON.
    pub fn delivered_of(&self, kind: &str) -> Vec<Value> {
        self.delivered()
            .into_iter()
            .filter(|event| event["type"] == cloud_type(kind))
            .collect()
    }

    /// Waits up to 10 s until `done` holds of what was delivered.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..200 {
            let delivered = self.delivered();
            if done(&delivered) {
                return delivered;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: got {:#?}", self.delivered());
    }
}

/// Whether `signature` (`t=..,v1=..`) is `secret`'s HMAC-SHA256 of "<t>.<body>".
pub fn verifies(secret: &str, signature: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in signature.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

/// Whether the Standard Webhooks headers of `request` hold: its
/// `webhook-signature` is `v1,` and the base64 HMAC-SHA256, keyed with
/// `secret`, of "<webhook-id>.<webhook-timestamp>.<body>", and the id is the
/// event's.
pub fn verifies_standard(secret: &str, request: &Received) -> bool {
    use base64::Engine as _;
    let [id, t, signature] = &request.standard;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{id}.{t}.").as_bytes());
    mac.update(&request.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    *signature == format!("v1,{expected}") && request.json()["id"] == id.as_str()
}

/// A `[[webhooks]]` entry pointing at `url`, for `events` (all when empty).
pub fn webhook(name: &str, url: &str, events: &[&str]) -> secapp_server::config::WebhookConfig {
    let mut config: secapp_server::config::WebhookConfig =
        serde_json::from_value(serde_json::json!({
            "name": name, "url": url, "secret": SECRET,
        }))
        .unwrap();
    if !events.is_empty() {
        config.events = events.iter().map(|e| (*e).to_owned()).collect();
    }
    config
}

/// The CloudEvents `type` of an event kind: `consumer_stale` is
/// `secapp.consumer.stale`.
pub fn cloud_type(kind: &str) -> String {
    format!("secapp.{}", kind.replace('_', "."))
}

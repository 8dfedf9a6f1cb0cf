//! OpenTelemetry: the real binary, pointed at a collector in this test by
//! the standard `OTEL_EXPORTER_OTLP_*` variables, exports a span per request
//! (continuing an incoming `traceparent`) and a child span per store call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

use crate::helpers::{Api, ServerProcess};

/// An OTLP/HTTP collector: keeps every span it is sent, with its service.
#[derive(Default)]
struct Collected {
    spans: Mutex<Vec<(String, Span)>>,
}

async fn take(State(collected): State<Arc<Collected>>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map(|value| match value {
                AnyValue::StringValue(name) => name.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                collected
                    .spans
                    .lock()
                    .unwrap()
                    .push((service.clone(), span));
            }
        }
    }
    ""
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|value| match value {
            AnyValue::StringValue(text) => text.clone(),
            AnyValue::IntValue(number) => number.to_string(),
            other => format!("{other:?}"),
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_request_continues_the_callers_trace_and_store_calls_are_its_children() {
    let collected = Arc::new(Collected::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(take))
        .with_state(collected.clone());
    let collector = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        &dir.path().join("data"),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "secapp-under-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let api = Api::own_tokens(
        reqwest::Client::new(),
        &server.base(),
        &server.admin_token(),
    );
    let token = api.token("security-team").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let published = reqwest::Client::new()
        .post(format!("{}/secapp/update", server.base()))
        .bearer_auth(&token)
        .header("App-name", "security-team")
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .body(r#"{"current_status": 3, "Change_at": "2026-03-01T12:00:00Z"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 200);

    let mut found = None;
    for _ in 0..200 {
        let spans = collected.spans.lock().unwrap().clone();
        let request = spans.iter().find(|(_, span)| {
            hex(&span.trace_id) == trace_id && span.name == "POST /secapp/update"
        });
        if let Some((service, request)) = request {
            let store = spans.iter().find(|(_, span)| {
                span.parent_span_id == request.span_id
                    && attribute(span, "operation").as_deref() == Some("publish")
            });
            if let Some((_, store)) = store {
                found = Some((service.clone(), request.clone(), store.clone()));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (service, request, store) = found.unwrap_or_else(|| {
        panic!(
            "no request span of trace {trace_id} with a store child: {:#?}",
            collected
                .spans
                .lock()
                .unwrap()
                .iter()
                .map(|(_, s)| (s.name.clone(), hex(&s.trace_id)))
                .collect::<Vec<_>>()
        )
    });
    assert_eq!(service, "secapp-under-test");
    assert_eq!(
        hex(&request.parent_span_id),
        caller_span,
        "a child of the caller's span"
    );
    assert_eq!(
        attribute(&request, "route").as_deref(),
        Some("/secapp/update")
    );
    assert_eq!(attribute(&request, "method").as_deref(), Some("POST"));
    assert_eq!(attribute(&request, "app").as_deref(), Some("security-team"));
    assert_eq!(attribute(&request, "status").as_deref(), Some("200"));
    assert_eq!(hex(&store.trace_id), trace_id);

    // Without a traceparent a request starts a trace of its own.
    let polled = reqwest::Client::new()
        .get(format!("{}/healthz", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(polled.status(), 200);
    let mut own = None;
    for _ in 0..200 {
        own = collected
            .spans
            .lock()
            .unwrap()
            .iter()
            .find(|(_, span)| span.name == "GET /healthz")
            .map(|(_, span)| span.clone());
        if own.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let own = own.expect("a span for the health check");
    assert_ne!(hex(&own.trace_id), trace_id);
    assert!(own.parent_span_id.is_empty(), "a root span");
    server.terminate();
    collector.abort();
}

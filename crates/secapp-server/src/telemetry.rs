//! Logging and tracing.
//!
//! - Log lines go to stderr, as text for people or as JSON objects for log
//!   collectors (`--log-format`), filtered by `SECAPP_LOG` (`RUST_LOG`
//!   syntax, default `info`).
//! - Traces go to an OpenTelemetry collector over OTLP (HTTP, protobuf)
//!   when the standard variables name one: `OTEL_EXPORTER_OTLP_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (with `OTEL_EXPORTER_OTLP_HEADERS`,
//!   `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_BSP_*` as the
//!   OpenTelemetry SDK reads them). Nothing is exported when neither is set.
//!   Every request is a span (`GET /secapp/update`, with route, method,
//!   application and status) and each store call a child span; a request
//!   carrying a W3C `traceparent` continues the caller's trace
//!   ([`continue_trace`]).

use std::io::IsTerminal as _;

use axum::http;

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`
    /// (with `message`) and the spans it happened in.
    Json,
}

/// The variables that turn trace export on.
const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Keeps trace export running; [`shutdown`](Self::shutdown) sends what is
/// still buffered.
#[derive(Debug, Default)]
#[must_use = "dropping it does not flush the last spans; call shutdown"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    #[must_use]
    pub fn exporting(&self) -> bool {
        self.traces.is_some()
    }

    /// Sends the spans still buffered and stops exporting. Blocks: call it
    /// off the async runtime.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "sending the last spans failed");
        }
    }
}

/// Installs the global subscriber, and the OTLP exporter when the
/// environment names a collector. Call once, from `main`.
pub fn init(format: LogFormat) -> Telemetry {
    let filter = EnvFilter::try_from_env("SECAPP_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => fmt
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
    };
    let (traces, problem) = match exporter() {
        Ok(traces) => (traces, None),
        Err(problem) => (None, Some(problem)),
    };
    let spans = traces.as_ref().map(|provider| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("secapp"))
            // The request and store spans are at debug level, so that logs
            // at the default level cost nothing for them.
            .with_filter(Targets::new().with_target("secapp_server", tracing::Level::DEBUG))
    });
    Registry::default().with(logs).with(spans).init();
    if let Some(problem) = problem {
        tracing::error!(%problem, "traces are not exported");
    } else if traces.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    Telemetry { traces }
}

/// The OTLP exporter the environment asks for, if any.
fn exporter() -> Result<Option<SdkTracerProvider>, String> {
    let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
    if !ENDPOINT_VARIABLES.iter().any(|name| set(name)) {
        return Ok(None);
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Ok(protocol) = std::env::var(name)
            && !protocol.is_empty()
            && protocol != "http/protobuf"
        {
            return Err(format!(
                "{name}={protocol}: this secapp exports OTLP over HTTP with protobuf only (http/protobuf)"
            ));
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
    let service = opentelemetry_sdk::Resource::builder()
        .with_service_name(
            std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "secapp".to_owned()),
        )
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(service)
            .build(),
    ))
}

/// Makes `span` a child of the trace an incoming W3C `traceparent` (and
/// `tracestate`) names; does nothing without one, or when traces are not
/// exported.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !headers.contains_key(&crate::headers::TRACEPARENT) || span.is_disabled() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // Refused only when the span has already begun, which it has not.
    let _ = span.set_parent(parent);
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

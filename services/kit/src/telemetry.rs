//! Logs, traces and metrics, set up once per process.
//!
//! - Logs: `tracing` with JSON lines by default, human-readable when `log_format = "pretty"` (or
//!   `auto` on a terminal); filtered by `RUST_LOG` (default `info`, Postgres notices at `warn`).
//! - Traces: exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. A bad endpoint is
//!   logged and tracing goes on without export: telemetry never stops a service.
//! - Context: W3C `traceparent` carried in gRPC metadata ([`crate::grpc`]) and Kafka headers
//!   ([`crate::events`]).
//! - Metrics: Prometheus text on `/metrics` ([`metrics::serve`]).

use std::collections::HashMap;
use std::io::IsTerminal;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{ConfigError, Validate};

pub mod metrics;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `json`, `pretty`, or `auto` (pretty on a terminal, JSON otherwise).
    #[serde(default = "default_format")]
    pub log_format: String,
    /// Where `/metrics` is served; `off` (or empty) disables it.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
}

fn default_format() -> String {
    "auto".to_owned()
}
fn default_metrics_listen() -> String {
    "127.0.0.1:9464".to_owned()
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { log_format: default_format(), metrics_listen: default_metrics_listen() }
    }
}

impl TelemetryConfig {
    /// Where to serve `/metrics`, or `None` when turned off.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_listen.parse().ok()
    }
}

impl Validate for TelemetryConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if !matches!(self.log_format.as_str(), "json" | "pretty" | "auto") {
            return Err(ConfigError::invalid(&format!("{prefix}.log_format"), "must be json, pretty or auto"));
        }
        if self.metrics_addr().is_none() && !matches!(self.metrics_listen.as_str(), "" | "off") {
            return Err(ConfigError::invalid(&format!("{prefix}.metrics_listen"), "must be host:port, or off"));
        }
        Ok(())
    }
}

/// Owns the trace exporter; flushes it on drop so the last spans are not lost at shutdown.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("trace exporter shutdown: {err}");
        }
    }
}

/// Install the global subscriber and propagator. Call once, early in `main`.
pub fn init(service_name: &str, config: &TelemetryConfig) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let pretty = match config.log_format.as_str() {
        "pretty" => true,
        "json" => false,
        _ => std::io::stderr().is_terminal(),
    };
    let fmt_layer = if pretty {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    };

    let (provider, otel_error) = match otlp_provider(service_name) {
        Ok(provider) => (provider, None),
        Err(err) => (None, Some(err)),
    };
    let otel_layer = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("cobro")).boxed());

    let installed = tracing_subscriber::registry().with(filter).with(fmt_layer).with(otel_layer).try_init();
    if installed.is_err() {
        // A subscriber is already installed (tests, or a second init): keep it.
        tracing::debug!("telemetry already initialised");
    }
    if let Some(err) = otel_error {
        tracing::error!(error = %err, "OTLP trace export disabled: check OTEL_EXPORTER_OTLP_ENDPOINT");
    }
    TelemetryGuard { provider }
}

fn otlp_provider(service_name: &str) -> Result<Option<SdkTracerProvider>, String> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
    if endpoint.trim().is_empty() {
        return Ok(None);
    }
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(format!("endpoint must start with http:// or https://, got `{endpoint}`"));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build().map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_owned()).build();
    Ok(Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build()))
}

/// The W3C `traceparent` of the current span, if it is being traced.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Make `span` a child of the remote context in `traceparent` (ignored when empty or invalid).
pub fn set_remote_parent(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Inject the current trace context into outgoing gRPC metadata.
pub fn inject_into_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    if let Some(traceparent) = current_traceparent()
        && let Ok(value) = traceparent.parse()
    {
        metadata.insert("traceparent", value);
    }
}

/// A tonic client interceptor that carries the caller's trace context to the server.
pub fn trace_interceptor(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    inject_into_metadata(request.metadata_mut());
    Ok(request)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn remote_parent_round_trips_through_traceparent() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let span = tracing::info_span!("child");
            set_remote_parent(&span, parent);
            let _entered = span.enter();
            let tp = current_traceparent().unwrap();
            // Same trace, new span id.
            assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{tp}");
            assert!(!tp.contains("00f067aa0ba902b7"), "{tp}");
        });
    }

    #[test]
    fn no_traceparent_outside_a_traced_span() {
        assert_eq!(current_traceparent(), None);
        // Garbage is ignored rather than failing the caller.
        set_remote_parent(&tracing::Span::none(), "not-a-traceparent");
    }

    #[test]
    fn config_validation_names_the_key() {
        let bad = TelemetryConfig { log_format: "xml".into(), ..TelemetryConfig::default() };
        assert_eq!(bad.validate("telemetry").unwrap_err().key.as_deref(), Some("telemetry.log_format"));
        let bad = TelemetryConfig { metrics_listen: "nine".into(), ..TelemetryConfig::default() };
        assert_eq!(bad.validate("telemetry").unwrap_err().key.as_deref(), Some("telemetry.metrics_listen"));
    }
}

//! Prometheus metrics: one registry per process, served as text on `/metrics`.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

type Labels = Vec<(&'static str, String)>;

struct Metrics {
    registry: Registry,
    outbox_published: Counter,
    outbox_failed: Counter,
    events_consumed: Family<Labels, Counter>,
    grpc_requests: Family<Labels, Counter>,
    grpc_duration: Family<Labels, Histogram>,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("cobro");
        let outbox_published = Counter::default();
        registry.register("outbox_published", "Outbox events acknowledged by the broker", outbox_published.clone());
        let outbox_failed = Counter::default();
        registry.register("outbox_failed", "Outbox events the broker refused for good (parked)", outbox_failed.clone());
        let events_consumed = Family::<Labels, Counter>::default();
        registry.register(
            "events_consumed",
            "Events taken from Kafka, by consumer and outcome",
            events_consumed.clone(),
        );
        let grpc_requests = Family::<Labels, Counter>::default();
        registry.register("grpc_requests", "gRPC requests, by method and status code", grpc_requests.clone());
        let grpc_duration =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_5, 2.0, 16)));
        registry.register("grpc_request_duration_seconds", "gRPC request latency, by method", grpc_duration.clone());
        Metrics { registry, outbox_published, outbox_failed, events_consumed, grpc_requests, grpc_duration }
    })
}

pub fn outbox_published(n: usize) {
    metrics().outbox_published.inc_by(u64::try_from(n).unwrap_or(u64::MAX));
}

pub fn outbox_failed(n: usize) {
    metrics().outbox_failed.inc_by(u64::try_from(n).unwrap_or(u64::MAX));
}

pub fn event_consumed(consumer: &str, outcome: &'static str) {
    events_consumed(consumer, outcome, 1);
}

pub fn events_consumed(consumer: &str, outcome: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    metrics()
        .events_consumed
        .get_or_create(&vec![("consumer", consumer.to_owned()), ("outcome", outcome.to_owned())])
        .inc_by(n);
}

pub fn grpc_request(method: &str, code: &str, elapsed: Duration) {
    let m = metrics();
    m.grpc_requests.get_or_create(&vec![("method", method.to_owned()), ("code", code.to_owned())]).inc();
    m.grpc_duration.get_or_create(&vec![("method", method.to_owned())]).observe(elapsed.as_secs_f64());
}

/// The current metrics in Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    if encode(&mut out, &metrics().registry).is_err() {
        out.clear();
    }
    out
}

/// Serve `/metrics` on `addr` until `shutdown`.
pub async fn serve(addr: SocketAddr, shutdown: CancellationToken) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, shutdown).await
}

pub async fn serve_on(listener: tokio::net::TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render())
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metrics_are_served_as_prometheus_text() {
        outbox_published(3);
        event_consumed("test-group", "handled");
        grpc_request("/cobro.test.v1.T/Do", "0", Duration::from_millis(3));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_on(listener, shutdown.clone()));

        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("cobro_outbox_published_total"), "{body}");
        assert!(body.contains("consumer=\"test-group\""), "{body}");
        assert!(body.contains("cobro_grpc_request_duration_seconds_bucket"), "{body}");
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}

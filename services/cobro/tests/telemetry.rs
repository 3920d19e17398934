//! A served process exports its spans over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and
//! flushes them when it stops on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// A stand-in collector: hands every exported (service name, span name) to the test.
struct Collector(mpsc::UnboundedSender<(String, String)>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let _ = self.0.send((service.clone(), span.name));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_requests_are_exported_as_spans() {
    assert!(
        std::env::var("COBRO__IDENTITY__DATABASE_URL").is_ok(),
        "run the tests through `infra/dev test`, which exports the service database URLs"
    );
    let (spans_tx, mut spans) = mpsc::unbounded_channel();
    let collector_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = collector_listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(spans_tx)))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(collector_listener)),
    );

    let port = free_port();
    let config_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cobro"))
        .args(["serve", "identity"])
        .env("COBRO_CONFIG_DIR", config_dir.path())
        .env("COBRO__IDENTITY__LISTEN", format!("127.0.0.1:{port}"))
        .env("COBRO__TELEMETRY__METRICS_LISTEN", "off")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector_addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Wait for the service, then make one call it will trace.
    let url = format!("http://127.0.0.1:{port}");
    let mut channel = None;
    for _ in 0..100 {
        if let Ok(c) = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().connect().await {
            channel = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.expect("identity did not start"));
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();

    // SIGTERM: the process drains and flushes its spans on the way out.
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let exited = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(exited.success(), "identity should exit cleanly on SIGTERM: {exited:?}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while let Ok(Some(span)) = tokio::time::timeout_at(deadline, spans.recv()).await {
        if span.0 == "cobro-identity" && span.1 == "grpc" {
            return;
        }
        seen.push(span);
    }
    panic!("no `grpc` span from cobro-identity reached the collector; got {seen:?}");
}

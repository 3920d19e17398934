//! The gRPC server every service runs.
//!
//! [`GrpcServer::serve`] adds, around the service's own routes: `grpc.health.v1` (serving while
//! up, not serving once shutdown starts), reflection over every Cobro package, a span and
//! metrics per request (trace context taken from `traceparent` metadata), token verification
//! ([`crate::auth::AuthLayer`]), a request timeout and a process-wide concurrency limit; then
//! drains in-flight requests on shutdown for at most the configured grace period.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::auth::{AuthLayer, Verifier};
use crate::config::{GrpcConfig, parse_duration};

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// What a service hands the kit to be served.
pub struct GrpcServer {
    config: GrpcConfig,
    verifier: Arc<Verifier>,
    public_methods: Vec<String>,
    routes: Routes,
    service_names: Vec<&'static str>,
}

impl GrpcServer {
    pub fn new(config: GrpcConfig, verifier: Arc<Verifier>) -> Self {
        Self { config, verifier, public_methods: Vec::new(), routes: Routes::default(), service_names: Vec::new() }
    }

    /// Add a generated service. Its health status follows the server's.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME);
        self.routes = self.routes.add_service(service);
        self
    }

    /// Methods callable without a token, as full paths (`/cobro.identity.v1.IdentityService/Login`).
    pub fn public_methods(mut self, methods: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.public_methods.extend(methods.into_iter().map(Into::into));
        self
    }

    /// The largest message a service should accept; pass it to each generated server's
    /// `max_decoding_message_size`.
    pub fn max_message_bytes(&self) -> usize {
        self.config.max_message_bytes
    }

    /// Bind `addr` (port 0 picks a free port) and return the bound address with the future that
    /// serves until `shutdown`.
    pub async fn bind(
        self,
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> Result<(SocketAddr, impl Future<Output = Result<(), GrpcError>>), GrpcError> {
        let listener = TcpListener::bind(addr).await.map_err(|source| GrpcError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| GrpcError::Bind { addr, source })?;
        Ok((local, self.serve_on(listener, shutdown)))
    }

    /// Serve on `listener` until `shutdown`, then drain for at most `shutdown_grace`.
    pub async fn serve_on(self, listener: TcpListener, shutdown: CancellationToken) -> Result<(), GrpcError> {
        let timeout = parse_duration("grpc.request_timeout", &self.config.request_timeout)?;
        let grace = parse_duration("grpc.shutdown_grace", &self.config.shutdown_grace)?;
        let drain_delay = parse_duration("grpc.drain_delay", &self.config.drain_delay)?;
        let local = listener.local_addr().ok();

        let (health, health_service) = tonic_health::server::health_reporter();
        for name in &self.service_names {
            health.set_service_status(*name, ServingStatus::Serving).await;
        }
        health.set_service_status("", ServingStatus::Serving).await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(cobro_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;

        let routes = self.routes.add_service(health_service).add_service(reflection);
        let public: Vec<String> = self.public_methods;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

        let names = self.service_names.clone();
        let drain_signal = {
            let shutdown = shutdown.clone();
            let health = health.clone();
            async move {
                shutdown.cancelled().await;
                // Tell load balancers first, then stop accepting.
                for name in &names {
                    health.set_service_status(*name, ServingStatus::NotServing).await;
                }
                health.set_service_status("", ServingStatus::NotServing).await;
                tokio::time::sleep(drain_delay).await;
            }
        };

        tracing::info!(addr = ?local, services = ?self.service_names, "gRPC server listening");
        let server = tonic::transport::Server::builder()
            .timeout(timeout)
            .layer(RequestTelemetryLayer::new(&self.service_names))
            .layer(GlobalConcurrencyLimitLayer::new(self.config.concurrency_limit))
            .layer(AuthLayer::new(self.verifier, public))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, drain_signal);
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => result?,
            _ = shutdown.cancelled() => match tokio::time::timeout(drain_delay + grace, &mut server).await {
                Ok(result) => result?,
                Err(_) => tracing::warn!(grace = ?grace, "shutdown grace expired; dropping in-flight requests"),
            },
        }
        tracing::info!(addr = ?local, "gRPC server stopped");
        Ok(())
    }
}

/// A span per request, parented on the caller's `traceparent`, and request metrics.
#[derive(Debug, Clone)]
pub struct RequestTelemetryLayer {
    /// `/<package.Service>/` of every service served: only their methods get a metrics label
    /// of their own, so made-up paths cannot grow the metrics without bound.
    known: Arc<Vec<String>>,
}

impl RequestTelemetryLayer {
    pub fn new(service_names: &[&str]) -> Self {
        let mut known: Vec<String> = service_names.iter().map(|name| format!("/{name}/")).collect();
        known.push("/grpc.health.v1.Health/".to_owned());
        Self { known: Arc::new(known) }
    }
}

impl<S> Layer<S> for RequestTelemetryLayer {
    type Service = RequestTelemetry<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestTelemetry { inner, known: Arc::clone(&self.known) }
    }
}

#[derive(Debug, Clone)]
pub struct RequestTelemetry<S> {
    inner: S,
    known: Arc<Vec<String>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> Service<http::Request<B>> for RequestTelemetry<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = if self.known.iter().any(|prefix| path.starts_with(prefix.as_str())) {
            path.to_owned()
        } else {
            "unknown".to_owned()
        };
        let span = tracing::info_span!("grpc", otel.kind = "server", rpc.method = %method);
        if let Some(tp) = request.headers().get("traceparent").and_then(|v| v.to_str().ok()) {
            crate::telemetry::set_remote_parent(&span, tp);
        }
        // Take the service that was driven to readiness, leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let started = Instant::now();
        Box::pin(
            async move {
                let result = inner.call(request).await;
                let code = match &result {
                    Ok(response) => {
                        response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_owned()
                    }
                    Err(_) => "transport".to_owned(),
                };
                crate::telemetry::metrics::grpc_request(&method, &code, started.elapsed());
                result
            }
            .instrument(span),
        )
    }
}

/// A client channel to another service, with connect and request timeouts.
pub async fn connect(
    url: &str,
    request_timeout: Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(request_timeout)
        .connect()
        .await
}

/// Like [`connect`] but connects on first use, so services can start in any order.
pub fn connect_lazy(
    url: &str,
    request_timeout: Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(request_timeout)
        .connect_lazy())
}

//! The HTTP gateway. So far: the foundations of its pages and forms (`web`: sessions in Redis,
//! CSRF tokens, security headers, per-address limits, language) and `/healthz`; the portal,
//! console and REST API are still to come. It is stateless and owns no schema.

pub mod web;

use std::net::SocketAddr;

use cobro_kit::config::{ConfigError, Settings, Validate};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

pub const NAME: &str = "gateway";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Validate for GatewayConfig {}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("gateway: cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

pub async fn serve(settings: &Settings, shutdown: CancellationToken) -> Result<(), GatewayError> {
    let config: GatewayConfig = settings.section(NAME)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| GatewayError::Bind { addr: config.listen, source })?;
    let app = router(false);
    tracing::info!(addr = %config.listen, "gateway listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|source| GatewayError::Bind { addr: config.listen, source })
}

/// The gateway's routes, with security headers on every response (`secure`: served over TLS).
pub fn router(secure: bool) -> axum::Router {
    axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .layer(axum::middleware::from_fn(move |request, next| web::headers::apply(secure, request, next)))
}

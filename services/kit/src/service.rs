//! What every service's `serve` does, once: read its config section, open its pool, migrate
//! its schema, make sure its topic exists, relay its outbox, and serve gRPC until shutdown.
//!
//! A service crate provides its name, its migrations and its gRPC services:
//!
//! ```ignore
//! let ctx = cobro_kit::service::prepare(&settings, NAME, &MIGRATOR).await?;
//! let server = ctx.grpc_server().add_service(MyServer::new(api));
//! cobro_kit::service::run(ctx, server, shutdown).await
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

use crate::auth::{IdentityJwks, JwksCache, JwksSource, Verifier};
use crate::config::{ConfigError, GrpcConfig, KafkaConfig, ServiceConfig, Settings, Validate};
use crate::events::{Relay, RelayConfig, ensure_topics, topic_for};
use crate::grpc::GrpcServer;

/// The services of the platform, in start order, with their default gRPC ports.
pub const SERVICES: [(&str, u16); 7] = [
    ("identity", 50051),
    ("invoicing", 50052),
    ("payments", 50053),
    ("vault", 50054),
    ("notifications", 50055),
    ("reconciliation", 50056),
    ("gateway", 8080),
];

/// Default listen address of a service.
pub fn default_listen(name: &str) -> Option<SocketAddr> {
    SERVICES.iter().find(|(n, _)| *n == name).map(|(_, port)| SocketAddr::from(([127, 0, 0, 1], *port)))
}

/// How services verify tokens: identity's issuer and audience, and where its keys are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default = "default_audience")]
    pub audience: String,
    /// identity's gRPC address, for its JWKS.
    #[serde(default = "default_identity_url")]
    pub identity_url: String,
}

fn default_issuer() -> String {
    "cobro-identity".to_owned()
}
fn default_audience() -> String {
    "cobro".to_owned()
}
fn default_identity_url() -> String {
    "http://127.0.0.1:50051".to_owned()
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { issuer: default_issuer(), audience: default_audience(), identity_url: default_identity_url() }
    }
}

impl Validate for AuthConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if !(self.identity_url.starts_with("http://") || self.identity_url.starts_with("https://")) {
            return Err(ConfigError::invalid(&format!("{prefix}.identity_url"), "must be an http:// or https:// URL"));
        }
        if self.audience.is_empty() {
            return Err(ConfigError::invalid(&format!("{prefix}.audience"), "must not be empty"));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{service}: {source}")]
    Db { service: &'static str, source: crate::db::DbError },
    #[error("{service}: event broker: {source}")]
    Kafka { service: &'static str, source: rdkafka::error::KafkaError },
    #[error("{service}: {source}")]
    Grpc { service: &'static str, source: crate::grpc::GrpcError },
    #[error("{service}: {message}")]
    Startup { service: &'static str, message: String },
    #[error("{service}: identity address: {source}")]
    Identity { service: &'static str, source: tonic::transport::Error },
}

/// Everything a service needs once its dependencies are ready.
pub struct ServiceContext {
    pub name: &'static str,
    pub config: ServiceConfig,
    pub listen: SocketAddr,
    pub pool: PgPool,
    pub kafka: KafkaConfig,
    pub grpc: GrpcConfig,
    pub auth: AuthConfig,
    pub verifier: Arc<Verifier>,
    /// This service's topic, `cobro.<name>.v1`.
    pub topic: String,
}

impl ServiceContext {
    /// A gRPC server with the kit's layers; add the service's own services to it.
    pub fn grpc_server(&self) -> GrpcServer {
        GrpcServer::new(self.grpc.clone(), Arc::clone(&self.verifier))
    }
}

/// Read config, connect, migrate and create the topic. Fails with a message naming what is
/// wrong; nothing is served until all of it holds.
pub async fn prepare(
    settings: &Settings,
    name: &'static str,
    migrator: &Migrator,
) -> Result<ServiceContext, ServiceError> {
    let config: ServiceConfig = settings.section(name)?;
    let kafka: KafkaConfig = settings.section("kafka")?;
    let grpc: GrpcConfig = settings.section("grpc")?;
    let auth: AuthConfig = settings.section("auth")?;
    let listen = config
        .listen
        .or_else(|| default_listen(name))
        .ok_or_else(|| ConfigError::missing(&format!("{name}.listen")))?;

    let pool = crate::db::connect(&config, name).await.map_err(|source| ServiceError::Db { service: name, source })?;
    crate::db::migrate(&pool, name, migrator).await.map_err(|source| ServiceError::Db { service: name, source })?;
    let topic = topic_for(name);
    // The outbox holds events while the broker is away, so a broker outage must not keep a
    // service from starting; the topic is created by `cobro migrate` and infra as well.
    if let Err(err) = ensure_topics(&kafka, std::slice::from_ref(&topic)).await {
        tracing::warn!(service = name, %topic, error = %err, "cannot create the topic now; the relay will retry publishing");
    }

    let channel = crate::grpc::connect_lazy(&auth.identity_url, Duration::from_secs(5))
        .map_err(|source| ServiceError::Identity { service: name, source })?;
    let source: Arc<dyn JwksSource> = Arc::new(IdentityJwks::new(channel));
    let verifier =
        Arc::new(Verifier::new(Arc::new(JwksCache::new(source)), auth.issuer.clone(), auth.audience.clone()));
    Ok(ServiceContext { name, config, listen, pool, kafka, grpc, auth, verifier, topic })
}

/// Serve until `shutdown`, relaying the outbox alongside.
pub async fn run(ctx: ServiceContext, server: GrpcServer, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let name = ctx.name;
    let relay = Relay::new(ctx.pool.clone(), &ctx.kafka, RelayConfig::default())
        .map_err(|source| ServiceError::Kafka { service: name, source })?;
    let relay = tokio::spawn(relay.run(shutdown.clone()));
    let (addr, serving) = server
        .bind(ctx.listen, shutdown.clone())
        .await
        .map_err(|source| ServiceError::Grpc { service: name, source })?;
    tracing::info!(service = name, %addr, "service ready");
    let served = serving.await.map_err(|source| ServiceError::Grpc { service: name, source });
    // Whatever ended serving, stop the relay too so the process can exit.
    shutdown.cancel();
    let _ = relay.await;
    ctx.pool.close().await;
    served
}

/// Migrate a service's schema and stop: `cobro migrate`, and the Helm pre-upgrade hook.
pub async fn migrate_only(settings: &Settings, name: &'static str, migrator: &Migrator) -> Result<(), ServiceError> {
    let config: ServiceConfig = settings.section(name)?;
    let pool = crate::db::connect(&config, name).await.map_err(|source| ServiceError::Db { service: name, source })?;
    crate::db::migrate(&pool, name, migrator).await.map_err(|source| ServiceError::Db { service: name, source })?;
    pool.close().await;
    Ok(())
}

/// A service whose API has not landed yet: it owns its schema (event tables), its topic and
/// its port, and answers health checks, so the platform's shape is real from the start.
pub async fn serve_placeholder(
    settings: &Settings,
    name: &'static str,
    shutdown: CancellationToken,
) -> Result<(), ServiceError> {
    let migrator = Migrator::with_migrations(Vec::new());
    let ctx = prepare(settings, name, &migrator).await?;
    let server = ctx.grpc_server();
    run(ctx, server, shutdown).await
}

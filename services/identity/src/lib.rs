//! The identity service: tenants, staff users and portal contacts, passwords, TOTP second
//! factor and recovery codes, sessions, API keys, service clients, signing keys and the security
//! audit log. Every other service trusts the tokens it signs.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod keys;
pub mod limiter;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use cobro_kit::auth::{JwksCache, JwksSource, Verifier};
use cobro_kit::cache::RedisConfig;
use cobro_kit::config::Settings;
use cobro_kit::service::{AuthConfig, ServiceError};
use cobro_proto::identity::v1::identity_service_server::IdentityServiceServer;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

use crate::app::Identity;
use crate::config::IdentityConfig;
use crate::error::IdentityError;
use crate::keys::KeyRing;
use crate::limiter::Limiter;

pub const NAME: &str = "identity";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The service's own migrations (the kit adds the event tables).
pub fn migrator() -> Migrator {
    Migrator { migrations: MIGRATOR.migrations.clone(), ..Migrator::DEFAULT }
}

/// How often a replica re-reads the signing keys (to pick up another replica's rotation).
const KEY_RELOAD_PERIOD: Duration = Duration::from_secs(30);

/// The use cases over a migrated schema: loads (or creates) the signing keys.
pub async fn build(
    pool: PgPool,
    settings: config::Settings,
    redis: ConnectionManager,
    redis_prefix: &str,
    auth: AuthConfig,
) -> Result<Arc<Identity>, IdentityError> {
    let settings = Arc::new(settings);
    let data_key = Arc::clone(&settings.data_key);
    let keys = Arc::new(KeyRing::new(pool.clone(), data_key, settings.access_token_ttl, settings.key_publish_delay));
    keys.load().await?;
    Ok(Arc::new(Identity::new(pool, settings, keys, Limiter::new(redis, redis_prefix), auth)))
}

/// Identity verifies tokens against its own key ring.
pub fn verifier(app: &Identity, auth: &AuthConfig) -> Arc<Verifier> {
    let source: Arc<dyn JwksSource> = Arc::clone(app.keys()) as Arc<dyn JwksSource>;
    Arc::new(Verifier::new(Arc::new(JwksCache::new(source)), auth.issuer.clone(), auth.audience.clone()))
}

/// The configured section, parsed.
pub fn settings(settings: &Settings) -> Result<(config::Settings, RedisConfig), ServiceError> {
    let section: IdentityConfig = settings.section(NAME)?;
    let parsed = section.parse(NAME)?;
    let redis: RedisConfig = settings.section("redis")?;
    Ok((parsed, redis))
}

pub async fn serve(settings: &Settings, shutdown: CancellationToken) -> Result<(), ServiceError> {
    // Every key is checked before anything connects, the common section's first.
    let _: cobro_kit::config::ServiceConfig = settings.section(NAME)?;
    let (parsed, redis_config) = self::settings(settings)?;
    let redis = cobro_kit::cache::connect_lazy(&redis_config)?;
    let ctx = cobro_kit::service::prepare(settings, NAME, &migrator()).await?;
    let app = build(ctx.pool.clone(), parsed, redis, "cobro:identity", ctx.auth.clone())
        .await
        .map_err(|e| ServiceError::Startup { service: NAME, message: format!("signing keys: {e}") })?;
    let verifier = verifier(&app, &ctx.auth);
    tokio::spawn(Arc::clone(app.keys()).run_reload(KEY_RELOAD_PERIOD, shutdown.clone()));
    let server = cobro_kit::grpc::GrpcServer::new(ctx.grpc.clone(), Arc::clone(&verifier))
        .add_service(
            IdentityServiceServer::new(api::IdentityApi::new(app, verifier)).max_decoding_message_size(1024 * 1024),
        )
        .public_methods(api::PUBLIC_METHODS);
    cobro_kit::service::run(ctx, server, shutdown).await
}

/// The use cases for the `cobro identity ...` admin commands: the service's own database and
/// Redis, migrated, without serving.
pub async fn admin(settings: &Settings) -> Result<Arc<Identity>, ServiceError> {
    let (parsed, redis_config) = self::settings(settings)?;
    let redis = cobro_kit::cache::connect_lazy(&redis_config)?;
    let config: cobro_kit::config::ServiceConfig = settings.section(NAME)?;
    let auth: AuthConfig = settings.section("auth")?;
    let pool =
        cobro_kit::db::connect(&config, NAME).await.map_err(|source| ServiceError::Db { service: NAME, source })?;
    cobro_kit::db::migrate(&pool, NAME, &migrator())
        .await
        .map_err(|source| ServiceError::Db { service: NAME, source })?;
    build(pool, parsed, redis, "cobro:identity", auth)
        .await
        .map_err(|e| ServiceError::Startup { service: NAME, message: e.to_string() })
}

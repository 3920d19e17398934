//! The vault service: card numbers enter Cobro here and nowhere else keeps them. Tokenization
//! with envelope encryption (a fresh data key per record, wrapped by a key-encryption key from a
//! [`keys::KeyProvider`]), keyed fingerprints, detokenization for the payments service only,
//! crypto-shredding, key rotation with background rewrapping, and an append-only audit log.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod keys;
pub mod store;

use std::sync::Arc;

use cobro_kit::config::Settings;
use cobro_kit::service::ServiceError;
use cobro_proto::vault::v1::vault_service_server::VaultServiceServer;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

use crate::app::Vault;
use crate::config::VaultConfig;

pub const NAME: &str = "vault";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The service's own migrations (the kit adds the event tables).
pub fn migrator() -> Migrator {
    Migrator { migrations: MIGRATOR.migrations.clone(), ..Migrator::DEFAULT }
}

pub async fn serve(settings: &Settings, shutdown: CancellationToken) -> Result<(), ServiceError> {
    // Every key is checked before anything connects; without a KEK the vault does not start.
    let _: cobro_kit::config::ServiceConfig = settings.section(NAME)?;
    let config: VaultConfig = settings.section(NAME)?;
    let provider = Arc::new(config.key_provider(NAME)?);
    let jobs = config.jobs(NAME)?;
    let ctx = cobro_kit::service::prepare(settings, NAME, &migrator()).await?;
    let vault = Vault::start(ctx.pool.clone(), provider)
        .await
        .map_err(|e| ServiceError::Startup { service: NAME, message: e.to_string() })?;
    let vault = Arc::new(vault);
    tokio::spawn(Arc::clone(&vault).run_jobs(jobs, shutdown.clone()));
    let server = ctx.grpc_server().add_service(VaultServiceServer::new(api::VaultApi::new(vault)));
    cobro_kit::service::run(ctx, server, shutdown).await
}

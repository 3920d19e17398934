//! The vault service. Placeholder until its API lands: it owns its schema, topic and port, and
//! answers gRPC health checks.

use cobro_kit::config::Settings;
use cobro_kit::service::ServiceError;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

pub const NAME: &str = "vault";

/// The service's own migrations (none yet; the kit adds the event tables).
pub fn migrator() -> Migrator {
    Migrator::with_migrations(Vec::new())
}

pub async fn serve(settings: &Settings, shutdown: CancellationToken) -> Result<(), ServiceError> {
    cobro_kit::service::serve_placeholder(settings, NAME, shutdown).await
}

//! The reconciliation service. So far: bank statements read in every supported format and
//! imported once per file and once per bank entry; its gRPC API, matching and discrepancies are
//! still to come (the process answers health checks meanwhile).

pub mod domain;
pub mod import;
pub mod store;

use cobro_kit::config::Settings;
use cobro_kit::service::ServiceError;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

pub const NAME: &str = "reconciliation";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The service's own migrations (the kit adds the event tables).
pub fn migrator() -> Migrator {
    Migrator { migrations: MIGRATOR.migrations.clone(), ..Migrator::DEFAULT }
}

pub async fn serve(settings: &Settings, shutdown: CancellationToken) -> Result<(), ServiceError> {
    cobro_kit::service::serve_placeholder(settings, NAME, shutdown).await
}

//! The invoicing service: customers, invoices with taxes and discounts, gapless numbering,
//! installment plans, credit notes, payment allocation with customer credit, and the
//! receivables reports (aging, DSO, collection effectiveness, forecast).

pub mod api;
pub mod app;

pub mod documents;
pub mod domain;
pub mod error;
pub mod events;
pub mod import;
pub mod recurring;
pub mod requests;
pub mod statement;
pub mod store;

use std::sync::Arc;

use cobro_kit::config::Settings;
use cobro_kit::service::ServiceError;
use cobro_proto::invoicing::v1::invoicing_service_server::InvoicingServiceServer;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

pub const NAME: &str = "invoicing";

/// The invoicing section of the configuration.
#[derive(serde::Deserialize)]
struct InvoicingConfig {
    /// How often due/overdue notices and recurring invoices are looked for. Each is
    /// exactly-once across replicas, so every replica runs them.
    #[serde(default = "default_job_interval")]
    job_interval: String,
}

fn default_job_interval() -> String {
    "5m".to_owned()
}

impl cobro_kit::config::Validate for InvoicingConfig {
    fn validate(&self, prefix: &str) -> Result<(), cobro_kit::config::ConfigError> {
        cobro_kit::config::parse_duration(&format!("{prefix}.job_interval"), &self.job_interval).map(|_| ())
    }
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The service's own migrations (the kit adds the event tables).
pub fn migrator() -> Migrator {
    Migrator { migrations: MIGRATOR.migrations.clone(), ..Migrator::DEFAULT }
}

pub async fn serve(settings: &Settings, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let config: InvoicingConfig = settings.section(NAME)?;
    let job_interval = cobro_kit::config::parse_duration("invoicing.job_interval", &config.job_interval)?;
    let ctx = cobro_kit::service::prepare(settings, NAME, &migrator()).await?;
    let app = Arc::new(app::Invoicing::new(ctx.pool.clone()));
    tokio::spawn(Arc::clone(&app).run_jobs(job_interval, shutdown.clone()));
    // Payments arrive as events from payments and reconciliation; the topics may not exist yet
    // on a fresh cluster, so create them (best effort) before subscribing.
    if let Err(error) = cobro_kit::events::ensure_topics(&ctx.kafka, &events::payment_topics()).await {
        tracing::warn!(%error, "cannot create the payment topics now; the consumer will wait for them");
    }
    let consumer = cobro_kit::events::Consumer::new(
        ctx.pool.clone(),
        &ctx.kafka,
        cobro_kit::events::ConsumerConfig::new("invoicing.payments", events::payment_topics()),
        events::PaymentsHandler { app: Arc::clone(&app) },
    )
    .map_err(|source| ServiceError::Kafka { service: NAME, source })?;
    tokio::spawn(consumer.run(shutdown.clone()));
    let server = ctx.grpc_server().add_service(InvoicingServiceServer::new(api::InvoicingApi::new(app)));
    cobro_kit::service::run(ctx, server, shutdown).await
}

//! The reconciliation service: bank statements in every supported format imported once per
//! file and once per bank entry; what is owed kept from invoicing's and payments' events;
//! matching with a confidence per rule, confirmed automatically above the tenant's threshold
//! and suggested to a person below it; discrepancies reported; an audit report per period.

pub mod api;
pub mod app;
pub mod domain;
pub mod error;
pub mod events;
pub mod import;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use cobro_kit::config::Settings;
use cobro_kit::service::ServiceError;
use cobro_proto::reconciliation::v1::reconciliation_service_server::ReconciliationServiceServer;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

use crate::app::Reconciliation;

pub const NAME: &str = "reconciliation";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The service's own migrations (the kit adds the event tables).
pub fn migrator() -> Migrator {
    Migrator { migrations: MIGRATOR.migrations.clone(), ..Migrator::DEFAULT }
}

/// How often replicas look for tenants to match again and for credits left unmatched.
const JOB_INTERVAL: Duration = Duration::from_secs(5);

pub async fn serve(settings: &Settings, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let ctx = cobro_kit::service::prepare(settings, NAME, &migrator()).await?;
    let app = Arc::new(Reconciliation::new(ctx.pool.clone()));
    tokio::spawn(Arc::clone(&app).run_jobs(JOB_INTERVAL, shutdown.clone()));

    let topics = vec![events::INVOICING_TOPIC.to_owned(), events::PAYMENTS_TOPIC.to_owned()];
    if let Err(error) = cobro_kit::events::ensure_topics(&ctx.kafka, &topics).await {
        tracing::warn!(%error, "cannot create the topics reconciliation reads now; the consumer will wait for them");
    }
    let consumer = cobro_kit::events::Consumer::new(
        ctx.pool.clone(),
        &ctx.kafka,
        cobro_kit::events::ConsumerConfig::new(events::CONSUMER_GROUP, topics),
        events::Handler,
    )
    .map_err(|source| ServiceError::Kafka { service: NAME, source })?;
    tokio::spawn(consumer.run(shutdown.clone()));

    let server = ctx.grpc_server().add_service(ReconciliationServiceServer::new(api::ReconciliationApi::new(app)));
    cobro_kit::service::run(ctx, server, shutdown).await
}

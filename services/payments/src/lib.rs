//! The payments service: payment intents and their attempts through a card processor (the
//! built-in sandbox or Stripe), cards through the vault, saved methods, autopay, bank transfers
//! with ISO 11649 references, direct debits, payment links, refunds, payouts, and idempotency
//! on every retried mutation. Crash-safe: an attempt is recorded before the processor is
//! called, and a recovery task settles attempts a crash left open.

pub mod api;
pub mod app;
pub mod clients;
pub mod config;
pub mod connector;
pub mod customers;
pub mod domain;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod links;
pub mod store;

use std::sync::Arc;

use cobro_kit::config::Settings;
use cobro_kit::service::ServiceError;
use cobro_proto::payments::v1::payments_service_server::PaymentsServiceServer;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

use crate::clients::{IdentityTokens, TokenSource, VaultClient};
use crate::config::PaymentsConfig;
use crate::connector::Processor;

pub const NAME: &str = "payments";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The service's own migrations (the kit adds the event tables).
pub fn migrator() -> Migrator {
    Migrator { migrations: MIGRATOR.migrations.clone(), ..Migrator::DEFAULT }
}

fn startup(message: impl ToString) -> ServiceError {
    ServiceError::Startup { service: NAME, message: message.to_string() }
}

pub async fn serve(settings: &Settings, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let config: PaymentsConfig = settings.section(NAME)?;
    let timings = config.timings(NAME)?;
    let ctx = cobro_kit::service::prepare(settings, NAME, &migrator()).await?;

    let processor = match (config.connector.as_str(), &config.stripe) {
        ("stripe", Some(s)) => {
            let stripe = connector::stripe::Stripe::new(connector::stripe::StripeConfig {
                base_url: s.base_url.clone(),
                secret_key: s.secret_key.clone(),
                webhook_secret: s.webhook_secret.clone(),
                timeout: connector::stripe::DEFAULT_TIMEOUT,
            })
            .map_err(startup)?;
            Processor::Stripe(Arc::new(stripe))
        }
        _ => Processor::Sandbox(Arc::new(connector::sandbox::Sandbox::new(
            ctx.pool.clone(),
            config.sandbox_config(NAME)?,
        ))),
    };
    let identity = cobro_kit::grpc::connect_lazy(&ctx.auth.identity_url, clients::CALL_TIMEOUT)
        .map_err(|source| ServiceError::Identity { service: NAME, source })?;
    let secret = config.client_secret.clone().unwrap_or_else(|| {
        tracing::warn!(
            "payments.client_secret is not set: card payments fail until it is (cobro identity service-client payments)"
        );
        secrecy::SecretString::from(String::new())
    });
    let tokens = TokenSource::Identity(Arc::new(IdentityTokens::new(identity, secret)));
    let vault_channel = cobro_kit::grpc::connect_lazy(&config.vault_url, clients::CALL_TIMEOUT).map_err(startup)?;
    let app = Arc::new(app::Payments::new(
        ctx.pool.clone(),
        processor,
        VaultClient::new(vault_channel, tokens),
        app::PaymentsOptions { recover_after: timings.recover_after, ..app::PaymentsOptions::default() },
    ));
    tokio::spawn(Arc::clone(&app).run_jobs(timings.job_interval, shutdown.clone()));

    let invoices = vec![events::INVOICING_TOPIC.to_owned()];
    let matches = vec![events::RECONCILIATION_TOPIC.to_owned()];
    let topics = [invoices.clone(), matches.clone()].concat();
    if let Err(error) = cobro_kit::events::ensure_topics(&ctx.kafka, &topics).await {
        tracing::warn!(%error, "cannot create the invoicing and reconciliation topics now; the consumers will wait for them");
    }
    let consumer = cobro_kit::events::Consumer::new(
        ctx.pool.clone(),
        &ctx.kafka,
        cobro_kit::events::ConsumerConfig::new(events::CONSUMER_GROUP, invoices),
        events::InvoicesHandler,
    )
    .map_err(|source| ServiceError::Kafka { service: NAME, source })?;
    tokio::spawn(consumer.run(shutdown.clone()));
    // Its own group (and inbox rows), so a slow or stuck match never holds back invoice events.
    let reconciliation = cobro_kit::events::Consumer::new(
        ctx.pool.clone(),
        &ctx.kafka,
        cobro_kit::events::ConsumerConfig::new(events::RECONCILIATION_GROUP, matches),
        events::ReconciliationHandler::new(Arc::clone(&app)),
    )
    .map_err(|source| ServiceError::Kafka { service: NAME, source })?;
    tokio::spawn(reconciliation.run(shutdown.clone()));

    let server = ctx
        .grpc_server()
        .public_methods(api::PUBLIC_METHODS)
        .add_service(PaymentsServiceServer::new(api::PaymentsApi::new(app)));
    cobro_kit::service::run(ctx, server, shutdown).await
}

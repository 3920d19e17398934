//! The notifications service: reminder policies per tenant and customer, reminders planned
//! from invoicing's events and kept in step with payments, pauses for hardship requests and
//! disputes, transactional messages, and a dispatcher that several replicas share, sending each
//! message once through email, SMS, WhatsApp or a signed webhook.

pub mod api;
pub mod app;
pub mod channels;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod policy;
pub mod render;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use cobro_kit::config::Settings;
use cobro_kit::service::ServiceError;
use cobro_proto::notifications::v1::notifications_service_server::NotificationsServiceServer;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;

use crate::app::{Channels, Notifications, WebhookSettings};
use crate::channels::{AnyChannel, HttpClient, SmtpConfig, SmtpEmail, SmtpTls, TwilioConfig, TwilioSender, TwilioSms};
use crate::channels::{WhatsAppCloud, WhatsAppConfig};
use crate::config::NotificationsConfig;

pub const NAME: &str = "notifications";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The service's own migrations (the kit adds the event tables).
pub fn migrator() -> Migrator {
    Migrator { migrations: MIGRATOR.migrations.clone(), ..Migrator::DEFAULT }
}

fn startup(message: impl ToString) -> ServiceError {
    ServiceError::Startup { service: NAME, message: message.to_string() }
}

/// The channels the configuration describes. Email is always there (a local sink in
/// development); SMS and WhatsApp only when configured.
pub fn channels(config: &NotificationsConfig, allow_local_webhooks: bool) -> Result<Channels, ServiceError> {
    let smtp = &config.smtp;
    let tls = match smtp.tls.as_str() {
        "none" => SmtpTls::None,
        "starttls" => SmtpTls::StartTls,
        "tls" => SmtpTls::Tls,
        _ => return Err(startup("notifications.smtp.tls must be none, starttls or tls")),
    };
    let email = SmtpEmail::new(SmtpConfig {
        host: smtp.host.clone(),
        port: smtp.port,
        tls,
        username: (!smtp.username.is_empty()).then(|| smtp.username.clone()),
        password: smtp.password.clone().unwrap_or_else(|| secrecy::SecretString::from(String::new())),
        from: smtp.from.clone(),
        timeout: Duration::from_secs(30),
    })
    .map_err(|e| startup(format!("notifications.smtp: {e}")))?;
    let http = HttpClient::new();
    let sms = match &config.sms {
        Some(s) => {
            let twilio = TwilioConfig {
                base_url: s.base_url.clone(),
                ..TwilioConfig::new(s.account_sid.clone(), s.auth_token.clone(), TwilioSender::From(s.from.clone()))
            };
            Some(AnyChannel::from(
                TwilioSms::new(http.clone(), twilio).map_err(|e| startup(format!("notifications.sms: {e}")))?,
            ))
        }
        None => None,
    };
    let whatsapp = match &config.whatsapp {
        Some(w) => {
            let cloud = WhatsAppConfig {
                base_url: w.base_url.clone(),
                ..WhatsAppConfig::new(w.phone_number_id.clone(), w.token.clone())
            };
            Some(AnyChannel::from(
                WhatsAppCloud::new(http.clone(), cloud).map_err(|e| startup(format!("notifications.whatsapp: {e}")))?,
            ))
        }
        None => None,
    };
    Ok(Channels {
        email: Some(AnyChannel::from(email)),
        sms,
        whatsapp,
        webhook: Some(WebhookSettings { client: http, allow_local: allow_local_webhooks }),
    })
}

pub async fn serve(settings: &Settings, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let config: NotificationsConfig = settings.section(NAME)?;
    let pace = config.pace(NAME)?;
    let ctx = cobro_kit::service::prepare(settings, NAME, &migrator()).await?;
    let development = std::env::var("COBRO_ENV").is_ok_and(|env| env == "dev" || env == "test");
    let app = Arc::new(
        Notifications::new(ctx.pool.clone(), channels(&config, development)?, pace).with_portal_url(&config.portal_url),
    );
    tokio::spawn(Arc::clone(&app).run_dispatcher(shutdown.clone()));

    let topics = vec![events::INVOICING_TOPIC.to_owned(), events::PAYMENTS_TOPIC.to_owned()];
    if let Err(error) = cobro_kit::events::ensure_topics(&ctx.kafka, &topics).await {
        tracing::warn!(%error, "cannot create the topics notifications reads now; the consumer will wait for them");
    }
    let consumer = cobro_kit::events::Consumer::new(
        ctx.pool.clone(),
        &ctx.kafka,
        cobro_kit::events::ConsumerConfig::new(events::CONSUMER_GROUP, topics),
        events::Handler { app: Arc::clone(&app) },
    )
    .map_err(|source| ServiceError::Kafka { service: NAME, source })?;
    tokio::spawn(consumer.run(shutdown.clone()));

    let server = ctx.grpc_server().add_service(NotificationsServiceServer::new(api::NotificationsApi::new(app)));
    cobro_kit::service::run(ctx, server, shutdown).await
}

//! The HTTP gateway: sign-in (`pages`), the customer portal (`portal`), the staff console
//! (`console`), public payment-link pages, the sandbox's 3-D Secure page and processor webhooks
//! (`public`), and the REST/JSON API with its OpenAPI document (`rest`). Underneath, `web`:
//! sessions in Redis, CSRF tokens, security headers, per-address limits, language. It is
//! stateless, owns no schema, and calls the services over gRPC with the signed-in person's token.

pub mod console;
pub mod pages;
pub mod portal;
pub mod public;
pub mod rest;
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
    /// Served over TLS (behind the ingress): cookies get `Secure` and responses HSTS.
    #[serde(default)]
    pub secure_cookies: bool,
    /// A session ends after this long without a request...
    #[serde(default = "default_session_idle")]
    pub session_idle: String,
    /// ...and at the latest this long after sign-in.
    #[serde(default = "default_session_absolute")]
    pub session_absolute: String,
    /// The services the gateway calls on a person's behalf.
    #[serde(default = "default_invoicing_url")]
    pub invoicing_url: String,
    #[serde(default = "default_payments_url")]
    pub payments_url: String,
    #[serde(default = "default_notifications_url")]
    pub notifications_url: String,
    #[serde(default = "default_reconciliation_url")]
    pub reconciliation_url: String,
    /// The gateway's credential at identity (`cobro identity service-client gateway`), so
    /// identity believes the end-user addresses it states at sign-in. From the environment.
    #[serde(default)]
    pub client_secret: Option<secrecy::SecretString>,
}

fn default_invoicing_url() -> String {
    "http://127.0.0.1:50052".to_owned()
}

fn default_payments_url() -> String {
    "http://127.0.0.1:50053".to_owned()
}

fn default_notifications_url() -> String {
    "http://127.0.0.1:50055".to_owned()
}

fn default_reconciliation_url() -> String {
    "http://127.0.0.1:50056".to_owned()
}

fn default_session_idle() -> String {
    "30m".to_owned()
}

fn default_session_absolute() -> String {
    "12h".to_owned()
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: default_listen(),
            secure_cookies: false,
            session_idle: default_session_idle(),
            session_absolute: default_session_absolute(),
            invoicing_url: default_invoicing_url(),
            payments_url: default_payments_url(),
            notifications_url: default_notifications_url(),
            reconciliation_url: default_reconciliation_url(),
            client_secret: None,
        }
    }
}

impl Validate for GatewayConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        cobro_kit::config::parse_duration(&format!("{prefix}.session_idle"), &self.session_idle)?;
        cobro_kit::config::parse_duration(&format!("{prefix}.session_absolute"), &self.session_absolute)?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("gateway: cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("gateway: service at {url}: {source}")]
    Service { url: String, source: tonic::transport::Error },
}

pub async fn serve(settings: &Settings, shutdown: CancellationToken) -> Result<(), GatewayError> {
    let config: GatewayConfig = settings.section(NAME)?;
    let redis_config: cobro_kit::cache::RedisConfig = settings.section("redis")?;
    let auth: cobro_kit::service::AuthConfig = settings.section("auth")?;
    let idle = cobro_kit::config::parse_duration("gateway.session_idle", &config.session_idle)?;
    let absolute = cobro_kit::config::parse_duration("gateway.session_absolute", &config.session_absolute)?;
    let redis = cobro_kit::cache::connect_lazy(&redis_config)?;
    let connect = |url: &str| {
        cobro_kit::grpc::connect_lazy(url, std::time::Duration::from_secs(30))
            .map_err(|source| GatewayError::Service { url: url.to_owned(), source })
    };
    let channel = connect(&auth.identity_url)?;
    let services =
        pages::Services::connect_lazy(&config).map_err(|(url, source)| GatewayError::Service { url, source })?;
    let jwks: std::sync::Arc<dyn cobro_kit::auth::JwksSource> =
        std::sync::Arc::new(cobro_kit::auth::IdentityJwks::new(channel.clone()));
    let verifier = cobro_kit::auth::Verifier::new(
        std::sync::Arc::new(cobro_kit::auth::JwksCache::new(jwks)),
        auth.issuer.clone(),
        auth.audience.clone(),
    );
    let pages = pages::Pages {
        sessions: web::session::SessionStore::new(redis.clone(), "cobro:gateway", idle, absolute),
        limiter: web::limits::RateLimiter::new(redis, "cobro:gateway:limit"),
        identity: cobro_proto::identity::v1::identity_service_client::IdentityServiceClient::new(channel),
        edge: web::edge::EdgeCredential::new(config.client_secret.clone()),
        services,
        verifier: std::sync::Arc::new(verifier),
        templates: pages::templates(),
        secure: config.secure_cookies,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| GatewayError::Bind { addr: config.listen, source })?;
    let app = router_with_pages(std::sync::Arc::new(pages));
    tracing::info!(addr = %config.listen, "gateway listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|source| GatewayError::Bind { addr: config.listen, source })
}

/// The gateway's routes, with security headers on every response (`secure`: served over TLS).
pub fn router(secure: bool) -> axum::Router {
    base(axum::Router::new(), secure)
}

/// The routes with the sign-in pages, which need Redis and identity.
pub fn router_with_pages(pages: std::sync::Arc<pages::Pages>) -> axum::Router {
    use axum::routing::{get, post};
    let secure = pages.secure;
    let routes = axum::Router::new()
        .route("/", get(pages::home))
        .route("/account", get(pages::account))
        .route("/signin", get(pages::signin_form).post(pages::signin))
        .route("/signin/mfa", get(pages::mfa_form).post(pages::mfa))
        .route("/signin/enrol", get(pages::enrol_form).post(pages::enrol))
        .route("/signout", post(pages::signout))
        .route("/static/cobro.css", get(pages::stylesheet))
        .merge(portal::routes())
        .merge(console::routes())
        .merge(public::routes())
        .merge(rest::routes())
        .with_state(pages);
    base(routes, secure)
}

fn base(routes: axum::Router, secure: bool) -> axum::Router {
    routes
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .layer(axum::middleware::from_fn(move |request, next| web::headers::apply(secure, request, next)))
}

//! The whole platform in one process, as `cobro serve all` runs it: every service's own
//! `serve`, each on a free port, over the real Postgres schemas, Redis and the test broker,
//! talking to each other over gRPC and Kafka. Tests drive it through its public APIs only.
//!
//! Each platform has a broker of its own (so consumer groups and offsets never meet another
//! test's) and shares the Postgres schemas with every other, like replicas of one deployment:
//! every test works in a tenant of its own. A platform that moves the business clock
//! ([`Platform::advance_clock`]) has a database of its own instead: its jobs act on every
//! tenant's dates, and must not send the development tenants' reminders a month early. One
//! that restarts PostgreSQL runs on a server of its own ([`crate::postgres::PrivatePostgres`]). Tests that start one run one at a time (the
//! `platform` test group in `.config/nextest.toml`), which keeps a 2-core machine responsive.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cobro_identity::domain::totp;
use cobro_kit::config::{Layers, Settings};
use cobro_proto::common::v1::Money;
use cobro_proto::identity::v1 as idpb;
use cobro_proto::identity::v1::identity_service_client::IdentityServiceClient;
use cobro_proto::invoicing::v1 as invpb;
use cobro_proto::invoicing::v1::invoicing_service_client::InvoicingServiceClient;
use std::collections::HashMap;
use tokio::sync::Mutex;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";

/// Services with a gRPC listener, in start order.
const GRPC_SERVICES: [&str; 6] = ["identity", "vault", "invoicing", "payments", "notifications", "reconciliation"];

pub struct Platform {
    pub gateway_url: String,
    pub identity: Channel,
    pub invoicing: Channel,
    pub payments: Channel,
    pub notifications: Channel,
    pub reconciliation: Channel,
    pub settings: Settings,
    admin: Arc<cobro_identity::app::Identity>,
    /// The platform's own broker, stopped with it.
    _broker: Option<cobro_kit::testing::TansuBroker>,
    shutdown: CancellationToken,
    tasks: JoinSet<(&'static str, Result<(), String>)>,
    urls: HashMap<&'static str, String>,
    /// Services running as processes, and the settings they are started with.
    children: HashMap<&'static str, tokio::process::Child>,
    child_env: Vec<(String, String)>,
    processes: Vec<&'static str>,
    /// The database of this platform alone (`Options::own_database`), dropped at `stop`.
    database: Option<String>,
    /// Where `observe` reads, as `cobro_admin` or the private server's superuser.
    observe_url: String,
    /// Whether the platform's data is its own (a database or a server), so moving the business
    /// clock touches nobody else's.
    isolated: bool,
}

/// A tenant of its own for one test, its owner signed in with a second factor.
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub owner_email: String,
    pub password: String,
    /// Base32, as an authenticator app is given it.
    pub totp_secret: String,
    /// The owner's access token (every staff permission).
    pub token: String,
    last_step: Mutex<u64>,
}

/// An invoicing customer with a portal contact who can sign in.
pub struct Customer {
    pub id: String,
    pub email: String,
    pub password: String,
}

fn config_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], cobro_kit::testing::free_port()))
}

/// The environment a `cobro serve` process needs to join this platform: the same layers as
/// the in-process services (the config directory, `COBRO__…` from the test's environment) and
/// this platform's overrides as `COBRO__…` variables.
fn child_env(overrides: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("COBRO_CONFIG_DIR".to_owned(), config_dir().display().to_string()),
        ("COBRO_ENV".to_owned(), "dev".to_owned()),
    ];
    for (key, value) in overrides {
        // The one list the overrides set by index.
        let key = if key == "kafka.brokers[0]" { "kafka.brokers" } else { key.as_str() };
        env.push((cobro_kit::config::env_name(key), value.clone()));
    }
    env
}

/// `cobro serve <name>` as a process of its own (the binary `infra/dev test` builds).
fn spawn_process(name: &str, env: &[(String, String)]) -> tokio::process::Child {
    let binary = std::env::var_os("COBRO_BIN").map_or_else(
        || {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
                std::path::PathBuf::from,
            );
            target.join("debug/cobro")
        },
        std::path::PathBuf::from,
    );
    tokio::process::Command::new(&binary)
        .args(["serve", name])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {} serve {name}: {e} (`cargo build --bin cobro` first)", binary.display())
        })
}

/// Serve one service as `cobro serve <name>` does, in a task of `tasks`.
fn spawn_service(
    tasks: &mut JoinSet<(&'static str, Result<(), String>)>,
    name: &'static str,
    settings: &Settings,
    shutdown: &CancellationToken,
) {
    let (settings, shutdown) = (settings.clone(), shutdown.clone());
    tasks.spawn(async move {
        let served = match name {
            "identity" => cobro_identity::serve(&settings, shutdown).await.map_err(|e| e.to_string()),
            "vault" => cobro_vault::serve(&settings, shutdown).await.map_err(|e| e.to_string()),
            "invoicing" => cobro_invoicing::serve(&settings, shutdown).await.map_err(|e| e.to_string()),
            "payments" => cobro_payments::serve(&settings, shutdown).await.map_err(|e| e.to_string()),
            "notifications" => cobro_notifications::serve(&settings, shutdown).await.map_err(|e| e.to_string()),
            "reconciliation" => cobro_reconciliation::serve(&settings, shutdown).await.map_err(|e| e.to_string()),
            "gateway" => cobro_gateway::serve(&settings, shutdown).await.map_err(|e| e.to_string()),
            other => Err(format!("no service {other}")),
        };
        (name, served)
    });
}

/// A channel to a service once it listens; a service that stopped on its own fails the test
/// with its error.
async fn connect(url: &str, tasks: &mut JoinSet<(&'static str, Result<(), String>)>) -> Channel {
    for _ in 0..300 {
        if let Ok(channel) = cobro_kit::grpc::connect(url, Duration::from_secs(30)).await {
            return channel;
        }
        if let Some(ended) = tasks.try_join_next() {
            panic!("a service stopped while the platform started: {ended:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not come up within 30 s");
}

/// What a test may change about the platform: its own broker or Redis (to stop them), or any
/// other setting.
#[derive(Default)]
pub struct Options {
    pub kafka_brokers: Option<String>,
    pub redis_url: Option<String>,
    pub overrides: Vec<(String, String)>,
    /// Services run as `cobro serve <name>` processes of their own, so a test can kill one
    /// with SIGKILL mid-request (in-process, a request already being handled would carry on).
    pub processes: Vec<&'static str>,
    /// A database of its own, made from scratch (roles are the cluster's): for a test that
    /// moves the business clock.
    pub own_database: bool,
    /// The port of a [`crate::postgres::PrivatePostgres`] the test started: every service uses
    /// its database, so the test may restart that server.
    pub postgres_port: Option<u16>,
}

/// The development database URL of a service's role, pointed at database `name`.
fn role_url(service: &str, name: &str) -> String {
    let var = format!("COBRO__{}__DATABASE_URL", service.to_uppercase());
    let url = std::env::var(&var).unwrap_or_else(|_| panic!("{var} is not set (source ~/.cache/cobro/dev/env)"));
    in_database(&url, name)
}

/// A database URL pointed at database `name` on the same server.
fn in_database(url: &str, name: &str) -> String {
    let (server, _) = url.rsplit_once('/').expect("a database URL ends in /<database>");
    format!("{server}/{name}")
}

/// Make an empty database with every service's schema, owned by the service's role, as
/// `infra/dev start` provisions the development one. Databases left by platforms that never
/// stopped (a failed test) are dropped first, unless someone is still connected to them.
async fn create_database() -> String {
    let url = cobro_kit::testing::database_url();
    let admin = cobro_kit::db::connect_url(&url, "public", 1).await.expect("the test database");
    let stale: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'cobro\\_e2e\\_%'")
        .fetch_all(&admin)
        .await
        .expect("list databases");
    for name in stale {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&admin).await;
    }
    let name = format!("cobro_e2e_{}", Uuid::now_v7().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("CREATE DATABASE (cobro_admin needs CREATEDB: run infra/dev start)");
    admin.close().await;
    let fresh = cobro_kit::db::connect_url(&in_database(&url, &name), "public", 1).await.expect("the new database");
    for service in GRPC_SERVICES {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {service} AUTHORIZATION cobro_{service}")))
            .execute(&fresh)
            .await
            .expect("a service schema");
    }
    fresh.close().await;
    name
}

impl Platform {
    pub async fn start() -> Platform {
        Platform::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Platform {
        // A broker of its own unless the test brings one: consumer groups, offsets and
        // rebalances of one platform never meet another test's.
        let (brokers, broker) = match options.kafka_brokers.clone() {
            Some(brokers) => (brokers, None),
            None => {
                let broker = cobro_kit::testing::TansuBroker::start().await;
                (broker.kafka().brokers.join(","), Some(broker))
            }
        };
        let addrs: Vec<(&str, SocketAddr)> = GRPC_SERVICES.iter().map(|name| (*name, addr())).collect();
        let url = |name: &str| {
            let (_, a) = addrs.iter().find(|(n, _)| *n == name).expect("a known service");
            format!("http://{a}")
        };
        let database = if options.own_database { Some(create_database().await) } else { None };
        let gateway = addr();
        let gateway_url = format!("http://{gateway}");
        let mut overrides: Vec<(String, String)> =
            addrs.iter().map(|(n, a)| (format!("{n}.listen"), a.to_string())).collect();
        overrides.extend([
            ("gateway.listen".to_owned(), gateway.to_string()),
            ("kafka.brokers[0]".to_owned(), brokers),
            ("telemetry.metrics_listen".to_owned(), String::new()),
            ("auth.identity_url".to_owned(), url("identity")),
            ("payments.vault_url".to_owned(), url("vault")),
            ("payments.sandbox.challenge_base_url".to_owned(), gateway_url.clone()),
            ("gateway.invoicing_url".to_owned(), url("invoicing")),
            ("gateway.payments_url".to_owned(), url("payments")),
            ("gateway.notifications_url".to_owned(), url("notifications")),
            ("gateway.reconciliation_url".to_owned(), url("reconciliation")),
            // Messages link to the invoice's page in this platform's portal.
            ("notifications.portal_url".to_owned(), format!("{gateway_url}/portal")),
        ]);
        if let Some(name) = &database {
            for service in GRPC_SERVICES {
                overrides.push((format!("{service}.database_url"), role_url(service, name)));
            }
        }
        let private =
            |role: &str, port: u16| format!("postgres://{role}@127.0.0.1:{port}/{}", crate::postgres::DATABASE);
        if let Some(port) = options.postgres_port {
            for service in GRPC_SERVICES {
                overrides.push((format!("{service}.database_url"), private(&format!("cobro_{service}"), port)));
            }
        }
        let observe_url = match (options.postgres_port, &database) {
            (Some(port), _) => private("postgres", port),
            (None, Some(name)) => in_database(&cobro_kit::testing::database_url(), name),
            (None, None) => cobro_kit::testing::database_url(),
        };
        let isolated = database.is_some() || options.postgres_port.is_some();
        if let Some(redis) = &options.redis_url {
            overrides.push(("redis.url".to_owned(), redis.clone()));
        }
        overrides.extend(options.overrides.iter().cloned());
        let layers = |overrides: Vec<(String, String)>| Layers {
            dir: Some(config_dir()),
            env: Some("dev".to_owned()),
            file: None,
            read_env: true,
            overrides,
        };
        let settings = layers(overrides.clone()).load().expect("platform settings");
        for (name, migrator) in [
            ("identity", cobro_identity::migrator()),
            ("vault", cobro_vault::migrator()),
            ("invoicing", cobro_invoicing::migrator()),
            ("payments", cobro_payments::migrator()),
            ("notifications", cobro_notifications::migrator()),
            ("reconciliation", cobro_reconciliation::migrator()),
        ] {
            cobro_kit::service::migrate_only(&settings, name, &migrator)
                .await
                .unwrap_or_else(|e| panic!("migrate {name}: {e}"));
        }
        // As `infra/dev start` does for the development broker: every service's topic exists
        // before anyone subscribes.
        let kafka: cobro_kit::config::KafkaConfig = settings.section("kafka").expect("kafka settings");
        let topics: Vec<String> = GRPC_SERVICES.iter().map(|s| cobro_kit::events::topic_for(s)).collect();
        cobro_kit::events::ensure_topics(&kafka, &topics).await.expect("the platform's topics");
        let admin = cobro_identity::admin(&settings).await.expect("identity admin");
        // Payments calls the vault as itself, and the gateway states end users' addresses to
        // identity as itself: `infra/dev` makes their credentials once; a run without them makes
        // them here.
        let mut made = false;
        for service in ["payments", "gateway"] {
            // A database of its own has no credentials yet.
            if isolated || std::env::var(format!("COBRO__{}__CLIENT_SECRET", service.to_uppercase())).is_err() {
                let secret = admin.put_service_client(service).await.expect("a service credential");
                let value = secrecy::ExposeSecret::expose_secret(&secret).to_owned();
                overrides.push((format!("{service}.client_secret"), value));
                made = true;
            }
        }
        let final_overrides = overrides.clone();
        let settings = if made { layers(overrides).load().expect("platform settings") } else { settings };

        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let child_env = child_env(&final_overrides);
        let mut children = HashMap::new();
        for name in ["identity", "vault", "invoicing", "payments", "notifications", "reconciliation", "gateway"] {
            if options.processes.contains(&name) {
                children.insert(name, spawn_process(name, &child_env));
            } else {
                spawn_service(&mut tasks, name, &settings, &shutdown);
            }
        }

        let platform = Platform {
            gateway_url: gateway_url.clone(),
            identity: connect(&url("identity"), &mut tasks).await,
            invoicing: connect(&url("invoicing"), &mut tasks).await,
            payments: connect(&url("payments"), &mut tasks).await,
            notifications: connect(&url("notifications"), &mut tasks).await,
            reconciliation: connect(&url("reconciliation"), &mut tasks).await,
            settings,
            admin,
            _broker: broker,
            shutdown,
            tasks,
            urls: addrs.iter().map(|(n, a)| (*n, format!("http://{a}"))).collect(),
            children,
            child_env,
            processes: options.processes.clone(),
            database,
            observe_url,
            isolated,
        };
        let web = crate::web::Web::new(&gateway_url);
        for _ in 0..150 {
            if web.try_get("/healthz").await.is_some_and(|r| r.status == 200) {
                return platform;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway did not come up within 15 s");
    }

    /// Stop every service the way a signal does (consumers leave their groups), and fail the
    /// test if one of them had stopped on its own.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for (_, mut child) in self.children.drain() {
            let _ = child.kill().await;
        }
        let mut failed = Vec::new();
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((name, Err(e))) => failed.push(format!("{name}: {e}")),
                Err(e) => failed.push(format!("task: {e}")),
            }
        }
        assert!(failed.is_empty(), "services failed: {failed:?}");
        if let Some(name) = self.database.take() {
            let url = cobro_kit::testing::database_url();
            let admin = cobro_kit::db::connect_url(&url, "public", 1).await.expect("the test database");
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&admin)
                .await
                .expect("drop the platform's database");
        }
    }

    /// Move the business clock ([`cobro_kit::clock`]) of every in-process service forward:
    /// the next round of each job acts as on that later day. Only on a platform with a
    /// database of its own.
    pub fn advance_clock(&self, by: chrono::TimeDelta) {
        assert!(self.isolated, "moving the clock needs Options::own_database or a private server");
        assert!(self.processes.is_empty(), "services running as processes keep their own clock");
        cobro_kit::clock::advance(by);
    }

    /// Kill a service started as a process (`Options::processes`) with SIGKILL, as a crash
    /// would: its requests in flight, open transactions and unsent work are cut off.
    pub async fn kill(&mut self, name: &str) {
        let Some(mut child) = self.children.remove(name) else {
            panic!("{name} does not run as a process of its own (Options::processes)")
        };
        child.kill().await.expect("SIGKILL the service");
    }

    /// Start a killed service again, on the same port with the same settings, and wait until
    /// it answers.
    pub async fn restart(&mut self, name: &'static str) {
        assert!(self.processes.contains(&name), "{name} does not run as a process of its own");
        self.children.insert(name, spawn_process(name, &self.child_env));
        if let Some(url) = self.urls.get(name).cloned() {
            connect(&url, &mut self.tasks).await;
        }
    }

    /// A read-only look at a service's tables, for waiting until an event has reached another
    /// service's read model (what a person would see as "a moment later"). Tests never change
    /// state this way.
    pub async fn observe(&self) -> sqlx::PgPool {
        cobro_kit::db::connect_url(&self.observe_url, "public", 2).await.expect("the test database")
    }

    pub fn identity_client(&self) -> IdentityServiceClient<Channel> {
        IdentityServiceClient::new(self.identity.clone())
    }

    pub fn invoicing_client(&self) -> InvoicingServiceClient<Channel> {
        InvoicingServiceClient::new(self.invoicing.clone())
    }

    /// A new tenant whose owner has TOTP enrolled, and whose policy requires it of staff.
    pub async fn tenant(&self) -> Tenant {
        let slug = format!("t{}", &Uuid::now_v7().simple().to_string()[16..]);
        let owner_email = format!("owner@{slug}.example.com");
        let (tenant, _) = self
            .admin
            .bootstrap_tenant(
                None,
                cobro_identity::app::TenantBootstrap {
                    slug: slug.clone(),
                    name: "Aceros del Norte S.A. de C.V.".into(),
                    default_locale: "es-MX".into(),
                    default_timezone: "America/Mexico_City".into(),
                    owner_email: owner_email.clone(),
                    owner_name: "Marta Ruiz".into(),
                    owner_password: PASSWORD.into(),
                },
            )
            .await
            .expect("bootstrap a tenant");
        let mut identity = self.identity_client();
        let login = identity
            .login(idpb::LoginRequest {
                tenant: slug.clone(),
                email: owner_email.clone(),
                password: PASSWORD.into(),
                client_ip: String::new(),
            })
            .await
            .expect("owner signs in")
            .into_inner()
            .result;
        let (secret, session) = match login {
            Some(idpb::login_response::Result::Session(session)) => {
                let token = session.access.clone().expect("access token").access_token;
                let begun = identity
                    .begin_totp_enrolment(bearer(
                        idpb::BeginTotpEnrolmentRequest { current_password: PASSWORD.into(), ..Default::default() },
                        &token,
                    ))
                    .await
                    .expect("begin enrolment")
                    .into_inner();
                let code = code_at(&begun.secret, now_step());
                identity
                    .confirm_totp_enrolment(bearer(
                        idpb::ConfirmTotpEnrolmentRequest { code, ..Default::default() },
                        &token,
                    ))
                    .await
                    .expect("confirm enrolment");
                (begun.secret, session)
            }
            Some(idpb::login_response::Result::MfaChallenge(challenge)) => {
                let begun = identity
                    .begin_totp_enrolment(idpb::BeginTotpEnrolmentRequest {
                        challenge_token: challenge.challenge_token.clone(),
                        ..Default::default()
                    })
                    .await
                    .expect("begin enrolment")
                    .into_inner();
                let confirmed = identity
                    .confirm_totp_enrolment(idpb::ConfirmTotpEnrolmentRequest {
                        challenge_token: challenge.challenge_token,
                        code: code_at(&begun.secret, now_step()),
                        client_ip: String::new(),
                    })
                    .await
                    .expect("confirm enrolment")
                    .into_inner();
                (begun.secret, confirmed.session.expect("a session"))
            }
            None => panic!("login answered nothing"),
        };
        let token = session.access.expect("access token").access_token;
        identity
            .update_tenant(bearer(
                idpb::UpdateTenantRequest { mfa_required_for_staff: Some(true), ..Default::default() },
                &token,
            ))
            .await
            .expect("require 2FA of staff");
        Tenant {
            id: tenant.id,
            slug,
            owner_email,
            password: PASSWORD.into(),
            totp_secret: secret,
            token,
            last_step: Mutex::new(now_step()),
        }
    }

    /// An MXN customer on 30-day terms, with a portal contact speaking `language`.
    pub async fn customer(&self, t: &Tenant, legal_name: &str, language: &str) -> Customer {
        let email = format!("ap-{}@{}.example.com", &Uuid::now_v7().simple().to_string()[20..], t.slug);
        let customer = self
            .invoicing_client()
            .upsert_customer(t.staff(invpb::UpsertCustomerRequest {
                id: String::new(),
                customer: Some(invpb::Customer {
                    legal_name: legal_name.into(),
                    tax_country: "MX".into(),
                    currency: "MXN".into(),
                    payment_terms_days: 30,
                    contacts: vec![invpb::Contact {
                        name: "Cuentas por pagar".into(),
                        email: email.clone(),
                        language: language.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }))
            .await
            .expect("create a customer")
            .into_inner();
        self.identity_client()
            .create_contact(t.staff(idpb::CreateContactRequest {
                email: email.clone(),
                display_name: "Cuentas por pagar".into(),
                customer_id: customer.id.clone(),
                password: PASSWORD.into(),
            }))
            .await
            .expect("create a portal contact");
        Customer { id: customer.id, email, password: PASSWORD.into() }
    }

    /// An issued invoice of one untaxed line for `amount` (MXN), due in 30 days.
    pub async fn open_invoice(&self, t: &Tenant, c: &Customer, amount: &str) -> String {
        let mut invoicing = self.invoicing_client();
        let draft = invoicing
            .create_invoice(t.staff(invpb::CreateInvoiceRequest {
                customer_id: c.id.clone(),
                lines: vec![invpb::LineInput {
                    description: "Lámina galvanizada calibre 26".into(),
                    quantity: "1".into(),
                    unit_price: amount.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }))
            .await
            .expect("create an invoice")
            .into_inner();
        invoicing.issue_invoice(t.staff(invpb::IssueInvoiceRequest { id: draft.id.clone() })).await.expect("issue it");
        draft.id
    }
}

impl Tenant {
    /// A TOTP code for a step not used before: identity accepts each step once, and one step
    /// ahead of the clock, so this waits only after two sign-ins within one 30-second step.
    pub async fn totp(&self) -> String {
        let mut last = self.last_step.lock().await;
        loop {
            let now = now_step();
            let next = (*last + 1).max(now);
            if next <= now + 1 {
                *last = next;
                return code_at(&self.totp_secret, next);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// A request carrying the owner's token.
    pub fn staff<T>(&self, message: T) -> tonic::Request<T> {
        bearer(message, &self.token)
    }
}

pub fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii token"));
    request
}

/// A sandbox card (`pan` decides the outcome), valid for five more years.
pub fn card(pan: &str) -> cobro_proto::payments::v1::NewCard {
    use chrono::Datelike;
    cobro_proto::payments::v1::NewCard {
        pan: pan.into(),
        exp_month: 12,
        exp_year: u32::try_from(chrono::Utc::now().year() + 5).expect("a year after 1970"),
        holder_name: "Marta Ruiz".into(),
    }
}

pub fn money(amount: &str, currency: &str) -> Option<Money> {
    Some(Money { amount: amount.into(), currency: currency.into() })
}

fn now_step() -> u64 {
    let now = u64::try_from(chrono::Utc::now().timestamp()).expect("after 1970");
    totp::time_step(now)
}

/// The six-digit SHA-1 code of a base32 secret at a 30-second step.
pub fn code_at(secret: &str, step: u64) -> String {
    let key = totp::base32_decode(secret).expect("a base32 secret");
    totp::totp(totp::Algorithm::Sha1, &key, step * 30, 6)
}

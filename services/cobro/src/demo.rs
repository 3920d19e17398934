//! `cobro demo`: every service in this process (as `cobro serve all`), and a demo tenant seeded
//! through the services' public gRPC APIs, the way an ERP or a person in the console would
//! make it: customers with portal contacts, invoices in every state, a reminder policy, a bank
//! account and a saved card. Running it again reuses what is there.
//!
//! The owner of the demo tenant signs in with a second factor. Its TOTP secret is kept in a
//! credentials file (mode 0600) so a later run, and `cobro demo code`, can make codes.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{Datelike, NaiveDate, TimeDelta, Utc};
use clap::Subcommand;
use cobro_identity::app::TenantBootstrap;
use cobro_identity::domain::totp;
use cobro_kit::auth::{Principal, PrincipalKind};
use cobro_kit::config::{ServiceConfig, Settings, Validate};
use cobro_kit::telemetry::TelemetryConfig;
use cobro_proto::common::v1::{Money, PageRequest};
use cobro_proto::identity::v1 as idpb;
use cobro_proto::identity::v1::identity_service_client::IdentityServiceClient;
use cobro_proto::invoicing::v1 as invpb;
use cobro_proto::invoicing::v1::invoicing_service_client::InvoicingServiceClient;
use cobro_proto::notifications::v1 as ntfpb;
use cobro_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use cobro_proto::payments::v1 as paypb;
use cobro_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use cobro_proto::reconciliation::v1 as recpb;
use cobro_proto::reconciliation::v1::reconciliation_service_client::ReconciliationServiceClient;
use serde::Deserialize;
use tokio::time::Instant;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Status};
use uuid::Uuid;

use crate::Failure;

const SLUG: &str = "demo";
const TENANT_NAME: &str = "Aceros y Materiales del Bajío S.A. de C.V.";
const OWNER_EMAIL: &str = "owner@demo.example.com";
const OWNER_NAME: &str = "Lucía Herrera";
/// A fixed, printed password: this tenant exists to be looked at.
const OWNER_PASSWORD: &str = "bajio-demo-owner";
const SENDER_EMAIL: &str = "cobranza@demo.example.com";
const BANK_ACCOUNT_NUMBER: &str = "012180001234567897";
const CARD_NUMBER: &str = "4242424242424242";

/// How long the services get to answer after they were started.
const STARTUP: Duration = Duration::from_secs(60);
/// How long payments gets to learn a new customer from invoicing's events.
const EVENTUAL: Duration = Duration::from_secs(90);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// gRPC services the seeding talks to (and the vault, which payments needs), in start order.
const GRPC_SERVICES: [&str; 6] = ["identity", "invoicing", "payments", "vault", "notifications", "reconciliation"];

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Where the demo owner's TOTP secret is kept (mode 0600). Default:
    /// $COBRO_DEV_HOME/demo-credentials when COBRO_DEV_HOME is set, else ./demo-credentials.
    #[arg(long, global = true, value_name = "FILE")]
    credentials: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a sign-in code for the demo tenant's owner (from the credentials file).
    Code,
}

pub async fn run(settings: &Settings, telemetry: &TelemetryConfig, args: Args) -> Result<(), Failure> {
    let path = args.credentials.unwrap_or_else(default_credentials_path);
    match args.command {
        Some(Command::Code) => print_code(&path).await,
        None => serve_and_seed(settings, telemetry, &path).await,
    }
}

fn default_credentials_path() -> PathBuf {
    match std::env::var_os("COBRO_DEV_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home).join("demo-credentials"),
        _ => PathBuf::from("demo-credentials"),
    }
}

async fn serve_and_seed(settings: &Settings, telemetry: &TelemetryConfig, path: &Path) -> Result<(), Failure> {
    let names = crate::resolve(&["all".to_owned()]);
    let (serve_settings, serve_telemetry) = (settings.clone(), telemetry.clone());
    let mut serving = tokio::spawn(async move { crate::serve(&serve_settings, &serve_telemetry, &names).await });
    let seeded = tokio::select! {
        joined = &mut serving => {
            // Stopped before the demo was ready: a signal (Ok) or a service that failed.
            return joined.map_err(Failure::from).and_then(|r| r);
        }
        seeded = seed(settings, path) => seeded,
    };
    match seeded {
        Ok(summary) => println!("{summary}"),
        Err(err) => {
            serving.abort();
            return Err(format!("seeding the demo tenant failed: {err}").into());
        }
    }
    serving.await.map_err(Failure::from).and_then(|r| r)
}

// --- where things listen ---

/// A section's `listen` address, whatever else the section holds.
#[derive(Deserialize)]
struct Listen {
    #[serde(default)]
    listen: Option<SocketAddr>,
}

impl Validate for Listen {}

/// Where to reach a service of this process: its listen address, loopback when it listens on
/// every interface.
fn address(settings: &Settings, name: &str) -> Result<SocketAddr, Failure> {
    let section: Listen = settings.section(name)?;
    let mut addr = section
        .listen
        .or_else(|| cobro_kit::service::default_listen(name))
        .ok_or_else(|| format!("{name}.listen is not set"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    Ok(addr)
}

async fn connect(name: &str, addr: SocketAddr, deadline: Instant) -> Result<Channel, Failure> {
    let url = format!("http://{addr}");
    loop {
        match cobro_kit::grpc::connect(&url, CALL_TIMEOUT).await {
            Ok(channel) => return Ok(channel),
            Err(err) if Instant::now() >= deadline => {
                return Err(format!("{name} did not answer at {addr} within {} s: {err}", STARTUP.as_secs()).into());
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

async fn wait_for_http(addr: SocketAddr, deadline: Instant) -> Result<(), Failure> {
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(err) if Instant::now() >= deadline => {
                return Err(
                    format!("the gateway did not answer at {addr} within {} s: {err}", STARTUP.as_secs()).into()
                );
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

struct Clients {
    identity: IdentityServiceClient<Channel>,
    invoicing: InvoicingServiceClient<Channel>,
    payments: PaymentsServiceClient<Channel>,
    notifications: NotificationsServiceClient<Channel>,
    reconciliation: ReconciliationServiceClient<Channel>,
}

async fn clients(settings: &Settings) -> Result<Clients, Failure> {
    let deadline = Instant::now() + STARTUP;
    let mut channels = HashMap::new();
    for name in GRPC_SERVICES {
        channels.insert(name, connect(name, address(settings, name)?, deadline).await?);
    }
    wait_for_http(address(settings, "gateway")?, deadline).await?;
    let mut take = |name: &str| channels.remove(name).ok_or_else(|| Failure::from(format!("no channel to {name}")));
    Ok(Clients {
        identity: IdentityServiceClient::new(take("identity")?),
        invoicing: InvoicingServiceClient::new(take("invoicing")?),
        payments: PaymentsServiceClient::new(take("payments")?),
        notifications: NotificationsServiceClient::new(take("notifications")?),
        reconciliation: ReconciliationServiceClient::new(take("reconciliation")?),
    })
}

// --- errors ---

/// The machine code a service attached to an error status.
fn error_code(status: &Status) -> &str {
    status.metadata().get("cobro-error-code").and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn rpc(name: &'static str) -> impl FnOnce(Status) -> Failure {
    move |status| format!("{name}: {} ({:?})", status.message(), status.code()).into()
}

// --- the credentials file ---

/// What a later run needs to sign the owner in again.
#[derive(Debug, Clone)]
struct Credentials {
    /// Base32, as an authenticator app is given it.
    totp_secret: String,
    /// The last TOTP time step this program signed in with; identity accepts each step once.
    last_step: u64,
}

fn read_credentials(path: &Path) -> Result<Option<Credentials>, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("{}: {err}", path.display()).into()),
    };
    let values: HashMap<&str, &str> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim()))
        .collect();
    let Some(secret) = values.get("totp_secret").filter(|s| totp::base32_decode(s).is_some()) else {
        return Ok(None);
    };
    Ok(Some(Credentials {
        totp_secret: (*secret).to_owned(),
        last_step: values.get("last_step").and_then(|s| s.parse().ok()).unwrap_or(0),
    }))
}

fn write_credentials(path: &Path, credentials: &Credentials) -> Result<(), Failure> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

    let account = format!("{SLUG}:{OWNER_EMAIL}");
    let text = format!(
        "# The Cobro demo tenant's owner. Private: it signs in with every staff permission.\n\
         tenant={SLUG}\n\
         email={OWNER_EMAIL}\n\
         password={OWNER_PASSWORD}\n\
         totp_secret={}\n\
         otpauth_uri={}\n\
         last_step={}\n",
        credentials.totp_secret,
        otpauth_uri(&credentials.totp_secret, &account),
        credentials.last_step,
    );
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let written = (|| -> std::io::Result<()> {
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
        // An older file keeps its mode on open; make sure.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    written.map_err(|e| format!("{}: {e}", path.display()).into())
}

fn otpauth_uri(secret: &str, account: &str) -> String {
    let account: String = account
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("otpauth://totp/Cobro:{account}?secret={secret}&issuer=Cobro&algorithm=SHA1&digits=6&period=30")
}

// --- TOTP ---

fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

fn now_step() -> u64 {
    totp::time_step(unix_now())
}

fn code_at(secret: &str, step: u64) -> Result<String, Failure> {
    let key = totp::base32_decode(secret).ok_or("the TOTP secret is not base32")?;
    Ok(totp::totp(totp::Algorithm::Sha1, &key, step.saturating_mul(30), 6))
}

/// The first step after `last` that identity accepts now (it takes one step ahead of the
/// clock), waiting for the clock when `last` is already that far ahead.
async fn next_step(last: u64) -> u64 {
    loop {
        let now = now_step();
        let next = last.saturating_add(1).max(now);
        if next <= now.saturating_add(1) {
            return next;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn print_code(path: &Path) -> Result<(), Failure> {
    let credentials = read_credentials(path)?.ok_or_else(|| {
        format!("{} holds no TOTP secret: run `cobro demo` first (with the same --credentials)", path.display())
    })?;
    let step = next_step(credentials.last_step).await;
    let code = code_at(&credentials.totp_secret, step)?;
    let good_until = step.saturating_add(2).saturating_mul(30).saturating_sub(unix_now());
    println!("{code}");
    eprintln!("{OWNER_EMAIL} at tenant `{SLUG}`; accepted for about {good_until} s, once");
    Ok(())
}

// --- signing the owner in ---

fn bearer(token: &str) -> Result<MetadataValue<Ascii>, Failure> {
    Ok(format!("Bearer {token}").parse()?)
}

/// Requests as the signed-in owner.
struct Staff {
    auth: MetadataValue<Ascii>,
}

impl Staff {
    fn req<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("authorization", self.auth.clone());
        request
    }
}

fn access_token(session: Option<idpb::Session>) -> Result<String, Failure> {
    session.and_then(|s| s.access).map(|a| a.access_token).ok_or_else(|| "identity answered no access token".into())
}

/// The owner's access token, enrolling TOTP when the owner has none, and resetting it through
/// identity when the secret is not known here (the credentials file is gone).
async fn sign_in(
    identity: &mut IdentityServiceClient<Channel>,
    admin: &cobro_identity::app::Identity,
    settings: &Settings,
    path: &Path,
) -> Result<(String, Credentials), Failure> {
    let mut known = read_credentials(path)?;
    for _ in 0..2 {
        let login = identity
            .login(idpb::LoginRequest {
                tenant: SLUG.to_owned(),
                email: OWNER_EMAIL.to_owned(),
                password: OWNER_PASSWORD.to_owned(),
                client_ip: String::new(),
            })
            .await
            .map_err(rpc("Login"))?
            .into_inner()
            .result;
        match login {
            Some(idpb::login_response::Result::Session(session)) => {
                let token = access_token(Some(session))?;
                let owner = Staff { auth: bearer(&token)? };
                let begun = identity
                    .begin_totp_enrolment(owner.req(idpb::BeginTotpEnrolmentRequest {
                        challenge_token: String::new(),
                        current_password: OWNER_PASSWORD.to_owned(),
                    }))
                    .await
                    .map_err(rpc("BeginTotpEnrolment"))?
                    .into_inner();
                let step = now_step();
                identity
                    .confirm_totp_enrolment(owner.req(idpb::ConfirmTotpEnrolmentRequest {
                        challenge_token: String::new(),
                        code: code_at(&begun.secret, step)?,
                        client_ip: String::new(),
                    }))
                    .await
                    .map_err(rpc("ConfirmTotpEnrolment"))?;
                let credentials = Credentials { totp_secret: begun.secret, last_step: step };
                write_credentials(path, &credentials)?;
                return Ok((token, credentials));
            }
            Some(idpb::login_response::Result::MfaChallenge(challenge)) if challenge.enrolment_required => {
                let begun = identity
                    .begin_totp_enrolment(idpb::BeginTotpEnrolmentRequest {
                        challenge_token: challenge.challenge_token.clone(),
                        current_password: String::new(),
                    })
                    .await
                    .map_err(rpc("BeginTotpEnrolment"))?
                    .into_inner();
                let step = now_step();
                let confirmed = identity
                    .confirm_totp_enrolment(idpb::ConfirmTotpEnrolmentRequest {
                        challenge_token: challenge.challenge_token,
                        code: code_at(&begun.secret, step)?,
                        client_ip: String::new(),
                    })
                    .await
                    .map_err(rpc("ConfirmTotpEnrolment"))?
                    .into_inner();
                let token = access_token(confirmed.session)?;
                let credentials = Credentials { totp_secret: begun.secret, last_step: step };
                write_credentials(path, &credentials)?;
                return Ok((token, credentials));
            }
            Some(idpb::login_response::Result::MfaChallenge(challenge)) => {
                if let Some(mut credentials) = known.take()
                    && let Some(token) = complete_mfa(identity, &challenge.challenge_token, &mut credentials).await?
                {
                    write_credentials(path, &credentials)?;
                    return Ok((token, credentials));
                }
                println!("demo: the owner's authenticator is not in {}; resetting it to enrol again", path.display());
                reset_owner_mfa(admin, settings).await?;
            }
            None => return Err("Login answered neither a session nor a challenge".into()),
        }
    }
    Err("the demo owner could not sign in".into())
}

/// The second step with codes of the stored secret; None when identity refuses them all (the
/// secret is not the enrolled one).
async fn complete_mfa(
    identity: &mut IdentityServiceClient<Channel>,
    challenge_token: &str,
    credentials: &mut Credentials,
) -> Result<Option<String>, Failure> {
    // A code may have been used meanwhile by a person signing in: then the next step works.
    for _ in 0..3 {
        let step = next_step(credentials.last_step).await;
        credentials.last_step = step;
        let answer = identity
            .complete_mfa(idpb::CompleteMfaRequest {
                challenge_token: challenge_token.to_owned(),
                factor: Some(idpb::complete_mfa_request::Factor::TotpCode(code_at(&credentials.totp_secret, step)?)),
                client_ip: String::new(),
            })
            .await;
        match answer {
            Ok(done) => return Ok(Some(access_token(done.into_inner().session)?)),
            Err(status) if error_code(&status) == "invalid_mfa_code" => {}
            Err(status) => return Err(rpc("CompleteMfa")(status)),
        }
    }
    Ok(None)
}

/// Remove the owner's authenticator, as an administrator of the tenant would for a lost phone.
/// This command runs beside identity with its database credentials, like `cobro identity
/// bootstrap-tenant`; it acts as the tenant's administration, recorded as `admin-command`.
async fn reset_owner_mfa(admin: &cobro_identity::app::Identity, settings: &Settings) -> Result<(), Failure> {
    let (tenant_id, owner_id) = find_owner(settings).await?.ok_or("the demo tenant or its owner is gone")?;
    let administration = Principal {
        tenant_id,
        subject: "admin-command".to_owned(),
        kind: PrincipalKind::User,
        roles: vec!["owner".to_owned()],
        permissions: ["users:manage".to_owned()].into_iter().collect(),
        customer_id: None,
        service: None,
    };
    let owner_id = cobro_kit::ids::format(cobro_identity::app::prefix::USER, owner_id);
    admin.reset_user_mfa(&administration, &owner_id).await.map_err(|e| identity_error(&e))?;
    Ok(())
}

fn identity_error(err: &cobro_identity::error::IdentityError) -> Failure {
    Failure::from(cobro_kit::error::to_status(err).message().to_owned())
}

/// The demo tenant's id and its owner's, read from identity's database (this command runs
/// beside identity with its credentials), when both exist.
async fn find_owner(settings: &Settings) -> Result<Option<(Uuid, Uuid)>, Failure> {
    let config: ServiceConfig = settings.section("identity")?;
    let pool = cobro_kit::db::connect(&config, "identity").await?;
    let found = async {
        let Some(tenant) =
            cobro_identity::store::tenants::by_slug(&pool, SLUG).await.map_err(|e| identity_error(&e))?
        else {
            return Ok(None);
        };
        let owner = cobro_identity::store::users::by_email(&pool, tenant.id, OWNER_EMAIL)
            .await
            .map_err(|e| identity_error(&e))?;
        Ok::<_, Failure>(owner.map(|owner| (tenant.id, owner.id)))
    }
    .await;
    pool.close().await;
    found
}

// --- what the tenant holds ---

struct CustomerSpec {
    external_id: &'static str,
    legal_name: &'static str,
    tax_id: &'static str,
    tax_country: &'static str,
    currency: &'static str,
    city: &'static str,
    region: &'static str,
    contact_name: &'static str,
    email: &'static str,
    password: &'static str,
    /// es, en
    language: &'static str,
    timezone: &'static str,
}

const ALAMO: usize = 0;
const NORTHWIND: usize = 1;
const CEIBA: usize = 2;

const CUSTOMERS: [CustomerSpec; 3] = [
    CustomerSpec {
        external_id: "demo-alamo",
        legal_name: "Constructora Álamo S.A. de C.V.",
        tax_id: "CAL0503158T2",
        tax_country: "MX",
        currency: "MXN",
        city: "Monterrey",
        region: "NL",
        contact_name: "Rosa Martínez",
        email: "pagos@alamo.demo.example.com",
        password: "alamo-portal-demo",
        language: "es",
        timezone: "America/Monterrey",
    },
    CustomerSpec {
        external_id: "demo-northwind",
        legal_name: "Northwind Supply LLC",
        tax_id: "84-1234567",
        tax_country: "US",
        currency: "USD",
        city: "Austin",
        region: "TX",
        contact_name: "Dana Whitfield",
        email: "ap@northwind.demo.example.com",
        password: "northwind-portal-demo",
        language: "en",
        timezone: "America/Chicago",
    },
    CustomerSpec {
        external_id: "demo-ceiba",
        legal_name: "Distribuidora Ceiba del Golfo S.A. de C.V.",
        tax_id: "DCG1107224K9",
        tax_country: "MX",
        currency: "MXN",
        city: "Veracruz",
        region: "VER",
        contact_name: "Jorge Castillo",
        email: "cuentas@ceiba.demo.example.com",
        password: "ceiba-portal-demo",
        language: "es",
        timezone: "America/Mexico_City",
    },
];

/// Where an invoice is left.
enum Target {
    Draft,
    Open,
    /// Open with this much paid by transfer.
    PartiallyPaid(&'static str),
    Paid,
    Void,
    Uncollectible,
    /// Open, its balance in this many monthly installments, the first due in 30 days.
    Installments(u32),
}

struct InvoiceSpec {
    external_id: &'static str,
    customer: usize,
    /// Days from today; None: set at issue (today, and the customer's terms).
    issue_in_days: Option<i64>,
    due_in_days: Option<i64>,
    lines: &'static [(&'static str, &'static str, &'static str, bool)],
    memo: &'static str,
    target: Target,
}

const INVOICES: [InvoiceSpec; 12] = [
    InvoiceSpec {
        external_id: "demo-alamo-001",
        customer: ALAMO,
        issue_in_days: None,
        due_in_days: None,
        lines: &[
            ("Varilla corrugada 3/8\" (tonelada)", "4", "18950.00", true),
            ("Flete Monterrey–Saltillo", "1", "3500.00", true),
        ],
        memo: "Pedido OC-2231, obra Cumbres",
        target: Target::Open,
    },
    InvoiceSpec {
        external_id: "demo-alamo-002",
        customer: ALAMO,
        issue_in_days: Some(-45),
        due_in_days: Some(-15),
        lines: &[("Cemento gris 50 kg (bulto)", "320", "245.50", true)],
        memo: "Pedido OC-2198",
        target: Target::Open,
    },
    InvoiceSpec {
        external_id: "demo-alamo-003",
        customer: ALAMO,
        issue_in_days: Some(-20),
        due_in_days: Some(10),
        lines: &[("Renta de andamio tubular (semana)", "10", "1250.00", true)],
        memo: "",
        target: Target::PartiallyPaid("5000.00"),
    },
    InvoiceSpec {
        external_id: "demo-alamo-004",
        customer: ALAMO,
        issue_in_days: Some(-40),
        due_in_days: Some(-10),
        lines: &[("Block de concreto 15x20x40", "2000", "14.80", true)],
        memo: "",
        target: Target::Paid,
    },
    InvoiceSpec {
        external_id: "demo-alamo-005",
        customer: ALAMO,
        issue_in_days: None,
        due_in_days: None,
        lines: &[("Grúa torre: montaje y renta trimestral", "1", "96000.00", true)],
        memo: "Pago en tres mensualidades",
        target: Target::Installments(3),
    },
    InvoiceSpec {
        external_id: "demo-alamo-006",
        customer: ALAMO,
        issue_in_days: None,
        due_in_days: None,
        lines: &[("Malla electrosoldada 6x6 (rollo)", "12", "2350.00", true)],
        memo: "Borrador: confirmar cantidades con obra",
        target: Target::Draft,
    },
    InvoiceSpec {
        external_id: "demo-northwind-001",
        customer: NORTHWIND,
        issue_in_days: None,
        due_in_days: None,
        lines: &[
            ("Industrial fasteners, assorted (case)", "40", "86.25", false),
            ("Expedited freight", "1", "450.00", false),
        ],
        memo: "PO 7802",
        target: Target::Open,
    },
    InvoiceSpec {
        external_id: "demo-northwind-002",
        customer: NORTHWIND,
        issue_in_days: Some(-60),
        due_in_days: Some(-30),
        lines: &[("Nitrile safety gloves (box of 100)", "150", "12.40", false)],
        memo: "PO 7655",
        target: Target::Open,
    },
    InvoiceSpec {
        external_id: "demo-northwind-003",
        customer: NORTHWIND,
        issue_in_days: Some(-35),
        due_in_days: Some(-5),
        lines: &[("Pallet racking beams, 96 in", "24", "139.00", false)],
        memo: "PO 7710",
        target: Target::Paid,
    },
    InvoiceSpec {
        external_id: "demo-northwind-004",
        customer: NORTHWIND,
        issue_in_days: Some(-10),
        due_in_days: Some(20),
        lines: &[("Pallet racking beams, 96 in", "24", "139.00", false)],
        memo: "PO 7710 (billed twice)",
        target: Target::Void,
    },
    InvoiceSpec {
        external_id: "demo-ceiba-001",
        customer: CEIBA,
        issue_in_days: Some(-150),
        due_in_days: Some(-120),
        lines: &[("Montacargas: reparación de transmisión", "1", "28400.00", true)],
        memo: "",
        target: Target::Uncollectible,
    },
    InvoiceSpec {
        external_id: "demo-ceiba-002",
        customer: CEIBA,
        issue_in_days: Some(-40),
        due_in_days: Some(-10),
        lines: &[("Llanta maciza 18x7-8", "4", "3150.00", true), ("Instalación en sitio", "1", "1200.00", true)],
        memo: "",
        target: Target::PartiallyPaid("6000.00"),
    },
];

fn iva() -> invpb::TaxRate {
    invpb::TaxRate { name: "IVA".to_owned(), rate_percent: "16".to_owned(), inclusive: false }
}

fn lines(spec: &[(&str, &str, &str, bool)]) -> Vec<invpb::LineInput> {
    spec.iter()
        .map(|(description, quantity, unit_price, taxed)| invpb::LineInput {
            description: (*description).to_owned(),
            quantity: (*quantity).to_owned(),
            unit_price: (*unit_price).to_owned(),
            discount: None,
            taxes: if *taxed { vec![iva()] } else { Vec::new() },
        })
        .collect()
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn date_in(days: i64) -> String {
    let today = today();
    today.checked_add_signed(TimeDelta::days(days)).unwrap_or(today).format("%Y-%m-%d").to_string()
}

fn page(token: String) -> Option<PageRequest> {
    Some(PageRequest { page_size: 100, page_token: token })
}

// --- seeding ---

/// Bootstrap (or find) the tenant, sign its owner in and make sure everything is there; the
/// text to print.
async fn seed(settings: &Settings, path: &Path) -> Result<String, Failure> {
    let mut c = clients(settings).await?;
    let admin = cobro_identity::admin(settings).await?;
    let created = find_owner(settings).await?.is_none() && bootstrap(&admin).await?;
    let (token, credentials) = sign_in(&mut c.identity, &admin, settings, path).await?;
    let staff = Staff { auth: bearer(&token)? };

    let tenant = c.identity.get_tenant(staff.req(idpb::GetTenantRequest {})).await.map_err(rpc("GetTenant"))?;
    if !tenant.into_inner().security_policy.is_some_and(|p| p.mfa_required_for_staff) {
        c.identity
            .update_tenant(
                staff.req(idpb::UpdateTenantRequest { mfa_required_for_staff: Some(true), ..Default::default() }),
            )
            .await
            .map_err(rpc("UpdateTenant"))?;
    }

    let customers = ensure_customers(&mut c.invoicing, &staff).await?;
    ensure_contacts(&mut c.identity, &staff, &customers).await?;
    for spec in &INVOICES {
        let customer = customers.get(spec.customer).ok_or("an invoice names no customer")?;
        ensure_invoice(&mut c.invoicing, &staff, spec, customer).await?;
    }
    ensure_policy(&mut c.notifications, &staff).await?;
    ensure_bank_account(&mut c.reconciliation, &staff).await?;
    let card = match customers.get(ALAMO) {
        Some(alamo) => ensure_card(&mut c.payments, &staff, alamo).await,
        None => Err("no customer for the saved card".into()),
    };
    let card_note = match card {
        Ok(()) => String::new(),
        Err(err) => format!("\n  (the saved card is missing: {err}; the next `cobro demo` adds it)"),
    };
    summary(settings, path, created, &credentials, &card_note)
}

/// Create the demo tenant and its owner; false when another run made it meanwhile.
async fn bootstrap(admin: &cobro_identity::app::Identity) -> Result<bool, Failure> {
    let bootstrap = admin
        .bootstrap_tenant(
            None,
            TenantBootstrap {
                slug: SLUG.to_owned(),
                name: TENANT_NAME.to_owned(),
                default_locale: "es-MX".to_owned(),
                default_timezone: "America/Mexico_City".to_owned(),
                owner_email: OWNER_EMAIL.to_owned(),
                owner_name: OWNER_NAME.to_owned(),
                owner_password: OWNER_PASSWORD.to_owned(),
            },
        )
        .await;
    match bootstrap {
        Ok(_) => Ok(true),
        Err(err) => {
            let status = cobro_kit::error::to_status(&err);
            if status.code() != Code::AlreadyExists {
                return Err(format!("bootstrap the demo tenant: {}", status.message()).into());
            }
            Ok(false)
        }
    }
}

/// The demo customers, in `CUSTOMERS` order. Existing ones (found by external id) are left as
/// they are, so changes made in the console survive another run.
async fn ensure_customers(
    invoicing: &mut InvoicingServiceClient<Channel>,
    staff: &Staff,
) -> Result<Vec<invpb::Customer>, Failure> {
    let mut existing = HashMap::new();
    let mut token = String::new();
    loop {
        let listed = invoicing
            .list_customers(staff.req(invpb::ListCustomersRequest { page: page(token) }))
            .await
            .map_err(rpc("ListCustomers"))?
            .into_inner();
        for customer in listed.customers {
            existing.insert(customer.external_id.clone(), customer);
        }
        token = listed.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    let mut out = Vec::with_capacity(CUSTOMERS.len());
    for spec in &CUSTOMERS {
        if let Some(customer) = existing.remove(spec.external_id) {
            out.push(customer);
            continue;
        }
        let customer = invoicing
            .upsert_customer(staff.req(invpb::UpsertCustomerRequest {
                id: String::new(),
                customer: Some(invpb::Customer {
                    external_id: spec.external_id.to_owned(),
                    legal_name: spec.legal_name.to_owned(),
                    tax_id: spec.tax_id.to_owned(),
                    tax_country: spec.tax_country.to_owned(),
                    billing_address: Some(invpb::Address {
                        city: spec.city.to_owned(),
                        region: spec.region.to_owned(),
                        country: spec.tax_country.to_owned(),
                        ..Default::default()
                    }),
                    contacts: vec![invpb::Contact {
                        name: spec.contact_name.to_owned(),
                        email: spec.email.to_owned(),
                        phone: String::new(),
                        whatsapp_opt_in: false,
                        language: spec.language.to_owned(),
                        timezone: spec.timezone.to_owned(),
                    }],
                    payment_terms_days: 30,
                    currency: spec.currency.to_owned(),
                    tags: vec!["demo".to_owned()],
                    ..Default::default()
                }),
            }))
            .await
            .map_err(rpc("UpsertCustomer"))?
            .into_inner();
        if spec.external_id == "demo-ceiba" {
            // A new customer gets its monthly invoice; a template cannot be looked up later, so
            // it is made only together with its customer.
            create_recurring(invoicing, staff, &customer).await?;
        }
        out.push(customer);
    }
    Ok(out)
}

async fn create_recurring(
    invoicing: &mut InvoicingServiceClient<Channel>,
    staff: &Staff,
    customer: &invpb::Customer,
) -> Result<(), Failure> {
    let today = today();
    let first_period = today.with_day(1).unwrap_or(today);
    invoicing
        .create_recurring_invoice(staff.req(invpb::CreateRecurringInvoiceRequest {
            invoice: Some(invpb::CreateInvoiceRequest {
                customer_id: customer.id.clone(),
                lines: lines(&[("Renta mensual de montacargas eléctrico 2.5 t", "1", "18000.00", true)]),
                memo: "Contrato de arrendamiento CA-114".to_owned(),
                ..Default::default()
            }),
            frequency: "monthly".to_owned(),
            day_of_month: 1,
            first_period: first_period.format("%Y-%m-%d").to_string(),
            end_date: String::new(),
            max_count: 12,
            auto_issue: true,
        }))
        .await
        .map_err(rpc("CreateRecurringInvoice"))?;
    Ok(())
}

/// A portal contact for each customer, unless one with that email exists.
async fn ensure_contacts(
    identity: &mut IdentityServiceClient<Channel>,
    staff: &Staff,
    customers: &[invpb::Customer],
) -> Result<(), Failure> {
    let mut emails = HashSet::new();
    let mut token = String::new();
    loop {
        let listed = identity
            .list_users(staff.req(idpb::ListUsersRequest { page: page(token) }))
            .await
            .map_err(rpc("ListUsers"))?
            .into_inner();
        emails.extend(listed.users.into_iter().map(|u| u.email.to_lowercase()));
        token = listed.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    for (spec, customer) in CUSTOMERS.iter().zip(customers) {
        if emails.contains(spec.email) {
            continue;
        }
        identity
            .create_contact(staff.req(idpb::CreateContactRequest {
                email: spec.email.to_owned(),
                display_name: spec.contact_name.to_owned(),
                customer_id: customer.id.clone(),
                password: spec.password.to_owned(),
            }))
            .await
            .map_err(rpc("CreateContact"))?;
    }
    Ok(())
}

async fn invoice_by_external_id(
    invoicing: &mut InvoicingServiceClient<Channel>,
    staff: &Staff,
    customer_id: &str,
    external_id: &str,
) -> Result<Option<invpb::Invoice>, Failure> {
    let mut token = String::new();
    loop {
        let listed = invoicing
            .list_invoices(staff.req(invpb::ListInvoicesRequest {
                customer_id: customer_id.to_owned(),
                status: String::new(),
                page: page(token),
            }))
            .await
            .map_err(rpc("ListInvoices"))?
            .into_inner();
        if let Some(found) = listed.invoices.into_iter().find(|i| i.external_id == external_id) {
            return Ok(Some(found));
        }
        token = listed.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            return Ok(None);
        }
    }
}

/// Bring one invoice to its target state from wherever an earlier run left it.
async fn ensure_invoice(
    invoicing: &mut InvoicingServiceClient<Channel>,
    staff: &Staff,
    spec: &InvoiceSpec,
    customer: &invpb::Customer,
) -> Result<(), Failure> {
    let mut invoice = match invoice_by_external_id(invoicing, staff, &customer.id, spec.external_id).await? {
        // Lists leave out installments; the invoice itself has them.
        Some(listed) => invoicing
            .get_invoice(staff.req(invpb::GetInvoiceRequest { id: listed.id }))
            .await
            .map_err(rpc("GetInvoice"))?
            .into_inner(),
        None => invoicing
            .create_invoice(staff.req(invpb::CreateInvoiceRequest {
                customer_id: customer.id.clone(),
                external_id: spec.external_id.to_owned(),
                currency: customer.currency.clone(),
                lines: lines(spec.lines),
                discount: None,
                memo: spec.memo.to_owned(),
                issue_date: spec.issue_in_days.map(date_in).unwrap_or_default(),
                due_date: spec.due_in_days.map(date_in).unwrap_or_default(),
            }))
            .await
            .map_err(rpc("CreateInvoice"))?
            .into_inner(),
    };
    if matches!(spec.target, Target::Draft) {
        return Ok(());
    }
    if invoice.status == "draft" {
        invoice = invoicing
            .issue_invoice(staff.req(invpb::IssueInvoiceRequest { id: invoice.id.clone() }))
            .await
            .map_err(rpc("IssueInvoice"))?
            .into_inner();
    }
    let pay = |amount: String| invpb::ApplyPaymentRequest {
        payment_id: format!("{}-transfer", spec.external_id),
        customer_id: customer.id.clone(),
        amount: Some(Money { currency: invoice.currency.clone(), amount }),
        method: "transfer".to_owned(),
        received_on: date_in(-2),
        invoice_ids: vec![invoice.id.clone()],
        installment_id: String::new(),
    };
    match spec.target {
        Target::Draft | Target::Open => {}
        Target::PartiallyPaid(amount) => {
            // Idempotent by payment id: a second run changes nothing.
            invoicing.apply_payment(staff.req(pay(amount.to_owned()))).await.map_err(rpc("ApplyPayment"))?;
        }
        Target::Paid if invoice.status == "open" || invoice.status == "partially_paid" => {
            let balance = invoice.balance.clone().map(|m| m.amount).ok_or("the invoice has no balance")?;
            invoicing.apply_payment(staff.req(pay(balance))).await.map_err(rpc("ApplyPayment"))?;
        }
        Target::Void if invoice.status == "open" => {
            invoicing
                .void_invoice(staff.req(invpb::VoidInvoiceRequest {
                    id: invoice.id.clone(),
                    reason: "Billed twice for the same purchase order".to_owned(),
                }))
                .await
                .map_err(rpc("VoidInvoice"))?;
        }
        Target::Uncollectible if invoice.status == "open" || invoice.status == "partially_paid" => {
            invoicing
                .mark_uncollectible(staff.req(invpb::MarkUncollectibleRequest {
                    id: invoice.id.clone(),
                    reason: "Customer ceased operations; written off after 120 days".to_owned(),
                }))
                .await
                .map_err(rpc("MarkUncollectible"))?;
        }
        Target::Installments(count) if invoice.installments.is_empty() && invoice.status == "open" => {
            invoicing
                .set_installment_plan(staff.req(invpb::SetInstallmentPlanRequest {
                    invoice_id: invoice.id.clone(),
                    plan: Some(invpb::set_installment_plan_request::Plan::Equal(invpb::EqualPlan {
                        count,
                        first_due_date: date_in(30),
                        every_months: 1,
                    })),
                }))
                .await
                .map_err(rpc("SetInstallmentPlan"))?;
        }
        Target::Paid | Target::Void | Target::Uncollectible | Target::Installments(_) => {}
    }
    Ok(())
}

/// The tenant's default reminder policy, unless the tenant has one.
async fn ensure_policy(notifications: &mut NotificationsServiceClient<Channel>, staff: &Staff) -> Result<(), Failure> {
    let policies = notifications
        .list_policies(staff.req(ntfpb::ListPoliciesRequest {}))
        .await
        .map_err(rpc("ListPolicies"))?
        .into_inner()
        .policies;
    if policies.iter().any(|p| p.customer_id.is_empty()) {
        return Ok(());
    }
    let step = |offset_days: i32, tone: &str| ntfpb::Step {
        offset_days,
        channels: vec!["email".to_owned()],
        tone: tone.to_owned(),
        template: format!("reminder_{tone}"),
        templates: Vec::new(),
    };
    let policy = ntfpb::Policy {
        customer_id: String::new(),
        steps: vec![
            step(-5, "friendly"),
            step(0, "friendly"),
            step(3, "firm"),
            step(10, "final_notice"),
            step(30, "collections"),
        ],
        business_days: true,
        send_at: "09:00".to_owned(),
        quiet_start: "20:00".to_owned(),
        quiet_end: "08:00".to_owned(),
        daily_cap: 2,
        default_timezone: "America/Mexico_City".to_owned(),
        sender_name: TENANT_NAME.to_owned(),
        sender_email: SENDER_EMAIL.to_owned(),
        ..Default::default()
    };
    notifications
        .upsert_policy(staff.req(ntfpb::UpsertPolicyRequest { policy: Some(policy) }))
        .await
        .map_err(rpc("UpsertPolicy"))?;
    Ok(())
}

async fn ensure_bank_account(
    reconciliation: &mut ReconciliationServiceClient<Channel>,
    staff: &Staff,
) -> Result<(), Failure> {
    let mut token = String::new();
    loop {
        let listed = reconciliation
            .list_bank_accounts(staff.req(recpb::ListBankAccountsRequest { page: page(token) }))
            .await
            .map_err(rpc("ListBankAccounts"))?
            .into_inner();
        if listed.accounts.iter().any(|a| a.number == BANK_ACCOUNT_NUMBER) {
            return Ok(());
        }
        token = listed.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    reconciliation
        .create_bank_account(staff.req(recpb::CreateBankAccountRequest {
            name: "BBVA México, cuenta concentradora".to_owned(),
            number: BANK_ACCOUNT_NUMBER.to_owned(),
            currency: "MXN".to_owned(),
        }))
        .await
        .map_err(rpc("CreateBankAccount"))?;
    Ok(())
}

/// A saved sandbox card for the customer. Payments learns customers from invoicing's events, so
/// a customer made moments ago may not be known there yet.
async fn ensure_card(
    payments: &mut PaymentsServiceClient<Channel>,
    staff: &Staff,
    customer: &invpb::Customer,
) -> Result<(), Failure> {
    let deadline = Instant::now() + EVENTUAL;
    loop {
        let attempt = save_card(payments, staff, customer).await;
        match attempt {
            Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(status) => return Err(rpc("SavePaymentMethod")(status)),
            Ok(()) => return Ok(()),
        }
    }
}

async fn save_card(
    payments: &mut PaymentsServiceClient<Channel>,
    staff: &Staff,
    customer: &invpb::Customer,
) -> Result<(), Status> {
    let methods = payments
        .list_payment_methods(staff.req(paypb::ListPaymentMethodsRequest { customer_id: customer.id.clone() }))
        .await?
        .into_inner()
        .methods;
    if methods.iter().any(|m| m.kind == "card" && m.last4 == "4242") {
        return Ok(());
    }
    let exp_year = u32::try_from(today().year()).unwrap_or(2030).saturating_add(3);
    payments
        .save_payment_method(staff.req(paypb::SavePaymentMethodRequest {
            idempotency_key: format!("demo-card-{}", customer.id),
            customer_id: customer.id.clone(),
            source: Some(paypb::save_payment_method_request::Source::Card(paypb::NewCard {
                pan: CARD_NUMBER.to_owned(),
                exp_month: 12,
                exp_year,
                holder_name: "Rosa Martinez".to_owned(),
            })),
            make_default: true,
        }))
        .await?;
    Ok(())
}

fn summary(
    settings: &Settings,
    path: &Path,
    created: bool,
    credentials: &Credentials,
    card_note: &str,
) -> Result<String, Failure> {
    let gateway = address(settings, "gateway")?;
    let base = format!("http://{gateway}");
    let account = format!("{SLUG}:{OWNER_EMAIL}");
    let mut out = String::new();
    out.push_str("\n==================================================================\n");
    out.push_str(&format!(
        "Cobro demo is running ({} tenant `{SLUG}`). Ctrl-C stops it.\n\n",
        if created { "new" } else { "existing" }
    ));
    out.push_str(&format!("  Sign in:  {base}/signin   (tenant: {SLUG})\n"));
    out.push_str(&format!("  Portal:   {base}/portal\n"));
    out.push_str(&format!("  Console:  {base}/console\n\n"));
    out.push_str("  Staff (owner, two-factor sign-in):\n");
    out.push_str(&format!("    {OWNER_EMAIL} / {OWNER_PASSWORD}\n"));
    out.push_str(&format!("    TOTP: run `cobro demo code --credentials {}` for the current code\n", path.display()));
    out.push_str(&format!("    secret {}\n", credentials.totp_secret));
    out.push_str(&format!("    {}\n\n", otpauth_uri(&credentials.totp_secret, &account)));
    out.push_str("  Portal contacts:\n");
    for spec in &CUSTOMERS {
        out.push_str(&format!(
            "    {} / {}  ({}, {})\n",
            spec.email,
            spec.password,
            if spec.language == "en" { "English" } else { "Spanish" },
            spec.legal_name
        ));
    }
    out.push_str(card_note);
    out.push_str("==================================================================");
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn credentials_survive_a_round_trip_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("demo-credentials");
        assert!(read_credentials(&path).unwrap().is_none());
        let secret = totp::base32_encode(b"0123456789abcdefghij");
        write_credentials(&path, &Credentials { totp_secret: secret.clone(), last_step: 42 }).unwrap();
        let read = read_credentials(&path).unwrap().unwrap();
        assert_eq!(read.totp_secret, secret);
        assert_eq!(read.last_step, 42);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn codes_follow_rfc_6238() {
        // RFC 6238 appendix B, SHA-1, at 59 s: 94287082 (the last six digits here).
        let secret = totp::base32_encode(b"12345678901234567890");
        assert_eq!(code_at(&secret, 1).unwrap(), "287082");
    }

    #[test]
    fn otpauth_uri_escapes_the_account() {
        let uri = otpauth_uri("JBSWY3DP", "demo:owner@demo.example.com");
        assert!(uri.starts_with("otpauth://totp/Cobro:demo%3Aowner@demo.example.com?secret=JBSWY3DP"));
    }

    #[test]
    fn every_invoice_names_a_customer() {
        assert!(INVOICES.iter().all(|i| i.customer < CUSTOMERS.len()));
        let mut ids: Vec<&str> = INVOICES.iter().map(|i| i.external_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), INVOICES.len());
    }
}

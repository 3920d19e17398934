//! `cobro bench payments`: card payments created and confirmed with saved vault tokens over
//! gRPC, through the sandbox processor with no added latency, by concurrent clients; then
//! pgbench's built-in TPC-B on the same Postgres as the baseline from the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cobro_kit::auth::jwt::{self, SigningKey};
use cobro_kit::auth::{Claims, JwkSet, JwksCache, PrincipalKind, StaticJwks, Verifier};
use cobro_kit::config::GrpcConfig;
use cobro_kit::grpc::GrpcServer;
use cobro_payments::api::{PUBLIC_METHODS, PaymentsApi};
use cobro_payments::app::{Payments, PaymentsOptions};
use cobro_payments::clients::{TokenSource, VaultClient};
use cobro_payments::connector::Processor;
use cobro_payments::connector::sandbox::{CARD_SUCCESS, Sandbox, SandboxConfig};
use cobro_proto::common::v1::Money;
use cobro_proto::payments::v1 as pb;
use cobro_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use cobro_proto::payments::v1::payments_service_server::PaymentsServiceServer;
use cobro_proto::vault::v1::TokenizeRequest;
use cobro_proto::vault::v1::vault_service_client::VaultServiceClient;
use cobro_proto::vault::v1::vault_service_server::VaultServiceServer;
use cobro_vault::api::VaultApi;
use cobro_vault::app::Vault;
use cobro_vault::keys::LocalKeyProvider;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::Failure;

const ISSUER: &str = "bench";
const AUDIENCE: &str = "cobro";
const STAFF: [&str; 2] = ["payments:read", "payments:write"];
const WARM_UP: Duration = Duration::from_secs(2);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Concurrent payment clients, and pgbench clients.
    pub clients: u32,
    /// Length of the measured payments phase, and of the pgbench run.
    pub seconds: u32,
    /// Cards tokenized in the vault and charged in turn.
    pub cards: u32,
    /// pgbench's scale factor.
    pub pgbench_scale: u32,
}

pub async fn run(url: &str, options: Options) -> Result<(), Failure> {
    crate::bench::in_bench_schema(url, |schema| async move { run_in(url, &schema, options).await }).await
}

/// The vault and pgbench get schemas of their own next to the payments one, dropped afterwards
/// whatever happened.
async fn run_in(url: &str, schema: &str, options: Options) -> Result<String, Failure> {
    let vault_schema = format!("{schema}_vault");
    let pgbench_schema = format!("{schema}_pgbench");
    let admin = cobro_kit::db::connect_url(url, "public", 1).await?;
    let mut result = Ok(String::new());
    for extra in [&vault_schema, &pgbench_schema] {
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {extra}"))).execute(&admin).await {
            result = Err(e.into());
            break;
        }
    }
    if result.is_ok() {
        result = measure(url, schema, &vault_schema, &pgbench_schema, options).await;
    }
    for extra in [&vault_schema, &pgbench_schema] {
        let _ =
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {extra} CASCADE"))).execute(&admin).await;
    }
    admin.close().await;
    result
}

fn claims(tenant: Uuid, kind: PrincipalKind, service: Option<&str>, permissions: &[&str]) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: ISSUER.into(),
        sub: service.map_or_else(|| format!("usr_{}", Uuid::now_v7().simple()), str::to_owned),
        aud: AUDIENCE.into(),
        exp: now + 24 * 3600,
        iat: now,
        nbf: None,
        jti: Uuid::now_v7().to_string(),
        tid: tenant,
        knd: kind,
        roles: Vec::new(),
        perms: permissions.iter().map(|p| (*p).to_owned()).collect(),
        cid: None,
        svc: service.map(str::to_owned),
    }
}

fn bearer(token: &str) -> Result<MetadataValue<Ascii>, Failure> {
    Ok(format!("Bearer {token}").parse()?)
}

fn with_auth<T>(message: T, auth: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

fn rpc_failure(rpc: &str, status: &tonic::Status) -> Failure {
    format!("{rpc} failed: {:?} {}", status.code(), status.message()).into()
}

/// A 16-digit Visa number that passes the Luhn check; 0 is the sandbox's success card and the
/// others are outside the sandbox's special cards, so they succeed as well.
fn card_number(n: u32) -> String {
    if n == 0 {
        return CARD_SUCCESS.to_owned();
    }
    let body = format!("424242{n:09}");
    let mut sum = 0;
    // Doubling starts at the rightmost digit of the body, which sits left of the check digit.
    for (i, digit) in body.bytes().rev().map(|b| u32::from(b - b'0')).enumerate() {
        sum += if i % 2 == 0 {
            let d = digit * 2;
            if d > 9 { d - 9 } else { d }
        } else {
            digit
        };
    }
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// ANALYZE every table of a schema: autovacuum may be off, and plans made on tables without
/// statistics go on scanning them as they grow.
async fn analyze(pool: &PgPool, schema: &str) -> Result<(), Failure> {
    let tables: Vec<String> = sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1")
        .bind(schema)
        .fetch_all(pool)
        .await?;
    for table in tables {
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE \"{}\"", table.replace('"', "\"\"")))).execute(pool).await?;
    }
    Ok(())
}

/// What the clients saw in one phase.
#[derive(Debug, Default)]
struct Tally {
    /// Create and confirm of each payment, in microseconds.
    payment_us: Vec<u64>,
    /// Create alone, in microseconds.
    create_us: Vec<u64>,
    /// Confirm alone, in microseconds.
    confirm_us: Vec<u64>,
    succeeded: u64,
    other: u64,
    other_status: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.payment_us.extend(other.payment_us);
        self.create_us.extend(other.create_us);
        self.confirm_us.extend(other.confirm_us);
        self.succeeded += other.succeeded;
        self.other += other.other;
        if self.other_status.is_none() {
            self.other_status = other.other_status;
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One client: create and confirm payments with the cards `first`, `first + stride`, ... until
/// `until`.
async fn client_loop(
    mut client: PaymentsServiceClient<Channel>,
    auth: MetadataValue<Ascii>,
    customer: String,
    tokens: Arc<Vec<String>>,
    first: usize,
    stride: usize,
    until: Instant,
) -> Result<Tally, Failure> {
    let mut tally = Tally::default();
    let mut card = first;
    while Instant::now() < until {
        let token = tokens.get(card % tokens.len().max(1)).ok_or("no card tokens")?.clone();
        card += stride;
        let started = Instant::now();
        let create = pb::CreatePaymentIntentRequest {
            idempotency_key: Uuid::new_v4().to_string(),
            customer_id: customer.clone(),
            amount: Some(Money { amount: "125.50".into(), currency: "MXN".into() }),
            invoice_ids: Vec::new(),
            installment_id: String::new(),
            description: "bench payment".into(),
        };
        let intent = client
            .create_payment_intent(with_auth(create, &auth))
            .await
            .map_err(|s| rpc_failure("CreatePaymentIntent", &s))?
            .into_inner();
        let created = started.elapsed();
        let confirm = pb::ConfirmPaymentIntentRequest {
            idempotency_key: Uuid::new_v4().to_string(),
            id: intent.id,
            method: Some(pb::confirm_payment_intent_request::Method::CardToken(token)),
            return_url: String::new(),
            save_card: false,
        };
        let confirmed = client
            .confirm_payment_intent(with_auth(confirm, &auth))
            .await
            .map_err(|s| rpc_failure("ConfirmPaymentIntent", &s))?
            .into_inner();
        let total = started.elapsed();
        tally.payment_us.push(micros(total));
        tally.create_us.push(micros(created));
        tally.confirm_us.push(micros(total.saturating_sub(created)));
        if confirmed.status == "succeeded" {
            tally.succeeded += 1;
        } else {
            tally.other += 1;
            if tally.other_status.is_none() {
                tally.other_status = Some(format!("{} {}", confirmed.status, confirmed.failure_code));
            }
        }
    }
    Ok(tally)
}

/// Every client runs for `length`; returns what they saw and the wall time until the last one
/// finished. The first error stops the phase (dropping the set aborts the other clients).
async fn phase(
    clients: &[PaymentsServiceClient<Channel>],
    auth: &MetadataValue<Ascii>,
    tokens: &Arc<Vec<String>>,
    length: Duration,
) -> Result<(Tally, Duration), Failure> {
    let started = Instant::now();
    let until = started + length;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, client) in clients.iter().enumerate() {
        tasks.spawn(client_loop(
            client.clone(),
            auth.clone(),
            cobro_kit::ids::format("cus", Uuid::now_v7()),
            Arc::clone(tokens),
            i,
            clients.len(),
            until,
        ));
    }
    let mut tally = Tally::default();
    while let Some(done) = tasks.join_next().await {
        tally.merge(done??);
    }
    Ok((tally, started.elapsed()))
}

#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
fn percentile_ms(sorted: &[u64], percent: usize) -> f64 {
    let i = (sorted.len() * percent / 100).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0.0, |us| *us as f64 / 1000.0)
}

#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
fn per_second(n: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 { n as f64 / seconds } else { 0.0 }
}

async fn measure(
    url: &str,
    schema: &str,
    vault_schema: &str,
    pgbench_schema: &str,
    options: Options,
) -> Result<String, Failure> {
    let clients = options.clients;
    let pool = cobro_kit::db::connect_url(url, schema, (clients + 4).min(40)).await?;
    let vault_pool = cobro_kit::db::connect_url(url, vault_schema, clients.min(24)).await?;
    let (line, succeeded_total) = serve_and_pay(&pool, &vault_pool, schema, vault_schema, options).await?;
    // What the service recorded must match what the clients counted.
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payment_intents WHERE status = 'succeeded'").fetch_one(&pool).await?;
    pool.close().await;
    vault_pool.close().await;
    if u64::try_from(recorded).unwrap_or(0) != succeeded_total {
        return Err(format!("{recorded} payments succeeded in the database, {succeeded_total} for the clients").into());
    }

    let pgbench = pgbench(url, pgbench_schema, options).await?;
    println!(
        "pgbench: scale={} clients={clients} seconds={} tps={:.1} latency_average_ms={}",
        options.pgbench_scale, options.seconds, pgbench.tps, pgbench.latency_ms
    );
    #[allow(clippy::float_arithmetic)]
    let ratio = if pgbench.tps > 0.0 { line.confirmed_per_s / pgbench.tps } else { 0.0 };
    Ok(format!(
        "bench payments: confirmed_per_s={:.1} p50_ms={:.2} p99_ms={:.2} pgbench_tpcb_tps={:.1} ratio={ratio:.2}",
        line.confirmed_per_s, line.p50_ms, line.p99_ms, pgbench.tps
    ))
}

struct PaymentsResult {
    confirmed_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Serve the vault and payments on loopback, tokenize the cards, warm up, measure. Returns the
/// figures and how many payments succeeded in all (warm-up included).
async fn serve_and_pay(
    pool: &PgPool,
    vault_pool: &PgPool,
    schema: &str,
    vault_schema: &str,
    options: Options,
) -> Result<(PaymentsResult, u64), Failure> {
    cobro_kit::db::migrate(pool, schema, &cobro_payments::migrator()).await?;
    cobro_kit::db::migrate(vault_pool, vault_schema, &cobro_vault::migrator()).await?;

    let key = Arc::new(SigningKey::generate("bench"));
    let jwks = Arc::new(StaticJwks::new(JwkSet::new().with_key(key.kid(), key.verifying_key())));
    let verifier = Arc::new(Verifier::new(Arc::new(JwksCache::new(jwks)), ISSUER, AUDIENCE));
    let tenant = Uuid::now_v7();
    let staff = bearer(&jwt::sign(&key, &claims(tenant, PrincipalKind::User, None, &STAFF)))?;
    // Payments calls the vault as the payments service; identity would hand it a cached token.
    let service_token = jwt::sign(&key, &claims(tenant, PrincipalKind::Service, Some("payments"), &[]));
    let minting = Arc::clone(&key);
    let tokens = TokenSource::Fixed(Arc::new(move |t| {
        if t == tenant {
            service_token.clone()
        } else {
            jwt::sign(&minting, &claims(t, PrincipalKind::Service, Some("payments"), &[]))
        }
    }));

    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let vault = Vault::start(vault_pool.clone(), Arc::new(LocalKeyProvider::from_root(rand::random()))).await?;
    let vault_server = GrpcServer::new(GrpcConfig::default(), Arc::clone(&verifier))
        .add_service(VaultServiceServer::new(VaultApi::new(Arc::new(vault))));
    let (vault_addr, serving) = vault_server.bind(([127, 0, 0, 1], 0).into(), shutdown.clone()).await?;
    let vault_serving = tokio::spawn(serving);
    let vault_channel = cobro_kit::grpc::connect(&format!("http://{vault_addr}"), CALL_TIMEOUT).await?;

    let sandbox = Sandbox::new(pool.clone(), SandboxConfig { latency: Duration::ZERO, ..SandboxConfig::default() });
    let app = Payments::new(
        pool.clone(),
        Processor::Sandbox(Arc::new(sandbox)),
        VaultClient::new(vault_channel.clone(), tokens),
        PaymentsOptions::default(),
    );
    let server = GrpcServer::new(GrpcConfig::default(), verifier)
        .public_methods(PUBLIC_METHODS)
        .add_service(PaymentsServiceServer::new(PaymentsApi::new(Arc::new(app))));
    let (addr, serving) = server.bind(([127, 0, 0, 1], 0).into(), shutdown.clone()).await?;
    let payments_serving = tokio::spawn(serving);

    // The cards, stored once as staff would; each payment charges one of them by its token.
    let started = Instant::now();
    let mut vault_client = VaultServiceClient::new(vault_channel);
    let mut card_tokens = Vec::with_capacity(options.cards as usize);
    for n in 0..options.cards {
        let request = TokenizeRequest {
            pan: card_number(n),
            exp_month: 12,
            exp_year: 2031,
            holder_name: "Bench Holder".into(),
            dedupe: false,
            ttl_seconds: 0,
        };
        let answer =
            vault_client.tokenize(with_auth(request, &staff)).await.map_err(|s| rpc_failure("Tokenize", &s))?;
        card_tokens.push(answer.into_inner().card.ok_or("Tokenize answered without a card")?.token);
    }
    let card_tokens = Arc::new(card_tokens);
    println!("setup: {} cards tokenized in {:.2} s", card_tokens.len(), started.elapsed().as_secs_f64());
    analyze(pool, schema).await?;
    analyze(vault_pool, vault_schema).await?;

    // One connection per client, as separate callers would have.
    let mut clients = Vec::with_capacity(options.clients as usize);
    for _ in 0..options.clients {
        let channel = cobro_kit::grpc::connect(&format!("http://{addr}"), CALL_TIMEOUT).await?;
        clients.push(PaymentsServiceClient::new(channel));
    }

    let (warm, _) = phase(&clients, &staff, &card_tokens, WARM_UP).await?;
    println!("warm-up: {} s, {} payments", WARM_UP.as_secs(), warm.payment_us.len());
    // Statistics with rows in the tables, before the measured run.
    analyze(pool, schema).await?;
    analyze(vault_pool, vault_schema).await?;

    let length = Duration::from_secs(u64::from(options.seconds));
    let (mut tally, elapsed) = phase(&clients, &staff, &card_tokens, length).await?;
    tally.payment_us.sort_unstable();
    tally.create_us.sort_unstable();
    let confirmed_per_s = per_second(tally.succeeded, elapsed);
    println!(
        "payments: clients={} seconds={:.2} payments={} succeeded={} not_succeeded={}{}",
        options.clients,
        elapsed.as_secs_f64(),
        tally.payment_us.len(),
        tally.succeeded,
        tally.other,
        tally.other_status.as_deref().map(|s| format!(" (e.g. {s})")).unwrap_or_default()
    );
    tally.confirm_us.sort_unstable();
    println!(
        "payments: create_p50_ms={:.2} create_p99_ms={:.2} confirm_p50_ms={:.2} confirm_p99_ms={:.2}",
        percentile_ms(&tally.create_us, 50),
        percentile_ms(&tally.create_us, 99),
        percentile_ms(&tally.confirm_us, 50),
        percentile_ms(&tally.confirm_us, 99)
    );
    let result = PaymentsResult {
        confirmed_per_s,
        p50_ms: percentile_ms(&tally.payment_us, 50),
        p99_ms: percentile_ms(&tally.payment_us, 99),
    };

    drop(clients);
    shutdown.cancel();
    for serving in [vault_serving, payments_serving] {
        let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;
    }
    Ok((result, warm.succeeded + tally.succeeded))
}

struct PgbenchResult {
    tps: f64,
    latency_ms: String,
}

/// Where libpq tools connect, from a `postgres://user:password@host:port/database` URL, as
/// environment variables so the password never shows on a command line.
fn libpq_env(url: &str) -> Result<Vec<(&'static str, String)>, Failure> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or("the bench database URL must start with postgres://")?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (rest.get(..at), rest.get(at + 1..).unwrap_or("")),
        None => (None, rest),
    };
    let (hostport, database) = rest.split_once('/').unwrap_or((rest, ""));
    let mut env = Vec::new();
    if let Some(userinfo) = userinfo {
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        if !user.is_empty() {
            env.push(("PGUSER", percent_decode(user)?));
        }
        if !password.is_empty() {
            env.push(("PGPASSWORD", percent_decode(password)?));
        }
    }
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("unclosed [ in the database URL's host")?;
        (host, after.strip_prefix(':').unwrap_or(""))
    } else {
        hostport.rsplit_once(':').unwrap_or((hostport, ""))
    };
    if !host.is_empty() {
        env.push(("PGHOST", percent_decode(host)?));
    }
    if !port.is_empty() {
        env.push(("PGPORT", port.to_owned()));
    }
    if !database.is_empty() {
        env.push(("PGDATABASE", percent_decode(database)?));
    }
    for pair in query.split('&') {
        if let Some(mode) = pair.strip_prefix("sslmode=") {
            env.push(("PGSSLMODE", percent_decode(mode)?));
        }
    }
    Ok(env)
}

fn percent_decode(s: &str) -> Result<String, Failure> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("bad percent escape in the database URL")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad percent escape in the database URL")?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(String::from_utf8(out)?)
}

/// Run a pgbench command in `schema` and return its standard output.
async fn pgbench_command(env: &[(&'static str, String)], schema: &str, args: &[String]) -> Result<String, Failure> {
    let output = tokio::process::Command::new("pgbench")
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PGOPTIONS", format!("-csearch_path={schema}"))
        .env("PGAPPNAME", "cobro-bench-pgbench")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run pgbench (is it installed? it comes with postgresql-contrib): {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("pgbench {} failed ({}): {}", args.join(" "), output.status, tail.join(" | ")).into());
    }
    Ok(stdout)
}

/// pgbench's TPC-B-like script with as many clients as the payments had, for as long, in its
/// own schema (dropped with it afterwards).
async fn pgbench(url: &str, schema: &str, options: Options) -> Result<PgbenchResult, Failure> {
    let env = libpq_env(url)?;
    let init = ["-i".to_owned(), "-q".to_owned(), "-s".to_owned(), options.pgbench_scale.to_string()];
    pgbench_command(&env, schema, &init).await?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(options.clients as usize).max(1);
    let run = [
        "-n".to_owned(),
        "-c".to_owned(),
        options.clients.to_string(),
        "-j".to_owned(),
        threads.to_string(),
        "-T".to_owned(),
        options.seconds.to_string(),
    ];
    let out = pgbench_command(&env, schema, &run).await?;
    parse_pgbench(&out).ok_or_else(|| format!("no `tps = ` line in pgbench's output:\n{out}").into())
}

fn parse_pgbench(out: &str) -> Option<PgbenchResult> {
    let tps = out
        .lines()
        .filter_map(|line| line.trim().strip_prefix("tps = "))
        .find_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())?;
    let latency_ms = out
        .lines()
        .find_map(|line| line.trim().strip_prefix("latency average = "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("?")
        .to_owned();
    Some(PgbenchResult { tps, latency_ms })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn luhn(pan: &str) -> bool {
        let mut sum = 0;
        for (i, d) in pan.bytes().rev().map(|b| u32::from(b - b'0')).enumerate() {
            sum += if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d };
        }
        sum % 10 == 0
    }

    #[test]
    fn card_numbers_pass_luhn_and_differ() {
        assert_eq!(card_number(0), CARD_SUCCESS);
        let all: Vec<String> = (0..500).map(card_number).collect();
        for pan in &all {
            assert_eq!(pan.len(), 16, "{pan}");
            assert!(luhn(pan), "{pan}");
        }
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
    }

    #[test]
    fn libpq_env_from_url() {
        let env = libpq_env("postgres://cobro_admin:p%40ss@127.0.0.1:5432/cobro?sslmode=disable").unwrap();
        let get = |k: &str| env.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PGUSER"), Some("cobro_admin"));
        assert_eq!(get("PGPASSWORD"), Some("p@ss"));
        assert_eq!(get("PGHOST"), Some("127.0.0.1"));
        assert_eq!(get("PGPORT"), Some("5432"));
        assert_eq!(get("PGDATABASE"), Some("cobro"));
        assert_eq!(get("PGSSLMODE"), Some("disable"));
        let env = libpq_env("postgresql://u@[::1]/db").unwrap();
        assert!(env.contains(&("PGHOST", "::1".to_owned())));
        assert!(!env.iter().any(|(k, _)| *k == "PGPORT" || *k == "PGPASSWORD"));
        assert!(libpq_env("mysql://x").is_err());
    }

    #[test]
    fn pgbench_output_parses() {
        let out = "transaction type: <builtin: TPC-B (sort of)>\nlatency average = 25.809 ms\n\
                   initial connection time = 40.1 ms\ntps = 1239.862414 (without initial connection time)\n";
        let parsed = parse_pgbench(out).unwrap();
        assert!((parsed.tps - 1239.862414).abs() < 1e-6);
        assert_eq!(parsed.latency_ms, "25.809");
        assert!(parse_pgbench("nothing").is_none());
    }
}

//! `cobro bench ...`: measurements on this machine, each ending with one result line.

use std::time::{Duration, Instant};

use clap::Subcommand;
use cobro_kit::config::{KafkaConfig, Settings};
use cobro_kit::events::{Consumer, ConsumerConfig, EventHandler, HandlerError, NewEvent, Relay, RelayConfig, enqueue};
use cobro_proto::events::v1::Envelope;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Failure;

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Events written through the outbox in committed transactions, relayed to the broker and
    /// applied by an inbox consumer, end to end.
    Outbox {
        /// Events to write.
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        /// Concurrent writers.
        #[arg(long, default_value_t = 4)]
        writers: u64,
        /// Events per transaction.
        #[arg(long, default_value_t = 10)]
        per_tx: u64,
    },
    /// Sign-ins against identity (argon2id, Postgres, Redis): a good password, a wrong one and
    /// an unknown email, which must cost about the same so timing does not reveal accounts.
    Login {
        /// Attempts of each kind.
        #[arg(long, default_value_t = 100)]
        attempts: u32,
    },
    /// Invoices of 3 lines streamed through the invoicing service's ImportInvoices.
    Import {
        #[arg(long, default_value_t = 100_000)]
        invoices: u32,
    },
    /// The aging report over a book of open invoices.
    Aging {
        #[arg(long, default_value_t = 1_000_000)]
        invoices: u32,
    },
    /// Vault tokenize and detokenize (envelope encryption, audit, outbox) by concurrent callers,
    /// against plain single-row INSERTs of the same size as the baseline.
    Vault {
        /// Operations of each kind.
        #[arg(long, default_value_t = 8000)]
        ops: u32,
        /// Concurrent callers.
        #[arg(long, default_value_t = 16)]
        concurrency: u32,
    },
    /// Due email reminders planned for overdue invoices and sent by two dispatchers to a local
    /// SMTP server that counts what it accepts (duplicates must be 0).
    Reminders {
        #[arg(long, default_value_t = 100_000)]
        invoices: u32,
    },
    /// Card payments created and confirmed with saved vault tokens over gRPC (sandbox processor,
    /// no added latency) by concurrent clients, against pgbench's TPC-B on the same Postgres.
    Payments {
        /// Concurrent clients, for the payments and for pgbench.
        #[arg(long, default_value_t = 32)]
        clients: u32,
        /// Seconds measured, for the payments and for pgbench each.
        #[arg(long, default_value_t = 20)]
        seconds: u32,
        /// Cards stored in the vault and charged in turn.
        #[arg(long, default_value_t = 200)]
        cards: u32,
        /// pgbench's scale factor (100,000 accounts each).
        #[arg(long, default_value_t = 10)]
        pgbench_scale: u32,
    },
    /// Bank lines matched to open items by the reconciliation rules, over a labelled synthetic
    /// book, scored for precision and coverage. Needs no database.
    Recon {
        #[arg(long, default_value_t = 100_000)]
        lines: u32,
        #[arg(long, default_value_t = 100_000)]
        items: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub async fn run(settings: &Settings, scenario: Scenario) -> Result<(), Failure> {
    match scenario {
        Scenario::Outbox { events, writers, per_tx } => {
            let url = bench_url()?;
            let kafka: KafkaConfig = settings.section("kafka")?;
            outbox(&url, &kafka, events, writers.max(1), per_tx.max(1)).await
        }
        Scenario::Import { invoices } => crate::bench_invoicing::import(&bench_url()?, invoices.max(1)).await,
        Scenario::Aging { invoices } => crate::bench_invoicing::aging(&bench_url()?, invoices.max(1)).await,
        Scenario::Vault { ops, concurrency } => {
            let url = bench_url()?;
            crate::bench_vault::run(&url, ops.max(1), concurrency.max(1)).await
        }
        Scenario::Reminders { invoices } => crate::bench_reminders::run(&bench_url()?, invoices.max(1)).await,
        Scenario::Payments { clients, seconds, cards, pgbench_scale } => {
            let url = bench_url()?;
            let options = crate::bench_payments::Options {
                clients: clients.max(1),
                seconds: seconds.max(1),
                cards: cards.max(1),
                pgbench_scale: pgbench_scale.max(1),
            };
            crate::bench_payments::run(&url, options).await
        }
        Scenario::Recon { lines, items, seed } => crate::bench_recon::run(lines, items, seed),
        Scenario::Login { attempts } => {
            let url = bench_url()?;
            let redis: cobro_kit::cache::RedisConfig = settings.section("redis")?;
            login(&url, &redis, attempts.max(1)).await
        }
    }
}

async fn login(url: &str, redis: &cobro_kit::cache::RedisConfig, attempts: u32) -> Result<(), Failure> {
    in_bench_schema(url, |schema| async move { login_in(url, &schema, redis, attempts).await }).await
}

async fn login_in(
    url: &str,
    schema: &str,
    redis: &cobro_kit::cache::RedisConfig,
    attempts: u32,
) -> Result<String, Failure> {
    use cobro_identity::app::TenantBootstrap;
    let pool = cobro_kit::db::connect_url(url, schema, 8).await?;
    cobro_kit::db::migrate(&pool, schema, &cobro_identity::migrator()).await?;
    let conn = cobro_kit::cache::connect_lazy(redis)?;
    let settings = cobro_identity::config::Settings {
        ip_failure_limit: u32::MAX,
        ..cobro_identity::config::Settings::generated()
    };
    let prefix = format!("bench:identity:{}", Uuid::now_v7().simple());
    let app = cobro_identity::build(pool.clone(), settings, conn, &prefix, cobro_kit::service::AuthConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let password = "bench passphrase that is long enough";
    app.bootstrap_tenant(
        None,
        TenantBootstrap {
            slug: "bench".into(),
            name: "Bench".into(),
            default_locale: "en".into(),
            default_timezone: "UTC".into(),
            owner_email: "owner@bench.example.com".into(),
            owner_name: "Owner".into(),
            owner_password: password.into(),
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    // Measure the work, not the lock: the account must not lock during the run.
    sqlx::query("UPDATE tenants SET lockout_threshold = 2000000000").execute(&pool).await?;

    let mut results = Vec::new();
    for (label, email, pass) in [
        ("success", "owner@bench.example.com", password),
        ("wrong_password", "owner@bench.example.com", "not the right passphrase"),
        ("unknown_email", "nobody@bench.example.com", password),
    ] {
        let mut samples = Vec::with_capacity(attempts as usize);
        for _ in 0..attempts {
            let started = Instant::now();
            let _ = app.login("bench", email, pass, "192.0.2.1").await;
            samples.push(started.elapsed());
        }
        samples.sort();
        let mean = samples.iter().sum::<Duration>() / attempts;
        let p95 = samples[(samples.len() * 95 / 100).min(samples.len() - 1)];
        println!("{label:<15} mean {:>7.2} ms  p95 {:>7.2} ms", ms(mean), ms(p95));
        results.push(format!("{label}_ms={:.2}", ms(mean)));
    }
    pool.close().await;
    Ok(format!("bench login: attempts={attempts} {}", results.join(" ")))
}

#[allow(clippy::float_arithmetic)]
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The database a benchmark may create schemas in, from the environment only (a password on the
/// command line shows in `ps`).
fn bench_url() -> Result<String, Failure> {
    std::env::var("COBRO_BENCH_DATABASE_URL").or_else(|_| std::env::var("COBRO_TEST_DATABASE_URL")).map_err(|_| {
        "set COBRO_BENCH_DATABASE_URL to a role that may create schemas (COBRO_TEST_DATABASE_URL from the infra/dev env file works too)".into()
    })
}

/// Run a measurement in a throwaway schema, dropped afterwards whatever happened. The result
/// line is printed last, after any clean-up output.
pub(crate) async fn in_bench_schema<F, Fut>(url: &str, run: F) -> Result<(), Failure>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<String, Failure>>,
{
    let schema = format!("bench_{}", Uuid::now_v7().simple());
    let admin = cobro_kit::db::connect_url(url, "public", 1).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await?;
    let result = run(schema.clone()).await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await;
    admin.close().await;
    println!("{}", result?);
    Ok(())
}

struct Apply;

impl EventHandler for Apply {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        // A realistic handler touches one row of its own state per event.
        sqlx::query("INSERT INTO bench_applied (event_id) VALUES ($1)").bind(event.id.as_str()).execute(conn).await?;
        Ok(())
    }
}

async fn outbox(url: &str, kafka: &KafkaConfig, events: u64, writers: u64, per_tx: u64) -> Result<(), Failure> {
    in_bench_schema(url, |schema| async move { outbox_in(url, &schema, kafka, events, writers, per_tx).await }).await
}

/// Returns the result line.
async fn outbox_in(
    url: &str,
    schema: &str,
    kafka: &KafkaConfig,
    events: u64,
    writers: u64,
    per_tx: u64,
) -> Result<String, Failure> {
    let pool = cobro_kit::db::connect_url(url, schema, 16).await?;
    cobro_kit::db::migrate(&pool, schema, &sqlx::migrate::Migrator::with_migrations(Vec::new())).await?;
    sqlx::query("CREATE TABLE bench_applied (event_id TEXT PRIMARY KEY)").execute(&pool).await?;
    let topic = format!("bench.outbox.{}", Uuid::now_v7().simple());
    cobro_kit::events::ensure_topics(kafka, std::slice::from_ref(&topic)).await?;

    let stop = CancellationToken::new();
    let relay_config = RelayConfig { batch_size: 1000, idle_poll: Duration::from_millis(10), ..RelayConfig::default() };
    let relay = tokio::spawn(Relay::new(pool.clone(), kafka, relay_config)?.run(stop.clone()));
    let consumer =
        Consumer::new(pool.clone(), kafka, ConsumerConfig::new(format!("bench-{schema}"), vec![topic.clone()]), Apply)?;
    let stats = consumer.stats();
    let consuming = tokio::spawn(consumer.run(stop.clone()));

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let tenant = Uuid::now_v7();
    for w in 0..writers {
        let share = events / writers + u64::from(w < events % writers);
        tasks.spawn(write(pool.clone(), topic.clone(), tenant, w, share, per_tx));
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let written = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut relayed = None;
    while stats.handled() < events {
        if Instant::now() > deadline {
            stop.cancel();
            return Err(format!("only {} of {events} events arrived within 10 minutes", stats.handled()).into());
        }
        if relayed.is_none() {
            let pending: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetch_one(&pool).await?;
            if pending == 0 {
                relayed = Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = tokio::join!(relay, consuming);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_applied").fetch_one(&pool).await?;
    pool.close().await;
    if u64::try_from(applied).unwrap_or(0) != events {
        return Err(format!("{applied} events applied for {events} written").into());
    }
    println!(
        "writers={writers} per_tx={per_tx} written_s={:.3} relayed_s={:.3} duplicates={}",
        written.as_secs_f64(),
        relayed.unwrap_or_else(|| started.elapsed()).as_secs_f64(),
        stats.duplicates()
    );
    let baseline = produce_baseline(kafka, events).await?;
    println!("baseline: plain produce of {events} messages of the same size to a fresh topic: {baseline:.0} msg/s");
    Ok(format!("bench outbox: events={events} seconds={seconds:.3} events_per_s={:.0}", rate(events, seconds)))
}

#[allow(clippy::cast_precision_loss, clippy::float_arithmetic)]
fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

async fn write(pool: PgPool, topic: String, tenant: Uuid, writer: u64, count: u64, per_tx: u64) -> Result<(), Failure> {
    let payload = vec![0u8; 200];
    let mut n = 0;
    while n < count {
        let mut tx = pool.begin().await?;
        for _ in 0..per_tx.min(count - n) {
            let event = NewEvent {
                event_type: "bench.happened".into(),
                tenant_id: tenant,
                aggregate_id: format!("w{writer}-{}", n % 64),
                payload: payload.clone(),
            };
            enqueue(&mut tx, &topic, event).await?;
            n += 1;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// The broker's own pace in the same run: plain produce-and-ack of as many messages of the
/// same size, with the relay's producer settings, no database involved.
async fn produce_baseline(kafka: &KafkaConfig, count: u64) -> Result<f64, Failure> {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let topic = format!("bench.baseline.{}", Uuid::now_v7().simple());
    cobro_kit::events::ensure_topics(kafka, std::slice::from_ref(&topic)).await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("enable.idempotence", if kafka.idempotent_producer { "true" } else { "false" })
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?;
    let payload = vec![0u8; 300];
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < count {
        let chunk = (count - sent).min(1000);
        let mut deliveries = Vec::with_capacity(usize::try_from(chunk).unwrap_or(1000));
        for i in 0..chunk {
            let key = format!("k{}", (sent + i) % 64);
            let record = FutureRecord::to(&topic).key(&key).payload(&payload);
            deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
        }
        for delivery in futures_util::future::join_all(deliveries).await {
            delivery.map_err(|_| "delivery canceled")?.map_err(|(e, _)| e)?;
        }
        sent += chunk;
    }
    Ok(rate(count, started.elapsed().as_secs_f64()))
}

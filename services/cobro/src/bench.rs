//! `cobro bench ...`: measurements on this machine, each ending with one result line.

use std::sync::Arc;
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
        /// Admin database URL able to create a scratch schema (default: COBRO_BENCH_DATABASE_URL,
        /// then COBRO_TEST_DATABASE_URL).
        #[arg(long, env = "COBRO_BENCH_DATABASE_URL")]
        database_url: Option<String>,
    },
}

pub async fn run(settings: &Settings, scenario: Scenario) -> Result<(), Failure> {
    match scenario {
        Scenario::Outbox { events, writers, per_tx, database_url } => {
            let url = database_url
                .or_else(|| std::env::var("COBRO_TEST_DATABASE_URL").ok())
                .ok_or("no database: pass --database-url or set COBRO_BENCH_DATABASE_URL (infra/dev env has it)")?;
            let kafka: KafkaConfig = settings.section("kafka")?;
            outbox(&url, &kafka, events, writers.max(1), per_tx.max(1)).await
        }
    }
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
    let schema = format!("bench_{}", Uuid::now_v7().simple());
    let admin = cobro_kit::db::connect_url(url, "public", 1).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await?;
    let result = outbox_in(url, &schema, kafka, events, writers, per_tx).await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await;
    admin.close().await;
    // The result line comes last, after any clean-up output.
    println!("{}", result?);
    Ok(())
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
    while stats.handled() < events {
        if Instant::now() > deadline {
            stop.cancel();
            return Err(format!("only {} of {events} events arrived within 10 minutes", stats.handled()).into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
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
        "writers={writers} per_tx={per_tx} write_seconds={:.3} duplicates={}",
        written.as_secs_f64(),
        stats.duplicates()
    );
    Ok(format!("bench outbox: events={events} seconds={seconds:.3} events_per_s={:.0}", rate(events, seconds)))
}

#[allow(clippy::cast_precision_loss, clippy::float_arithmetic)]
fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

async fn write(pool: PgPool, topic: String, tenant: Uuid, writer: u64, count: u64, per_tx: u64) -> Result<(), Failure> {
    let payload = Arc::new(vec![0u8; 200]);
    let mut n = 0;
    while n < count {
        let mut tx = pool.begin().await?;
        for _ in 0..per_tx.min(count - n) {
            let event = NewEvent {
                event_type: "bench.happened".into(),
                tenant_id: tenant,
                aggregate_id: format!("w{writer}-{}", n % 64),
                payload: payload.as_ref().clone(),
            };
            enqueue(&mut tx, &topic, event).await?;
            n += 1;
        }
        tx.commit().await?;
    }
    Ok(())
}

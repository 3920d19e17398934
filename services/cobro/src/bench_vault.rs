//! `cobro bench vault`: tokenize and detokenize throughput and latency at a given concurrency,
//! with plain INSERTs of rows the same size as the baseline from the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cobro_kit::auth::{Claims, Principal, PrincipalKind};
use cobro_vault::app::{CardInput, Vault};
use cobro_vault::keys::LocalKeyProvider;
use sqlx::PgPool;
use uuid::Uuid;

use crate::Failure;

const PANS: [&str; 4] = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"];

pub async fn run(url: &str, ops: u32, concurrency: u32) -> Result<(), Failure> {
    crate::bench::in_bench_schema(url, |schema| async move { run_in(url, &schema, ops, concurrency).await }).await
}

fn payments(tenant: Uuid) -> Result<Principal, Failure> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: "bench".into(),
        sub: "payments".into(),
        aud: "cobro".into(),
        exp: now + 3600,
        iat: now,
        nbf: None,
        jti: Uuid::now_v7().to_string(),
        tid: tenant,
        knd: PrincipalKind::Service,
        roles: Vec::new(),
        perms: Vec::new(),
        cid: None,
        svc: Some("payments".into()),
    };
    Principal::from_claims(claims).map_err(|e| Failure::from(e.to_string()))
}

/// Run `total` operations over `concurrency` tasks; returns ops/s and the sorted latencies.
async fn drive<F, Fut>(total: u32, concurrency: u32, op: F) -> Result<(f64, Vec<Duration>), Failure>
where
    F: Fn(u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Failure>> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let op = Arc::clone(&op);
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut i = worker;
            while i < total {
                let t = Instant::now();
                op(i).await?;
                latencies.push(t.elapsed());
                i += concurrency;
            }
            Ok::<_, Failure>(latencies)
        });
    }
    let mut all = Vec::with_capacity(total as usize);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok((rate(total, elapsed), all))
}

#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
fn rate(n: u32, elapsed: Duration) -> f64 {
    f64::from(n) / elapsed.as_secs_f64()
}

#[allow(clippy::float_arithmetic)]
fn p99_ms(sorted: &[Duration]) -> f64 {
    let i = (sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

async fn run_in(url: &str, schema: &str, ops: u32, concurrency: u32) -> Result<String, Failure> {
    let pool: PgPool = cobro_kit::db::connect_url(url, schema, concurrency + 4).await?;
    cobro_kit::db::migrate(&pool, schema, &cobro_vault::migrator()).await?;
    let vault = Arc::new(Vault::start(pool.clone(), Arc::new(LocalKeyProvider::from_root(rand::random()))).await?);
    let tenant = Uuid::now_v7();
    let who = payments(tenant)?;

    // Baseline: one row per INSERT, the size of a card row (ids, token, metadata, a sealed card of
    // ~60 bytes and a wrapped key of 61).
    sqlx::query(
        "CREATE TABLE bench_plain (tenant_id uuid, id uuid, token text, brand text, last4 text, exp_month smallint, \
         exp_year smallint, fingerprint bytea, ciphertext bytea, wrapped_dek bytea, created_at timestamptz DEFAULT now(), \
         PRIMARY KEY (tenant_id, id))",
    )
    .execute(&pool)
    .await?;
    let plain_pool = pool.clone();
    let (baseline, _) = drive(ops, concurrency, move |_| {
        let pool = plain_pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO bench_plain (tenant_id, id, token, brand, last4, exp_month, exp_year, fingerprint, ciphertext, \
                 wrapped_dek) VALUES ($1, $2, $3, 'visa', '1111', 12, 2031, $4, $5, $6)",
            )
            .bind(tenant)
            .bind(Uuid::now_v7())
            .bind(format!("tok_{}", Uuid::new_v4().simple()))
            .bind(rand::random::<[u8; 32]>().to_vec())
            .bind(vec![7u8; 60])
            .bind(vec![9u8; 61])
            .execute(&pool)
            .await?;
            Ok(())
        }
    })
    .await?;
    println!("baseline insert   {baseline:>9.0}/s");

    let tokens = Arc::new(std::sync::Mutex::new(Vec::with_capacity(ops as usize)));
    let (v, w, t) = (Arc::clone(&vault), who.clone(), Arc::clone(&tokens));
    let (tokenize, tok_lat) = drive(ops, concurrency, move |i| {
        let (vault, who, tokens) = (Arc::clone(&v), w.clone(), Arc::clone(&t));
        async move {
            let pan = PANS[(i as usize) % PANS.len()];
            let input = CardInput {
                pan,
                exp_month: 12,
                exp_year: 2031,
                holder_name: "Bench Holder",
                dedupe: false,
                ttl_seconds: 0,
            };
            let (meta, _) = vault.tokenize(&who, input).await.map_err(|e| Failure::from(e.to_string()))?;
            tokens.lock().map_err(|_| "poisoned")?.push(meta.token);
            Ok(())
        }
    })
    .await?;
    println!("tokenize          {tokenize:>9.0}/s  p99 {:.2} ms", p99_ms(&tok_lat));

    let tokens: Arc<Vec<String>> = Arc::new(std::mem::take(&mut *tokens.lock().map_err(|_| "poisoned")?));
    let (v, w, t) = (Arc::clone(&vault), who.clone(), Arc::clone(&tokens));
    let (detokenize, detok_lat) = drive(ops, concurrency, move |i| {
        let (vault, who, tokens) = (Arc::clone(&v), w.clone(), Arc::clone(&t));
        async move {
            let token = tokens.get(i as usize % tokens.len().max(1)).ok_or("no tokens")?;
            vault.detokenize(&who, token, "charge").await.map_err(|e| Failure::from(e.to_string()))?;
            Ok(())
        }
    })
    .await?;
    println!("detokenize        {detokenize:>9.0}/s  p99 {:.2} ms", p99_ms(&detok_lat));

    let mut all = tok_lat;
    all.extend(detok_lat);
    all.sort();
    pool.close().await;
    #[allow(clippy::float_arithmetic)]
    let ratio = tokenize / baseline;
    Ok(format!(
        "bench vault: tokenize_per_s={tokenize:.0} detokenize_per_s={detokenize:.0} p99_ms={:.2} baseline_insert_per_s={baseline:.0} ratio={ratio:.2}",
        p99_ms(&all)
    ))
}

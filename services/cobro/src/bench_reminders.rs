//! `cobro bench reminders`: due email reminders planned for a book of overdue invoices, then
//! sent by two dispatchers sharing the rows to an SMTP server in the process that counts what it
//! accepts. A message accepted twice (same Message-ID) is a duplicate; there must be none.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cobro_notifications::app::{Channels, Notifications};
use cobro_notifications::channels::{AnyChannel, SmtpConfig, SmtpEmail, SmtpTls};
use cobro_notifications::config::Pace;
use cobro_notifications::policy::PolicyBody;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::Failure;

const CUSTOMERS: u32 = 1_000;
const DISPATCHERS: usize = 2;
const PLANNERS: u32 = 4;

pub async fn run(url: &str, invoices: u32) -> Result<(), Failure> {
    crate::bench::in_bench_schema(url, |schema| async move { run_in(url, &schema, invoices).await }).await
}

/// What the SMTP server accepted: every Message-ID, and how many messages in all.
#[derive(Default)]
struct Accepted {
    ids: HashSet<String>,
    total: u64,
}

/// A minimal SMTP server: accepts every message and records its Message-ID.
async fn smtp_server(accepted: Arc<Mutex<Accepted>>) -> Result<u16, Failure> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let accepted = Arc::clone(&accepted);
            tokio::spawn(async move {
                let _ = session(stream, accepted).await;
            });
        }
    });
    Ok(port)
}

async fn session(stream: tokio::net::TcpStream, accepted: Arc<Mutex<Accepted>>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"220 bench ESMTP\r\n").await?;
    while let Some(line) = lines.next_line().await? {
        let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => w.write_all(b"250-bench\r\n250 8BITMIME\r\n").await?,
            "DATA" => {
                w.write_all(b"354 go ahead\r\n").await?;
                let mut id = String::new();
                while let Some(data) = lines.next_line().await? {
                    if data == "." {
                        break;
                    }
                    if id.is_empty()
                        && let Some(value) = data.strip_prefix("Message-ID:")
                    {
                        id = value.trim().to_owned();
                    }
                }
                if let Ok(mut seen) = accepted.lock() {
                    seen.total += 1;
                    seen.ids.insert(id);
                }
                w.write_all(b"250 queued\r\n").await?;
            }
            "QUIT" => {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => w.write_all(b"250 ok\r\n").await?,
        }
    }
    Ok(())
}

fn dispatcher(pool: &PgPool, port: u16) -> Result<Notifications, Failure> {
    let email = SmtpEmail::new(SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: secrecy::SecretString::from(String::new()),
        from: "Bench Billing <billing@bench.test>".to_owned(),
        timeout: Duration::from_secs(30),
    })
    .map_err(|e| format!("smtp: {e}"))?;
    let pace = Pace {
        poll_interval: Duration::from_millis(50),
        batch_size: 200,
        max_attempts: 5,
        lease: Duration::from_secs(120),
    };
    Ok(Notifications::new(pool.clone(), Channels { email: Some(AnyChannel::from(email)), ..Channels::default() }, pace))
}

// Rates are reported, never computed with: floats are fine here.
#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
async fn run_in(url: &str, schema: &str, invoices: u32) -> Result<String, Failure> {
    let pool = cobro_kit::db::connect_url(url, schema, 24).await?;
    cobro_kit::db::migrate(&pool, schema, &cobro_notifications::migrator()).await?;
    let accepted = Arc::new(Mutex::new(Accepted::default()));
    let port = smtp_server(Arc::clone(&accepted)).await?;
    let tenant = Uuid::now_v7();

    // One email step on the due date, any time of day, no cap: every overdue invoice gets
    // exactly one reminder now.
    let mut policy = PolicyBody::builtin();
    policy.steps.truncate(2);
    policy.steps.remove(0);
    policy.steps[0].channels = vec!["email".to_owned()];
    policy.quiet_start = "00:00".to_owned();
    policy.quiet_end = "00:00".to_owned();
    policy.send_at = "00:00".to_owned();
    policy.business_days = false;
    policy.daily_cap = 0;
    policy.sender_name = "Bench".to_owned();
    cobro_notifications::store::upsert_policy(&pool, tenant, None, &serde_json::to_value(&policy)?, "").await?;
    sqlx::query(
        "INSERT INTO customers (tenant_id, customer_id, legal_name, contacts) \
         SELECT $1, ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, 'Customer ' || n, \
         jsonb_build_array(jsonb_build_object('name', 'AP ' || n, 'email', 'ap' || n || '@customer.test', \
           'language', 'es', 'timezone', 'America/Mexico_City')) \
         FROM generate_series(1, $2) n",
    )
    .bind(tenant)
    .bind(i64::from(CUSTOMERS))
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO invoices (tenant_id, invoice_id, customer_id, number, status, currency, total, balance, due_date) \
         SELECT $1, gen_random_uuid(), ('00000000-0000-7000-8000-' || lpad(to_hex(1 + n % $3), 12, '0'))::uuid, \
         'F-' || n, 'open', 'MXN', 1160, 1160, current_date - 1 FROM generate_series(1, $2) n",
    )
    .bind(tenant)
    .bind(i64::from(invoices))
    .bind(i64::from(CUSTOMERS))
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT invoice_id FROM invoices WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(&pool)
        .await?;
    println!("setup: {} invoices of {CUSTOMERS} customers", ids.len());

    // Scheduling: what the consumer does per invoice.issued, by a few planners at once.
    let planner = Arc::new(dispatcher(&pool, port)?);
    let started = Instant::now();
    let chunk = ids.len().div_ceil(PLANNERS as usize).max(1);
    let mut planners = tokio::task::JoinSet::new();
    for part in ids.chunks(chunk).map(<[Uuid]>::to_vec) {
        let planner = Arc::clone(&planner);
        let pool = pool.clone();
        planners.spawn(async move {
            for batch in part.chunks(200) {
                let mut tx = pool.begin().await?;
                let now = chrono::Utc::now();
                for invoice in batch {
                    planner.plan_invoice(&mut tx, tenant, *invoice, now).await?;
                }
                tx.commit().await?;
            }
            Ok::<(), Failure>(())
        });
    }
    // This machine's PostgreSQL runs with autovacuum off: without fresh statistics the plans
    // made while `messages` was empty scan it whole for every invoice.
    let analyzing = {
        let pool = pool.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let _ = sqlx::query("ANALYZE messages").execute(&pool).await;
            }
        })
    };
    while let Some(done) = planners.join_next().await {
        done??;
    }
    analyzing.abort();
    let planned = started.elapsed();
    sqlx::query("ANALYZE messages").execute(&pool).await?;
    let due: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'planned' AND send_at <= now()")
        .fetch_one(&pool)
        .await?;
    println!("scheduled: {due} due reminders in {:.2} s", planned.as_secs_f64());

    // Dispatching: two dispatchers share the rows until none is left.
    let sending = Instant::now();
    let mut dispatchers = tokio::task::JoinSet::new();
    for _ in 0..DISPATCHERS {
        let app = Arc::new(dispatcher(&pool, port)?);
        dispatchers.spawn(async move {
            while Arc::clone(&app).dispatch_once().await? > 0 {}
            Ok::<(), Failure>(())
        });
    }
    while let Some(done) = dispatchers.join_next().await {
        done??;
    }
    let sent_in = sending.elapsed();
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'sent'").fetch_one(&pool).await?;
    let (total, unique) =
        accepted.lock().map(|a| (a.total, a.ids.len() as u64)).map_err(|_| "the SMTP server's books are poisoned")?;
    println!(
        "dispatched: {sent} sent in {:.2} s; the server accepted {total} ({unique} distinct)",
        sent_in.as_secs_f64()
    );
    if i64::try_from(total).unwrap_or(i64::MAX) != sent || sent != due {
        return Err(format!("planned {due}, recorded sent {sent}, accepted {total}").into());
    }
    pool.close().await;
    let seconds = (planned + sent_in).as_secs_f64();
    let per_second = if seconds > 0.0 { total as f64 / seconds } else { 0.0 };
    Ok(format!(
        "bench reminders: messages={total} seconds={seconds:.2} messages_per_s={per_second:.0} duplicates={}",
        total - unique
    ))
}

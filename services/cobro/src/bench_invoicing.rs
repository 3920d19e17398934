//! `cobro bench import` and `cobro bench aging`: the ERP import through the real gRPC service,
//! and the aging report over a large book of open invoices.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cobro_invoicing::api::InvoicingApi;
use cobro_invoicing::app::Invoicing;
use cobro_kit::auth::jwt::{self, SigningKey};
use cobro_kit::auth::{Claims, JwkSet, JwksCache, Principal, PrincipalKind, StaticJwks, Verifier};
use cobro_kit::config::GrpcConfig;
use cobro_kit::grpc::GrpcServer;
use cobro_proto::invoicing::v1 as pb;
use cobro_proto::invoicing::v1::invoicing_service_client::InvoicingServiceClient;
use cobro_proto::invoicing::v1::invoicing_service_server::InvoicingServiceServer;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Failure;

const PERMISSIONS: [&str; 5] = ["customers:read", "customers:write", "invoices:read", "invoices:write", "reports:read"];

fn claims(tenant: Uuid) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: "bench".into(),
        sub: "key_bench".into(),
        aud: "cobro".into(),
        exp: now + 24 * 3600,
        iat: now,
        nbf: None,
        jti: Uuid::now_v7().to_string(),
        tid: tenant,
        knd: PrincipalKind::ApiKey,
        roles: Vec::new(),
        perms: PERMISSIONS.iter().map(|p| (*p).to_owned()).collect(),
        cid: None,
        svc: None,
    }
}

/// A migrated invoicing schema for the measurement.
async fn with_schema<F, Fut>(url: &str, run: F) -> Result<(), Failure>
where
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: Future<Output = Result<String, Failure>>,
{
    crate::bench::in_bench_schema(url, |schema| async move {
        let pool = cobro_kit::db::connect_url(url, &schema, 8).await?;
        cobro_kit::db::migrate(&pool, &schema, &cobro_invoicing::migrator()).await?;
        let line = run(pool.clone()).await;
        pool.close().await;
        line
    })
    .await
}

#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
fn per_second(n: u32, elapsed: Duration) -> f64 {
    f64::from(n) / elapsed.as_secs_f64()
}

/// `invoices` invoices of 3 lines each, streamed through ImportInvoices to a server in this
/// process, over loopback.
pub async fn import(url: &str, invoices: u32) -> Result<(), Failure> {
    with_schema(url, |pool| async move {
        let key = SigningKey::generate("bench");
        let jwks = Arc::new(StaticJwks::new(JwkSet::new().with_key(key.kid(), key.verifying_key())));
        let verifier = Arc::new(Verifier::new(Arc::new(JwksCache::new(jwks)), "bench", "cobro"));
        let tenant = Uuid::now_v7();
        let token = jwt::sign(&key, &claims(tenant));
        let analyze_pool = pool.clone();
        let app = Arc::new(Invoicing::new(pool));
        // One stream carries the whole import: allow it the time it takes.
        let config = GrpcConfig { request_timeout: "1h".into(), ..GrpcConfig::default() };
        let server = GrpcServer::new(config, verifier).add_service(InvoicingServiceServer::new(InvoicingApi::new(app)));
        let shutdown = CancellationToken::new();
        let (addr, serving) = server.bind(([127, 0, 0, 1], 0).into(), shutdown.clone()).await?;
        tokio::spawn(serving);
        let channel = cobro_kit::grpc::connect(&format!("http://{addr}"), Duration::from_secs(3600)).await?;
        let mut client = InvoicingServiceClient::new(channel).max_decoding_message_size(256 * 1024 * 1024);
        let bearer = format!("Bearer {token}");
        let mut request = tonic::Request::new(pb::UpsertCustomerRequest {
            id: String::new(),
            customer: Some(pb::Customer {
                external_id: "ERP-C-1".into(),
                legal_name: "Bench Customer".into(),
                currency: "MXN".into(),
                payment_terms_days: 30,
                ..Default::default()
            }),
        });
        request.metadata_mut().insert("authorization", bearer.parse()?);
        client.upsert_customer(request).await?;

        let items = (0..invoices).map(|n| pb::ImportInvoiceItem {
            invoice: Some(pb::CreateInvoiceRequest {
                customer_id: String::new(),
                external_id: format!("ERP-{n:08}"),
                currency: "MXN".into(),
                lines: (0..3)
                    .map(|l| pb::LineInput {
                        description: format!("Article {l}"),
                        quantity: "3".into(),
                        unit_price: "125.50".into(),
                        discount: None,
                        taxes: vec![pb::TaxRate { name: "IVA".into(), rate_percent: "16".into(), inclusive: false }],
                    })
                    .collect(),
                discount: None,
                memo: String::new(),
                issue_date: "2026-11-01".into(),
                due_date: "2026-12-01".into(),
            }),
            customer_external_id: "ERP-C-1".into(),
            number: format!("F-{n:08}"),
        });
        // Fresh tables have no statistics, and plans made then (foreign-key checks included) scan
        // whole tables until ANALYZE replaces them. Autovacuum does that in production; a server
        // with autovacuum off (as some development machines run) needs it done here.
        let analyze = tokio::spawn({
            let pool = analyze_pool.clone();
            let stop = shutdown.clone();
            async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {
                            let _ = sqlx::query("ANALYZE invoices, invoice_lines, outbox").execute(&pool).await;
                        }
                    }
                }
            }
        });
        let started = Instant::now();
        let mut request = tonic::Request::new(tokio_stream::iter(items));
        request.metadata_mut().insert("authorization", bearer.parse()?);
        let results = client.import_invoices(request).await?.into_inner().results;
        let elapsed = started.elapsed();
        shutdown.cancel();
        let _ = analyze.await;
        let failed = results.iter().filter(|r| r.outcome == "error").count();
        if failed > 0 {
            return Err(format!("{failed} items failed").into());
        }
        Ok(format!(
            "bench import: invoices={invoices} seconds={:.2} invoices_per_s={:.0}",
            elapsed.as_secs_f64(),
            per_second(invoices, elapsed)
        ))
    })
    .await
}

/// The aging report over `invoices` open invoices spread over 1,000 customers and two years of
/// due dates.
pub async fn aging(url: &str, invoices: u32) -> Result<(), Failure> {
    with_schema(url, |pool| async move {
        let tenant = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO customers (tenant_id, id, legal_name, payment_terms_days, currency) \
             SELECT $1, ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, 'Customer ' || n, 30, 'MXN' \
             FROM generate_series(1, 1000) n",
        )
        .bind(tenant)
        .execute(&pool)
        .await?;
        sqlx::query(
            "INSERT INTO invoices (tenant_id, id, customer_id, number, status, currency, issue_date, due_date, subtotal, \
             discount_total, tax_total, total, balance) \
             SELECT $1, gen_random_uuid(), ('00000000-0000-7000-8000-' || lpad(to_hex(1 + n % 1000), 12, '0'))::uuid, \
             'B-' || n, 'open', 'MXN', date '2025-01-01' + (n % 700)::int, date '2025-01-31' + (n % 700)::int, \
             1000, 0, 160, 1160, 1160 - (n % 7) FROM generate_series(1::bigint, $2) n",
        )
        .bind(tenant)
        .bind(i64::from(invoices))
        .execute(&pool)
        .await?;
        sqlx::query("ANALYZE invoices").execute(&pool).await?;
        let now = chrono::Utc::now().timestamp();
        let principal = Principal::from_claims(Claims { exp: now + 3600, ..claims(tenant) })?;
        let app = Invoicing::new(pool);
        let started = Instant::now();
        let (_, totals, customers) = app.aging(&principal, "MXN", "2026-06-30").await?;
        let elapsed = started.elapsed();
        println!("tenant total {} over {} customers", totals.total, customers.len());
        Ok(format!("bench aging: invoices={invoices} seconds={:.2}", elapsed.as_secs_f64()))
    })
    .await
}

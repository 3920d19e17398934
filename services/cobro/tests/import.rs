//! `cobro import invoices FILE.csv` against a real invoicing service on a free port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Arc;

use cobro_invoicing::api::InvoicingApi;
use cobro_invoicing::app::{CustomerIn, Invoicing};
use cobro_kit::auth::{PrincipalKind, TestIssuer};
use cobro_kit::config::GrpcConfig;
use cobro_kit::grpc::GrpcServer;
use cobro_kit::testing::TestDb;
use cobro_proto::invoicing::v1::invoicing_service_server::InvoicingServiceServer;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_export_is_upserted_and_refused_rows_are_reported() {
    let db = TestDb::new(&cobro_invoicing::migrator()).await;
    let issuer = TestIssuer::new();
    let tenant = Uuid::now_v7();
    let perms = ["customers:write", "invoices:read", "invoices:write"];
    let app = Arc::new(Invoicing::new(db.pool.clone()));
    app.upsert_customer(
        &issuer.principal(tenant, PrincipalKind::User, &perms),
        "",
        CustomerIn { external_id: "C1".into(), ..CustomerIn::basic("Ferretería del Norte", "MXN") },
    )
    .await
    .unwrap();
    let server = GrpcServer::new(GrpcConfig::default(), Arc::new(issuer.verifier()))
        .add_service(InvoicingServiceServer::new(InvoicingApi::new(app)));
    let shutdown = CancellationToken::new();
    let (addr, serving) = server.bind("127.0.0.1:0".parse().unwrap(), shutdown.clone()).await.unwrap();
    tokio::spawn(serving);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.csv");
    std::fs::write(
        &file,
        "external_id,customer_external_id,number,currency,issue_date,due_date,description,quantity,unit_price,tax_name,tax_rate\n\
         A1,C1,F-1,MXN,2026-11-01,2026-12-01,\"Bolts, zinc\",10,1.50,IVA,16\n\
         A1,C1,F-1,MXN,2026-11-01,2026-12-01,Nuts,20,0.75,IVA,16\n\
         A2,C1,F-2,MXN,2026-11-02,2026-12-02,Washers,-5,0.10,,\n\
         A3,C9,F-3,MXN,2026-11-02,2026-12-02,Washers,5,0.10,,\n",
    )
    .unwrap();
    let token = issuer.token(tenant, PrincipalKind::ApiKey, &perms);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_cobro"))
            .args(["import", "invoices", file.to_str().unwrap(), "--url", &format!("http://{addr}")])
            .env("COBRO_TOKEN", token)
            .env("COBRO__TELEMETRY__METRICS_LISTEN", "")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "refused rows make the command fail: {stdout}");
    assert!(stdout.contains("imported 3 invoices: created=1 updated=0 unchanged=0 errors=2"), "{stdout}");
    assert!(stdout.contains("A2: invalid_argument (lines[0].quantity"), "{stdout}");
    assert!(stdout.contains("A3: not_found"), "{stdout}");
    // 10 × 1.50 + 20 × 0.75 = 30.00, plus 16% = 34.80.
    let total: rust_decimal::Decimal =
        sqlx::query_scalar("SELECT total FROM invoices WHERE external_id = 'A1'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(total, "34.80".parse().unwrap());
    shutdown.cancel();
    db.drop_schema().await;
}

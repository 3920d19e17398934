//! The ERP integration over the wire: a client-streaming import by external id, and the change
//! feed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use cobro_invoicing::api::InvoicingApi;
use cobro_invoicing::app::Invoicing;
use cobro_kit::auth::{PrincipalKind, TestIssuer};
use cobro_kit::config::GrpcConfig;
use cobro_kit::grpc::GrpcServer;
use cobro_kit::testing::TestDb;
use cobro_proto::invoicing::v1 as pb;
use cobro_proto::invoicing::v1::invoicing_service_client::InvoicingServiceClient;
use cobro_proto::invoicing::v1::invoicing_service_server::InvoicingServiceServer;
use tokio_util::sync::CancellationToken;
use tonic::Request;
use uuid::Uuid;

fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn item(external: &str, number: &str, price: &str) -> pb::ImportInvoiceItem {
    pb::ImportInvoiceItem {
        invoice: Some(pb::CreateInvoiceRequest {
            customer_id: String::new(),
            external_id: external.into(),
            currency: "MXN".into(),
            lines: (0..3)
                .map(|n| pb::LineInput {
                    description: format!("Item {n}"),
                    quantity: "2".into(),
                    unit_price: price.into(),
                    discount: None,
                    taxes: vec![pb::TaxRate { name: "IVA".into(), rate_percent: "16".into(), inclusive: false }],
                })
                .collect(),
            discount: None,
            memo: String::new(),
            issue_date: "2026-11-01".into(),
            due_date: "2026-12-01".into(),
        }),
        customer_external_id: "SAP-C-1".into(),
        number: number.into(),
    }
}

#[tokio::test]
async fn an_erp_imports_by_external_id_and_reads_changes_back() {
    let db = TestDb::new(&cobro_invoicing::migrator()).await;
    let issuer = TestIssuer::new();
    let tenant = Uuid::now_v7();
    let perms = ["customers:read", "customers:write", "invoices:read", "invoices:write", "payments:write"];
    let token = issuer.sign(&{
        let mut c = issuer.claims(tenant, PrincipalKind::ApiKey, &perms);
        c.sub = "key_sap".into();
        c
    });
    let app = Arc::new(Invoicing::new(db.pool.clone()));
    let server = GrpcServer::new(GrpcConfig::default(), Arc::new(issuer.verifier()))
        .add_service(InvoicingServiceServer::new(InvoicingApi::new(Arc::clone(&app))));
    let shutdown = CancellationToken::new();
    let (addr, serving) = server.bind("127.0.0.1:0".parse().unwrap(), shutdown.clone()).await.unwrap();
    tokio::spawn(serving);
    let channel = cobro_kit::grpc::connect(&format!("http://{addr}"), Duration::from_secs(5)).await.unwrap();
    let mut client = InvoicingServiceClient::new(channel);

    let customer = pb::Customer {
        external_id: "SAP-C-1".into(),
        legal_name: "Comercializadora del Bajío".into(),
        currency: "MXN".into(),
        payment_terms_days: 30,
        ..Default::default()
    };
    client
        .upsert_customer(bearer(pb::UpsertCustomerRequest { id: String::new(), customer: Some(customer) }, &token))
        .await
        .unwrap();

    // 450 items (nine transactions of 50): 449 good, one bad in the middle.
    let mut items: Vec<pb::ImportInvoiceItem> =
        (0..450).map(|n| item(&format!("SAP-{n:05}"), &format!("F-{n:05}"), "10.00")).collect();
    items[300].invoice.as_mut().unwrap().lines[1].quantity = "-1".into();
    let response =
        client.import_invoices(bearer(tokio_stream::iter(items.clone()), &token)).await.unwrap().into_inner();
    assert_eq!(response.results.len(), 450);
    assert!(response.results.iter().enumerate().all(|(n, r)| (r.outcome == "error") == (n == 300)));
    assert_eq!(response.results[300].error_field, "lines[1].quantity");
    let issued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM invoices WHERE status = 'open'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(issued, 449, "one bad item does not take its neighbours with it");
    let total: rust_decimal::Decimal = sqlx::query_scalar("SELECT total FROM invoices WHERE external_id = 'SAP-00000'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(total, "69.60".parse().unwrap(), "3 × 2 × 10.00 = 60.00 + 16% = 69.60");

    // Sending it again: unchanged; the fixed item is created; an issued one cannot change.
    items[300].invoice.as_mut().unwrap().lines[1].quantity = "2".into();
    items[5].invoice.as_mut().unwrap().lines[0].unit_price = "11.00".into();
    let again = client.import_invoices(bearer(tokio_stream::iter(items), &token)).await.unwrap().into_inner();
    assert_eq!(again.results[0].outcome, "unchanged");
    assert_eq!(again.results[300].outcome, "created");
    assert_eq!(
        (again.results[5].outcome.as_str(), again.results[5].error_code.as_str()),
        ("error", "invoice_immutable")
    );

    // Changes: every invoice once, then a payment shows up as a later change.
    let mut cursor = String::new();
    let mut seen = 0;
    loop {
        let page = client
            .list_changes(bearer(pb::ListChangesRequest { cursor: cursor.clone(), page_size: 200 }, &token))
            .await
            .unwrap()
            .into_inner();
        if page.invoices.is_empty() {
            break;
        }
        seen += page.invoices.len();
        cursor = page.next_cursor;
    }
    assert_eq!(seen, 450);
    let customer_id = client
        .list_customers(bearer(pb::ListCustomersRequest { page: None }, &token))
        .await
        .unwrap()
        .into_inner()
        .customers[0]
        .id
        .clone();
    client
        .apply_payment(bearer(
            pb::ApplyPaymentRequest {
                payment_id: "SPEI-1".into(),
                customer_id,
                amount: Some(cobro_proto::common::v1::Money { currency: "MXN".into(), amount: "69.60".into() }),
                method: "transfer".into(),
                received_on: String::new(),
                invoice_ids: Vec::new(),
                installment_id: String::new(),
            },
            &token,
        ))
        .await
        .unwrap();
    let after = client
        .list_changes(bearer(pb::ListChangesRequest { cursor, page_size: 200 }, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.invoices.len(), 1);
    assert_eq!(after.invoices[0].status, "paid");
    shutdown.cancel();
    db.drop_schema().await;
}

//! Payments arriving as events through the real broker: a payment sent twice (two events, one
//! payment id) is applied once, and a refused event is recorded rather than retried forever.
//! Redelivery of one event is the kit's inbox's job, tested there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use cobro_invoicing::app::{CustomerIn, DiscountInput, Invoicing, LineIn, NewInvoice};
use cobro_invoicing::events::PaymentsHandler;
use cobro_kit::auth::{PrincipalKind, TestIssuer};
use cobro_kit::events::{Consumer, ConsumerConfig, NewEvent, Relay, RelayConfig, enqueue};
use cobro_kit::testing::{TestDb, eventually, unique_topic};
use cobro_proto::common::v1::Money;
use cobro_proto::events::v1::PaymentReceived;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_sent_twice_is_applied_once_and_a_wrong_one_is_recorded_not_retried() {
    let db = TestDb::new(&cobro_invoicing::migrator()).await;
    let kafka = cobro_kit::testing::kafka();
    let topic = unique_topic(&kafka, "payments").await;
    // The invoices below publish on invoicing's own topic too.
    cobro_kit::events::ensure_topics(&kafka, &["cobro.invoicing.v1".to_owned()]).await.unwrap();
    let issuer = TestIssuer::new();
    let tenant = Uuid::now_v7();
    let clerk = issuer.principal(tenant, PrincipalKind::User, &["customers:write", "invoices:write", "invoices:read"]);
    let app = Arc::new(Invoicing::new(db.pool.clone()));
    let customer = app.upsert_customer(&clerk, "", CustomerIn::basic("Acme", "MXN")).await.unwrap();
    let customer_id = cobro_kit::ids::format("cus", customer.id);
    let draft = app
        .create_invoice(
            &clerk,
            NewInvoice {
                customer_id: customer_id.clone(),
                external_id: String::new(),
                currency: String::new(),
                lines: vec![LineIn {
                    description: "Service".into(),
                    quantity: "1".into(),
                    unit_price: "250.00".into(),
                    discount: DiscountInput::None,
                    taxes: Vec::new(),
                }],
                discount: DiscountInput::None,
                memo: String::new(),
                issue_date: String::new(),
                due_date: String::new(),
            },
        )
        .await
        .unwrap();
    let invoice_id = cobro_kit::ids::format("inv", draft.invoice.id);
    app.issue_invoice(&clerk, &invoice_id).await.unwrap();

    let payment = |payment_id: &str, currency: &str| PaymentReceived {
        payment_id: payment_id.into(),
        customer_id: customer_id.clone(),
        amount: Some(Money { currency: currency.into(), amount: "100.00".into() }),
        method: "card".into(),
        received_on: "2026-11-23".into(),
        invoice_ids: Vec::new(),
        installment_id: String::new(),
    };
    let mut conn = db.pool.acquire().await.unwrap();
    enqueue(&mut conn, &topic, NewEvent::new("payment.received", tenant, "pay_1", &payment("pay_1", "MXN")))
        .await
        .unwrap();
    // The same payment under another event id (a retrying publisher): applied once by payment id.
    enqueue(&mut conn, &topic, NewEvent::new("payment.received", tenant, "pay_1", &payment("pay_1", "MXN")))
        .await
        .unwrap();
    // Money in another currency: refused for good, not retried.
    enqueue(&mut conn, &topic, NewEvent::new("payment.received", tenant, "pay_2", &payment("pay_2", "USD")))
        .await
        .unwrap();
    // Other events on the topic are none of invoicing's business.
    enqueue(&mut conn, &topic, NewEvent::new("payment.refunded", tenant, "pay_1", &payment("pay_1", "MXN")))
        .await
        .unwrap();
    drop(conn);

    let shutdown = CancellationToken::new();
    tokio::spawn(Relay::new(db.pool.clone(), &kafka, RelayConfig::default()).unwrap().run(shutdown.clone()));
    let consumer = Consumer::new(
        db.pool.clone(),
        &kafka,
        ConsumerConfig::new(format!("invoicing-test-{}", Uuid::now_v7().simple()), vec![topic.clone()]),
        PaymentsHandler { app: Arc::clone(&app) },
    )
    .unwrap();
    let stats = consumer.stats();
    tokio::spawn(consumer.run(shutdown.clone()));
    let rejected = || stats.rejected.load(std::sync::atomic::Ordering::Relaxed);
    assert!(eventually(Duration::from_secs(60), || async { stats.handled() + rejected() >= 4 }).await);
    assert_eq!(rejected(), 1, "the USD payment is recorded as rejected");

    let v = app.invoice(&clerk, &invoice_id).await.unwrap().invoice;
    assert_eq!(
        (v.status.as_str(), v.paid, v.balance),
        ("partially_paid", "100.00".parse().unwrap(), "150.00".parse().unwrap())
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM allocations").await, 1);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM payments").await, 1);
    let reason: String =
        sqlx::query_scalar("SELECT reason FROM inbox WHERE outcome <> 'handled'").fetch_one(&db.pool).await.unwrap();
    assert!(reason.contains("MXN"), "{reason}");
    shutdown.cancel();
    db.drop_schema().await;
}

#[tokio::test]
async fn autopay_consent_at_payments_sets_the_customers_flag_and_tells_notifications_once() {
    use cobro_kit::events::EventHandler;
    use cobro_proto::events::v1::{AutopayChanged, Envelope};
    use prost::Message;

    let db = TestDb::new(&cobro_invoicing::migrator()).await;
    let issuer = TestIssuer::new();
    let tenant = Uuid::now_v7();
    let clerk = issuer.principal(tenant, PrincipalKind::User, &["customers:write", "customers:read"]);
    let app = Arc::new(Invoicing::new(db.pool.clone()));
    let customer = app.upsert_customer(&clerk, "", CustomerIn::basic("Acme", "MXN")).await.unwrap();
    assert!(!customer.autopay);
    let handler = PaymentsHandler { app: Arc::clone(&app) };
    let deliver = |tenant: Uuid, enabled: bool| {
        let event = AutopayChanged { customer_id: cobro_kit::ids::format("cus", customer.id), enabled };
        Envelope {
            id: Uuid::now_v7().to_string(),
            r#type: if enabled { "autopay.enabled" } else { "autopay.disabled" }.into(),
            tenant_id: tenant.to_string(),
            aggregate_id: event.customer_id.clone(),
            occurred_at: None,
            traceparent: String::new(),
            payload: event.encode_to_vec(),
        }
    };
    let flag = || async {
        let mut conn = db.pool.acquire().await.unwrap();
        cobro_invoicing::store::customer(&mut conn, tenant, customer.id).await.unwrap().unwrap().autopay
    };
    let announced = || count(&db.pool, "SELECT count(*) FROM outbox WHERE event_type = 'customer.upserted'");
    assert_eq!(announced().await, 1, "made");

    let mut conn = db.pool.acquire().await.unwrap();
    handler.handle(&mut conn, &deliver(tenant, true)).await.unwrap();
    assert!(flag().await, "on autopay");
    assert_eq!(announced().await, 2, "notifications hears of it");
    // The same news again changes nothing and says nothing.
    handler.handle(&mut conn, &deliver(tenant, true)).await.unwrap();
    assert_eq!(announced().await, 2);
    // Another tenant's event naming this customer touches nothing of it.
    handler.handle(&mut conn, &deliver(Uuid::now_v7(), false)).await.unwrap();
    assert!(flag().await);
    handler.handle(&mut conn, &deliver(tenant, false)).await.unwrap();
    assert!(!flag().await, "consent withdrawn");
    assert_eq!(announced().await, 3);
    drop(conn);
    db.drop_schema().await;
}

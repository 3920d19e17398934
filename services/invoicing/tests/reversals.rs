//! Payments taken back: reconciliation undoes a confirmed bank match
//! (`reconciliation.match_reversed`) and invoicing returns the money of the `payment.received`
//! it sent to the invoices' balances, once, whatever order the two events arrive in.
//! The events are handed to `PaymentsHandler` in a transaction, as the inbox consumer does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chrono::Utc;
use cobro_invoicing::app::{CustomerIn, DiscountInput, Invoicing, LineIn, NewInvoice, PaymentIn, Plan};
use cobro_invoicing::events::{MATCH_REVERSED, PAYMENT_RECEIVED, PaymentsHandler};
use cobro_kit::auth::{Principal, PrincipalKind, TestIssuer};
use cobro_kit::events::EventHandler;
use cobro_kit::testing::TestDb;
use cobro_proto::common::v1::Money;
use cobro_proto::events::v1::{Envelope, InstallmentsPlanned, InvoiceChanged, MatchDecided, PaymentReceived};
use prost::Message;
use rust_decimal::Decimal;
use uuid::Uuid;

const ALL: &[&str] =
    &["customers:read", "customers:write", "invoices:read", "invoices:write", "payments:write", "reports:read"];

struct H {
    db: TestDb,
    app: Arc<Invoicing>,
    issuer: TestIssuer,
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn rcm() -> String {
    format!("rcm_{}", Uuid::now_v7().simple())
}

async fn harness() -> H {
    let db = TestDb::new(&cobro_invoicing::migrator()).await;
    H { app: Arc::new(Invoicing::new(db.pool.clone())), db, issuer: TestIssuer::new() }
}

/// A tenant's clerk and one MXN customer of theirs.
struct Tenant {
    clerk: Principal,
    customer: String,
}

impl H {
    async fn tenant(&self) -> Tenant {
        let clerk = self.issuer.principal(Uuid::now_v7(), PrincipalKind::User, ALL);
        let c = self.app.upsert_customer(&clerk, "", CustomerIn::basic("Acme", "MXN")).await.unwrap();
        Tenant { clerk, customer: cobro_kit::ids::format("cus", c.id) }
    }

    /// An issued invoice of one untaxed line.
    async fn issued(&self, t: &Tenant, amount: &str, due: &str) -> String {
        let v = self
            .app
            .create_invoice(
                &t.clerk,
                NewInvoice {
                    customer_id: t.customer.clone(),
                    external_id: String::new(),
                    currency: String::new(),
                    lines: vec![LineIn {
                        description: "Service".into(),
                        quantity: "1".into(),
                        unit_price: amount.into(),
                        discount: DiscountInput::None,
                        taxes: Vec::new(),
                    }],
                    discount: DiscountInput::None,
                    memo: String::new(),
                    issue_date: "2026-10-01".into(),
                    due_date: due.into(),
                },
            )
            .await
            .unwrap();
        let id = cobro_kit::ids::format("inv", v.invoice.id);
        self.app.issue_invoice(&t.clerk, &id).await.unwrap();
        id
    }

    /// Hand one event to the handler in its own transaction, as the consumer does.
    async fn deliver(&self, tenant: Uuid, event_type: &str, aggregate: &str, payload: &impl Message) {
        let envelope = Envelope {
            id: Uuid::now_v7().to_string(),
            r#type: event_type.into(),
            tenant_id: tenant.to_string(),
            aggregate_id: aggregate.into(),
            occurred_at: None,
            traceparent: String::new(),
            payload: payload.encode_to_vec(),
        };
        let handler = PaymentsHandler { app: Arc::clone(&self.app) };
        let mut tx = self.db.pool.begin().await.unwrap();
        handler.handle(&mut tx, &envelope).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// Reconciliation's `payment.received` for a confirmed match.
    async fn received(&self, t: &Tenant, payment_id: &str, amount: &str, invoices: &[&String]) {
        let p = PaymentReceived {
            payment_id: payment_id.into(),
            customer_id: t.customer.clone(),
            amount: Some(Money { currency: "MXN".into(), amount: amount.into() }),
            method: "transfer".into(),
            received_on: "2026-11-20".into(),
            invoice_ids: invoices.iter().map(|i| (*i).clone()).collect(),
            installment_id: String::new(),
        };
        self.deliver(t.clerk.tenant_id, PAYMENT_RECEIVED, payment_id, &p).await;
    }

    /// Reconciliation's `reconciliation.match_reversed` for the match that sent `payment_id`.
    async fn reversed(&self, tenant: Uuid, customer: &str, payment_id: &str, amount: &str) {
        let m = MatchDecided {
            match_id: format!("mat_{}", Uuid::now_v7().simple()),
            bank_line_id: format!("bln_{}", Uuid::now_v7().simple()),
            customer_id: customer.into(),
            amount: Some(Money { currency: "MXN".into(), amount: amount.into() }),
            booking_date: "2026-11-20".into(),
            decided_by: "user:ana".into(),
            payment_id: payment_id.into(),
            ..Default::default()
        };
        // Keyed by the bank line: another partition than the payment's.
        self.deliver(tenant, MATCH_REVERSED, &m.bank_line_id, &m).await;
    }

    async fn state(&self, t: &Tenant, invoice: &str) -> (String, Decimal, Decimal) {
        let v = self.app.invoice(&t.clerk, invoice).await.unwrap().invoice;
        (v.status, v.paid, v.balance)
    }

    async fn credit(&self, t: &Tenant) -> Decimal {
        self.app.customer(&t.clerk, &t.customer).await.unwrap().credit_balance
    }

    /// The payloads of one type of event invoicing emitted, oldest first.
    async fn emitted<M: Message + Default>(&self, event_type: &str) -> Vec<M> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT envelope FROM outbox WHERE event_type = $1 ORDER BY seq")
            .bind(event_type)
            .fetch_all(&self.db.pool)
            .await
            .unwrap();
        rows.iter()
            .map(|bytes| M::decode(Envelope::decode(bytes.as_slice()).unwrap().payload.as_slice()).unwrap())
            .collect()
    }
}

fn status_and_balance(e: &InvoiceChanged) -> (String, String, String) {
    (e.invoice_id.clone(), e.status.clone(), e.balance.clone().unwrap().amount)
}

#[tokio::test]
async fn an_undone_match_reopens_the_invoices_it_paid_once() {
    let h = harness().await;
    let t = h.tenant().await;
    let a = h.issued(&t, "100.00", "2030-01-31").await;
    let b = h.issued(&t, "50.00", "2030-02-28").await;
    let payment = rcm();
    h.received(&t, &payment, "150.00", &[&a, &b]).await;
    assert_eq!(h.state(&t, &a).await, ("paid".into(), d("100.00"), d("0")));
    assert_eq!(h.state(&t, &b).await, ("paid".into(), d("50.00"), d("0")));

    h.reversed(t.clerk.tenant_id, &t.customer, &payment, "150.00").await;
    assert_eq!(h.state(&t, &a).await, ("open".into(), d("0"), d("100.00")));
    assert_eq!(h.state(&t, &b).await, ("open".into(), d("0"), d("50.00")));
    assert_eq!(h.credit(&t).await, d("0"));
    // Each invoice announces its state as it is now.
    let mut events: Vec<_> =
        h.emitted::<InvoiceChanged>("invoice.payment_reversed").await.iter().map(status_and_balance).collect();
    events.sort();
    let mut expected =
        vec![(a.clone(), "open".to_owned(), "100.00".to_owned()), (b.clone(), "open".to_owned(), "50.00".to_owned())];
    expected.sort();
    assert_eq!(events, expected);
    // The allocations stay on record, taken back today.
    let (standing, taken_back): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE reversed_on IS NULL), count(*) FILTER (WHERE reversed_on = $1) FROM allocations",
    )
    .bind(Utc::now().date_naive())
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    assert_eq!((standing, taken_back), (0, 2));
    // The statement shows the payment and, on the day it was taken back, the same payment as a
    // charge: the customer owes both invoices again.
    let s = h
        .app
        .statement(
            &t.clerk,
            &t.customer,
            "2026-10-01",
            &(chrono::Utc::now().date_naive() + chrono::Days::new(1)).to_string(),
        )
        .await
        .unwrap();
    let payments: Vec<(String, Decimal, Decimal)> =
        s.entries.iter().filter(|e| e.kind == "payment").map(|e| (e.reference.clone(), e.charge, e.credit)).collect();
    assert_eq!(payments, vec![(payment.clone(), d("0"), d("150.00")), (payment.clone(), d("150.00"), d("0"))]);
    assert_eq!(s.closing, d("150.00"));

    // The reversal again (another event id), and the payment again: nothing changes.
    h.reversed(t.clerk.tenant_id, &t.customer, &payment, "150.00").await;
    h.received(&t, &payment, "150.00", &[&a, &b]).await;
    assert_eq!(h.state(&t, &a).await, ("open".into(), d("0"), d("100.00")));
    assert_eq!(h.state(&t, &b).await, ("open".into(), d("0"), d("50.00")));
    assert_eq!(h.emitted::<InvoiceChanged>("invoice.payment_reversed").await.len(), 2);
    assert_eq!(h.emitted::<InvoiceChanged>("invoice.paid").await.len(), 2, "paid once each, never again");
    assert_eq!(h.credit(&t).await, d("0"));
    h.db.drop_schema().await;
}

#[tokio::test]
async fn a_reversal_that_arrives_before_its_payment_keeps_the_payment_from_applying() {
    let h = harness().await;
    let t = h.tenant().await;
    let a = h.issued(&t, "80.00", "2030-01-31").await;
    let payment = rcm();
    h.reversed(t.clerk.tenant_id, &t.customer, &payment, "80.00").await;
    assert_eq!(h.state(&t, &a).await, ("open".into(), d("0"), d("80.00")));

    h.received(&t, &payment, "80.00", &[&a]).await;
    assert_eq!(h.state(&t, &a).await, ("open".into(), d("0"), d("80.00")));
    assert_eq!(h.credit(&t).await, d("0"));
    let allocations: i64 = sqlx::query_scalar("SELECT count(*) FROM allocations").fetch_one(&h.db.pool).await.unwrap();
    assert_eq!(allocations, 0);
    assert!(h.emitted::<InvoiceChanged>("invoice.payment_reversed").await.is_empty());

    // Later deliveries of either change nothing; another payment still applies.
    h.reversed(t.clerk.tenant_id, &t.customer, &payment, "80.00").await;
    h.received(&t, &payment, "80.00", &[&a]).await;
    assert_eq!(h.state(&t, &a).await, ("open".into(), d("0"), d("80.00")));
    h.received(&t, &rcm(), "80.00", &[&a]).await;
    assert_eq!(h.state(&t, &a).await, ("paid".into(), d("80.00"), d("0")));
    h.db.drop_schema().await;
}

#[tokio::test]
async fn a_payment_with_a_rest_is_taken_back_whole_and_its_rest_is_no_longer_credit() {
    let h = harness().await;
    let t = h.tenant().await;
    let planned = h.issued(&t, "100.00", "2030-01-31").await;
    h.app
        .set_installment_plan(
            &t.clerk,
            &planned,
            Plan::Explicit(vec![("2029-12-31".into(), "50.00".into()), ("2030-01-31".into(), "50.00".into())]),
        )
        .await
        .unwrap();
    let payment = rcm();
    // 130.00 for the planned invoice: 30.00 left is credit, and 10.00 of it pays a later invoice.
    h.received(&t, &payment, "130.00", &[&planned]).await;
    assert_eq!(h.state(&t, &planned).await, ("paid".into(), d("100.00"), d("0")));
    assert_eq!(h.credit(&t).await, d("30.00"));
    let later = h.issued(&t, "10.00", "2030-03-31").await;
    let used = h.app.apply_customer_credit(&t.clerk, &t.customer, &later).await.unwrap();
    assert_eq!(used.unapplied, d("20.00"));
    assert_eq!(h.state(&t, &later).await, ("paid".into(), d("10.00"), d("0")));

    h.reversed(t.clerk.tenant_id, &t.customer, &payment, "130.00").await;
    assert_eq!(h.state(&t, &planned).await, ("open".into(), d("0"), d("100.00")));
    assert_eq!(h.state(&t, &later).await, ("open".into(), d("0"), d("10.00")));
    let plan = h.app.invoice(&t.clerk, &planned).await.unwrap().installments;
    assert_eq!(plan.iter().map(|s| s.balance).collect::<Vec<_>>(), vec![d("50.00"), d("50.00")]);
    // Readers of plans learn the installments' balances as they are now.
    let plans = h.emitted::<InstallmentsPlanned>("installments.planned").await;
    let last = plans.last().unwrap();
    assert_eq!(last.invoice_id, planned);
    assert_eq!(
        last.installments.iter().map(|i| i.balance.clone().unwrap().amount).collect::<Vec<_>>(),
        vec!["50.00", "50.00"]
    );
    // The rest is gone: no credit, and nothing to apply to an invoice.
    assert_eq!(h.credit(&t).await, d("0"));
    let used = h.app.apply_customer_credit(&t.clerk, &t.customer, &later).await.unwrap();
    assert!(used.allocations.is_empty());
    assert_eq!(used.unapplied, d("0"));
    assert_eq!(h.state(&t, &later).await, ("open".into(), d("0"), d("10.00")));
    h.db.drop_schema().await;
}

#[tokio::test]
async fn payments_that_stand_keep_the_invoice_partly_paid_and_an_overdue_one_is_noticed() {
    let h = harness().await;
    let t = h.tenant().await;
    // Paid before it fell due, so no overdue notice was ever sent.
    let due_past = h.issued(&t, "100.00", "2026-10-31").await;
    h.app
        .apply_payment(
            &t.clerk,
            PaymentIn {
                payment_id: "pay_cash".into(),
                customer_id: t.customer.clone(),
                amount: "30.00".into(),
                currency: "MXN".into(),
                method: "cash".into(),
                received_on: "2026-10-15".into(),
                invoice_ids: vec![due_past.clone()],
                installment_id: String::new(),
            },
        )
        .await
        .unwrap();
    let payment = rcm();
    h.received(&t, &payment, "70.00", &[&due_past]).await;
    assert_eq!(h.state(&t, &due_past).await, ("paid".into(), d("100.00"), d("0")));
    assert_eq!(h.app.sweep_due(Utc::now().date_naive()).await.unwrap().0, 0);

    h.reversed(t.clerk.tenant_id, &t.customer, &payment, "70.00").await;
    assert_eq!(h.state(&t, &due_past).await, ("partially_paid".into(), d("30.00"), d("70.00")));
    // Open again past its due date: the overdue notice goes out as for any overdue invoice.
    assert_eq!(h.app.sweep_due(Utc::now().date_naive()).await.unwrap().0, 1);
    let overdue = h.emitted::<InvoiceChanged>("invoice.overdue").await;
    assert_eq!(
        overdue.iter().map(status_and_balance).collect::<Vec<_>>(),
        vec![(due_past.clone(), "partially_paid".to_owned(), "70.00".to_owned())]
    );
    h.db.drop_schema().await;
}

#[tokio::test]
async fn another_tenants_reversal_of_the_same_payment_id_changes_nothing_here() {
    let h = harness().await;
    let ours = h.tenant().await;
    let theirs = h.tenant().await;
    let a = h.issued(&ours, "60.00", "2030-01-31").await;
    let payment = rcm();
    h.received(&ours, &payment, "60.00", &[&a]).await;

    h.reversed(theirs.clerk.tenant_id, &theirs.customer, &payment, "60.00").await;
    // Even naming our customer, another tenant reaches nothing of ours.
    h.reversed(theirs.clerk.tenant_id, &ours.customer, &payment, "60.00").await;
    assert_eq!(h.state(&ours, &a).await, ("paid".into(), d("60.00"), d("0")));
    assert!(h.emitted::<InvoiceChanged>("invoice.payment_reversed").await.is_empty());

    // Our own reversal still takes it back.
    h.reversed(ours.clerk.tenant_id, &ours.customer, &payment, "60.00").await;
    assert_eq!(h.state(&ours, &a).await, ("open".into(), d("0"), d("60.00")));
    h.db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_and_its_reversal_arriving_at_once_leave_the_invoice_unpaid() {
    let h = Arc::new(harness().await);
    let t = Arc::new(h.tenant().await);
    let mut invoices = Vec::new();
    for _ in 0..12 {
        invoices.push(h.issued(&t, "25.00", "2030-01-31").await);
    }
    // Two consumers (two partitions) handle the payment and its reversal at the same moment:
    // whichever goes second sees what the first did.
    let mut pairs = Vec::new();
    for invoice in &invoices {
        let payment = rcm();
        let (h1, t1, p1, i1) = (Arc::clone(&h), Arc::clone(&t), payment.clone(), invoice.clone());
        let (h2, t2, p2) = (Arc::clone(&h), Arc::clone(&t), payment);
        pairs.push(tokio::spawn(async move { h1.received(&t1, &p1, "25.00", &[&i1]).await }));
        pairs.push(tokio::spawn(async move { h2.reversed(t2.clerk.tenant_id, &t2.customer, &p2, "25.00").await }));
    }
    for p in pairs {
        p.await.unwrap();
    }
    for invoice in &invoices {
        assert_eq!(h.state(&t, invoice).await, ("open".into(), d("0"), d("25.00")), "{invoice}");
    }
    assert_eq!(h.credit(&t).await, d("0"));
    let standing: i64 = sqlx::query_scalar("SELECT count(*) FROM allocations WHERE reversed_on IS NULL")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(standing, 0);
    let Ok(h) = Arc::try_unwrap(h) else { panic!("the tasks are done") };
    h.db.drop_schema().await;
}

//! Recurring invoices, "I can't pay" requests, disputes, due notices and statements, against
//! the real Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chrono::NaiveDate;
use cobro_invoicing::app::{CustomerIn, DiscountInput, Invoicing, LineIn, NewInvoice, PaymentIn};
use cobro_invoicing::recurring::RecurringIn;
use cobro_invoicing::requests::{dispute_id, request_id};
use cobro_kit::auth::{Principal, PrincipalKind, TestIssuer};
use cobro_kit::testing::TestDb;
use rust_decimal::Decimal;
use uuid::Uuid;

const ALL: &[&str] =
    &["customers:read", "customers:write", "invoices:read", "invoices:write", "payments:write", "reports:read"];

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn code(e: &cobro_invoicing::error::InvoicingError) -> &'static str {
    use cobro_kit::error::DomainError;
    e.code()
}

struct H {
    db: TestDb,
    app: Arc<Invoicing>,
    clerk: Principal,
    issuer: TestIssuer,
    customer: String,
}

async fn harness() -> H {
    let db = TestDb::new(&cobro_invoicing::migrator()).await;
    let issuer = TestIssuer::new();
    let clerk = issuer.principal(Uuid::now_v7(), PrincipalKind::User, ALL);
    let app = Arc::new(Invoicing::new(db.pool.clone()));
    let c = app
        .upsert_customer(
            &clerk,
            "",
            CustomerIn {
                payment_terms_days: 15,
                tax_country: "MX".into(),
                ..CustomerIn::basic("Ferretería del Norte", "MXN")
            },
        )
        .await
        .unwrap();
    H { db, app, clerk, issuer, customer: cobro_kit::ids::format("cus", c.id) }
}

fn monthly(customer: &str, amount: &str) -> NewInvoice {
    NewInvoice {
        customer_id: customer.into(),
        external_id: String::new(),
        currency: String::new(),
        lines: vec![LineIn {
            description: "Renta mensual".into(),
            quantity: "1".into(),
            unit_price: amount.into(),
            discount: DiscountInput::None,
            taxes: Vec::new(),
        }],
        discount: DiscountInput::None,
        memo: String::new(),
        issue_date: String::new(),
        due_date: String::new(),
    }
}

impl H {
    async fn issued(&self, amount: &str, issue: &str, due: &str) -> String {
        let mut input = monthly(&self.customer, amount);
        input.issue_date = issue.into();
        input.due_date = due.into();
        let v = self.app.create_invoice(&self.clerk, input).await.unwrap();
        let id = cobro_kit::ids::format("inv", v.invoice.id);
        self.app.issue_invoice(&self.clerk, &id).await.unwrap();
        id
    }

    fn contact(&self) -> Principal {
        let mut p =
            self.issuer.principal(self.clerk.tenant_id, PrincipalKind::Customer, &["portal:pay", "portal:read"]);
        p.customer_id = Some(cobro_kit::ids::parse("c", "cus", &self.customer).unwrap());
        p
    }

    async fn events(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recurring_generation_makes_each_period_once_even_when_two_run_at_once() {
    let h = harness().await;
    h.app
        .create_recurring(
            &h.clerk,
            RecurringIn {
                invoice: monthly(&h.customer, "1500.00"),
                frequency: "monthly".into(),
                day_of_month: 1,
                first_period: "2026-09-01".into(),
                end_date: String::new(),
                max_count: 3,
                auto_issue: true,
            },
        )
        .await
        .unwrap();
    let (a, b) =
        tokio::join!(h.app.generate_recurring(date("2026-09-15")), h.app.generate_recurring(date("2026-09-15")));
    assert_eq!(a.unwrap() + b.unwrap(), 1, "two generators at once, one invoice");
    let invoices: Vec<(Option<NaiveDate>, String)> =
        sqlx::query_as("SELECT issue_date, status FROM invoices ORDER BY issue_date")
            .fetch_all(&h.db.pool)
            .await
            .unwrap();
    assert_eq!(invoices, vec![(Some(date("2026-09-01")), "open".to_owned())]);
    // Catching up two periods, then the count of 3 ends the schedule.
    assert_eq!(h.app.generate_recurring(date("2026-11-23")).await.unwrap(), 2);
    assert_eq!(h.app.generate_recurring(date("2027-06-01")).await.unwrap(), 0);
    let dates: Vec<NaiveDate> =
        sqlx::query_scalar("SELECT issue_date FROM invoices ORDER BY issue_date").fetch_all(&h.db.pool).await.unwrap();
    assert_eq!(dates, vec![date("2026-09-01"), date("2026-10-01"), date("2026-11-01")]);
    let bad = h
        .app
        .create_recurring(
            &h.clerk,
            RecurringIn {
                invoice: monthly(&h.customer, "1.00"),
                frequency: "weekly".into(),
                day_of_month: 1,
                first_period: "2026-09-01".into(),
                end_date: String::new(),
                max_count: 0,
                auto_issue: false,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(code(&bad), "invalid_argument");
    h.db.drop_schema().await;
}

#[tokio::test]
async fn a_contacts_cant_pay_request_becomes_an_installment_plan_when_accepted() {
    let h = harness().await;
    let inv = h.issued("900.00", "2026-10-01", "2026-10-16").await;
    let contact = h.contact();
    let request =
        h.app.request_hardship(&contact, &inv, "cash flow after a slow quarter", 3, "2026-12-01", "").await.unwrap();
    assert_eq!(h.events("hardship.requested").await, 1);
    let again = h.app.request_hardship(&contact, &inv, "again", 3, "2026-12-01", "").await.unwrap_err();
    assert_eq!(code(&again), "hardship_open");
    // Another customer's contact sees nothing.
    let mut stranger = contact.clone();
    stranger.customer_id = Some(Uuid::now_v7());
    assert_eq!(
        code(&h.app.request_hardship(&stranger, &inv, "x", 2, "2026-12-01", "").await.unwrap_err()),
        "not_found"
    );
    // Contacts do not decide their own requests.
    assert_eq!(
        code(&h.app.resolve_hardship(&contact, &request_id(request), true, "").await.unwrap_err()),
        "permission_denied"
    );

    h.app.resolve_hardship(&h.clerk, &request_id(request), true, "approved by AR").await.unwrap();
    let v = h.app.invoice(&h.clerk, &inv).await.unwrap();
    let plan: Vec<(NaiveDate, Decimal)> = v.installments.iter().map(|s| (s.due_date, s.amount)).collect();
    assert_eq!(
        plan,
        vec![(date("2026-12-01"), d("300.00")), (date("2027-01-01"), d("300.00")), (date("2027-02-01"), d("300.00"))]
    );
    assert_eq!(h.events("hardship.resolved").await, 1);
    assert_eq!(
        code(&h.app.resolve_hardship(&h.clerk, &request_id(request), false, "").await.unwrap_err()),
        "request_resolved"
    );
    h.db.drop_schema().await;
}

#[tokio::test]
async fn a_dispute_is_resolved_by_a_credit_note_or_rejected() {
    let h = harness().await;
    let inv = h.issued("500.00", "2026-10-01", "2026-10-16").await;
    let dispute = h.app.open_dispute(&h.contact(), &inv, "two items arrived broken").await.unwrap();
    assert_eq!(code(&h.app.open_dispute(&h.clerk, &inv, "again").await.unwrap_err()), "dispute_open");
    h.app.resolve_dispute(&h.clerk, &dispute_id(dispute), "120.00", "two items credited").await.unwrap();
    assert_eq!(h.app.invoice(&h.clerk, &inv).await.unwrap().invoice.balance, d("380.00"));
    assert_eq!(
        (h.events("dispute.opened").await, h.events("dispute.resolved").await, h.events("credit_note.issued").await),
        (1, 1, 1)
    );

    let second = h.app.open_dispute(&h.clerk, &inv, "price differs from the quote").await.unwrap();
    h.app.resolve_dispute(&h.clerk, &dispute_id(second), "", "the quote matches the invoice").await.unwrap();
    assert_eq!(h.app.invoice(&h.clerk, &inv).await.unwrap().invoice.balance, d("380.00"));
    h.db.drop_schema().await;
}

#[tokio::test]
async fn due_and_overdue_notices_go_out_once() {
    let h = harness().await;
    let late = h.issued("100.00", "2026-10-01", "2026-10-16").await;
    h.issued("100.00", "2026-11-01", "2026-12-16").await;
    // Overdue and without a plan: the invoice's own notice.
    h.issued("70.00", "2026-09-01", "2026-09-30").await;
    // With a plan, an invoice is judged by its installments, not by its own due date.
    h.app
        .set_installment_plan(
            &h.clerk,
            &late,
            cobro_invoicing::app::Plan::Equal { count: 2, first_due: "2026-11-01".into(), every_months: 1 },
        )
        .await
        .unwrap();
    let (a, b) = tokio::join!(h.app.sweep_due(date("2026-11-23")), h.app.sweep_due(date("2026-11-23")));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.0 + b.0, a.1 + b.1), (1, 1), "one overdue invoice, one installment due, each once");
    assert_eq!(h.app.sweep_due(date("2026-11-24")).await.unwrap(), (0, 0));
    assert_eq!((h.events("invoice.overdue").await, h.events("installment.due").await), (1, 1));
    h.db.drop_schema().await;
}

#[tokio::test]
async fn a_statement_runs_from_the_opening_balance_to_the_closing_one() {
    let h = harness().await;
    h.issued("1000.00", "2026-09-05", "2026-09-20").await;
    let oct = h.issued("400.00", "2026-10-05", "2026-10-20").await;
    h.app
        .apply_payment(
            &h.clerk,
            PaymentIn {
                payment_id: "SPEI-77".into(),
                customer_id: h.customer.clone(),
                amount: "1000.00".into(),
                currency: "MXN".into(),
                method: "transfer".into(),
                received_on: "2026-10-10".into(),
                invoice_ids: Vec::new(),
                installment_id: String::new(),
            },
        )
        .await
        .unwrap();
    h.app.issue_credit_note(&h.clerk, &oct, "50.00", "late delivery").await.unwrap();
    let s = h
        .app
        .statement(
            &h.clerk,
            &h.customer,
            "2026-10-01",
            &(chrono::Utc::now().date_naive() + chrono::Days::new(1)).to_string(),
        )
        .await
        .unwrap();
    // Opening: the September invoice, 1000.00. Then +400.00, −1000.00, −50.00: closing 350.00.
    assert_eq!(s.opening, d("1000.00"));
    assert_eq!(s.entries.iter().map(|e| (e.kind, e.charge, e.credit)).collect::<Vec<_>>().len(), 3);
    assert_eq!(s.entries[0].kind, "invoice");
    assert_eq!(s.entries[1].kind, "payment");
    assert_eq!(s.closing, d("350.00"));
    assert_eq!(s.closing, h.app.invoice(&h.clerk, &oct).await.unwrap().invoice.balance);
    // Contacts read only their own customer's statement.
    let mut stranger = h.contact();
    stranger.customer_id = Some(Uuid::now_v7());
    assert_eq!(
        code(&h.app.statement(&stranger, &h.customer, "2026-10-01", "2026-12-31").await.unwrap_err()),
        "not_found"
    );
    h.db.drop_schema().await;
}

#[tokio::test]
async fn an_issued_invoice_prints_as_a_pdf_and_a_draft_does_not() {
    let h = harness().await;
    let inv = h.issued("1160.00", "2026-11-01", "2026-12-01").await;
    let (name, pdf) = h.app.invoice_pdf(&h.clerk, &inv).await.unwrap();
    assert!(name.starts_with("INV-2026-") && name.ends_with(".pdf"));
    assert!(pdf.starts_with(b"%PDF-1.4") && pdf.ends_with(b"%%EOF\n"));
    let text = String::from_utf8_lossy(&pdf);
    assert!(text.contains(name.trim_end_matches(".pdf")), "the number is printed");
    assert!(text.contains("1160.00"), "the total is printed");
    let draft = h.app.create_invoice(&h.clerk, monthly(&h.customer, "10.00")).await.unwrap();
    let err = h.app.invoice_pdf(&h.clerk, &cobro_kit::ids::format("inv", draft.invoice.id)).await.unwrap_err();
    assert_eq!(code(&err), "invoice_not_issued");
    h.db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispute_resolved_twice_at_once_credits_once() {
    let h = harness().await;
    let inv = h.issued("500.00", "2026-10-01", "2026-10-16").await;
    let dispute = dispute_id(h.app.open_dispute(&h.clerk, &inv, "broken items").await.unwrap());
    let (a, b) = tokio::join!(
        h.app.resolve_dispute(&h.clerk, &dispute, "100.00", "credited"),
        h.app.resolve_dispute(&h.clerk, &dispute, "100.00", "credited")
    );
    assert_eq!(usize::from(a.is_ok()) + usize::from(b.is_ok()), 1);
    assert_eq!(h.app.invoice(&h.clerk, &inv).await.unwrap().invoice.balance, d("400.00"));
    assert_eq!(h.events("credit_note.issued").await, 1);
    h.db.drop_schema().await;
}

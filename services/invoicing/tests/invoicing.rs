//! Invoicing against the real Postgres: totals, gapless numbers, installments, credit notes,
//! payments applied once, customer credit, reports, isolation and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chrono::{Days, Utc};
use cobro_invoicing::app::{CustomerIn, DiscountInput, Invoicing, LineIn, NewInvoice, PaymentIn, Plan, TaxInput};
use cobro_invoicing::error::InvoicingError;
use cobro_kit::auth::{Principal, PrincipalKind, TestIssuer};
use cobro_kit::testing::TestDb;
use cobro_proto::events::v1::{Envelope, PaymentApplied};
use prost::Message;
use rust_decimal::Decimal;
use uuid::Uuid;

struct H {
    db: TestDb,
    app: Arc<Invoicing>,
    clerk: Principal,
    issuer: TestIssuer,
}

const ALL: &[&str] =
    &["customers:read", "customers:write", "invoices:read", "invoices:write", "payments:write", "reports:read"];

async fn harness() -> H {
    let db = TestDb::new(&cobro_invoicing::migrator()).await;
    let issuer = TestIssuer::new();
    let clerk = issuer.principal(Uuid::now_v7(), PrincipalKind::User, ALL);
    H { app: Arc::new(Invoicing::new(db.pool.clone())), db, clerk, issuer }
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn code(e: &InvoicingError) -> &'static str {
    use cobro_kit::error::DomainError;
    e.code()
}

fn field(e: &InvoicingError) -> Option<String> {
    use cobro_kit::error::DomainError;
    e.field().map(str::to_owned)
}

fn customer_in(name: &str, currency: &str) -> CustomerIn {
    CustomerIn {
        external_id: String::new(),
        legal_name: name.into(),
        tax_id: "ACM010101ABC".into(),
        tax_country: "mx".into(),
        billing_address: serde_json::json!({"city": "Monterrey", "country": "MX"}),
        contacts: Vec::new(),
        payment_terms_days: 30,
        currency: currency.into(),
        credit_limit: String::new(),
        reminder_policy: String::new(),
        autopay: false,
        tags: vec!["retail".into()],
    }
}

fn line(qty: &str, price: &str, taxes: &[(&str, &str, bool)]) -> LineIn {
    LineIn {
        description: "Widget".into(),
        quantity: qty.into(),
        unit_price: price.into(),
        discount: DiscountInput::None,
        taxes: taxes
            .iter()
            .map(|(n, r, inc)| TaxInput { name: (*n).into(), rate_percent: (*r).into(), inclusive: *inc })
            .collect(),
    }
}

fn invoice_in(customer: &str, lines: Vec<LineIn>) -> NewInvoice {
    NewInvoice {
        customer_id: customer.into(),
        external_id: String::new(),
        currency: String::new(),
        lines,
        discount: DiscountInput::None,
        memo: String::new(),
        issue_date: String::new(),
        due_date: String::new(),
    }
}

impl H {
    async fn customer(&self, name: &str, currency: &str) -> String {
        let c = self.app.upsert_customer(&self.clerk, "", customer_in(name, currency)).await.unwrap();
        cobro_kit::ids::format("cus", c.id)
    }

    /// An issued invoice of one untaxed line for `amount`, with the given dates.
    async fn issued(&self, customer: &str, amount: &str, issue: &str, due: &str) -> String {
        let mut input = invoice_in(customer, vec![line("1", amount, &[])]);
        input.issue_date = issue.into();
        input.due_date = due.into();
        let v = self.app.create_invoice(&self.clerk, input).await.unwrap();
        let id = cobro_kit::ids::format("inv", v.invoice.id);
        self.app.issue_invoice(&self.clerk, &id).await.unwrap();
        id
    }

    async fn pay(
        &self,
        id: &str,
        customer: &str,
        amount: &str,
        currency: &str,
        on: &str,
    ) -> Result<cobro_invoicing::app::Applied, InvoicingError> {
        self.app
            .apply_payment(
                &self.clerk,
                PaymentIn {
                    payment_id: id.into(),
                    customer_id: customer.into(),
                    amount: amount.into(),
                    currency: currency.into(),
                    method: "transfer".into(),
                    received_on: on.into(),
                    invoice_ids: Vec::new(),
                    installment_id: String::new(),
                },
            )
            .await
    }
}

#[tokio::test]
async fn an_invoice_with_taxes_and_discounts_has_exact_totals_and_a_number_at_issue() {
    let h = harness().await;
    let c = h.customer("Acme", "MXN").await;
    let mut input = invoice_in(
        &c,
        vec![
            // 3 × 100.00 = 300.00, 10% off = 270.00, IVA 16% = 43.20
            LineIn { discount: DiscountInput::Percent("10".into()), ..line("3", "100", &[("IVA", "16", false)]) },
            // 116.00 including 16% IVA: net 100.00, tax 16.00
            line("1", "116", &[("IVA", "16", true)]),
        ],
    );
    input.memo = "Noviembre".into();
    let draft = h.app.create_invoice(&h.clerk, input).await.unwrap();
    let i = &draft.invoice;
    assert_eq!((i.status.as_str(), i.number.as_deref()), ("draft", None));
    assert_eq!((i.subtotal, i.tax_total, i.total, i.balance), (d("370.00"), d("59.20"), d("429.20"), d("429.20")));
    let id = cobro_kit::ids::format("inv", i.id);
    let issued = h.app.issue_invoice(&h.clerk, &id).await.unwrap();
    let year = Utc::now().date_naive().format("%Y").to_string();
    assert_eq!(issued.invoice.number.as_deref(), Some(format!("INV-{year}-000001").as_str()));
    assert_eq!(issued.invoice.due_date, issued.invoice.issue_date.and_then(|d| d.checked_add_days(Days::new(30))));
    // Issued invoices are immutable: issuing again is refused.
    assert_eq!(code(&h.app.issue_invoice(&h.clerk, &id).await.unwrap_err()), "invoice_not_draft");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = 'invoice.issued'")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(events, 1);
    h.db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_issues_get_numbers_one_to_fifty() {
    let h = harness().await;
    let c = h.customer("Acme", "MXN").await;
    let mut drafts = Vec::new();
    for _ in 0..50 {
        let v = h.app.create_invoice(&h.clerk, invoice_in(&c, vec![line("1", "10", &[])])).await.unwrap();
        drafts.push(cobro_kit::ids::format("inv", v.invoice.id));
    }
    let tasks: Vec<_> = drafts
        .into_iter()
        .map(|id| {
            let (app, clerk) = (Arc::clone(&h.app), h.clerk.clone());
            tokio::spawn(async move { app.issue_invoice(&clerk, &id).await.unwrap().invoice.number.unwrap() })
        })
        .collect();
    let mut numbers = Vec::new();
    for t in tasks {
        let n = t.await.unwrap();
        numbers.push(n.rsplit('-').next().unwrap().parse::<u32>().unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=50).collect::<Vec<_>>(), "no gap, no duplicate");
    h.db.drop_schema().await;
}

#[tokio::test]
async fn a_payment_applies_once_overpayment_becomes_credit_and_other_currencies_are_refused() {
    let h = harness().await;
    let c = h.customer("Acme", "MXN").await;
    let old = h.issued(&c, "100.00", "2026-01-10", "2026-02-10").await;
    let new = h.issued(&c, "50.00", "2026-02-10", "2026-03-10").await;

    let first = h.pay("SPEI-0001", &c, "120.00", "MXN", "2026-03-01").await.unwrap();
    assert!(first.applied_now);
    // Oldest first: 100.00 to the old invoice, 20.00 to the new one.
    assert_eq!(first.allocations.iter().map(|a| a.amount).collect::<Vec<_>>(), vec![d("100.00"), d("20.00")]);
    let again = h.pay("SPEI-0001", &c, "120.00", "MXN", "2026-03-01").await.unwrap();
    assert!(!again.applied_now, "the same payment event twice changes nothing");
    let old_v = h.app.invoice(&h.clerk, &old).await.unwrap().invoice;
    let new_v = h.app.invoice(&h.clerk, &new).await.unwrap().invoice;
    assert_eq!((old_v.status.as_str(), old_v.balance), ("paid", d("0")));
    assert_eq!((new_v.status.as_str(), new_v.balance), ("partially_paid", d("30.00")));
    let allocations: i64 = sqlx::query_scalar("SELECT count(*) FROM allocations").fetch_one(&h.db.pool).await.unwrap();
    assert_eq!(allocations, 2);
    assert_eq!(code(&h.pay("SPEI-0001", &c, "999.00", "MXN", "").await.unwrap_err()), "payment_id_reused");

    // Overpayment: 50.00 on a 30.00 balance leaves 20.00 credit.
    let over = h.pay("SPEI-0002", &c, "50.00", "MXN", "").await.unwrap();
    assert_eq!(over.unapplied, d("20.00"));
    let cust = h.app.customer(&h.clerk, &c).await.unwrap();
    assert_eq!(cust.credit_balance, d("20.00"));
    // The credit pays part of the next invoice.
    let third = h.issued(&c, "15.00", "2026-03-10", "2026-04-10").await;
    let used = h.app.apply_customer_credit(&h.clerk, &c, &third).await.unwrap();
    assert_eq!(used.unapplied, d("5.00"));
    assert_eq!(h.app.invoice(&h.clerk, &third).await.unwrap().invoice.status, "paid");

    let err = h.pay("WIRE-USD-1", &c, "10.00", "USD", "").await.unwrap_err();
    assert_eq!(code(&err), "currency_mismatch");
    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE id = 'WIRE-USD-1'")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(payments, 0, "nothing half-written");
    h.db.drop_schema().await;
}

#[tokio::test]
async fn installments_split_exactly_and_payments_go_to_the_oldest_one() {
    let h = harness().await;
    let c = h.customer("Acme", "MXN").await;
    let inv = h.issued(&c, "100.00", "2026-01-31", "2026-01-31").await;
    let v = h
        .app
        .set_installment_plan(&h.clerk, &inv, Plan::Equal { count: 3, first_due: "2026-01-31".into(), every_months: 1 })
        .await
        .unwrap();
    let plan: Vec<(String, Decimal)> = v.installments.iter().map(|s| (s.due_date.to_string(), s.amount)).collect();
    assert_eq!(
        plan,
        vec![
            ("2026-01-31".to_owned(), d("33.33")),
            ("2026-02-28".to_owned(), d("33.33")),
            ("2026-03-31".to_owned(), d("33.34"))
        ]
    );
    let paid = h.pay("CASH-1", &c, "40.00", "MXN", "2026-02-01").await.unwrap();
    assert_eq!(paid.allocations.iter().map(|a| a.amount).collect::<Vec<_>>(), vec![d("33.33"), d("6.67")]);
    let v = h.app.invoice(&h.clerk, &inv).await.unwrap();
    assert_eq!(v.installments.iter().map(|s| s.balance).collect::<Vec<_>>(), vec![d("0"), d("26.66"), d("33.34")]);
    // Readers learn which installment each part reached.
    let envelopes: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT envelope FROM outbox WHERE event_type = 'invoice.payment_applied' ORDER BY seq")
            .fetch_all(&h.db.pool)
            .await
            .unwrap();
    let applied: Vec<(String, String, String)> = envelopes
        .iter()
        .map(|bytes| {
            let envelope = Envelope::decode(bytes.as_slice()).unwrap();
            let e = PaymentApplied::decode(envelope.payload.as_slice()).unwrap();
            (e.installment_id, e.amount.unwrap().amount, e.balance.unwrap().amount)
        })
        .collect();
    let ids: Vec<String> = v.installments.iter().map(|s| cobro_kit::ids::format("ins", s.id)).collect();
    assert_eq!(
        applied,
        vec![
            (ids[0].clone(), "33.33".to_owned(), "60.00".to_owned()),
            (ids[1].clone(), "6.67".to_owned(), "60.00".to_owned())
        ]
    );

    // Explicit plans must add up.
    let other = h.issued(&c, "100.00", "2026-01-31", "2026-01-31").await;
    let err = h
        .app
        .set_installment_plan(
            &h.clerk,
            &other,
            Plan::Explicit(vec![("2026-02-15".into(), "60.00".into()), ("2026-03-15".into(), "39.99".into())]),
        )
        .await
        .unwrap_err();
    assert_eq!(field(&err).as_deref(), Some("installments"));

    // A credit note takes from the end of the plan.
    let (_, number, amount, _, _) = h.app.issue_credit_note(&h.clerk, &inv, "30.00", "damaged goods").await.unwrap();
    assert!(number.starts_with("CN-"));
    assert_eq!(amount, d("30.00"));
    let v = h.app.invoice(&h.clerk, &inv).await.unwrap();
    assert_eq!(v.invoice.balance, d("30.00"));
    assert_eq!(v.installments.iter().map(|s| s.balance).collect::<Vec<_>>(), vec![d("0"), d("26.66"), d("3.34")]);
    assert_eq!(
        field(&h.app.issue_credit_note(&h.clerk, &inv, "30.01", "x").await.unwrap_err()).as_deref(),
        Some("amount")
    );
    h.db.drop_schema().await;
}

#[tokio::test]
async fn aging_and_dso_match_figures_worked_out_by_hand() {
    let h = harness().await;
    let c = h.customer("Acme", "MXN").await;
    h.issued(&c, "100.00", "2026-06-15", "2026-07-15").await; // current on 06-30
    let b = h.issued(&c, "200.00", "2026-05-21", "2026-06-20").await; // 10 days late
    h.issued(&c, "300.00", "2026-04-15", "2026-05-15").await; // 46 days: 31-60
    h.issued(&c, "400.00", "2026-03-16", "2026-04-15").await; // 76 days: 61-90
    h.issued(&c, "500.00", "2026-01-30", "2026-03-01").await; // 121 days: 90+
    // The customer names the invoice it pays.
    h.app
        .apply_payment(
            &h.clerk,
            PaymentIn {
                payment_id: "SPEI-B".into(),
                customer_id: c.clone(),
                amount: "200.00".into(),
                currency: "MXN".into(),
                method: "transfer".into(),
                received_on: "2026-06-25".into(),
                invoice_ids: vec![b.clone()],
                installment_id: String::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(h.app.invoice(&h.clerk, &b).await.unwrap().invoice.status, "paid");

    let (_, tenant, customers) = h.app.aging(&h.clerk, "MXN", "2026-06-30").await.unwrap();
    assert_eq!(
        (tenant.current, tenant.d1_30, tenant.d31_60, tenant.d61_90, tenant.over_90, tenant.total),
        (d("100.00"), d("0"), d("300.00"), d("400.00"), d("500.00"), d("1300.00"))
    );
    assert_eq!(customers.len(), 1);

    // April–June (91 days): sales 100 + 200 + 300 = 600; AR at 06-30 = 1300.
    // DSO = 1300 / 600 × 91 = 197.17 → 197.2.
    // Beginning AR (03-31) = 400 + 500 = 900; ending current (due ≥ 06-30) = 100.
    // CEI = (900 + 600 − 1300) / (900 + 600 − 100) × 100 = 200 / 1400 × 100 = 14.29 → 14.3.
    let (dso, cei, ending, sales) = h.app.dso(&h.clerk, "MXN", "2026-04-01", "2026-06-30").await.unwrap();
    assert_eq!((dso, cei, ending, sales), (Some(d("197.2")), Some(d("14.3")), d("1300.00"), d("600.00")));
    h.db.drop_schema().await;
}

#[tokio::test]
async fn the_forecast_shifts_due_dates_by_each_customers_average_delay() {
    let h = harness().await;
    let today = Utc::now().date_naive();
    let day = |offset: i64| (today + chrono::Duration::days(offset)).to_string();
    let late = h.customer("Late Payer", "MXN").await;
    let fresh = h.customer("New Customer", "MXN").await;
    // History: due 10 days ago, paid 3 days ago: 7 days late.
    h.issued(&late, "50.00", &day(-40), &day(-10)).await;
    h.pay("HIST-1", &late, "50.00", "MXN", &day(-3)).await.unwrap();
    h.issued(&late, "100.00", &day(-20), &day(7)).await; // expected day 14: week 2
    h.issued(&fresh, "200.00", &day(-10), &day(20)).await; // no history: day 20, week 2
    h.issued(&fresh, "300.00", &day(-60), &day(-30)).await; // overdue: week 0
    h.issued(&fresh, "400.00", &day(-1), &day(100)).await; // beyond 12 weeks: dropped
    let weeks = h.app.forecast(&h.clerk, "MXN", 0).await.unwrap();
    assert_eq!(weeks.len(), 12);
    let expected: Vec<Decimal> = weeks.iter().map(|w| w.expected).collect();
    assert_eq!(expected[0], d("300.00"));
    assert_eq!(expected[1], d("0"));
    assert_eq!(expected[2], d("300.00"));
    assert_eq!(expected.iter().sum::<Decimal>(), d("600.00"));
    h.db.drop_schema().await;
}

#[tokio::test]
async fn another_tenants_ids_answer_not_found() {
    let h = harness().await;
    let c = h.customer("Acme", "MXN").await;
    let inv = h.issued(&c, "100.00", "2026-01-10", "2026-02-10").await;
    let other = h.issuer.principal(Uuid::now_v7(), PrincipalKind::User, ALL);
    assert_eq!(code(&h.app.customer(&other, &c).await.unwrap_err()), "not_found");
    assert_eq!(code(&h.app.invoice(&other, &inv).await.unwrap_err()), "not_found");
    assert_eq!(code(&h.app.issue_invoice(&other, &inv).await.unwrap_err()), "not_found");
    assert_eq!(code(&h.app.void_invoice(&other, &inv, "x").await.unwrap_err()), "not_found");
    assert_eq!(code(&h.app.issue_credit_note(&other, &inv, "", "x").await.unwrap_err()), "not_found");
    assert_eq!(
        code(&h.app.create_invoice(&other, invoice_in(&c, vec![line("1", "1", &[])])).await.unwrap_err()),
        "not_found"
    );
    let err = h
        .app
        .apply_payment(
            &other,
            PaymentIn {
                payment_id: "X".into(),
                customer_id: c.clone(),
                amount: "1.00".into(),
                currency: "MXN".into(),
                method: "cash".into(),
                received_on: String::new(),
                invoice_ids: Vec::new(),
                installment_id: String::new(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), "not_found");
    assert!(h.app.invoices(&other, "", "", 50, None).await.unwrap().is_empty());
    // Untouched for its owner.
    assert_eq!(h.app.invoice(&h.clerk, &inv).await.unwrap().invoice.status, "open");
    h.db.drop_schema().await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let h = harness().await;
    let c = h.customer("Acme", "MXN").await;
    let cases: Vec<(NewInvoice, &str)> = vec![
        (invoice_in(&c, vec![line("-1", "10", &[])]), "lines[0].quantity"),
        (invoice_in(&c, vec![line("1", "10.12345", &[])]), "lines[0].unit_price"),
        (invoice_in(&c, vec![]), "lines"),
        (NewInvoice { currency: "XYZ".into(), ..invoice_in(&c, vec![line("1", "10", &[])]) }, "currency"),
        (
            NewInvoice {
                issue_date: "2026-05-10".into(),
                due_date: "2026-05-01".into(),
                ..invoice_in(&c, vec![line("1", "10", &[])])
            },
            "due_date",
        ),
        (NewInvoice { due_date: "31/12/2026".into(), ..invoice_in(&c, vec![line("1", "10", &[])]) }, "due_date"),
        (invoice_in("inv_00000000000000000000000000000000", vec![line("1", "10", &[])]), "customer_id"),
    ];
    for (input, expected) in cases {
        let err = h.app.create_invoice(&h.clerk, input).await.unwrap_err();
        assert_eq!(code(&err), "invalid_argument", "{expected}: {err}");
        assert_eq!(field(&err).as_deref(), Some(expected));
    }
    let invoices: i64 = sqlx::query_scalar("SELECT count(*) FROM invoices").fetch_one(&h.db.pool).await.unwrap();
    assert_eq!(invoices, 0);
    for (input, expected) in [
        (CustomerIn { legal_name: String::new(), ..customer_in("x", "MXN") }, "customer.legal_name"),
        (CustomerIn { currency: "pesos".into(), ..customer_in("x", "MXN") }, "customer.currency"),
        (CustomerIn { payment_terms_days: 1000, ..customer_in("x", "MXN") }, "customer.payment_terms_days"),
        (CustomerIn { tax_country: "Mexico".into(), ..customer_in("x", "MXN") }, "customer.tax_country"),
    ] {
        assert_eq!(field(&h.app.upsert_customer(&h.clerk, "", input).await.unwrap_err()).as_deref(), Some(expected));
    }
    // An ERP upserts by external id: the second call updates the same customer.
    let a = h
        .app
        .upsert_customer(&h.clerk, "", CustomerIn { external_id: "SAP-1".into(), ..customer_in("First", "MXN") })
        .await
        .unwrap();
    let b = h
        .app
        .upsert_customer(&h.clerk, "", CustomerIn { external_id: "SAP-1".into(), ..customer_in("Renamed", "MXN") })
        .await
        .unwrap();
    assert_eq!((a.id, b.legal_name.as_str()), (b.id, "Renamed"));
    h.db.drop_schema().await;
}

#[tokio::test]
async fn payment_behaviour_and_write_offs() {
    let h = harness().await;
    let c = h.customer("Acme", "MXN").await;
    // 100.00 issued 01-01, due 01-31, paid 02-10 (40 days, 10 late);
    // 300.00 issued 02-01, due 03-03, paid 03-03 (30 days, on time).
    // Weighted: days (100×40 + 300×30) / 400 = 32.5; delay (100×10 + 300×0) / 400 = 2.5 → 3.
    let a = h.issued(&c, "100.00", "2026-01-01", "2026-01-31").await;
    h.pay("P-A", &c, "100.00", "MXN", "2026-02-10").await.unwrap();
    let b = h.issued(&c, "300.00", "2026-02-01", "2026-03-03").await;
    h.pay("P-B", &c, "300.00", "MXN", "2026-03-03").await.unwrap();
    let _ = (a, b);
    let rows = h.app.payment_behaviour(&h.clerk, "MXN").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].1, rows[0].2), (d("32.5"), 3));

    let bad = h.issued(&c, "80.00", "2026-01-01", "2026-01-31").await;
    let v = h.app.mark_uncollectible(&h.clerk, &bad, "customer went out of business").await.unwrap();
    assert_eq!(v.invoice.status, "uncollectible");
    let (_, tenant, _) = h.app.aging(&h.clerk, "MXN", "2026-06-30").await.unwrap();
    assert_eq!(tenant.total, d("0"), "written-off invoices leave the aging");
    assert_eq!(code(&h.app.mark_uncollectible(&h.clerk, &bad, "again").await.unwrap_err()), "invoice_not_open");
    h.db.drop_schema().await;
}

#[tokio::test]
async fn money_is_never_refused_or_stranded() {
    let h = harness().await;
    let c = h.customer("Acme", "MXN").await;
    let paid = h.issued(&c, "100.00", "2026-01-10", "2026-02-10").await;
    let open = h.issued(&c, "50.00", "2026-01-20", "2026-02-20").await;
    h.pay("P-1", &c, "100.00", "MXN", "2026-02-01").await.unwrap();
    // The customer pays the first invoice a second time: the money lands on the other one.
    let again = h
        .app
        .apply_payment(
            &h.clerk,
            PaymentIn {
                payment_id: "P-2".into(),
                customer_id: c.clone(),
                amount: "100.00".into(),
                currency: "MXN".into(),
                method: "transfer".into(),
                received_on: "2026-02-05".into(),
                invoice_ids: vec![paid.clone()],
                installment_id: String::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!((again.allocations.len(), again.unapplied), (1, d("50.00")));
    assert_eq!(h.app.invoice(&h.clerk, &open).await.unwrap().invoice.status, "paid");

    // Currency stays consistent: no invoice in another currency, no switch with credit open.
    let mut other = invoice_in(&c, vec![line("1", "10", &[])]);
    other.currency = "USD".into();
    assert_eq!(field(&h.app.create_invoice(&h.clerk, other).await.unwrap_err()).as_deref(), Some("currency"));
    let switch = h.app.upsert_customer(&h.clerk, &c, customer_in("Acme", "USD")).await.unwrap_err();
    assert_eq!(field(&switch).as_deref(), Some("customer.currency"));

    // A credited invoice cannot be voided (the credit would outlive its charge).
    let credited = h.issued(&c, "80.00", "2026-03-01", "2026-04-01").await;
    h.app.issue_credit_note(&h.clerk, &credited, "10.00", "discount agreed").await.unwrap();
    assert_eq!(code(&h.app.void_invoice(&h.clerk, &credited, "mistake").await.unwrap_err()), "invoice_not_voidable");
    h.db.drop_schema().await;
}

//! The statement of account as a PDF: read exactly as the statement itself (staff with
//! customers:read, a portal contact for their own customer only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cobro_invoicing::app::{CustomerIn, DiscountInput, Invoicing, LineIn, NewInvoice, PaymentIn};
use cobro_kit::auth::{Principal, PrincipalKind, TestIssuer};
use cobro_kit::error::DomainError;
use cobro_kit::testing::TestDb;
use uuid::Uuid;

const STAFF: &[&str] = &["customers:read", "customers:write", "invoices:read", "invoices:write", "payments:write"];

fn invoice_for(customer: &str, amount: &str, issue: &str) -> NewInvoice {
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
        issue_date: issue.into(),
        due_date: String::new(),
    }
}

fn contact_of(issuer: &TestIssuer, tenant: Uuid, customer: &str) -> Principal {
    let mut p = issuer.principal(tenant, PrincipalKind::Customer, &["portal:pay", "portal:read"]);
    p.customer_id = Some(cobro_kit::ids::parse("c", "cus", customer).unwrap());
    p
}

#[tokio::test]
async fn a_statement_prints_as_a_pdf_for_staff_and_for_its_own_contact_only() {
    let db = TestDb::new(&cobro_invoicing::migrator()).await;
    let app = Invoicing::new(db.pool.clone());
    let issuer = TestIssuer::new();
    let clerk = issuer.principal(Uuid::now_v7(), PrincipalKind::User, STAFF);
    let mut customers = Vec::new();
    for name in ["Ferretería del Norte", "Materiales Sánchez"] {
        let c = app.upsert_customer(&clerk, "", CustomerIn::basic(name, "MXN")).await.unwrap();
        customers.push(cobro_kit::ids::format("cus", c.id));
    }
    let (mine, theirs) = (&customers[0], &customers[1]);
    for (amount, issue) in [("1000.00", "2026-09-05"), ("400.00", "2026-10-05")] {
        let v = app.create_invoice(&clerk, invoice_for(mine, amount, issue)).await.unwrap();
        app.issue_invoice(&clerk, &cobro_kit::ids::format("inv", v.invoice.id)).await.unwrap();
    }
    app.apply_payment(
        &clerk,
        PaymentIn {
            payment_id: "SPEI-77".into(),
            customer_id: mine.clone(),
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

    let (name, pdf) = app.statement_pdf(&clerk, mine, "2026-10-01", "2026-12-31").await.unwrap();
    assert_eq!(name, format!("statement-{mine}-2026-10-01-2026-12-31.pdf"));
    assert!(pdf.starts_with(b"%PDF-1.4") && pdf.ends_with(b"%%EOF\n"));
    let text = String::from_utf8_lossy(&pdf);
    for expected in [
        "(Statement of account)",
        "(Ferreter\\355a del Norte)",
        "(Opening balance)",
        "(1000.00 MXN)",
        "(400.00)",
        "(SPEI-77)",
        "(Payment)",
        "(Closing balance)",
        "(400.00 MXN)",
    ] {
        assert!(text.contains(expected), "missing {expected}");
    }

    // A contact prints their own customer's statement; another customer's is not found.
    let contact = contact_of(&issuer, clerk.tenant_id, mine);
    let (_, own) = app.statement_pdf(&contact, mine, "2026-10-01", "2026-12-31").await.unwrap();
    assert!(own.starts_with(b"%PDF"));
    let err = app.statement_pdf(&contact, theirs, "2026-10-01", "2026-12-31").await.unwrap_err();
    assert_eq!(err.code(), "not_found");
    // The period is checked as for the statement.
    let err = app.statement_pdf(&clerk, mine, "2026-12-31", "2026-10-01").await.unwrap_err();
    assert_eq!(err.code(), "invalid_argument");
    // Staff without customers:read print nothing.
    let stranger = issuer.principal(clerk.tenant_id, PrincipalKind::User, &["invoices:read"]);
    let err = app.statement_pdf(&stranger, mine, "2026-10-01", "2026-12-31").await.unwrap_err();
    assert_eq!(err.code(), "permission_denied");
    db.drop_schema().await;
}

//! What a portal contact may read at invoicing: their own customer, its issued invoices (one
//! by one and listed), never drafts, never another customer's; anything else answers NotFound
//! exactly as another tenant's ids do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cobro_invoicing::app::{CustomerIn, DiscountInput, Invoicing, LineIn, NewInvoice};
use cobro_kit::auth::{Principal, PrincipalKind, TestIssuer};
use cobro_kit::error::DomainError;
use cobro_kit::testing::TestDb;
use uuid::Uuid;

const STAFF: &[&str] = &["customers:read", "customers:write", "invoices:read", "invoices:write"];

fn invoice_for(customer: &str) -> NewInvoice {
    NewInvoice {
        customer_id: customer.into(),
        external_id: String::new(),
        currency: String::new(),
        lines: vec![LineIn {
            description: "Varilla corrugada 3/8".into(),
            quantity: "10".into(),
            unit_price: "189.50".into(),
            discount: DiscountInput::None,
            taxes: Vec::new(),
        }],
        discount: DiscountInput::None,
        memo: String::new(),
        issue_date: String::new(),
        due_date: String::new(),
    }
}

fn contact_of(issuer: &TestIssuer, tenant: Uuid, customer: &str) -> Principal {
    let mut p = issuer.principal(tenant, PrincipalKind::Customer, &["portal:pay", "portal:read"]);
    p.customer_id = Some(cobro_kit::ids::parse("c", "cus", customer).unwrap());
    p
}

#[tokio::test]
async fn a_contact_reads_only_their_own_customers_issued_invoices() {
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
    let issued = app.create_invoice(&clerk, invoice_for(mine)).await.unwrap();
    let issued = cobro_kit::ids::format("inv", issued.invoice.id);
    app.issue_invoice(&clerk, &issued).await.unwrap();
    let draft = cobro_kit::ids::format("inv", app.create_invoice(&clerk, invoice_for(mine)).await.unwrap().invoice.id);
    let other = app.create_invoice(&clerk, invoice_for(theirs)).await.unwrap();
    let other = cobro_kit::ids::format("inv", other.invoice.id);
    app.issue_invoice(&clerk, &other).await.unwrap();

    let contact = contact_of(&issuer, clerk.tenant_id, mine);
    assert_eq!(app.invoice(&contact, &issued).await.unwrap().invoice.total.to_string(), "1895.00");
    assert_eq!(app.invoice(&contact, &other).await.unwrap_err().code(), "not_found", "another customer's invoice");
    assert_eq!(
        app.invoice(&contact, &draft).await.unwrap_err().code(),
        "not_found",
        "a draft is not theirs to see yet"
    );
    assert_eq!(app.customer(&contact, mine).await.unwrap().legal_name, "Ferretería del Norte");
    assert_eq!(app.customer(&contact, theirs).await.unwrap_err().code(), "not_found");

    // Listing without a customer lists theirs only; naming another customer finds nothing.
    let listed = app.invoices(&contact, "", "", 50, None).await.unwrap();
    let ids: Vec<String> = listed.iter().map(|i| cobro_kit::ids::format("inv", i.id)).collect();
    assert_eq!(ids, vec![issued.clone()]);
    assert_eq!(app.invoices(&contact, theirs, "", 50, None).await.unwrap_err().code(), "not_found");
    assert!(app.invoices(&contact, "", "draft", 50, None).await.unwrap().is_empty());
    let pdf = app.invoice_pdf(&contact, &issued).await.unwrap().1;
    assert!(pdf.starts_with(b"%PDF"));
    assert_eq!(app.invoice_pdf(&contact, &other).await.unwrap_err().code(), "not_found");

    // Staff still see everything, drafts included.
    assert_eq!(app.invoices(&clerk, "", "", 50, None).await.unwrap().len(), 3);
    // A contact without portal:read reads nothing.
    let mut mute = contact.clone();
    mute.permissions.remove("portal:read");
    assert_eq!(app.invoice(&mute, &issued).await.unwrap_err().code(), "permission_denied");
    db.drop_schema().await;
}

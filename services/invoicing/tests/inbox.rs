//! Staff's inbox of hardship requests and disputes: open and resolved, one tenant's only,
//! paged, and closed to portal contacts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use cobro_invoicing::app::{CustomerIn, DiscountInput, Invoicing, LineIn, NewInvoice};
use cobro_invoicing::requests::{dispute_id, request_id};
use cobro_kit::auth::{Principal, PrincipalKind, TestIssuer};
use cobro_kit::testing::TestDb;
use uuid::Uuid;

const ALL: &[&str] = &["customers:read", "customers:write", "invoices:read", "invoices:write"];

struct Tenant {
    clerk: Principal,
    contact: Principal,
    customer: String,
}

async fn tenant(app: &Invoicing, issuer: &TestIssuer) -> Tenant {
    let clerk = issuer.principal(Uuid::now_v7(), PrincipalKind::User, ALL);
    let c = app.upsert_customer(&clerk, "", CustomerIn::basic("Papelería Central", "MXN")).await.unwrap();
    let mut contact = issuer.principal(clerk.tenant_id, PrincipalKind::Customer, &["portal:pay", "portal:read"]);
    contact.customer_id = Some(c.id);
    Tenant { clerk, contact, customer: cobro_kit::ids::format("cus", c.id) }
}

async fn issued(app: &Invoicing, t: &Tenant, amount: &str) -> String {
    let input = NewInvoice {
        customer_id: t.customer.clone(),
        external_id: String::new(),
        currency: String::new(),
        lines: vec![LineIn {
            description: "Papel bond".into(),
            quantity: "1".into(),
            unit_price: amount.into(),
            discount: DiscountInput::None,
            taxes: Vec::new(),
        }],
        discount: DiscountInput::None,
        memo: String::new(),
        issue_date: "2026-11-01".into(),
        due_date: "2026-11-30".into(),
    };
    let v = app.create_invoice(&t.clerk, input).await.unwrap();
    let id = cobro_kit::ids::format("inv", v.invoice.id);
    app.issue_invoice(&t.clerk, &id).await.unwrap();
    id
}

#[tokio::test]
async fn the_inbox_lists_one_tenants_requests_open_and_resolved() {
    let db = TestDb::new(&cobro_invoicing::migrator()).await;
    let app = Arc::new(Invoicing::new(db.pool.clone()));
    let issuer = TestIssuer::new();
    let ours = tenant(&app, &issuer).await;
    let theirs = tenant(&app, &issuer).await;

    let a = issued(&app, &ours, "900.00").await;
    let b = issued(&app, &ours, "500.00").await;
    let hardship =
        app.request_hardship(&ours.contact, &a, "slow quarter", 3, "2026-12-15", "three months").await.unwrap();
    let dispute = app.open_dispute(&ours.contact, &b, "two boxes arrived wet").await.unwrap();
    // Another tenant's requests never show.
    let x = issued(&app, &theirs, "100.00").await;
    let foreign = app.request_hardship(&theirs.contact, &x, "not ours", 2, "2026-12-15", "").await.unwrap();
    app.open_dispute(&theirs.contact, &x, "not ours either").await.unwrap();

    let all = app.requests(&ours.clerk, "", "", 50, None).await.unwrap();
    let ids: Vec<Uuid> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![hardship, dispute], "oldest first, only this tenant's");
    assert!(!ids.contains(&foreign));
    let h = &all[0];
    assert_eq!(
        (h.kind.as_str(), h.state.as_str(), h.installments, h.note.as_str()),
        ("hardship", "open", Some(3), "three months")
    );
    assert_eq!(h.first_date.map(|d| d.to_string()).as_deref(), Some("2026-12-15"));
    assert_eq!(h.balance.to_string(), "900.00");
    assert_eq!(cobro_kit::ids::format("cus", h.customer_id), ours.customer);
    assert_eq!((all[1].kind.as_str(), all[1].reason.as_str()), ("dispute", "two boxes arrived wet"));

    // Resolved ones move from the open list to the resolved one.
    app.resolve_hardship(&ours.clerk, &request_id(hardship), true, "agreed").await.unwrap();
    let open = app.requests(&ours.clerk, "", "open", 50, None).await.unwrap();
    assert_eq!(open.iter().map(|r| r.id).collect::<Vec<_>>(), vec![dispute]);
    let resolved = app.requests(&ours.clerk, "", "resolved", 50, None).await.unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!((resolved[0].state.as_str(), resolved[0].resolution_note.as_str()), ("accepted", "agreed"));
    assert!(resolved[0].resolved_at.is_some());
    app.resolve_dispute(&ours.clerk, &dispute_id(dispute), "", "photos show dry boxes").await.unwrap();
    assert!(app.requests(&ours.clerk, "", "open", 50, None).await.unwrap().is_empty());
    let disputes = app.requests(&ours.clerk, "dispute", "", 50, None).await.unwrap();
    assert_eq!(disputes.iter().map(|r| r.state.as_str()).collect::<Vec<_>>(), vec!["rejected"]);

    // Pages of one, by the last id seen.
    let first = app.requests(&ours.clerk, "", "", 1, None).await.unwrap();
    let second = app.requests(&ours.clerk, "", "", 1, Some(first[0].id)).await.unwrap();
    assert_eq!((first[0].id, second[0].id), (hardship, dispute));
    assert!(app.requests(&ours.clerk, "", "", 1, Some(dispute)).await.unwrap().is_empty());

    // Contacts and people without invoices:read get nothing; bad filters name the field.
    use cobro_kit::error::DomainError;
    assert_eq!(app.requests(&ours.contact, "", "", 50, None).await.unwrap_err().code(), "permission_denied");
    let viewer = issuer.principal(ours.clerk.tenant_id, PrincipalKind::User, &["customers:read"]);
    assert_eq!(app.requests(&viewer, "", "", 50, None).await.unwrap_err().code(), "permission_denied");
    let bad = app.requests(&ours.clerk, "refund", "", 50, None).await.unwrap_err();
    assert!(bad.to_string().contains("kind"), "{bad}");
    let bad = app.requests(&ours.clerk, "", "closed", 50, None).await.unwrap_err();
    assert!(bad.to_string().contains("state"), "{bad}");
    db.drop_schema().await;
}

//! The platform starts as one product: a tenant with 2FA-protected staff, a customer with a
//! portal contact and an issued invoice, and both kinds of person can sign in to the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cobro_e2e::platform::Platform;
use cobro_e2e::web::{Web, csrf};
use cobro_proto::identity::v1 as idpb;
use cobro_proto::invoicing::v1 as invpb;

#[tokio::test]
async fn staff_and_contacts_sign_in_and_see_their_own_side() {
    let platform = Platform::start().await;
    let tenant = platform.tenant().await;
    let customer = platform.customer(&tenant, "Constructora Álamo S.A.", "es").await;
    let invoice = platform.open_invoice(&tenant, &customer, "1500.00").await;
    let issued = platform
        .invoicing_client()
        .get_invoice(tenant.staff(invpb::GetInvoiceRequest { id: invoice.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((issued.status.as_str(), issued.balance.unwrap().amount.as_str()), ("open", "1500.00"));

    let staff = Web::new(&platform.gateway_url);
    staff.sign_in_staff(&tenant).await;
    assert_eq!(staff.get("/").await.location.as_deref(), Some("/console"));

    let contact = Web::new(&platform.gateway_url);
    let form = contact.get("/signin").await;
    let wrong = contact
        .post(
            "/signin",
            &[
                ("csrf_token", &csrf(&form.body)),
                ("tenant", &tenant.slug),
                ("email", &customer.email),
                ("password", "not it"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    contact.sign_in_contact(&tenant, &customer).await;
    // Identity recorded each attempt under the end user's address, which only the gateway,
    // signed in as itself, may state: per-address limits count people, not the gateway.
    let audit = platform
        .identity_client()
        .list_audit_events(tenant.staff(idpb::ListAuditEventsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .events;
    let attempts: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e.action.starts_with("login."))
        .map(|e| (e.action.as_str(), e.client_ip.as_str()))
        .filter(|(_, ip)| *ip == contact.address())
        .collect();
    assert_eq!(attempts.len(), 2, "{audit:?}");
    assert_eq!(contact.get("/").await.location.as_deref(), Some("/portal"));
    assert!(contact.get("/account").await.body.contains("<html lang=\"es\""), "a Spanish contact reads Spanish");

    // A contact who prefers English is written to in English from sign-in on, until they
    // pick another language with the switch.
    let english = platform.customer(&tenant, "Northwind Supply LLC", "en").await;
    let reader = Web::new(&platform.gateway_url);
    reader.sign_in_contact(&tenant, &english).await;
    assert!(reader.get("/account").await.body.contains("<html lang=\"en\""), "their preference is used");
    assert!(reader.get("/account?lang=es").await.body.contains("<html lang=\"es\""), "the switch wins");
    assert!(reader.get("/account").await.body.contains("<html lang=\"es\""), "and is remembered");
    platform.stop().await;
}

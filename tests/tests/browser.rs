//! The product as people use it, in headless Chromium against the whole platform: staff and
//! contacts sign in, pay, ask for time, confirm bank matches, and pay links without an
//! account. Every step leaves screenshots at desktop width and at 360 px in
//! `artifacts/screenshots/<journey>/`, and at 360 px no page may scroll sideways.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cobro_e2e::platform::{Platform, Tenant};
use cobro_e2e::webdriver::Browser;
use cobro_kit::testing::eventually;
use cobro_proto::payments::v1 as paypb;
use cobro_proto::payments::v1::payments_service_client::PaymentsServiceClient;

/// A card the sandbox answers with a 3-D Secure challenge.
const CHALLENGE_CARD: &str = "4000 0000 0000 3220";

async fn sign_in_staff(b: &mut Browser, platform: &Platform, tenant: &Tenant) {
    b.open(&format!("{}/signin?lang=en", platform.gateway_url)).await;
    b.fill("#tenant", &tenant.slug).await;
    b.fill("#email", &tenant.owner_email).await;
    b.fill("#password", &tenant.password).await;
    b.snap("signin").await;
    b.click("form button[type=submit]").await;
    b.find("#code").await;
    b.fill("#code", &tenant.totp().await).await;
    b.snap("second-factor").await;
    b.click("form button[type=submit]").await;
}

/// A payment link opened by someone without an account: they see only the amount, pay with
/// a card that asks for 3-D Secure, approve the challenge and land back on the link, paid.
#[tokio::test]
async fn a_payment_link_is_paid_without_signing_in() {
    let platform = Platform::start().await;
    let tenant = platform.tenant().await;
    let customer = platform.customer(&tenant, "Ferretería La Esperanza", "es").await;
    let invoice = platform.open_invoice(&tenant, &customer, "2480.00").await;
    let mut payments = PaymentsServiceClient::new(platform.payments.clone());
    // Payments learns of the invoice from invoicing's events.
    let created = eventually(Duration::from_secs(30), || {
        let (mut payments, customer, invoice) = (payments.clone(), customer.id.clone(), invoice.clone());
        let request = tenant.staff(paypb::CreatePaymentLinkRequest {
            idempotency_key: format!("link-{invoice}"),
            customer_id: customer,
            invoice_id: invoice,
            ..Default::default()
        });
        async move { payments.create_payment_link(request).await.is_ok() }
    })
    .await;
    assert!(created, "payments never learned of the issued invoice");
    let link = payments
        .create_payment_link(tenant.staff(paypb::CreatePaymentLinkRequest {
            idempotency_key: format!("link-{invoice}"),
            customer_id: customer.id.clone(),
            invoice_id: invoice.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let token = link.token;
    assert!(token.starts_with("pl_"), "the same idempotency key answers the same link with its token");

    let mut b = Browser::start("payment-link").await;
    b.open(&format!("{}/pay/{token}?lang=es", platform.gateway_url)).await;
    let page = b.source().await;
    assert!(page.contains("2.480,00 MXN"), "the link shows what is due, in Spanish:\n{page}");
    assert!(!page.contains(&customer.email) && !page.contains("Ferretería"), "a link shows nothing beyond the payment");
    b.snap("link").await;

    b.fill("#pan", CHALLENGE_CARD).await;
    b.fill("#exp_month", "12").await;
    b.fill("#exp_year", "2031").await;
    b.fill("#holder_name", "Luis Ortega").await;
    b.click("#pay").await;
    b.find("#approve").await;
    assert!(b.url().await.contains("/sandbox/3ds/"), "the card asked for 3-D Secure");
    b.snap("challenge").await;
    b.click("#approve").await;
    assert!(b.reload_until("link-paid", 30).await, "the link shows paid: {}", b.source().await);
    assert!(b.url().await.ends_with(&format!("/pay/{token}")));
    b.snap("paid").await;
    b.close().await;

    // A token nobody issued shows nothing.
    let unknown = cobro_e2e::web::Web::new(&platform.gateway_url)
        .get("/pay/pl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(unknown.status, 404);
    platform.stop().await;
}

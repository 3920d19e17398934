//! The product as people use it, in headless Chromium against the whole platform: staff and
//! contacts sign in, pay, ask for time, confirm bank matches, and pay links without an
//! account. Every step leaves screenshots at desktop width and at 360 px in
//! `artifacts/screenshots/<journey>/`, and at 360 px no page may scroll sideways.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cobro_e2e::platform::{Customer, Platform, Tenant};
use cobro_e2e::statements::{Credit, camt053};
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
    b.leave("/signin").await;
}

async fn sign_in_contact(b: &mut Browser, platform: &Platform, tenant: &Tenant, customer: &Customer) {
    b.open(&format!("{}/signin", platform.gateway_url)).await;
    b.fill("#tenant", &tenant.slug).await;
    b.fill("#email", &customer.email).await;
    b.fill("#password", &customer.password).await;
    b.click("form button[type=submit]").await;
    b.leave("/signin").await;
}

/// Staff signs in with a TOTP code and issues an invoice from the console; the customer's
/// contact signs in to the portal, pays it with a sandbox card that asks for 3-D Secure,
/// approves the challenge, and sees it paid.
#[tokio::test]
async fn staff_issues_an_invoice_and_the_contact_pays_it_through_3d_secure() {
    let platform = Platform::start().await;
    let tenant = platform.tenant().await;
    let customer = platform.customer(&tenant, "Constructora Álamo S.A. de C.V.", "es").await;

    let mut staff = Browser::start("staff-issues-contact-pays/staff").await;
    sign_in_staff(&mut staff, &platform, &tenant).await;
    assert!(staff.url().await.ends_with("/console"), "staff land on the console: {}", staff.url().await);
    staff.snap("console").await;
    staff.open(&format!("{}/console/invoices", platform.gateway_url)).await;
    staff.fill("#description_0", "Cemento gris 50 kg").await;
    staff.fill("#quantity_0", "40").await;
    staff.fill("#unit_price_0", "215.50").await;
    staff.fill("#tax_rate_0", "16").await;
    staff.snap("new-invoice").await;
    staff.click("form[method='post'][action='/console/invoices'] button[type=submit]").await;
    staff.find("form[action$='/issue'] button").await;
    staff.click("form[action$='/issue'] button").await;
    // 40 × 215.50 = 8,620.00 + 16% IVA 1,379.20 = 9,999.20
    assert!(staff.reload_until("INV-", 10).await, "issued invoices get their number:\n{}", staff.source().await);
    assert!(staff.source().await.contains("9,999.20"), "the total with IVA");
    staff.snap("issued").await;
    staff.close().await;

    let mut contact = Browser::start("staff-issues-contact-pays/contact").await;
    sign_in_contact(&mut contact, &platform, &tenant, &customer).await;
    assert!(contact.url().await.ends_with("/portal"));
    assert!(contact.reload_until("9.999,20", 30).await, "the dashboard shows what is due, in Spanish");
    contact.snap("dashboard").await;
    contact.open(&format!("{}/portal/invoices", platform.gateway_url)).await;
    contact.click("main a[href^='/portal/invoices/inv_']").await;
    contact.find("form[action='/portal/pay'] button").await;
    contact.snap("invoice").await;
    contact.click("form[action='/portal/pay'] button").await;
    contact.fill("#pan", CHALLENGE_CARD).await;
    contact.fill("#exp_month", "12").await;
    contact.fill("#exp_year", "2031").await;
    contact.fill("#holder_name", "Luis Ortega").await;
    contact.snap("pay").await;
    contact.click("#pay").await;
    contact.find("#approve").await;
    contact.snap("challenge").await;
    contact.click("#approve").await;
    contact.leave("/sandbox/3ds/").await;
    assert!(contact.reload_until("/receipt", 30).await, "the payment succeeded:\n{}", contact.source().await);
    contact.snap("paid").await;
    contact.open(&format!("{}/portal/invoices", platform.gateway_url)).await;
    contact.click("main a[href^='/portal/invoices/inv_']").await;
    assert!(contact.reload_until("badge paid", 30).await, "the invoice shows paid:\n{}", contact.source().await);
    contact.snap("invoice-paid").await;
    contact.close().await;
    platform.stop().await;
}

/// The contact presses "I can't pay", proposes three installments, and the request is in
/// the staff's inbox.
#[tokio::test]
async fn a_contact_who_cannot_pay_reaches_the_staff_inbox() {
    let platform = Platform::start().await;
    let tenant = platform.tenant().await;
    let customer = platform.customer(&tenant, "Northwind Supply LLC", "en").await;
    let invoice = platform.open_invoice(&tenant, &customer, "12000.00").await;

    let mut contact = Browser::start("cannot-pay/contact").await;
    sign_in_contact(&mut contact, &platform, &tenant, &customer).await;
    contact.open(&format!("{}/portal/invoices/{invoice}", platform.gateway_url)).await;
    assert!(contact.source().await.contains("lang=\"en\""), "an English contact reads English");
    contact.click("a[href$='/hardship']").await;
    contact.fill("#reason", "A client of ours paid late; we can pay in three parts.").await;
    contact.fill("#installments", "3").await;
    let first = (chrono::Utc::now().date_naive() + chrono::Duration::days(14)).to_string();
    contact.pick("#first_date", &first).await;
    contact.snap("request").await;
    contact.click("form[action$='/hardship'] button[type=submit]").await;
    contact.find("main .notice").await;
    contact.snap("sent").await;
    contact.close().await;

    let mut staff = Browser::start("cannot-pay/staff").await;
    sign_in_staff(&mut staff, &platform, &tenant).await;
    staff.open(&format!("{}/console/inbox", platform.gateway_url)).await;
    assert!(
        staff.reload_until("we can pay in three parts", 10).await,
        "the inbox shows the request:\n{}",
        staff.source().await
    );
    assert!(staff.source().await.contains("Northwind Supply LLC"));
    staff.snap("inbox").await;
    staff.close().await;
    platform.stop().await;
}

/// A statement line that names no reference is only suggested; staff confirms it in the
/// reconciliation queue and the invoice is paid.
#[tokio::test]
async fn staff_confirms_a_reconciliation_suggestion() {
    let platform = Platform::start().await;
    let tenant = platform.tenant().await;
    let customer = platform.customer(&tenant, "Constructora Álamo S.A. de C.V.", "es").await;
    let invoice = platform.open_invoice(&tenant, &customer, "5600.00").await;
    let today = chrono::Utc::now().date_naive().to_string();
    let statement = std::env::temp_dir().join(format!("cobro-statement-{}.xml", tenant.slug));
    std::fs::write(
        &statement,
        camt053(
            "012180001234567897",
            &today,
            &Credit {
                amount: "5600.00",
                payer: "CONSTRUCTORA ALAMO SA DE CV",
                reference: None,
                remittance: "PAGO PROVEEDOR",
            },
        ),
    )
    .unwrap();
    // Reconciliation learns of the invoice from invoicing's events.
    let db = platform.observe().await;
    let known = eventually(Duration::from_secs(30), || {
        let (db, tenant) = (db.clone(), tenant.id);
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM reconciliation.invoices WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&db)
                .await
                .is_ok_and(|n| n == 1)
        }
    })
    .await;
    assert!(known, "reconciliation never learned of the invoice");

    let mut staff = Browser::start("reconciliation").await;
    sign_in_staff(&mut staff, &platform, &tenant).await;
    staff.open(&format!("{}/console/reconciliation", platform.gateway_url)).await;
    staff.fill("#account_name", "BBVA concentradora").await;
    staff.fill("#account_number", "012180001234567897").await;
    staff.fill("#account_currency", "MXN").await;
    staff.click("form[action='/console/reconciliation/accounts'] button[type=submit]").await;
    staff.find("#file").await;
    staff.fill("#file", statement.to_str().unwrap()).await;
    staff.snap("upload").await;
    staff.click("form[action='/console/reconciliation/import'] button[type=submit]").await;
    staff.find("form[action$='/confirm'] button").await;
    staff.snap("suggestion").await;
    staff.click("form[action$='/confirm'] button").await;
    let mut decided = false;
    for _ in 0..50 {
        if !staff.has("form[action$='/confirm'] button").await {
            decided = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(decided, "the suggestion is decided:\n{}", staff.source().await);
    staff.snap("confirmed").await;
    staff.open(&format!("{}/console/invoices/{invoice}", platform.gateway_url)).await;
    assert!(staff.reload_until("badge paid", 30).await, "the invoice is paid:\n{}", staff.source().await);
    staff.snap("invoice-paid").await;
    staff.close().await;
    let _ = std::fs::remove_file(statement);
    platform.stop().await;
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
    b.leave("/sandbox/3ds/").await;
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

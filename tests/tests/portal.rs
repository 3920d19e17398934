//! The customer portal over HTTP against the whole platform: a contact sees what they owe,
//! opens and downloads their invoice, pays it by card and sees it paid once the payment has
//! travelled through the broker; forms without the session's token are refused; another
//! customer's invoice does not exist for them; "I can't pay" is received; a mistyped card is
//! pointed at and never shown back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cobro_e2e::platform::Platform;
use cobro_e2e::web::{Web, csrf};
use cobro_kit::testing::eventually;

/// The value of a page's `name` field (the first one).
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} field in the page:\n{html}")) + marker.len();
    html[start..].split('"').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_contact_sees_pays_and_asks_for_time_on_their_own_invoices() {
    let platform = Platform::start().await;
    let tenant = platform.tenant().await;
    let customer = platform.customer(&tenant, "Constructora Álamo S.A.", "en").await;
    let other = platform.customer(&tenant, "Ferretería La Esperanza", "es").await;
    let invoice = platform.open_invoice(&tenant, &customer, "1160.00").await;
    let second = platform.open_invoice(&tenant, &customer, "300.00").await;
    let foreign = platform.open_invoice(&tenant, &other, "999.00").await;
    let third = platform.open_invoice(&tenant, &customer, "200.00").await;

    let web = Web::new(&platform.gateway_url);
    assert_eq!(web.get("/portal").await.location.as_deref(), Some("/signin"), "the portal needs a signed-in contact");
    web.sign_in_contact(&tenant, &customer).await;

    // The dashboard: what is due, in English once chosen.
    let dashboard = web.get("/portal?lang=en").await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert!(dashboard.body.contains("Total due"), "{}", dashboard.body);
    assert!(dashboard.body.contains("1,660.00 MXN"), "the three invoices add up:\n{}", dashboard.body);
    assert!(dashboard.body.contains(&format!("/portal/invoices/{invoice}/hardship")), "I can't pay is one click away");

    // The invoice and its PDF.
    let page = web.get(&format!("/portal/invoices/{invoice}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("1,160.00 MXN") && page.body.contains("Lámina galvanizada"), "{}", page.body);
    let pdf = web.get(&format!("/portal/invoices/{invoice}/pdf")).await;
    assert_eq!(pdf.status, 200);
    assert_eq!(pdf.content_type, "application/pdf");
    assert!(pdf.content_disposition.starts_with("attachment"), "{}", pdf.content_disposition);
    assert!(pdf.bytes.starts_with(b"%PDF"), "a PDF document");

    // Another customer's invoice does not exist here, in any form.
    assert_eq!(web.get(&format!("/portal/invoices/{foreign}")).await.status, 404);
    assert_eq!(web.get(&format!("/portal/invoices/{foreign}/pdf")).await.status, 404);
    assert_eq!(web.get("/portal/invoices/not-an-id").await.status, 404);

    // A form without the session's token is refused, and nothing is made.
    let forged = web.post("/portal/pay", &[("invoice_ids", invoice.as_str())]).await;
    assert_eq!(forged.status, 403);

    // Paying: one intent however often the form is sent (payments learns of the invoice from
    // invoicing's events, so the first tries may come too early).
    let token = csrf(&page.body);
    let key = field(&page.body, "idempotency_key");
    let pay = [("csrf_token", token.as_str()), ("idempotency_key", key.as_str()), ("invoice_ids", invoice.as_str())];
    let made = eventually(Duration::from_secs(60), || {
        let web = &web;
        async move { web.post("/portal/pay", &pay).await.status == 303 }
    })
    .await;
    assert!(made, "the payment was never created");
    let first = web.post("/portal/pay", &pay).await;
    let again = web.post("/portal/pay", &pay).await;
    let to = first.location.clone().unwrap();
    assert!(to.starts_with("/portal/payments/pay_"), "{to}");
    assert_eq!(again.location.as_deref(), Some(to.as_str()), "a double submit is one payment");

    let choose = web.get(&to).await;
    assert_eq!(choose.status, 200, "{}", choose.body);
    assert!(choose.body.contains("name=\"pan\"") && choose.body.contains("Bank transfer"), "{}", choose.body);

    // A mistyped card number: the form names the field and never shows the number back.
    let confirm = format!("{to}/confirm");
    let token = csrf(&choose.body);
    let bad = web
        .post(
            &confirm,
            &[
                ("csrf_token", token.as_str()),
                ("idempotency_key", &field(&choose.body, "idempotency_key")),
                ("method", "card"),
                ("pan", "4242 4242 4242 4241"),
                ("exp_month", "12"),
                ("exp_year", "2031"),
                ("holder_name", "Ana López"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("Card number"), "the field is named:\n{}", bad.body);
    assert!(!bad.body.contains("4242424242424241") && !bad.body.contains("4242 4242 4242 4241"));
    assert!(bad.body.contains("value=\"12\""), "the rest of the form is kept");

    let paid = web
        .post(
            &confirm,
            &[
                ("csrf_token", token.as_str()),
                ("idempotency_key", &field(&bad.body, "idempotency_key")),
                ("method", "card"),
                ("pan", "4242 4242 4242 4242"),
                ("exp_month", "12"),
                ("exp_year", "2031"),
                ("holder_name", "Ana López"),
            ],
        )
        .await;
    assert_eq!((paid.status, paid.location.as_deref()), (303, Some(to.as_str())), "{}", paid.body);
    let result = web.get(&to).await;
    assert!(result.body.contains("<strong>Paid</strong>"), "{}", result.body);
    let receipt = web.get(&format!("{to}/receipt")).await;
    assert_eq!(receipt.status, 200);
    assert!(receipt.body.contains("1,160.00 MXN"), "{}", receipt.body);
    assert!(web.get("/portal/payments").await.body.contains(&format!("{to}/receipt")), "the history lists the receipt");

    // The invoice shows paid once invoicing has applied the payment from the broker.
    let shown_paid = eventually(Duration::from_secs(60), || {
        let (web, path) = (&web, format!("/portal/invoices/{invoice}"));
        async move { web.get(&path).await.body.contains("class=\"badge paid\"") }
    })
    .await;
    let last = web.get(&format!("/portal/invoices/{invoice}")).await.body;
    let heading = last.split("<h1>").nth(1).and_then(|h| h.split("</h1>").next()).unwrap_or_default().to_owned();
    assert!(shown_paid, "the invoice never showed paid: {heading}");

    // I can't pay: the request is received and confirmed.
    let ask = web.get(&format!("/portal/invoices/{second}/hardship")).await;
    assert_eq!(ask.status, 200, "{}", ask.body);
    let first_date = (chrono::Utc::now().date_naive() + chrono::Days::new(30)).to_string();
    let hardship_path = format!("/portal/invoices/{second}/hardship");
    let token = csrf(&ask.body);
    let reason = "Our main client paid late this month.";
    let wrong =
        [("csrf_token", token.as_str()), ("reason", reason), ("installments", "one"), ("first_date", &first_date)];
    let refused = web.post(&hardship_path, &wrong).await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("Number of installments"), "the field is named:\n{}", refused.body);
    let right =
        [("csrf_token", token.as_str()), ("reason", reason), ("installments", "3"), ("first_date", &first_date)];
    let received = web.post(&hardship_path, &right).await;
    assert_eq!(received.status, 200, "{}", received.body);
    assert!(received.body.contains("We received your request"), "{}", received.body);

    // A card that asks for 3-D Secure: the bank's page, then back to the portal, paid.
    let page = web.get(&format!("/portal/invoices/{second}")).await;
    let pay = [
        ("csrf_token", csrf(&page.body)),
        ("idempotency_key", field(&page.body, "idempotency_key")),
        ("invoice_ids", second.clone()),
    ];
    let pay: Vec<(&str, &str)> = pay.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let to = web.post("/portal/pay", &pay).await.location.unwrap();
    let choose = web.get(&to).await;
    let challenge = web
        .post(
            &format!("{to}/confirm"),
            &[
                ("csrf_token", csrf(&choose.body).as_str()),
                ("idempotency_key", &field(&choose.body, "idempotency_key")),
                ("method", "card"),
                ("pan", "4000 0000 0000 3220"),
                ("exp_month", "12"),
                ("exp_year", "2031"),
                ("holder_name", "Ana López"),
                ("save_card", "yes"),
            ],
        )
        .await;
    let bank = challenge.location.clone().unwrap_or_default();
    assert!(bank.contains("/sandbox/3ds/"), "{challenge:?}");
    assert!(bank.contains(&format!("return={to}/return")), "{bank}");
    let bank_page = web.get(&bank).await;
    let reference = bank.split("/sandbox/3ds/").nth(1).unwrap().split('?').next().unwrap();
    let approved = web
        .post(
            &format!("/sandbox/3ds/{reference}"),
            &[
                ("csrf_token", csrf(&bank_page.body).as_str()),
                ("decision", "approve"),
                ("return", &format!("{to}/return")),
            ],
        )
        .await;
    assert_eq!(approved.location.as_deref(), Some(format!("{to}/return").as_str()), "{approved:?}");
    let back = web.get(&format!("{to}/return")).await;
    assert_eq!(back.location.as_deref(), Some(to.as_str()), "{back:?}");
    assert!(web.get(&to).await.body.contains("<strong>Paid</strong>"), "paid after 3-D Secure");

    // The other pages answer for a contact.
    for path in ["/portal/payments", "/portal/statement", "/portal/cards", "/portal/preferences", "/portal/help"] {
        let page = web.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
    }
    assert_eq!(web.get(&format!("/portal/invoices/{second}/dispute")).await.status, 200);
    let csv = web.get("/portal/statement?format=csv").await;
    assert!(csv.content_type.starts_with("text/csv") && csv.body.starts_with("date,kind,"), "{csv:?}");
    let statement = web.get("/portal/statement").await;
    assert!(statement.body.contains("format=pdf"), "the page links the PDF:\n{}", statement.body);
    let pdf = web.get("/portal/statement?format=pdf").await;
    assert_eq!(pdf.status, 200, "{}", pdf.body);
    assert_eq!(pdf.content_type, "application/pdf");
    assert!(pdf.content_disposition.starts_with("attachment"), "{}", pdf.content_disposition);
    assert!(pdf.bytes.starts_with(b"%PDF"), "a PDF document");
    assert!(pdf.body.contains("(Statement of account)"), "the statement is printed");
    let bad_period = web.get("/portal/statement?from=yesterday").await;
    assert_eq!(bad_period.status, 422);
    assert!(bad_period.body.contains("From:"), "{}", bad_period.body);

    // The card kept from that payment can be removed again.
    let cards = web.get("/portal/cards").await;
    assert!(cards.body.contains("3220"), "the saved card is listed:\n{}", cards.body);
    let method = field(&cards.body, "payment_method_id");
    assert!(cards.body.contains("Autopay is off."));
    // Autopay needs the ticked consent; once given, the page says it is on, and off again.
    let token = csrf(&cards.body);
    let unticked =
        web.post("/portal/cards/autopay", &[("csrf_token", token.as_str()), ("payment_method_id", "")]).await;
    assert_eq!(unticked.status, 422, "{}", unticked.body);
    let on = web
        .post("/portal/cards/autopay", &[("csrf_token", token.as_str()), ("payment_method_id", ""), ("consent", "yes")])
        .await;
    assert_eq!(on.location.as_deref(), Some("/portal/cards?done=autopay_on"), "{}", on.body);
    let page = web.get("/portal/cards").await.body;
    assert!(page.contains("Autopay is on") && page.contains("3220"), "{page}");
    let off = web.post("/portal/cards/autopay/off", &[("csrf_token", token.as_str())]).await;
    assert_eq!(off.location.as_deref(), Some("/portal/cards?done=autopay_off"), "{}", off.body);
    assert!(web.get("/portal/cards").await.body.contains("Autopay is off."));
    let removed = web
        .post("/portal/cards/remove", &[("csrf_token", csrf(&cards.body).as_str()), ("payment_method_id", &method)])
        .await;
    assert_eq!(removed.location.as_deref(), Some("/portal/cards?done=removed"));
    assert!(!web.get("/portal/cards").await.body.contains("3220"));

    // A bank transfer: the account and the RF reference to quote.
    let page = web.get(&format!("/portal/invoices/{third}")).await;
    let pay = [
        ("csrf_token", csrf(&page.body)),
        ("idempotency_key", field(&page.body, "idempotency_key")),
        ("invoice_ids", third.clone()),
    ];
    let pay: Vec<(&str, &str)> = pay.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let to = web.post("/portal/pay", &pay).await.location.unwrap();
    let choose = web.get(&to).await;
    let transfer = web
        .post(
            &format!("{to}/confirm"),
            &[
                ("csrf_token", csrf(&choose.body).as_str()),
                ("idempotency_key", &field(&choose.body, "idempotency_key")),
                ("method", "transfer"),
            ],
        )
        .await;
    assert_eq!(transfer.location.as_deref(), Some(to.as_str()), "{transfer:?}");
    let instructions = web.get(&to).await.body;
    assert!(instructions.contains("class=\"portal-reference\">RF"), "the reference to quote:\n{instructions}");

    // A dispute: the reason is required, then it is received.
    let dispute_path = format!("/portal/invoices/{third}/dispute");
    let form = web.get(&dispute_path).await;
    let token = csrf(&form.body);
    let empty = web.post(&dispute_path, &[("csrf_token", token.as_str()), ("reason", " ")]).await;
    assert_eq!(empty.status, 422);
    assert!(empty.body.contains("Reason: is required"), "{}", empty.body);
    let opened = web
        .post(&dispute_path, &[("csrf_token", token.as_str()), ("reason", "We were charged twice for this order.")])
        .await;
    assert!(opened.body.contains("We received your dispute"), "{}", opened.body);

    // Preferences: the language sticks.
    let saved = web.post("/portal/preferences", &[("csrf_token", token.as_str()), ("language", "es")]).await;
    assert_eq!(saved.location.as_deref(), Some("/portal/preferences?done=saved"), "{}", saved.body);
    assert!(web.get("/portal").await.body.contains("Total por pagar"), "the portal now speaks Spanish");
    // ...and a contact stops reminder emails to their address, which notifications records.
    let opted = web
        .post(
            "/portal/preferences",
            &[("csrf_token", token.as_str()), ("language", "es"), ("address", &customer.email), ("opt_out", "email")],
        )
        .await;
    assert_eq!(opted.location.as_deref(), Some("/portal/preferences?done=saved"), "{}", opted.body);
    let db = platform.observe().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications.opt_outs WHERE address = $1")
        .bind(&customer.email)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, 1, "the opt-out reached notifications");

    // Staff have the console, not the portal.
    let staff = Web::new(&platform.gateway_url);
    staff.sign_in_staff(&tenant).await;
    assert_eq!(staff.get("/portal").await.location.as_deref(), Some("/console"));
    platform.stop().await;
}

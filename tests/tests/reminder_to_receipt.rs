//! From reminder to receipt: an invoice due tomorrow gets its day-before reminder by email
//! with a link to pay; the contact follows it, pays by card in the portal, the invoice is
//! paid, a receipt is emailed, and the reminder planned after the due date never goes out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cobro_e2e::platform::{Options, Platform};
use cobro_e2e::web::{Web, csrf};
use cobro_kit::testing::eventually;
use cobro_kit::testing::smtp::SmtpSink;
use cobro_proto::invoicing::v1 as invpb;
use cobro_proto::notifications::v1 as notpb;
use cobro_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;

/// The value of the first hidden field `name` in a page.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no field {name}:\n{html}")) + marker.len();
    html[start..].split('"').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_day_before_reminder_links_to_paying_and_paying_stops_the_reminders() {
    let sink = SmtpSink::start().await;
    let platform = Platform::start_with(Options {
        overrides: vec![("notifications.smtp.port".into(), sink.port().to_string())],
        ..Options::default()
    })
    .await;
    let tenant = platform.tenant().await;
    let mut notifications = NotificationsServiceClient::new(platform.notifications.clone());
    notifications
        .upsert_policy(tenant.staff(notpb::UpsertPolicyRequest {
            policy: Some(notpb::Policy {
                steps: vec![
                    notpb::Step {
                        offset_days: -1,
                        channels: vec!["email".into()],
                        tone: "friendly".into(),
                        template: "reminder_friendly".into(),
                        templates: vec![],
                    },
                    notpb::Step {
                        offset_days: 3,
                        channels: vec!["email".into()],
                        tone: "firm".into(),
                        template: "reminder_firm".into(),
                        templates: vec![],
                    },
                ],
                // Midnight, no quiet hours: the day-before step is due at once whatever the time
                // of day the test runs at.
                send_at: "00:00".into(),
                quiet_start: "00:00".into(),
                quiet_end: "00:00".into(),
                default_timezone: "UTC".into(),
                sender_name: "Aceros del Norte".into(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap();
    let customer = platform.customer(&tenant, "Constructora Álamo S.A. de C.V.", "es").await;
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(1)).to_string();
    let mut invoicing = platform.invoicing_client();
    let draft = invoicing
        .create_invoice(tenant.staff(invpb::CreateInvoiceRequest {
            customer_id: customer.id.clone(),
            lines: vec![invpb::LineInput {
                description: "Renta de andamios, diciembre".into(),
                quantity: "1".into(),
                unit_price: "7300.00".into(),
                ..Default::default()
            }],
            due_date: tomorrow,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    invoicing.issue_invoice(tenant.staff(invpb::IssueInvoiceRequest { id: draft.id.clone() })).await.unwrap();
    let invoice = draft.id;

    // The day-before reminder is due already (midnight today): it arrives with the invoice's link.
    let link = format!("{}/portal/invoices/{invoice}", platform.gateway_url);
    let reminded = eventually(Duration::from_secs(60), || {
        let (sink, link, to) = (&sink, &link, &customer.email);
        async move {
            // Bodies are quoted-printable: soft line breaks (`=` at a line's end) split long links.
            sink.messages()
                .iter()
                .any(|m| m.recipients.contains(to) && m.data.replace("=\r\n", "").contains(link.as_str()))
        }
    })
    .await;
    assert!(reminded, "no email with the pay link reached {}: {:?}", customer.email, sink.messages());
    let messages = |status: &'static str| {
        let (mut client, request) = (
            notifications.clone(),
            tenant.staff(notpb::ListMessagesRequest {
                invoice_id: invoice.clone(),
                status: status.into(),
                ..Default::default()
            }),
        );
        async move { client.list_messages(request).await.unwrap().into_inner().messages }
    };
    // The sink has the email a moment before notifications records it as sent.
    let recorded = eventually(Duration::from_secs(30), || {
        let messages = &messages;
        async move { messages("sent").await.iter().any(|m| m.kind == "reminder_friendly") }
    })
    .await;
    assert!(recorded, "the reminder was recorded as sent: {:?}", messages("").await);
    assert!(messages("planned").await.iter().any(|m| m.kind == "reminder_firm"), "the later one waits");

    // The contact follows the link, signs in, and pays by card.
    let web = Web::new(&platform.gateway_url);
    assert_eq!(web.get(&link).await.location.as_deref(), Some("/signin"));
    web.sign_in_contact(&tenant, &customer).await;
    let page = web.get(&link).await;
    assert!(page.body.contains("7.300,00"), "{}", page.body);
    let pay = web
        .post(
            "/portal/pay",
            &[
                ("csrf_token", &csrf(&page.body)),
                ("idempotency_key", &field(&page.body, "idempotency_key")),
                ("invoice_ids", &invoice),
            ],
        )
        .await;
    let payment_page = pay.location.expect("to the payment");
    let methods = web.get(&payment_page).await.body;
    let confirm_action = format!("{payment_page}/confirm");
    let done = web
        .post(
            &confirm_action,
            &[
                ("csrf_token", &csrf(&methods)),
                ("idempotency_key", &field(&methods, "idempotency_key")),
                ("method", "card"),
                ("pan", "4242 4242 4242 4242"),
                ("exp_month", "12"),
                ("exp_year", "2031"),
                ("holder_name", "Luis Ortega"),
            ],
        )
        .await;
    assert!(done.status == 303 || done.status == 200, "{done:?}");

    let paid = eventually(Duration::from_secs(60), || {
        let (mut invoicing, request) =
            (invoicing.clone(), tenant.staff(invpb::GetInvoiceRequest { id: invoice.clone() }));
        async move { invoicing.get_invoice(request).await.is_ok_and(|i| i.into_inner().status == "paid") }
    })
    .await;
    assert!(paid, "the invoice was never paid");
    // The receipt is about the payment, so it is listed under the customer.
    let customer_messages = || {
        let (mut client, request) = (
            notifications.clone(),
            tenant.staff(notpb::ListMessagesRequest { customer_id: customer.id.clone(), ..Default::default() }),
        );
        async move { client.list_messages(request).await.unwrap().into_inner().messages }
    };
    let receipt = eventually(Duration::from_secs(60), || {
        let customer_messages = &customer_messages;
        async move { customer_messages().await.iter().any(|m| m.kind == "payment_receipt" && m.status == "sent") }
    })
    .await;
    assert!(receipt, "no receipt was sent: {:?}", customer_messages().await);
    let in_inbox =
        sink.messages().iter().any(|m| m.recipients.contains(&customer.email) && m.message_id.contains("receipt"));
    assert!(
        in_inbox,
        "the receipt reached the contact: {:?}",
        sink.messages().iter().map(|m| &m.message_id).collect::<Vec<_>>()
    );
    // The reminder after the due date is canceled: nothing more is planned for this invoice.
    let still_planned = messages("planned").await;
    assert!(still_planned.is_empty(), "reminders still planned after payment: {still_planned:?}");
    assert!(messages("canceled").await.iter().any(|m| m.kind == "reminder_firm"));
    platform.stop().await;
}

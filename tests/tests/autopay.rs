//! Autopay over the months, on a platform whose business clock the test moves forward:
//!
//! - a customer who cannot pay asks for installments; staff accept three; the reminders follow
//!   the installments' own dates; each installment is charged by autopay on its due date;
//! - a recurring invoice is generated, autopay charges it on its due date, the card is declined
//!   for lack of funds, and the retry the next day succeeds.
//!
//! The jobs (recurring invoices, due notices, autopay, reminders) run every second here, and
//! act on the moved clock as they would on that later day.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use chrono::{Datelike, NaiveDate, TimeDelta};
use cobro_e2e::platform::{Customer, Options, Platform, Tenant};
use cobro_e2e::web::{Web, csrf};
use cobro_kit::testing::eventually;
use cobro_kit::testing::smtp::SmtpSink;
use cobro_proto::invoicing::v1 as invpb;
use cobro_proto::notifications::v1 as notpb;
use cobro_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use cobro_proto::payments::v1 as paypb;
use cobro_proto::payments::v1::payments_service_client::PaymentsServiceClient;

/// How long a job round plus an event hop may take on a busy machine.
const WAIT: Duration = Duration::from_secs(60);

async fn start(sink: &SmtpSink) -> Platform {
    Platform::start_with(Options {
        own_database: true,
        overrides: vec![
            ("notifications.smtp.port".into(), sink.port().to_string()),
            ("invoicing.job_interval".into(), "1s".into()),
            ("payments.job_interval".into(), "1s".into()),
        ],
        ..Options::default()
    })
    .await
}

/// Move the business clock to `day` (never back).
fn advance_to(platform: &Platform, day: NaiveDate) {
    let by = day - cobro_kit::clock::today();
    if by > TimeDelta::zero() {
        platform.advance_clock(by);
    }
}

/// Reminders: a friendly one the day before, a firm one three days after; at midnight UTC, no
/// quiet hours, so whatever the time of day the run happens at, a moved day is a whole day.
async fn reminder_policy(platform: &Platform, tenant: &Tenant) {
    let step = |offset_days: i32, tone: &str| notpb::Step {
        offset_days,
        channels: vec!["email".into()],
        tone: tone.into(),
        template: format!("reminder_{tone}"),
        templates: vec![],
    };
    NotificationsServiceClient::new(platform.notifications.clone())
        .upsert_policy(tenant.staff(notpb::UpsertPolicyRequest {
            policy: Some(notpb::Policy {
                steps: vec![step(-1, "friendly"), step(3, "firm")],
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
}

/// The customer pays by autopay: a card is saved as the default and the customer's consent is
/// recorded at payments; invoicing hears of it, so reminders become notices of the coming charge.
async fn on_autopay(platform: &Platform, tenant: &Tenant, customer: &Customer, pan: &str) {
    let mut payments = PaymentsServiceClient::new(platform.payments.clone());
    payments
        .save_payment_method(tenant.staff(paypb::SavePaymentMethodRequest {
            idempotency_key: uuid::Uuid::now_v7().to_string(),
            customer_id: customer.id.clone(),
            source: Some(paypb::save_payment_method_request::Source::Card(cobro_e2e::platform::card(pan))),
            make_default: true,
        }))
        .await
        .unwrap();
    payments
        .enable_autopay(tenant.staff(paypb::EnableAutopayRequest {
            customer_id: customer.id.clone(),
            payment_method_id: String::new(),
            consent_text: "Cargar automáticamente cada factura a su vencimiento a mi tarjeta predeterminada.".into(),
            consent_ip: "203.0.113.7".into(),
        }))
        .await
        .unwrap();
    let flagged = eventually(WAIT, || {
        let (mut invoicing, request) =
            (platform.invoicing_client(), tenant.staff(invpb::GetCustomerRequest { id: customer.id.clone() }));
        async move { invoicing.get_customer(request).await.is_ok_and(|c| c.into_inner().autopay) }
    })
    .await;
    assert!(flagged, "invoicing never heard the customer is on autopay");
}

async fn invoice(platform: &Platform, tenant: &Tenant, id: &str) -> invpb::Invoice {
    platform
        .invoicing_client()
        .get_invoice(tenant.staff(invpb::GetInvoiceRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
}

/// An invoice's messages: (kind, status, the day it is or was due to go out).
async fn messages(platform: &Platform, tenant: &Tenant, invoice_id: &str) -> Vec<(String, String, NaiveDate)> {
    NotificationsServiceClient::new(platform.notifications.clone())
        .list_messages(tenant.staff(notpb::ListMessagesRequest { invoice_id: invoice_id.into(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .messages
        .into_iter()
        .map(|m| {
            let day = m
                .send_at
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                .map(|t| t.date_naive())
                .unwrap_or_default();
            (m.kind, m.status, day)
        })
        .collect()
}

/// The customer's autopay payments, oldest first: (status, installment, failure code).
async fn autopay_payments(platform: &Platform, tenant: &Tenant, customer: &Customer) -> Vec<paypb::PaymentIntent> {
    let mut payments = PaymentsServiceClient::new(platform.payments.clone())
        .list_payment_intents(
            tenant.staff(paypb::ListPaymentIntentsRequest { customer_id: customer.id.clone(), ..Default::default() }),
        )
        .await
        .unwrap()
        .into_inner()
        .payments;
    payments.retain(|p| p.autopay);
    payments.sort_by_key(|p| p.created_at.as_ref().map(|t| (t.seconds, t.nanos)));
    payments
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap_or_else(|_| panic!("not a date: {s:?}"))
}

#[tokio::test]
async fn three_installments_agreed_after_i_cant_pay_are_each_charged_by_autopay_on_its_day() {
    let sink = SmtpSink::start().await;
    let platform = start(&sink).await;
    let tenant = platform.tenant().await;
    reminder_policy(&platform, &tenant).await;
    let customer = platform.customer(&tenant, "Ferretería Los Pinos S.A. de C.V.", "es").await;
    on_autopay(&platform, &tenant, &customer, "4242 4242 4242 4242").await;
    let today = cobro_kit::clock::today();
    let mut invoicing = platform.invoicing_client();
    let draft = invoicing
        .create_invoice(tenant.staff(invpb::CreateInvoiceRequest {
            customer_id: customer.id.clone(),
            lines: vec![invpb::LineInput {
                description: "Perfil tubular cédula 40, 120 tramos".into(),
                quantity: "1".into(),
                unit_price: "9000.00".into(),
                ..Default::default()
            }],
            due_date: (today + TimeDelta::days(5)).to_string(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    invoicing.issue_invoice(tenant.staff(invpb::IssueInvoiceRequest { id: draft.id.clone() })).await.unwrap();
    let id = draft.id;
    // On autopay: a notice three days before the charge, a firm reminder three days after.
    let planned = eventually(WAIT, || {
        let (platform, tenant, id) = (&platform, &tenant, &id);
        async move { messages(platform, tenant, id).await.iter().filter(|m| m.1 == "planned").count() == 2 }
    })
    .await;
    assert!(planned, "the invoice's reminders: {:?}", messages(&platform, &tenant, &id).await);

    // The contact says they cannot pay, and proposes three installments from ten days on.
    let web = Web::new(&platform.gateway_url);
    web.sign_in_contact(&tenant, &customer).await;
    let path = format!("/portal/invoices/{id}/hardship");
    let form = web.get(&path).await;
    let first_date = (today + TimeDelta::days(10)).to_string();
    let asked = web
        .post(
            &path,
            &[
                ("csrf_token", csrf(&form.body).as_str()),
                ("reason", "Nuestro cliente principal nos pagó tarde este mes."),
                ("installments", "3"),
                ("first_date", &first_date),
            ],
        )
        .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    let paused = eventually(WAIT, || {
        let (platform, tenant, id) = (&platform, &tenant, &id);
        async move { !messages(platform, tenant, id).await.iter().any(|m| m.1 == "planned") }
    })
    .await;
    assert!(paused, "reminders wait while the request is open: {:?}", messages(&platform, &tenant, &id).await);

    // Staff accept it from the inbox.
    let requests = invoicing
        .list_requests(tenant.staff(invpb::ListRequestsRequest { kind: "hardship".into(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .requests;
    let request = requests.iter().find(|r| r.invoice_id == id).expect("the request is in the inbox");
    invoicing
        .resolve_hardship(tenant.staff(invpb::ResolveHardshipRequest {
            request_id: request.id.clone(),
            accept: true,
            note: "Aceptado: tres pagos mensuales.".into(),
        }))
        .await
        .unwrap();
    let plan = invoice(&platform, &tenant, &id).await.installments;
    let amounts: Vec<&str> = plan.iter().map(|i| i.amount.as_ref().map_or("", |m| m.amount.as_str())).collect();
    assert_eq!(amounts, ["3000.00", "3000.00", "3000.00"], "{plan:?}");
    let due: Vec<NaiveDate> = plan.iter().map(|i| date(&i.due_date)).collect();
    assert_eq!(due[0], date(&first_date));
    assert!(due[0] < due[1] && due[1] < due[2], "monthly: {due:?}");

    // The reminders now follow each installment's own date.
    let expected: Vec<(String, NaiveDate)> = due
        .iter()
        .flat_map(|d| {
            [
                ("autopay_upcoming".to_owned(), *d - TimeDelta::days(3)),
                ("reminder_firm".to_owned(), *d + TimeDelta::days(3)),
            ]
        })
        .collect();
    let planned_now = || {
        let (platform, tenant, id) = (&platform, &tenant, &id);
        async move {
            let mut planned: Vec<(String, NaiveDate)> = messages(platform, tenant, id)
                .await
                .into_iter()
                .filter(|m| m.1 == "planned")
                .map(|(kind, _, day)| (kind, day))
                .collect();
            planned.sort_by_key(|(kind, day)| (*day, kind.clone()));
            planned
        }
    };
    let replanned = eventually(WAIT, || {
        let (planned_now, expected) = (&planned_now, &expected);
        async move { planned_now().await == *expected }
    })
    .await;
    assert!(replanned, "re-planned per installment: {:?}, expected {expected:?}", planned_now().await);

    let mut payments_seen = 0;
    for (n, (installment, due_date)) in plan.iter().zip(&due).enumerate() {
        // Three days before: the notice of the coming charge reaches the contact.
        advance_to(&platform, *due_date - TimeDelta::days(3));
        let noticed = eventually(WAIT, || {
            let (platform, tenant, id, day) = (&platform, &tenant, &id, *due_date - TimeDelta::days(3));
            async move {
                messages(platform, tenant, id)
                    .await
                    .iter()
                    .any(|m| m.0 == "autopay_upcoming" && m.1 == "sent" && m.2 == day)
            }
        })
        .await;
        assert!(noticed, "installment {}: {:?}", n + 1, messages(&platform, &tenant, &id).await);
        assert!(
            autopay_payments(&platform, &tenant, &customer).await.len() == payments_seen,
            "nothing is charged before the due date"
        );

        // On the due date autopay charges the installment, and its late reminder is dropped.
        advance_to(&platform, *due_date);
        let charged = eventually(WAIT, || {
            let (platform, tenant, id, n) = (&platform, &tenant, &id, n);
            async move {
                invoice(platform, tenant, id).await.installments[n]
                    .balance
                    .as_ref()
                    .is_some_and(|b| b.amount == "0.00" || b.amount == "0")
            }
        })
        .await;
        assert!(charged, "installment {} was not paid: {:?}", n + 1, invoice(&platform, &tenant, &id).await);
        payments_seen += 1;
        let autopaid = autopay_payments(&platform, &tenant, &customer).await;
        assert_eq!(autopaid.len(), payments_seen, "one charge per installment: {autopaid:?}");
        let last = autopaid.last().unwrap();
        assert_eq!(
            (last.status.as_str(), last.installment_id.as_str(), last.amount.as_ref().map(|m| m.amount.as_str())),
            ("succeeded", installment.id.as_str(), Some("3000.00"))
        );
        let dropped = eventually(WAIT, || {
            let (platform, tenant, id, day) = (&platform, &tenant, &id, *due_date + TimeDelta::days(3));
            async move {
                messages(platform, tenant, id)
                    .await
                    .iter()
                    .any(|m| m.0 == "reminder_firm" && m.1 == "canceled" && m.2 == day)
            }
        })
        .await;
        assert!(dropped, "installment {}: {:?}", n + 1, messages(&platform, &tenant, &id).await);
    }

    let paid = invoice(&platform, &tenant, &id).await;
    assert_eq!(paid.status, "paid", "{paid:?}");
    let left = messages(&platform, &tenant, &id).await;
    assert!(!left.iter().any(|m| m.1 == "planned"), "nothing planned once paid: {left:?}");
    let receipts = eventually(WAIT, || {
        let (sink, to) = (&sink, &customer.email);
        async move {
            sink.messages().iter().filter(|m| m.recipients.contains(to) && m.message_id.contains("receipt")).count()
                == 3
        }
    })
    .await;
    assert!(
        receipts,
        "a receipt per installment: {:?}",
        sink.messages().iter().map(|m| &m.message_id).collect::<Vec<_>>()
    );
    platform.stop().await;
}

#[tokio::test]
async fn a_recurring_invoice_declined_for_lack_of_funds_is_charged_on_the_retry_the_next_day() {
    let sink = SmtpSink::start().await;
    let platform = start(&sink).await;
    let tenant = platform.tenant().await;
    reminder_policy(&platform, &tenant).await;
    let customer = platform.customer(&tenant, "Distribuidora Cumbres S. de R.L.", "en").await;
    on_autopay(&platform, &tenant, &customer, cobro_payments::connector::sandbox::CARD_INSUFFICIENT_FUNDS_ONCE).await;

    // Monthly on a day every month has: today, or the 1st of next month.
    let today = cobro_kit::clock::today();
    let first = if today.day() <= 28 {
        today
    } else {
        today.with_day(1).and_then(|d| d.checked_add_months(chrono::Months::new(1))).unwrap()
    };
    let mut invoicing = platform.invoicing_client();
    invoicing
        .create_recurring_invoice(tenant.staff(invpb::CreateRecurringInvoiceRequest {
            invoice: Some(invpb::CreateInvoiceRequest {
                customer_id: customer.id.clone(),
                lines: vec![invpb::LineInput {
                    description: "Monthly forklift rental".into(),
                    quantity: "1".into(),
                    unit_price: "4500.00".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            frequency: "monthly".into(),
            day_of_month: first.day(),
            first_period: first.to_string(),
            auto_issue: true,
            ..Default::default()
        }))
        .await
        .unwrap();
    advance_to(&platform, first);
    let first_period = || {
        let (mut invoicing, request) = (
            platform.invoicing_client(),
            tenant.staff(invpb::ListInvoicesRequest { customer_id: customer.id.clone(), ..Default::default() }),
        );
        let first = first.to_string();
        async move {
            let invoices = invoicing.list_invoices(request).await.unwrap().into_inner().invoices;
            invoices.into_iter().filter(|i| i.issue_date == first).collect::<Vec<_>>()
        }
    };
    let generated = eventually(WAIT, || {
        let first_period = &first_period;
        async move { first_period().await.iter().any(|i| i.status == "open") }
    })
    .await;
    assert!(generated, "the first period's invoice: {:?}", first_period().await);
    let made = first_period().await;
    assert_eq!(made.len(), 1, "one invoice per period: {made:?}");
    let (id, due_date) = (made[0].id.clone(), date(&made[0].due_date));
    assert_eq!(due_date, first + TimeDelta::days(30), "the customer's 30-day terms");

    // The due date: autopay charges, and the card is declined for lack of funds.
    advance_to(&platform, due_date);
    let declined = eventually(WAIT, || {
        let (platform, tenant, customer) = (&platform, &tenant, &customer);
        async move { autopay_payments(platform, tenant, customer).await.iter().any(|p| p.status == "failed") }
    })
    .await;
    let tries = autopay_payments(&platform, &tenant, &customer).await;
    assert!(declined, "{tries:?}");
    assert_eq!(tries.len(), 1, "one try on the due date: {tries:?}");
    assert_eq!(tries[0].failure_code, "insufficient_funds");
    assert_eq!(tries[0].invoice_ids, std::slice::from_ref(&id));
    assert_eq!(invoice(&platform, &tenant, &id).await.status, "open", "still owed");
    let told = eventually(WAIT, || {
        let (sink, to) = (&sink, &customer.email);
        async move { sink.messages().iter().any(|m| m.recipients.contains(to) && m.message_id.contains("failed")) }
    })
    .await;
    assert!(
        told,
        "the customer hears of the decline: {:?}",
        sink.messages().iter().map(|m| &m.message_id).collect::<Vec<_>>()
    );

    // A soft decline is retried a day later; the funds have arrived.
    advance_to(&platform, due_date + TimeDelta::days(1));
    let paid = eventually(WAIT, || {
        let (platform, tenant, id) = (&platform, &tenant, &id);
        async move { invoice(platform, tenant, id).await.status == "paid" }
    })
    .await;
    assert!(paid, "the retry paid it: {:?}", autopay_payments(&platform, &tenant, &customer).await);
    let tries = autopay_payments(&platform, &tenant, &customer).await;
    let outcomes: Vec<(&str, &str)> = tries.iter().map(|p| (p.status.as_str(), p.failure_code.as_str())).collect();
    assert_eq!(outcomes, [("failed", "insufficient_funds"), ("succeeded", "")], "{tries:?}");
    assert_eq!(tries[1].invoice_ids, std::slice::from_ref(&id));
    assert_eq!(first_period().await.len(), 1, "the period's invoice was made once");
    let receipt = eventually(WAIT, || {
        let (sink, to) = (&sink, &customer.email);
        async move { sink.messages().iter().any(|m| m.recipients.contains(to) && m.message_id.contains("receipt")) }
    })
    .await;
    assert!(receipt, "a receipt for the retry");
    platform.stop().await;
}

//! Reminders end to end against the real Postgres and a local SMTP server: planned from
//! invoicing's events, kept in step with payments and pauses, sent once by dispatchers that
//! share the work and survive one of them dying mid-send.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, Utc};
use cobro_kit::auth::PrincipalKind;
use cobro_kit::auth::testing::TestIssuer;
use cobro_kit::config::GrpcConfig;
use cobro_kit::events::EventHandler;
use cobro_kit::grpc::GrpcServer;
use cobro_kit::testing::TestDb;
use cobro_notifications::api::NotificationsApi;
use cobro_notifications::app::{Channels, Notifications};
use cobro_notifications::channels::{AnyChannel, SmtpConfig, SmtpEmail, SmtpTls};
use cobro_notifications::config::Pace;
use cobro_notifications::events::Handler;
use cobro_proto::common::v1::Money;
use cobro_proto::events::v1::{
    CustomerContact, CustomerUpserted, Envelope, InstallmentsPlanned, InvoiceChanged, PaymentApplied,
    PlannedInstallment, ReferenceAssigned,
};
use cobro_proto::notifications::v1 as pb;
use cobro_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use cobro_proto::notifications::v1::notifications_service_server::NotificationsServiceServer;
use common::SmtpSink;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::Channel;
use uuid::Uuid;

const STAFF: [&str; 2] = ["notifications:read", "notifications:manage"];

struct H {
    db: TestDb,
    sink: SmtpSink,
    issuer: Arc<TestIssuer>,
    tenant: Uuid,
    app: Arc<Notifications>,
    client: NotificationsServiceClient<Channel>,
    shutdown: CancellationToken,
}

fn pace() -> Pace {
    Pace { poll_interval: Duration::from_millis(50), batch_size: 50, max_attempts: 3, lease: Duration::from_secs(2) }
}

fn email_to(sink: &SmtpSink) -> AnyChannel {
    AnyChannel::from(
        SmtpEmail::new(SmtpConfig {
            host: "127.0.0.1".into(),
            port: sink.port(),
            tls: SmtpTls::None,
            username: None,
            password: secrecy::SecretString::from(String::new()),
            from: "Acme Billing <billing@acme.test>".into(),
            timeout: Duration::from_secs(10),
        })
        .unwrap(),
    )
}

fn money(amount: &str, currency: &str) -> Option<Money> {
    Some(Money { currency: currency.into(), amount: amount.into() })
}

impl H {
    async fn new() -> H {
        let db = TestDb::new(&cobro_notifications::migrator()).await;
        let sink = SmtpSink::start().await;
        let issuer = Arc::new(TestIssuer::new());
        let shutdown = CancellationToken::new();
        let app = Arc::new(Self::app_on(&db.pool, &sink));
        let server = GrpcServer::new(GrpcConfig::default(), Arc::new(issuer.verifier()))
            .add_service(NotificationsServiceServer::new(NotificationsApi::new(Arc::clone(&app))));
        let (addr, serving) = server.bind("127.0.0.1:0".parse().unwrap(), shutdown.clone()).await.unwrap();
        tokio::spawn(serving);
        let channel = cobro_kit::grpc::connect(&format!("http://{addr}"), Duration::from_secs(30)).await.unwrap();
        H { db, sink, issuer, tenant: Uuid::now_v7(), app, client: NotificationsServiceClient::new(channel), shutdown }
    }

    /// Another dispatcher process on the same database and SMTP server.
    fn app_on(pool: &sqlx::PgPool, sink: &SmtpSink) -> Notifications {
        Notifications::new(pool.clone(), Channels { email: Some(email_to(sink)), ..Channels::default() }, pace())
            .with_portal_url("https://pay.acme.test/")
    }

    fn req<T>(&self, message: T) -> Request<T> {
        self.req_as(self.tenant, message)
    }

    fn req_as<T>(&self, tenant: Uuid, message: T) -> Request<T> {
        let token = self.issuer.token(tenant, PrincipalKind::User, &STAFF);
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }

    async fn deliver(&self, kind: &str, aggregate: &str, payload: &impl Message) {
        let envelope = Envelope {
            id: Uuid::now_v7().to_string(),
            r#type: kind.into(),
            tenant_id: self.tenant.to_string(),
            aggregate_id: aggregate.into(),
            occurred_at: None,
            traceparent: String::new(),
            payload: payload.encode_to_vec(),
        };
        let mut tx = self.db.pool.begin().await.unwrap();
        Handler { app: Arc::clone(&self.app) }.handle(&mut tx, &envelope).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn customer(&self, email: &str) -> Uuid {
        self.customer_with(email, false).await
    }

    async fn customer_with(&self, email: &str, autopay: bool) -> Uuid {
        let customer = Uuid::now_v7();
        let event = CustomerUpserted {
            customer_id: cobro_kit::ids::format("cus", customer),
            external_id: String::new(),
            legal_name: "Ferretería El Tornillo".into(),
            contacts: vec![CustomerContact {
                name: "Luisa".into(),
                email: email.into(),
                language: "es".into(),
                timezone: "America/Mexico_City".into(),
                ..Default::default()
            }],
            reminder_policy: String::new(),
            autopay,
        };
        self.deliver("customer.upserted", &event.customer_id.clone(), &event).await;
        customer
    }

    fn invoice_event(
        &self,
        invoice: Uuid,
        customer: Uuid,
        status: &str,
        balance: &str,
        due_in_days: i64,
    ) -> InvoiceChanged {
        let today = Utc::now().date_naive();
        let due = if due_in_days >= 0 {
            today.checked_add_days(Days::new(due_in_days.unsigned_abs())).unwrap()
        } else {
            today.checked_sub_days(Days::new(due_in_days.unsigned_abs())).unwrap()
        };
        InvoiceChanged {
            invoice_id: cobro_kit::ids::format("inv", invoice),
            customer_id: cobro_kit::ids::format("cus", customer),
            number: format!("F-{}", &invoice.simple().to_string()[26..]),
            status: status.into(),
            total: money("1000.00", "MXN"),
            balance: money(balance, "MXN"),
            due_date: due.to_string(),
        }
    }

    async fn issue(&self, customer: Uuid, due_in_days: i64) -> Uuid {
        let invoice = Uuid::now_v7();
        let event = self.invoice_event(invoice, customer, "open", "1000.00", due_in_days);
        self.deliver("invoice.issued", &event.invoice_id.clone(), &event).await;
        invoice
    }

    /// A policy of three email steps: 3 days before, on the due date and a week after.
    async fn policy(&self) {
        self.policy_with_cap(0).await;
    }

    async fn policy_with_cap(&self, daily_cap: u32) {
        let step = |offset_days: i32, tone: &str| pb::Step {
            offset_days,
            channels: vec!["email".into()],
            tone: tone.into(),
            template: format!("reminder_{tone}"),
            templates: Vec::new(),
        };
        let policy = pb::Policy {
            steps: vec![step(-3, "friendly"), step(0, "firm"), step(7, "final_notice")],
            send_at: "09:00".into(),
            quiet_start: "00:00".into(),
            quiet_end: "00:00".into(),
            default_timezone: "America/Mexico_City".into(),
            sender_name: "Acme".into(),
            sender_email: "cobranza@acme.test".into(),
            daily_cap,
            ..Default::default()
        };
        self.client.clone().upsert_policy(self.req(pb::UpsertPolicyRequest { policy: Some(policy) })).await.unwrap();
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&self.db.pool).await.unwrap()
    }

    /// As if time passed: everything planned is due now.
    async fn everything_due(&self) {
        sqlx::query("UPDATE messages SET send_at = now() - interval '1 second' WHERE status = 'planned'")
            .execute(&self.db.pool)
            .await
            .unwrap();
    }

    async fn dispatch_all(&self) {
        for _ in 0..20 {
            if Arc::clone(&self.app).dispatch_once().await.unwrap() == 0 {
                return;
            }
        }
    }

    async fn preview(&self, invoice: Uuid) -> pb::PreviewScheduleResponse {
        let request = pb::PreviewScheduleRequest { invoice_id: cobro_kit::ids::format("inv", invoice) };
        self.client.clone().preview_schedule(self.req(request)).await.unwrap().into_inner()
    }

    async fn finish(self) {
        self.shutdown.cancel();
        self.db.drop_schema().await;
    }
}

/// The message with quoted-printable soft line breaks joined, so figures read whole.
fn body(m: &common::SmtpMessage) -> String {
    m.data.replace("=\r\n", "")
}

fn field(status: &tonic::Status) -> String {
    cobro_kit::error::error_detail(status).map(|d| d.field).unwrap_or_default()
}

fn statuses(preview: &pb::PreviewScheduleResponse) -> Vec<(u32, String)> {
    preview.messages.iter().map(|m| (m.step, m.status.clone())).collect()
}

#[tokio::test]
async fn reminders_follow_the_invoice_until_it_is_paid() {
    let h = H::new().await;
    h.policy().await;
    let customer = h.customer("luisa@tornillo.test").await;
    // Due in two days: the "3 days before" step is already past, so it goes out now; the rest
    // wait for their dates.
    let invoice = h.issue(customer, 2).await;
    let preview = h.preview(invoice).await;
    assert_eq!(statuses(&preview), vec![(0, "planned".into()), (1, "planned".into()), (2, "planned".into())]);
    assert!(!preview.paused);
    let first = preview.messages[0].send_at.as_ref().unwrap().seconds;
    assert!(first >= Utc::now().timestamp() - 5 && first <= Utc::now().timestamp() + 86_400, "today, not in the past");

    // Payments gives the invoice its transfer reference; reminders show it.
    let reference = ReferenceAssigned {
        reference: "RF18I0001".into(),
        customer_id: cobro_kit::ids::format("cus", customer),
        invoice_id: cobro_kit::ids::format("inv", invoice),
    };
    h.deliver("reference.assigned", "RF18I0001", &reference).await;

    // Its time comes.
    sqlx::query("UPDATE messages SET send_at = now() - interval '1 second' WHERE status = 'planned' AND step = 0")
        .execute(&h.db.pool)
        .await
        .unwrap();
    h.dispatch_all().await;
    let mails = h.sink.messages();
    // The invoice itself and the first reminder, both to the contact.
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(mails.iter().all(|m| m.recipients == vec!["luisa@tornillo.test".to_owned()]));
    assert!(mails.iter().any(|m| body(m).contains("1,000.00")), "{mails:?}");
    assert!(body(&mails[1]).contains("RF18I0001"), "the reminder shows the transfer reference: {}", mails[1].data);
    let link = format!("https://pay.acme.test/invoices/{}", cobro_kit::ids::format("inv", invoice));
    assert!(body(&mails[1]).contains(&link), "and where to pay: {}", mails[1].data);

    // Part is paid: the next reminder asks for what is left.
    let partial = PaymentApplied {
        payment_id: "pay_x".into(),
        invoice_id: cobro_kit::ids::format("inv", invoice),
        installment_id: String::new(),
        amount: money("600.00", "MXN"),
        balance: money("400.00", "MXN"),
    };
    h.deliver("invoice.payment_applied", &partial.invoice_id.clone(), &partial).await;
    sqlx::query("UPDATE messages SET send_at = now() - interval '1 second' WHERE status = 'planned' AND step = 1")
        .execute(&h.db.pool)
        .await
        .unwrap();
    h.dispatch_all().await;
    let mails = h.sink.messages();
    assert_eq!(mails.len(), 3);
    assert!(body(&mails[2]).contains("400.00") && !body(&mails[2]).contains("1,000.00"), "{}", mails[2].data);

    // Paid in full: nothing more goes out, whenever its date comes.
    let paid = h.invoice_event(invoice, customer, "paid", "0.00", 2);
    h.deliver("invoice.paid", &paid.invoice_id.clone(), &paid).await;
    h.everything_due().await;
    h.dispatch_all().await;
    assert_eq!(h.sink.messages().len(), 3);
    assert_eq!(
        statuses(&h.preview(invoice).await),
        vec![(0, "sent".into()), (1, "sent".into()), (2, "canceled".into())]
    );
    // The message list shows every message with how it went, one page at a time.
    let list = |page_token: String| pb::ListMessagesRequest {
        invoice_id: cobro_kit::ids::format("inv", invoice),
        page: Some(cobro_proto::common::v1::PageRequest { page_size: 3, page_token }),
        ..Default::default()
    };
    let first = h.client.clone().list_messages(h.req(list(String::new()))).await.unwrap().into_inner();
    let token = first.page.clone().unwrap().next_page_token;
    let second = h.client.clone().list_messages(h.req(list(token))).await.unwrap().into_inner();
    let mut seen: Vec<(String, String)> =
        first.messages.iter().chain(&second.messages).map(|m| (m.kind.clone(), m.status.clone())).collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("invoice_issued".into(), "sent".into()),
            ("reminder_final_notice".into(), "canceled".into()),
            ("reminder_firm".into(), "sent".into()),
            ("reminder_friendly".into(), "sent".into()),
        ]
    );
    let bad = pb::ListMessagesRequest { status: "lost".into(), ..Default::default() };
    assert_eq!(field(&h.client.clone().list_messages(h.req(bad)).await.unwrap_err()), "status");
    h.finish().await;
}

#[tokio::test]
async fn a_message_claimed_before_the_payment_arrived_is_not_sent_after_it() {
    let h = H::new().await;
    h.policy().await;
    let customer = h.customer("luisa@tornillo.test").await;
    let invoice = h.issue(customer, 20).await;
    h.dispatch_all().await; // the "invoice issued" email
    // The dispatcher re-reads the invoice at send time: a payment applied between planning and
    // sending wins even if its event came after the reminder was due.
    sqlx::query("UPDATE invoices SET balance = 0, status = 'paid'").execute(&h.db.pool).await.unwrap();
    h.everything_due().await;
    h.dispatch_all().await;
    assert_eq!(h.sink.messages().len(), 1);
    assert_eq!(h.count("SELECT count(*) FROM messages WHERE status = 'canceled'").await, 3);
    let _ = invoice;
    h.finish().await;
}

#[tokio::test]
async fn a_hardship_request_pauses_reminders_and_its_resolution_replans_them_from_today() {
    let h = H::new().await;
    h.policy().await;
    let customer = h.customer("luisa@tornillo.test").await;
    // Due yesterday; the customer asks for time before anything is sent (so the missed step
    // planned for today cannot have gone out already, whatever the time of day).
    let invoice = h.issue(customer, -1).await;
    let asked = h.invoice_event(invoice, customer, "open", "1000.00", -1);
    h.deliver("hardship.requested", &asked.invoice_id.clone(), &asked).await;
    let preview = h.preview(invoice).await;
    assert!(preview.paused);
    assert!(preview.messages.iter().all(|m| m.status != "planned"), "{preview:?}");
    h.everything_due().await;
    h.dispatch_all().await;
    // The staff hear of the request; the customer gets the invoice, but no reminder while the
    // request is open.
    let mails = h.sink.messages();
    let to = |address: &str| mails.iter().filter(|m| m.recipients == [address.to_owned()]).collect::<Vec<_>>();
    assert_eq!(to("cobranza@acme.test").len(), 1, "{mails:?}");
    let customer_mails: Vec<&str> = to("luisa@tornillo.test").iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(customer_mails.len(), 1, "{customer_mails:?}");
    assert!(customer_mails[0].starts_with("<invoice_issued"), "{customer_mails:?}");

    let resolved = h.invoice_event(invoice, customer, "open", "1000.00", -1);
    h.deliver("hardship.resolved", &resolved.invoice_id.clone(), &resolved).await;
    let preview = h.preview(invoice).await;
    assert!(!preview.paused);
    // Both earlier steps were missed while paused: only the later one (the due-date notice)
    // goes out, today, and the week-after step keeps its date.
    let planned: Vec<_> = preview.messages.iter().filter(|m| m.status == "planned").collect();
    assert_eq!(planned.iter().map(|m| m.step).collect::<Vec<_>>(), vec![1, 2], "{preview:?}");
    let at = planned[0].send_at.as_ref().unwrap().seconds;
    assert!(at >= Utc::now().timestamp() - 5, "re-planned from today, never in the past");
    assert!(at <= Utc::now().timestamp() + 86_400, "and not left for later");
    h.finish().await;
}

#[tokio::test]
async fn two_dispatchers_and_one_dying_mid_send_deliver_every_message_once() {
    let h = H::new().await;
    h.policy().await;
    let customer = h.customer("luisa@tornillo.test").await;
    for _ in 0..60 {
        h.issue(customer, 2).await;
    }
    h.everything_due().await;
    // 60 "invoice issued" emails and 3 reminders for each invoice, all due now.
    let due = h.count("SELECT count(*) FROM messages WHERE status = 'planned' AND send_at <= now()").await;
    assert_eq!(due, 240);

    // The first dispatcher dies with its messages handed to the SMTP server but not yet
    // accepted: the server holds its 250, and the process is gone before it comes.
    h.sink.hold_final_reply(Duration::from_secs(2));
    let doomed = Arc::new(H::app_on(&h.db.pool, &h.sink));
    let dying = tokio::spawn(Arc::clone(&doomed).dispatch_once());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while h.sink.unacknowledged_in_flight() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no message reached the server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    dying.abort();
    let _ = dying.await;
    drop(doomed);
    let stranded = h.count("SELECT count(*) FROM messages WHERE status = 'sending'").await;
    assert!(stranded > 0, "the dispatcher died before finishing anything");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.sink.abandoned() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the dying dispatcher's messages were never cut off");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.sink.hold_final_reply(Duration::ZERO);

    // Two dispatchers share the rest, and take over the stranded ones once their lease ends.
    let a = Arc::new(H::app_on(&h.db.pool, &h.sink));
    let b = Arc::new(H::app_on(&h.db.pool, &h.sink));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while h.count("SELECT count(*) FROM messages WHERE status <> 'sent'").await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "messages were left unsent");
        let (x, y) = tokio::join!(Arc::clone(&a).dispatch_once(), Arc::clone(&b).dispatch_once());
        if x.unwrap() + y.unwrap() == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mails = h.sink.messages();
    let mut ids: Vec<String> = mails.iter().map(|m| m.message_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((mails.len(), ids.len()), (240, 240), "every message once, none twice");
    h.finish().await;
}

#[tokio::test]
async fn a_policy_whose_template_uses_an_unknown_variable_is_refused_when_saved() {
    let h = H::new().await;
    let policy = pb::Policy {
        steps: vec![pb::Step {
            offset_days: 3,
            channels: vec!["email".into()],
            tone: "firm".into(),
            template: "own".into(),
            templates: vec![pb::StepTemplate {
                language: "es".into(),
                subject: "Factura {{ invoice_number }}".into(),
                text: "Debe {{ amount_dew }} {{ currency }}".into(),
                html: "<p>Debe {{ amount_due }}</p>".into(),
                sms: "Debe {{ amount_due }}".into(),
            }],
        }],
        ..Default::default()
    };
    let err = h
        .client
        .clone()
        .upsert_policy(h.req(pb::UpsertPolicyRequest { policy: Some(policy.clone()) }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("amount_dew"), "{}", err.message());
    let named = field(&err);
    assert_eq!(named, "policy.steps[0].templates[0].text");
    let listed = h.client.clone().list_policies(h.req(pb::ListPoliciesRequest {})).await.unwrap().into_inner();
    assert!(listed.policies.is_empty(), "nothing was saved");

    // Other bad input names its field too.
    for (bad, named) in [
        (pb::Policy { send_at: "9am".into(), ..policy.clone() }, "policy.send_at"),
        (pb::Policy { default_timezone: "Mars/Olympus".into(), ..policy.clone() }, "policy.default_timezone"),
        (pb::Policy { sender_email: "not an address".into(), ..policy.clone() }, "policy.sender_email"),
        (
            pb::Policy { holidays: vec!["2026-12-25".into(), "Christmas".into()], ..policy.clone() },
            "policy.holidays[1]",
        ),
        (
            pb::Policy {
                templates: vec![pb::MessageTemplate {
                    kind: "invoice_issued".into(),
                    language: "en".into(),
                    subject: "Invoice {{ invoice_number }}".into(),
                    text: "{{ amount_due }} {{ curency }}".into(),
                    html: "<p>{{ amount_due }}</p>".into(),
                    sms: "{{ amount_due }}".into(),
                }],
                ..policy.clone()
            },
            "policy.templates[0].text",
        ),
    ] {
        let err =
            h.client.clone().upsert_policy(h.req(pb::UpsertPolicyRequest { policy: Some(bad) })).await.unwrap_err();
        assert_eq!(field(&err), named);
    }
    h.finish().await;
}

#[tokio::test]
async fn an_opted_out_contact_gets_no_email_and_another_tenants_ids_answer_not_found() {
    let h = H::new().await;
    h.policy().await;
    let customer = h.customer("luisa@tornillo.test").await;
    // Written as the contact typed it: it matches the address reminders go to all the same.
    let opt_out = pb::SetOptOutRequest {
        customer_id: cobro_kit::ids::format("cus", customer),
        address: " Luisa@Tornillo.TEST ".into(),
        channel: "email".into(),
        opted_out: true,
    };
    h.client.clone().set_opt_out(h.req(opt_out.clone())).await.unwrap();
    let invoice = h.issue(customer, 2).await;
    h.everything_due().await;
    h.dispatch_all().await;
    assert!(h.sink.messages().is_empty());
    assert!(h.count("SELECT count(*) FROM messages WHERE status = 'canceled'").await >= 2);

    let other = Uuid::now_v7();
    let err = h
        .client
        .clone()
        .preview_schedule(
            h.req_as(other, pb::PreviewScheduleRequest { invoice_id: cobro_kit::ids::format("inv", invoice) }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = h.client.clone().set_opt_out(h.req_as(other, opt_out.clone())).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    // A portal contact opts their own customer's people in or out, by email, SMS or WhatsApp;
    // another customer answers NotFound, and webhooks are not theirs to switch.
    let as_contact = |customer_id: Uuid, message: pb::SetOptOutRequest| {
        let mut claims = h.issuer.claims(h.tenant, PrincipalKind::Customer, &["portal:pay", "portal:read"]);
        claims.cid = Some(customer_id);
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", format!("Bearer {}", h.issuer.sign(&claims)).parse().unwrap());
        request
    };
    let back_in = pb::SetOptOutRequest { opted_out: false, ..opt_out.clone() };
    h.client.clone().set_opt_out(as_contact(customer, back_in.clone())).await.unwrap();
    let err = h.client.clone().set_opt_out(as_contact(Uuid::now_v7(), back_in.clone())).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let webhook =
        pb::SetOptOutRequest { channel: "webhook".into(), address: "https://erp.example.com/hook".into(), ..back_in };
    let err = h.client.clone().set_opt_out(as_contact(customer, webhook)).await.unwrap_err();
    assert_eq!(field(&err), "channel");
    let pause =
        pb::PauseRemindersRequest { invoice_id: cobro_kit::ids::format("inv", invoice), customer_id: String::new() };
    let err = h.client.clone().pause_reminders(h.req_as(other, pause)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    h.finish().await;
}

#[tokio::test]
async fn a_refusing_server_is_retried_then_the_message_is_dead_lettered() {
    let h = H::new().await;
    h.policy().await;
    let customer = h.customer("luisa@tornillo.test").await;
    h.sink.fail_always(451);
    h.issue(customer, 30).await; // only the "invoice issued" email is due now
    for _ in 0..3 {
        Arc::clone(&h.app).dispatch_once().await.unwrap();
        h.everything_due().await;
    }
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM messages WHERE kind = 'invoice_issued'")
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("dead_lettered", 3));
    assert_eq!(h.count("SELECT count(*) FROM outbox WHERE event_type = 'message.dead_lettered'").await, 1);
    // Staff are told, once the server takes mail again.
    h.sink.clear_failures();
    h.dispatch_all().await;
    let staff: Vec<_> =
        h.sink.messages().into_iter().filter(|m| m.recipients == vec!["cobranza@acme.test".to_owned()]).collect();
    assert_eq!(staff.len(), 1, "one notice for the one dead letter");
    assert!(body(&staff[0]).contains("451"), "the last answer is in the notice: {}", staff[0].data);
    h.finish().await;
}

#[tokio::test]
async fn the_daily_cap_holds_when_many_reminders_fall_due_at_once() {
    let h = H::new().await;
    h.policy_with_cap(2).await;
    let customer = h.customer("luisa@tornillo.test").await;
    // Due in four days, so no earlier step is already due at any time of day (in Mexico City the
    // date lags UTC until 06:00); the test brings the due-date notices forward itself.
    for _ in 0..5 {
        h.issue(customer, 4).await;
    }
    // The five due-date notices all fall due together (the invoices' own emails do not count).
    sqlx::query("UPDATE messages SET send_at = now() - interval '1 second' WHERE status = 'planned' AND tone = 'firm'")
        .execute(&h.db.pool)
        .await
        .unwrap();
    h.dispatch_all().await;
    let reminders = h.count("SELECT count(*) FROM messages WHERE status = 'sent' AND step IS NOT NULL").await;
    assert_eq!(reminders, 2, "two a day");
    let tomorrow = h
        .count(
            "SELECT count(*) FROM messages WHERE status = 'planned' AND tone = 'firm' \
             AND send_at > now() + interval '20 hours' AND attempts = 0",
        )
        .await;
    assert_eq!(tomorrow, 3, "the rest wait for tomorrow without counting a try");
    h.finish().await;
}

#[tokio::test]
async fn pausing_a_customer_holds_invoices_issued_later_too() {
    let h = H::new().await;
    h.policy().await;
    let customer = h.customer("luisa@tornillo.test").await;
    let pause =
        pb::PauseRemindersRequest { invoice_id: String::new(), customer_id: cobro_kit::ids::format("cus", customer) };
    h.client.clone().pause_reminders(h.req(pause.clone())).await.unwrap();
    let invoice = h.issue(customer, 5).await;
    assert!(h.preview(invoice).await.messages.iter().all(|m| m.status != "planned"));
    h.everything_due().await;
    h.dispatch_all().await;
    let reminders = h.count("SELECT count(*) FROM messages WHERE status = 'sent' AND step IS NOT NULL").await;
    assert_eq!(reminders, 0, "no reminder while paused");
    assert_eq!(h.sink.messages().len(), 1, "only the invoice itself");

    h.client.clone().resume_reminders(h.req(pause)).await.unwrap();
    let planned = h.preview(invoice).await.messages.iter().filter(|m| m.status == "planned").count();
    assert_eq!(planned, 3);
    h.finish().await;
}

#[tokio::test]
async fn a_test_message_renders_a_built_in_template_and_bad_input_names_the_field() {
    let h = H::new().await;
    let request = pb::SendTestRequest {
        channel: "email".into(),
        address: "qa@acme.test".into(),
        template: "reminder_final_notice".into(),
        language: "pt".into(),
    };
    let sent = h.client.clone().send_test(h.req(request.clone())).await.unwrap().into_inner();
    assert_eq!((sent.status.as_str(), sent.kind.as_str()), ("sent", "test"));
    let mails = h.sink.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].recipients, vec!["qa@acme.test".to_owned()]);
    for (bad, named) in [
        (pb::SendTestRequest { address: "qa at acme".into(), ..request.clone() }, "address"),
        (pb::SendTestRequest { channel: "pigeon".into(), ..request.clone() }, "channel"),
        (pb::SendTestRequest { template: "reminder_gentle".into(), ..request.clone() }, "template"),
        (pb::SendTestRequest { channel: "sms".into(), address: "12".into(), ..request.clone() }, "address"),
    ] {
        let err = h.client.clone().send_test(h.req(bad)).await.unwrap_err();
        assert_eq!((err.code(), field(&err)), (tonic::Code::InvalidArgument, named.to_owned()));
    }
    // Portal contacts cannot send anything.
    let mut contact = Request::new(request);
    let token = h.issuer.token(h.tenant, PrincipalKind::Customer, &["portal:read"]);
    contact.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    assert_eq!(h.client.clone().send_test(contact).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    h.finish().await;
}

#[tokio::test]
async fn installments_are_reminded_on_their_own_dates_and_a_paid_one_stops() {
    let h = H::new().await;
    h.policy().await;
    let customer = h.customer("luisa@tornillo.test").await;
    let invoice = h.issue(customer, 60).await;
    let today = Utc::now().date_naive();
    let part = |seq: u32, days: u64| PlannedInstallment {
        installment_id: cobro_kit::ids::format("ins", Uuid::now_v7()),
        seq,
        due_date: today.checked_add_days(Days::new(days)).unwrap().to_string(),
        amount: money("500.00", "MXN"),
        balance: money("500.00", "MXN"),
    };
    let plan = InstallmentsPlanned {
        invoice_id: cobro_kit::ids::format("inv", invoice),
        installments: vec![part(1, 10), part(2, 40)],
    };
    h.deliver("installments.planned", &plan.invoice_id.clone(), &plan).await;
    // Each installment gets the policy's three steps around its own due date; the invoice's
    // own schedule is gone.
    let preview = h.preview(invoice).await;
    let planned: Vec<_> = preview.messages.iter().filter(|m| m.status == "planned").collect();
    assert_eq!(planned.len(), 6, "{preview:?}");
    let first_due = today.checked_add_days(Days::new(10)).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    assert!(planned.iter().filter(|m| m.send_at.as_ref().unwrap().seconds < first_due + 2 * 86_400).count() == 2);

    // The first installment is paid: its reminders stop, the second's stay.
    let paid = PaymentApplied {
        payment_id: "pay_1".into(),
        invoice_id: cobro_kit::ids::format("inv", invoice),
        installment_id: plan.installments[0].installment_id.clone(),
        amount: money("500.00", "MXN"),
        balance: money("500.00", "MXN"),
    };
    h.deliver("invoice.payment_applied", &paid.invoice_id.clone(), &paid).await;
    let planned = h.preview(invoice).await.messages.iter().filter(|m| m.status == "planned").count();
    assert_eq!(planned, 3);

    // The second's reminder asks for its own amount and names it.
    h.everything_due().await;
    h.dispatch_all().await;
    let reminders: Vec<_> = h.sink.messages().into_iter().filter(|m| !m.data.contains("invoice_issued")).collect();
    assert_eq!(reminders.len(), 3, "the second installment's three reminders");
    assert!(
        reminders.iter().all(|m| body(m).contains("500.00") && !body(m).contains("1,000.00")),
        "{:?}",
        reminders[0].data
    );
    h.finish().await;
}

#[tokio::test]
async fn an_autopay_customer_is_told_of_the_charge_instead_of_reminded_before_it() {
    let h = H::new().await;
    h.policy().await;
    let customer = h.customer_with("luisa@tornillo.test", true).await;
    let invoice = h.issue(customer, 10).await;
    // No "3 days before" reminder: the card is charged on the due date. The reminders after it
    // stay, in case the charge fails.
    let steps: Vec<u32> =
        h.preview(invoice).await.messages.iter().filter(|m| m.status == "planned").map(|m| m.step).collect();
    assert_eq!(steps, vec![1, 2]);
    let notice: (String, i64) = sqlx::query_as(
        "SELECT status, (EXTRACT(EPOCH FROM send_at) - EXTRACT(EPOCH FROM now()))::bigint FROM messages \
         WHERE kind = 'autopay_upcoming'",
    )
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(notice.0, "planned");
    assert!((5 * 86_400..9 * 86_400).contains(&notice.1), "three days before the due date: {}", notice.1);
    sqlx::query("UPDATE messages SET send_at = now() - interval '1 second' WHERE kind = 'autopay_upcoming'")
        .execute(&h.db.pool)
        .await
        .unwrap();
    h.dispatch_all().await;
    let notices: Vec<_> = h.sink.messages().into_iter().filter(|m| m.message_id.contains("autopay_upcoming")).collect();
    assert_eq!(notices.len(), 1);
    assert!(body(&notices[0]).contains("1,000.00"), "{}", notices[0].data);
    h.finish().await;
}

#[tokio::test]
async fn sms_and_signed_webhook_reminders_go_out_through_their_providers() {
    let h = H::new().await;
    let twilio = common::HttpStub::twilio().await;
    let secret = "whsec_test_0123456789abcdef";
    let receiver = common::HttpStub::webhook_receiver(secret).await;
    let policy = pb::Policy {
        steps: vec![pb::Step {
            offset_days: 0,
            channels: vec!["sms".into(), "webhook".into()],
            tone: "firm".into(),
            template: "reminder_firm".into(),
            templates: Vec::new(),
        }],
        quiet_start: "00:00".into(),
        quiet_end: "00:00".into(),
        sender_name: "Acme".into(),
        webhook_url: format!("{}/hooks/cobro", receiver.url()),
        webhook_secret: secret.into(),
        ..Default::default()
    };
    h.client.clone().upsert_policy(h.req(pb::UpsertPolicyRequest { policy: Some(policy) })).await.unwrap();
    let customer = Uuid::now_v7();
    let event = CustomerUpserted {
        customer_id: cobro_kit::ids::format("cus", customer),
        legal_name: "Ferretería El Tornillo".into(),
        contacts: vec![CustomerContact {
            name: "Luisa".into(),
            phone: "+52 55 1234 5678".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    h.deliver("customer.upserted", &event.customer_id.clone(), &event).await;
    let invoice = h.issue(customer, 0).await;

    let sms = cobro_notifications::channels::TwilioSms::new(
        cobro_notifications::channels::HttpClient::new(),
        cobro_notifications::channels::TwilioConfig {
            base_url: twilio.url().to_owned(),
            ..cobro_notifications::channels::TwilioConfig::new(
                "AC00000000000000000000000000000001",
                secrecy::SecretString::from("twilio-token".to_owned()),
                cobro_notifications::channels::TwilioSender::From("+15005550006".into()),
            )
        },
    )
    .unwrap();
    let channels = Channels {
        sms: Some(AnyChannel::from(sms)),
        webhook: Some(cobro_notifications::app::WebhookSettings {
            client: cobro_notifications::channels::HttpClient::new(),
            allow_local: true,
        }),
        ..Channels::default()
    };
    let app = Arc::new(Notifications::new(h.db.pool.clone(), channels, pace()));
    h.everything_due().await;
    while Arc::clone(&app).dispatch_once().await.unwrap() > 0 {}

    let texts = twilio.requests();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].field("To").as_deref(), Some("+525512345678"));
    let number = format!("F-{}", &invoice.simple().to_string()[26..]);
    assert!(texts[0].field("Body").unwrap_or_default().contains(&number));
    let hooks = receiver.requests();
    assert_eq!(hooks.len(), 1, "one signed delivery, accepted by the tenant's check");
    assert_eq!(hooks[0].json()["invoice_number"], number.as_str());
    let sent = h.count("SELECT count(*) FROM messages WHERE status = 'sent' AND channel IN ('sms', 'webhook')").await;
    assert_eq!(sent, 2, "the receiver verified the signature (a bad one would be refused and fail)");
    h.finish().await;
}

#[tokio::test]
async fn a_tenants_own_wording_replaces_the_built_in_one_for_one_off_messages() {
    let h = H::new().await;
    let policy = pb::Policy {
        templates: vec![pb::MessageTemplate {
            kind: "invoice_issued".into(),
            language: "es".into(),
            subject: "Ferretería Acme: su factura {{ invoice_number }}".into(),
            text: "Total {{ amount_due }} {{ currency }}, vence {{ due_date }}.".into(),
            html: "<p>Total {{ amount_due }} {{ currency }}</p>".into(),
            sms: "Factura {{ invoice_number }}".into(),
        }],
        steps: vec![pb::Step {
            offset_days: 3,
            channels: vec!["email".into()],
            tone: "firm".into(),
            template: "reminder_firm".into(),
            templates: Vec::new(),
        }],
        ..Default::default()
    };
    h.client.clone().upsert_policy(h.req(pb::UpsertPolicyRequest { policy: Some(policy) })).await.unwrap();
    let customer = h.customer("luisa@tornillo.test").await;
    let invoice = h.issue(customer, 30).await;
    h.dispatch_all().await;
    let mails = h.sink.messages();
    assert_eq!(mails.len(), 1);
    let number = format!("F-{}", &invoice.simple().to_string()[26..]);
    assert!(body(&mails[0]).contains("Total 1,000.00 MXN"), "{}", mails[0].data);
    assert!(mails[0].data.contains(&number));
    h.finish().await;
}

#[tokio::test]
async fn a_payment_taken_back_brings_the_reminders_back() {
    let h = H::new().await;
    h.policy().await;
    let customer = h.customer("ana@cliente.test").await;
    let invoice = h.issue(customer, 10).await;
    let paid = h.invoice_event(invoice, customer, "paid", "0.00", 10);
    h.deliver("invoice.paid", &paid.invoice_id.clone(), &paid).await;
    assert_eq!(h.count("SELECT count(*) FROM messages WHERE status = 'planned' AND step IS NOT NULL").await, 0);

    // The bank match that paid it was undone: the invoice is open again, and so are its reminders.
    let reopened = h.invoice_event(invoice, customer, "open", "1000.00", 10);
    h.deliver("invoice.payment_reversed", &reopened.invoice_id.clone(), &reopened).await;
    let planned = statuses(&h.preview(invoice).await);
    assert!(planned.iter().filter(|(_, status)| status == "planned").count() >= 3, "{planned:?}");
    h.finish().await;
}

//! The platform under faults, each against infrastructure of the test's own so stopping it
//! harms no other test: the broker stopped for 30 seconds while a card pays an invoice
//! (nothing lost, nothing twice); Redis stopped (money keeps moving; signing in fails closed
//! and comes back with Redis); a processor slower than the deadline; payments killed during
//! confirms; and PostgreSQL restarted under payments load (callers see errors at most, no card
//! is charged twice, every service comes back).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cobro_e2e::platform::{Customer, Options, Platform, Tenant};
use cobro_e2e::web::Web;
use cobro_kit::testing::{RedisServer, TansuBroker, eventually};
use cobro_proto::invoicing::v1 as invpb;
use cobro_proto::payments::v1 as paypb;
use cobro_proto::payments::v1::payments_service_client::PaymentsServiceClient;

/// A payment intent for `invoice`, once payments has learned of it from invoicing's events.
async fn intent_for(platform: &Platform, tenant: &Tenant, customer: &Customer, invoice: &str) -> paypb::PaymentIntent {
    let payments = PaymentsServiceClient::new(platform.payments.clone());
    let create = paypb::CreatePaymentIntentRequest {
        idempotency_key: format!("pay-{invoice}"),
        customer_id: customer.id.clone(),
        invoice_ids: vec![invoice.to_owned()],
        ..Default::default()
    };
    let known = eventually(Duration::from_secs(30), || {
        let (mut payments, request) = (payments.clone(), tenant.staff(create.clone()));
        async move { payments.create_payment_intent(request).await.is_ok() }
    })
    .await;
    let intent = payments.clone().create_payment_intent(tenant.staff(create)).await;
    assert!(known, "payments never learned of the invoice: {intent:?}");
    intent.unwrap().into_inner()
}

/// Pay `invoice` with the sandbox's always-approved card, as staff taking it by phone.
async fn pay_by_card(platform: &Platform, tenant: &Tenant, customer: &Customer, invoice: &str) -> paypb::PaymentIntent {
    let mut payments = PaymentsServiceClient::new(platform.payments.clone());
    let intent = intent_for(platform, tenant, customer, invoice).await;
    let confirm = paypb::ConfirmPaymentIntentRequest {
        idempotency_key: format!("confirm-{invoice}"),
        id: intent.id.clone(),
        method: Some(paypb::confirm_payment_intent_request::Method::Card(cobro_e2e::platform::card(
            "4242424242424242",
        ))),
        ..Default::default()
    };
    payments.confirm_payment_intent(tenant.staff(confirm)).await.unwrap().into_inner()
}

async fn invoice_of(platform: &Platform, tenant: &Tenant, id: &str) -> invpb::Invoice {
    let request = tenant.staff(invpb::GetInvoiceRequest { id: id.to_owned() });
    platform.invoicing_client().get_invoice(request).await.unwrap().into_inner()
}

#[tokio::test]
async fn a_card_payment_made_while_the_broker_is_down_pays_the_invoice_once_it_is_back() {
    let mut broker = TansuBroker::start().await;
    let brokers = broker.kafka().brokers.join(",");
    let platform = Platform::start_with(Options { kafka_brokers: Some(brokers), ..Options::default() }).await;
    let tenant = platform.tenant().await;
    let customer = platform.customer(&tenant, "Constructora Álamo S.A. de C.V.", "es").await;
    let invoice = platform.open_invoice(&tenant, &customer, "4150.00").await;
    let before =
        pay_by_card(&platform, &tenant, &customer, &platform.open_invoice(&tenant, &customer, "10.00").await).await;
    assert_eq!(before.status, "succeeded", "the platform works before the fault");

    broker.kill();
    let paid = pay_by_card(&platform, &tenant, &customer, &invoice).await;
    assert_eq!(paid.status, "succeeded", "card payments do not wait for the broker");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(invoice_of(&platform, &tenant, &invoice).await.status, "open", "the news is still in payments' outbox");

    broker.restart().await;
    let settled = eventually(Duration::from_secs(90), || {
        let (platform, tenant, invoice) = (&platform, &tenant, &invoice);
        async move { invoice_of(platform, tenant, invoice).await.status == "paid" }
    })
    .await;
    assert!(settled, "the invoice was never paid after the broker came back");
    // Nothing twice: the payment was applied once, and a while later still once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = invoice_of(&platform, &tenant, &invoice).await;
    assert_eq!(after.paid.map(|m| m.amount), Some("4150.00".to_owned()));
    assert_eq!(after.balance.map(|m| m.amount), Some("0.00".to_owned()));
    platform.stop().await;
}

#[tokio::test]
async fn with_redis_down_money_keeps_moving_and_signing_in_fails_closed() {
    let mut redis = RedisServer::start().await;
    let platform = Platform::start_with(Options { redis_url: Some(redis.url()), ..Options::default() }).await;
    let tenant = platform.tenant().await;
    let customer = platform.customer(&tenant, "Ferretería La Esperanza", "es").await;
    let first = platform.open_invoice(&tenant, &customer, "980.00").await;

    redis.kill();
    // Invoicing and payments keep working: Postgres holds what matters.
    let second = platform.open_invoice(&tenant, &customer, "1200.00").await;
    assert_eq!(invoice_of(&platform, &tenant, &second).await.status, "open");
    let paid = pay_by_card(&platform, &tenant, &customer, &first).await;
    assert_eq!(paid.status, "succeeded");
    // Signing in needs Redis (sessions, attempt counters): it refuses rather than guess.
    let web = Web::new(&platform.gateway_url);
    assert_eq!(web.get("/signin").await.status, 503, "no session store, no sign-in page");
    let login = platform
        .identity_client()
        .login(cobro_proto::identity::v1::LoginRequest {
            tenant: tenant.slug.clone(),
            email: customer.email.clone(),
            password: customer.password.clone(),
            client_ip: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(login.code(), tonic::Code::Unavailable, "identity fails closed: {login:?}");

    redis.restart().await;
    let back = eventually(Duration::from_secs(30), || {
        let web = web.clone();
        async move { web.get("/signin").await.status == 200 }
    })
    .await;
    assert!(back, "sign-in came back with Redis");
    web.sign_in_contact(&tenant, &customer).await;
    let page = web.get("/portal").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Total por pagar"), "{}", page.body);
    let paid_later = eventually(Duration::from_secs(30), || {
        let (platform, tenant, first) = (&platform, &tenant, &first);
        async move { invoice_of(platform, tenant, first).await.status == "paid" }
    })
    .await;
    assert!(paid_later, "the payment made without Redis paid the invoice");
    platform.stop().await;
}

/// A processor slower than the platform's request deadline: the payer's call times out, and
/// recovery settles the attempt from what the processor says, so no payment stays stuck in
/// `processing` and no card is charged twice.
#[tokio::test]
async fn a_slow_processor_times_out_and_recovery_leaves_no_payment_stuck() {
    let platform = Platform::start_with(Options {
        overrides: vec![
            ("payments.sandbox.latency".into(), "3s".into()),
            ("grpc.request_timeout".into(), "2s".into()),
            ("payments.job_interval".into(), "1s".into()),
            ("payments.recover_after".into(), "30s".into()),
        ],
        ..Options::default()
    })
    .await;
    let tenant = platform.tenant().await;
    let customer = platform.customer(&tenant, "Ferretería La Esperanza", "es").await;
    let invoice = platform.open_invoice(&tenant, &customer, "640.00").await;
    let mut payments = PaymentsServiceClient::new(platform.payments.clone());
    let intent = intent_for(&platform, &tenant, &customer, &invoice).await;
    let confirm = paypb::ConfirmPaymentIntentRequest {
        idempotency_key: format!("confirm-{invoice}"),
        id: intent.id.clone(),
        method: Some(paypb::confirm_payment_intent_request::Method::Card(cobro_e2e::platform::card(
            "4242424242424242",
        ))),
        ..Default::default()
    };
    let slow = payments.confirm_payment_intent(tenant.staff(confirm.clone())).await;
    let err = slow.expect_err("the processor is slower than the deadline");
    assert!(
        matches!(err.code(), tonic::Code::Cancelled | tonic::Code::DeadlineExceeded | tonic::Code::Unavailable),
        "a timeout, not a verdict: {err:?}"
    );

    let get = || {
        let (mut payments, request) =
            (payments.clone(), tenant.staff(paypb::GetPaymentIntentRequest { id: intent.id.clone() }));
        async move { payments.get_payment_intent(request).await.unwrap().into_inner() }
    };
    let settled = eventually(Duration::from_secs(90), || {
        let get = &get;
        async move { get().await.status != "processing" }
    })
    .await;
    let now = get().await;
    assert!(settled, "the payment is stuck in processing: {now:?}");
    // Whatever the processor said, the card was charged at most once.
    let db = platform.observe().await;
    let charges: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM payments.sandbox_charges WHERE tenant_id = $1 AND status = 'succeeded'",
    )
    .bind(tenant.id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(charges <= 1, "{charges} charges for one payment");
    assert_eq!(now.status == "succeeded", charges == 1, "the payment says what the processor did: {now:?}");
    platform.stop().await;
}

/// The payments service dies while card payments are in flight: once it is back, recovery
/// settles every attempt from what the processor says; none stays `processing`, no card is
/// charged twice, and each payment that succeeded paid its invoice exactly once.
#[tokio::test]
async fn payments_killed_during_confirms_recovers_every_attempt() {
    let mut platform = Platform::start_with(Options {
        overrides: vec![
            ("payments.sandbox.latency".into(), "400ms".into()),
            ("payments.job_interval".into(), "1s".into()),
            ("payments.recover_after".into(), "30s".into()),
        ],
        processes: vec!["payments"],
        ..Options::default()
    })
    .await;
    let tenant = platform.tenant().await;
    let customer = platform.customer(&tenant, "Constructora Álamo S.A. de C.V.", "es").await;
    let payments = PaymentsServiceClient::new(platform.payments.clone());
    let mut intents = Vec::new();
    for n in 0..6 {
        let invoice = platform.open_invoice(&tenant, &customer, &format!("{}.00", 500 + n)).await;
        let intent = intent_for(&platform, &tenant, &customer, &invoice).await;
        intents.push((invoice, intent.id));
    }

    let mut confirms = tokio::task::JoinSet::new();
    for (invoice, id) in &intents {
        let mut payments = payments.clone();
        let request = tenant.staff(paypb::ConfirmPaymentIntentRequest {
            idempotency_key: format!("confirm-{invoice}"),
            id: id.clone(),
            method: Some(paypb::confirm_payment_intent_request::Method::Card(cobro_e2e::platform::card(
                "4242424242424242",
            ))),
            ..Default::default()
        });
        confirms.spawn(async move { payments.confirm_payment_intent(request).await.map(|r| r.into_inner().status) });
    }
    // Mid-flight: the processor takes 400 ms a call, so the confirms are at the processor now.
    tokio::time::sleep(Duration::from_millis(250)).await;
    platform.kill("payments").await;
    let mut answered = Vec::new();
    while let Some(done) = confirms.join_next().await {
        answered.push(done.unwrap().map_err(|s| s.code()));
    }
    assert!(answered.iter().any(Result::is_err), "the crash cut some confirms short: {answered:?}");
    platform.restart("payments").await;

    let db = platform.observe().await;
    let get = |id: String| {
        let (mut payments, request) = (payments.clone(), tenant.staff(paypb::GetPaymentIntentRequest { id }));
        async move { payments.get_payment_intent(request).await.map(|r| r.into_inner().status).unwrap_or_default() }
    };
    for (invoice, id) in &intents {
        let settled = eventually(Duration::from_secs(90), || {
            let get = &get;
            async move { !matches!(get(id.clone()).await.as_str(), "processing" | "") }
        })
        .await;
        let status = get(id.clone()).await;
        assert!(settled, "{id} is stuck: {status}");
        let intent_id = cobro_kit::ids::parse("id", "pay", id).unwrap();
        let charges: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM payments.sandbox_charges c JOIN payments.attempts a \
             ON a.tenant_id = c.tenant_id AND a.id = c.attempt_id \
             WHERE c.tenant_id = $1 AND a.intent_id = $2 AND c.status = 'succeeded'",
        )
        .bind(tenant.id)
        .bind(intent_id)
        .fetch_one(&db)
        .await
        .unwrap();
        assert!(charges <= 1, "{id}: {charges} charges");
        assert_eq!(status == "succeeded", charges == 1, "{id} says {status} with {charges} charges");
        if status == "succeeded" {
            let paid = eventually(Duration::from_secs(60), || {
                let (platform, tenant, invoice) = (&platform, &tenant, invoice);
                async move { invoice_of(platform, tenant, invoice).await.status == "paid" }
            })
            .await;
            assert!(paid, "{invoice} was charged but not paid");
            let after = invoice_of(&platform, &tenant, invoice).await;
            assert_eq!(after.paid, after.total, "{invoice} paid once");
        }
    }
    platform.stop().await;
}

/// Payments made before the server went down, while it was being restarted, and after it was
/// back.
#[derive(Default)]
struct Phases {
    now: std::sync::atomic::AtomicUsize,
    paid: [std::sync::atomic::AtomicUsize; 3],
}

impl Phases {
    const BEFORE: usize = 0;
    const RESTARTING: usize = 1;
    const BACK: usize = 2;

    fn enter(&self, phase: usize) {
        self.now.store(phase, std::sync::atomic::Ordering::SeqCst);
    }

    fn paid(&self) {
        let phase = self.now.load(std::sync::atomic::Ordering::SeqCst);
        self.paid[phase].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn count(&self, phase: usize) -> usize {
        self.paid[phase].load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A careful payer: after an error it asks how the payment stands before doing anything
/// again, confirms again only a payment no attempt was made for, waits while one is being
/// settled, and starts a new payment only after a definite decline. Returns the codes of the
/// errors it saw.
async fn pay_until_paid(
    platform: &Platform,
    tenant: &Tenant,
    customer: &Customer,
    invoice: &str,
    phases: &Phases,
) -> Vec<tonic::Code> {
    let payments = PaymentsServiceClient::new(platform.payments.clone());
    let mut errors = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    let mut round = 0;
    let mut intent: Option<String> = None;
    let mut confirms = 0;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "{invoice} never paid; errors {errors:?}");
        let Some(id) = intent.clone() else {
            let create = paypb::CreatePaymentIntentRequest {
                idempotency_key: format!("pay-{invoice}-{round}"),
                customer_id: customer.id.clone(),
                invoice_ids: vec![invoice.to_owned()],
                ..Default::default()
            };
            match payments.clone().create_payment_intent(tenant.staff(create)).await {
                Ok(created) => intent = Some(created.into_inner().id),
                Err(status) => {
                    errors.push(status.code());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            continue;
        };
        let current = match payments
            .clone()
            .get_payment_intent(tenant.staff(paypb::GetPaymentIntentRequest { id: id.clone() }))
            .await
        {
            Ok(current) => current.into_inner().status,
            Err(status) => {
                errors.push(status.code());
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        match current.as_str() {
            "succeeded" => {
                phases.paid();
                return errors;
            }
            // Declined (the processor could not be reached): a new payment, as a payer would.
            "failed" | "canceled" => {
                round += 1;
                intent = None;
            }
            "requires_payment_method" => {
                // No attempt on record: confirming again is safe, under a key of its own.
                confirms += 1;
                let confirm = paypb::ConfirmPaymentIntentRequest {
                    idempotency_key: format!("confirm-{invoice}-{round}-{confirms}"),
                    id,
                    method: Some(paypb::confirm_payment_intent_request::Method::Card(cobro_e2e::platform::card(
                        "4242424242424242",
                    ))),
                    ..Default::default()
                };
                if let Err(status) = payments.clone().confirm_payment_intent(tenant.staff(confirm)).await {
                    errors.push(status.code());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            // An attempt is being settled (by recovery, if its answer was lost): wait.
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

#[tokio::test]
async fn postgres_restarted_during_payments_load_charges_no_card_twice_and_every_service_recovers() {
    let server = cobro_e2e::postgres::PrivatePostgres::start(&[
        "identity",
        "vault",
        "invoicing",
        "payments",
        "notifications",
        "reconciliation",
    ])
    .await;
    let platform = Platform::start_with(Options {
        postgres_port: Some(server.port),
        overrides: vec![("payments.job_interval".into(), "1s".into()), ("payments.recover_after".into(), "30s".into())],
        ..Options::default()
    })
    .await;
    let tenant = platform.tenant().await;
    let customer = platform.customer(&tenant, "Constructora Álamo S.A. de C.V.", "es").await;
    let mut invoices = Vec::new();
    for n in 0..48 {
        invoices.push(platform.open_invoice(&tenant, &customer, &format!("{}.00", 700 + n)).await);
    }
    // Payments hears of the invoices through the broker before anyone pays.
    intent_for(&platform, &tenant, &customer, invoices.last().unwrap()).await;

    // Four payers, twelve invoices each, one after another at a payer's pace; the server goes
    // down once a few are paid, and is back while most are still to pay.
    let phases = Phases::default();
    let payers = invoices.chunks(12).map(|mine| {
        let (platform, tenant, customer, phases) = (&platform, &tenant, &customer, &phases);
        async move {
            let mut errors = Vec::new();
            for invoice in mine {
                errors.extend(pay_until_paid(platform, tenant, customer, invoice, phases).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            errors
        }
    });
    let restart = async {
        let started = eventually(Duration::from_secs(60), || {
            let phases = &phases;
            async move { phases.count(Phases::BEFORE) >= 4 }
        })
        .await;
        assert!(started, "payments were flowing before the restart");
        phases.enter(Phases::RESTARTING);
        server.restart(Duration::from_secs(3)).await;
        phases.enter(Phases::BACK);
    };
    let (errors, ()) = tokio::join!(futures_util::future::join_all(payers), restart);
    let errors: Vec<tonic::Code> = errors.into_iter().flatten().collect();
    assert!(phases.count(Phases::BACK) > 0, "payments were still being made when the server came back");
    // Callers see errors at most (most calls just wait for the pool's next connection): the
    // server was away, their call timed out, or their request's key was still busy; never a
    // refusal of what they asked.
    let unexpected: Vec<_> = errors
        .iter()
        .filter(|c| {
            !matches!(
                c,
                tonic::Code::Unavailable
                    | tonic::Code::Internal
                    | tonic::Code::Aborted
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
                    | tonic::Code::DeadlineExceeded
            )
        })
        .collect();
    assert!(unexpected.is_empty(), "callers saw {errors:?}");

    // No card charged twice: one succeeded charge per invoice, and each invoice paid once.
    let db = platform.observe().await;
    for invoice in &invoices {
        let paid = eventually(Duration::from_secs(90), || {
            let (platform, tenant, invoice) = (&platform, &tenant, invoice);
            async move { invoice_of(platform, tenant, invoice).await.status == "paid" }
        })
        .await;
        let after = invoice_of(&platform, &tenant, invoice).await;
        assert!(paid, "{invoice} is {}", after.status);
        assert_eq!(after.paid, after.total, "{invoice} paid once");
        let invoice_id = cobro_kit::ids::parse("id", "inv", invoice).unwrap();
        let charges: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM payments.sandbox_charges c JOIN payments.attempts a \
             ON a.tenant_id = c.tenant_id AND a.id = c.attempt_id \
             JOIN payments.payment_intents p ON p.tenant_id = a.tenant_id AND p.id = a.intent_id \
             WHERE c.tenant_id = $1 AND $2 = ANY(p.invoice_ids) AND c.status = 'succeeded'",
        )
        .bind(tenant.id)
        .bind(invoice_id)
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(charges, 1, "{invoice}: {charges} charges");
    }
    // Every service is back: a new tenant signs up and in (identity, Redis), gets a customer and
    // an invoice (invoicing), its reminders are listed (notifications), bank accounts listed
    // (reconciliation), and a card is stored and charged (vault, payments).
    let fresh = platform.tenant().await;
    let newcomer = platform.customer(&fresh, "Aceros Bajío S.A.", "es").await;
    let invoice = platform.open_invoice(&fresh, &newcomer, "99.00").await;
    assert_eq!(pay_by_card(&platform, &fresh, &newcomer, &invoice).await.status, "succeeded");
    let mut notifications =
        cobro_proto::notifications::v1::notifications_service_client::NotificationsServiceClient::new(
            platform.notifications.clone(),
        );
    notifications
        .list_messages(fresh.staff(cobro_proto::notifications::v1::ListMessagesRequest::default()))
        .await
        .unwrap();
    let mut reconciliation =
        cobro_proto::reconciliation::v1::reconciliation_service_client::ReconciliationServiceClient::new(
            platform.reconciliation.clone(),
        );
    reconciliation
        .list_bank_accounts(fresh.staff(cobro_proto::reconciliation::v1::ListBankAccountsRequest::default()))
        .await
        .unwrap();
    platform.stop().await;
}

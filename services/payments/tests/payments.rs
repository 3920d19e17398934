//! Payments over gRPC against the real Postgres, the real vault and the sandbox processor:
//! card outcomes, 3-D Secure, idempotency under concurrency, crash recovery, refunds, bank
//! transfers, isolation and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use cobro_kit::auth::PrincipalKind;
use cobro_payments::app::PaymentsOptions;
use cobro_payments::connector::sandbox::{self, SandboxConfig};
use cobro_proto::payments::v1 as pb;
use common::{Harness, bearer, card, code, day, field, key, money};
use prost::Message;
use uuid::Uuid;

fn cus(id: Uuid) -> String {
    cobro_kit::ids::format("cus", id)
}

fn inv(id: Uuid) -> String {
    cobro_kit::ids::format("inv", id)
}

#[tokio::test]
async fn every_sandbox_card_ends_where_its_processor_answer_says() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let cases = [
        (sandbox::CARD_SUCCESS, "succeeded", ""),
        (sandbox::CARD_INSUFFICIENT_FUNDS, "failed", "insufficient_funds"),
        (sandbox::CARD_DO_NOT_HONOR, "failed", "do_not_honor"),
        (sandbox::CARD_EXPIRED, "failed", "expired_card"),
        (sandbox::CARD_PROCESSING_ERROR, "failed", "processing_error"),
        (sandbox::CARD_3DS, "requires_action", ""),
        // The processor approved but the answer never came: the payment waits for recovery.
        (sandbox::CARD_TIMEOUT, "processing", ""),
    ];
    for (pan, status, failure) in cases {
        let invoice = h.invoice(customer, "120.50", "USD", day("2026-12-01")).await;
        let intent = h.intent(customer, Some(invoice), None).await;
        assert_eq!(intent.status, "requires_payment_method");
        assert_eq!(intent.amount, money("120.50", "USD"), "defaults to the open balance");
        let done = h.pay(&intent, pan).await.unwrap();
        assert_eq!((done.status.as_str(), done.failure_code.as_str()), (status, failure), "card {pan}");
        assert_eq!(done.attempts.len(), 1);
        if status == "succeeded" {
            assert_eq!(done.amount_received, money("120.50", "USD"));
            assert_eq!(done.fee, money("3.79", "USD"), "2.9% + 0.30, rounded to cents");
        }
        if status == "requires_action" {
            assert!(done.next_action_url.contains("/sandbox/3ds/"), "{}", done.next_action_url);
        }
    }
    assert_eq!(h.events("payment.succeeded").await, 1);
    assert_eq!(h.events("payment.received").await, 1);
    assert_eq!(h.events("payment.failed").await, 4);
    assert_eq!(h.events("payment.requires_action").await, 1);

    // Recovery finds the charge the timeout card's processor made, and pays the invoice once.
    let later = h.restarted(PaymentsOptions { recover_after: Duration::ZERO, ..PaymentsOptions::default() }).await;
    assert!(later.recover().await.unwrap() >= 1);
    assert_eq!(h.count("SELECT count(*) FROM payment_intents WHERE status = 'processing'").await, 0);
    assert_eq!(h.events("payment.received").await, 2);
    // Nothing anywhere holds a card number.
    let dump: String = sqlx::query_scalar(
        "SELECT string_agg(t::text, ' ') FROM (SELECT row_to_json(p)::text AS t FROM payment_intents p \
         UNION ALL SELECT row_to_json(a)::text FROM attempts a UNION ALL SELECT encode(envelope, 'escape') FROM outbox) x",
    )
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    assert!(!dump.contains("4242424242424242") && !dump.contains("4000000000"), "a card number was stored");
    h.finish().await;
}

#[tokio::test]
async fn three_d_secure_from_challenge_to_paid() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "80.00", "EUR", day("2026-12-01")).await;
    let intent = h.intent(customer, Some(invoice), None).await;
    let waiting = h.pay(&intent, sandbox::CARD_3DS).await.unwrap();
    assert_eq!(waiting.status, "requires_action");
    let processor_ref = waiting.next_action_url.rsplit('/').next().unwrap().to_owned();

    // Returning before the challenge is done changes nothing.
    let early = h
        .client
        .clone()
        .complete_payment_action(h.req(pb::CompletePaymentActionRequest { id: intent.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(early.status, "requires_action");

    // The payer approves on the sandbox page (a public call); its signed webhook settles it.
    let mut public = h.client.clone();
    let answer = public
        .complete_sandbox_challenge(pb::CompleteSandboxChallengeRequest { processor_ref, approve: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.status, "applied");
    let paid = h
        .client
        .clone()
        .complete_payment_action(h.req(pb::CompletePaymentActionRequest { id: intent.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paid.status, "succeeded");
    assert_eq!(h.events("payment.succeeded").await, 1);

    // A replayed webhook changes nothing; a forged one is refused.
    let (body, signature) =
        h.sandbox.webhook_for(paid.attempts[0].processor_ref.as_str(), chrono::Utc::now()).await.unwrap();
    let replay = pb::HandleWebhookRequest {
        connector: "sandbox".into(),
        signature: signature.clone(),
        body: body.clone().into(),
    };
    public.handle_webhook(replay).await.unwrap();
    assert_eq!(h.events("payment.succeeded").await, 1);
    let forged = pb::HandleWebhookRequest {
        connector: "sandbox".into(),
        signature,
        body: body.replace("succeeded", "failed").into(),
    };
    let err = public.handle_webhook(forged).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    // A declined challenge fails the payment.
    let invoice = h.invoice(customer, "10.00", "EUR", day("2026-12-01")).await;
    let intent = h.intent(customer, Some(invoice), None).await;
    let waiting = h.pay(&intent, sandbox::CARD_3DS).await.unwrap();
    let processor_ref = waiting.next_action_url.rsplit('/').next().unwrap().to_owned();
    public
        .complete_sandbox_challenge(pb::CompleteSandboxChallengeRequest { processor_ref, approve: false })
        .await
        .unwrap();
    let failed =
        h.client.clone().get_payment_intent(h.req(pb::GetPaymentIntentRequest { id: intent.id })).await.unwrap();
    assert_eq!(
        (failed.get_ref().status.as_str(), failed.get_ref().failure_code.as_str()),
        ("failed", "authentication_failed")
    );
    h.finish().await;
}

#[tokio::test]
async fn fifty_concurrent_confirms_with_one_key_reach_the_processor_once() {
    let h = Harness::with(
        SandboxConfig { latency: Duration::from_millis(200), ..SandboxConfig::default() },
        PaymentsOptions::default(),
    )
    .await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "99.99", "USD", day("2026-12-01")).await;
    let intent = h.intent(customer, Some(invoice), None).await;
    let request = pb::ConfirmPaymentIntentRequest {
        idempotency_key: "confirm-once".into(),
        id: intent.id.clone(),
        method: Some(pb::confirm_payment_intent_request::Method::Card(card(sandbox::CARD_SUCCESS))),
        return_url: String::new(),
        save_card: false,
    };
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let mut client = h.client.clone();
        let request = h.req(request.clone());
        tasks.push(tokio::spawn(async move { client.confirm_payment_intent(request).await }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().unwrap().into_inner().encode_to_vec());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "every caller gets the same answer");
    let first = pb::PaymentIntent::decode(answers[0].as_slice()).unwrap();
    assert_eq!(first.status, "succeeded");
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges").await, 1, "one processor call");
    assert_eq!(h.count("SELECT count(*) FROM attempts").await, 1);
    assert_eq!(h.events("payment.received").await, 1);

    // The same key with another request is refused, naming the problem.
    let other = pb::ConfirmPaymentIntentRequest { return_url: "https://elsewhere.example".into(), ..request };
    let err = h.client.clone().confirm_payment_intent(h.req(other)).await.unwrap_err();
    assert_eq!(code(&err), "idempotency_key_reused");
    h.finish().await;
}

/// The processor approves, then the service dies before it records the answer. After a restart
/// the recovery task learns of the charge, marks the payment succeeded and announces it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_after_the_processor_approved_loses_nothing_and_charges_once() {
    let h = Harness::with(
        SandboxConfig { latency: Duration::from_millis(300), ..SandboxConfig::default() },
        PaymentsOptions::default(),
    )
    .await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "250.00", "USD", day("2026-12-01")).await;
    let intent = h.intent(customer, Some(invoice), None).await;
    let intent_id = cobro_kit::ids::parse("id", "pay", &intent.id).unwrap();

    // The confirm runs on the service's own app; it is dropped mid-flight like a killed process.
    let app = h.app.clone();
    let principal = h.issuer.principal(h.tenant, PrincipalKind::User, &common::STAFF);
    let id = intent.id.clone();
    let confirm = tokio::spawn(async move {
        app.confirm(
            &principal,
            &id,
            cobro_payments::app::MethodIn::NewCard { card: card(sandbox::CARD_SUCCESS), save: false },
            "",
            false,
        )
        .await
    });
    // Hold the attempt row so the answer cannot be recorded, then kill the call once the
    // processor has approved.
    let attempt_seen = cobro_kit::testing::eventually(Duration::from_secs(20), || async {
        h.count("SELECT count(*) FROM attempts").await == 1
    })
    .await;
    assert!(attempt_seen, "the attempt is on record before the processor is called");
    let mut locker = h.db.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM attempts FOR UPDATE").execute(&mut *locker).await.unwrap();
    let approved = cobro_kit::testing::eventually(Duration::from_secs(20), || async {
        h.count("SELECT count(*) FROM sandbox_charges WHERE status = 'succeeded'").await == 1
    })
    .await;
    assert!(approved, "the processor approved");
    tokio::time::sleep(Duration::from_millis(100)).await;
    confirm.abort();
    assert!(confirm.await.unwrap_err().is_cancelled());
    // The killed process's connections die with it.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
         AND query LIKE 'SELECT tenant_id, id, intent_id%FOR UPDATE' AND wait_event_type = 'Lock'",
    )
    .execute(&h.db.pool)
    .await
    .unwrap();
    locker.rollback().await.unwrap();
    assert_eq!(h.count("SELECT count(*) FROM payment_intents WHERE status = 'processing'").await, 1);
    assert_eq!(h.events("payment.received").await, 0);

    let restarted = h.restarted(PaymentsOptions { recover_after: Duration::ZERO, ..PaymentsOptions::default() }).await;
    assert_eq!(restarted.recover().await.unwrap(), 1);
    let status: String = sqlx::query_scalar("SELECT status FROM payment_intents WHERE id = $1")
        .bind(intent_id)
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "succeeded");
    // Recovery again, and a late webhook, change nothing: the invoice is paid once.
    assert_eq!(restarted.recover().await.unwrap(), 0);
    assert_eq!(h.events("payment.received").await, 1);
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges").await, 1);
    h.finish().await;
}

#[tokio::test]
async fn refunds_never_exceed_what_was_captured() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "100.00", "USD", day("2026-12-01")).await;
    let intent = h.intent(customer, Some(invoice), None).await;
    h.pay(&intent, sandbox::CARD_SUCCESS).await.unwrap();
    let refund = |amount: Option<&str>, key: String| {
        let mut client = h.client.clone();
        let request = h.req(pb::RefundPaymentRequest {
            idempotency_key: key,
            payment_id: intent.id.clone(),
            amount: amount.and_then(|a| money(a, "USD")),
            reason: "duplicate".into(),
        });
        async move { client.refund_payment(request).await }
    };
    let first = refund(Some("30.00"), "r1".into()).await.unwrap().into_inner();
    assert_eq!((first.status.as_str(), first.amount.clone()), ("succeeded", money("30.00", "USD")));
    // The same key again answers the same refund, not a second one.
    assert_eq!(refund(Some("30.00"), "r1".into()).await.unwrap().into_inner().id, first.id);
    // Ten concurrent refunds of 10.00 each: only seven fit in the 70.00 left.
    let mut tasks = Vec::new();
    for i in 0..10 {
        tasks.push(tokio::spawn(refund(Some("10.00"), format!("c{i}"))));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!((code(&e), field(&e).as_str()), ("amount_not_allowed", "amount.amount")),
        }
    }
    assert_eq!(ok, 7);
    let err = refund(None, key()).await.unwrap_err();
    assert_eq!(code(&err), "amount_not_allowed");
    let refunded: rust_decimal::Decimal =
        sqlx::query_scalar("SELECT amount_refunded FROM payment_intents").fetch_one(&h.db.pool).await.unwrap();
    assert_eq!(refunded.to_string(), "100.00");
    assert_eq!(h.events("refund.succeeded").await, 8);
    // Refunding needs its own permission.
    let clerk = h.token_of(h.tenant, PrincipalKind::User, &["payments:read", "payments:write"]);
    let request =
        pb::RefundPaymentRequest { idempotency_key: key(), payment_id: intent.id.clone(), ..Default::default() };
    let err = h.client.clone().refund_payment(bearer(request, &clerk)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    h.finish().await;
}

#[tokio::test]
async fn bank_transfers_wait_for_reconciliation_with_a_checked_reference() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let settings = pb::PaymentSettings {
        allow_overpayment: false,
        account_holder: "Acme Ltd".into(),
        iban: "DE89 3704 0044 0532 0130 00".into(),
        bic: "COBADEFFXXX".into(),
    };
    h.client.clone().update_payment_settings(h.req(settings)).await.unwrap();
    let invoice = h.invoice(customer, "500.00", "EUR", day("2026-12-01")).await;
    let intent = h.intent(customer, Some(invoice), None).await;
    let request = pb::ConfirmPaymentIntentRequest {
        idempotency_key: key(),
        id: intent.id.clone(),
        method: Some(pb::confirm_payment_intent_request::Method::BankTransfer(true)),
        ..Default::default()
    };
    let waiting = h.client.clone().confirm_payment_intent(h.req(request)).await.unwrap().into_inner();
    assert_eq!((waiting.status.as_str(), waiting.method.as_str()), ("processing", "bank_transfer"));
    let transfer = waiting.transfer.clone().unwrap();
    assert_eq!(transfer.iban, "DE89370400440532013000");
    assert!(transfer.reference.starts_with("RF"));
    assert_eq!(transfer.reference_grouped.replace(' ', ""), transfer.reference);
    assert_eq!(h.events("reference.assigned").await, 1);
    // The same invoice always has the same reference; reconciliation can look it up.
    let again = h
        .client
        .clone()
        .get_transfer_instructions(
            h.req(pb::GetTransferInstructionsRequest { customer_id: cus(customer), invoice_id: inv(invoice) }),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.reference, transfer.reference);
    let owner = h
        .client
        .clone()
        .lookup_reference(h.req(pb::LookupReferenceRequest { reference: transfer.reference_grouped.to_lowercase() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((owner.customer_id, owner.invoice_id), (cus(customer), inv(invoice)));
    // A mistyped reference fails its check digits: one character changed, which ISO 7064
    // mod 97-10 always catches (an extra character would slip through one time in 97).
    let mut typo = transfer.reference.clone();
    let last = typo.pop().unwrap();
    typo.push(match last {
        '0'..='8' | 'A'..='Y' => char::from(u8::try_from(u32::from(last) + 1).unwrap()),
        _ => '0',
    });
    let err =
        h.client.clone().lookup_reference(h.req(pb::LookupReferenceRequest { reference: typo })).await.unwrap_err();
    assert_eq!((code(&err), field(&err).as_str()), ("invalid_argument", "reference"));

    // Reconciliation matched the money.
    let recon = h.issuer.service_token(h.tenant, "reconciliation", &["payments:read", "payments:write"]);
    let matched = pb::ConfirmBankTransferRequest {
        idempotency_key: "stmt-line-1".into(),
        reference: transfer.reference.clone(),
        payment_id: String::new(),
        amount: money("500.00", "EUR"),
        received_on: "2026-11-23".into(),
    };
    let paid = h.client.clone().confirm_bank_transfer(bearer(matched.clone(), &recon)).await.unwrap().into_inner();
    assert_eq!(paid.status, "succeeded");
    h.client.clone().confirm_bank_transfer(bearer(matched, &recon)).await.unwrap();
    assert_eq!(h.events("payment.received").await, 1);
    h.finish().await;
}

#[tokio::test]
async fn bad_input_names_the_field_and_writes_nothing() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "100.00", "USD", day("2026-12-01")).await;
    let create =
        |amount: Option<cobro_proto::common::v1::Money>, invoices: Vec<String>| pb::CreatePaymentIntentRequest {
            idempotency_key: key(),
            customer_id: cus(customer),
            amount,
            invoice_ids: invoices,
            installment_id: String::new(),
            description: String::new(),
        };
    let cases = [
        (create(money("0", "USD"), vec![]), "amount.amount"),
        (create(money("-5.00", "USD"), vec![]), "amount.amount"),
        (create(money("100.01", "USD"), vec![inv(invoice)]), "amount.amount"),
        (create(money("50.00", "EUR"), vec![inv(invoice)]), "amount.currency"),
        (create(money("1.001", "USD"), vec![]), "amount.amount"),
        (create(money("10", "XYZ"), vec![]), "amount.currency"),
        (create(None, vec![]), "amount"),
        (create(None, vec!["inv_nothex".into()]), "invoice_ids[0]"),
        (
            pb::CreatePaymentIntentRequest { customer_id: "cus_zz".into(), ..create(money("1.00", "USD"), vec![]) },
            "customer_id",
        ),
        (
            pb::CreatePaymentIntentRequest { idempotency_key: String::new(), ..create(money("1.00", "USD"), vec![]) },
            "idempotency_key",
        ),
    ];
    for (request, expected) in cases {
        let err = h.client.clone().create_payment_intent(h.req(request)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{expected}: {err:?}");
        assert_eq!(field(&err), expected);
    }
    // Another customer's invoice is not this customer's to pay.
    let other = h.invoice(Uuid::now_v7(), "10.00", "USD", day("2026-12-01")).await;
    let err = h.client.clone().create_payment_intent(h.req(create(None, vec![inv(other)]))).await.unwrap_err();
    assert_eq!(field(&err), "invoice_ids[0]");
    // A bad card is refused by the vault, naming the card field; the intent stays untouched.
    let intent = h.intent(customer, Some(invoice), None).await;
    let err = h.pay(&intent, "4242424242424241").await.unwrap_err();
    assert!(field(&err).starts_with("card"), "{err:?}");
    assert_eq!(h.count("SELECT count(*) FROM payment_intents").await, 1);
    assert_eq!(h.count("SELECT count(*) FROM attempts").await, 0);
    assert_eq!(h.count("SELECT count(*) FROM idempotency_keys WHERE response IS NULL").await, 0);
    // Illegal transitions answer FailedPrecondition with the current state.
    h.pay(&intent, sandbox::CARD_SUCCESS).await.unwrap();
    let err = h.pay(&intent, sandbox::CARD_SUCCESS).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("succeeded"), "{}", err.message());
    let cancel = pb::CancelPaymentIntentRequest { idempotency_key: key(), id: intent.id.clone() };
    let err = h.client.clone().cancel_payment_intent(h.req(cancel)).await.unwrap_err();
    assert_eq!(code(&err), "payment_state_conflict");
    h.finish().await;
}

#[tokio::test]
async fn another_tenants_ids_answer_not_found() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "100.00", "USD", day("2026-12-01")).await;
    let intent = h.intent(customer, Some(invoice), None).await;
    h.pay(&intent, sandbox::CARD_SUCCESS).await.unwrap();
    let outsider = h.token_of(Uuid::now_v7(), PrincipalKind::User, &common::STAFF);
    let mut c = h.client.clone();
    let err = c
        .get_payment_intent(bearer(pb::GetPaymentIntentRequest { id: intent.id.clone() }, &outsider))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let refund =
        pb::RefundPaymentRequest { idempotency_key: key(), payment_id: intent.id.clone(), ..Default::default() };
    assert_eq!(c.refund_payment(bearer(refund, &outsider)).await.unwrap_err().code(), tonic::Code::NotFound);
    let cancel = pb::CancelPaymentIntentRequest { idempotency_key: key(), id: intent.id.clone() };
    assert_eq!(c.cancel_payment_intent(bearer(cancel, &outsider)).await.unwrap_err().code(), tonic::Code::NotFound);
    // Their invoice is unknown here too.
    let create = pb::CreatePaymentIntentRequest {
        idempotency_key: key(),
        customer_id: cus(customer),
        invoice_ids: vec![inv(invoice)],
        ..Default::default()
    };
    assert_eq!(c.create_payment_intent(bearer(create, &outsider)).await.unwrap_err().code(), tonic::Code::NotFound);
    let listed =
        c.list_payment_intents(bearer(pb::ListPaymentIntentsRequest::default(), &outsider)).await.unwrap().into_inner();
    assert!(listed.payments.is_empty());
    // A portal contact sees only their own customer's payments.
    let stranger = h.portal_token(Uuid::now_v7());
    let err = c
        .get_payment_intent(bearer(pb::GetPaymentIntentRequest { id: intent.id.clone() }, &stranger))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let own = h.portal_token(customer);
    c.get_payment_intent(bearer(pb::GetPaymentIntentRequest { id: intent.id.clone() }, &own)).await.unwrap();
    h.finish().await;
}

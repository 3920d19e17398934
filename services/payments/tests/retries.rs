//! Retries and races that would take money twice: a request whose answer was lost, a key used
//! by someone else, two payers for one invoice, a transfer "confirmed" by a person.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cobro_kit::auth::PrincipalKind;
use cobro_payments::connector::sandbox;
use cobro_proto::events::v1::{Envelope, InstallmentDue, PaymentApplied, PaymentReceived};
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

/// As if the process died after its writes and before it stored the answer, and the claim's
/// lease then ran out.
async fn lose_the_answer(h: &Harness, key: &str) {
    let lost = sqlx::query(
        "UPDATE idempotency_keys SET response = NULL, locked_until = now() - interval '1 second' WHERE key = $1",
    )
    .bind(key)
    .execute(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(lost.rows_affected(), 1);
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_continues_what_was_made() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();

    // Creating: the retry finds the payment made and does not make a second.
    let invoice = h.invoice(customer, "100.00", "USD", day("2026-12-01")).await;
    let create = pb::CreatePaymentIntentRequest {
        idempotency_key: "create-1".into(),
        customer_id: cus(customer),
        invoice_ids: vec![inv(invoice)],
        ..Default::default()
    };
    let made = h.client.clone().create_payment_intent(h.req(create.clone())).await.unwrap().into_inner();
    lose_the_answer(&h, "create-1").await;
    let again = h.client.clone().create_payment_intent(h.req(create)).await.unwrap().into_inner();
    assert_eq!(again.id, made.id);
    assert_eq!(h.count("SELECT count(*) FROM payment_intents").await, 1);

    // Refunding: the retry continues the same refund; the processor refunds once.
    h.pay(&made, sandbox::CARD_SUCCESS).await.unwrap();
    let refund = pb::RefundPaymentRequest {
        idempotency_key: "refund-1".into(),
        payment_id: made.id.clone(),
        amount: money("40.00", "USD"),
        reason: "damaged".into(),
    };
    let first = h.client.clone().refund_payment(h.req(refund.clone())).await.unwrap().into_inner();
    lose_the_answer(&h, "refund-1").await;
    let retried = h.client.clone().refund_payment(h.req(refund)).await.unwrap().into_inner();
    assert_eq!((retried.id, retried.status.as_str()), (first.id, "succeeded"));
    assert_eq!(h.count("SELECT count(*) FROM refunds").await, 1);
    assert_eq!(h.count("SELECT count(*) FROM sandbox_refunds").await, 1);
    let refunded: rust_decimal::Decimal =
        sqlx::query_scalar("SELECT amount_refunded FROM payment_intents").fetch_one(&h.db.pool).await.unwrap();
    assert_eq!(refunded.to_string(), "40.00");

    // Paying a link: the retry shows the payment already made; the card is charged once.
    let second = h.invoice(customer, "45.00", "USD", day("2026-12-01")).await;
    let link = pb::CreatePaymentLinkRequest {
        idempotency_key: key(),
        customer_id: cus(customer),
        invoice_id: inv(second),
        ..Default::default()
    };
    let link = h.client.clone().create_payment_link(h.req(link)).await.unwrap().into_inner();
    let pay = pb::PayPaymentLinkRequest {
        idempotency_key: "link-pay".into(),
        token: link.token.clone(),
        card: Some(card(sandbox::CARD_SUCCESS)),
        return_url: String::new(),
    };
    let paid = h.client.clone().pay_payment_link(pay.clone()).await.unwrap().into_inner();
    assert_eq!(paid.status, "succeeded");
    lose_the_answer(&h, "link-pay").await;
    let repaid = h.client.clone().pay_payment_link(pay).await.unwrap().into_inner();
    assert_eq!((repaid.payment_id, repaid.status.as_str()), (paid.payment_id, "succeeded"));
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges").await, 2, "one charge per payment");
    // Nothing in the idempotency records can give a card number back.
    let hashes: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT request_hash FROM idempotency_keys").fetch_all(&h.db.pool).await.unwrap();
    assert!(hashes.iter().all(|h| h.len() == 32));
    h.finish().await;
}

#[tokio::test]
async fn a_key_answers_only_the_principal_that_used_it() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let other_customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "80.00", "EUR", day("2026-12-01")).await;
    let create = pb::CreatePaymentIntentRequest {
        idempotency_key: "shared-key".into(),
        customer_id: cus(customer),
        invoice_ids: vec![inv(invoice)],
        ..Default::default()
    };
    let made = h
        .client
        .clone()
        .create_payment_intent(bearer(create.clone(), &h.portal_token(customer)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(made.customer_id, cus(customer));
    // Another portal contact sending the same key and request learns nothing of that payment.
    let err =
        h.client.clone().create_payment_intent(bearer(create, &h.portal_token(other_customer))).await.unwrap_err();
    assert_ne!(err.code(), tonic::Code::Ok);
    assert!(!err.message().contains(&made.id), "{}", err.message());
    h.finish().await;
}

#[tokio::test]
async fn one_invoice_cannot_be_collected_twice_while_a_payment_is_on_its_way() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "100.00", "USD", day("2026-12-01")).await;

    // The customer pays in the portal and is in the middle of a 3-D Secure challenge...
    let portal = h.intent(customer, Some(invoice), None).await;
    let waiting = h.pay(&portal, sandbox::CARD_3DS).await.unwrap();
    assert_eq!(waiting.status, "requires_action");
    // ... when a clerk charges the same invoice: refused, naming the amount.
    let clerk = h.intent(customer, Some(invoice), None).await;
    let err = h.pay(&clerk, sandbox::CARD_SUCCESS).await.unwrap_err();
    assert_eq!((code(&err), field(&err).as_str()), ("amount_not_allowed", "amount.amount"));
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges WHERE status = 'succeeded'").await, 0);

    // The challenge passes: the payment succeeded but invoicing has not applied it yet.
    let challenged = waiting.next_action_url.rsplit('/').next().unwrap().to_owned();
    h.client
        .clone()
        .complete_sandbox_challenge(pb::CompleteSandboxChallengeRequest { processor_ref: challenged, approve: true })
        .await
        .unwrap();
    let late = h.intent(customer, Some(invoice), Some(("10.00", "USD"))).await;
    let err = h.pay(&late, sandbox::CARD_SUCCESS).await.unwrap_err();
    assert_eq!(code(&err), "amount_not_allowed", "{}", err.message());

    // Invoicing applies it; then the invoice is reopened for 10.00 (say, a late fee): that may be paid.
    let applied = PaymentApplied {
        payment_id: portal.id.clone(),
        invoice_id: inv(invoice),
        installment_id: String::new(),
        amount: money("100.00", "USD"),
        balance: money("0.00", "USD"),
    };
    h.deliver("invoice.payment_applied", &inv(invoice), &applied).await;
    let err = h.pay(&late, sandbox::CARD_SUCCESS).await.unwrap_err();
    assert_eq!(code(&err), "amount_not_allowed", "nothing is open once applied");
    h.invoice_event(invoice, customer, "open", "10.00", "USD", day("2026-12-01")).await;
    assert_eq!(h.pay(&late, sandbox::CARD_SUCCESS).await.unwrap().status, "succeeded");
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges WHERE status = 'succeeded'").await, 2);
    h.finish().await;
}

#[tokio::test]
async fn only_reconciliation_confirms_a_transfer_and_its_date_is_kept() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "250.00", "EUR", day("2026-12-01")).await;
    let intent = h.intent(customer, Some(invoice), None).await;
    let confirm = pb::ConfirmPaymentIntentRequest {
        idempotency_key: key(),
        id: intent.id.clone(),
        method: Some(pb::confirm_payment_intent_request::Method::BankTransfer(true)),
        ..Default::default()
    };
    h.client.clone().confirm_payment_intent(h.req(confirm)).await.unwrap();
    let matched = pb::ConfirmBankTransferRequest {
        idempotency_key: key(),
        reference: String::new(),
        payment_id: intent.id.clone(),
        amount: money("250.00", "EUR"),
        received_on: "2026-11-20".into(),
    };
    // A person, even an owner with every payments permission, cannot say the money arrived.
    let owner = h.token_of(h.tenant, PrincipalKind::User, &["payments:read", "payments:write", "payments:refund"]);
    let err = h.client.clone().confirm_bank_transfer(bearer(matched.clone(), &owner)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let other_service = h.issuer.service_token(h.tenant, "notifications", &["payments:write"]);
    let err = h.client.clone().confirm_bank_transfer(bearer(matched.clone(), &other_service)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert_eq!(h.events("payment.received").await, 0);

    let recon = h.issuer.service_token(h.tenant, "reconciliation", &["payments:write"]);
    let paid = h.client.clone().confirm_bank_transfer(bearer(matched, &recon)).await.unwrap().into_inner();
    assert_eq!(paid.status, "succeeded");
    let envelope: Vec<u8> = sqlx::query_scalar("SELECT envelope FROM outbox WHERE event_type = 'payment.received'")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    let envelope = Envelope::decode(envelope.as_slice()).unwrap();
    let received = PaymentReceived::decode(envelope.payload.as_slice()).unwrap();
    assert_eq!(received.received_on, "2026-11-20", "the bank's date, not today's");
    h.finish().await;
}

#[tokio::test]
async fn an_installment_is_collected_for_what_fell_due_and_once() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "300.00", "USD", day("2026-12-01")).await;
    let installment = Uuid::now_v7();
    let create = |amount: Option<&str>| pb::CreatePaymentIntentRequest {
        idempotency_key: key(),
        customer_id: cus(customer),
        invoice_ids: vec![inv(invoice)],
        installment_id: cobro_kit::ids::format("ins", installment),
        amount: amount.and_then(|a| money(a, "USD")),
        ..Default::default()
    };
    // Not due yet: the payer must say how much, or the whole invoice would be taken.
    let err = h.client.clone().create_payment_intent(h.req(create(None))).await.unwrap_err();
    assert_eq!((code(&err), field(&err).as_str()), ("invalid_argument", "amount"));
    let early = h.client.clone().create_payment_intent(h.req(create(Some("20.00")))).await.unwrap().into_inner();
    assert_eq!(early.amount, money("20.00", "USD"));

    // It falls due for 100.00: that is what a payment without an amount takes.
    let due = InstallmentDue {
        invoice_id: inv(invoice),
        installment_id: cobro_kit::ids::format("ins", installment),
        due_date: "2026-12-01".into(),
        balance: money("100.00", "USD"),
    };
    h.deliver("installment.due", &inv(invoice), &due).await;
    let intent = h.client.clone().create_payment_intent(h.req(create(None))).await.unwrap().into_inner();
    assert_eq!(intent.amount, money("100.00", "USD"));
    assert_eq!(h.pay(&intent, sandbox::CARD_SUCCESS).await.unwrap().status, "succeeded");
    let applied = PaymentApplied {
        payment_id: intent.id.clone(),
        invoice_id: inv(invoice),
        installment_id: cobro_kit::ids::format("ins", installment),
        amount: money("100.00", "USD"),
        balance: money("200.00", "USD"),
    };
    h.deliver("invoice.payment_applied", &inv(invoice), &applied).await;
    // Paid: the invoice still has 200.00 open, but nothing of this installment.
    let err = h.client.clone().create_payment_intent(h.req(create(None))).await.unwrap_err();
    assert_eq!(code(&err), "amount_not_allowed", "{}", err.message());
    h.finish().await;
}

#[tokio::test]
async fn a_confirm_retried_after_a_lost_answer_answers_what_happened() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "75.00", "EUR", day("2026-12-01")).await;
    let intent = h.intent(customer, Some(invoice), None).await;
    let confirm = pb::ConfirmPaymentIntentRequest {
        idempotency_key: "confirm-1".into(),
        id: intent.id.clone(),
        method: Some(pb::confirm_payment_intent_request::Method::Card(card(sandbox::CARD_SUCCESS))),
        return_url: "https://portal.example/return".into(),
        save_card: false,
    };
    let paid = h.client.clone().confirm_payment_intent(h.req(confirm.clone())).await.unwrap().into_inner();
    assert_eq!(paid.status, "succeeded");
    lose_the_answer(&h, "confirm-1").await;
    // The payer's app retries: it must hear "succeeded", not an error that reads as "try again".
    let again = h.client.clone().confirm_payment_intent(h.req(confirm)).await.unwrap().into_inner();
    assert_eq!((again.id, again.status.as_str()), (paid.id, "succeeded"));
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges").await, 1);
    h.finish().await;
}

#[tokio::test]
async fn a_free_amount_link_is_paid_once_when_two_pay_at_the_same_moment() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let link = pb::CreatePaymentLinkRequest {
        idempotency_key: key(),
        customer_id: cus(customer),
        amount: money("99.00", "USD"),
        description: "deposit".into(),
        ..Default::default()
    };
    let link = h.client.clone().create_payment_link(h.req(link)).await.unwrap().into_inner();
    let mut payers = Vec::new();
    for _ in 0..8 {
        let mut client = h.client.clone();
        let pay = pb::PayPaymentLinkRequest {
            idempotency_key: key(),
            token: link.token.clone(),
            card: Some(card(sandbox::CARD_SUCCESS)),
            return_url: String::new(),
        };
        payers.push(tokio::spawn(async move { client.pay_payment_link(pay).await }));
    }
    let mut paid = 0;
    for payer in payers {
        match payer.await.unwrap() {
            Ok(answer) => {
                assert_eq!(answer.into_inner().status, "succeeded");
                paid += 1;
            }
            Err(err) => assert_eq!(code(&err), "payment_link_unusable", "{}", err.message()),
        }
    }
    assert_eq!(paid, 1);
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges").await, 1);
    assert_eq!(
        h.count("SELECT count(*) FROM payment_intents WHERE status = 'requires_payment_method'").await,
        0,
        "refused payers leave no half-made payment behind"
    );
    h.finish().await;
}

#[tokio::test]
async fn many_payers_of_one_invoice_at_once_all_get_an_answer_and_one_pays() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "120.00", "USD", day("2026-12-01")).await;
    let mut intents = Vec::new();
    for _ in 0..24 {
        intents.push(h.intent(customer, Some(invoice), None).await);
    }
    // More at once than the service has database connections: waiting for the invoice's lock
    // must not starve the one holding it.
    let mut payers = Vec::new();
    for intent in intents {
        let mut client = h.client.clone();
        let request = h.req(pb::ConfirmPaymentIntentRequest {
            idempotency_key: key(),
            id: intent.id.clone(),
            method: Some(pb::confirm_payment_intent_request::Method::Card(card(sandbox::CARD_SUCCESS))),
            return_url: String::new(),
            save_card: false,
        });
        payers.push(tokio::spawn(async move { client.confirm_payment_intent(request).await }));
    }
    let mut paid = 0;
    for payer in payers {
        match payer.await.unwrap() {
            Ok(answer) => {
                assert_eq!(answer.into_inner().status, "succeeded");
                paid += 1;
            }
            Err(err) => assert_eq!(code(&err), "amount_not_allowed", "{}", err.message()),
        }
    }
    assert_eq!(paid, 1);
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges").await, 1);
    h.finish().await;
}

#[tokio::test]
async fn autopay_waits_without_failing_while_another_payment_is_on_its_way() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let saved = pb::SavePaymentMethodRequest {
        idempotency_key: key(),
        customer_id: cus(customer),
        source: Some(pb::save_payment_method_request::Source::Card(card(sandbox::CARD_SUCCESS))),
        make_default: true,
    };
    h.client.clone().save_payment_method(h.req(saved)).await.unwrap();
    let consent = pb::EnableAutopayRequest {
        customer_id: cus(customer),
        payment_method_id: String::new(),
        consent_text: "I authorise Acme to charge my saved card on each due date.".into(),
        consent_ip: "203.0.113.9".into(),
    };
    h.client.clone().enable_autopay(h.req(consent)).await.unwrap();
    // Ahead of today: autopay only charges for consent given on or before the day.
    let due = chrono::Utc::now().date_naive() + chrono::Days::new(5);
    let invoice = h.invoice(customer, "310.00", "USD", due).await;
    // The customer is paying it in the portal right now (a 3-D Secure challenge is open).
    let portal = h.intent(customer, Some(invoice), None).await;
    assert_eq!(h.pay(&portal, sandbox::CARD_3DS).await.unwrap().status, "requires_action");

    h.app.run_autopay(due).await.unwrap();
    let runs: Vec<(String, i32, Option<chrono::NaiveDate>)> =
        sqlx::query_as("SELECT status, attempts, next_try_on FROM autopay_runs").fetch_all(&h.db.pool).await.unwrap();
    assert_eq!(runs, vec![("scheduled".to_owned(), 0, Some(due + chrono::Days::new(1)))]);
    assert_eq!(h.events("autopay.failed").await, 0, "nobody is told the card failed");
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges WHERE status = 'succeeded'").await, 0);

    // The portal payment goes through and invoicing applies it: the next day's run ends paid.
    let challenge = h
        .client
        .clone()
        .get_payment_intent(h.req(pb::GetPaymentIntentRequest { id: portal.id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .next_action_url;
    let processor_ref = challenge.rsplit('/').next().unwrap().to_owned();
    h.client
        .clone()
        .complete_sandbox_challenge(pb::CompleteSandboxChallengeRequest { processor_ref, approve: true })
        .await
        .unwrap();
    let applied = PaymentApplied {
        payment_id: portal.id.clone(),
        invoice_id: inv(invoice),
        installment_id: String::new(),
        amount: money("310.00", "USD"),
        balance: money("0.00", "USD"),
    };
    h.deliver("invoice.payment_applied", &inv(invoice), &applied).await;
    h.app.run_autopay(due + chrono::Days::new(1)).await.unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM autopay_runs").fetch_one(&h.db.pool).await.unwrap();
    assert_eq!(status, "succeeded");
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges WHERE status = 'succeeded'").await, 1);
    h.finish().await;
}

//! Transfers and direct debits settled by reconciliation's own matches
//! (`reconciliation.match_confirmed`): the waiting payment succeeds with what the match brought,
//! its receipt goes out, invoicing is not told twice, and the invoice is no longer held.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cobro_kit::events::EventHandler;
use cobro_payments::events::ReconciliationHandler;
use cobro_proto::events::v1::{Envelope, MatchDecided, MatchedItemEvent, PaymentApplied, PaymentSucceeded};
use cobro_proto::payments::v1 as pb;
use common::{Harness, bearer, code, day, key, money};
use prost::Message;
use std::sync::Arc;
use uuid::Uuid;

fn cus(id: Uuid) -> String {
    cobro_kit::ids::format("cus", id)
}

fn inv(id: Uuid) -> String {
    cobro_kit::ids::format("inv", id)
}

fn rcm(id: Uuid) -> String {
    cobro_kit::ids::format("rcm", id)
}

/// A confirmed match of `items` (invoice, amount) for `customer`, paid as reconciliation's `payment`.
fn matched(payment: Uuid, customer: Uuid, items: &[(Uuid, &str)], currency: &str) -> MatchDecided {
    let total: rust_decimal::Decimal = items.iter().map(|(_, a)| a.parse::<rust_decimal::Decimal>().unwrap()).sum();
    MatchDecided {
        match_id: cobro_kit::ids::format("mat", payment),
        bank_line_id: cobro_kit::ids::format("bln", Uuid::now_v7()),
        bank_account_id: cobro_kit::ids::format("bac", Uuid::now_v7()),
        rule: "reference".into(),
        confidence: "1".into(),
        customer_id: cus(customer),
        amount: money(&total.to_string(), currency),
        booking_date: "2026-11-30".into(),
        items: items
            .iter()
            .map(|(invoice, amount)| MatchedItemEvent {
                invoice_id: inv(*invoice),
                installment_id: String::new(),
                payout_id: String::new(),
                amount: money(amount, currency),
            })
            .collect(),
        decided_by: "auto".into(),
        payment_id: rcm(payment),
    }
}

fn envelope(tenant: Uuid, kind: &str, payload: &impl Message) -> Envelope {
    Envelope {
        id: Uuid::now_v7().to_string(),
        r#type: kind.into(),
        tenant_id: tenant.to_string(),
        aggregate_id: Uuid::now_v7().to_string(),
        occurred_at: None,
        traceparent: String::new(),
        payload: payload.encode_to_vec(),
    }
}

/// Hand `event` to the consumer's handler in a transaction of its own, as the consumer does.
async fn handle(h: &Harness, event: &Envelope) {
    let handler = ReconciliationHandler::new(Arc::clone(&h.app));
    let mut tx = h.db.pool.begin().await.unwrap();
    handler.handle(&mut tx, event).await.unwrap();
    tx.commit().await.unwrap();
}

/// A payment of `amount` (or the open balance) for `invoice`, waiting for a bank transfer.
async fn transfer(h: &Harness, customer: Uuid, invoice: Uuid, amount: Option<(&str, &str)>) -> pb::PaymentIntent {
    let intent = h.intent(customer, Some(invoice), amount).await;
    let request = pb::ConfirmPaymentIntentRequest {
        idempotency_key: key(),
        id: intent.id.clone(),
        method: Some(pb::confirm_payment_intent_request::Method::BankTransfer(true)),
        ..Default::default()
    };
    let waiting = h.client.clone().confirm_payment_intent(h.req(request)).await.unwrap().into_inner();
    assert_eq!((waiting.status.as_str(), waiting.method.as_str()), ("processing", "bank_transfer"));
    waiting
}

async fn get(h: &Harness, id: &str) -> pb::PaymentIntent {
    h.client
        .clone()
        .get_payment_intent(h.req(pb::GetPaymentIntentRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
}

async fn settled_by(h: &Harness, id: &str) -> Option<Uuid> {
    let intent = cobro_kit::ids::parse("id", "pay", id).unwrap();
    sqlx::query_scalar("SELECT settled_by FROM payment_intents WHERE id = $1")
        .bind(intent)
        .fetch_one(&h.db.pool)
        .await
        .unwrap()
}

async fn succeeded_events(h: &Harness) -> Vec<PaymentSucceeded> {
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT envelope FROM outbox WHERE event_type = 'payment.succeeded' ORDER BY seq")
            .fetch_all(&h.db.pool)
            .await
            .unwrap();
    rows.iter()
        .map(|row| PaymentSucceeded::decode(Envelope::decode(row.as_slice()).unwrap().payload.as_slice()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_confirmed_match_settles_the_waiting_transfer_once_and_sends_only_the_receipt() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "500.00", "EUR", day("2026-12-01")).await;
    let waiting = transfer(&h, customer, invoice, None).await;
    let payment = Uuid::now_v7();
    let event = envelope(
        h.tenant,
        "reconciliation.match_confirmed",
        &matched(payment, customer, &[(invoice, "500.00")], "EUR"),
    );
    // Reconciliation's own payment.received is for invoicing, not for payments.
    let received = cobro_proto::events::v1::PaymentReceived {
        payment_id: rcm(payment),
        customer_id: cus(customer),
        amount: money("500.00", "EUR"),
        method: "transfer".into(),
        received_on: "2026-11-30".into(),
        invoice_ids: vec![inv(invoice)],
        installment_id: String::new(),
    };
    handle(&h, &envelope(h.tenant, "payment.received", &received)).await;
    assert_eq!(get(&h, &waiting.id).await.status, "processing");

    handle(&h, &event).await;
    let paid = get(&h, &waiting.id).await;
    assert_eq!(paid.status, "succeeded");
    assert_eq!(paid.amount_received, money("500.00", "EUR"));
    assert_eq!(settled_by(&h, &waiting.id).await, Some(payment));
    assert_eq!(h.events("payment.succeeded").await, 1);
    assert_eq!(h.events("payment.received").await, 0, "invoicing has the money from reconciliation already");
    let receipt = &succeeded_events(&h).await[0];
    assert_eq!((receipt.payment_id.as_str(), receipt.method.as_str()), (waiting.id.as_str(), "bank_transfer"));
    assert_eq!(receipt.amount, money("500.00", "EUR"));
    assert_eq!(receipt.invoice_ids, vec![inv(invoice)]);

    // The same event again, and the same match in a new envelope, change nothing.
    handle(&h, &event).await;
    handle(&h, &Envelope { id: Uuid::now_v7().to_string(), ..event.clone() }).await;
    assert_eq!(h.events("payment.succeeded").await, 1);
    // Nor does reconciliation confirming it explicitly afterwards.
    let recon = h.issuer.service_token(h.tenant, "reconciliation", &["payments:write"]);
    let confirm = pb::ConfirmBankTransferRequest {
        idempotency_key: key(),
        payment_id: waiting.id.clone(),
        amount: money("500.00", "EUR"),
        ..Default::default()
    };
    let again = h.client.clone().confirm_bank_transfer(bearer(confirm, &recon)).await.unwrap().into_inner();
    assert_eq!((again.status.as_str(), again.amount_received.clone()), ("succeeded", money("500.00", "EUR")));
    assert_eq!((h.events("payment.succeeded").await, h.events("payment.received").await), (1, 0));

    // Invoicing applies reconciliation's payment: the invoice is paid and nothing else is held.
    let applied = PaymentApplied {
        payment_id: rcm(payment),
        invoice_id: inv(invoice),
        installment_id: String::new(),
        amount: money("500.00", "EUR"),
        balance: money("0.00", "EUR"),
    };
    h.deliver("invoice.payment_applied", &inv(invoice), &applied).await;
    let applied_of_ours: i64 = h.count("SELECT count(*) FROM payment_applications").await;
    assert_eq!(applied_of_ours, 1);
    h.finish().await;
}

#[tokio::test]
async fn matches_of_another_customer_tenant_currency_or_kind_leave_the_transfer_waiting() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let other = Uuid::now_v7();
    let invoice = h.invoice(customer, "80.00", "EUR", day("2026-12-01")).await;
    let others_invoice = h.invoice(other, "80.00", "EUR", day("2026-12-01")).await;
    let waiting = transfer(&h, customer, invoice, None).await;

    let cases = [
        (
            "another customer's invoice",
            h.tenant,
            "reconciliation.match_confirmed",
            matched(Uuid::now_v7(), other, &[(others_invoice, "80.00")], "EUR"),
        ),
        (
            "the invoice named under another customer",
            h.tenant,
            "reconciliation.match_confirmed",
            matched(Uuid::now_v7(), other, &[(invoice, "80.00")], "EUR"),
        ),
        (
            "another tenant",
            Uuid::now_v7(),
            "reconciliation.match_confirmed",
            matched(Uuid::now_v7(), customer, &[(invoice, "80.00")], "EUR"),
        ),
        (
            "another currency",
            h.tenant,
            "reconciliation.match_confirmed",
            matched(Uuid::now_v7(), customer, &[(invoice, "80.00")], "USD"),
        ),
        (
            "a reversed match",
            h.tenant,
            "reconciliation.match_reversed",
            matched(Uuid::now_v7(), customer, &[(invoice, "80.00")], "EUR"),
        ),
        (
            "a match without a payment",
            h.tenant,
            "reconciliation.match_confirmed",
            MatchDecided {
                payment_id: String::new(),
                ..matched(Uuid::now_v7(), customer, &[(invoice, "80.00")], "EUR")
            },
        ),
    ];
    for (case, tenant, kind, payload) in cases {
        handle(&h, &envelope(tenant, kind, &payload)).await;
        let still = get(&h, &waiting.id).await;
        assert_eq!(
            (still.status.as_str(), still.amount_received.clone()),
            ("processing", money("0.00", "EUR")),
            "{case}"
        );
    }
    assert_eq!(settled_by(&h, &waiting.id).await, None);
    assert_eq!(h.count("SELECT count(*) FROM outbox WHERE event_type LIKE 'payment.%'").await, 0);

    // A malformed match is rejected, not retried forever.
    let handler = ReconciliationHandler::new(Arc::clone(&h.app));
    let bad = MatchDecided {
        payment_id: "pay_123".into(),
        ..matched(Uuid::now_v7(), customer, &[(invoice, "80.00")], "EUR")
    };
    let mut conn = h.db.pool.acquire().await.unwrap();
    let err = handler.handle(&mut conn, &envelope(h.tenant, "reconciliation.match_confirmed", &bad)).await.unwrap_err();
    assert!(matches!(err, cobro_kit::events::HandlerError::Permanent(_)), "{err}");
    drop(conn);
    h.finish().await;
}

#[tokio::test]
async fn a_match_short_of_the_amount_settles_what_arrived_and_releases_the_direct_debit_hold() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let mandate = pb::CreateDirectDebitMandateRequest {
        customer_id: cus(customer),
        iban: "DE89 3704 0044 0532 0130 00".into(),
        account_holder: "Compañía Ejemplo".into(),
        mandate_reference: "MNDT-2026-007".into(),
        consent_text: "I authorise Acme to debit my account.".into(),
        consent_ip: "203.0.113.9".into(),
    };
    let mandate = h.client.clone().create_direct_debit_mandate(h.req(mandate)).await.unwrap().into_inner();
    let invoice = h.invoice(customer, "100.00", "EUR", day("2026-12-01")).await;
    let debit = h.intent(customer, Some(invoice), None).await;
    let confirm = pb::ConfirmPaymentIntentRequest {
        idempotency_key: key(),
        id: debit.id.clone(),
        method: Some(pb::confirm_payment_intent_request::Method::MandateId(mandate.id.clone())),
        ..Default::default()
    };
    let waiting = h.client.clone().confirm_payment_intent(h.req(confirm)).await.unwrap().into_inner();
    assert_eq!((waiting.status.as_str(), waiting.method.as_str()), ("processing", "direct_debit"));

    // While the debit is on its way it holds the whole invoice.
    let card = h.intent(customer, Some(invoice), Some(("40.00", "EUR"))).await;
    let err = h.pay(&card, cobro_payments::connector::sandbox::CARD_SUCCESS).await.unwrap_err();
    assert_eq!(code(&err), "amount_not_allowed");

    // Only 60.00 of it arrived.
    let payment = Uuid::now_v7();
    let event =
        envelope(h.tenant, "reconciliation.match_confirmed", &matched(payment, customer, &[(invoice, "60.00")], "EUR"));
    handle(&h, &event).await;
    let paid = get(&h, &debit.id).await;
    assert_eq!(paid.status, "succeeded");
    assert_eq!((paid.amount.clone(), paid.amount_received.clone()), (money("100.00", "EUR"), money("60.00", "EUR")));
    assert_eq!(succeeded_events(&h).await[0].amount, money("60.00", "EUR"));
    assert_eq!((h.events("payment.succeeded").await, h.events("payment.received").await), (1, 0));

    // Now it holds only what arrived, until invoicing applies it; then nothing.
    let too_much = h.intent(customer, Some(invoice), Some(("41.00", "EUR"))).await;
    assert_eq!(
        code(&h.pay(&too_much, cobro_payments::connector::sandbox::CARD_SUCCESS).await.unwrap_err()),
        "amount_not_allowed"
    );
    let applied = PaymentApplied {
        payment_id: rcm(payment),
        invoice_id: inv(invoice),
        installment_id: String::new(),
        amount: money("60.00", "EUR"),
        balance: money("40.00", "EUR"),
    };
    h.deliver("invoice.payment_applied", &inv(invoice), &applied).await;
    let rest = h.pay(&card, cobro_payments::connector::sandbox::CARD_SUCCESS).await.unwrap();
    assert_eq!((rest.status.as_str(), rest.amount_received.clone()), ("succeeded", money("40.00", "EUR")));
    h.finish().await;
}

#[tokio::test]
async fn one_match_pays_waiting_transfers_oldest_first_and_never_more_than_each_asked() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "100.00", "EUR", day("2026-12-01")).await;
    let first = transfer(&h, customer, invoice, Some(("70.00", "EUR"))).await;
    let second = transfer(&h, customer, invoice, Some(("70.00", "EUR"))).await;
    let third = transfer(&h, customer, invoice, Some(("10.00", "EUR"))).await;

    let payment = Uuid::now_v7();
    let event = envelope(
        h.tenant,
        "reconciliation.match_confirmed",
        &matched(payment, customer, &[(invoice, "100.00")], "EUR"),
    );
    handle(&h, &event).await;
    let first = get(&h, &first.id).await;
    let second = get(&h, &second.id).await;
    let third = get(&h, &third.id).await;
    assert_eq!((first.status.as_str(), first.amount_received), ("succeeded", money("70.00", "EUR")));
    assert_eq!((second.status.as_str(), second.amount_received), ("succeeded", money("30.00", "EUR")));
    assert_eq!(
        (third.status.as_str(), third.amount_received),
        ("processing", money("0.00", "EUR")),
        "nothing was left for it"
    );
    assert_eq!((h.events("payment.succeeded").await, h.events("payment.received").await), (2, 0));
    h.finish().await;
}

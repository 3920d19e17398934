//! Saved cards, autopay with consent and its retry schedule, direct-debit mandates, payment
//! links.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{Duration as Days, NaiveDate};
use cobro_kit::auth::PrincipalKind;
use cobro_payments::connector::sandbox;
use cobro_proto::payments::v1 as pb;
use common::{Harness, bearer, card, code, day, field, key, money};
use uuid::Uuid;

fn cus(id: Uuid) -> String {
    cobro_kit::ids::format("cus", id)
}

/// A due date a few days ahead: autopay only charges for consent given on or before the day.
fn soon() -> NaiveDate {
    chrono::Utc::now().date_naive() + Days::days(5)
}

fn inv(id: Uuid) -> String {
    cobro_kit::ids::format("inv", id)
}

async fn save_card(h: &Harness, customer: Uuid, pan: &str, make_default: bool) -> pb::PaymentMethod {
    let request = pb::SavePaymentMethodRequest {
        idempotency_key: key(),
        customer_id: cus(customer),
        source: Some(pb::save_payment_method_request::Source::Card(card(pan))),
        make_default,
    };
    h.client.clone().save_payment_method(h.req(request)).await.unwrap().into_inner()
}

async fn enable_autopay(h: &Harness, customer: Uuid) -> pb::Mandate {
    let request = pb::EnableAutopayRequest {
        customer_id: cus(customer),
        payment_method_id: String::new(),
        consent_text: "I authorise Acme to charge my saved card on each due date.".into(),
        consent_ip: "203.0.113.9".into(),
    };
    h.client.clone().enable_autopay(h.req(request)).await.unwrap().into_inner()
}

async fn runs(h: &Harness) -> Vec<(String, i32, Option<NaiveDate>)> {
    sqlx::query_as("SELECT status, attempts, next_try_on FROM autopay_runs ORDER BY created_at")
        .fetch_all(&h.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn saved_cards_have_one_default_and_show_no_number() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let first = save_card(&h, customer, sandbox::CARD_SUCCESS, false).await;
    assert!(first.is_default, "the first card becomes the default");
    assert_eq!(
        (first.brand.as_str(), first.last4.as_str(), first.exp_month, first.exp_year),
        ("visa", "4242", 12, 2031)
    );
    let second = save_card(&h, customer, "5555555555554444", true).await;
    assert!(second.is_default);
    // Saving the same card again returns the saved method instead of a second one.
    let again = save_card(&h, customer, "5555 5555 5555 4444", false).await;
    assert_eq!(again.id, second.id);
    let list = h
        .client
        .clone()
        .list_payment_methods(h.req(pb::ListPaymentMethodsRequest { customer_id: cus(customer) }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.methods.len(), 2);
    assert_eq!(list.methods.iter().filter(|m| m.is_default).count(), 1);
    assert_eq!(list.methods[0].id, second.id);
    let stored: String = sqlx::query_scalar("SELECT string_agg(row_to_json(m)::text, ' ') FROM payment_methods m")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert!(!stored.contains("4242424242424242") && !stored.contains("5555555555554444"));

    // A portal contact manages only their own customer's cards.
    let stranger = h.portal_token(Uuid::now_v7());
    let request = pb::ListPaymentMethodsRequest { customer_id: cus(customer) };
    assert_eq!(
        h.client.clone().list_payment_methods(bearer(request, &stranger)).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let own = h.portal_token(customer);
    let removed = h
        .client
        .clone()
        .remove_payment_method(bearer(
            pb::RemovePaymentMethodRequest { customer_id: cus(customer), payment_method_id: first.id.clone() },
            &own,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!removed.is_default);
    // Another tenant's staff cannot touch them.
    let outsider = h.token_of(Uuid::now_v7(), PrincipalKind::User, &common::STAFF);
    let request =
        pb::SetDefaultPaymentMethodRequest { customer_id: cus(customer), payment_method_id: second.id.clone() };
    let err = h.client.clone().set_default_payment_method(bearer(request, &outsider)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    h.finish().await;
}

#[tokio::test]
async fn autopay_needs_consent_and_charges_the_default_card_on_the_due_date() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    // Without a saved card there is nothing to consent to.
    let request = pb::EnableAutopayRequest {
        customer_id: cus(customer),
        consent_text: "I agree".into(),
        consent_ip: "203.0.113.9".into(),
        ..Default::default()
    };
    let err = h.client.clone().enable_autopay(h.req(request.clone())).await.unwrap_err();
    assert_eq!(field(&err), "payment_method_id");
    save_card(&h, customer, sandbox::CARD_SUCCESS, true).await;
    for (bad, expected) in [
        (pb::EnableAutopayRequest { consent_text: String::new(), ..request.clone() }, "consent_text"),
        (pb::EnableAutopayRequest { consent_ip: "my laptop".into(), ..request.clone() }, "consent_ip"),
    ] {
        let err = h.client.clone().enable_autopay(h.req(bad)).await.unwrap_err();
        assert_eq!(field(&err), expected);
    }
    let mandate = enable_autopay(&h, customer).await;
    assert_eq!((mandate.kind.as_str(), mandate.consent_ip.as_str()), ("autopay", "203.0.113.9"));
    assert_eq!(h.events("autopay.enabled").await, 1, "invoicing hears the customer is on autopay");
    assert!(mandate.consented_at.is_some());
    let listed = |h: &Harness| {
        let request = h.req(pb::ListPaymentMethodsRequest { customer_id: cus(customer) });
        let mut client = h.client.clone();
        async move { client.list_payment_methods(request).await.unwrap().into_inner().autopay.map(|m| m.id) }
    };
    assert_eq!(listed(&h).await, Some(mandate.id.clone()), "the cards page can tell autopay is on");

    let due = soon();
    let invoice = h.invoice(customer, "310.00", "USD", due).await;
    // Nothing is charged before the due date.
    assert_eq!(h.app.run_autopay(due - Days::days(1)).await.unwrap(), 0);
    assert_eq!(h.app.run_autopay(due).await.unwrap(), 1);
    assert_eq!(runs(&h).await, vec![("succeeded".to_owned(), 1, None)]);
    let paid: (String, rust_decimal::Decimal) =
        sqlx::query_as("SELECT status, amount FROM payment_intents WHERE autopay_run_id IS NOT NULL")
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
    assert_eq!((paid.0.as_str(), paid.1.to_string().as_str()), ("succeeded", "310.00"));
    // Running again the same day charges nothing more.
    assert_eq!(h.app.run_autopay(due).await.unwrap(), 0);
    assert_eq!(h.events("payment.received").await, 1);
    let _ = invoice;

    // Once autopay is off, new due amounts wait for the customer.
    h.client.clone().disable_autopay(h.req(pb::DisableAutopayRequest { customer_id: cus(customer) })).await.unwrap();
    assert_eq!(listed(&h).await, None, "and that it is off");
    assert_eq!(h.events("autopay.disabled").await, 1, "and invoicing hears that too");
    h.invoice(customer, "20.00", "USD", due).await;
    assert_eq!(h.app.run_autopay(due).await.unwrap(), 0);
    h.finish().await;
}

#[tokio::test]
async fn autopay_retries_soft_declines_after_one_three_and_seven_days_then_stops() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    save_card(&h, customer, sandbox::CARD_INSUFFICIENT_FUNDS, true).await;
    enable_autopay(&h, customer).await;
    let due = soon();
    h.invoice(customer, "75.00", "USD", due).await;

    assert_eq!(h.app.run_autopay(due).await.unwrap(), 1);
    assert_eq!(runs(&h).await, vec![("scheduled".to_owned(), 1, Some(due + Days::days(1)))]);
    // Not before the retry date.
    assert_eq!(h.app.run_autopay(due).await.unwrap(), 0);
    assert_eq!(h.app.run_autopay(due + Days::days(1)).await.unwrap(), 1);
    assert_eq!(runs(&h).await, vec![("scheduled".to_owned(), 2, Some(due + Days::days(3)))]);
    assert_eq!(h.app.run_autopay(due + Days::days(2)).await.unwrap(), 0);
    assert_eq!(h.app.run_autopay(due + Days::days(3)).await.unwrap(), 1);
    assert_eq!(runs(&h).await, vec![("scheduled".to_owned(), 3, Some(due + Days::days(7)))]);
    assert_eq!(h.app.run_autopay(due + Days::days(7)).await.unwrap(), 1);
    assert_eq!(runs(&h).await, vec![("failed".to_owned(), 4, None)]);
    assert_eq!(h.app.run_autopay(due + Days::days(30)).await.unwrap(), 0);

    // Four tries, four failed payments, each told to the customer and staff; the last is final.
    assert_eq!(h.count("SELECT count(*) FROM payment_intents WHERE status = 'failed'").await, 4);
    assert_eq!(h.events("autopay.failed").await, 4);
    assert_eq!(h.events("payment.failed").await, 4);

    // A hard decline stops at once.
    let other = Uuid::now_v7();
    save_card(&h, other, sandbox::CARD_DO_NOT_HONOR, true).await;
    enable_autopay(&h, other).await;
    h.invoice(other, "12.00", "USD", due).await;
    assert_eq!(h.app.run_autopay(due).await.unwrap(), 1);
    let hard: (String, i32) = sqlx::query_as("SELECT status, attempts FROM autopay_runs WHERE customer_id = $1")
        .bind(other)
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(hard, ("failed".to_owned(), 1));
    h.finish().await;
}

/// What invoicing says when staff split an invoice into installments.
async fn plan(h: &Harness, invoice: Uuid, installments: &[(Uuid, NaiveDate, &str)]) {
    let planned = cobro_proto::events::v1::InstallmentsPlanned {
        invoice_id: inv(invoice),
        installments: installments
            .iter()
            .zip(1..)
            .map(|((id, due, amount), seq)| cobro_proto::events::v1::PlannedInstallment {
                installment_id: cobro_kit::ids::format("ins", *id),
                seq,
                due_date: due.to_string(),
                amount: money(amount, "USD"),
                balance: money(amount, "USD"),
            })
            .collect(),
    };
    h.deliver("installments.planned", &inv(invoice), &planned).await;
}

#[tokio::test]
async fn an_invoice_under_a_plan_is_charged_installment_by_installment_never_whole() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    save_card(&h, customer, sandbox::CARD_SUCCESS, true).await;
    enable_autopay(&h, customer).await;
    let due = soon();
    let invoice = h.invoice(customer, "90.00", "USD", due).await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    plan(&h, invoice, &[(first, due + Days::days(10), "45.00"), (second, due + Days::days(40), "45.00")]).await;
    // The invoice's own due date passes: nothing is charged, the plan says when.
    assert_eq!(h.app.run_autopay(due + Days::days(1)).await.unwrap(), 0);
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges").await, 0);
    // Invoicing announces the first installment due: that, and only that, is charged.
    let installment_due = cobro_proto::events::v1::InstallmentDue {
        invoice_id: inv(invoice),
        installment_id: cobro_kit::ids::format("ins", first),
        due_date: (due + Days::days(10)).to_string(),
        balance: money("45.00", "USD"),
    };
    h.deliver("installment.due", &inv(invoice), &installment_due).await;
    assert_eq!(h.app.run_autopay(due + Days::days(10)).await.unwrap(), 1);
    let charged: Vec<String> =
        sqlx::query_scalar("SELECT amount::text FROM sandbox_charges").fetch_all(&h.db.pool).await.unwrap();
    assert_eq!(charged, ["45.00"]);
    h.finish().await;
}

#[tokio::test]
async fn autopay_waits_while_a_hardship_request_or_dispute_is_open() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    save_card(&h, customer, sandbox::CARD_INSUFFICIENT_FUNDS, true).await;
    enable_autopay(&h, customer).await;
    let due = soon();
    let invoice = h.invoice(customer, "60.00", "USD", due).await;
    let changed = |status: &str| cobro_proto::events::v1::InvoiceChanged {
        invoice_id: inv(invoice),
        customer_id: cus(customer),
        number: "F-1".into(),
        status: status.into(),
        total: money("60.00", "USD"),
        balance: money("60.00", "USD"),
        due_date: due.to_string(),
    };
    // The first try is declined; before the retry the customer asks for time.
    assert_eq!(h.app.run_autopay(due).await.unwrap(), 1);
    h.deliver("hardship.requested", &inv(invoice), &changed("open")).await;
    h.deliver("dispute.opened", &inv(invoice), &changed("open")).await;
    assert_eq!(h.app.run_autopay(due + Days::days(1)).await.unwrap(), 0, "no charge while they wait");
    assert_eq!(runs(&h).await, vec![("scheduled".to_owned(), 1, Some(due + Days::days(2)))], "no try counted");
    // The hardship request is answered, the dispute still open: still nothing.
    h.deliver("hardship.resolved", &inv(invoice), &changed("open")).await;
    assert_eq!(h.app.run_autopay(due + Days::days(2)).await.unwrap(), 0);
    // Both answered: the retry goes ahead.
    h.deliver("dispute.resolved", &inv(invoice), &changed("open")).await;
    assert_eq!(h.app.run_autopay(due + Days::days(3)).await.unwrap(), 1);
    // Declined again; the schedule's next date (three days after the due date) is today, and a
    // card is never tried twice in a day: tomorrow.
    assert_eq!(runs(&h).await, vec![("scheduled".to_owned(), 2, Some(due + Days::days(4)))]);
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges").await, 2);
    h.finish().await;
}

#[tokio::test]
async fn an_invoice_paid_meanwhile_is_not_charged_by_autopay() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    save_card(&h, customer, sandbox::CARD_SUCCESS, true).await;
    enable_autopay(&h, customer).await;
    let due = soon();
    let invoice = h.invoice(customer, "40.00", "USD", due).await;
    h.invoice_event(invoice, customer, "paid", "0.00", "USD", due).await;
    assert_eq!(h.app.run_autopay(due).await.unwrap(), 0);
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges").await, 0);
    h.finish().await;
}

#[tokio::test]
async fn direct_debit_mandates_are_checked_and_paid_through_reconciliation() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let request = pb::CreateDirectDebitMandateRequest {
        customer_id: cus(customer),
        iban: "DE89 3704 0044 0532 0130 00".into(),
        account_holder: "Compañía Ejemplo".into(),
        mandate_reference: "MNDT-2026-001".into(),
        consent_text: "I authorise Acme to debit my account.".into(),
        consent_ip: "2001:db8::7".into(),
    };
    let err =
        h.client
            .clone()
            .create_direct_debit_mandate(h.req(pb::CreateDirectDebitMandateRequest {
                iban: "DE89 3704 0044 0532 0130 01".into(),
                ..request.clone()
            }))
            .await
            .unwrap_err();
    assert_eq!(field(&err), "iban");
    let mandate = h.client.clone().create_direct_debit_mandate(h.req(request)).await.unwrap().into_inner();
    let stored: String =
        sqlx::query_scalar("SELECT account_masked FROM payment_methods").fetch_one(&h.db.pool).await.unwrap();
    assert_eq!(stored, "DE…3000", "only the last four characters of the account are kept");

    let invoice = h.invoice(customer, "60.00", "EUR", day("2026-12-01")).await;
    let intent = h.intent(customer, Some(invoice), None).await;
    let confirm = pb::ConfirmPaymentIntentRequest {
        idempotency_key: key(),
        id: intent.id.clone(),
        method: Some(pb::confirm_payment_intent_request::Method::MandateId(mandate.id.clone())),
        ..Default::default()
    };
    let waiting = h.client.clone().confirm_payment_intent(h.req(confirm)).await.unwrap().into_inner();
    assert_eq!((waiting.status.as_str(), waiting.method.as_str()), ("processing", "direct_debit"));
    let recon = h.issuer.service_token(h.tenant, "reconciliation", &["payments:write"]);
    let settled = pb::ConfirmBankTransferRequest {
        idempotency_key: key(),
        payment_id: intent.id.clone(),
        amount: money("60.00", "EUR"),
        ..Default::default()
    };
    let paid = h.client.clone().confirm_bank_transfer(bearer(settled, &recon)).await.unwrap().into_inner();
    assert_eq!(paid.status, "succeeded");
    h.finish().await;
}

#[tokio::test]
async fn payment_links_show_little_expire_revoke_and_pay_once() {
    let h = Harness::new().await;
    let customer = Uuid::now_v7();
    let invoice = h.invoice(customer, "45.00", "USD", day("2026-12-01")).await;
    let create = pb::CreatePaymentLinkRequest {
        idempotency_key: key(),
        customer_id: cus(customer),
        invoice_id: inv(invoice),
        ..Default::default()
    };
    let made = h.client.clone().create_payment_link(h.req(create.clone())).await.unwrap().into_inner();
    assert!(made.token.starts_with("pl_") && made.token.len() == 46, "256 random bits");
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT token_hash FROM payment_links").fetch_one(&h.db.pool).await.unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains(&made.token[3..]), "only the hash is kept");

    // The public page learns the amount due and the invoice number, nothing about the customer.
    let mut public = h.client.clone();
    let shown = public
        .resolve_payment_link(pb::ResolvePaymentLinkRequest { token: made.token.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shown.amount_due, money("45.00", "USD"));
    assert!(shown.merchant_reference.starts_with("F-") && !shown.paid);
    assert!(shown.transfer_reference.starts_with("RF"));
    let pay = pb::PayPaymentLinkRequest {
        idempotency_key: "link-pay-1".into(),
        token: made.token.clone(),
        card: Some(card(sandbox::CARD_SUCCESS)),
        return_url: String::new(),
    };
    let paid = public.pay_payment_link(pay.clone()).await.unwrap().into_inner();
    assert_eq!(paid.status, "succeeded");
    // A double click answers the same payment, and charges nothing more.
    assert_eq!(public.pay_payment_link(pay).await.unwrap().into_inner().payment_id, paid.payment_id);
    assert_eq!(h.count("SELECT count(*) FROM sandbox_charges").await, 1);

    // Bad tokens: malformed, unknown, revoked, expired.
    let err =
        public.resolve_payment_link(pb::ResolvePaymentLinkRequest { token: "pl_short".into() }).await.unwrap_err();
    assert_eq!((err.code(), field(&err).as_str()), (tonic::Code::InvalidArgument, "token"));
    let unknown = cobro_payments::domain::link::new_token().token;
    let err = public.resolve_payment_link(pb::ResolvePaymentLinkRequest { token: unknown }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let invoice2 = h.invoice(customer, "10.00", "USD", day("2026-12-01")).await;
    let second = h
        .client
        .clone()
        .create_payment_link(h.req(pb::CreatePaymentLinkRequest {
            idempotency_key: key(),
            invoice_id: inv(invoice2),
            ..create.clone()
        }))
        .await
        .unwrap()
        .into_inner();
    let link_id = second.link.clone().unwrap().id;
    h.client.clone().revoke_payment_link(h.req(pb::RevokePaymentLinkRequest { id: link_id })).await.unwrap();
    let err =
        public.resolve_payment_link(pb::ResolvePaymentLinkRequest { token: second.token.clone() }).await.unwrap_err();
    assert_eq!(code(&err), "payment_link_unusable");
    sqlx::query("UPDATE payment_links SET revoked_at = NULL, expires_at = now() - interval '1 second'")
        .execute(&h.db.pool)
        .await
        .unwrap();
    let err =
        public.resolve_payment_link(pb::ResolvePaymentLinkRequest { token: second.token.clone() }).await.unwrap_err();
    assert_eq!((err.code(), code(&err)), (tonic::Code::FailedPrecondition, "payment_link_expired"));
    let pay = pb::PayPaymentLinkRequest {
        idempotency_key: key(),
        token: second.token,
        card: Some(card(sandbox::CARD_SUCCESS)),
        return_url: String::new(),
    };
    assert_eq!(code(&public.pay_payment_link(pay).await.unwrap_err()), "payment_link_expired");

    // Links follow the payment rules: a free amount needs one, above the balance is refused.
    for (bad, expected) in [
        (
            pb::CreatePaymentLinkRequest { idempotency_key: key(), invoice_id: String::new(), ..create.clone() },
            "amount",
        ),
        (
            pb::CreatePaymentLinkRequest {
                idempotency_key: key(),
                amount: money("99.00", "USD"),
                invoice_id: inv(invoice2),
                ..create.clone()
            },
            "amount.amount",
        ),
        (pb::CreatePaymentLinkRequest { idempotency_key: key(), ttl_days: 181, ..create.clone() }, "ttl_days"),
    ] {
        let err = h.client.clone().create_payment_link(h.req(bad)).await.unwrap_err();
        assert_eq!(field(&err), expected);
    }
    h.finish().await;
}

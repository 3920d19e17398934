#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The sandbox processor against the real Postgres: test cards, idempotency, 3-D Secure,
//! signed webhooks, refunds, voids, fees and the payout report.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use cobro_kit::testing::TestDb;
use cobro_payments::connector::sandbox::{
    CARD_3DS, CARD_DO_NOT_HONOR, CARD_EXPIRED, CARD_INSUFFICIENT_FUNDS, CARD_INSUFFICIENT_FUNDS_ONCE,
    CARD_PROCESSING_ERROR, CARD_SUCCESS, CARD_TIMEOUT, Sandbox, SandboxConfig,
};
use cobro_payments::connector::{
    CardData, ChargeOutcome, ChargeRequest, Connector, ConnectorError, DeclineCode, SyncedStatus, WebhookEvent,
};
use rust_decimal::Decimal;
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn card(pan: &str) -> CardData {
    CardData { pan: SecretString::from(pan), exp_month: 12, exp_year: 2031, holder_name: "Ada Lovelace".to_owned() }
}

fn request(tenant_id: Uuid, pan: &str, amount: &str, currency: &str) -> ChargeRequest {
    ChargeRequest {
        attempt_id: Uuid::now_v7(),
        tenant_id,
        amount: dec(amount),
        currency: currency.to_owned(),
        card: card(pan),
        return_url: "https://pay.example.test/return".to_owned(),
        description: "Invoice F-0001".to_owned(),
    }
}

fn sandbox(pool: &PgPool) -> Sandbox {
    Sandbox::new(pool.clone(), SandboxConfig::default())
}

async fn charge_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sandbox_charges").fetch_one(pool).await.unwrap()
}

async fn refund_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sandbox_refunds").fetch_one(pool).await.unwrap()
}

fn succeeded_ref(outcome: &ChargeOutcome) -> String {
    match outcome {
        ChargeOutcome::Succeeded { processor_ref, .. } => processor_ref.clone(),
        other => panic!("expected a succeeded charge, got {other:?}"),
    }
}

fn assert_declined(outcome: &ChargeOutcome, expected: DeclineCode) {
    match outcome {
        ChargeOutcome::Declined { processor_ref, code, message } => {
            assert_eq!(*code, expected);
            let processor_ref = processor_ref.as_deref().expect("a declined charge has a reference");
            assert!(processor_ref.starts_with("ch_sbx_"), "{processor_ref}");
            assert!(!message.is_empty());
        }
        other => panic!("expected a {expected:?} decline, got {other:?}"),
    }
}

#[tokio::test]
async fn the_funds_arrive_card_is_declined_once_per_tenant() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let (tenant, other_tenant) = (Uuid::now_v7(), Uuid::now_v7());
    let first = sbx.charge(&request(tenant, CARD_INSUFFICIENT_FUNDS_ONCE, "25.00", "USD")).await.unwrap();
    assert_declined(&first, DeclineCode::InsufficientFunds);
    let retried = sbx.charge(&request(tenant, CARD_INSUFFICIENT_FUNDS_ONCE, "25.00", "USD")).await.unwrap();
    succeeded_ref(&retried);
    // Another tenant's customer with the same test card has funds of their own to lack.
    let elsewhere = sbx.charge(&request(other_tenant, CARD_INSUFFICIENT_FUNDS_ONCE, "25.00", "USD")).await.unwrap();
    assert_declined(&elsewhere, DeclineCode::InsufficientFunds);
}

#[tokio::test]
async fn every_test_card_has_its_outcome() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let tenant = Uuid::now_v7();
    assert_eq!(sbx.name(), "sandbox");

    let ok = sbx.charge(&request(tenant, CARD_SUCCESS, "10.00", "USD")).await.unwrap();
    match &ok {
        ChargeOutcome::Succeeded { processor_ref, fee } => {
            assert!(processor_ref.starts_with("ch_sbx_"));
            assert_eq!(processor_ref.len(), "ch_sbx_".len() + 32);
            assert_eq!(fee.to_string(), "0.59");
        }
        other => panic!("{other:?}"),
    }

    let insufficient = sbx.charge(&request(tenant, CARD_INSUFFICIENT_FUNDS, "10.00", "USD")).await.unwrap();
    assert_declined(&insufficient, DeclineCode::InsufficientFunds);
    let dnh = sbx.charge(&request(tenant, CARD_DO_NOT_HONOR, "10.00", "USD")).await.unwrap();
    assert_declined(&dnh, DeclineCode::DoNotHonor);
    let expired = sbx.charge(&request(tenant, CARD_EXPIRED, "10.00", "USD")).await.unwrap();
    assert_declined(&expired, DeclineCode::ExpiredCard);
    let processing = sbx.charge(&request(tenant, CARD_PROCESSING_ERROR, "10.00", "USD")).await.unwrap();
    assert_declined(&processing, DeclineCode::ProcessingError);
    assert!(DeclineCode::InsufficientFunds.is_soft() && DeclineCode::ProcessingError.is_soft());

    let challenge = sbx.charge(&request(tenant, CARD_3DS, "10.00", "USD")).await.unwrap();
    assert!(matches!(challenge, ChargeOutcome::RequiresAction { .. }), "{challenge:?}");

    let timeout = sbx.charge(&request(tenant, CARD_TIMEOUT, "10.00", "USD")).await;
    assert!(matches!(timeout, Err(ConnectorError::Unavailable(_))), "{timeout:?}");

    // Any other number succeeds, spaces and dashes notwithstanding.
    let other = sbx.charge(&request(tenant, "5555 5555 5555 4444", "10.00", "USD")).await.unwrap();
    let other_ref = succeeded_ref(&other);
    let last4: String = sqlx::query_scalar("SELECT last4 FROM sandbox_charges WHERE processor_ref = $1")
        .bind(&other_ref)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(last4, "4444");

    assert_eq!(charge_count(&db.pool).await, 8);

    // Requests the processor refuses outright record nothing.
    let bad_currency = sbx.charge(&request(tenant, CARD_SUCCESS, "10.00", "usd")).await;
    assert!(matches!(bad_currency, Err(ConnectorError::Rejected(_))), "{bad_currency:?}");
    let zero = sbx.charge(&request(tenant, CARD_SUCCESS, "0.00", "USD")).await;
    assert!(matches!(zero, Err(ConnectorError::Rejected(_))), "{zero:?}");
    let too_precise = sbx.charge(&request(tenant, CARD_SUCCESS, "10.001", "USD")).await;
    assert!(matches!(too_precise, Err(ConnectorError::Rejected(_))), "{too_precise:?}");
    let short = sbx.charge(&request(tenant, "4242", "10.00", "USD")).await;
    assert!(matches!(short, Err(ConnectorError::Rejected(_))), "{short:?}");
    assert_eq!(charge_count(&db.pool).await, 8);

    db.drop_schema().await;
}

#[tokio::test]
async fn a_card_expired_by_date_is_declined() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let tenant = Uuid::now_v7();

    let mut req = request(tenant, CARD_SUCCESS, "10.00", "USD");
    req.card.exp_year = 2020;
    req.card.exp_month = 1;
    let outcome = sbx.charge(&req).await.unwrap();
    assert_declined(&outcome, DeclineCode::ExpiredCard);

    // A card expiring at the end of this month still works.
    let today = Utc::now();
    let mut req = request(tenant, CARD_SUCCESS, "10.00", "USD");
    req.card.exp_year = u32::try_from(today.year()).unwrap();
    req.card.exp_month = today.month();
    succeeded_ref(&sbx.charge(&req).await.unwrap());

    // Last month's does not.
    let mut req = request(tenant, CARD_SUCCESS, "10.00", "USD");
    let (year, month) = if today.month() == 1 { (today.year() - 1, 12) } else { (today.year(), today.month() - 1) };
    req.card.exp_year = u32::try_from(year).unwrap();
    req.card.exp_month = month;
    assert_declined(&sbx.charge(&req).await.unwrap(), DeclineCode::ExpiredCard);

    db.drop_schema().await;
}

#[tokio::test]
async fn a_repeated_charge_records_one_row_and_answers_the_same() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let tenant = Uuid::now_v7();

    for pan in [CARD_SUCCESS, CARD_INSUFFICIENT_FUNDS, CARD_3DS] {
        let req = request(tenant, pan, "25.00", "MXN");
        let first = sbx.charge(&req).await.unwrap();
        let second = sbx.charge(&req).await.unwrap();
        assert_eq!(first, second, "{pan}");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM sandbox_charges WHERE attempt_id = $1")
            .bind(req.attempt_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(rows, 1);
    }
    assert_eq!(charge_count(&db.pool).await, 3);

    // The same attempt id for a different charge is refused, not charged.
    let req = request(tenant, CARD_SUCCESS, "25.00", "MXN");
    sbx.charge(&req).await.unwrap();
    let mut different = req.clone();
    different.amount = dec("26.00");
    let refused = sbx.charge(&different).await;
    assert!(matches!(refused, Err(ConnectorError::Rejected(_))), "{refused:?}");
    assert_eq!(charge_count(&db.pool).await, 4);

    db.drop_schema().await;
}

#[tokio::test]
async fn concurrent_identical_charges_record_one_charge() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx =
        Sandbox::new(db.pool.clone(), SandboxConfig { latency: Duration::from_millis(20), ..SandboxConfig::default() });
    let req = request(Uuid::now_v7(), CARD_SUCCESS, "99.99", "USD");

    let mut tasks = Vec::new();
    for _ in 0..10 {
        let sbx = sbx.clone();
        let req = req.clone();
        tasks.push(tokio::spawn(async move { sbx.charge(&req).await }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().unwrap());
    }
    let first = outcomes.first().unwrap().clone();
    succeeded_ref(&first);
    assert!(outcomes.iter().all(|o| *o == first), "{outcomes:?}");
    assert_eq!(charge_count(&db.pool).await, 1);

    db.drop_schema().await;
}

#[tokio::test]
async fn a_timed_out_charge_is_found_by_sync_and_by_a_retry() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let req = request(Uuid::now_v7(), CARD_TIMEOUT, "40.00", "USD");

    assert_eq!(sbx.sync(req.attempt_id, None).await.unwrap(), SyncedStatus::NotFound);
    let first = sbx.charge(&req).await;
    assert!(matches!(first, Err(ConnectorError::Unavailable(ref m)) if m.contains("timed out")), "{first:?}");

    // A "restarted" caller with a fresh pool learns the charge went through.
    let restarted = Sandbox::new(db.another_pool(2).await, SandboxConfig::default());
    let synced = restarted.sync(req.attempt_id, None).await.unwrap();
    let SyncedStatus::Settled(outcome) = synced else { panic!("{synced:?}") };
    let processor_ref = succeeded_ref(&outcome);
    assert_eq!(outcome, ChargeOutcome::Succeeded { processor_ref: processor_ref.clone(), fee: dec("1.46") });

    let retry = sbx.charge(&req).await.unwrap();
    assert_eq!(retry, outcome);
    assert_eq!(charge_count(&db.pool).await, 1);

    db.drop_schema().await;
}

#[tokio::test]
async fn three_d_secure_approved() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = Sandbox::new(
        db.pool.clone(),
        SandboxConfig { challenge_base_url: "https://pay.example.test".to_owned(), ..SandboxConfig::default() },
    );
    let req = request(Uuid::now_v7(), CARD_3DS, "10.00", "USD");

    let outcome = sbx.charge(&req).await.unwrap();
    let ChargeOutcome::RequiresAction { processor_ref, redirect_url } = outcome else { panic!("{outcome:?}") };
    assert_eq!(redirect_url, format!("https://pay.example.test/sandbox/3ds/{processor_ref}"));
    assert_eq!(
        sbx.sync(req.attempt_id, Some(&processor_ref)).await.unwrap(),
        SyncedStatus::Pending { processor_ref: processor_ref.clone() }
    );
    // Nothing to re-send while the payer has not finished.
    let early = sbx.webhook_for(&processor_ref, Utc::now()).await;
    assert!(matches!(early, Err(ConnectorError::Rejected(_))), "{early:?}");

    let now = Utc::now();
    let (body, signature) = sbx.complete_challenge(&processor_ref, true, now).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["type"], "charge.succeeded");
    assert_eq!(json["attempt_id"], req.attempt_id.to_string());
    assert_eq!(json["processor_ref"], processor_ref.as_str());
    assert_eq!(json["fee"], "0.59");
    assert_eq!(json["currency"], "USD");
    assert!(json["decline_code"].is_null());
    assert!(signature.starts_with(&format!("t={},v1=", now.timestamp())), "{signature}");
    assert_eq!(signature, sbx.sign_webhook(&body, now));

    let expected = ChargeOutcome::Succeeded { processor_ref: processor_ref.clone(), fee: dec("0.59") };
    let event = sbx.parse_webhook(&signature, body.as_bytes(), now + chrono::Duration::seconds(5)).unwrap();
    assert_eq!(
        event,
        WebhookEvent::Charge {
            attempt_id: Some(req.attempt_id),
            processor_ref: processor_ref.clone(),
            outcome: expected.clone()
        }
    );
    assert_eq!(sbx.sync(req.attempt_id, Some(&processor_ref)).await.unwrap(), SyncedStatus::Settled(expected.clone()));
    assert_eq!(sbx.charge(&req).await.unwrap(), expected);

    // Finishing the page again, or declining it late, changes nothing.
    let (again, _) = sbx.complete_challenge(&processor_ref, false, now).await.unwrap();
    assert_eq!(again, body);
    assert_eq!(sbx.sync(req.attempt_id, None).await.unwrap(), SyncedStatus::Settled(expected));

    // The webhook can be sent again, signed anew.
    let later = now + chrono::Duration::minutes(30);
    let (resent, resent_signature) = sbx.webhook_for(&processor_ref, later).await.unwrap();
    assert_eq!(resent, body);
    assert_eq!(sbx.parse_webhook(&resent_signature, resent.as_bytes(), later).unwrap(), event);

    // A captured charge cannot be voided.
    let voided = sbx.void(&processor_ref).await;
    assert!(matches!(voided, Err(ConnectorError::Rejected(_))), "{voided:?}");

    let unknown = sbx.complete_challenge("ch_sbx_unknown", true, now).await;
    assert!(matches!(unknown, Err(ConnectorError::Rejected(_))), "{unknown:?}");

    db.drop_schema().await;
}

#[tokio::test]
async fn three_d_secure_failed() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let req = request(Uuid::now_v7(), CARD_3DS, "10.00", "EUR");
    let outcome = sbx.charge(&req).await.unwrap();
    let ChargeOutcome::RequiresAction { processor_ref, .. } = outcome else { panic!("{outcome:?}") };

    let now = Utc::now();
    let (body, signature) = sbx.complete_challenge(&processor_ref, false, now).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["type"], "charge.failed");
    assert_eq!(json["decline_code"], "authentication_failed");
    assert_eq!(json["currency"], "EUR");

    let event = sbx.parse_webhook(&signature, body.as_bytes(), now).unwrap();
    let WebhookEvent::Charge { attempt_id, processor_ref: event_ref, outcome } = event else { panic!("{event:?}") };
    assert_eq!(attempt_id, Some(req.attempt_id));
    assert_eq!(event_ref, processor_ref);
    assert_declined(&outcome, DeclineCode::AuthenticationFailed);

    let synced = sbx.sync(req.attempt_id, None).await.unwrap();
    let SyncedStatus::Settled(settled) = synced else { panic!("{synced:?}") };
    assert_eq!(settled, outcome);
    let fee: Decimal = sqlx::query_scalar("SELECT fee FROM sandbox_charges WHERE processor_ref = $1")
        .bind(&processor_ref)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(fee, Decimal::ZERO);

    db.drop_schema().await;
}

#[tokio::test]
async fn webhook_signatures_are_verified() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let req = request(Uuid::now_v7(), CARD_3DS, "10.00", "USD");
    let ChargeOutcome::RequiresAction { processor_ref, .. } = sbx.charge(&req).await.unwrap() else { panic!() };
    let now = Utc::now();
    let (body, signature) = sbx.complete_challenge(&processor_ref, true, now).await.unwrap();
    sbx.parse_webhook(&signature, body.as_bytes(), now).unwrap();

    let bad = |result: Result<WebhookEvent, ConnectorError>| {
        assert!(matches!(result, Err(ConnectorError::BadSignature)), "{result:?}");
    };

    // Tampered body.
    let tampered = body.replace("0.59", "0.01");
    assert_ne!(tampered, body);
    bad(sbx.parse_webhook(&signature, tampered.as_bytes(), now));

    // Signed with another secret.
    let other = Sandbox::new(
        db.pool.clone(),
        SandboxConfig { webhook_secret: SecretString::from("whsec_other"), ..SandboxConfig::default() },
    );
    bad(sbx.parse_webhook(&other.sign_webhook(&body, now), body.as_bytes(), now));
    bad(other.parse_webhook(&signature, body.as_bytes(), now));

    // Too old, or from too far in the future.
    let stale = sbx.sign_webhook(&body, now - chrono::Duration::seconds(301));
    bad(sbx.parse_webhook(&stale, body.as_bytes(), now));
    let future = sbx.sign_webhook(&body, now + chrono::Duration::seconds(301));
    bad(sbx.parse_webhook(&future, body.as_bytes(), now));
    let recent = sbx.sign_webhook(&body, now - chrono::Duration::seconds(299));
    sbx.parse_webhook(&recent, body.as_bytes(), now).unwrap();

    // A changed timestamp breaks the signature.
    let v1 = signature.split_once(",v1=").unwrap().1;
    bad(sbx.parse_webhook(&format!("t={},v1={v1}", now.timestamp() + 1), body.as_bytes(), now));

    // Garbage headers.
    for header in [
        "",
        "garbage",
        "t=,v1=",
        "t=abc,v1=00",
        &format!("v1={v1}"),
        &format!("t={}", now.timestamp()),
        &format!("t={},v1=not-hex", now.timestamp()),
        &format!("t=-{},v1={v1}", now.timestamp()),
        "t=99999999999999999999999,v1=00",
    ] {
        bad(sbx.parse_webhook(header, body.as_bytes(), now));
    }

    // Several v1 signatures (a secret being rolled): one valid is enough.
    let rolled = format!("t={},v1={},v1={v1}", now.timestamp(), "ab".repeat(32));
    sbx.parse_webhook(&rolled, body.as_bytes(), now).unwrap();
    let spaced = format!("t={}, v1={v1}, v0=whatever", now.timestamp());
    sbx.parse_webhook(&spaced, body.as_bytes(), now).unwrap();

    // A correctly signed body that is not a valid event is malformed.
    for garbage in [
        "not json",
        "{\"type\":\"charge.succeeded\"}",
        "{\"type\":\"charge.succeeded\",\"processor_ref\":\"ch_x\",\"fee\":\"abc\"}",
    ] {
        let signed = sbx.sign_webhook(garbage, now);
        let result = sbx.parse_webhook(&signed, garbage.as_bytes(), now);
        assert!(matches!(result, Err(ConnectorError::MalformedWebhook(_))), "{garbage}: {result:?}");
    }

    // Other events are acknowledged and ignored.
    let payout = r#"{"type":"payout.paid","id":"po_1"}"#;
    let event = sbx.parse_webhook(&sbx.sign_webhook(payout, now), payout.as_bytes(), now).unwrap();
    assert_eq!(event, WebhookEvent::Ignored { kind: "payout.paid".to_owned() });

    db.drop_schema().await;
}

#[tokio::test]
async fn void_cancels_a_waiting_charge() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let req = request(Uuid::now_v7(), CARD_3DS, "10.00", "USD");
    let ChargeOutcome::RequiresAction { processor_ref, .. } = sbx.charge(&req).await.unwrap() else { panic!() };

    sbx.void(&processor_ref).await.unwrap();
    let canceled = SyncedStatus::Settled(ChargeOutcome::Declined {
        processor_ref: Some(processor_ref.clone()),
        code: DeclineCode::Other,
        message: "canceled".to_owned(),
    });
    assert_eq!(sbx.sync(req.attempt_id, None).await.unwrap(), canceled);
    sbx.void(&processor_ref).await.unwrap();

    // The payer finishing the page after the cancel does not revive the charge.
    let late = sbx.complete_challenge(&processor_ref, true, Utc::now()).await;
    assert!(matches!(late, Err(ConnectorError::Rejected(_))), "{late:?}");
    assert_eq!(sbx.sync(req.attempt_id, None).await.unwrap(), canceled);

    let refund = sbx.refund(&processor_ref, dec("1.00"), "USD", Uuid::now_v7()).await;
    assert!(matches!(refund, Err(ConnectorError::Rejected(_))), "{refund:?}");

    let captured = succeeded_ref(&sbx.charge(&request(req.tenant_id, CARD_SUCCESS, "10.00", "USD")).await.unwrap());
    let voided = sbx.void(&captured).await;
    assert!(matches!(voided, Err(ConnectorError::Rejected(_))), "{voided:?}");
    let unknown = sbx.void("ch_sbx_unknown").await;
    assert!(matches!(unknown, Err(ConnectorError::Rejected(_))), "{unknown:?}");

    db.drop_schema().await;
}

#[tokio::test]
async fn refunds_never_exceed_the_charge() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let tenant = Uuid::now_v7();
    let charge = succeeded_ref(&sbx.charge(&request(tenant, CARD_SUCCESS, "100.00", "USD")).await.unwrap());

    let first = sbx.refund(&charge, dec("30.00"), "USD", Uuid::now_v7()).await.unwrap();
    assert!(first.processor_ref.starts_with("re_sbx_"), "{}", first.processor_ref);
    let second_key = Uuid::now_v7();
    let second = sbx.refund(&charge, dec("50.00"), "USD", second_key).await.unwrap();
    assert_ne!(first, second);

    let over = sbx.refund(&charge, dec("20.01"), "USD", Uuid::now_v7()).await;
    match over {
        Err(ConnectorError::Rejected(message)) => assert!(message.contains("20.00"), "{message}"),
        other => panic!("{other:?}"),
    }

    // The same key answers with the same refund, without refunding again.
    let repeated = sbx.refund(&charge, dec("50.00"), "USD", second_key).await.unwrap();
    assert_eq!(repeated, second);
    let misused = sbx.refund(&charge, dec("10.00"), "USD", second_key).await;
    assert!(matches!(misused, Err(ConnectorError::Rejected(_))), "{misused:?}");
    assert_eq!(refund_count(&db.pool).await, 2);

    // The rest can be refunded exactly.
    sbx.refund(&charge, dec("20.00"), "USD", Uuid::now_v7()).await.unwrap();
    let nothing_left = sbx.refund(&charge, dec("0.01"), "USD", Uuid::now_v7()).await;
    assert!(matches!(nothing_left, Err(ConnectorError::Rejected(_))), "{nothing_left:?}");

    // Refunds the processor cannot make.
    let wrong_currency = sbx.refund(&charge, dec("1.00"), "EUR", Uuid::now_v7()).await;
    assert!(matches!(wrong_currency, Err(ConnectorError::Rejected(_))), "{wrong_currency:?}");
    let declined = sbx.charge(&request(tenant, CARD_DO_NOT_HONOR, "10.00", "USD")).await.unwrap();
    let ChargeOutcome::Declined { processor_ref: Some(declined_ref), .. } = declined else { panic!() };
    let of_declined = sbx.refund(&declined_ref, dec("1.00"), "USD", Uuid::now_v7()).await;
    assert!(matches!(of_declined, Err(ConnectorError::Rejected(_))), "{of_declined:?}");
    let unknown = sbx.refund("ch_sbx_unknown", dec("1.00"), "USD", Uuid::now_v7()).await;
    assert!(matches!(unknown, Err(ConnectorError::Rejected(_))), "{unknown:?}");
    let negative = sbx.refund(&charge, dec("-1.00"), "USD", Uuid::now_v7()).await;
    assert!(matches!(negative, Err(ConnectorError::Rejected(_))), "{negative:?}");

    let total: Decimal = sqlx::query_scalar("SELECT sum(amount) FROM sandbox_refunds WHERE charge_ref = $1")
        .bind(&charge)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(total, dec("100.00"));

    db.drop_schema().await;
}

#[tokio::test]
async fn concurrent_refunds_never_exceed_the_charge() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let charge = succeeded_ref(&sbx.charge(&request(Uuid::now_v7(), CARD_SUCCESS, "100.00", "USD")).await.unwrap());

    let mut tasks = Vec::new();
    for _ in 0..12 {
        let sbx = sbx.clone();
        let charge = charge.clone();
        tasks.push(tokio::spawn(async move { sbx.refund(&charge, dec("30.00"), "USD", Uuid::now_v7()).await }));
    }
    // The same idempotency key from several tasks at once is one refund.
    let shared_key = Uuid::now_v7();
    let other = succeeded_ref(&sbx.charge(&request(Uuid::now_v7(), CARD_SUCCESS, "50.00", "USD")).await.unwrap());
    let mut shared = Vec::new();
    for _ in 0..8 {
        let sbx = sbx.clone();
        let other = other.clone();
        shared.push(tokio::spawn(async move { sbx.refund(&other, dec("5.00"), "USD", shared_key).await }));
    }

    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(ConnectorError::Rejected(_)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(accepted, 3);
    let total: Decimal = sqlx::query_scalar("SELECT sum(amount) FROM sandbox_refunds WHERE charge_ref = $1")
        .bind(&charge)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(total, dec("90.00"));

    let mut refs = Vec::new();
    for task in shared {
        refs.push(task.await.unwrap().unwrap());
    }
    assert!(refs.iter().all(|r| *r == refs[0]), "{refs:?}");
    let shared_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM sandbox_refunds WHERE charge_ref = $1")
        .bind(&other)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(shared_rows, 1);

    db.drop_schema().await;
}

#[tokio::test]
async fn fees_are_rounded_to_the_currency() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let tenant = Uuid::now_v7();

    let fee_of = |outcome: ChargeOutcome| match outcome {
        ChargeOutcome::Succeeded { fee, .. } => fee.to_string(),
        other => panic!("{other:?}"),
    };
    // 2.9 % + 0.30
    assert_eq!(fee_of(sbx.charge(&request(tenant, CARD_SUCCESS, "100.00", "USD")).await.unwrap()), "3.20");
    assert_eq!(fee_of(sbx.charge(&request(tenant, CARD_SUCCESS, "10.00", "USD")).await.unwrap()), "0.59");
    // 12.35 * 0.029 = 0.35815, + 0.30 = 0.65815 -> 0.66
    assert_eq!(fee_of(sbx.charge(&request(tenant, CARD_SUCCESS, "12.35", "MXN")).await.unwrap()), "0.66");
    // 1000 JPY: 29 + 0.30 -> 29 yen; 1500 JPY: 43.5 + 0.30 = 43.8 -> 44 yen.
    assert_eq!(fee_of(sbx.charge(&request(tenant, CARD_SUCCESS, "1000", "JPY")).await.unwrap()), "29");
    assert_eq!(fee_of(sbx.charge(&request(tenant, CARD_SUCCESS, "1500", "JPY")).await.unwrap()), "44");

    // Configured fees.
    let custom = Sandbox::new(
        db.pool.clone(),
        SandboxConfig { fee_percent: dec("3.5"), fee_fixed: dec("2.50"), ..SandboxConfig::default() },
    );
    assert_eq!(fee_of(custom.charge(&request(tenant, CARD_SUCCESS, "200.00", "MXN")).await.unwrap()), "9.50");

    // Declines carry no fee.
    sbx.charge(&request(tenant, CARD_DO_NOT_HONOR, "100.00", "USD")).await.unwrap();
    let declined_fees: Decimal =
        sqlx::query_scalar("SELECT COALESCE(sum(fee), 0) FROM sandbox_charges WHERE status <> 'succeeded'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(declined_fees, Decimal::ZERO);

    db.drop_schema().await;
}

async fn set_day(pool: &PgPool, processor_ref: &str, at: DateTime<Utc>) {
    sqlx::query("UPDATE sandbox_charges SET created_at = $2, updated_at = $2 WHERE processor_ref = $1")
        .bind(processor_ref)
        .bind(at)
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn settlement_sums_each_currency() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let tenant = Uuid::now_v7();
    let other_tenant = Uuid::now_v7();
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let morning = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let evening = Utc.with_ymd_and_hms(2026, 11, 20, 23, 59, 59).unwrap();
    let next_day = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();

    let usd_a = succeeded_ref(&sbx.charge(&request(tenant, CARD_SUCCESS, "100.00", "USD")).await.unwrap());
    let usd_b = succeeded_ref(&sbx.charge(&request(tenant, CARD_SUCCESS, "10.00", "USD")).await.unwrap());
    let eur = succeeded_ref(&sbx.charge(&request(tenant, CARD_SUCCESS, "50.00", "EUR")).await.unwrap());
    let usd_next = succeeded_ref(&sbx.charge(&request(tenant, CARD_SUCCESS, "70.00", "USD")).await.unwrap());
    let declined = sbx.charge(&request(tenant, CARD_INSUFFICIENT_FUNDS, "80.00", "USD")).await.unwrap();
    let ChargeOutcome::Declined { processor_ref: Some(declined), .. } = declined else { panic!() };
    let foreign = succeeded_ref(&sbx.charge(&request(other_tenant, CARD_SUCCESS, "5.00", "USD")).await.unwrap());
    set_day(&db.pool, &usd_a, morning).await;
    set_day(&db.pool, &usd_b, evening).await;
    set_day(&db.pool, &eur, evening).await;
    set_day(&db.pool, &usd_next, next_day).await;
    set_day(&db.pool, &declined, morning).await;
    set_day(&db.pool, &foreign, morning).await;

    let refund = sbx.refund(&usd_a, dec("25.00"), "USD", Uuid::now_v7()).await.unwrap();
    let next_day_refund = sbx.refund(&usd_a, dec("5.00"), "USD", Uuid::now_v7()).await.unwrap();
    for (r, at) in [(&refund.processor_ref, evening), (&next_day_refund.processor_ref, next_day)] {
        sqlx::query("UPDATE sandbox_refunds SET created_at = $2 WHERE processor_ref = $1")
            .bind(r)
            .bind(at)
            .execute(&db.pool)
            .await
            .unwrap();
    }

    let settlements = sbx.settlement(tenant, day).await.unwrap();
    assert_eq!(settlements.len(), 2, "{settlements:?}");
    let eur_day = &settlements[0];
    assert_eq!(eur_day.currency, "EUR");
    assert_eq!(eur_day.day, day);
    assert_eq!(
        (eur_day.gross, eur_day.fees, eur_day.refunds, eur_day.net),
        (dec("50.00"), dec("1.75"), dec("0"), dec("48.25"))
    );
    assert_eq!(eur_day.net.to_string(), "48.25");
    assert_eq!(eur_day.refunds.to_string(), "0.00");
    assert_eq!(eur_day.lines.len(), 1);

    let usd_day = &settlements[1];
    assert_eq!(usd_day.currency, "USD");
    assert_eq!(usd_day.gross, dec("110.00"));
    assert_eq!(usd_day.fees, dec("3.79"));
    assert_eq!(usd_day.refunds, dec("25.00"));
    assert_eq!(usd_day.net, dec("81.21"));
    assert_eq!(usd_day.net, usd_day.gross - usd_day.fees - usd_day.refunds);
    let mut line_refs: Vec<&str> = usd_day.lines.iter().map(|l| l.processor_ref.as_str()).collect();
    line_refs.sort_unstable();
    let mut expected_refs = vec![usd_a.as_str(), usd_b.as_str()];
    expected_refs.sort_unstable();
    assert_eq!(line_refs, expected_refs);
    assert_eq!(usd_day.lines.iter().map(|l| l.amount).sum::<Decimal>(), usd_day.gross);
    assert_eq!(usd_day.lines.iter().map(|l| l.fee).sum::<Decimal>(), usd_day.fees);
    assert!(usd_day.payout_ref.starts_with("po_sbx_20261120_USD"), "{}", usd_day.payout_ref);
    assert_ne!(usd_day.payout_ref, eur_day.payout_ref);

    // The report is deterministic, and differs per tenant.
    assert_eq!(sbx.settlement(tenant, day).await.unwrap(), settlements);
    let foreign_day = sbx.settlement(other_tenant, day).await.unwrap();
    assert_eq!(foreign_day.len(), 1);
    assert_eq!(foreign_day[0].gross, dec("5.00"));
    assert!(foreign_day[0].payout_ref.starts_with("po_sbx_20261120_USD"));
    assert_ne!(foreign_day[0].payout_ref, usd_day.payout_ref);

    // The next day: one charge and one refund.
    let next = sbx.settlement(tenant, day.succ_opt().unwrap()).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].gross, next[0].fees, next[0].refunds), (dec("70.00"), dec("2.33"), dec("5.00")));
    assert_eq!(next[0].net, dec("62.67"));

    // A quiet day has no payout.
    assert!(sbx.settlement(tenant, day.pred_opt().unwrap()).await.unwrap().is_empty());

    db.drop_schema().await;
}

#[tokio::test]
async fn the_card_number_is_never_stored_nor_printed() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let sbx = sandbox(&db.pool);
    let tenant = Uuid::now_v7();
    let pans = [
        CARD_SUCCESS,
        CARD_INSUFFICIENT_FUNDS,
        CARD_DO_NOT_HONOR,
        CARD_EXPIRED,
        CARD_3DS,
        CARD_PROCESSING_ERROR,
        CARD_TIMEOUT,
        "5555555555554444",
    ];
    for pan in pans {
        let req = request(tenant, pan, "12.34", "USD");
        let shown = format!("{req:?}");
        assert!(!shown.contains(pan), "{shown}");
        assert!(!shown.contains(&pan[..12]), "{shown}");
        let outcome = sbx.charge(&req).await;
        assert!(!format!("{outcome:?}").contains(pan));
        if let Ok(ChargeOutcome::Succeeded { processor_ref, .. }) = outcome {
            sbx.refund(&processor_ref, dec("1.00"), "USD", Uuid::now_v7()).await.unwrap();
        }
    }

    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(c)::text FROM sandbox_charges c \
         UNION ALL SELECT row_to_json(r)::text FROM sandbox_refunds r",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(rows.len() > pans.len());
    for row in rows {
        for pan in pans {
            assert!(!row.contains(pan), "{row}");
            assert!(!row.contains(&pan[..12]), "{row}");
        }
    }

    // The configuration does not print its secret either.
    let config = SandboxConfig::default();
    assert!(!format!("{config:?}").contains("whsec_sandbox"));
    assert!(!format!("{sbx:?}").contains("whsec_sandbox"));

    db.drop_schema().await;
}

#[tokio::test]
async fn an_unavailable_processor_does_nothing() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let healthy = sandbox(&db.pool);
    let tenant = Uuid::now_v7();
    let charged = succeeded_ref(&healthy.charge(&request(tenant, CARD_SUCCESS, "10.00", "USD")).await.unwrap());

    let down = Sandbox::new(db.pool.clone(), SandboxConfig { failure_per_mille: 1000, ..SandboxConfig::default() });
    for _ in 0..20 {
        let req = request(tenant, CARD_SUCCESS, "10.00", "USD");
        let result = down.charge(&req).await;
        assert!(matches!(result, Err(ConnectorError::Unavailable(_))), "{result:?}");
        assert_eq!(healthy.sync(req.attempt_id, None).await.unwrap(), SyncedStatus::NotFound);
    }
    let refund = down.refund(&charged, dec("1.00"), "USD", Uuid::now_v7()).await;
    assert!(matches!(refund, Err(ConnectorError::Unavailable(_))), "{refund:?}");
    let synced = down.sync(Uuid::now_v7(), None).await;
    assert!(matches!(synced, Err(ConnectorError::Unavailable(_))), "{synced:?}");
    let voided = down.void(&charged).await;
    assert!(matches!(voided, Err(ConnectorError::Unavailable(_))), "{voided:?}");
    assert_eq!(charge_count(&db.pool).await, 1);
    assert_eq!(refund_count(&db.pool).await, 0);

    // Half the calls fail: over many calls some do and some do not, and only the successful
    // ones are recorded.
    let flaky = Sandbox::new(db.pool.clone(), SandboxConfig { failure_per_mille: 500, ..SandboxConfig::default() });
    let mut ok = 0;
    for _ in 0..60 {
        if flaky.charge(&request(tenant, CARD_SUCCESS, "1.00", "USD")).await.is_ok() {
            ok += 1;
        }
    }
    assert!(ok > 0 && ok < 60, "{ok}");
    assert_eq!(charge_count(&db.pool).await, 1 + ok);

    db.drop_schema().await;
}

#[tokio::test]
async fn latency_delays_every_call() {
    let db = TestDb::new(&cobro_payments::migrator()).await;
    let slow = Sandbox::new(
        db.pool.clone(),
        SandboxConfig { latency: Duration::from_millis(150), ..SandboxConfig::default() },
    );
    let started = std::time::Instant::now();
    slow.charge(&request(Uuid::now_v7(), CARD_SUCCESS, "10.00", "USD")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));

    db.drop_schema().await;
}

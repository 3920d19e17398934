//! The built-in sandbox processor: deterministic test cards, 3-D Secure, refunds, signed
//! webhooks and a daily payout report.
//!
//! It stands for a processor outside Cobro, so it keeps its own books in `sandbox_charges` and
//! `sandbox_refunds` on its own pool. Every write is committed before the sandbox answers, so a
//! caller that crashes after the processor approved still finds the charge with
//! [`Connector::sync`]. Only the last four digits of a card are ever stored.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use cobro_kit::money::{Currency, round_to_minor};
use hmac::{Hmac, Mac};
use rand::Rng;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{
    ChargeOutcome, ChargeRequest, Connector, ConnectorError, DeclineCode, RefundOutcome, Settlement, SettlementLine,
    SyncedStatus, WebhookEvent,
};

/// Succeeds.
pub const CARD_SUCCESS: &str = "4242424242424242";
/// Declined for insufficient funds (soft: may succeed later).
pub const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
/// Declined for insufficient funds on its first charge in a tenant, approved from then on: the
/// customer's funds arrived before autopay retried.
pub const CARD_INSUFFICIENT_FUNDS_ONCE: &str = "4000000000005126";
/// Declined "do not honor" (hard).
pub const CARD_DO_NOT_HONOR: &str = "4000000000000002";
/// Declined as expired (hard), whatever its expiry date says.
pub const CARD_EXPIRED: &str = "4000000000000069";
/// Asks for 3-D Secure: the charge waits until [`Sandbox::complete_challenge`].
pub const CARD_3DS: &str = "4000000000003220";
/// Declined with a processing error (soft, transient).
pub const CARD_PROCESSING_ERROR: &str = "4000000000000119";
/// Approved and recorded, but the answer never reaches the caller: the first call fails with
/// [`ConnectorError::Unavailable`] and only a retry or [`Connector::sync`] learns the charge
/// succeeded.
pub const CARD_TIMEOUT: &str = "4000000000000341";

/// How far a webhook's timestamp may be from the receiver's clock, in seconds.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

const STATUS_SUCCEEDED: &str = "succeeded";
const STATUS_REQUIRES_ACTION: &str = "requires_action";
const STATUS_DECLINED: &str = "declined";
const STATUS_CANCELED: &str = "canceled";

const EVENT_SUCCEEDED: &str = "charge.succeeded";
const EVENT_FAILED: &str = "charge.failed";

type HmacSha256 = Hmac<Sha256>;

/// How the sandbox behaves.
#[derive(Clone)]
pub struct SandboxConfig {
    /// Added to every processor call, to make timeouts and slow paths observable.
    pub latency: Duration,
    /// Share of processor calls, in 0..=1000, that fail with [`ConnectorError::Unavailable`]
    /// before doing anything.
    pub failure_per_mille: u32,
    /// Key of the webhook signatures (`t=...,v1=...`, HMAC-SHA256).
    pub webhook_secret: SecretString,
    /// Where the 3-D Secure page is served; redirect URLs start with it.
    pub challenge_base_url: String,
    /// Percentage fee of each captured charge.
    pub fee_percent: Decimal,
    /// Fixed fee of each captured charge, in the charge currency's major unit.
    pub fee_fixed: Decimal,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            latency: Duration::ZERO,
            failure_per_mille: 0,
            webhook_secret: SecretString::from("whsec_sandbox"),
            challenge_base_url: "http://127.0.0.1:8080".to_owned(),
            fee_percent: Decimal::new(29, 1),
            fee_fixed: Decimal::new(30, 2),
        }
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("latency", &self.latency)
            .field("failure_per_mille", &self.failure_per_mille)
            .field("webhook_secret", &"[redacted]")
            .field("challenge_base_url", &self.challenge_base_url)
            .field("fee_percent", &self.fee_percent)
            .field("fee_fixed", &self.fee_fixed)
            .finish()
    }
}

/// The sandbox processor. Cheap to clone: clones share the pool.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pool: PgPool,
    config: SandboxConfig,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct ChargeRow {
    processor_ref: String,
    attempt_id: Uuid,
    tenant_id: Uuid,
    amount: Decimal,
    currency: String,
    fee: Decimal,
    status: String,
    decline_code: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct RefundRow {
    processor_ref: String,
    charge_ref: String,
    amount: Decimal,
}

/// What the processor decides for a new charge.
enum Decision {
    Succeed,
    RequireAction,
    Decline(DeclineCode),
    /// Succeed, but the answer is lost on the way back.
    SucceedSilently,
}

/// The webhook body, with fields in the order the processor sends them.
#[derive(Debug, Serialize, Deserialize)]
struct ChargeWebhook {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    attempt_id: Option<Uuid>,
    processor_ref: String,
    #[serde(default)]
    fee: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WebhookKind {
    #[serde(rename = "type")]
    kind: String,
}

impl Sandbox {
    pub fn new(pool: PgPool, config: SandboxConfig) -> Sandbox {
        Sandbox { pool, config }
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The 3-D Secure page of a charge.
    pub fn challenge_url(&self, processor_ref: &str) -> String {
        format!("{}/sandbox/3ds/{processor_ref}", self.config.challenge_base_url.trim_end_matches('/'))
    }

    /// The payer finished (`approve`) or failed the 3-D Secure page of a charge. Only a charge
    /// waiting for authentication moves; a charge that already settled keeps its state. Returns
    /// the signed webhook `(body, signature header)` the processor sends about the result.
    pub async fn complete_challenge(
        &self,
        processor_ref: &str,
        approve: bool,
        now: DateTime<Utc>,
    ) -> Result<(String, String), ConnectorError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let row: Option<ChargeRow> = sqlx::query_as(
            "SELECT processor_ref, attempt_id, tenant_id, amount, currency, fee, status, decline_code \
             FROM sandbox_charges WHERE processor_ref = $1 FOR UPDATE",
        )
        .bind(processor_ref)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(mut row) = row else {
            return Err(ConnectorError::Rejected("no such charge".to_owned()));
        };
        if row.status == STATUS_REQUIRES_ACTION {
            if approve {
                let currency = charge_currency(&row.currency)?;
                row.fee = self.fee(row.amount, currency);
                row.status = STATUS_SUCCEEDED.to_owned();
                row.decline_code = None;
            } else {
                row.status = STATUS_DECLINED.to_owned();
                row.decline_code = Some(DeclineCode::AuthenticationFailed.as_str().to_owned());
            }
            sqlx::query(
                "UPDATE sandbox_charges SET status = $2, fee = $3, decline_code = $4, updated_at = now() \
                 WHERE processor_ref = $1",
            )
            .bind(&row.processor_ref)
            .bind(&row.status)
            .bind(row.fee)
            .bind(&row.decline_code)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        self.webhook_of(&row, now)
    }

    /// The signed webhook of a settled charge, sent again.
    pub async fn webhook_for(
        &self,
        processor_ref: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, String), ConnectorError> {
        let row = self
            .charge_by_ref(processor_ref)
            .await?
            .ok_or_else(|| ConnectorError::Rejected("no such charge".to_owned()))?;
        self.webhook_of(&row, now)
    }

    /// The signature header of a webhook body sent at `now`: `t=<unix seconds>,v1=<hex
    /// HMAC-SHA256(secret, "<t>.<body>")>`.
    pub fn sign_webhook(&self, body: &str, now: DateTime<Utc>) -> String {
        let t = now.timestamp().to_string();
        let mac = self.mac(&t, body.as_bytes());
        format!("t={t},v1={}", hex::encode(mac))
    }

    /// The processor's payout report for one UTC day of a tenant, one entry per currency:
    /// charges captured that day, their fees and the refunds made that day. Empty when nothing
    /// happened.
    pub async fn settlement(&self, tenant_id: Uuid, day: NaiveDate) -> Result<Vec<Settlement>, ConnectorError> {
        let start = day.and_time(NaiveTime::MIN).and_utc();
        let end = day
            .succ_opt()
            .ok_or_else(|| ConnectorError::Rejected("the day is out of range".to_owned()))?
            .and_time(NaiveTime::MIN)
            .and_utc();
        let charges: Vec<(String, Decimal, String, Decimal)> = sqlx::query_as(
            "SELECT processor_ref, amount, currency, fee FROM sandbox_charges \
             WHERE tenant_id = $1 AND status = 'succeeded' AND updated_at >= $2 AND updated_at < $3 \
             ORDER BY currency, updated_at, processor_ref",
        )
        .bind(tenant_id)
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let refunds: Vec<(String, Decimal)> = sqlx::query_as(
            "SELECT c.currency, r.amount FROM sandbox_refunds r \
             JOIN sandbox_charges c ON c.processor_ref = r.charge_ref \
             WHERE c.tenant_id = $1 AND r.created_at >= $2 AND r.created_at < $3",
        )
        .bind(tenant_id)
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;

        #[derive(Default)]
        struct Totals {
            gross: Decimal,
            fees: Decimal,
            refunds: Decimal,
            lines: Vec<SettlementLine>,
        }
        let mut by_currency: BTreeMap<String, Totals> = BTreeMap::new();
        for (processor_ref, amount, currency, fee) in charges {
            let totals = by_currency.entry(currency).or_default();
            totals.gross += amount;
            totals.fees += fee;
            totals.lines.push(SettlementLine { processor_ref, amount, fee });
        }
        for (currency, amount) in refunds {
            by_currency.entry(currency).or_default().refunds += amount;
        }

        let suffix = tenant_suffix(tenant_id);
        let mut settlements = Vec::with_capacity(by_currency.len());
        for (code, totals) in by_currency {
            let currency = charge_currency(&code)?;
            let gross = round_to_minor(totals.gross, currency);
            let fees = round_to_minor(totals.fees, currency);
            let refunds = round_to_minor(totals.refunds, currency);
            let net = round_to_minor(gross - fees - refunds, currency);
            settlements.push(Settlement {
                day,
                payout_ref: format!("po_sbx_{}_{code}_{suffix}", day.format("%Y%m%d")),
                currency: code,
                gross,
                fees,
                net,
                refunds,
                lines: totals.lines,
            });
        }
        Ok(settlements)
    }

    /// A processor call that may fail or be slow, as configured.
    async fn network(&self) -> Result<(), ConnectorError> {
        if self.fails() {
            return Err(ConnectorError::Unavailable("the sandbox processor is unavailable".to_owned()));
        }
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        Ok(())
    }

    fn fails(&self) -> bool {
        match self.config.failure_per_mille {
            0 => false,
            n if n >= 1000 => true,
            n => rand::thread_rng().gen_range(0..1000) < n,
        }
    }

    fn fee(&self, amount: Decimal, currency: Currency) -> Decimal {
        let hundred = Decimal::ONE_HUNDRED;
        round_to_minor(amount * self.config.fee_percent / hundred + self.config.fee_fixed, currency)
    }

    fn mac(&self, t: &str, body: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so this never fails.
        let mut mac = match HmacSha256::new_from_slice(self.config.webhook_secret.expose_secret().as_bytes()) {
            Ok(mac) => mac,
            Err(_) => return Vec::new(),
        };
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    fn webhook_of(&self, row: &ChargeRow, now: DateTime<Utc>) -> Result<(String, String), ConnectorError> {
        let kind = match row.status.as_str() {
            STATUS_SUCCEEDED => EVENT_SUCCEEDED,
            STATUS_DECLINED => EVENT_FAILED,
            STATUS_REQUIRES_ACTION => {
                return Err(ConnectorError::Rejected("the charge is still waiting for 3-D Secure".to_owned()));
            }
            _ => return Err(ConnectorError::Rejected("the charge was canceled".to_owned())),
        };
        let currency = charge_currency(&row.currency)?;
        let body = ChargeWebhook {
            kind: kind.to_owned(),
            attempt_id: Some(row.attempt_id),
            processor_ref: row.processor_ref.clone(),
            fee: Some(round_to_minor(row.fee, currency).to_string()),
            currency: Some(row.currency.clone()),
            decline_code: if row.status == STATUS_DECLINED {
                Some(row.decline_code.clone().unwrap_or_else(|| DeclineCode::Other.as_str().to_owned()))
            } else {
                None
            },
        };
        let body = serde_json::to_string(&body)
            .map_err(|_| ConnectorError::Unavailable("the webhook could not be encoded".to_owned()))?;
        let signature = self.sign_webhook(&body, now);
        Ok((body, signature))
    }

    fn verify_signature(&self, header: &str, body: &[u8], now: DateTime<Utc>) -> Result<(), ConnectorError> {
        let mut timestamp: Option<&str> = None;
        let mut candidates: Vec<Vec<u8>> = Vec::new();
        for part in header.split(',') {
            let Some((key, value)) = part.trim().split_once('=') else {
                continue;
            };
            match key.trim() {
                "t" => {
                    if timestamp.is_some() {
                        return Err(ConnectorError::BadSignature);
                    }
                    timestamp = Some(value.trim());
                }
                "v1" => {
                    if let Ok(sig) = hex::decode(value.trim()) {
                        candidates.push(sig);
                    }
                }
                _ => {}
            }
        }
        let t = timestamp.ok_or(ConnectorError::BadSignature)?;
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConnectorError::BadSignature);
        }
        let sent: i64 = t.parse().map_err(|_| ConnectorError::BadSignature)?;
        let age = now.timestamp().checked_sub(sent).ok_or(ConnectorError::BadSignature)?;
        if age.checked_abs().is_none_or(|age| age > WEBHOOK_TOLERANCE_SECS) {
            return Err(ConnectorError::BadSignature);
        }
        let expected = self.mac(t, body);
        if expected.is_empty() {
            return Err(ConnectorError::BadSignature);
        }
        let mut verified = subtle::Choice::from(0u8);
        for candidate in &candidates {
            verified |= expected.as_slice().ct_eq(candidate.as_slice());
        }
        if bool::from(verified) { Ok(()) } else { Err(ConnectorError::BadSignature) }
    }

    async fn charge_by_attempt(&self, attempt_id: Uuid) -> Result<Option<ChargeRow>, ConnectorError> {
        sqlx::query_as(
            "SELECT processor_ref, attempt_id, tenant_id, amount, currency, fee, status, decline_code \
             FROM sandbox_charges WHERE attempt_id = $1",
        )
        .bind(attempt_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    /// Whether this tenant's card ending in `last4` was ever declined for lack of funds.
    async fn declined_before(&self, tenant_id: Uuid, last4: &str) -> Result<bool, ConnectorError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sandbox_charges WHERE tenant_id = $1 AND last4 = $2 \
             AND decline_code = 'insufficient_funds')",
        )
        .bind(tenant_id)
        .bind(last4)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn charge_by_ref(&self, processor_ref: &str) -> Result<Option<ChargeRow>, ConnectorError> {
        sqlx::query_as(
            "SELECT processor_ref, attempt_id, tenant_id, amount, currency, fee, status, decline_code \
             FROM sandbox_charges WHERE processor_ref = $1",
        )
        .bind(processor_ref)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    /// The answer the processor gives about a recorded charge.
    fn outcome_of(&self, row: &ChargeRow) -> ChargeOutcome {
        match row.status.as_str() {
            STATUS_SUCCEEDED => ChargeOutcome::Succeeded {
                processor_ref: row.processor_ref.clone(),
                fee: match Currency::from_code(&row.currency) {
                    Ok(currency) => round_to_minor(row.fee, currency),
                    Err(_) => row.fee,
                },
            },
            STATUS_REQUIRES_ACTION => ChargeOutcome::RequiresAction {
                processor_ref: row.processor_ref.clone(),
                redirect_url: self.challenge_url(&row.processor_ref),
            },
            STATUS_CANCELED => ChargeOutcome::Declined {
                processor_ref: Some(row.processor_ref.clone()),
                code: DeclineCode::Other,
                message: "canceled".to_owned(),
            },
            _ => {
                let code = DeclineCode::parse(row.decline_code.as_deref().unwrap_or(""));
                ChargeOutcome::Declined {
                    processor_ref: Some(row.processor_ref.clone()),
                    code,
                    message: decline_message(code).to_owned(),
                }
            }
        }
    }

    /// A recorded charge, as long as it is the same charge the request asks for.
    fn replay(&self, row: &ChargeRow, req: &ChargeRequest) -> Result<ChargeOutcome, ConnectorError> {
        if row.tenant_id != req.tenant_id || row.amount != req.amount || row.currency != req.currency {
            return Err(ConnectorError::Rejected("the attempt id was already used for a different charge".to_owned()));
        }
        Ok(self.outcome_of(row))
    }
}

impl Connector for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn charge(&self, req: &ChargeRequest) -> Result<ChargeOutcome, ConnectorError> {
        self.network().await?;
        if let Some(row) = self.charge_by_attempt(req.attempt_id).await? {
            return self.replay(&row, req);
        }

        let currency = charge_currency(&req.currency)?;
        if req.amount <= Decimal::ZERO {
            return Err(ConnectorError::Rejected("the amount must be positive".to_owned()));
        }
        if req.amount.normalize().scale() > currency.minor_units() {
            return Err(ConnectorError::Rejected(format!(
                "the amount has more decimals than {} allows",
                currency.code()
            )));
        }
        let digits: String = req.card.pan.expose_secret().chars().filter(char::is_ascii_digit).collect();
        if !(12..=19).contains(&digits.len()) {
            return Err(ConnectorError::Rejected("the card number is invalid".to_owned()));
        }
        if !(1..=12).contains(&req.card.exp_month) {
            return Err(ConnectorError::Rejected("the card's expiry month is invalid".to_owned()));
        }
        let last4 = digits.get(digits.len().saturating_sub(4)..).unwrap_or("").to_owned();

        let today = cobro_kit::clock::now();
        let expired = (i64::from(req.card.exp_year), req.card.exp_month) < (i64::from(today.year()), today.month());
        let decision = if expired {
            Decision::Decline(DeclineCode::ExpiredCard)
        } else {
            match digits.as_str() {
                CARD_INSUFFICIENT_FUNDS => Decision::Decline(DeclineCode::InsufficientFunds),
                CARD_INSUFFICIENT_FUNDS_ONCE if !self.declined_before(req.tenant_id, &last4).await? => {
                    Decision::Decline(DeclineCode::InsufficientFunds)
                }
                CARD_DO_NOT_HONOR => Decision::Decline(DeclineCode::DoNotHonor),
                CARD_EXPIRED => Decision::Decline(DeclineCode::ExpiredCard),
                CARD_3DS => Decision::RequireAction,
                CARD_PROCESSING_ERROR => Decision::Decline(DeclineCode::ProcessingError),
                CARD_TIMEOUT => Decision::SucceedSilently,
                _ => Decision::Succeed,
            }
        };

        let (status, fee, decline_code) = match decision {
            Decision::Succeed | Decision::SucceedSilently => (STATUS_SUCCEEDED, self.fee(req.amount, currency), None),
            Decision::RequireAction => (STATUS_REQUIRES_ACTION, Decimal::ZERO, None),
            Decision::Decline(code) => (STATUS_DECLINED, Decimal::ZERO, Some(code.as_str())),
        };
        let processor_ref = format!("ch_sbx_{}", Uuid::new_v4().simple());
        let inserted = sqlx::query(
            "INSERT INTO sandbox_charges \
             (processor_ref, attempt_id, tenant_id, amount, currency, fee, status, decline_code, last4) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (attempt_id) DO NOTHING",
        )
        .bind(&processor_ref)
        .bind(req.attempt_id)
        .bind(req.tenant_id)
        .bind(req.amount)
        .bind(&req.currency)
        .bind(fee)
        .bind(status)
        .bind(decline_code)
        .bind(&last4)
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected()
            == 1;

        let row = self
            .charge_by_attempt(req.attempt_id)
            .await?
            .ok_or_else(|| ConnectorError::Unavailable("the charge was not recorded".to_owned()))?;
        if !inserted {
            // Another identical call got there first: answer with what it recorded.
            return self.replay(&row, req);
        }
        if matches!(decision, Decision::SucceedSilently) {
            return Err(ConnectorError::Unavailable("timed out waiting for the processor".to_owned()));
        }
        Ok(self.outcome_of(&row))
    }

    async fn void(&self, processor_ref: &str) -> Result<(), ConnectorError> {
        self.network().await?;
        let canceled = sqlx::query(
            "UPDATE sandbox_charges SET status = 'canceled', updated_at = now() \
             WHERE processor_ref = $1 AND status = 'requires_action'",
        )
        .bind(processor_ref)
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected();
        if canceled == 1 {
            return Ok(());
        }
        let row = self
            .charge_by_ref(processor_ref)
            .await?
            .ok_or_else(|| ConnectorError::Rejected("no such charge".to_owned()))?;
        match row.status.as_str() {
            // Nothing was captured, so nothing is left to cancel.
            STATUS_CANCELED | STATUS_DECLINED => Ok(()),
            STATUS_SUCCEEDED => {
                Err(ConnectorError::Rejected("the charge was already captured; refund it instead".to_owned()))
            }
            _ => Err(ConnectorError::Rejected("the charge cannot be canceled".to_owned())),
        }
    }

    async fn refund(
        &self,
        processor_ref: &str,
        amount: Decimal,
        currency: &str,
        idempotency_key: Uuid,
    ) -> Result<RefundOutcome, ConnectorError> {
        self.network().await?;
        if let Some(existing) = self.refund_by_key(idempotency_key).await? {
            return replay_refund(&existing, processor_ref, amount);
        }
        let refund_currency = charge_currency(currency)?;
        if amount <= Decimal::ZERO {
            return Err(ConnectorError::Rejected("the refund amount must be positive".to_owned()));
        }
        if amount.normalize().scale() > refund_currency.minor_units() {
            return Err(ConnectorError::Rejected(format!(
                "the refund amount has more decimals than {} allows",
                refund_currency.code()
            )));
        }

        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let charge: Option<ChargeRow> = sqlx::query_as(
            "SELECT processor_ref, attempt_id, tenant_id, amount, currency, fee, status, decline_code \
             FROM sandbox_charges WHERE processor_ref = $1 FOR UPDATE",
        )
        .bind(processor_ref)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(charge) = charge else {
            return Err(ConnectorError::Rejected("no such charge".to_owned()));
        };
        if charge.status != STATUS_SUCCEEDED {
            return Err(ConnectorError::Rejected("only a captured charge can be refunded".to_owned()));
        }
        if charge.currency != currency {
            return Err(ConnectorError::Rejected(format!("the charge is in {}, not {currency}", charge.currency)));
        }
        let refunded: Decimal =
            sqlx::query_scalar("SELECT COALESCE(sum(amount), 0) FROM sandbox_refunds WHERE charge_ref = $1")
                .bind(processor_ref)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        let refundable = charge.amount - refunded;
        if amount > refundable {
            return Err(ConnectorError::Rejected(format!(
                "the refund of {} {currency} exceeds the {} {currency} left to refund on the charge",
                round_to_minor(amount, refund_currency),
                round_to_minor(refundable, refund_currency),
            )));
        }
        let refund_ref = format!("re_sbx_{}", Uuid::new_v4().simple());
        let inserted = sqlx::query(
            "INSERT INTO sandbox_refunds (processor_ref, idempotency_key, charge_ref, amount) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&refund_ref)
        .bind(idempotency_key)
        .bind(processor_ref)
        .bind(amount)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected()
            == 1;
        if !inserted {
            // The same refund was made concurrently (possibly on another charge).
            tx.rollback().await.map_err(db_error)?;
            let existing = self
                .refund_by_key(idempotency_key)
                .await?
                .ok_or_else(|| ConnectorError::Unavailable("the refund was not recorded".to_owned()))?;
            return replay_refund(&existing, processor_ref, amount);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(RefundOutcome { processor_ref: refund_ref })
    }

    async fn sync(&self, attempt_id: Uuid, _processor_ref: Option<&str>) -> Result<SyncedStatus, ConnectorError> {
        self.network().await?;
        let Some(row) = self.charge_by_attempt(attempt_id).await? else {
            return Ok(SyncedStatus::NotFound);
        };
        Ok(match row.status.as_str() {
            STATUS_REQUIRES_ACTION => SyncedStatus::Pending { processor_ref: row.processor_ref },
            _ => SyncedStatus::Settled(self.outcome_of(&row)),
        })
    }

    fn parse_webhook(&self, signature: &str, body: &[u8], now: DateTime<Utc>) -> Result<WebhookEvent, ConnectorError> {
        self.verify_signature(signature, body, now)?;
        let kind: WebhookKind = serde_json::from_slice(body)
            .map_err(|_| ConnectorError::MalformedWebhook("expected a JSON object with a \"type\"".to_owned()))?;
        if kind.kind != EVENT_SUCCEEDED && kind.kind != EVENT_FAILED {
            return Ok(WebhookEvent::Ignored { kind: kind.kind });
        }
        let event: ChargeWebhook = serde_json::from_slice(body).map_err(|_| {
            ConnectorError::MalformedWebhook("a charge event needs a processor_ref and a valid attempt_id".to_owned())
        })?;
        let outcome = if event.kind == EVENT_SUCCEEDED {
            let fee = event
                .fee
                .as_deref()
                .ok_or_else(|| ConnectorError::MalformedWebhook("a succeeded charge needs a fee".to_owned()))?
                .parse::<Decimal>()
                .map_err(|_| ConnectorError::MalformedWebhook("the fee is not a decimal number".to_owned()))?;
            ChargeOutcome::Succeeded { processor_ref: event.processor_ref.clone(), fee }
        } else {
            let code = DeclineCode::parse(event.decline_code.as_deref().unwrap_or(""));
            ChargeOutcome::Declined {
                processor_ref: Some(event.processor_ref.clone()),
                code,
                message: decline_message(code).to_owned(),
            }
        };
        Ok(WebhookEvent::Charge { attempt_id: event.attempt_id, processor_ref: event.processor_ref, outcome })
    }
}

impl Sandbox {
    async fn refund_by_key(&self, idempotency_key: Uuid) -> Result<Option<RefundRow>, ConnectorError> {
        sqlx::query_as("SELECT processor_ref, charge_ref, amount FROM sandbox_refunds WHERE idempotency_key = $1")
            .bind(idempotency_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)
    }
}

/// A refund already made under an idempotency key, as long as it is the same refund.
fn replay_refund(existing: &RefundRow, processor_ref: &str, amount: Decimal) -> Result<RefundOutcome, ConnectorError> {
    if existing.charge_ref != processor_ref || existing.amount != amount {
        return Err(ConnectorError::Rejected("the idempotency key was already used for a different refund".to_owned()));
    }
    Ok(RefundOutcome { processor_ref: existing.processor_ref.clone() })
}

fn charge_currency(code: &str) -> Result<Currency, ConnectorError> {
    Currency::from_code(code).map_err(|e| ConnectorError::Rejected(e.to_string()))
}

fn decline_message(code: DeclineCode) -> &'static str {
    match code {
        DeclineCode::InsufficientFunds => "the card has insufficient funds",
        DeclineCode::DoNotHonor => "the card was declined by the issuer",
        DeclineCode::ExpiredCard => "the card has expired",
        DeclineCode::IncorrectCvc => "the card's security code is incorrect",
        DeclineCode::Fraudulent => "the card was declined as suspected fraud",
        DeclineCode::AuthenticationFailed => "3-D Secure authentication failed",
        DeclineCode::ProcessingError => "an error occurred while processing the card; try again",
        DeclineCode::Other => "the card was declined",
    }
}

/// A short, stable suffix per tenant, so payout references of different tenants differ.
fn tenant_suffix(tenant_id: Uuid) -> String {
    let digest = Sha256::digest(tenant_id.as_bytes());
    hex::encode(digest.get(..4).unwrap_or_default())
}

fn db_error(error: sqlx::Error) -> ConnectorError {
    tracing::warn!(error = %error, "sandbox processor database error");
    ConnectorError::Unavailable("the sandbox processor's database is unavailable".to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn config_debug_hides_the_secret() {
        let config = SandboxConfig::default();
        let shown = format!("{config:?}");
        assert!(!shown.contains("whsec_sandbox"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn tenant_suffixes_differ() {
        let a = tenant_suffix(Uuid::from_u128(1));
        let b = tenant_suffix(Uuid::from_u128(2));
        assert_eq!(a.len(), 8);
        assert_ne!(a, b);
        assert_eq!(a, tenant_suffix(Uuid::from_u128(1)));
    }
}

//! Card processors behind one trait. `sandbox` is built in and deterministic; `stripe` speaks
//! Stripe's PaymentIntents REST API and is enabled only when configured.
//!
//! A connector never decides what Cobro records: it reports what the processor said, and the
//! payments service turns that into attempt and intent states.

pub mod sandbox;
pub mod stripe;

use std::fmt;
use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};

/// Card data as the vault returns it, only ever held in memory for one processor call.
#[derive(Clone)]
pub struct CardData {
    pub pan: SecretString,
    pub exp_month: u32,
    pub exp_year: u32,
    pub holder_name: String,
}

impl CardData {
    pub fn last4(&self) -> &str {
        let pan = self.pan.expose_secret();
        pan.get(pan.len().saturating_sub(4)..).unwrap_or("")
    }
}

impl fmt::Debug for CardData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardData")
            .field("pan", &format_args!("…{}", self.last4()))
            .field("exp_month", &self.exp_month)
            .field("exp_year", &self.exp_year)
            .finish_non_exhaustive()
    }
}

/// One charge. `attempt_id` is Cobro's id of the attempt and doubles as the processor's
/// idempotency key, so a repeated call after a crash never charges twice, and lets
/// [`Connector::sync`] find a charge whose answer Cobro never recorded.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub attempt_id: uuid::Uuid,
    pub tenant_id: uuid::Uuid,
    pub amount: Decimal,
    /// ISO 4217, upper case.
    pub currency: String,
    pub card: CardData,
    /// Where the payer returns after a 3-D Secure challenge.
    pub return_url: String,
    pub description: String,
}

/// Why a processor declined. Soft declines may succeed on a later retry; hard ones will not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineCode {
    InsufficientFunds,
    DoNotHonor,
    ExpiredCard,
    IncorrectCvc,
    Fraudulent,
    AuthenticationFailed,
    ProcessingError,
    Other,
}

impl DeclineCode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeclineCode::InsufficientFunds => "insufficient_funds",
            DeclineCode::DoNotHonor => "do_not_honor",
            DeclineCode::ExpiredCard => "expired_card",
            DeclineCode::IncorrectCvc => "incorrect_cvc",
            DeclineCode::Fraudulent => "fraudulent",
            DeclineCode::AuthenticationFailed => "authentication_failed",
            DeclineCode::ProcessingError => "processing_error",
            DeclineCode::Other => "card_declined",
        }
    }

    pub fn parse(code: &str) -> DeclineCode {
        match code {
            "insufficient_funds" => DeclineCode::InsufficientFunds,
            "do_not_honor" | "generic_decline" => DeclineCode::DoNotHonor,
            "expired_card" => DeclineCode::ExpiredCard,
            "incorrect_cvc" => DeclineCode::IncorrectCvc,
            "fraudulent" | "stolen_card" | "lost_card" => DeclineCode::Fraudulent,
            "authentication_failed" | "authentication_required" => DeclineCode::AuthenticationFailed,
            "processing_error" => DeclineCode::ProcessingError,
            _ => DeclineCode::Other,
        }
    }

    /// A soft decline may be retried later (autopay does, after 1, 3 and 7 days).
    pub fn is_soft(self) -> bool {
        matches!(self, DeclineCode::InsufficientFunds | DeclineCode::ProcessingError)
    }
}

/// What the processor says about a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Captured. `fee` is the processor's fee in the charge's currency.
    Succeeded {
        processor_ref: String,
        fee: Decimal,
    },
    /// The issuer wants the payer to authenticate (3-D Secure) at `redirect_url`.
    RequiresAction {
        processor_ref: String,
        redirect_url: String,
    },
    Declined {
        processor_ref: Option<String>,
        code: DeclineCode,
        message: String,
    },
}

/// What [`Connector::sync`] finds for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncedStatus {
    /// The processor never saw the attempt: it may be retried or failed safely.
    NotFound,
    /// Still open on the processor's side (e.g. waiting for 3-D Secure).
    Pending {
        processor_ref: String,
    },
    Settled(ChargeOutcome),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOutcome {
    pub processor_ref: String,
}

/// Something the processor tells Cobro by webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A charge reached a final state (typically after 3-D Secure).
    Charge { attempt_id: Option<uuid::Uuid>, processor_ref: String, outcome: ChargeOutcome },
    /// Anything else the processor sends; acknowledged and ignored.
    Ignored { kind: String },
}

/// A processor payout: what it pays out for one day, after fees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementLine {
    pub processor_ref: String,
    pub amount: Decimal,
    pub fee: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub day: NaiveDate,
    pub currency: String,
    pub gross: Decimal,
    pub fees: Decimal,
    /// gross - fees - refunds
    pub net: Decimal,
    pub refunds: Decimal,
    pub payout_ref: String,
    pub lines: Vec<SettlementLine>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// No answer or a server error: the outcome is unknown, sync before deciding.
    #[error("the processor did not answer: {0}")]
    Unavailable(String),
    /// The processor refused the request itself (bad parameters, bad credentials).
    #[error("the processor refused the request: {0}")]
    Rejected(String),
    /// A webhook whose signature does not verify, or that is too old.
    #[error("webhook signature does not verify")]
    BadSignature,
    #[error("the webhook body is malformed: {0}")]
    MalformedWebhook(String),
}

/// A card processor. Every call may be repeated with the same attempt id or idempotency key
/// without doing the thing twice.
pub trait Connector: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Authorize and capture `req.amount`.
    fn charge(&self, req: &ChargeRequest) -> impl Future<Output = Result<ChargeOutcome, ConnectorError>> + Send;

    /// Cancel an open charge (e.g. one waiting for 3-D Secure).
    fn void(&self, processor_ref: &str) -> impl Future<Output = Result<(), ConnectorError>> + Send;

    /// Refund part or all of a captured charge. `idempotency_key` is Cobro's refund id.
    fn refund(
        &self,
        processor_ref: &str,
        amount: Decimal,
        currency: &str,
        idempotency_key: uuid::Uuid,
    ) -> impl Future<Output = Result<RefundOutcome, ConnectorError>> + Send;

    /// What the processor knows of an attempt, looked up by Cobro's attempt id (and the
    /// processor's reference when Cobro recorded one).
    fn sync(
        &self,
        attempt_id: uuid::Uuid,
        processor_ref: Option<&str>,
    ) -> impl Future<Output = Result<SyncedStatus, ConnectorError>> + Send;

    /// Verify a webhook's signature header against the raw body and parse it.
    fn parse_webhook(&self, signature: &str, body: &[u8], now: DateTime<Utc>) -> Result<WebhookEvent, ConnectorError>;
}

/// The processor a deployment uses: the sandbox, or Stripe when configured.
#[derive(Clone)]
pub enum Processor {
    Sandbox(std::sync::Arc<sandbox::Sandbox>),
    Stripe(std::sync::Arc<stripe::Stripe>),
}

impl Processor {
    pub fn name(&self) -> &'static str {
        match self {
            Processor::Sandbox(c) => c.name(),
            Processor::Stripe(c) => c.name(),
        }
    }

    pub fn sandbox(&self) -> Option<&sandbox::Sandbox> {
        match self {
            Processor::Sandbox(c) => Some(c),
            Processor::Stripe(_) => None,
        }
    }

    pub async fn charge(&self, req: &ChargeRequest) -> Result<ChargeOutcome, ConnectorError> {
        match self {
            Processor::Sandbox(c) => c.charge(req).await,
            Processor::Stripe(c) => c.charge(req).await,
        }
    }

    pub async fn void(&self, processor_ref: &str) -> Result<(), ConnectorError> {
        match self {
            Processor::Sandbox(c) => c.void(processor_ref).await,
            Processor::Stripe(c) => c.void(processor_ref).await,
        }
    }

    pub async fn refund(
        &self,
        processor_ref: &str,
        amount: Decimal,
        currency: &str,
        key: uuid::Uuid,
    ) -> Result<RefundOutcome, ConnectorError> {
        match self {
            Processor::Sandbox(c) => c.refund(processor_ref, amount, currency, key).await,
            Processor::Stripe(c) => c.refund(processor_ref, amount, currency, key).await,
        }
    }

    pub async fn sync(
        &self,
        attempt_id: uuid::Uuid,
        processor_ref: Option<&str>,
    ) -> Result<SyncedStatus, ConnectorError> {
        match self {
            Processor::Sandbox(c) => c.sync(attempt_id, processor_ref).await,
            Processor::Stripe(c) => c.sync(attempt_id, processor_ref).await,
        }
    }

    pub fn parse_webhook(
        &self,
        signature: &str,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, ConnectorError> {
        match self {
            Processor::Sandbox(c) => c.parse_webhook(signature, body, now),
            Processor::Stripe(c) => c.parse_webhook(signature, body, now),
        }
    }
}

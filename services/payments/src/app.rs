//! Payment intents: create, confirm through the vault and a processor, 3-D Secure, cancel,
//! refunds, webhooks, bank transfers, and the recovery of attempts a crash left open.
//!
//! Crash safety rests on one order: the attempt row is committed before the processor is
//! called, the processor is called with the attempt id as its idempotency key, and whatever
//! the processor said is applied by one function ([`Payments::settle_attempt`]) that is a no-op
//! the second time. The recovery task, webhooks and the payer's return all end there.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use cobro_kit::auth::{Principal, PrincipalKind};
use cobro_kit::error::{InvalidField, text_field};
use cobro_kit::events::{NewEvent, enqueue};
use cobro_kit::money::{Currency, Money};
use cobro_proto::common::v1 as common;
use cobro_proto::events::v1 as ev;
use cobro_proto::payments::v1::NewCard;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::clients::VaultClient;
use crate::connector::{ChargeOutcome, ChargeRequest, ConnectorError, Processor, SyncedStatus, WebhookEvent};
use crate::domain::autopay::{self, Decision};
use crate::domain::reference::CreditorReference;
use crate::domain::state::{IntentEvent, IntentStatus, next};
use crate::error::{PaymentsError, Result};
use crate::store::{self, IntentRow, NewIntent};

pub const TOPIC: &str = "cobro.payments.v1";

/// What an intent is created for.
#[derive(Debug, Clone, Default)]
pub struct IntentIn {
    pub customer_id: String,
    pub amount: Option<common::Money>,
    pub invoice_ids: Vec<String>,
    pub installment_id: String,
    pub description: String,
}

/// How the payer pays.
#[derive(Debug, Clone)]
pub enum MethodIn {
    SavedMethod(String),
    CardToken(String),
    NewCard { card: NewCard, save: bool },
    BankTransfer,
    Mandate(String),
}

/// Money reconciliation matched to a customer's invoices and gave invoicing itself.
#[derive(Debug, Clone)]
pub struct MatchedPayment {
    /// Reconciliation's payment (`rcm_…`).
    pub payment: Uuid,
    pub customer: Uuid,
    pub items: Vec<MatchedItem>,
}

/// What a match brought for one invoice or installment.
#[derive(Debug, Clone)]
pub struct MatchedItem {
    pub invoice: Option<Uuid>,
    pub installment: Option<Uuid>,
    pub amount: Decimal,
    pub currency: String,
}

/// Tunables of the payments service.
#[derive(Debug, Clone)]
pub struct PaymentsOptions {
    /// An attempt open this long without an answer is synced with the processor. Longer than
    /// any processor call, so recovery never races a call still in flight.
    pub recover_after: Duration,
    /// A 3-D Secure challenge not finished in this time is canceled.
    pub action_expires_after: Duration,
}

impl Default for PaymentsOptions {
    fn default() -> Self {
        Self { recover_after: Duration::from_secs(120), action_expires_after: Duration::from_secs(24 * 3600) }
    }
}

pub struct Payments {
    pub(crate) pool: PgPool,
    pub(crate) processor: Processor,
    pub(crate) vault: VaultClient,
    pub(crate) options: PaymentsOptions,
}

/// An intent with what the API shows of it.
#[derive(Debug, Clone)]
pub struct IntentView {
    pub intent: IntentRow,
    pub attempts: Vec<store::AttemptRow>,
    pub refunds: Vec<store::RefundRow>,
    pub card: Option<crate::clients::StoredCard>,
    pub transfer: Option<TransferInstructions>,
}

#[derive(Debug, Clone)]
pub struct TransferInstructions {
    pub account_holder: String,
    pub iban: String,
    pub bic: String,
    pub reference: CreditorReference,
    pub amount: Decimal,
    pub currency: String,
}

/// The wire form of an amount in a currency, with the currency's minor units.
pub fn money(amount: Decimal, code: &str) -> common::Money {
    Currency::from_code(code)
        .ok()
        .and_then(|c| Money::rounded(amount, c).ok())
        .map(|m| m.to_proto())
        .unwrap_or_else(|| common::Money { currency: code.to_owned(), amount: amount.to_string() })
}

pub(crate) fn id(field: &str, prefix: &str, value: &str) -> Result<Uuid> {
    Ok(cobro_kit::ids::parse(field, prefix, value)?)
}

pub(crate) fn optional_id(field: &str, prefix: &str, value: &str) -> Result<Option<Uuid>> {
    Ok(cobro_kit::ids::parse_optional(field, prefix, value)?)
}

/// Who may act for a customer: staff and services with `permission`, or the customer's own
/// portal contacts with `portal`. Another customer's things answer NotFound, as another
/// tenant's do.
pub(crate) fn authorize(p: &Principal, permission: &str, portal: &str, customer: Option<Uuid>) -> Result<()> {
    if p.kind == PrincipalKind::Customer {
        if !p.has(portal) {
            return Err(PaymentsError::PermissionDenied(format!("missing permission {portal}")));
        }
        return match (p.customer_id, customer) {
            (Some(own), Some(wanted)) if own == wanted => Ok(()),
            (Some(_), None) => Ok(()),
            _ => Err(PaymentsError::NotFound("payment")),
        };
    }
    if p.has(permission) {
        Ok(())
    } else {
        Err(PaymentsError::PermissionDenied(format!("missing permission {permission}")))
    }
}

fn status_of(row: &IntentRow) -> Result<IntentStatus> {
    IntentStatus::parse(&row.status).ok_or_else(|| PaymentsError::Internal(format!("unknown status {}", row.status)))
}

pub(crate) fn return_url(value: &str) -> Result<String> {
    let url = text_field("return_url", value, 2000, false)?;
    if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
        return Err(InvalidField::new("return_url", "must be an http:// or https:// URL").into());
    }
    Ok(url)
}

/// What is open on some invoices: their balance, and (for an installment that fell due) what is
/// left of the installment.
pub(crate) struct OpenBalance {
    invoices: Decimal,
    installment: Option<Decimal>,
    pub currency: Option<String>,
}

impl OpenBalance {
    /// What a payment may still take once `taken` (other payments not yet in the balance) is
    /// set aside: they come off the invoices, and an installment cannot exceed what is left.
    pub fn total(&self, taken: Decimal) -> Decimal {
        let invoices = (self.invoices - taken).max(Decimal::ZERO);
        match self.installment {
            Some(installment) => installment.min(invoices),
            None => invoices,
        }
    }
}

pub(crate) async fn open_balance_on(
    conn: &mut PgConnection,
    tenant: Uuid,
    customer: Uuid,
    invoices: &[Uuid],
    installment: Option<Uuid>,
) -> Result<OpenBalance> {
    if invoices.is_empty() {
        return Ok(OpenBalance { invoices: Decimal::ZERO, installment: None, currency: None });
    }
    let found = store::receivables(&mut *conn, tenant, invoices).await?;
    let mut total = Decimal::ZERO;
    let mut currency: Option<String> = None;
    for (i, invoice) in invoices.iter().enumerate() {
        let field = format!("invoice_ids[{i}]");
        let Some(r) = found.iter().find(|r| r.invoice_id == *invoice) else {
            return Err(PaymentsError::NotFound("invoice"));
        };
        if r.customer_id != customer {
            return Err(InvalidField::new(field, "belongs to another customer").into());
        }
        if matches!(r.status.as_str(), "void" | "voided" | "draft" | "uncollectible") {
            return Err(PaymentsError::amount(field, format!("cannot be paid: the invoice is {}", r.status)));
        }
        match &currency {
            Some(c) if *c != r.currency => {
                return Err(InvalidField::new(field, "is in another currency than the other invoices").into());
            }
            _ => currency = Some(r.currency.clone()),
        }
        total += r.balance.max(Decimal::ZERO);
    }
    let mut left_of_installment = None;
    if let Some(installment) = installment {
        match store::installment_balance(&mut *conn, tenant, installment).await? {
            Some((invoice, balance)) if invoices.first() == Some(&invoice) => left_of_installment = Some(balance),
            Some(_) => return Err(InvalidField::new("installment_id", "belongs to another invoice").into()),
            // Not due yet: invoicing has not told us its balance; the invoice's bounds it.
            None => {}
        }
    }
    Ok(OpenBalance { invoices: total, installment: left_of_installment, currency })
}

impl Payments {
    pub fn new(pool: PgPool, processor: Processor, vault: VaultClient, options: PaymentsOptions) -> Self {
        Self { pool, processor, vault, options }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    // --- creating ---

    /// Check an intent's amount against what is open and build its row.
    pub(crate) async fn prepare_intent(&self, tenant: Uuid, input: &IntentIn) -> Result<NewIntent> {
        let customer_id = id("customer_id", "cus", &input.customer_id)?;
        let description = text_field("description", &input.description, 500, false)?;
        if input.invoice_ids.len() > 50 {
            return Err(InvalidField::new("invoice_ids", "must have at most 50 entries").into());
        }
        let mut invoice_ids = Vec::with_capacity(input.invoice_ids.len());
        for (i, raw) in input.invoice_ids.iter().enumerate() {
            let invoice = id(&format!("invoice_ids[{i}]"), "inv", raw)?;
            if invoice_ids.contains(&invoice) {
                return Err(InvalidField::new(format!("invoice_ids[{i}]"), "is listed twice").into());
            }
            invoice_ids.push(invoice);
        }
        let installment_id = optional_id("installment_id", "ins", &input.installment_id)?;
        if installment_id.is_some() && invoice_ids.len() != 1 {
            return Err(InvalidField::new("installment_id", "needs exactly one invoice in invoice_ids").into());
        }
        let wanted = match &input.amount {
            Some(m) if !(m.amount.is_empty() && m.currency.is_empty()) => Some(Money::from_proto(m, "amount")?),
            _ => None,
        };
        if let Some(m) = &wanted
            && !m.is_positive()
        {
            return Err(InvalidField::new("amount.amount", "must be greater than zero").into());
        }

        if let Some(installment) = installment_id
            && wanted.is_none()
            && store::installment_balance(&self.pool, tenant, installment).await?.is_none()
        {
            // Invoicing tells payments an installment's amount when it falls due; before that
            // only the payer knows how much of it they mean to pay early.
            return Err(InvalidField::new("amount", "is required for an installment that is not due yet").into());
        }
        let (open, open_currency) = self.open_balance(tenant, customer_id, &invoice_ids, installment_id).await?;
        let (amount, currency) = match (wanted, open_currency) {
            (None, None) => return Err(InvalidField::new("amount", "is required when no invoice is named").into()),
            (None, Some(code)) => (open, code),
            (Some(m), None) => (m.amount(), m.currency().code().to_owned()),
            (Some(m), Some(code)) => {
                if m.currency().code() != code {
                    return Err(InvalidField::new(
                        "amount.currency",
                        format!("must be {code}, the currency of the invoices"),
                    )
                    .into());
                }
                if m.amount() > open && !store::settings(&self.pool, tenant).await?.allow_overpayment {
                    return Err(PaymentsError::amount(
                        "amount.amount",
                        format!("exceeds the open balance of {} {code}", money(open, &code).amount),
                    ));
                }
                (m.amount(), code)
            }
        };
        if amount <= Decimal::ZERO {
            return Err(PaymentsError::amount("invoice_ids", "nothing is open on these invoices"));
        }
        Ok(NewIntent {
            id: Uuid::now_v7(),
            customer_id,
            amount,
            currency,
            invoice_ids,
            installment_id,
            link_id: None,
            autopay_run_id: None,
            description,
        })
    }

    /// The open balance of the named invoices (or installment) and their currency; no invoices
    /// gives zero and no currency.
    pub(crate) async fn open_balance(
        &self,
        tenant: Uuid,
        customer: Uuid,
        invoices: &[Uuid],
        installment: Option<Uuid>,
    ) -> Result<(Decimal, Option<String>)> {
        let mut conn = self.pool.acquire().await?;
        let open = open_balance_on(&mut conn, tenant, customer, invoices, installment).await?;
        Ok((open.total(Decimal::ZERO), open.currency))
    }

    /// Create an intent with the given id; when a retry finds it made already, that one.
    pub async fn create_intent(&self, p: &Principal, intent_id: Uuid, input: IntentIn) -> Result<IntentRow> {
        let customer = optional_id("customer_id", "cus", &input.customer_id)?;
        authorize(p, "payments:write", "portal:pay", customer)?;
        if let Some(made) = store::intent(&self.pool, p.tenant_id, intent_id).await? {
            return Ok(made);
        }
        let new = NewIntent { id: intent_id, ..self.prepare_intent(p.tenant_id, &input).await? };
        let mut conn = self.pool.acquire().await?;
        Ok(store::insert_intent(&mut conn, p.tenant_id, &new).await?)
    }

    pub async fn intent(&self, p: &Principal, raw_id: &str) -> Result<IntentView> {
        let intent_id = id("id", "pay", raw_id)?;
        let row = store::intent(&self.pool, p.tenant_id, intent_id).await?.ok_or(PaymentsError::NotFound("payment"))?;
        authorize(p, "payments:read", "portal:read", Some(row.customer_id))?;
        self.view(row).await
    }

    pub async fn list(
        &self,
        p: &Principal,
        customer: &str,
        status: &str,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<IntentRow>> {
        let mut customer = optional_id("customer_id", "cus", customer)?;
        if p.kind == PrincipalKind::Customer {
            customer = customer.or(p.customer_id);
        }
        authorize(p, "payments:read", "portal:read", customer)?;
        if !status.is_empty() && IntentStatus::parse(status).is_none() {
            return Err(InvalidField::new("status", "is not a payment status").into());
        }
        let status = (!status.is_empty()).then_some(status);
        Ok(store::intents(&self.pool, p.tenant_id, customer, status, after, limit).await?)
    }

    pub(crate) async fn view(&self, intent: IntentRow) -> Result<IntentView> {
        let attempts = store::attempts(&self.pool, intent.tenant_id, intent.id).await?;
        let refunds = store::refunds(&self.pool, intent.tenant_id, intent.id).await?;
        let transfer = match &intent.transfer_reference {
            Some(reference) => {
                let settings = store::settings(&self.pool, intent.tenant_id).await?;
                CreditorReference::parse(reference).ok().map(|reference| TransferInstructions {
                    account_holder: settings.account_holder,
                    iban: settings.iban,
                    bic: settings.bic,
                    reference,
                    amount: intent.amount,
                    currency: intent.currency.clone(),
                })
            }
            None => None,
        };
        let card = match &intent.payment_method_id {
            Some(method) => {
                store::method(&self.pool, intent.tenant_id, *method).await?.map(|m| crate::clients::StoredCard {
                    token: String::new(),
                    brand: m.brand,
                    last4: m.last4,
                    exp_month: u32::try_from(m.exp_month.unwrap_or(0)).unwrap_or(0),
                    exp_year: u32::try_from(m.exp_year.unwrap_or(0)).unwrap_or(0),
                })
            }
            None => None,
        };
        Ok(IntentView { intent, attempts, refunds, card, transfer })
    }

    // --- confirming ---

    /// Confirm with a method. `resumed`: an earlier run of this very request got somewhere and
    /// never answered; if the payment moved on since, that was this request's doing, and its
    /// state is the answer.
    pub async fn confirm(
        &self,
        p: &Principal,
        raw_id: &str,
        method: MethodIn,
        return_to: &str,
        resumed: bool,
    ) -> Result<IntentView> {
        let intent_id = id("id", "pay", raw_id)?;
        let tenant = p.tenant_id;
        let row = store::intent(&self.pool, tenant, intent_id).await?.ok_or(PaymentsError::NotFound("payment"))?;
        authorize(p, "payments:write", "portal:pay", Some(row.customer_id))?;
        if resumed && next(status_of(&row)?, IntentEvent::AttachMethod).is_err() {
            return self.view(row).await;
        }
        let return_to = return_url(return_to)?;
        let row = self.confirm_row(tenant, row, method, &return_to).await?;
        self.view(row).await
    }

    /// Attach the method and confirm; the caller has authorized.
    pub(crate) async fn confirm_row(
        &self,
        tenant: Uuid,
        row: IntentRow,
        method: MethodIn,
        return_to: &str,
    ) -> Result<IntentRow> {
        let status = status_of(&row)?;
        next(next(status, IntentEvent::AttachMethod)?, IntentEvent::Confirm)?;
        match method {
            MethodIn::BankTransfer => self.start_bank_payment(tenant, &row, status, None).await,
            MethodIn::Mandate(raw) => {
                let mandate_id = id("mandate_id", "man", &raw)?;
                let mandate = store::mandate(&self.pool, tenant, mandate_id)
                    .await?
                    .filter(|m| m.customer_id == row.customer_id && m.kind == "direct_debit")
                    .ok_or(PaymentsError::NotFound("mandate"))?;
                if mandate.revoked_at.is_some() {
                    return Err(PaymentsError::Precondition("the mandate was revoked".to_owned()));
                }
                self.start_bank_payment(tenant, &row, status, Some(mandate.id)).await
            }
            card => {
                let (token, method_id) = self.card_for(tenant, row.customer_id, card).await?;
                self.charge_card(tenant, &row, status, &token, method_id, return_to).await
            }
        }
    }

    /// In the transaction that starts a payment: lock what it collects and check that, with
    /// every other payment on it that is on its way or not yet applied, it still fits the open
    /// balance (another payment may have landed since the intent was made). Reads go through the
    /// transaction's own connection: waiting for another connection while holding the lock
    /// could starve the pool.
    async fn hold_balance(&self, tx: &mut PgConnection, tenant: Uuid, row: &IntentRow) -> Result<()> {
        if row.invoice_ids.is_empty() {
            // A free-amount link is paid once, whoever pays it.
            if let Some(link) = row.link_id {
                store::lock_targets(tx, tenant, &[link]).await?;
                if store::link_taken(tx, tenant, link, row.id).await? {
                    return Err(PaymentsError::LinkUnusable("is already paid"));
                }
            }
            return Ok(());
        }
        store::lock_targets(tx, tenant, &row.invoice_ids).await?;
        if store::settings(&mut *tx, tenant).await?.allow_overpayment {
            return Ok(());
        }
        let open = open_balance_on(tx, tenant, row.customer_id, &row.invoice_ids, row.installment_id).await?;
        let unapplied = store::unapplied_payments(tx, tenant, &row.invoice_ids, row.id).await?;
        let open = open.total(unapplied);
        if row.amount > open {
            let message = if open.is_zero() {
                "the invoices are paid or a payment for them is on its way".to_owned()
            } else {
                format!(
                    "exceeds the open balance of {} {} (counting payments on their way)",
                    money(open, &row.currency).amount,
                    row.currency
                )
            };
            return Err(PaymentsError::amount("amount.amount", message));
        }
        Ok(())
    }

    /// The vault token to charge, and the saved method it came from.
    async fn card_for(&self, tenant: Uuid, customer: Uuid, method: MethodIn) -> Result<(String, Option<Uuid>)> {
        match method {
            MethodIn::SavedMethod(raw) => {
                let method_id = id("payment_method_id", "pm", &raw)?;
                let saved = store::method(&self.pool, tenant, method_id)
                    .await?
                    .filter(|m| m.customer_id == customer && m.kind == "card")
                    .ok_or(PaymentsError::NotFound("payment method"))?;
                let token = saved.vault_token.ok_or(PaymentsError::NotFound("payment method"))?;
                Ok((token, Some(method_id)))
            }
            MethodIn::CardToken(token) => {
                // Not looked up here: the detokenize that the charge needs anyway answers
                // NotFound (naming card_token) for an unknown or another tenant's token, before
                // anything is written.
                Ok((text_field("card_token", &token, 100, true)?, None))
            }
            MethodIn::NewCard { card, save } => {
                let stored = self.vault.tokenize(tenant, &card, "card").await?;
                let method = if save {
                    let m = store::insert_card_method(
                        &self.pool,
                        tenant,
                        customer,
                        &stored.token,
                        &stored.brand,
                        &stored.last4,
                        i32::try_from(stored.exp_month).unwrap_or(0),
                        i32::try_from(stored.exp_year).unwrap_or(0),
                        false,
                    )
                    .await?;
                    Some(m.id)
                } else {
                    None
                };
                Ok((stored.token, method))
            }
            MethodIn::BankTransfer | MethodIn::Mandate(_) => {
                Err(PaymentsError::Internal("not a card method".to_owned()))
            }
        }
    }

    async fn charge_card(
        &self,
        tenant: Uuid,
        row: &IntentRow,
        status: IntentStatus,
        token: &str,
        method_id: Option<Uuid>,
        return_to: &str,
    ) -> Result<IntentRow> {
        let card = self.vault.detokenize(tenant, token).await?;
        let attempt_id = Uuid::now_v7();
        let connector = self.processor.name();
        // The attempt is on record before the processor hears of it.
        let mut tx = self.pool.begin().await?;
        self.hold_balance(&mut tx, tenant, row).await?;
        let moved = store::start_processing(
            &mut tx,
            tenant,
            row.id,
            status.as_str(),
            "card",
            Some(token),
            method_id,
            None,
            None,
            return_to,
            Some(connector),
        )
        .await?;
        if !moved {
            drop(tx);
            let now = store::intent(&self.pool, tenant, row.id).await?.ok_or(PaymentsError::NotFound("payment"))?;
            return Err(next(status_of(&now)?, IntentEvent::Confirm).err().map_or_else(
                || PaymentsError::Precondition("the payment changed meanwhile; retry".to_owned()),
                PaymentsError::State,
            ));
        }
        store::insert_attempt(&mut tx, tenant, attempt_id, row.id, connector, row.amount, &row.currency).await?;
        tx.commit().await?;

        let request = ChargeRequest {
            attempt_id,
            tenant_id: tenant,
            amount: row.amount,
            currency: row.currency.clone(),
            card,
            return_url: return_to.to_owned(),
            description: row.description.clone(),
        };
        match self.processor.charge(&request).await {
            Ok(outcome) => self.settle_attempt(tenant, attempt_id, &outcome).await,
            Err(ConnectorError::Unavailable(reason)) => {
                // Unknown outcome: the attempt stays processing and recovery asks the processor.
                tracing::warn!(%reason, attempt = %attempt_id, "processor did not answer; recovery will sync");
                Ok(store::intent(&self.pool, tenant, row.id).await?.ok_or(PaymentsError::NotFound("payment"))?)
            }
            Err(other) => {
                let outcome = ChargeOutcome::Declined {
                    processor_ref: None,
                    code: crate::connector::DeclineCode::ProcessingError,
                    message: other.to_string(),
                };
                self.settle_attempt(tenant, attempt_id, &outcome).await
            }
        }
    }

    /// Apply what the processor said about an attempt: once, whoever reports it (the call's
    /// answer, a webhook, the payer's return, recovery).
    pub async fn settle_attempt(&self, tenant: Uuid, attempt_id: Uuid, outcome: &ChargeOutcome) -> Result<IntentRow> {
        let mut tx = self.pool.begin().await?;
        // Intent before attempt, the order cancel takes them in, so the two never deadlock.
        let intent_id =
            store::attempt_intent(&mut tx, tenant, attempt_id).await?.ok_or(PaymentsError::NotFound("attempt"))?;
        let row =
            store::intent_for_update(&mut tx, tenant, intent_id).await?.ok_or(PaymentsError::NotFound("payment"))?;
        let attempt =
            store::attempt_for_update(&mut tx, tenant, attempt_id).await?.ok_or(PaymentsError::NotFound("attempt"))?;
        let open = matches!(attempt.status.as_str(), "processing" | "requires_action");
        let same_state =
            matches!((attempt.status.as_str(), outcome), ("requires_action", ChargeOutcome::RequiresAction { .. }));
        if !open || same_state {
            if attempt.status != "succeeded" && matches!(outcome, ChargeOutcome::Succeeded { .. }) {
                // Money moved for an attempt Cobro closed (e.g. canceled): staff must look.
                tracing::error!(attempt = %attempt_id, "processor reports success for an attempt already closed");
            }
            tx.rollback().await?;
            return Ok(row);
        }
        let status = status_of(&row)?;
        let updated = match outcome {
            ChargeOutcome::Succeeded { processor_ref, fee } => {
                next(status, IntentEvent::Approved)?;
                store::finish_attempt(&mut tx, tenant, attempt_id, "succeeded", *fee, Some(processor_ref), None, None)
                    .await?;
                let updated = store::settle_intent(
                    &mut tx,
                    tenant,
                    row.id,
                    IntentStatus::Succeeded.as_str(),
                    row.amount,
                    *fee,
                    Some(processor_ref),
                    None,
                    None,
                )
                .await?;
                self.publish_succeeded(&mut tx, &updated, Some(processor_ref), None).await?;
                self.autopay_outcome(&mut tx, &updated, None).await?;
                updated
            }
            ChargeOutcome::RequiresAction { processor_ref, redirect_url } => {
                next(status, IntentEvent::ActionRequired)?;
                store::finish_attempt(
                    &mut tx,
                    tenant,
                    attempt_id,
                    "requires_action",
                    Decimal::ZERO,
                    Some(processor_ref),
                    None,
                    None,
                )
                .await?;
                let updated = store::settle_intent(
                    &mut tx,
                    tenant,
                    row.id,
                    IntentStatus::RequiresAction.as_str(),
                    Decimal::ZERO,
                    Decimal::ZERO,
                    Some(processor_ref),
                    Some(redirect_url),
                    None,
                )
                .await?;
                let event = ev::PaymentRequiresAction {
                    payment_id: cobro_kit::ids::format("pay", updated.id),
                    customer_id: cobro_kit::ids::format("cus", updated.customer_id),
                    next_action_url: redirect_url.clone(),
                };
                self.publish(&mut tx, &updated, "payment.requires_action", &event).await?;
                updated
            }
            ChargeOutcome::Declined { processor_ref, code, message } => {
                next(status, IntentEvent::Declined)?;
                store::finish_attempt(
                    &mut tx,
                    tenant,
                    attempt_id,
                    "failed",
                    Decimal::ZERO,
                    processor_ref.as_deref(),
                    Some(code.as_str()),
                    Some(message),
                )
                .await?;
                let updated = store::settle_intent(
                    &mut tx,
                    tenant,
                    row.id,
                    IntentStatus::Failed.as_str(),
                    Decimal::ZERO,
                    Decimal::ZERO,
                    processor_ref.as_deref(),
                    None,
                    Some((code.as_str(), message)),
                )
                .await?;
                let event = ev::PaymentFailed {
                    payment_id: cobro_kit::ids::format("pay", updated.id),
                    customer_id: cobro_kit::ids::format("cus", updated.customer_id),
                    amount: Some(money(updated.amount, &updated.currency)),
                    method: updated.method.clone(),
                    decline_code: code.as_str().to_owned(),
                    message: message.clone(),
                    autopay: updated.autopay_run_id.is_some(),
                };
                self.publish(&mut tx, &updated, "payment.failed", &event).await?;
                self.autopay_outcome(&mut tx, &updated, Some(*code)).await?;
                updated
            }
        };
        tx.commit().await?;
        Ok(updated)
    }

    pub(crate) async fn publish(
        &self,
        conn: &mut PgConnection,
        intent: &IntentRow,
        event_type: &str,
        payload: &impl prost::Message,
    ) -> Result<()> {
        let event = NewEvent::new(event_type, intent.tenant_id, cobro_kit::ids::format("pay", intent.id), payload);
        enqueue(conn, TOPIC, event).await?;
        Ok(())
    }

    /// payment.succeeded for everyone, and payment.received: what invoicing applies.
    async fn publish_succeeded(
        &self,
        conn: &mut PgConnection,
        intent: &IntentRow,
        processor_ref: Option<&str>,
        received_on: Option<NaiveDate>,
    ) -> Result<()> {
        let succeeded = succeeded_event(intent, processor_ref);
        let received = ev::PaymentReceived {
            payment_id: succeeded.payment_id.clone(),
            customer_id: succeeded.customer_id.clone(),
            amount: succeeded.amount.clone(),
            method: if intent.method == "card" { "card".to_owned() } else { "transfer".to_owned() },
            received_on: received_on.unwrap_or_else(cobro_kit::clock::today).to_string(),
            invoice_ids: succeeded.invoice_ids.clone(),
            installment_id: succeeded.installment_id.clone(),
        };
        self.publish(conn, intent, "payment.succeeded", &succeeded).await?;
        self.publish(conn, intent, "payment.received", &received).await
    }

    // --- 3-D Secure, cancel ---

    /// The payer came back from the challenge: ask the processor how it ended.
    pub async fn complete_action(&self, p: &Principal, raw_id: &str) -> Result<IntentView> {
        let intent_id = id("id", "pay", raw_id)?;
        let row = store::intent(&self.pool, p.tenant_id, intent_id).await?.ok_or(PaymentsError::NotFound("payment"))?;
        authorize(p, "payments:write", "portal:pay", Some(row.customer_id))?;
        let status = status_of(&row)?;
        if status != IntentStatus::RequiresAction {
            if status.is_final() {
                return self.view(row).await;
            }
            return Err(PaymentsError::Precondition(format!(
                "the payment is {}, not requires_action",
                status.as_str()
            )));
        }
        let row = match store::open_attempt(&self.pool, p.tenant_id, row.id).await? {
            Some(attempt) => self.sync_attempt(&attempt).await?.unwrap_or(row),
            None => row,
        };
        self.view(row).await
    }

    /// Ask the processor about one attempt and apply the answer. None when nothing is known yet.
    pub(crate) async fn sync_attempt(&self, attempt: &store::AttemptRow) -> Result<Option<IntentRow>> {
        let synced = self
            .processor
            .sync(attempt.id, attempt.processor_ref.as_deref())
            .await
            .map_err(|e| PaymentsError::Unavailable(format!("processor: {e}")))?;
        match synced {
            SyncedStatus::Settled(outcome) => {
                Ok(Some(self.settle_attempt(attempt.tenant_id, attempt.id, &outcome).await?))
            }
            SyncedStatus::Pending { .. } => Ok(None),
            SyncedStatus::NotFound => {
                // The processor never saw it: nothing was charged, so failing it is safe.
                let outcome = ChargeOutcome::Declined {
                    processor_ref: None,
                    code: crate::connector::DeclineCode::ProcessingError,
                    message: "the processor never received the charge".to_owned(),
                };
                Ok(Some(self.settle_attempt(attempt.tenant_id, attempt.id, &outcome).await?))
            }
        }
    }

    pub async fn cancel(&self, p: &Principal, raw_id: &str, resumed: bool) -> Result<IntentView> {
        let intent_id = id("id", "pay", raw_id)?;
        let tenant = p.tenant_id;
        let row = store::intent(&self.pool, tenant, intent_id).await?.ok_or(PaymentsError::NotFound("payment"))?;
        authorize(p, "payments:write", "portal:pay", Some(row.customer_id))?;
        let status = status_of(&row)?;
        if resumed && status == IntentStatus::Canceled {
            return self.view(row).await;
        }
        next(status, IntentEvent::Cancel)?;
        if status == IntentStatus::RequiresAction
            && let Some(processor_ref) = &row.processor_ref
        {
            self.processor.void(processor_ref).await.map_err(|e| match e {
                ConnectorError::Unavailable(_) => PaymentsError::Unavailable("the processor".to_owned()),
                other => PaymentsError::Processor(other.to_string()),
            })?;
        }
        let mut tx = self.pool.begin().await?;
        let locked =
            store::intent_for_update(&mut tx, tenant, intent_id).await?.ok_or(PaymentsError::NotFound("payment"))?;
        next(status_of(&locked)?, IntentEvent::Cancel)?;
        store::set_status(&mut tx, tenant, intent_id, IntentStatus::Canceled.as_str()).await?;
        if let Some(attempt) = store::open_attempt(&self.pool, tenant, intent_id).await? {
            store::finish_attempt(&mut tx, tenant, attempt.id, "canceled", Decimal::ZERO, None, None, None).await?;
        }
        // Someone stopped this autopay charge on purpose: the run ends rather than retrying.
        if let Some(run_id) = locked.autopay_run_id
            && let Some(run) = store::autopay_run(&mut tx, tenant, run_id).await?
        {
            store::update_autopay_run(&mut tx, tenant, run_id, "stopped", run.attempts, None, Some(intent_id), None)
                .await?;
        }
        tx.commit().await?;
        let row = store::intent(&self.pool, tenant, intent_id).await?.ok_or(PaymentsError::NotFound("payment"))?;
        self.view(row).await
    }

    // --- refunds ---

    /// Refund with the given id; a retry that finds the refund made continues it.
    pub async fn refund(
        &self,
        p: &Principal,
        refund_id: Uuid,
        raw_id: &str,
        amount: Option<&common::Money>,
        reason: &str,
    ) -> Result<store::RefundRow> {
        if p.kind == PrincipalKind::Customer || !p.has("payments:refund") {
            return Err(PaymentsError::PermissionDenied("missing permission payments:refund".to_owned()));
        }
        let tenant = p.tenant_id;
        let intent_id = id("payment_id", "pay", raw_id)?;
        if let Some(made) = store::refund(&self.pool, tenant, refund_id).await? {
            let intent =
                store::intent(&self.pool, tenant, made.intent_id).await?.ok_or(PaymentsError::NotFound("payment"))?;
            return self.continue_refund(&intent, made).await;
        }
        let reason = text_field("reason", reason, 500, false)?;
        let wanted = match amount {
            Some(m) if !(m.amount.is_empty() && m.currency.is_empty()) => Some(Money::from_proto(m, "amount")?),
            _ => None,
        };
        // Reserve the amount under the intent's lock, so concurrent refunds never exceed it.
        let mut tx = self.pool.begin().await?;
        let row =
            store::intent_for_update(&mut tx, tenant, intent_id).await?.ok_or(PaymentsError::NotFound("payment"))?;
        if status_of(&row)? != IntentStatus::Succeeded {
            return Err(PaymentsError::Precondition(format!(
                "only a succeeded payment can be refunded; it is {}",
                row.status
            )));
        }
        let left = row.amount_received - row.amount_refunded;
        let amount = match wanted {
            None => left,
            Some(m) => {
                if m.currency().code() != row.currency {
                    return Err(InvalidField::new(
                        "amount.currency",
                        format!("must be {}, the payment's currency", row.currency),
                    )
                    .into());
                }
                if !m.is_positive() {
                    return Err(InvalidField::new("amount.amount", "must be greater than zero").into());
                }
                m.amount()
            }
        };
        if amount <= Decimal::ZERO || amount > left {
            return Err(PaymentsError::amount(
                "amount.amount",
                format!("exceeds what is left to refund: {} {}", money(left, &row.currency).amount, row.currency),
            ));
        }
        store::add_refunded(&mut tx, tenant, intent_id, amount).await?;
        let refund =
            store::insert_refund(&mut tx, tenant, refund_id, intent_id, amount, &row.currency, &reason).await?;
        tx.commit().await?;
        self.continue_refund(&row, refund).await
    }

    /// Take a recorded refund as far as it goes now: to the processor (which knows the refund
    /// id, so asking twice refunds once) or, for money that came by transfer, straight to done.
    async fn continue_refund(&self, intent: &IntentRow, refund: store::RefundRow) -> Result<store::RefundRow> {
        if refund.status != "pending" {
            return Ok(refund);
        }
        if intent.method != "card" {
            // Money that came by transfer goes back by transfer, outside the processor.
            return self.finish_refund(intent, refund, Ok(String::new())).await;
        }
        let processor_ref = intent.processor_ref.clone().unwrap_or_default();
        let answer = self.processor.refund(&processor_ref, refund.amount, &refund.currency, refund.id).await;
        match answer {
            Err(ConnectorError::Unavailable(_)) => Ok(refund),
            Ok(done) => self.finish_refund(intent, refund, Ok(done.processor_ref)).await,
            Err(other) => self.finish_refund(intent, refund, Err(other.to_string())).await,
        }
    }

    async fn finish_refund(
        &self,
        intent: &IntentRow,
        refund: store::RefundRow,
        outcome: std::result::Result<String, String>,
    ) -> Result<store::RefundRow> {
        let mut tx = self.pool.begin().await?;
        let tenant = intent.tenant_id;
        let current: Option<String> =
            sqlx::query_scalar("SELECT status FROM refunds WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
                .bind(tenant)
                .bind(refund.id)
                .fetch_optional(&mut *tx)
                .await?;
        if current.as_deref() != Some("pending") {
            tx.rollback().await?;
            return Ok(refund);
        }
        let done = match outcome {
            Ok(processor_ref) => {
                let done = store::finish_refund(&mut tx, tenant, refund.id, "succeeded", Some(&processor_ref)).await?;
                let event = ev::RefundSucceeded {
                    refund_id: cobro_kit::ids::format("ref", refund.id),
                    payment_id: cobro_kit::ids::format("pay", intent.id),
                    customer_id: cobro_kit::ids::format("cus", intent.customer_id),
                    amount: Some(money(refund.amount, &refund.currency)),
                    invoice_ids: intent.invoice_ids.iter().map(|i| cobro_kit::ids::format("inv", *i)).collect(),
                };
                self.publish(&mut tx, intent, "refund.succeeded", &event).await?;
                done
            }
            Err(reason) => {
                tracing::warn!(%reason, refund = %refund.id, "the processor refused a refund");
                store::add_refunded(&mut tx, tenant, intent.id, -refund.amount).await?;
                let failed = store::finish_refund(&mut tx, tenant, refund.id, "failed", None).await?;
                tx.commit().await?;
                return Err(PaymentsError::Processor(format!(
                    "refund {} failed: {reason}",
                    cobro_kit::ids::format("ref", failed.id)
                )));
            }
        };
        tx.commit().await?;
        Ok(done)
    }

    // --- webhooks ---

    /// A processor's webhook: verify, find the attempt, settle it. Returns what happened.
    pub async fn handle_webhook(&self, connector: &str, signature: &str, body: &[u8]) -> Result<&'static str> {
        if connector != self.processor.name() {
            return Err(
                InvalidField::new("connector", format!("this deployment uses {}", self.processor.name())).into()
            );
        }
        let event = self.processor.parse_webhook(signature, body, Utc::now()).map_err(|e| match e {
            ConnectorError::BadSignature => {
                PaymentsError::PermissionDenied("the webhook signature does not verify".to_owned())
            }
            other => PaymentsError::Invalid(InvalidField::new("body", other.to_string())),
        })?;
        let WebhookEvent::Charge { attempt_id, processor_ref, outcome } = event else {
            return Ok("ignored");
        };
        let attempt = match attempt_id {
            Some(a) => store::attempt_anywhere(&self.pool, a).await?,
            None => None,
        };
        let attempt = match attempt {
            Some(a) => Some(a),
            None => store::attempt_by_processor_ref(&self.pool, connector, &processor_ref).await?,
        };
        let Some(attempt) = attempt else {
            return Ok("unknown_charge");
        };
        self.settle_attempt(attempt.tenant_id, attempt.id, &outcome).await?;
        Ok("applied")
    }

    // --- bank transfers and direct debits ---

    async fn start_bank_payment(
        &self,
        tenant: Uuid,
        row: &IntentRow,
        status: IntentStatus,
        mandate: Option<Uuid>,
    ) -> Result<IntentRow> {
        let reference = match (row.invoice_ids.as_slice(), mandate) {
            ([invoice], None) => self.ensure_reference(tenant, row.customer_id, Some(*invoice)).await?,
            _ => self.ensure_reference(tenant, row.customer_id, None).await?,
        };
        let method = if mandate.is_some() { "direct_debit" } else { "bank_transfer" };
        let mut tx = self.pool.begin().await?;
        self.hold_balance(&mut tx, tenant, row).await?;
        let moved = store::start_processing(
            &mut tx,
            tenant,
            row.id,
            status.as_str(),
            method,
            None,
            None,
            mandate,
            Some(reference.as_str()),
            "",
            None,
        )
        .await?;
        if !moved {
            return Err(PaymentsError::Precondition("the payment changed meanwhile; retry".to_owned()));
        }
        tx.commit().await?;
        store::intent(&self.pool, tenant, row.id).await?.ok_or(PaymentsError::NotFound("payment"))
    }

    /// Reconciliation matched money on the bank statement to a transfer or direct debit.
    pub async fn confirm_bank_transfer(
        &self,
        p: &Principal,
        reference: &str,
        payment_id: &str,
        amount: Option<&common::Money>,
        received_on: &str,
    ) -> Result<IntentView> {
        // Only reconciliation sees the bank statement; a person saying "it arrived" is not proof.
        if p.kind != PrincipalKind::Service || p.service.as_deref() != Some("reconciliation") {
            return Err(PaymentsError::PermissionDenied(
                "only the reconciliation service may confirm that a transfer arrived".to_owned(),
            ));
        }
        if !p.has("payments:write") {
            return Err(PaymentsError::PermissionDenied("missing permission payments:write".to_owned()));
        }
        let tenant = p.tenant_id;
        let amount = Money::from_proto(amount.unwrap_or(&common::Money::default()), "amount")?;
        if !amount.is_positive() {
            return Err(InvalidField::new("amount.amount", "must be greater than zero").into());
        }
        let received_on = if received_on.is_empty() {
            cobro_kit::clock::today()
        } else {
            NaiveDate::parse_from_str(received_on, "%Y-%m-%d")
                .map_err(|_| InvalidField::new("received_on", "must be a date like 2026-11-23"))?
        };
        let row = match (reference.trim().is_empty(), optional_id("payment_id", "pay", payment_id)?) {
            (_, Some(intent)) => store::intent(&self.pool, tenant, intent).await?,
            (false, None) => {
                let reference =
                    CreditorReference::parse(reference).map_err(|e| InvalidField::new("reference", e.to_string()))?;
                store::intent_by_reference(&self.pool, tenant, reference.as_str()).await?
            }
            (true, None) => return Err(InvalidField::new("reference", "is required without payment_id").into()),
        }
        .ok_or(PaymentsError::NotFound("payment"))?;
        if amount.currency().code() != row.currency {
            return Err(InvalidField::new(
                "amount.currency",
                format!("must be {}, the payment's currency", row.currency),
            )
            .into());
        }
        let mut tx = self.pool.begin().await?;
        let locked =
            store::intent_for_update(&mut tx, tenant, row.id).await?.ok_or(PaymentsError::NotFound("payment"))?;
        if locked.status == "succeeded" {
            tx.rollback().await?;
            return self.view(locked).await;
        }
        if !matches!(locked.method.as_str(), "bank_transfer" | "direct_debit") {
            return Err(PaymentsError::Precondition("the payment is not a bank transfer or direct debit".to_owned()));
        }
        next(status_of(&locked)?, IntentEvent::Approved)?;
        let updated = store::settle_intent(
            &mut tx,
            tenant,
            row.id,
            IntentStatus::Succeeded.as_str(),
            amount.amount(),
            Decimal::ZERO,
            None,
            None,
            None,
        )
        .await?;
        self.publish_succeeded(&mut tx, &updated, None, Some(received_on)).await?;
        tx.commit().await?;
        self.view(updated).await
    }

    /// Reconciliation matched money to invoices on its own (`reconciliation.match_confirmed`)
    /// and gave invoicing that money itself, as its payment `matched.payment`. This customer's
    /// transfers and direct debits still waiting for their money that collect those invoices
    /// (or installments) are settled by it, oldest first, each with what the match brought for
    /// its invoices and never more than its amount; one the money does not reach keeps waiting.
    /// Only `payment.succeeded` is published: invoicing applied the money already, and a
    /// `payment.received` of ours would apply it twice. Runs in the consumer's transaction; a
    /// payment settled once (`settled_by`) is never settled again.
    pub async fn settle_matched(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
        matched: &MatchedPayment,
    ) -> Result<Vec<IntentRow>> {
        if store::settled_by_exists(conn, tenant, matched.payment).await? {
            return Ok(Vec::new());
        }
        let mut invoices: Vec<Uuid> = matched.items.iter().filter_map(|i| i.invoice).collect();
        invoices.sort();
        invoices.dedup();
        let installments: Vec<Uuid> = matched.items.iter().filter_map(|i| i.installment).collect();
        if invoices.is_empty() && installments.is_empty() {
            return Ok(Vec::new());
        }
        // The lock a payment takes when it checks the open balance: none starts on these
        // invoices while their waiting payments turn into received money.
        store::lock_targets(conn, tenant, &invoices).await?;
        let waiting =
            store::waiting_bank_payments_for_update(conn, tenant, matched.customer, &invoices, &installments).await?;
        // What each item of the match still has for payments not settled yet.
        let mut left: Vec<(&MatchedItem, Decimal)> =
            matched.items.iter().map(|item| (item, item.amount.max(Decimal::ZERO))).collect();
        let mut settled = Vec::new();
        for row in waiting {
            let own = |item: &MatchedItem| item.installment.is_some() && item.installment == row.installment_id;
            let reaches = |item: &MatchedItem| {
                item.currency == row.currency
                    && (own(item) || item.invoice.is_some_and(|i| row.invoice_ids.contains(&i)))
            };
            let mut received = Decimal::ZERO;
            // Its own installment's money first, then the rest of its invoices'.
            for installment_first in [true, false] {
                for (_, amount) in left.iter_mut().filter(|(item, _)| reaches(item) && own(item) == installment_first) {
                    let take = (*amount).min(row.amount - received);
                    *amount -= take;
                    received += take;
                }
            }
            if received <= Decimal::ZERO {
                continue;
            }
            next(status_of(&row)?, IntentEvent::Approved)?;
            let Some(updated) =
                store::settle_by_reconciliation(conn, tenant, row.id, received, matched.payment).await?
            else {
                continue;
            };
            tracing::info!(
                payment = %cobro_kit::ids::format("pay", updated.id),
                by = %cobro_kit::ids::format("rcm", matched.payment),
                received = %received,
                "reconciliation settled a waiting bank payment"
            );
            self.publish(conn, &updated, "payment.succeeded", &succeeded_event(&updated, None)).await?;
            settled.push(updated);
        }
        Ok(settled)
    }

    /// The creditor reference of a customer (no invoice) or of one invoice, made on first use
    /// and announced so reconciliation can match it.
    pub(crate) async fn ensure_reference(
        &self,
        tenant: Uuid,
        customer: Uuid,
        invoice: Option<Uuid>,
    ) -> Result<CreditorReference> {
        let reference = match invoice {
            Some(invoice) => CreditorReference::for_invoice(invoice),
            None => CreditorReference::for_customer(customer),
        };
        let mut tx = self.pool.begin().await?;
        if store::insert_reference(&mut tx, tenant, reference.as_str(), customer, invoice).await? {
            let event = ev::ReferenceAssigned {
                reference: reference.as_str().to_owned(),
                customer_id: cobro_kit::ids::format("cus", customer),
                invoice_id: invoice.map(|i| cobro_kit::ids::format("inv", i)).unwrap_or_default(),
            };
            let new = NewEvent::new("reference.assigned", tenant, reference.as_str().to_owned(), &event);
            enqueue(&mut tx, TOPIC, new).await?;
        }
        tx.commit().await?;
        Ok(reference)
    }

    // --- autopay bookkeeping ---

    /// Cancel a payment that never reached the processor (still waiting for its method).
    pub(crate) async fn cancel_unstarted(&self, tenant: Uuid, intent_id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(row) = store::intent_for_update(&mut tx, tenant, intent_id).await?
            && row.status == IntentStatus::RequiresPaymentMethod.as_str()
        {
            store::set_status(&mut tx, tenant, intent_id, IntentStatus::Canceled.as_str()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// An autopay intent that never reached the processor: cancel it and count the try as a
    /// soft failure, so the run retries on its schedule.
    pub(crate) async fn abandon_autopay_intent(&self, tenant: Uuid, intent_id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = store::intent_for_update(&mut tx, tenant, intent_id).await? else { return Ok(()) };
        if row.status != IntentStatus::RequiresPaymentMethod.as_str() {
            // It got further than it seemed (processing): recovery settles it.
            return Ok(());
        }
        store::set_status(&mut tx, tenant, intent_id, IntentStatus::Canceled.as_str()).await?;
        self.autopay_outcome(&mut tx, &row, Some(crate::connector::DeclineCode::ProcessingError)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An autopay intent ended: the run succeeds, retries later, or gives up.
    async fn autopay_outcome(
        &self,
        conn: &mut PgConnection,
        intent: &IntentRow,
        declined: Option<crate::connector::DeclineCode>,
    ) -> Result<()> {
        let Some(run_id) = intent.autopay_run_id else { return Ok(()) };
        let Some(run) = store::autopay_run(conn, intent.tenant_id, run_id).await? else { return Ok(()) };
        let attempts = run.attempts;
        match declined {
            None => {
                store::update_autopay_run(
                    conn,
                    intent.tenant_id,
                    run_id,
                    "succeeded",
                    attempts,
                    None,
                    Some(intent.id),
                    None,
                )
                .await?;
            }
            Some(code) => {
                let made = u32::try_from(attempts).unwrap_or(1).max(1);
                let decision = autopay::not_the_same_day(
                    autopay::after_decline(run.due_date, made, code.is_soft()),
                    run.last_tried_on,
                );
                let (status, next_on, last) = match decision {
                    Decision::RetryOn(day) => ("scheduled", Some(day), false),
                    Decision::GiveUp => ("failed", None, true),
                };
                store::update_autopay_run(
                    conn,
                    intent.tenant_id,
                    run_id,
                    status,
                    attempts,
                    next_on,
                    Some(intent.id),
                    Some(code.as_str()),
                )
                .await?;
                let event = ev::AutopayFailed {
                    customer_id: cobro_kit::ids::format("cus", run.customer_id),
                    invoice_id: cobro_kit::ids::format("inv", run.invoice_id),
                    installment_id: run.installment_id.map(|i| cobro_kit::ids::format("ins", i)).unwrap_or_default(),
                    payment_id: cobro_kit::ids::format("pay", intent.id),
                    attempt: made,
                    decline_code: code.as_str().to_owned(),
                    next_retry_on: next_on.map(|d| d.to_string()).unwrap_or_default(),
                    r#final: last,
                };
                self.publish(conn, intent, "autopay.failed", &event).await?;
            }
        }
        Ok(())
    }

    // --- recovery ---

    /// Sync every attempt left open longer than `recover_after`, and retry refunds whose
    /// processor call never answered. Returns how many attempts were settled.
    pub async fn recover(&self) -> Result<usize> {
        let older_than = Utc::now() - chrono::Duration::from_std(self.options.recover_after).unwrap_or_default();
        let mut settled = 0;
        for attempt in store::stale_attempts(&self.pool, older_than, 100).await? {
            let action_expired = attempt.status == "requires_action"
                && attempt.created_at
                    < Utc::now() - chrono::Duration::from_std(self.options.action_expires_after).unwrap_or_default();
            match self.sync_attempt(&attempt).await {
                Ok(Some(_)) => settled += 1,
                Ok(None) if action_expired => {
                    let outcome = ChargeOutcome::Declined {
                        processor_ref: attempt.processor_ref.clone(),
                        code: crate::connector::DeclineCode::AuthenticationFailed,
                        message: "the payer did not complete authentication in time".to_owned(),
                    };
                    // Declined only once the processor can no longer take the money.
                    if let Some(r) = &attempt.processor_ref
                        && let Err(error) = self.processor.void(r).await
                    {
                        tracing::warn!(%error, attempt = %attempt.id, "cannot void an expired authentication; retrying later");
                        continue;
                    }
                    self.settle_attempt(attempt.tenant_id, attempt.id, &outcome).await?;
                    settled += 1;
                }
                Ok(None) => {
                    sqlx::query("UPDATE attempts SET updated_at = now() WHERE tenant_id = $1 AND id = $2")
                        .bind(attempt.tenant_id)
                        .bind(attempt.id)
                        .execute(&self.pool)
                        .await?;
                }
                Err(error) => tracing::warn!(%error, attempt = %attempt.id, "cannot sync an open attempt now"),
            }
        }
        for (tenant, intent) in store::unstarted_autopay_intents(&self.pool, older_than, 100).await? {
            self.abandon_autopay_intent(tenant, intent).await?;
        }
        for refund in store::pending_refunds(&self.pool, older_than).await? {
            let Some(intent) = store::intent(&self.pool, refund.tenant_id, refund.intent_id).await? else { continue };
            if let Err(error) = self.continue_refund(&intent, refund).await {
                tracing::warn!(%error, payment = %intent.id, "a pending refund did not complete");
            }
        }
        Ok(settled)
    }

    /// Recovery, autopay and payouts, every `period` until shutdown.
    pub async fn run_jobs(self: Arc<Self>, period: Duration, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            if let Err(error) = self.recover().await {
                tracing::warn!(%error, "payment recovery failed; retrying next round");
            }
            let today = cobro_kit::clock::today();
            if let Err(error) = self.run_autopay(today).await {
                tracing::warn!(%error, "autopay failed; retrying next round");
            }
            if let Err(error) = self.import_recent_settlements(today).await {
                tracing::warn!(%error, "settlement import failed; retrying next round");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
        }
    }
}

/// The moment a timestamp is shown on the wire.
/// The payment.succeeded of an intent: the receipt notifications send the customer.
fn succeeded_event(intent: &IntentRow, processor_ref: Option<&str>) -> ev::PaymentSucceeded {
    ev::PaymentSucceeded {
        payment_id: cobro_kit::ids::format("pay", intent.id),
        customer_id: cobro_kit::ids::format("cus", intent.customer_id),
        amount: Some(money(intent.amount_received, &intent.currency)),
        fee: Some(money(intent.fee, &intent.currency)),
        method: intent.method.clone(),
        invoice_ids: intent.invoice_ids.iter().map(|i| cobro_kit::ids::format("inv", *i)).collect(),
        installment_id: intent.installment_id.map(|i| cobro_kit::ids::format("ins", i)).unwrap_or_default(),
        autopay: intent.autopay_run_id.is_some(),
        connector: intent.processor.clone().unwrap_or_default(),
        processor_ref: processor_ref.unwrap_or_default().to_owned(),
    }
}

pub fn ts(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    cobro_kit::wire::timestamp(at)
}

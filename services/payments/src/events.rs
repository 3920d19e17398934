//! What payments consumes: invoicing's invoice events, kept as the `receivables` read model so
//! a payment can be checked against the open balance without a call to invoicing, and autopay
//! knows what falls due; and reconciliation's confirmed matches, which settle the transfers and
//! direct debits waiting for that money.

use std::sync::Arc;

use chrono::NaiveDate;
use cobro_kit::events::payload::{id, malformed, money, optional_id};
use cobro_kit::events::{EventHandler, HandlerError};
use cobro_proto::events::v1::{
    Envelope, InstallmentDue, InstallmentsPlanned, InvoiceChanged, MatchDecided, PaymentApplied,
};
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::{MatchedItem, MatchedPayment, Payments};
use crate::error::PaymentsError;
use crate::store;

pub const INVOICING_TOPIC: &str = "cobro.invoicing.v1";
pub const CONSUMER_GROUP: &str = "payments.invoices";
pub const RECONCILIATION_TOPIC: &str = "cobro.reconciliation.v1";
pub const RECONCILIATION_GROUP: &str = "payments.reconciliation";
pub const MATCH_CONFIRMED: &str = "reconciliation.match_confirmed";

fn date(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
}

pub struct InvoicesHandler;

impl EventHandler for InvoicesHandler {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let tenant = Uuid::try_parse(&event.tenant_id).map_err(|_| malformed("tenant id"))?;
        match event.r#type.as_str() {
            "invoice.issued"
            | "invoice.voided"
            | "invoice.paid"
            | "invoice.overdue"
            | "invoice.uncollectible"
            | "invoice.payment_reversed" => {
                let e = InvoiceChanged::decode(event.payload.as_slice()).map_err(|_| malformed("InvoiceChanged"))?;
                let invoice = id("inv", &e.invoice_id, "invoice_id")?;
                let customer = id("cus", &e.customer_id, "customer_id")?;
                let (total, currency) = money(e.total.as_ref(), "total")?;
                let (balance, _) = money(e.balance.as_ref(), "balance")?;
                store::upsert_receivable(
                    conn,
                    tenant,
                    invoice,
                    customer,
                    &e.number,
                    &e.status,
                    &currency,
                    total,
                    balance,
                    date(&e.due_date),
                )
                .await?;
            }
            "invoice.payment_applied" => {
                let e = PaymentApplied::decode(event.payload.as_slice()).map_err(|_| malformed("PaymentApplied"))?;
                let invoice = id("inv", &e.invoice_id, "invoice_id")?;
                let (balance, _) = money(e.balance.as_ref(), "balance")?;
                store::set_receivable_balance(conn, tenant, invoice, balance).await?;
                let (applied, _) = money(e.amount.as_ref(), "amount")?;
                if !e.installment_id.is_empty() {
                    let installment = id("ins", &e.installment_id, "installment_id")?;
                    store::lower_installment_due(conn, tenant, installment, applied).await?;
                }
                // Ours, and reconciliation's (`rcm_`): a transfer of ours that reconciliation
                // settled reaches invoicing as that payment. Other ids are nothing of ours.
                let payment = cobro_kit::ids::parse("payment_id", "pay", &e.payment_id)
                    .or_else(|_| cobro_kit::ids::parse("payment_id", "rcm", &e.payment_id));
                if let Ok(payment) = payment {
                    store::record_application(conn, tenant, payment, invoice, applied).await?;
                }
            }
            "installments.planned" => {
                let e = InstallmentsPlanned::decode(event.payload.as_slice())
                    .map_err(|_| malformed("InstallmentsPlanned"))?;
                let invoice = id("inv", &e.invoice_id, "invoice_id")?;
                let mut plan = Vec::with_capacity(e.installments.len());
                for planned in &e.installments {
                    let installment = id("ins", &planned.installment_id, "installments.installment_id")?;
                    let due = date(&planned.due_date).ok_or_else(|| malformed("installments.due_date"))?;
                    plan.push((installment, due));
                }
                store::replace_planned_installments(conn, tenant, invoice, &plan).await?;
            }
            // The customer asked for time or disputes the invoice: autopay waits for the answer.
            "hardship.requested" | "dispute.opened" | "hardship.resolved" | "dispute.resolved" => {
                let e = InvoiceChanged::decode(event.payload.as_slice()).map_err(|_| malformed("InvoiceChanged"))?;
                let invoice = id("inv", &e.invoice_id, "invoice_id")?;
                let (reason, action) = event.r#type.split_once('.').unwrap_or_default();
                if action == "resolved" {
                    store::release_autopay_hold(conn, tenant, invoice, reason).await?;
                } else {
                    store::hold_autopay(conn, tenant, invoice, reason).await?;
                }
            }
            "installment.due" => {
                let e = InstallmentDue::decode(event.payload.as_slice()).map_err(|_| malformed("InstallmentDue"))?;
                let invoice = id("inv", &e.invoice_id, "invoice_id")?;
                let installment = id("ins", &e.installment_id, "installment_id")?;
                let (balance, currency) = money(e.balance.as_ref(), "balance")?;
                let due = date(&e.due_date).ok_or_else(|| malformed("due_date"))?;
                store::upsert_installment_due(conn, tenant, installment, invoice, due, &currency, balance).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Settles waiting transfers and direct debits with the money of reconciliation's confirmed
/// matches ([`Payments::settle_matched`]). Everything else on the topic (its `payment.received`
/// is for invoicing) is ignored.
pub struct ReconciliationHandler {
    app: Arc<Payments>,
}

impl ReconciliationHandler {
    pub fn new(app: Arc<Payments>) -> Self {
        Self { app }
    }
}

impl EventHandler for ReconciliationHandler {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        if event.r#type != MATCH_CONFIRMED {
            return Ok(());
        }
        let tenant = Uuid::try_parse(&event.tenant_id).map_err(|_| malformed("tenant id"))?;
        let e = MatchDecided::decode(event.payload.as_slice()).map_err(|_| malformed("MatchDecided"))?;
        // A match of payouts, or of money nobody was found to owe: no payment of ours waits for it.
        if e.payment_id.is_empty() || e.customer_id.is_empty() {
            return Ok(());
        }
        let payment = id("rcm", &e.payment_id, "payment_id")?;
        let customer = id("cus", &e.customer_id, "customer_id")?;
        let mut items = Vec::with_capacity(e.items.len());
        for item in &e.items {
            let invoice = optional_id("inv", &item.invoice_id, "items.invoice_id")?;
            let installment = optional_id("ins", &item.installment_id, "items.installment_id")?;
            if invoice.is_none() && installment.is_none() {
                continue;
            }
            let (amount, currency) = money(item.amount.as_ref(), "items.amount")?;
            items.push(MatchedItem { invoice, installment, amount, currency });
        }
        let matched = MatchedPayment { payment, customer, items };
        self.app.settle_matched(conn, tenant, &matched).await.map_err(|err| match err {
            PaymentsError::Database(err) => HandlerError::from(err),
            other => HandlerError::Permanent(other.to_string()),
        })?;
        Ok(())
    }
}

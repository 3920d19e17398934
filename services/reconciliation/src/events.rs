//! What reconciliation consumes: invoicing's and payments' events keep its copy of what is
//! owed (customers, invoices and installments with their balances, RF references, processor
//! payouts). Every change marks the tenant for matching again: a credit that found no invoice
//! yesterday may find one issued today.

use chrono::NaiveDate;
use cobro_kit::events::payload::{id, malformed, money, optional_id};
use cobro_kit::events::{EventHandler, HandlerError};
use cobro_proto::events::v1::{
    CustomerUpserted, Envelope, InstallmentsPlanned, InvoiceChanged, PaymentApplied, PayoutCreated, ReferenceAssigned,
};
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::{PAYMENT_PREFIX, raise};
use crate::domain::payouts::Payout;
use crate::store::book::{self, InvoiceState, PayoutRow, PlannedInstallment};
use crate::store::discrepancies::DiscrepancyRow;

pub const INVOICING_TOPIC: &str = "cobro.invoicing.v1";
pub const PAYMENTS_TOPIC: &str = "cobro.payments.v1";
pub const CONSUMER_GROUP: &str = "reconciliation";

fn date(value: &str, what: &str) -> Result<NaiveDate, HandlerError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| malformed(what))
}

fn decode<T: Message + Default>(event: &Envelope, what: &str) -> Result<T, HandlerError> {
    T::decode(event.payload.as_slice()).map_err(|_| malformed(what))
}

pub struct Handler;

impl Handler {
    async fn invoice_changed(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
        e: &InvoiceChanged,
    ) -> Result<(), HandlerError> {
        let invoice = id("inv", &e.invoice_id, "invoice_id")?;
        let customer = id("cus", &e.customer_id, "customer_id")?;
        let (total, currency) = money(e.total.as_ref(), "total")?;
        let (balance, _) = money(e.balance.as_ref(), "balance")?;
        let due_date = date(&e.due_date, "due_date")?;
        let state = InvoiceState {
            invoice,
            customer,
            number: &e.number,
            status: &e.status,
            currency: &currency,
            total,
            balance,
            due_date,
        };
        book::upsert_invoice(conn, tenant, &state).await?;
        Ok(())
    }
}

impl EventHandler for Handler {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let tenant = Uuid::try_parse(&event.tenant_id).map_err(|_| malformed("tenant id"))?;
        match event.r#type.as_str() {
            "customer.upserted" => {
                let e: CustomerUpserted = decode(event, "CustomerUpserted")?;
                let customer = id("cus", &e.customer_id, "customer_id")?;
                book::upsert_customer(conn, tenant, customer, &e.legal_name).await?;
            }
            "invoice.issued"
            | "invoice.paid"
            | "invoice.voided"
            | "invoice.overdue"
            | "invoice.uncollectible"
            | "invoice.payment_reversed" => {
                let e: InvoiceChanged = decode(event, "InvoiceChanged")?;
                self.invoice_changed(conn, tenant, &e).await?;
            }
            "invoice.payment_applied" => {
                let e: PaymentApplied = decode(event, "PaymentApplied")?;
                let invoice = id("inv", &e.invoice_id, "invoice_id")?;
                let installment = optional_id("ins", &e.installment_id, "installment_id")?;
                let (balance, _) = money(e.balance.as_ref(), "balance")?;
                // Money this service sent is no longer pending once invoicing applied it.
                let ours = e.payment_id.starts_with(PAYMENT_PREFIX).then_some(e.payment_id.as_str());
                book::payment_applied(conn, tenant, invoice, installment, balance, ours).await?;
            }
            "installments.planned" => {
                let e: InstallmentsPlanned = decode(event, "InstallmentsPlanned")?;
                let invoice = id("inv", &e.invoice_id, "invoice_id")?;
                let mut plan = Vec::with_capacity(e.installments.len());
                for p in &e.installments {
                    plan.push(PlannedInstallment {
                        installment: id("ins", &p.installment_id, "installment_id")?,
                        seq: i32::try_from(p.seq).map_err(|_| malformed("seq"))?,
                        due_date: date(&p.due_date, "due_date")?,
                        amount: money(p.amount.as_ref(), "amount")?.0,
                        balance: money(p.balance.as_ref(), "balance")?.0,
                    });
                }
                book::replace_plan(conn, tenant, invoice, &plan).await?;
            }
            "reference.assigned" => {
                let e: ReferenceAssigned = decode(event, "ReferenceAssigned")?;
                let customer = id("cus", &e.customer_id, "customer_id")?;
                let invoice = optional_id("inv", &e.invoice_id, "invoice_id")?;
                let reference: String = e.reference.chars().filter(|c| !c.is_whitespace()).collect();
                if reference.is_empty() || reference.len() > 35 {
                    return Err(malformed("reference"));
                }
                book::upsert_reference(conn, tenant, &reference.to_uppercase(), customer, invoice).await?;
            }
            "payout.created" => {
                let e: PayoutCreated = decode(event, "PayoutCreated")?;
                let (gross, currency) = money(e.gross.as_ref(), "gross")?;
                let row = PayoutRow {
                    payout_id: id("po", &e.payout_id, "payout_id")?,
                    connector: e.connector.clone(),
                    payout_ref: e.payout_ref.clone(),
                    day: date(&e.day, "day")?,
                    currency: currency.clone(),
                    gross,
                    fees: money(e.fees.as_ref(), "fees")?.0,
                    refunds: money(e.refunds.as_ref(), "refunds")?.0,
                    net: money(e.net.as_ref(), "net")?.0,
                    line_id: None,
                };
                if book::insert_payout(conn, tenant, &row).await? {
                    let payout = Payout {
                        id: row.payout_id,
                        connector: row.connector.clone(),
                        payout_ref: row.payout_ref.clone(),
                        day: row.day,
                        currency: row.currency.clone(),
                        gross: row.gross,
                        fees: row.fees,
                        refunds: row.refunds,
                        net: row.net,
                    };
                    if let Some(expected) = payout.arithmetic_gap() {
                        let d = DiscrepancyRow::new("payout_mismatch", &currency, row.net)
                            .payout(row.payout_id)
                            .expected(expected)
                            .detail(format!(
                                "payout {} says net {} but gross {} minus fees {} and refunds {} is {}",
                                row.payout_ref, row.net, row.gross, row.fees, row.refunds, expected
                            ));
                        raise(conn, tenant, d).await.map_err(|e| HandlerError::Transient(e.to_string()))?;
                    }
                }
            }
            _ => return Ok(()),
        }
        book::mark_dirty(conn, tenant).await?;
        Ok(())
    }
}

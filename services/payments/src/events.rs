//! What payments consumes: invoicing's invoice events, kept as the `receivables` read model so
//! a payment can be checked against the open balance without a call to invoicing, and autopay
//! knows what falls due.

use chrono::NaiveDate;
use cobro_kit::events::{EventHandler, HandlerError};
use cobro_proto::events::v1::{Envelope, InstallmentDue, InvoiceChanged, PaymentApplied};
use prost::Message;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store;

pub const INVOICING_TOPIC: &str = "cobro.invoicing.v1";
pub const CONSUMER_GROUP: &str = "payments.invoices";

fn permanent(what: &str) -> HandlerError {
    HandlerError::Permanent(format!("malformed {what}"))
}

fn uuid(prefix: &str, value: &str, what: &str) -> Result<Uuid, HandlerError> {
    cobro_kit::ids::parse(what, prefix, value).map_err(|_| permanent(what))
}

fn amount(m: Option<&cobro_proto::common::v1::Money>, what: &str) -> Result<(Decimal, String), HandlerError> {
    let m = m.ok_or_else(|| permanent(what))?;
    let value = m.amount.parse::<Decimal>().map_err(|_| permanent(what))?;
    Ok((value, m.currency.clone()))
}

fn date(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
}

pub struct InvoicesHandler;

impl EventHandler for InvoicesHandler {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let tenant = Uuid::try_parse(&event.tenant_id).map_err(|_| permanent("tenant id"))?;
        match event.r#type.as_str() {
            "invoice.issued" | "invoice.voided" | "invoice.paid" | "invoice.overdue" | "invoice.uncollectible" => {
                let e = InvoiceChanged::decode(event.payload.as_slice()).map_err(|_| permanent("InvoiceChanged"))?;
                let invoice = uuid("inv", &e.invoice_id, "invoice_id")?;
                let customer = uuid("cus", &e.customer_id, "customer_id")?;
                let (total, currency) = amount(e.total.as_ref(), "total")?;
                let (balance, _) = amount(e.balance.as_ref(), "balance")?;
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
                let e = PaymentApplied::decode(event.payload.as_slice()).map_err(|_| permanent("PaymentApplied"))?;
                let invoice = uuid("inv", &e.invoice_id, "invoice_id")?;
                let (balance, _) = amount(e.balance.as_ref(), "balance")?;
                store::set_receivable_balance(conn, tenant, invoice, balance).await?;
                let (applied, _) = amount(e.amount.as_ref(), "amount")?;
                if !e.installment_id.is_empty() {
                    let installment = uuid("ins", &e.installment_id, "installment_id")?;
                    store::lower_installment_due(conn, tenant, installment, applied).await?;
                }
                // Payments from elsewhere (a bank statement line) have other ids: nothing of ours.
                if let Ok(payment) = cobro_kit::ids::parse("payment_id", "pay", &e.payment_id) {
                    store::record_application(conn, tenant, payment, invoice, applied).await?;
                }
            }
            "installment.due" => {
                let e = InstallmentDue::decode(event.payload.as_slice()).map_err(|_| permanent("InstallmentDue"))?;
                let invoice = uuid("inv", &e.invoice_id, "invoice_id")?;
                let installment = uuid("ins", &e.installment_id, "installment_id")?;
                let (balance, currency) = amount(e.balance.as_ref(), "balance")?;
                let due = date(&e.due_date).ok_or_else(|| permanent("due_date"))?;
                store::upsert_installment_due(conn, tenant, installment, invoice, due, &currency, balance).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

//! What notifications consumes: invoicing's events keep the invoices, customers and their
//! reminders in step (issued → planned, paid or voided → canceled, a hardship request or a
//! dispute → paused until resolved, then re-planned from that day); payments' events become
//! receipts and notices.

use std::sync::Arc;

use chrono::NaiveDate;
use cobro_kit::events::payload::{id, malformed, money};
use cobro_kit::events::{EventHandler, HandlerError};
use cobro_proto::events::v1::{
    CustomerUpserted, Envelope, InstallmentsPlanned, InvoiceChanged, PaymentApplied, PaymentFailed,
    PaymentRequiresAction, PaymentSucceeded, ReferenceAssigned,
};
use prost::Message;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::Notifications;
use crate::error::NotificationsError;
use crate::store::{self, Hold, InvoiceUpsert};

pub const INVOICING_TOPIC: &str = "cobro.invoicing.v1";
pub const PAYMENTS_TOPIC: &str = "cobro.payments.v1";
pub const CONSUMER_GROUP: &str = "notifications";

fn failed(e: NotificationsError) -> HandlerError {
    match e {
        NotificationsError::Database(e) => e.into(),
        other => HandlerError::Transient(other.to_string()),
    }
}

pub struct Handler {
    pub app: Arc<Notifications>,
}

impl Handler {
    async fn invoice_changed(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
        kind: &str,
        e: &InvoiceChanged,
    ) -> Result<(), HandlerError> {
        let invoice = id("inv", &e.invoice_id, "invoice_id")?;
        let customer = id("cus", &e.customer_id, "customer_id")?;
        let (total, currency) = money(e.total.as_ref(), "total")?;
        let (balance, _) = money(e.balance.as_ref(), "balance")?;
        let due_date = NaiveDate::parse_from_str(&e.due_date, "%Y-%m-%d").map_err(|_| malformed("due_date"))?;
        let row = InvoiceUpsert {
            invoice_id: invoice,
            customer_id: customer,
            number: &e.number,
            status: &e.status,
            currency: &currency,
            total,
            balance,
            due_date,
        };
        store::upsert_invoice(conn, tenant, &row).await?;
        let hold = match kind {
            "hardship.requested" => Some((Hold::Hardship, true)),
            "hardship.resolved" => Some((Hold::Hardship, false)),
            "dispute.opened" => Some((Hold::Dispute, true)),
            "dispute.resolved" => Some((Hold::Dispute, false)),
            _ => None,
        };
        if let Some((hold, on)) = hold {
            store::set_hold(conn, tenant, invoice, hold, on).await?;
        }
        // Re-planning cancels what a paid, void or paused invoice had planned, and plans from
        // today what an open one needs (a resolved hardship request starts again from today).
        self.app.plan_invoice(conn, tenant, invoice, cobro_kit::clock::now()).await.map_err(failed)?;
        let transactional = match kind {
            "invoice.issued" => Some(("invoice_issued", false)),
            "hardship.requested" => Some(("hardship_received", true)),
            // The customer hears that the dispute arrived; staff see it in the console.
            "dispute.opened" => Some(("dispute_opened", false)),
            _ => None,
        };
        if let Some((message, to_staff)) = transactional {
            let key = format!("{message}:{invoice}");
            self.app
                .plan_transactional(
                    conn,
                    tenant,
                    customer,
                    Some(invoice),
                    message,
                    &key,
                    to_staff,
                    serde_json::Value::Null,
                )
                .await
                .map_err(failed)?;
        }
        Ok(())
    }
}

impl EventHandler for Handler {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let tenant = Uuid::try_parse(&event.tenant_id).map_err(|_| malformed("tenant id"))?;
        let kind = event.r#type.as_str();
        match kind {
            "customer.upserted" => {
                let e =
                    CustomerUpserted::decode(event.payload.as_slice()).map_err(|_| malformed("CustomerUpserted"))?;
                let customer = id("cus", &e.customer_id, "customer_id")?;
                let contacts: Vec<crate::app::Contact> = e
                    .contacts
                    .iter()
                    .map(|c| crate::app::Contact {
                        name: c.name.clone(),
                        email: c.email.clone(),
                        phone: c.phone.clone(),
                        whatsapp_opt_in: c.whatsapp_opt_in,
                        language: c.language.clone(),
                        timezone: c.timezone.clone(),
                    })
                    .collect();
                let contacts = serde_json::to_value(contacts).map_err(|_| malformed("contacts"))?;
                store::upsert_customer(conn, tenant, customer, &e.legal_name, &contacts, e.autopay).await?;
                // Invoices that arrived before their customer's contacts get their plan now.
                for invoice in store::open_invoices_of(conn, tenant, customer).await? {
                    self.app.plan_invoice(conn, tenant, invoice, cobro_kit::clock::now()).await.map_err(failed)?;
                }
            }
            "invoice.issued"
            | "invoice.voided"
            | "invoice.paid"
            | "invoice.overdue"
            | "invoice.uncollectible"
            | "invoice.payment_reversed"
            | "hardship.requested"
            | "hardship.resolved"
            | "dispute.opened"
            | "dispute.resolved" => {
                let e = InvoiceChanged::decode(event.payload.as_slice()).map_err(|_| malformed("InvoiceChanged"))?;
                self.invoice_changed(conn, tenant, kind, &e).await?;
            }
            "invoice.payment_applied" => {
                let e = PaymentApplied::decode(event.payload.as_slice()).map_err(|_| malformed("PaymentApplied"))?;
                let invoice = id("inv", &e.invoice_id, "invoice_id")?;
                let (balance, _) = money(e.balance.as_ref(), "balance")?;
                // Later reminders render the balance at send time; a zero balance ends them.
                store::set_balance(conn, tenant, invoice, balance).await?;
                if !e.installment_id.is_empty() {
                    let installment = id("ins", &e.installment_id, "installment_id")?;
                    let (applied, _) = money(e.amount.as_ref(), "amount")?;
                    store::apply_to_installment(conn, tenant, installment, applied).await?;
                }
                if balance <= Decimal::ZERO {
                    store::cancel_planned(conn, tenant, invoice).await?;
                }
            }
            "installments.planned" => {
                let e = InstallmentsPlanned::decode(event.payload.as_slice())
                    .map_err(|_| malformed("InstallmentsPlanned"))?;
                let invoice = id("inv", &e.invoice_id, "invoice_id")?;
                let mut rows = Vec::with_capacity(e.installments.len());
                for i in &e.installments {
                    rows.push(store::InstallmentRow {
                        installment_id: id("ins", &i.installment_id, "installment_id")?,
                        invoice_id: invoice,
                        seq: i32::try_from(i.seq).map_err(|_| malformed("seq"))?,
                        due_date: NaiveDate::parse_from_str(&i.due_date, "%Y-%m-%d")
                            .map_err(|_| malformed("due_date"))?,
                        amount: money(i.amount.as_ref(), "amount")?.0,
                        balance: money(i.balance.as_ref(), "balance")?.0,
                    });
                }
                store::replace_installments(conn, tenant, invoice, &rows).await?;
                self.app.plan_invoice(conn, tenant, invoice, cobro_kit::clock::now()).await.map_err(failed)?;
            }
            "reference.assigned" => {
                // An invoice's own reference: messages tell the payer what to write on a transfer.
                let e =
                    ReferenceAssigned::decode(event.payload.as_slice()).map_err(|_| malformed("ReferenceAssigned"))?;
                if !e.invoice_id.is_empty() {
                    let invoice = id("inv", &e.invoice_id, "invoice_id")?;
                    store::set_bank_reference(conn, tenant, invoice, &e.reference).await?;
                }
            }
            "payment.succeeded" => {
                let e =
                    PaymentSucceeded::decode(event.payload.as_slice()).map_err(|_| malformed("PaymentSucceeded"))?;
                let customer = id("cus", &e.customer_id, "customer_id")?;
                let key = format!("payment_receipt:{}", e.payment_id);
                let (paid, currency) = money(e.amount.as_ref(), "amount")?;
                let data = serde_json::json!({
                    "amount_paid": crate::render::amount(paid, &currency),
                    "currency": currency,
                    "payment_date": cobro_kit::clock::now().date_naive().to_string(),
                });
                self.app
                    .plan_transactional(conn, tenant, customer, None, "payment_receipt", &key, false, data)
                    .await
                    .map_err(failed)?;
            }
            "payment.failed" => {
                let e = PaymentFailed::decode(event.payload.as_slice()).map_err(|_| malformed("PaymentFailed"))?;
                let customer = id("cus", &e.customer_id, "customer_id")?;
                let key = format!("payment_failed:{}", e.payment_id);
                let (tried, currency) = money(e.amount.as_ref(), "amount")?;
                let data = serde_json::json!({
                    "amount_paid": crate::render::amount(tried, &currency),
                    "currency": currency,
                    "failure_reason": e.message,
                });
                self.app
                    .plan_transactional(conn, tenant, customer, None, "payment_failed", &key, false, data)
                    .await
                    .map_err(failed)?;
            }
            "payment.requires_action" => {
                let e = PaymentRequiresAction::decode(event.payload.as_slice())
                    .map_err(|_| malformed("PaymentRequiresAction"))?;
                let customer = id("cus", &e.customer_id, "customer_id")?;
                let key = format!("payment_action_required:{}", e.payment_id);
                let data = serde_json::json!({ "pay_link": e.next_action_url });
                self.app
                    .plan_transactional(conn, tenant, customer, None, "payment_action_required", &key, false, data)
                    .await
                    .map_err(failed)?;
            }
            _ => {}
        }
        Ok(())
    }
}

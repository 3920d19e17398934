//! What invoicing consumes: payments received, from payments and reconciliation, payments
//! taken back when reconciliation undoes a bank match, and customers' autopay consent.

use std::sync::Arc;

use cobro_kit::events::{EventHandler, HandlerError};
use cobro_proto::events::v1::{AutopayChanged, Envelope, MatchDecided, PaymentReceived};
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::{Invoicing, PaymentIn};
use crate::error::InvoicingError;

pub const PAYMENT_RECEIVED: &str = "payment.received";
/// A confirmed bank match undone: the `payment.received` it sent (same payment id) is taken back.
pub const MATCH_REVERSED: &str = "reconciliation.match_reversed";
/// The customer consented to autopay, or withdrew it, at payments.
pub const AUTOPAY_ENABLED: &str = "autopay.enabled";
pub const AUTOPAY_DISABLED: &str = "autopay.disabled";

/// The topics payments arrive on.
pub fn payment_topics() -> Vec<String> {
    vec!["cobro.payments.v1".to_owned(), "cobro.reconciliation.v1".to_owned()]
}

/// Applies `payment.received`, takes back the payment of `reconciliation.match_reversed`, and
/// keeps the customer's autopay flag from `autopay.enabled`/`autopay.disabled`, in the
/// consumer's transaction (the inbox row is written in it too), ignoring every other event on
/// those topics.
pub struct PaymentsHandler {
    pub app: Arc<Invoicing>,
}

impl EventHandler for PaymentsHandler {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        match event.r#type.as_str() {
            PAYMENT_RECEIVED => self.payment_received(conn, event).await,
            MATCH_REVERSED => self.match_reversed(conn, event).await,
            AUTOPAY_ENABLED | AUTOPAY_DISABLED => self.autopay_changed(conn, event).await,
            _ => Ok(()),
        }
    }
}

impl PaymentsHandler {
    async fn autopay_changed(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let tenant = tenant(event)?;
        let e = AutopayChanged::decode(event.payload.as_slice())
            .map_err(|_| HandlerError::Permanent("payload is not an AutopayChanged".to_owned()))?;
        let customer = cobro_kit::ids::parse("customer_id", "cus", &e.customer_id)
            .map_err(|_| HandlerError::Permanent("customer_id is not a customer id".to_owned()))?;
        self.app.set_autopay_in(conn, tenant, customer, e.enabled).await.map_err(failed)?;
        Ok(())
    }

    async fn payment_received(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let tenant = tenant(event)?;
        let p = PaymentReceived::decode(event.payload.as_slice())
            .map_err(|_| HandlerError::Permanent("payload is not a PaymentReceived".to_owned()))?;
        let amount = p.amount.unwrap_or_default();
        let input = PaymentIn {
            payment_id: p.payment_id,
            customer_id: p.customer_id,
            amount: amount.amount,
            currency: amount.currency,
            method: p.method,
            received_on: p.received_on,
            invoice_ids: p.invoice_ids,
            installment_id: p.installment_id,
        };
        let applied = self.app.apply_payment_in(conn, tenant, input).await.map_err(failed)?;
        tracing::info!(applied_now = applied.applied_now, "payment event applied");
        Ok(())
    }

    async fn match_reversed(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let tenant = tenant(event)?;
        let m = MatchDecided::decode(event.payload.as_slice())
            .map_err(|_| HandlerError::Permanent("payload is not a MatchDecided".to_owned()))?;
        // A match that paid no invoice sent no payment: nothing to take back.
        if m.payment_id.is_empty() {
            return Ok(());
        }
        let reason = format!("bank match {} undone by {}", m.match_id, m.decided_by);
        let reversed = self.app.reverse_payment_in(conn, tenant, &m.payment_id, &reason).await.map_err(failed)?;
        tracing::info!(
            reversed_now = reversed.reversed_now,
            payment_recorded = reversed.payment_recorded,
            "payment reversal applied"
        );
        Ok(())
    }
}

fn tenant(event: &Envelope) -> Result<Uuid, HandlerError> {
    Uuid::try_parse(&event.tenant_id).map_err(|_| HandlerError::Permanent("bad tenant id".to_owned()))
}

fn failed(e: InvoicingError) -> HandlerError {
    match e {
        // The database or the network: try again later.
        InvoicingError::Database(e) => HandlerError::from(e),
        InvoicingError::Internal(e) => HandlerError::Transient(e),
        // Refused for good (unknown customer, other currency, bad field): on record, skipped.
        other => HandlerError::Permanent(other.to_string()),
    }
}

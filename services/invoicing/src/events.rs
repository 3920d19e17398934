//! What invoicing consumes: payments received, from payments and reconciliation.

use std::sync::Arc;

use cobro_kit::events::{EventHandler, HandlerError};
use cobro_proto::events::v1::{Envelope, PaymentReceived};
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::{Invoicing, PaymentIn};
use crate::error::InvoicingError;

pub const PAYMENT_RECEIVED: &str = "payment.received";
/// The topics payments arrive on.
pub fn payment_topics() -> Vec<String> {
    vec!["cobro.payments.v1".to_owned(), "cobro.reconciliation.v1".to_owned()]
}

/// Applies `payment.received` events in the consumer's transaction (the inbox row is written in
/// it too), ignoring every other event on those topics.
pub struct PaymentsHandler {
    pub app: Arc<Invoicing>,
}

impl EventHandler for PaymentsHandler {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        if event.r#type != PAYMENT_RECEIVED {
            return Ok(());
        }
        let tenant =
            Uuid::try_parse(&event.tenant_id).map_err(|_| HandlerError::Permanent("bad tenant id".to_owned()))?;
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
        match self.app.apply_payment_in(conn, tenant, input).await {
            Ok(applied) => {
                tracing::info!(applied_now = applied.applied_now, "payment event applied");
                Ok(())
            }
            // The database or the network: try again later.
            Err(InvoicingError::Database(e)) => Err(HandlerError::from(e)),
            Err(InvoicingError::Internal(e)) => Err(HandlerError::Transient(e)),
            // Refused for good (unknown customer, other currency, bad field): on record, skipped.
            Err(other) => Err(HandlerError::Permanent(other.to_string())),
        }
    }
}

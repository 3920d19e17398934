//! A customer's statement of account for a period.

use chrono::NaiveDate;
use cobro_kit::auth::Principal;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::app::{Invoicing, parse_date, prefix};
use crate::error::{InvoicingError, Result};
use crate::store;

/// One line of a statement: a charge (invoice) or a credit (payment, credit note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub date: NaiveDate,
    /// invoice, payment, credit_note
    pub kind: &'static str,
    pub reference: String,
    pub charge: Decimal,
    pub credit: Decimal,
    pub balance: Decimal,
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub customer_id: Uuid,
    pub currency: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub opening: Decimal,
    pub entries: Vec<Entry>,
    pub closing: Decimal,
}

impl Invoicing {
    pub async fn statement(&self, principal: &Principal, customer_id: &str, from: &str, to: &str) -> Result<Statement> {
        if !principal.has("customers:read") && principal.customer_id.is_none() {
            return Err(InvoicingError::PermissionDenied("missing permission customers:read".to_owned()));
        }
        let customer_id = cobro_kit::ids::parse("customer_id", prefix::CUSTOMER, customer_id)?;
        // A portal contact reads only their own customer's statement.
        if principal.customer_id.is_some_and(|c| c != customer_id) {
            return Err(InvoicingError::NotFound("customer"));
        }
        let from = parse_date("from", from)?;
        let to = parse_date("to", to)?;
        if to < from {
            return Err(cobro_kit::error::InvalidField::new("to", "must not be before from").into());
        }
        let mut conn = self.pool.acquire().await?;
        let customer = store::customer(&mut conn, principal.tenant_id, customer_id)
            .await?
            .ok_or(InvoicingError::NotFound("customer"))?;
        let rows = store::statement_rows(&mut conn, principal.tenant_id, customer_id, &customer.currency, to).await?;
        let mut opening = Decimal::ZERO;
        let mut entries = Vec::new();
        for (date, kind, reference, charge, credit) in rows {
            if date < from {
                opening += charge - credit;
                continue;
            }
            entries.push(Entry { date, kind, reference, charge, credit, balance: Decimal::ZERO });
        }
        let mut running = opening;
        for e in &mut entries {
            running += e.charge - e.credit;
            e.balance = running;
        }
        Ok(Statement { customer_id, currency: customer.currency, from, to, opening, entries, closing: running })
    }
}

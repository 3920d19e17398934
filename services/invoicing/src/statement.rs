//! A customer's statement of account for a period, as data and as a printable PDF.

use chrono::NaiveDate;
use cobro_kit::auth::Principal;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::app::{Invoicing, money, parse_date, prefix};
use crate::domain::pdf::{PdfStatement, PdfStatementEntry, render_statement};
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
    pub customer_name: String,
    pub customer_tax_id: String,
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
        Ok(Statement {
            customer_id,
            customer_name: customer.legal_name,
            customer_tax_id: customer.tax_id,
            currency: customer.currency,
            from,
            to,
            opening,
            entries,
            closing: running,
        })
    }

    /// The statement as a PDF: (file name, bytes). Read exactly as [`Invoicing::statement`].
    pub async fn statement_pdf(
        &self,
        principal: &Principal,
        customer_id: &str,
        from: &str,
        to: &str,
    ) -> Result<(String, Vec<u8>)> {
        let st = self.statement(principal, customer_id, from, to).await?;
        let cur = st.currency.as_str();
        let amount = |d: Decimal| money(d, cur).amount;
        let pdf = render_statement(&PdfStatement {
            seller_name: String::new(),
            customer_name: st.customer_name.clone(),
            customer_tax_id: st.customer_tax_id.clone(),
            currency: st.currency.clone(),
            from: st.from.to_string(),
            to: st.to.to_string(),
            opening: amount(st.opening),
            entries: st
                .entries
                .iter()
                .map(|e| PdfStatementEntry {
                    date: e.date.to_string(),
                    document: e.reference.clone(),
                    description: describe(e).to_owned(),
                    debit: amount(e.charge),
                    credit: amount(e.credit),
                    balance: amount(e.balance),
                })
                .collect(),
            closing: amount(st.closing),
        });
        let customer = cobro_kit::ids::format(prefix::CUSTOMER, st.customer_id);
        Ok((format!("statement-{customer}-{}-{}.pdf", st.from, st.to), pdf))
    }
}

/// What a movement is, in words: a payment taken back is a charge of kind payment.
fn describe(entry: &Entry) -> &'static str {
    match entry.kind {
        "invoice" => "Invoice",
        "credit_note" => "Credit note",
        "payment" if entry.charge > Decimal::ZERO => "Payment reversed",
        "payment" => "Payment",
        _ => "Other",
    }
}

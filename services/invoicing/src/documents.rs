//! Documents made from invoices: the printable PDF.

use cobro_kit::auth::Principal;

use crate::app::{Invoicing, money};
use crate::domain::pdf::{PdfInvoice, PdfLine, render};
use crate::error::{InvoicingError, Result};
use crate::store;

impl Invoicing {
    /// The PDF of an issued invoice: (file name, bytes).
    pub async fn invoice_pdf(&self, principal: &Principal, id: &str) -> Result<(String, Vec<u8>)> {
        let view = self.invoice(principal, id).await?;
        let i = &view.invoice;
        let number = i
            .number
            .clone()
            .ok_or_else(|| InvoicingError::conflict("invoice_not_issued", "a draft has no PDF; issue it first"))?;
        let mut conn = self.pool.acquire().await?;
        let customer = store::customer(&mut conn, principal.tenant_id, i.customer_id)
            .await?
            .ok_or(InvoicingError::NotFound("customer"))?;
        let cur = i.currency.as_str();
        let amount = |d: rust_decimal::Decimal| money(d, cur).amount;
        let address = &customer.billing_address;
        let field = |k: &str| address[k].as_str().unwrap_or_default().to_owned();
        let mut taxes: Vec<(String, String)> = Vec::new();
        if !i.tax_total.is_zero() {
            taxes.push(("Taxes".to_owned(), amount(i.tax_total)));
        }
        let pdf = render(&PdfInvoice {
            seller_name: String::new(),
            number: number.clone(),
            issue_date: i.issue_date.map(|d| d.to_string()).unwrap_or_default(),
            due_date: i.due_date.map(|d| d.to_string()).unwrap_or_default(),
            customer_name: customer.legal_name.clone(),
            customer_tax_id: customer.tax_id.clone(),
            customer_address: [
                field("line1"),
                field("line2"),
                format!("{} {}", field("postal_code"), field("city")).trim().to_owned(),
                field("country"),
            ]
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect(),
            currency: i.currency.clone(),
            lines: view
                .lines
                .iter()
                .map(|l| PdfLine {
                    description: l.description.clone(),
                    quantity: l.quantity.normalize().to_string(),
                    unit_price: l.unit_price.to_string(),
                    tax: amount(l.tax_total),
                    total: amount(l.total),
                })
                .collect(),
            subtotal: amount(i.subtotal),
            discount: if i.discount_total.is_zero() { String::new() } else { amount(i.discount_total) },
            taxes,
            total: amount(i.total),
            credited: amount(i.credited),
            paid: amount(i.paid),
            balance: amount(i.balance),
            installments: view.installments.iter().map(|s| (s.due_date.to_string(), amount(s.amount))).collect(),
            // The invoice number is the transfer reference reconciliation matches on.
            payment_reference: number.replace('-', ""),
            pay_link: String::new(),
            memo: i.memo.clone(),
        });
        Ok((format!("{number}.pdf"), pdf))
    }
}

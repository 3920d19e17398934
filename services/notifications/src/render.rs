//! The values a message is rendered with, read at send time so a reminder always shows the
//! balance as it is then.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use crate::app::Contact;
use crate::domain::templates::Vars;
use crate::policy::PolicyBody;
use crate::store::{CustomerRow, InstallmentRow, InvoiceRow, MessageRow};

/// An amount with its currency's minor units and thousands separators ("1,234.50").
pub fn amount(value: Decimal, currency: &str) -> String {
    let digits = match currency {
        "JPY" | "KRW" | "CLP" | "VND" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    };
    let rounded = value.round_dp_with_strategy(digits, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    let text = format!("{:.*}", usize::try_from(digits).unwrap_or(2), rounded.abs());
    let (whole, fraction) = text.split_once('.').map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if rounded.is_sign_negative() && !rounded.is_zero() { "-" } else { "" };
    match fraction {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn vars(
    m: &MessageRow,
    invoice: Option<&InvoiceRow>,
    installment: Option<&InstallmentRow>,
    customer: Option<&CustomerRow>,
    contact: &Contact,
    policy: &PolicyBody,
    now: DateTime<Utc>,
    tz: Tz,
) -> Vars {
    let today = now.with_timezone(&tz).date_naive();
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let data = |key: &str| m.data.get(key).and_then(serde_json::Value::as_str).and_then(some);
    Vars {
        customer_name: customer.map(|c| c.legal_name.clone()).unwrap_or_default(),
        contact_name: some(&contact.name),
        invoice_number: invoice.map(|i| i.number.clone()).unwrap_or_default(),
        // An installment's reminder asks for what is left of that installment.
        amount_due: match (invoice, installment) {
            (Some(i), Some(part)) => amount(part.balance.min(i.balance), &i.currency),
            (Some(i), None) => amount(i.balance, &i.currency),
            _ => String::new(),
        },
        currency: invoice.map(|i| i.currency.clone()).or_else(|| data("currency")).unwrap_or_default(),
        due_date: installment
            .map(|i| i.due_date)
            .or(invoice.map(|i| i.due_date))
            .map(|d| d.to_string())
            .unwrap_or_default(),
        days_overdue: installment
            .map(|i| i.due_date)
            .or(invoice.map(|i| i.due_date))
            .map(|d| (today - d).num_days())
            .unwrap_or(0),
        installment_number: installment.and_then(|i| u32::try_from(i.seq).ok()),
        pay_link: data("pay_link"),
        bank_reference: invoice.map(|i| i.bank_reference.clone()).and_then(|r| some(&r)),
        tenant_name: policy.sender_name.clone(),
        tenant_email: some(&policy.sender_email),
        tenant_phone: some(&policy.sender_phone),
        amount_paid: data("amount_paid"),
        payment_date: data("payment_date"),
        failure_reason: data("failure_reason"),
    }
}

/// What a tenant's system receives for a webhook reminder: ids and figures, no contact data.
pub fn webhook_body(m: &MessageRow, invoice: Option<&InvoiceRow>) -> serde_json::Value {
    serde_json::json!({
        "message_id": cobro_kit::ids::format("msg", m.id),
        "kind": m.kind,
        "tone": m.tone,
        "step": m.step,
        "customer_id": cobro_kit::ids::format("cus", m.customer_id),
        "invoice_id": m.invoice_id.map(|i| cobro_kit::ids::format("inv", i)),
        "invoice_number": invoice.map(|i| i.number.clone()),
        "amount_due": invoice.map(|i| serde_json::json!({"currency": i.currency, "amount": i.balance.to_string()})),
        "due_date": invoice.map(|i| i.due_date.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn amounts_follow_the_currency() {
        let d = |s: &str| Decimal::from_str(s).unwrap_or_default();
        assert_eq!(amount(d("1234.5"), "MXN"), "1,234.50");
        assert_eq!(amount(d("1234567.891"), "USD"), "1,234,567.89");
        assert_eq!(amount(d("1500"), "JPY"), "1,500");
        assert_eq!(amount(d("12.3456"), "BHD"), "12.346");
        assert_eq!(amount(d("999.995"), "EUR"), "1,000.00");
        assert_eq!(amount(d("0"), "EUR"), "0.00");
    }
}

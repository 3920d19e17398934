//! The audit report: every bank line of a period with its match, the rule, who confirmed it
//! and when, as CSV (RFC 4180) or JSON.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportRow {
    pub bank_line_id: String,
    pub bank_account_id: String,
    pub booking_date: String,
    pub value_date: String,
    pub amount: String,
    pub currency: String,
    pub direction: String,
    pub counterparty_name: String,
    pub counterparty_account: String,
    pub reference: String,
    pub remittance: String,
    pub entry_id: String,
    pub line_status: String,
    pub match_id: String,
    pub match_status: String,
    pub rule: String,
    pub confidence: String,
    pub customer_id: String,
    /// Invoice numbers (or payout ids) and amounts: `F-1001=500.00;F-1002=250.00`.
    pub items: String,
    pub decided_by: String,
    pub decided_at: String,
}

pub const CSV_HEADER: [&str; 21] = [
    "bank_line_id",
    "bank_account_id",
    "booking_date",
    "value_date",
    "amount",
    "currency",
    "direction",
    "counterparty_name",
    "counterparty_account",
    "reference",
    "remittance",
    "entry_id",
    "line_status",
    "match_id",
    "match_status",
    "rule",
    "confidence",
    "customer_id",
    "items",
    "decided_by",
    "decided_at",
];

impl ReportRow {
    fn fields(&self) -> [&str; 21] {
        [
            &self.bank_line_id,
            &self.bank_account_id,
            &self.booking_date,
            &self.value_date,
            &self.amount,
            &self.currency,
            &self.direction,
            &self.counterparty_name,
            &self.counterparty_account,
            &self.reference,
            &self.remittance,
            &self.entry_id,
            &self.line_status,
            &self.match_id,
            &self.match_status,
            &self.rule,
            &self.confidence,
            &self.customer_id,
            &self.items,
            &self.decided_by,
            &self.decided_at,
        ]
    }
}

/// One CSV field: quoted when it holds a delimiter, quote or line break; a leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so spreadsheets do not run payer-written text as a formula.
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) && value.parse::<rust_decimal::Decimal>().is_err() {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

pub fn csv_line(fields: &[&str]) -> String {
    let mut line = fields.iter().map(|f| field(f)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

pub fn csv(rows: &[ReportRow]) -> String {
    let mut out = csv_line(&CSV_HEADER);
    for row in rows {
        out.push_str(&csv_line(&row.fields()));
    }
    out
}

pub fn json(rows: &[ReportRow]) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(rows)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row() -> ReportRow {
        ReportRow {
            bank_line_id: "bln_1".into(),
            amount: "1500.00".into(),
            currency: "MXN".into(),
            counterparty_name: "Acme, S.A. \"Norte\"".into(),
            remittance: "=HYPERLINK(\"x\")".into(),
            items: "F-1001=1500.00".into(),
            ..ReportRow {
                bank_line_id: String::new(),
                bank_account_id: String::new(),
                booking_date: String::new(),
                value_date: String::new(),
                amount: String::new(),
                currency: String::new(),
                direction: String::new(),
                counterparty_name: String::new(),
                counterparty_account: String::new(),
                reference: String::new(),
                remittance: String::new(),
                entry_id: String::new(),
                line_status: String::new(),
                match_id: String::new(),
                match_status: String::new(),
                rule: String::new(),
                confidence: String::new(),
                customer_id: String::new(),
                items: String::new(),
                decided_by: String::new(),
                decided_at: String::new(),
            }
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
        let text = csv(&[row()]);
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next().unwrap().split(',').count(), 21);
        let data = lines.next().unwrap();
        assert!(data.starts_with("bln_1,,,,1500.00,MXN,,\"Acme, S.A. \"\"Norte\"\"\""), "{data}");
        assert!(data.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{data}");
        assert_eq!(field("-12.50"), "-12.50");
    }

    #[test]
    fn json_keeps_every_field() {
        let value: serde_json::Value = serde_json::from_str(&json(&[row()]).unwrap()).unwrap();
        assert_eq!(value[0]["counterparty_name"], "Acme, S.A. \"Norte\"");
        assert_eq!(value[0].as_object().unwrap().len(), 21);
    }
}

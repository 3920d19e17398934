//! CSV exports, read through a column mapping saved per bank account: banks that offer no
//! standard format at least export a spreadsheet, each its own way.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::statement::{BankLine, Direction, ParseError, Statement, collapse, parse_amount, shorten};

/// How one bank's CSV export is laid out. Columns are named by their header text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvMapping {
    /// `,` or `;` (common where the decimal separator is a comma) or a tab.
    pub delimiter: char,
    /// chrono format of the dates, e.g. `%Y-%m-%d` or `%d/%m/%Y`.
    pub date_format: String,
    pub booking_date: String,
    #[serde(default)]
    pub value_date: String,
    /// One signed amount column (negative = money out)...
    #[serde(default)]
    pub amount: String,
    /// ... or separate columns for money in and out.
    #[serde(default)]
    pub credit: String,
    #[serde(default)]
    pub debit: String,
    /// A currency column, or the account's currency for every line.
    #[serde(default)]
    pub currency: String,
    pub default_currency: String,
    #[serde(default)]
    pub counterparty_name: String,
    #[serde(default)]
    pub counterparty_account: String,
    #[serde(default)]
    pub reference: String,
    #[serde(default)]
    pub remittance: String,
    #[serde(default)]
    pub entry_id: String,
}

impl CsvMapping {
    /// What a mapping must say before it is saved; errors name the field.
    pub fn check(&self) -> Result<(), (String, String)> {
        let invalid = |field: &str, reason: &str| Err((field.to_owned(), reason.to_owned()));
        if ![',', ';', '\t', '|'].contains(&self.delimiter) {
            return invalid("delimiter", "must be a comma, semicolon, tab or bar");
        }
        if self.booking_date.trim().is_empty() {
            return invalid("booking_date", "is required");
        }
        if !date_format_works(&self.date_format) {
            return invalid("date_format", "must be a date format like %Y-%m-%d or %d/%m/%Y");
        }
        match (self.amount.trim().is_empty(), self.credit.trim().is_empty(), self.debit.trim().is_empty()) {
            (false, true, true) | (true, false, false) => {}
            _ => return invalid("amount", "name either one signed amount column or both credit and debit columns"),
        }
        if self.default_currency.len() != 3 || !self.default_currency.chars().all(|c| c.is_ascii_uppercase()) {
            return invalid("default_currency", "must be an ISO 4217 code like MXN");
        }
        Ok(())
    }
}

/// Whether a chrono date format formats a date and reads it back. Checked item by item first:
/// formatting with an invalid item would fail inside `to_string`, which panics.
fn date_format_works(format: &str) -> bool {
    use chrono::format::{Item, StrftimeItems};
    use std::fmt::Write;
    if format.is_empty() || format.len() > 40 || StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
        return false;
    }
    let Some(day) = NaiveDate::from_ymd_opt(2026, 11, 23) else { return false };
    let mut text = String::new();
    if write!(text, "{}", day.format_with_items(StrftimeItems::new(format))).is_err() {
        return false;
    }
    NaiveDate::parse_from_str(&text, format) == Ok(day)
}

/// Split one CSV record (RFC 4180 quoting: `"a ""b"", c"`); `None` when a quote is left open.
fn fields(line: &str, delimiter: char) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, c) if c == delimiter => out.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    out.push(field);
    Some(out)
}

/// Logical records: a quoted field may span lines.
fn records(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (i, line) in text.lines().enumerate() {
        if current.is_empty() {
            start = i + 1;
        } else {
            current.push('\n');
        }
        current.push_str(line.trim_end_matches('\r'));
        if current.matches('"').count().is_multiple_of(2) {
            out.push((start, std::mem::take(&mut current)));
        }
    }
    if !current.is_empty() {
        out.push((start, current));
    }
    out
}

/// Parse a CSV export with its mapping into one statement for `account`.
pub fn parse(input: &[u8], mapping: &CsvMapping, account: &str, statement_id: &str) -> Result<Statement, ParseError> {
    mapping.check().map_err(|(field, reason)| ParseError::new(format!("mapping.{field}"), reason))?;
    let text = String::from_utf8_lossy(input);
    let text = text.trim_start_matches('\u{feff}');
    let mut rows = records(text).into_iter().filter(|(_, r)| !r.trim().is_empty());
    let (_, header) = rows.next().ok_or_else(|| ParseError::new("line 1", "the file is empty"))?;
    let header = fields(&header, mapping.delimiter).ok_or_else(|| ParseError::new("line 1", "an open quote"))?;
    let column = |name: &str, field: &str| -> Result<Option<usize>, ParseError> {
        if name.trim().is_empty() {
            return Ok(None);
        }
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name.trim()))
            .map(Some)
            .ok_or_else(|| ParseError::new("line 1", format!("no column `{}` (mapping.{field})", shorten(name))))
    };
    let booking = column(&mapping.booking_date, "booking_date")?.unwrap_or(0);
    let value = column(&mapping.value_date, "value_date")?;
    let amount = column(&mapping.amount, "amount")?;
    let credit = column(&mapping.credit, "credit")?;
    let debit = column(&mapping.debit, "debit")?;
    let currency = column(&mapping.currency, "currency")?;
    let name = column(&mapping.counterparty_name, "counterparty_name")?;
    let account_col = column(&mapping.counterparty_account, "counterparty_account")?;
    let reference = column(&mapping.reference, "reference")?;
    let remittance = column(&mapping.remittance, "remittance")?;
    let entry = column(&mapping.entry_id, "entry_id")?;

    let mut lines = Vec::new();
    for (number, record) in rows {
        let at = format!("line {number}");
        let row = fields(&record, mapping.delimiter).ok_or_else(|| ParseError::new(&at, "an open quote"))?;
        let cell = |i: Option<usize>| i.and_then(|i| row.get(i)).map(|s| s.trim().to_owned()).unwrap_or_default();
        let date = |raw: String, what: &str| {
            NaiveDate::parse_from_str(&raw, &mapping.date_format).map_err(|_| {
                ParseError::new(&at, format!("`{}` is not a {what} in {}", shorten(&raw), mapping.date_format))
            })
        };
        let booking_date = date(cell(Some(booking)), "date")?;
        let value_date = match cell(value) {
            v if v.is_empty() => None,
            v => Some(date(v, "value date")?),
        };
        let (amount, direction) = match amount {
            Some(_) => {
                let raw = cell(amount);
                let negative = raw.starts_with('-') || (raw.starts_with('(') && raw.ends_with(')'));
                let digits = raw.trim_start_matches('-').trim_start_matches('(').trim_end_matches(')');
                let value = parse_amount(&digits.replace([' ', '\''], ""), &at)?;
                (value, if negative { Direction::Debit } else { Direction::Credit })
            }
            None => {
                let (c, d) = (cell(credit), cell(debit));
                match (c.is_empty(), d.is_empty()) {
                    (false, true) => (parse_amount(&c, &at)?, Direction::Credit),
                    (true, false) => (parse_amount(&d, &at)?, Direction::Debit),
                    _ => return Err(ParseError::new(&at, "needs exactly one of the credit and debit columns")),
                }
            }
        };
        if amount == Decimal::ZERO {
            return Err(ParseError::new(&at, "the amount is zero"));
        }
        let currency = match cell(currency) {
            c if c.is_empty() => mapping.default_currency.clone(),
            c if c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => c.to_ascii_uppercase(),
            c => return Err(ParseError::new(&at, format!("`{}` is not a currency", shorten(&c)))),
        };
        let entry_id = match cell(entry) {
            e if e.is_empty() => number.to_string(),
            e => e,
        };
        lines.push(BankLine {
            booking_date,
            value_date,
            amount,
            currency,
            direction,
            counterparty_name: collapse(&cell(name)),
            counterparty_account: cell(account_col).replace(' ', ""),
            end_to_end_id: String::new(),
            reference: cell(reference),
            remittance: collapse(&cell(remittance)),
            bank_code: String::new(),
            statement_id: statement_id.to_owned(),
            entry_id,
        });
    }
    Ok(Statement {
        format: "csv".to_owned(),
        statement_id: statement_id.to_owned(),
        account: account.to_owned(),
        currency: mapping.default_currency.clone(),
        lines,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn mapping() -> CsvMapping {
        CsvMapping {
            delimiter: ';',
            date_format: "%d/%m/%Y".into(),
            booking_date: "Fecha".into(),
            value_date: String::new(),
            amount: "Importe".into(),
            credit: String::new(),
            debit: String::new(),
            currency: String::new(),
            default_currency: "MXN".into(),
            counterparty_name: "Ordenante".into(),
            counterparty_account: "Cuenta".into(),
            reference: "Referencia".into(),
            remittance: "Concepto".into(),
            entry_id: "Folio".into(),
        }
    }

    const EXPORT: &str = "\u{feff}Fecha;Importe;Ordenante;Cuenta;Referencia;Concepto;Folio\r\n\
        03/12/2026;1234,50;ACME SA DE CV;0121 8000 1234 5678 90;RF18I0001;\"Pago factura F-1001; gracias\";A1\r\n\
        04/12/2026;-99,00;Comisión;;;\"cargo \"\"mensual\"\"\";A2\r\n\
        \r\n\
        05/12/2026;10;\"Varios\nen dos líneas\";;;;\r\n";

    #[test]
    fn an_export_is_read_through_its_mapping() {
        let s = parse(EXPORT.as_bytes(), &mapping(), "012180001234567890", "upload-1").unwrap();
        assert_eq!(s.lines.len(), 3);
        let first = &s.lines[0];
        assert_eq!(first.booking_date, NaiveDate::from_ymd_opt(2026, 12, 3).unwrap());
        assert_eq!((first.amount.to_string().as_str(), first.direction), ("1234.50", Direction::Credit));
        assert_eq!(first.counterparty_account, "012180001234567890");
        assert_eq!(
            (first.reference.as_str(), first.remittance.as_str()),
            ("RF18I0001", "Pago factura F-1001; gracias")
        );
        assert_eq!(first.entry_id, "A1");
        let fee = &s.lines[1];
        assert_eq!((fee.amount.to_string().as_str(), fee.direction), ("99.00", Direction::Debit));
        assert_eq!(fee.remittance, "cargo \"mensual\"");
        assert_eq!(s.lines[2].counterparty_name, "Varios en dos líneas");
        assert_eq!(s.lines[2].entry_id, "5", "the line number when the bank gives no id");
    }

    #[test]
    fn separate_credit_and_debit_columns() {
        let m = CsvMapping {
            delimiter: ',',
            date_format: "%Y-%m-%d".into(),
            amount: String::new(),
            credit: "In".into(),
            debit: "Out".into(),
            booking_date: "Date".into(),
            default_currency: "USD".into(),
            counterparty_name: String::new(),
            counterparty_account: String::new(),
            reference: String::new(),
            remittance: String::new(),
            entry_id: String::new(),
            ..mapping()
        };
        let s = parse(b"Date,In,Out\n2026-12-01,5.00,\n2026-12-02,,7.25\n", &m, "acct", "s").unwrap();
        let got: Vec<_> = s.lines.iter().map(|l| (l.amount.to_string(), l.direction)).collect();
        assert_eq!(got, vec![("5.00".into(), Direction::Credit), ("7.25".into(), Direction::Debit)]);
        let err = parse(b"Date,In,Out\n2026-12-01,5.00,1.00\n", &m, "acct", "s").unwrap_err();
        assert_eq!(err.location, "line 2");
    }

    #[test]
    fn bad_files_name_the_line_and_bad_mappings_the_field() {
        let cases: [(&str, &str); 5] = [
            ("Fecha;Importe;Ordenante;Cuenta;Referencia;Concepto;Folio\n31/02/2026;5;;;;;\n", "line 2"),
            ("Fecha;Importe;Ordenante;Cuenta;Referencia;Concepto;Folio\n01/02/2026;cinco;;;;;\n", "line 2"),
            ("Fecha;Importe;Ordenante;Cuenta;Referencia;Concepto;Folio\n01/02/2026;5;\"open;;;;;\n", "line 2"),
            ("Fecha;Monto\n01/02/2026;5\n", "line 1"),
            ("", "line 1"),
        ];
        for (file, location) in cases {
            let err = parse(file.as_bytes(), &mapping(), "a", "s").unwrap_err();
            assert_eq!(err.location, location, "{file:?}: {err}");
        }
        let err = parse(b"x", &CsvMapping { delimiter: 'x', ..mapping() }, "a", "s").unwrap_err();
        assert_eq!(err.location, "mapping.delimiter");
        let err = parse(b"x", &CsvMapping { credit: "In".into(), ..mapping() }, "a", "s").unwrap_err();
        assert_eq!(err.location, "mapping.amount");
        for format in ["%Q", "%Y", "", "%d/%m"] {
            let err = parse(b"x", &CsvMapping { date_format: format.into(), ..mapping() }, "a", "s").unwrap_err();
            assert_eq!(err.location, "mapping.date_format", "{format}");
        }
    }

    #[test]
    fn random_input_never_panics() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"0123456789;,\"\n\r-./()abcFechaImporte \xc3\xa9\xff";
        for _ in 0..2000 {
            let len = usize::try_from(next() % 200).unwrap();
            let bytes: Vec<u8> =
                (0..len).map(|_| alphabet[usize::try_from(next() % alphabet.len() as u64).unwrap()]).collect();
            let mut file = b"Fecha;Importe;Ordenante;Cuenta;Referencia;Concepto;Folio\n".to_vec();
            file.extend_from_slice(&bytes);
            let _ = parse(&file, &mapping(), "a", "s");
            let _ = parse(&bytes, &mapping(), "a", "s");
        }
    }
}

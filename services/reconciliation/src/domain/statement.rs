//! A bank statement as every format is normalized to: its lines are bank transactions, one per
//! movement of money (batch entries already expanded), with a direction instead of a sign.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

/// Which way money moved on the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Money in.
    Credit,
    /// Money out.
    Debit,
}

impl Direction {
    /// The other way: a reversal of a credit is money out.
    pub fn reversed(self) -> Direction {
        match self {
            Direction::Credit => Direction::Debit,
            Direction::Debit => Direction::Credit,
        }
    }
}

/// One bank transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BankLine {
    pub booking_date: NaiveDate,
    pub value_date: Option<NaiveDate>,
    /// Always positive; the direction says which way.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// ISO 4217 code.
    pub currency: String,
    pub direction: Direction,
    pub counterparty_name: String,
    /// IBAN, CLABE or local account number of the other party, as the bank gave it.
    pub counterparty_account: String,
    pub end_to_end_id: String,
    /// The structured reference (an RF creditor reference, a payment reference).
    pub reference: String,
    /// Free text the payer wrote (unstructured remittance), whitespace collapsed.
    pub remittance: String,
    /// The bank's transaction code (BTC domain/family/subfamily, SWIFT code, BAI type code).
    pub bank_code: String,
    /// The statement's own id (camt `Stmt/Id`, MT940 `:20:`/`:28C:`, BAI2 file and group ids).
    pub statement_id: String,
    /// The bank's id for the entry this line came from (account servicer reference, line number
    /// when the bank gives none); with `statement_id` and the account, what makes a line unique.
    pub entry_id: String,
}

/// A statement: the account it is about and its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// `camt.053`, `camt.054`, `camt.052`, `mt940`, `bai2`, `csv`.
    pub format: String,
    pub statement_id: String,
    /// IBAN or account number of the account the statement is about.
    pub account: String,
    pub currency: String,
    pub lines: Vec<BankLine>,
}

/// Why a file was refused, naming where: a line number (`line 12`) or an XML element path
/// (`Document/BkToCstmrStmt/Stmt[1]/Ntry[3]/Amt`). A file with any error is refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {reason}")]
pub struct ParseError {
    pub location: String,
    pub reason: String,
}

impl ParseError {
    pub fn new(location: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { location: location.into(), reason: reason.into() }
    }
}

/// Largest amount a line may carry: anything bigger is a malformed file, not a payment.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(0xFFFF_FFFF, 0xFFFF, 0, false, 2);

/// A positive amount as banks write it (`1234.56`, `1234,56`), refused when negative, zero
/// allowed only where `allow_zero`, absurdly large or more than 4 decimals.
pub fn parse_amount(raw: &str, location: &str) -> Result<Decimal, ParseError> {
    let text = raw.trim().replace(',', ".");
    if text.is_empty() || text.len() > 30 || !text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(ParseError::new(location, format!("`{}` is not an amount", shorten(raw))));
    }
    let value: Decimal =
        text.parse().map_err(|_| ParseError::new(location, format!("`{}` is not an amount", shorten(raw))))?;
    if value.scale() > 4 || value > MAX_AMOUNT {
        return Err(ParseError::new(location, format!("`{}` is out of range", shorten(raw))));
    }
    Ok(value)
}

/// At most 40 characters of untrusted input, for error messages.
pub fn shorten(raw: &str) -> String {
    let mut s: String = raw.chars().filter(|c| !c.is_control()).take(40).collect();
    if raw.chars().count() > 40 {
        s.push('…');
    }
    s
}

/// Collapse runs of whitespace to one space and trim.
pub fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What identifies each line across statements, so an entry in two overlapping statements is
/// stored once: the bank's own entry id where it gave one (numbers of six digits or fewer are
/// positions, which differ between statements), else what the entry says. Identical lines in
/// one statement are distinct entries: the second and later get `#2`, `#3`, ..., so overlapping
/// statements holding both still store two.
pub fn entry_keys(lines: &[BankLine]) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    lines
        .iter()
        .map(|l| {
            let direction = match l.direction {
                Direction::Credit => "C",
                Direction::Debit => "D",
            };
            let positional = l.entry_id.len() <= 6 && l.entry_id.chars().all(|c| c.is_ascii_digit());
            let base = if positional {
                format!(
                    "text|{}|{}|{}|{}|{direction}|{}|{}|{}|{}|{}",
                    l.booking_date,
                    l.value_date.map(|d| d.to_string()).unwrap_or_default(),
                    l.amount.normalize(),
                    l.currency,
                    l.counterparty_account,
                    l.end_to_end_id,
                    l.reference,
                    l.remittance,
                    l.bank_code
                )
            } else {
                format!("bank|{}|{}|{}|{direction}", l.entry_id, l.booking_date, l.amount.normalize())
            };
            let count = seen.entry(base.clone()).or_insert(0);
            *count += 1;
            let keyed = if *count == 1 { base } else { format!("{base}#{count}") };
            Sha256::digest(keyed.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn amounts_as_banks_write_them() {
        assert_eq!(parse_amount("1234.56", "x").unwrap().to_string(), "1234.56");
        assert_eq!(parse_amount("1234,56", "x").unwrap().to_string(), "1234.56");
        assert_eq!(parse_amount(" 0 ", "x").unwrap().to_string(), "0");
        for bad in ["", "-5", "1e9", "12.34567", "99999999999999999999999", "1.2.3", "abc"] {
            assert!(parse_amount(bad, "line 3").is_err(), "{bad}");
        }
        assert_eq!(parse_amount("x", "line 3").unwrap_err().to_string(), "line 3: `x` is not an amount");
    }

    fn line(entry_id: &str, amount: &str) -> BankLine {
        BankLine {
            booking_date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            value_date: None,
            amount: amount.parse().unwrap(),
            currency: "EUR".into(),
            direction: Direction::Credit,
            counterparty_name: String::new(),
            counterparty_account: String::new(),
            end_to_end_id: String::new(),
            reference: String::new(),
            remittance: "invoice 7".into(),
            bank_code: String::new(),
            statement_id: "S1".into(),
            entry_id: entry_id.into(),
        }
    }

    #[test]
    fn entry_keys_follow_the_bank_and_keep_twins_apart() {
        // A bank reference identifies the entry whatever statement it comes in.
        let a = entry_keys(&[line("AAAASESS-01", "5.00")]);
        let b = entry_keys(&[line("X", "1.00"), line("AAAASESS-01", "5.00")]);
        assert_eq!(a[0], b[1]);
        // Positions do not: the same entry at another position has the same key.
        assert_eq!(entry_keys(&[line("1", "5.00")])[0], entry_keys(&[line("7", "5.00")])[0]);
        // Two identical entries in one statement are two.
        let twins = entry_keys(&[line("1", "5.00"), line("2", "5.00")]);
        assert_ne!(twins[0], twins[1]);
        // 5.0 and 5.00 are the same money.
        assert_eq!(entry_keys(&[line("1", "5.0")])[0], entry_keys(&[line("1", "5.00")])[0]);
    }

    #[test]
    fn text_is_collapsed_and_shortened() {
        assert_eq!(collapse("  a \n b\t c "), "a b c");
        assert_eq!(shorten(&"9".repeat(50)).chars().count(), 41);
    }
}

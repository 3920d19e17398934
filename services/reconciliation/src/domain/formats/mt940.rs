//! SWIFT MT940 customer statements: one or more messages, each `:20:` … `:62F:`, optionally
//! wrapped in SWIFT blocks (`{1:…}{2:…}{4:` … `-}`), normalized to [`Statement`]s.
//!
//! Parsing is two steps: the text is cut into messages of fields (a tag line and its
//! continuation lines, each remembering its line number), then every message is turned into a
//! statement. Any error refuses the whole file.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use crate::domain::statement::{BankLine, Direction, ParseError, Statement, collapse, parse_amount, shorten};

/// Parse every statement in an MT940 file. Balances are read but not enforced: real exports
/// (two of the three public samples among them) carry lines that do not add up from the opening
/// to the closing balance, and their lines are still the bank's record of what moved.
pub fn parse(input: &[u8]) -> Result<Vec<Statement>, ParseError> {
    parse_with(input, false)
}

/// As [`parse`], and also refuse a statement whose lines do not add up from its opening to its
/// closing balance, naming the closing balance's line.
pub fn parse_balanced(input: &[u8]) -> Result<Vec<Statement>, ParseError> {
    parse_with(input, true)
}

/// The parser, with or without the balance check.
fn parse_with(input: &[u8], check_balances: bool) -> Result<Vec<Statement>, ParseError> {
    let text = decode(input);
    let messages = split_messages(&text)?;
    if messages.is_empty() {
        return Err(ParseError::new("line 1", "no MT940 statement (no `:20:` field) found"));
    }
    messages.iter().map(|m| build_statement(m, check_balances)).collect()
}

/// UTF-8 when valid; otherwise Latin-1, where every byte is its own code point, so any byte
/// string decodes.
fn decode(input: &[u8]) -> String {
    let text = match std::str::from_utf8(input) {
        Ok(s) => s.to_owned(),
        Err(_) => input.iter().map(|&b| char::from(b)).collect(),
    };
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

fn at(line: usize) -> String {
    format!("line {line}")
}

/// A tag and its text: `lines[0]` is what follows `:tag:`, the rest are continuation lines.
#[derive(Debug)]
struct Field {
    tag: String,
    line: usize,
    lines: Vec<String>,
}

#[derive(Debug)]
struct Message {
    /// Line of the `:20:` that opened it.
    line: usize,
    fields: Vec<Field>,
}

/// `:20:foo` → `("20", "foo")`; a tag is two digits and an optional capital letter.
fn split_tag(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(':')?;
    let end = rest.find(':')?;
    let tag = rest.get(..end)?;
    let b = tag.as_bytes();
    let ok = matches!(b.len(), 2 | 3)
        && b.iter().take(2).all(u8::is_ascii_digit)
        && b.get(2).is_none_or(u8::is_ascii_uppercase);
    ok.then(|| (tag, rest.get(end + 1..).unwrap_or("")))
}

/// Cut the text into messages. A message starts at `:20:` and ends at the next `:20:`, a `-`
/// or `-}` line, a SWIFT block header or the end of the file. Lines outside a message that are
/// not tags (bank headers such as `ABNANL2A` / `940`, explanatory text) are skipped.
fn split_messages(text: &str) -> Result<Vec<Message>, ParseError> {
    let mut messages = Vec::new();
    let mut current: Option<Message> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let mut line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with('{') {
            // `{1:…}{2:…}{4:` opens a message body; `{5:…}` trailers carry nothing we need.
            messages.extend(current.take());
            match line.find("{4:").and_then(|pos| line.get(pos + 3..)) {
                Some(rest) if !rest.trim().is_empty() => line = rest,
                _ => continue,
            }
        }
        if line.trim_end() == "-" || line.starts_with("-}") {
            messages.extend(current.take());
            continue;
        }
        if let Some((tag, rest)) = split_tag(line) {
            if tag == "20" {
                messages.extend(current.take());
                current = Some(Message { line: line_no, fields: Vec::new() });
            }
            match current.as_mut() {
                Some(m) => m.fields.push(Field { tag: tag.to_owned(), line: line_no, lines: vec![rest.to_owned()] }),
                None => {
                    return Err(ParseError::new(
                        at(line_no),
                        format!("`:{tag}:` outside a statement (a statement starts with `:20:`)"),
                    ));
                }
            }
        } else if let Some(field) = current.as_mut().and_then(|m| m.fields.last_mut()) {
            field.lines.push(line.to_owned());
        }
    }
    messages.extend(current.take());
    Ok(messages)
}

/// A signed balance from `:60F:`, `:62F:`, `:64:`, `:65:`.
#[derive(Debug)]
struct Balance {
    currency: String,
    /// Negative for a debit balance.
    amount: Decimal,
}

/// `C190825EUR1111,10`: mark, YYMMDD, currency, amount.
fn parse_balance(text: &str, line: usize) -> Result<Balance, ParseError> {
    let loc = at(line);
    let text = text.trim();
    let bad = || ParseError::new(at(line), format!("`{}` is not a balance", shorten(text)));
    let mark = text.get(..1).ok_or_else(bad)?;
    let date = text.get(1..7).ok_or_else(bad)?;
    let currency = text.get(7..10).ok_or_else(bad)?;
    let amount = text.get(10..).ok_or_else(bad)?;
    parse_yymmdd(date, line)?;
    if !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ParseError::new(loc, format!("`{}` is not a currency", shorten(currency))));
    }
    let amount = parse_swift_amount(amount, line)?;
    let amount = match mark {
        "C" => amount,
        "D" => -amount,
        _ => return Err(ParseError::new(loc, format!("`{}` is not C or D", shorten(mark)))),
    };
    Ok(Balance { currency: currency.to_owned(), amount })
}

/// SWIFT amounts always carry a decimal comma (`500,` or `5,34`), never a point.
fn parse_swift_amount(raw: &str, line: usize) -> Result<Decimal, ParseError> {
    let bad = || ParseError::new(at(line), format!("`{}` is not an amount", shorten(raw)));
    let (int, frac) = raw.split_once(',').ok_or_else(bad)?;
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // Written with a point so "500," is not handed over as "500." .
    let text = if frac.is_empty() { int.to_owned() } else { format!("{int}.{frac}") };
    parse_amount(&text, &at(line))
}

/// Two-digit years follow the POSIX `%y` pivot (69 → 2069, 70 → 1970), as chrono does.
fn full_year(yy: i32) -> i32 {
    if yy < 70 { 2000 + yy } else { 1900 + yy }
}

fn two_digits(s: &str) -> Option<u32> {
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()) { s.parse().ok() } else { None }
}

fn parse_yymmdd(s: &str, line: usize) -> Result<NaiveDate, ParseError> {
    let bad = || ParseError::new(at(line), format!("`{}` is not a date (YYMMDD)", shorten(s)));
    let yy = s.get(..2).and_then(two_digits).ok_or_else(bad)?;
    let mm = s.get(2..4).and_then(two_digits).ok_or_else(bad)?;
    let dd = s.get(4..6).and_then(two_digits).ok_or_else(bad)?;
    if s.len() != 6 {
        return Err(bad());
    }
    let year = full_year(i32::try_from(yy).map_err(|_| bad())?);
    NaiveDate::from_ymd_opt(year, mm, dd).ok_or_else(bad)
}

/// The entry date has no year: take the one nearest the value date, so a line valued on
/// 1 January and booked on 31 December lands in the previous year.
fn entry_date(mmdd: &str, value: NaiveDate, line: usize) -> Result<NaiveDate, ParseError> {
    let bad = || ParseError::new(at(line), format!("`{}` is not an entry date (MMDD)", mmdd));
    let mm = mmdd.get(..2).and_then(two_digits).ok_or_else(bad)?;
    let dd = mmdd.get(2..4).and_then(two_digits).ok_or_else(bad)?;
    let year = value.year();
    [year - 1, year, year + 1]
        .into_iter()
        .filter_map(|y| NaiveDate::from_ymd_opt(y, mm, dd))
        .min_by_key(|d| (*d - value).num_days().abs())
        .ok_or_else(bad)
}

/// One `:61:` with its `:86:`.
#[derive(Debug)]
struct RawLine {
    value_date: NaiveDate,
    entry_date: Option<NaiveDate>,
    direction: Direction,
    amount: Decimal,
    /// `NTRF`, `FINT`, `N426`: the letter and the three-character code.
    type_code: String,
    customer_ref: String,
    bank_ref: Option<String>,
    info: Option<Vec<String>>,
}

/// `1908240824D5,34N426NONREF//bankref` (+ optional supplementary details on the next line,
/// which Cobro has no field for).
fn parse_statement_line(text: &str, line: usize) -> Result<RawLine, ParseError> {
    let loc = at(line);
    let fail = |what: &str| ParseError::new(at(line), format!("statement line `{}`: {what}", shorten(text)));
    let value_date = parse_yymmdd(text.get(..6).ok_or_else(|| fail("too short"))?, line)?;
    let mut rest = text.get(6..).unwrap_or("");
    let mut entry = None;
    if let Some(mmdd) = rest.get(..4).filter(|s| s.bytes().all(|b| b.is_ascii_digit())) {
        entry = Some(entry_date(mmdd, value_date, line)?);
        rest = rest.get(4..).unwrap_or("");
    }
    let (direction, after_mark) = if let Some(r) = rest.strip_prefix("RC") {
        (Direction::Credit.reversed(), r)
    } else if let Some(r) = rest.strip_prefix("RD") {
        (Direction::Debit.reversed(), r)
    } else if let Some(r) = rest.strip_prefix('C') {
        (Direction::Credit, r)
    } else if let Some(r) = rest.strip_prefix('D') {
        (Direction::Debit, r)
    } else {
        return Err(fail("no C, D, RC or RD mark after the date"));
    };
    rest = after_mark;
    // Funds code: the third letter of the currency code, when the bank gives it.
    if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        rest = rest.get(1..).unwrap_or("");
    }
    let amount_len = rest.find(|c: char| !(c.is_ascii_digit() || c == ',')).unwrap_or(rest.len());
    let amount = parse_swift_amount(rest.get(..amount_len).unwrap_or(""), line)?;
    rest = rest.get(amount_len..).unwrap_or("");
    let type_code = rest.get(..4).ok_or_else(|| fail("no transaction type"))?;
    let tb = type_code.as_bytes();
    if !matches!(tb.first(), Some(b'N' | b'F' | b'S')) || !tb.iter().skip(1).all(u8::is_ascii_alphanumeric) {
        return Err(ParseError::new(
            loc,
            format!("`{}` is not a transaction type (Nxxx, Fxxx, Sxxx)", shorten(type_code)),
        ));
    }
    rest = rest.get(4..).unwrap_or("");
    let (customer_ref, bank_ref) = match rest.split_once("//") {
        Some((c, b)) => (c, Some(b.trim()).filter(|b| !b.is_empty())),
        None => (rest, None),
    };
    Ok(RawLine {
        value_date,
        entry_date: entry,
        direction,
        amount,
        type_code: type_code.to_owned(),
        customer_ref: customer_ref.trim().to_owned(),
        bank_ref: bank_ref.map(str::to_owned),
        info: None,
    })
}

fn build_statement(msg: &Message, check_balances: bool) -> Result<Statement, ParseError> {
    let mut reference = String::new();
    let mut account: Option<String> = None;
    let mut number: Option<String> = None;
    let mut opening: Option<Balance> = None;
    let mut closing: Option<(Balance, usize)> = None;
    let mut lines: Vec<RawLine> = Vec::new();
    let mut previous_tag = "";
    for field in &msg.fields {
        let first = field.lines.first().map(String::as_str).unwrap_or("");
        let loc = at(field.line);
        match field.tag.as_str() {
            "20" => {
                reference = first.trim().to_owned();
                if reference.is_empty() {
                    return Err(ParseError::new(loc, "empty `:20:` transaction reference"));
                }
            }
            "25" => {
                if account.is_some() {
                    return Err(ParseError::new(loc, "second `:25:` in one statement"));
                }
                let a = first.trim();
                if a.is_empty() {
                    return Err(ParseError::new(loc, "empty `:25:` account"));
                }
                account = Some(a.to_owned());
            }
            "28" | "28C" => number = Some(first.trim().to_owned()),
            "60F" | "60M" => {
                if opening.is_some() {
                    return Err(ParseError::new(loc, "second opening balance in one statement"));
                }
                opening = Some(parse_balance(first, field.line)?);
            }
            "61" => {
                if opening.is_none() {
                    return Err(ParseError::new(loc, "`:61:` before the opening balance `:60F:`"));
                }
                if closing.is_some() {
                    return Err(ParseError::new(loc, "`:61:` after the closing balance `:62F:`"));
                }
                lines.push(parse_statement_line(first.trim_end(), field.line)?);
            }
            "86" => {
                // Only right after its `:61:`; elsewhere it is about the statement (Danske
                // repeats the account holder before the lines), which Cobro does not keep.
                if previous_tag == "61"
                    && let Some(line) = lines.last_mut()
                {
                    line.info = Some(field.lines.clone());
                }
            }
            "62F" | "62M" => {
                if closing.is_some() {
                    return Err(ParseError::new(loc, "second closing balance in one statement"));
                }
                closing = Some((parse_balance(first, field.line)?, field.line));
            }
            "64" | "65" => {
                parse_balance(first, field.line)?;
            }
            // :21:, :34F:, :13D:, :90D: and others carry nothing Cobro uses.
            _ => {}
        }
        previous_tag = field.tag.as_str();
    }
    let start = at(msg.line);
    let account = account.ok_or_else(|| ParseError::new(&start, "statement has no `:25:` account"))?;
    let opening = opening.ok_or_else(|| ParseError::new(&start, "statement has no `:60F:` opening balance"))?;
    let (closing, closing_line) =
        closing.ok_or_else(|| ParseError::new(&start, "statement has no `:62F:` closing balance"))?;
    if closing.currency != opening.currency {
        return Err(ParseError::new(
            at(closing_line),
            format!("closing balance in {}, opening in {}", closing.currency, opening.currency),
        ));
    }
    if check_balances {
        let overflow = || ParseError::new(at(closing_line), "sum of the lines out of range");
        let mut sum = opening.amount;
        for line in &lines {
            let signed = match line.direction {
                Direction::Credit => line.amount,
                Direction::Debit => -line.amount,
            };
            sum = sum.checked_add(signed).ok_or_else(overflow)?;
        }
        if sum != closing.amount {
            return Err(ParseError::new(
                at(closing_line),
                format!(
                    "closing balance {} does not match opening balance {} plus the lines ({})",
                    closing.amount, opening.amount, sum
                ),
            ));
        }
    }
    let statement_id = match number.filter(|n| !n.is_empty()) {
        Some(n) => format!("{reference}/{n}"),
        None => reference,
    };
    let currency = opening.currency;
    let lines = lines
        .into_iter()
        .enumerate()
        .map(|(index, raw)| normalize_line(raw, index + 1, &currency, &statement_id))
        .collect();
    Ok(Statement { format: "mt940".to_owned(), statement_id, account, currency, lines })
}

fn normalize_line(raw: RawLine, position: usize, currency: &str, statement_id: &str) -> BankLine {
    let details = raw.info.as_deref().map(parse_details).unwrap_or_default();
    let mut reference = if raw.customer_ref.eq_ignore_ascii_case("NONREF") { String::new() } else { raw.customer_ref };
    if reference.is_empty() {
        reference = details.reference;
    }
    BankLine {
        booking_date: raw.entry_date.unwrap_or(raw.value_date),
        value_date: Some(raw.value_date),
        amount: raw.amount,
        currency: currency.to_owned(),
        direction: raw.direction,
        counterparty_name: details.name,
        counterparty_account: details.account,
        end_to_end_id: details.end_to_end_id,
        reference,
        remittance: details.remittance,
        bank_code: raw.type_code,
        statement_id: statement_id.to_owned(),
        entry_id: raw.bank_ref.unwrap_or_else(|| position.to_string()),
    }
}

/// What `:86:` says about the counterparty and the payment.
#[derive(Debug, Default, PartialEq)]
struct Details {
    name: String,
    account: String,
    remittance: String,
    end_to_end_id: String,
    reference: String,
}

fn parse_details(info: &[String]) -> Details {
    // Structured layouts wrap at a fixed width, mid-word, so their lines join without a space.
    let joined = info.concat();
    german_details(&joined)
        .or_else(|| dutch_details(&joined))
        .unwrap_or_else(|| Details { remittance: collapse(&info.join(" ")), ..Details::default() })
}

/// `166?00GUTSCHRIFT?20EREF+…?21SVWZ+…?31DE…?32NAME` (German banks): `?20`–`?29` and
/// `?60`–`?63` are the purpose text, `?31` the account, `?32`/`?33` the name.
fn german_details(text: &str) -> Option<Details> {
    let (prefix, body) = text.split_once('?')?;
    let prefix = prefix.trim();
    if !(prefix.is_empty() || (prefix.len() == 3 && prefix.bytes().all(|b| b.is_ascii_digit()))) {
        return None;
    }
    let mut fields: Vec<(u32, String)> = Vec::new();
    for piece in body.split('?') {
        match piece.get(..2).and_then(two_digits) {
            Some(key) => fields.push((key, piece.get(2..).unwrap_or("").to_owned())),
            // A literal `?` inside a value.
            None => match fields.last_mut() {
                Some((_, value)) => {
                    value.push('?');
                    value.push_str(piece);
                }
                None => return None,
            },
        }
    }
    if fields.is_empty() {
        return None;
    }
    let pick =
        |keys: &[u32]| -> String { fields.iter().filter(|(k, _)| keys.contains(k)).map(|(_, v)| v.as_str()).collect() };
    let remittance = collapse(&pick(&[20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 60, 61, 62, 63]));
    let end_to_end_id = sepa_value(&remittance, "EREF+");
    Some(Details {
        name: collapse(&pick(&[32, 33])),
        account: collapse(&pick(&[31])),
        remittance,
        end_to_end_id,
        reference: String::new(),
    })
}

/// The value of a German SEPA keyword (`EREF+…`) up to the next keyword.
fn sepa_value(text: &str, key: &str) -> String {
    const KEYS: [&str; 10] = ["EREF+", "KREF+", "MREF+", "CRED+", "DEBT+", "SVWZ+", "ABWA+", "ABWE+", "COAM+", "OAMT+"];
    let Some(start) = text.find(key).map(|p| p + key.len()) else {
        return String::new();
    };
    let rest = text.get(start..).unwrap_or("");
    let end = KEYS.iter().filter_map(|k| rest.find(k)).min().unwrap_or(rest.len());
    let value = rest.get(..end).unwrap_or("").trim();
    if value == "NOTPROVIDED" { String::new() } else { value.to_owned() }
}

/// `/TRTP/SEPA OVERBOEKING/IBAN/NL…/BIC/…/NAME/…/REMI/…/EREF/…` (ABN AMRO, ING, Rabobank).
fn dutch_details(text: &str) -> Option<Details> {
    // Longest first, so `CDTRREFTP` is not read as `CDTRREF`.
    const KEYS: [&str; 21] = [
        "CDTRREFTP",
        "CDTRREF",
        "TRTP",
        "IBAN",
        "BIC",
        "NAME",
        "REMI",
        "EREF",
        "CSID",
        "MARF",
        "ORDP",
        "BENM",
        "ADDR",
        "RTRN",
        "ISDT",
        "PURP",
        "ULTC",
        "ULTD",
        "CNTP",
        "SVCL",
        "PREF",
    ];
    let text = text.trim();
    if !text.starts_with('/') {
        return None;
    }
    // Every `/KEY/`, with where its value starts.
    let mut marks: Vec<(usize, &str, usize)> = Vec::new();
    let mut from = 0;
    for (pos, _) in text.match_indices('/') {
        if pos < from {
            continue;
        }
        let after = text.get(pos + 1..).unwrap_or("");
        if let Some(key) = KEYS.iter().find(|k| after.strip_prefix(**k).is_some_and(|r| r.starts_with('/'))) {
            let value_start = pos + key.len() + 2;
            marks.push((pos, key, value_start));
            from = value_start;
        }
    }
    if marks.first().is_none_or(|(pos, _, _)| *pos != 0) {
        return None;
    }
    let value = |key: &str| -> Option<String> {
        let i = marks.iter().position(|(_, k, _)| *k == key)?;
        let (_, _, start) = marks.get(i)?;
        let end = marks.get(i + 1).map_or(text.len(), |(p, _, _)| *p);
        Some(text.get(*start..end)?.to_owned())
    };
    let clean = |v: &str| collapse(v.trim_matches('/'));
    let mut details = Details::default();
    if let Some(cntp) = value("CNTP") {
        // account/BIC/name/city
        let mut parts = cntp.split('/');
        details.account = clean(parts.next().unwrap_or(""));
        details.name = clean(parts.nth(1).unwrap_or(""));
    }
    if let Some(iban) = value("IBAN") {
        details.account = clean(&iban);
    }
    if let Some(name) = value("NAME") {
        details.name = clean(&name);
    }
    if let Some(eref) = value("EREF") {
        let eref = clean(&eref);
        if eref != "NOTPROVIDED" {
            details.end_to_end_id = eref;
        }
    }
    details.remittance = match value("REMI") {
        Some(remi) => {
            let remi = remi.trim_start_matches('/');
            if let Some(r) = remi.strip_prefix("STRD/CUR/") {
                // A structured (creditor) reference rather than free text.
                details.reference = clean(r);
                String::new()
            } else {
                clean(remi.strip_prefix("USTD/").unwrap_or(remi))
            }
        }
        None => collapse(text),
    };
    Some(details)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::path::{Path, PathBuf};

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/statements/mt940/");

    fn data_dir() -> PathBuf {
        let dir = Path::new(DATA).canonicalize().expect("MT940 test data directory must exist");
        assert!(dir.ends_with("shared/testdata/statements/mt940"), "{}", dir.display());
        dir
    }

    /// Every `.sta` with its expected parse, or `None` for the files that are broken on purpose.
    fn samples() -> Vec<(String, Vec<u8>, Option<Value>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(data_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("sta") {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let json = path.with_extension("json");
            let expected = if name.contains("broken") {
                None
            } else {
                let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("{}: {e}", json.display()));
                Some(serde_json::from_str(&text).unwrap())
            };
            out.push((name, std::fs::read(&path).unwrap(), expected));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(out.iter().filter(|s| s.2.is_some()).count() >= 3, "valid samples missing");
        assert!(out.iter().any(|s| s.2.is_none()), "broken sample missing");
        out
    }

    fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
        v.get(key).and_then(Value::as_str)
    }

    fn dec(v: &Value, key: &str) -> Decimal {
        str_at(v, key).unwrap_or_else(|| panic!("no {key} in {v}")).parse().unwrap()
    }

    fn date(v: &Value, key: &str) -> Option<NaiveDate> {
        str_at(v, key).map(|s| s.parse().unwrap())
    }

    /// mt940-rs replaces characters outside the SWIFT set with `.`; do the same to ours.
    fn swift_chars(s: &str) -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || " /-?:().,'+{}\n\r".contains(c) { c } else { '.' }).collect()
    }

    fn signed(balance: &Value) -> Decimal {
        let amount = dec(balance, "amount");
        if str_at(balance, "debit_credit_indicator") == Some("Debit") { -amount } else { amount }
    }

    /// Compare our statements with mt940-rs's, field by field.
    fn compare(name: &str, ours: &[Statement], expected: &Value) {
        let expected = expected.as_array().unwrap();
        assert_eq!(ours.len(), expected.len(), "{name}: number of statements");
        for (s, (mine, theirs)) in ours.iter().zip(expected).enumerate() {
            let ctx = format!("{name} statement {s}");
            let mut id = str_at(theirs, "transaction_ref_no").unwrap().to_owned();
            for key in ["statement_no", "sequence_no"] {
                if let Some(part) = str_at(theirs, key) {
                    id = format!("{id}/{part}");
                }
            }
            assert_eq!(mine.format, "mt940");
            assert_eq!(mine.statement_id, id, "{ctx}");
            assert_eq!(Some(mine.account.as_str()), str_at(theirs, "account_id"), "{ctx}");
            let currency = str_at(&theirs["opening_balance"], "iso_currency_code");
            assert_eq!(Some(mine.currency.as_str()), currency, "{ctx}");
            let lines = theirs["statement_lines"].as_array().unwrap();
            assert_eq!(mine.lines.len(), lines.len(), "{ctx}: number of lines");
            for (i, (line, want)) in mine.lines.iter().zip(lines).enumerate() {
                let ctx = format!("{ctx} line {i}");
                assert_eq!(line.amount, dec(want, "amount"), "{ctx}");
                let direction = match str_at(want, "ext_debit_credit_indicator").unwrap() {
                    "Credit" | "ReverseDebit" => Direction::Credit,
                    "Debit" | "ReverseCredit" => Direction::Debit,
                    other => panic!("{ctx}: unknown indicator {other}"),
                };
                assert_eq!(line.direction, direction, "{ctx}");
                let value_date = date(want, "value_date");
                assert_eq!(line.value_date, value_date, "{ctx}");
                assert_eq!(Some(line.booking_date), date(want, "entry_date").or(value_date), "{ctx}");
                let customer_ref = str_at(want, "customer_ref").unwrap_or("");
                let customer_ref = if customer_ref == "NONREF" { "" } else { customer_ref };
                assert_eq!(swift_chars(&line.reference), customer_ref.trim(), "{ctx}");
                let entry_id = str_at(want, "bank_ref").map_or((i + 1).to_string(), str::to_owned);
                assert_eq!(line.entry_id, entry_id, "{ctx}");
                // Known codes are a string, others `{"NonStandard": "426"}`.
                let code = match &want["transaction_type_ident_code"] {
                    Value::String(c) => c.clone(),
                    Value::Object(o) => o.values().next().unwrap().as_str().unwrap().to_owned(),
                    other => panic!("{ctx}: code {other}"),
                };
                assert_eq!(line.bank_code.get(1..), Some(code.as_str()), "{ctx}");
                let info = str_at(want, "information_to_account_owner").unwrap_or("");
                // Our tab became a space when collapsed; theirs became a `.`.
                let (mine_text, theirs_text) = (swift_chars(&line.remittance), collapse(info));
                let same = mine_text.chars().count() == theirs_text.chars().count()
                    && mine_text.chars().zip(theirs_text.chars()).all(|(m, t)| m == t || (m == ' ' && t == '.'));
                assert!(same, "{ctx}: {mine_text:?} vs {theirs_text:?}");
                assert_eq!(line.currency, mine.currency, "{ctx}");
                assert_eq!(line.statement_id, mine.statement_id, "{ctx}");
            }
        }
    }

    #[test]
    fn sample_files_match_mt940_rs() {
        for (name, bytes, expected) in samples() {
            let Some(expected) = expected else { continue };
            let ours = parse_with(&bytes, false).unwrap_or_else(|e| panic!("{name}: {e}"));
            compare(&name, &ours, &expected);
        }
    }

    /// Some samples carry made-up balances: whether the file is accepted must follow from the
    /// JSON's own numbers, and a refusal must name the `:62F:` line.
    #[test]
    fn sample_files_are_refused_exactly_when_unbalanced() {
        for (name, bytes, expected) in samples() {
            let Some(expected) = expected else { continue };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let closing_lines: Vec<usize> = text
                .split('\n')
                .enumerate()
                .filter(|(_, l)| l.starts_with(":62F:") || l.starts_with(":62M:"))
                .map(|(i, _)| i + 1)
                .collect();
            let unbalanced = expected.as_array().unwrap().iter().enumerate().find(|(_, s)| {
                let mut sum = signed(&s["opening_balance"]);
                for l in s["statement_lines"].as_array().unwrap() {
                    match str_at(l, "ext_debit_credit_indicator").unwrap() {
                        "Credit" | "ReverseDebit" => sum += dec(l, "amount"),
                        _ => sum -= dec(l, "amount"),
                    }
                }
                sum != signed(&s["closing_balance"])
            });
            // Every sample parses; only the balanced reading refuses the unbalanced ones.
            assert!(parse(&bytes).is_ok(), "{name}");
            match (parse_balanced(&bytes), unbalanced) {
                (Ok(ours), None) => compare(&name, &ours, &expected),
                (Err(e), Some((s, _))) => {
                    assert_eq!(e.location, format!("line {}", closing_lines[s]), "{name}: {e}");
                    assert!(e.reason.contains("does not match"), "{name}: {e}");
                }
                (got, want) => panic!("{name}: got {got:?}, unbalanced statement {want:?}"),
            }
        }
    }

    #[test]
    fn broken_file_is_refused_naming_the_line() {
        let bytes = std::fs::read(data_dir().join("jejik__knab_broken.sta")).unwrap();
        let err = parse(&bytes).unwrap_err();
        // `:61:1407290729C500NTRF…`: the amount has no decimal comma.
        assert_eq!(err.to_string(), "line 17: `500` is not an amount");
    }

    const BASIC: &str = "{1:F01BANKBEBBAXXX0000000000}{2:O9400000000000BANKBEBBAXXX00000000000000000000N}{4:\r
:20:REF1\r
:25:NL91ABNA0417164300\r
:28C:5/1\r
:60F:C231228EUR100,00\r
:61:2401021231C50,00NTRFINV-1//B1\r
:86:first line\r
 second   line\r
:61:231229RC10,NTRFNONREF\r
:61:231230RD5,5NCHGNONREF\r
:62F:C240102EUR145,50\r
-}{5:{CHK:ABC}}\r
";

    #[test]
    fn year_end_entry_date_and_reversals() {
        let statements = parse(BASIC.as_bytes()).unwrap();
        let [s] = statements.as_slice() else { panic!("{statements:?}") };
        assert_eq!(s.statement_id, "REF1/5/1");
        assert_eq!(s.account, "NL91ABNA0417164300");
        assert_eq!(s.currency, "EUR");
        let [a, b, c] = s.lines.as_slice() else { panic!("{s:?}") };
        assert_eq!(a.value_date, NaiveDate::from_ymd_opt(2024, 1, 2));
        assert_eq!(a.booking_date, NaiveDate::from_ymd_opt(2023, 12, 31).unwrap());
        assert_eq!((a.direction, a.reference.as_str(), a.entry_id.as_str()), (Direction::Credit, "INV-1", "B1"));
        assert_eq!(a.remittance, "first line second line");
        assert_eq!(a.bank_code, "NTRF");
        // RC: a credit reversed is money out; RD the other way.
        assert_eq!((b.direction, b.amount, b.reference.as_str()), (Direction::Debit, Decimal::new(10, 0), ""));
        assert_eq!((c.direction, c.amount, c.entry_id.as_str()), (Direction::Credit, Decimal::new(55, 1), "3"));
        // The other way across the year end: valued 31 December, booked 2 January.
        let text = BASIC.replace(":61:2401021231C", ":61:2312310102C");
        let lines = &parse(text.as_bytes()).unwrap()[0].lines;
        assert_eq!(lines[0].booking_date, NaiveDate::from_ymd_opt(2024, 1, 2).unwrap());
    }

    #[test]
    fn balance_mismatch_is_refused() {
        let text = BASIC.replace(":62F:C240102EUR145,50", ":62F:C240102EUR145,51");
        assert!(parse(text.as_bytes()).is_ok(), "read without the check");
        let err = parse_balanced(text.as_bytes()).unwrap_err();
        assert_eq!(err.location, "line 11");
        assert!(err.reason.contains("does not match"), "{err}");
    }

    #[test]
    fn bad_input_is_refused_with_its_line() {
        let cases = [
            (":61:2401021231C50,00", ":61:2402301231C50,00", "line 6"), // 30 February
            ("C50,00NTRF", "C50.00NTRF", "line 6"),                     // decimal point
            ("C50,00NTRF", "X50,00NTRF", "line 6"),                     // no mark
            ("C50,00NTRF", "C50,00XTRF", "line 6"),                     // bad type
            (":25:NL91ABNA0417164300\r\n", "", "line 2"),               // no account
            (":60F:C231228EUR100,00", ":60F:C231228EUR1O0,00", "line 5"),
            (":60F:C231228EUR100,00\r\n", "", "line 5"), // :61: before :60F:
            (":62F:C240102EUR145,50\r\n", "", "line 2"), // no closing balance
            (":20:REF1", ":21:REF1", "line 2"),          // no :20:
            (":62F:C240102EUR", ":62F:C240102USD", "line 11"), // currency changes
        ];
        for (from, to, location) in cases {
            let text = BASIC.replacen(from, to, 1);
            assert_ne!(text, BASIC, "{from}");
            let err = parse(text.as_bytes()).unwrap_err();
            assert_eq!(err.location, location, "{from} → {to}: {err}");
        }
        assert!(parse(b"").is_err());
        assert!(parse(b"hello\nworld").is_err());
    }

    #[test]
    fn messages_latin1_and_statement_info() {
        // Two messages separated by `-`, Latin-1 bytes, a `:86:` before any `:61:` ignored,
        // and no `:28C:`.
        let mut bytes = b":20:A\n:25:1\n:60F:D240101EUR10,\n:86:about the statement\n".to_vec();
        bytes.extend_from_slice(b":61:240101C10,NMSCNONREF\n:86:Caf\xe9\n:62F:C240101EUR0,\n-\n");
        bytes.extend_from_slice(b"header\n:20:B\n:25:2\n:28:7\n:60F:C240101EUR0,\n:62F:C240101EUR0,\n");
        let statements = parse(&bytes).unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0].statement_id, "A");
        assert_eq!(statements[0].lines[0].remittance, "Café");
        assert_eq!(statements[1].statement_id, "B/7");
        assert!(statements[1].lines.is_empty());
    }

    #[test]
    fn structured_information_is_split() {
        let german = details(&[
            "166?00GUTSCHRIFT?20EREF+E2E-1 SVWZ+Rechn?21ung 42?30BANKDEFF",
            "?31DE02120300000000202051?32Max Muster?33mann",
        ]);
        assert_eq!(german.remittance, "EREF+E2E-1 SVWZ+Rechnung 42");
        assert_eq!(german.end_to_end_id, "E2E-1");
        assert_eq!(german.name, "Max Mustermann");
        assert_eq!(german.account, "DE02120300000000202051");
        let abn = details(&[
            "/TRTP/SEPA OVERBOEKING/IBAN/NL44RABO0123456789/BIC/RABONL2U/NAME/",
            "J JANSEN/REMI/Factuur 2024-17/EREF/NOTPROVIDED",
        ]);
        assert_eq!(abn.name, "J JANSEN");
        assert_eq!(abn.account, "NL44RABO0123456789");
        assert_eq!(abn.remittance, "Factuur 2024-17");
        assert_eq!(abn.end_to_end_id, "");
        let ing = details(&["/EREF/E2E-9//CNTP/NL12INGB0001234567/INGBNL2A/Klant BV//REMI/USTD//Order 5/"]);
        assert_eq!((ing.end_to_end_id.as_str(), ing.account.as_str()), ("E2E-9", "NL12INGB0001234567"));
        assert_eq!((ing.name.as_str(), ing.remittance.as_str()), ("Klant BV", "Order 5"));
        let plain = details(&["BEA   NR:YV7XDL", "24.08.19/15.33 WHAT? 12"]);
        assert_eq!(plain.remittance, "BEA NR:YV7XDL 24.08.19/15.33 WHAT? 12");
        assert_eq!(plain.name, "");
    }

    fn details(lines: &[&str]) -> Details {
        parse_details(&lines.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// Small deterministic generator so the fuzz cases are the same on every run.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
        }
        fn byte(&mut self) -> u8 {
            // Mostly bytes that matter to the grammar, so mutations reach deep.
            const INTERESTING: &[u8] = b":0123456789CDRN,/?{}-\r\n\xe9\xc3";
            if self.next().is_multiple_of(2) {
                INTERESTING[self.below(INTERESTING.len())]
            } else {
                self.next().to_le_bytes()[0]
            }
        }
    }

    #[test]
    fn never_panics() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut corpus: Vec<Vec<u8>> = samples().into_iter().map(|s| s.1).collect();
        corpus.push(BASIC.as_bytes().to_vec());
        for bytes in &corpus {
            for k in 0..=200 {
                let _ = parse(bytes.get(..bytes.len() * k / 200).unwrap());
            }
            for _ in 0..2000 {
                let mut mutated = bytes.clone();
                for _ in 0..=rng.below(4) {
                    let pos = rng.below(mutated.len());
                    let b = rng.byte();
                    match rng.below(3) {
                        0 => mutated.insert(pos, b),
                        1 if pos < mutated.len() => mutated[pos] = b,
                        _ if pos < mutated.len() => {
                            mutated.remove(pos);
                        }
                        _ => mutated.push(b),
                    }
                }
                let _ = parse(&mutated);
            }
        }
        for _ in 0..500 {
            let len = rng.below(300);
            let bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            let _ = parse(&bytes);
        }
    }
}

//! BAI2 (Cash Management Balance Reporting Specification, version 2) files, as US banks send
//! them: `01` file, `02` group (one as-of date), `03` account with its summaries, `16` details,
//! `88` continuations, and `49`/`98`/`99` trailers whose control totals and record counts are
//! checked, so a file cut short or garbled is refused whole instead of half-read.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::domain::statement::{BankLine, Direction, MAX_AMOUNT, ParseError, Statement, collapse, shorten};

/// Every statement in a BAI2 file, one per `03` account, or the first error naming its line.
pub fn parse(input: &[u8]) -> Result<Vec<Statement>, ParseError> {
    let records = records(input)?;
    let mut parser = Parser::default();
    for record in &records {
        parser.record(record)?;
    }
    let last_line = records.last().map_or(1, |r| r.segments.last().map_or(r.line, |s| s.line));
    parser.finish(last_line)
}

/// One physical line's share of a record: the text after the record code.
struct Segment<'a> {
    line: usize,
    text: &'a str,
}

/// A logical record: its own line plus the `88` lines that continue it.
struct Record<'a> {
    code: &'a str,
    line: usize,
    segments: Vec<Segment<'a>>,
}

impl Record<'_> {
    /// Physical records, which is what the trailers count.
    fn physical(&self) -> u64 {
        u64::try_from(self.segments.len()).unwrap_or(u64::MAX)
    }
}

const CODES: [&str; 8] = ["01", "02", "03", "16", "49", "88", "98", "99"];

/// Splits the file into logical records, folding each `88` into the record it continues.
fn records(input: &[u8]) -> Result<Vec<Record<'_>>, ParseError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut records: Vec<Record<'_>> = Vec::new();
    for (index, raw) in input.split(|b| *b == b'\n').enumerate() {
        let line = index.saturating_add(1);
        let text = std::str::from_utf8(raw)
            .map_err(|_| ParseError::new(at(line), "not text: BAI2 is plain ASCII"))?
            .trim_end_matches(['\r', ' ', '\t']);
        // Blank lines carry nothing; some banks end files or blocks with them.
        if text.trim().is_empty() {
            continue;
        }
        let (code, rest) = match text.split_once(',') {
            Some((code, rest)) => (code.trim(), rest),
            None => (text.split('/').next().unwrap_or(text).trim(), ""),
        };
        if !CODES.contains(&code) {
            return Err(ParseError::new(at(line), format!("unknown record code `{}`", shorten(code))));
        }
        let segment = Segment { line, text: rest };
        if code == "88" {
            let Some(previous) = records.last_mut() else {
                return Err(ParseError::new(at(line), "88 continuation with no record before it"));
            };
            previous.segments.push(segment);
        } else {
            records.push(Record { code, line, segments: vec![segment] });
        }
    }
    if records.is_empty() {
        return Err(ParseError::new(at(1), "the file is empty"));
    }
    Ok(records)
}

fn at(line: usize) -> String {
    format!("line {line}")
}

/// Reads a record's fields in order across its continuation lines. A `/` ends the fields of
/// its physical line (the rest default); an `88` then carries on with the next field.
struct Fields<'r, 'a> {
    segments: &'r [Segment<'a>],
    next_segment: usize,
    /// Unread part of the current physical line; `None` once a `/` or the line's end is reached.
    rest: Option<&'a str>,
    /// Line of the last field read, for errors.
    line: usize,
}

impl<'r, 'a> Fields<'r, 'a> {
    fn new(record: &'r Record<'a>) -> Self {
        Self { segments: &record.segments, next_segment: 0, rest: None, line: record.line }
    }

    /// The next field, trimmed, or `None` when the record has no more.
    fn next(&mut self) -> Option<&'a str> {
        loop {
            match self.rest {
                Some(rest) if !rest.is_empty() => {
                    let Some((i, delimiter)) = rest.char_indices().find(|(_, c)| *c == ',' || *c == '/') else {
                        self.rest = None;
                        return Some(rest.trim());
                    };
                    let field = rest.get(..i).unwrap_or("");
                    self.rest = if delimiter == ',' { rest.get(i.saturating_add(1)..) } else { None };
                    return Some(field.trim());
                }
                _ => {
                    let segment = self.segments.get(self.next_segment)?;
                    self.next_segment = self.next_segment.saturating_add(1);
                    self.rest = Some(segment.text);
                    self.line = segment.line;
                }
            }
        }
    }

    /// The next field, empty when the record has ended: BAI2 lets trailing fields default.
    fn optional(&mut self) -> &'a str {
        self.next().unwrap_or("")
    }

    /// The next field, which must be present and not blank.
    fn required(&mut self, what: &str) -> Result<&'a str, ParseError> {
        match self.next() {
            Some(field) if !field.is_empty() => Ok(field),
            _ => Err(self.error(format!("missing {what}"))),
        }
    }

    /// The `16` text: everything left, commas included, continuation lines joined by a space.
    fn text(&mut self) -> String {
        let mut pieces: Vec<&str> = self.rest.take().into_iter().collect();
        while let Some(segment) = self.segments.get(self.next_segment) {
            pieces.push(segment.text);
            self.next_segment = self.next_segment.saturating_add(1);
        }
        // Banks usually end the text with a `/` although the spec does not ask for one.
        let pieces: Vec<&str> = pieces
            .iter()
            .map(|p| {
                let p = p.trim_end();
                p.strip_suffix('/').unwrap_or(p)
            })
            .collect();
        collapse(&pieces.join(" "))
    }

    fn error(&self, reason: impl Into<String>) -> ParseError {
        ParseError::new(at(self.line), reason)
    }
}

struct FileState {
    id: String,
    total: i128,
    records: u64,
    groups: u64,
}

struct GroupState {
    id: String,
    as_of: NaiveDate,
    currency: Option<String>,
    total: i128,
    records: u64,
    accounts: u64,
}

struct AccountState {
    statement: Statement,
    total: i128,
    records: u64,
}

#[derive(Default)]
struct Parser {
    file: Option<FileState>,
    group: Option<GroupState>,
    account: Option<AccountState>,
    done: bool,
    statements: Vec<Statement>,
}

impl Parser {
    fn record(&mut self, record: &Record<'_>) -> Result<(), ParseError> {
        let line = record.line;
        let out_of_order = |reason: &str| Err(ParseError::new(at(line), reason.to_owned()));
        if self.done {
            return out_of_order("record after the 99 file trailer");
        }
        let mut fields = Fields::new(record);
        match record.code {
            "01" => {
                if self.file.is_some() {
                    return out_of_order("second 01 file header");
                }
                self.file_header(&mut fields)?;
            }
            "02" => {
                if self.file.is_none() {
                    return out_of_order("02 group header before the 01 file header");
                }
                if self.group.is_some() {
                    return out_of_order("02 group header before the 98 trailer of the previous group");
                }
                self.group_header(&mut fields)?;
            }
            "03" => {
                if self.group.is_none() {
                    return out_of_order("03 account identifier outside a group");
                }
                if self.account.is_some() {
                    return out_of_order("03 account identifier before the 49 trailer of the previous account");
                }
                self.account_identifier(&mut fields)?;
            }
            "16" => {
                if self.account.is_none() {
                    return out_of_order("16 transaction detail outside an account");
                }
            }
            "49" => {
                if self.account.is_none() {
                    return out_of_order("49 account trailer outside an account");
                }
            }
            "98" => {
                if self.group.is_none() {
                    return out_of_order("98 group trailer outside a group");
                }
                if self.account.is_some() {
                    return out_of_order("98 group trailer before the 49 trailer of the account");
                }
            }
            "99" => {
                if self.file.is_none() {
                    return out_of_order("99 file trailer before the 01 file header");
                }
                if self.group.is_some() {
                    return out_of_order("99 file trailer before the 98 trailer of the group");
                }
            }
            _ => return out_of_order("unknown record code"),
        }
        // Counted before the trailers are checked: each trailer counts itself.
        let physical = record.physical();
        for records in [
            self.file.as_mut().map(|f| &mut f.records),
            self.group.as_mut().map(|g| &mut g.records),
            self.account.as_mut().map(|a| &mut a.records),
        ]
        .into_iter()
        .flatten()
        {
            *records = records.saturating_add(physical);
        }
        match record.code {
            "16" => self.detail(&mut fields),
            "49" => self.account_trailer(&mut fields, line),
            "98" => self.group_trailer(&mut fields, line),
            "99" => self.file_trailer(&mut fields, line),
            _ => Ok(()),
        }
    }

    fn finish(self, last_line: usize) -> Result<Vec<Statement>, ParseError> {
        if self.done {
            return Ok(self.statements);
        }
        let missing = if self.account.is_some() {
            "49 account trailer"
        } else if self.group.is_some() {
            "98 group trailer"
        } else if self.file.is_some() {
            "99 file trailer"
        } else {
            "01 file header"
        };
        Err(ParseError::new(at(last_line), format!("the file ends before the {missing}")))
    }

    fn file_header(&mut self, fields: &mut Fields<'_, '_>) -> Result<(), ParseError> {
        let _sender = fields.optional();
        let _receiver = fields.optional();
        date(fields.optional(), fields)?;
        let _time = fields.optional();
        let id = fields.required("file identification number")?;
        let _record_length = fields.optional();
        let _block_size = fields.optional();
        let version = fields.optional();
        if version != "2" {
            return Err(fields.error(format!("version `{}`: only BAI version 2 is read", shorten(version))));
        }
        self.file = Some(FileState { id: id.to_owned(), total: 0, records: 0, groups: 0 });
        Ok(())
    }

    fn group_header(&mut self, fields: &mut Fields<'_, '_>) -> Result<(), ParseError> {
        let _receiver = fields.optional();
        let id = fields.required("originator identification")?;
        let _status = fields.optional();
        let as_of = date(fields.optional(), fields)?;
        let _time = fields.optional();
        let currency = currency(fields.optional(), fields)?;
        self.group = Some(GroupState { id: id.to_owned(), as_of, currency, total: 0, records: 0, accounts: 0 });
        Ok(())
    }

    fn account_identifier(&mut self, fields: &mut Fields<'_, '_>) -> Result<(), ParseError> {
        let (Some(file), Some(group)) = (&self.file, &mut self.group) else {
            return Err(fields.error("03 account identifier outside a group"));
        };
        let account = fields.required("customer account number")?;
        let currency =
            currency(fields.optional(), fields)?.or_else(|| group.currency.clone()).unwrap_or_else(|| "USD".to_owned());
        // Summaries: type code, amount, item count, funds type (with its own fields), repeated.
        let mut total: i128 = 0;
        while let Some(code) = fields.next() {
            if code.is_empty() {
                // A trailing `,` before the `/` leaves an empty field; anything after it is not.
                while let Some(extra) = fields.next() {
                    if !extra.is_empty() {
                        return Err(fields.error("summary without a type code"));
                    }
                }
                break;
            }
            type_code(code, fields)?;
            let amount = fields.optional();
            if !amount.is_empty() {
                total = add(total, minor(amount, fields, "a summary amount", true)?, fields)?;
            }
            let items = fields.optional();
            if !items.is_empty() {
                count(items, fields, "an item count")?;
            }
            funds_type(fields)?;
        }
        group.accounts = group.accounts.saturating_add(1);
        self.account = Some(AccountState {
            statement: Statement {
                format: "bai2".to_owned(),
                statement_id: format!("{}/{}", file.id, group.id),
                account: account.to_owned(),
                currency,
                lines: Vec::new(),
            },
            total,
            records: 0,
        });
        Ok(())
    }

    fn detail(&mut self, fields: &mut Fields<'_, '_>) -> Result<(), ParseError> {
        let (Some(group), Some(account)) = (&self.group, &mut self.account) else {
            return Err(fields.error("16 transaction detail outside an account"));
        };
        let line = fields.line;
        let code = fields.required("type code")?;
        let number = type_code(code, fields)?;
        let direction = match number {
            100..=399 => Direction::Credit,
            400..=699 => Direction::Debit,
            // The spec leaves 900–999 to each bank; lower half credit, upper half debit is the
            // common split and all we can assume without the bank's own table.
            900..=949 => Direction::Credit,
            950..=999 => Direction::Debit,
            _ => return Err(fields.error(format!("type code {code} is not a credit or debit transaction"))),
        };
        let raw_amount = fields.required("amount")?;
        let minor_units = minor(raw_amount, fields, "an amount", false)?;
        account.total = add(account.total, minor_units, fields)?;
        let amount = Decimal::try_from_i128_with_scale(minor_units, decimals(&account.statement.currency))
            .map_err(|_| fields.error(format!("`{}` is out of range", shorten(raw_amount))))?;
        if amount > MAX_AMOUNT {
            return Err(fields.error(format!("`{}` is out of range", shorten(raw_amount))));
        }
        if amount.is_zero() {
            return Err(fields.error("a transaction of zero"));
        }
        let value_date = funds_type(fields)?;
        let bank_reference = fields.optional();
        let customer_reference = fields.optional();
        let remittance = fields.text();
        account.statement.lines.push(BankLine {
            booking_date: group.as_of,
            value_date,
            amount,
            currency: account.statement.currency.clone(),
            direction,
            counterparty_name: String::new(),
            counterparty_account: String::new(),
            end_to_end_id: String::new(),
            reference: customer_reference.to_owned(),
            remittance,
            bank_code: code.to_owned(),
            statement_id: account.statement.statement_id.clone(),
            entry_id: if bank_reference.is_empty() { line.to_string() } else { bank_reference.to_owned() },
        });
        Ok(())
    }

    fn account_trailer(&mut self, fields: &mut Fields<'_, '_>, line: usize) -> Result<(), ParseError> {
        let (Some(group), Some(account)) = (&mut self.group, self.account.take()) else {
            return Err(ParseError::new(at(line), "49 account trailer outside an account"));
        };
        let total = minor(fields.required("account control total")?, fields, "a control total", true)?;
        let records = count(fields.required("number of records")?, fields, "a number of records")?;
        check(line, "account control total", total, account.total)?;
        check(line, "account record count", records, account.records)?;
        group.total = add(group.total, total, fields)?;
        self.statements.push(account.statement);
        Ok(())
    }

    fn group_trailer(&mut self, fields: &mut Fields<'_, '_>, line: usize) -> Result<(), ParseError> {
        let (Some(file), Some(group)) = (&mut self.file, self.group.take()) else {
            return Err(ParseError::new(at(line), "98 group trailer outside a group"));
        };
        let total = minor(fields.required("group control total")?, fields, "a control total", true)?;
        let accounts = count(fields.required("number of accounts")?, fields, "a number of accounts")?;
        let records = count(fields.required("number of records")?, fields, "a number of records")?;
        check(line, "group control total", total, group.total)?;
        check(line, "group account count", accounts, group.accounts)?;
        check(line, "group record count", records, group.records)?;
        file.total = add(file.total, total, fields)?;
        file.groups = file.groups.saturating_add(1);
        Ok(())
    }

    fn file_trailer(&mut self, fields: &mut Fields<'_, '_>, line: usize) -> Result<(), ParseError> {
        let Some(file) = &self.file else {
            return Err(ParseError::new(at(line), "99 file trailer before the 01 file header"));
        };
        let total = minor(fields.required("file control total")?, fields, "a control total", true)?;
        let groups = count(fields.required("number of groups")?, fields, "a number of groups")?;
        let records = count(fields.required("number of records")?, fields, "a number of records")?;
        check(line, "file control total", total, file.total)?;
        check(line, "file group count", groups, file.groups)?;
        check(line, "file record count", records, file.records)?;
        self.done = true;
        Ok(())
    }
}

/// A trailer's figure against what was read, naming the trailer's line.
fn check<T: PartialEq + std::fmt::Display>(line: usize, what: &str, stated: T, read: T) -> Result<(), ParseError> {
    if stated == read {
        Ok(())
    } else {
        Err(ParseError::new(at(line), format!("{what} is {stated} but the records read give {read}")))
    }
}

fn add(a: i128, b: i128, fields: &Fields<'_, '_>) -> Result<i128, ParseError> {
    a.checked_add(b).ok_or_else(|| fields.error("control total out of range"))
}

/// The funds type and the fields each variant brings; the value date for `V`.
fn funds_type(fields: &mut Fields<'_, '_>) -> Result<Option<NaiveDate>, ParseError> {
    let kind = fields.optional();
    match kind {
        // Immediate, one-day, two-or-more-day availability; `Z` and blank: unknown.
        "" | "0" | "1" | "2" | "Z" => Ok(None),
        // Amounts available immediately, in one day and in two or more days.
        "S" => {
            for _ in 0..3 {
                let amount = fields.optional();
                if !amount.is_empty() {
                    minor(amount, fields, "an availability amount", true)?;
                }
            }
            Ok(None)
        }
        "V" => {
            let value = date(fields.optional(), fields)?;
            let time = fields.optional();
            if time.len() > 4 || !time.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fields.error(format!("`{}` is not a value time", shorten(time))));
            }
            Ok(Some(value))
        }
        // A count of distributions, then each one's days and amount.
        "D" => {
            let n = count(fields.required("number of distributions")?, fields, "a number of distributions")?;
            for _ in 0..n {
                count(fields.required("distribution days")?, fields, "a number of days")?;
                minor(fields.required("distribution amount")?, fields, "an amount", true)?;
            }
            Ok(None)
        }
        _ => Err(fields.error(format!("unknown funds type `{}`", shorten(kind)))),
    }
}

fn type_code(raw: &str, fields: &Fields<'_, '_>) -> Result<u16, ParseError> {
    if raw.len() != 3 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fields.error(format!("`{}` is not a type code", shorten(raw))));
    }
    raw.parse().map_err(|_| fields.error(format!("`{}` is not a type code", shorten(raw))))
}

/// An amount in minor units, no decimal point; a sign only where the spec allows one.
fn minor(raw: &str, fields: &Fields<'_, '_>, what: &str, signed: bool) -> Result<i128, ParseError> {
    let (negative, digits) = match (signed, raw.strip_prefix('-')) {
        (true, Some(digits)) => (true, digits),
        (true, None) => (false, raw.strip_prefix('+').unwrap_or(raw)),
        (false, _) => (false, raw),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fields.error(format!("`{}` is not {what}", shorten(raw))));
    }
    // 18 digits is more than any real balance and keeps every sum far from overflowing.
    if digits.trim_start_matches('0').len() > 18 || digits.len() > 40 {
        return Err(fields.error(format!("`{}` is out of range", shorten(raw))));
    }
    let value: i128 = digits.parse().map_err(|_| fields.error(format!("`{}` is out of range", shorten(raw))))?;
    Ok(if negative { -value } else { value })
}

fn count(raw: &str, fields: &Fields<'_, '_>, what: &str) -> Result<u64, ParseError> {
    if raw.is_empty() || raw.len() > 9 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fields.error(format!("`{}` is not {what}", shorten(raw))));
    }
    raw.parse().map_err(|_| fields.error(format!("`{}` is not {what}", shorten(raw))))
}

/// `YYMMDD`; BAI2 has two-digit years, read as 2000–2099.
fn date(raw: &str, fields: &Fields<'_, '_>) -> Result<NaiveDate, ParseError> {
    let bad = || fields.error(format!("`{}` is not a YYMMDD date", shorten(raw)));
    if raw.len() != 6 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let part = |range: std::ops::Range<usize>| raw.get(range).and_then(|p| p.parse::<u32>().ok()).ok_or_else(bad);
    let year = i32::try_from(part(0..2)?).map_err(|_| bad())?;
    NaiveDate::from_ymd_opt(2000 + year, part(2..4)?, part(4..6)?).ok_or_else(bad)
}

fn currency(raw: &str, fields: &Fields<'_, '_>) -> Result<Option<String>, ParseError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() != 3 || !raw.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(fields.error(format!("`{}` is not a currency code", shorten(raw))));
    }
    Ok(Some(raw.to_owned()))
}

/// Decimal places of the currency's minor unit (ISO 4217): amounts come without a point.
fn decimals(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const CITI: &str =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/statements/bai2/citi_example.bai2");

    fn citi() -> String {
        let path = std::path::Path::new(CITI);
        let canonical = path.canonicalize().unwrap_or_else(|e| panic!("test data {CITI} missing: {e}"));
        assert!(canonical.ends_with("shared/testdata/statements/bai2/citi_example.bai2"), "{}", canonical.display());
        std::fs::read_to_string(path).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn error(input: &str) -> String {
        parse(input.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn citi_example_is_read() {
        let statements = parse(citi().as_bytes()).unwrap();
        assert_eq!(statements.len(), 1);
        let s = &statements[0];
        assert_eq!(s.format, "bai2");
        assert_eq!(s.statement_id, "00131100/CITIGB00");
        assert_eq!(s.account, "77777777");
        assert_eq!(s.currency, "GBP");
        assert_eq!(s.lines.len(), 1);
        let l = &s.lines[0];
        assert_eq!(l.amount.to_string(), "0.01");
        assert_eq!(l.currency, "GBP");
        assert_eq!(l.direction, Direction::Credit);
        assert_eq!(l.booking_date, date(2015, 7, 15));
        assert_eq!(l.value_date, Some(date(2015, 7, 15)));
        assert_eq!(l.bank_code, "191");
        assert_eq!(l.entry_id, "1234567890");
        assert_eq!(l.reference, "RP12312312312312");
        assert_eq!(l.statement_id, "00131100/CITIGB00");
        assert_eq!(
            l.remittance,
            "FR:FP SIP INCOMING ENDT:20150715 TRID:RP12312312312312 PY:RP1231231231231200 A1234BC 22/03/66 \
             BI:22222222 OB:111111 BUCKINGHAM PALACE OB3:BARCLAYS BANK PLC BO:11111111 BO1:DOE JO"
        );
        assert_eq!((l.counterparty_name.as_str(), l.end_to_end_id.as_str()), ("", ""));
    }

    #[test]
    fn citi_example_with_crlf_and_trailing_newline() {
        let text = citi().replace('\n', "\r\n") + "\r\n";
        assert_eq!(parse(text.as_bytes()).unwrap(), parse(citi().as_bytes()).unwrap());
    }

    #[test]
    fn altered_control_totals_and_counts_are_refused_naming_the_trailer() {
        let text = citi();
        for (from, to, expected) in [
            ("49,20001,10/", "49,20002,10/", "line 12: account control total is 20002"),
            ("49,20001,10/", "49,20001,11/", "line 12: account record count is 11"),
            ("98,20001,1,12/", "98,20000,1,12/", "line 13: group control total is 20000"),
            ("98,20001,1,12/", "98,20001,2,12/", "line 13: group account count is 2"),
            ("98,20001,1,12/", "98,20001,1,13/", "line 13: group record count is 13"),
            ("99,20001,1,14/", "99,-20001,1,14/", "line 14: file control total is -20001"),
            ("99,20001,1,14/", "99,20001,2,14/", "line 14: file group count is 2"),
            ("99,20001,1,14/", "99,20001,1,15/", "line 14: file record count is 15"),
            // A summary amount changed: the 49 no longer adds up.
            ("015,10000,", "015,10001,", "line 12: account control total is 20001 but the records read give 20002"),
            // A detail amount changed likewise.
            ("16,191,001,", "16,191,002,", "line 12: account control total is 20001 but the records read give 20002"),
        ] {
            assert!(text.contains(from), "{from}");
            let message = error(&text.replace(from, to));
            assert!(message.starts_with(expected), "{from} -> {to}: {message}");
        }
    }

    /// Two groups: continuation of an 03, of a 16's text (with commas) and of a 49; signed
    /// summary amounts; funds types V, S, D, 0 and Z; a JPY group; blank bank references.
    const SMALL: &str = "\
01,BANKID,CUSTID,240102,1200,FILE7,80,,2/
02,CUSTID,ORIGBANK,1,240101,,USD,2/
03,1234567,,010,500000,,,
88,015,-2500,,/
16,165,150000,V,240103,,BREF1,CREF1,PAYMENT FOR INV 1,2, AND 3
88,  MORE TEXT, WITH COMMAS
16,475,2500,S,1000,1000,500,BREF2,,/
16,699,100,D,2,1,50,2,50,,CREF3,FEE/
49,
88,650100,8/
98,650100,1,10/
02,CUSTID,JPBANK,1,240105,0900,JPY,2/
03,998877,,015,1000000,,/
16,195,1500,0,JPREF,,Yen transfer/
16,951,30,Z,,,/
49,1001530,4/
98,1001530,1,6/
99,1651630,2,18/
";

    #[test]
    fn small_file_with_continuations_and_commas_in_text() {
        let statements = parse(SMALL.as_bytes()).unwrap();
        assert_eq!(statements.len(), 2);
        let (usd, jpy) = (&statements[0], &statements[1]);
        assert_eq!(
            (usd.statement_id.as_str(), usd.account.as_str(), usd.currency.as_str()),
            ("FILE7/ORIGBANK", "1234567", "USD")
        );
        assert_eq!(
            (jpy.statement_id.as_str(), jpy.account.as_str(), jpy.currency.as_str()),
            ("FILE7/JPBANK", "998877", "JPY")
        );

        let summary: Vec<_> = usd
            .lines
            .iter()
            .map(|l| {
                (
                    l.amount.to_string(),
                    l.direction,
                    l.bank_code.as_str(),
                    l.value_date,
                    l.entry_id.as_str(),
                    l.reference.as_str(),
                    l.remittance.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "1500.00".to_owned(),
                    Direction::Credit,
                    "165",
                    Some(date(2024, 1, 3)),
                    "BREF1",
                    "CREF1",
                    "PAYMENT FOR INV 1,2, AND 3 MORE TEXT, WITH COMMAS"
                ),
                ("25.00".to_owned(), Direction::Debit, "475", None, "BREF2", "", ""),
                ("1.00".to_owned(), Direction::Debit, "699", None, "8", "CREF3", "FEE"),
            ]
        );
        assert!(usd.lines.iter().all(|l| l.booking_date == date(2024, 1, 1) && l.currency == "USD"));

        assert_eq!(jpy.lines.len(), 2);
        assert_eq!(jpy.lines[0].amount.to_string(), "1500");
        assert_eq!(jpy.lines[0].direction, Direction::Credit);
        assert_eq!(jpy.lines[0].entry_id, "JPREF");
        assert_eq!(jpy.lines[0].remittance, "Yen transfer");
        assert_eq!(jpy.lines[1].amount.to_string(), "30");
        assert_eq!(jpy.lines[1].direction, Direction::Debit);
        assert_eq!(jpy.lines[1].entry_id, "15");
        assert!(jpy.lines.iter().all(|l| l.booking_date == date(2024, 1, 5) && l.currency == "JPY"));
    }

    #[test]
    fn broken_files_are_refused_naming_the_line() {
        let cases = [
            (SMALL.replace("16,475,", "17,475,"), "line 7: unknown record code `17`"),
            (SMALL.replace("03,998877,,015,1000000,,/\n", ""), "line 13: 16 transaction detail outside an account"),
            (SMALL.replace("49,\n88,650100,8/\n", ""), "line 9: 98 group trailer before the 49 trailer"),
            (SMALL.replace("98,650100,1,10/\n", ""), "line 11: 02 group header before the 98 trailer"),
            (SMALL.replace("99,1651630,2,18/\n", ""), "line 17: the file ends before the 99 file trailer"),
            (SMALL.replace("240101", "240231"), "line 2: `240231` is not a YYMMDD date"),
            (SMALL.replace("V,240103", "V,24013"), "line 5: `24013` is not a YYMMDD date"),
            (SMALL.replace("150000,V", "15000x,V"), "line 5: `15000x` is not an amount"),
            (SMALL.replace("150000,V", "-150000,V"), "line 5: `-150000` is not an amount"),
            (SMALL.replace("88,015,-2500", "88,015,-25x0"), "line 4: `-25x0` is not a summary amount"),
            (SMALL.replace("98,650100,1,10/", "98,650100,1,ten/"), "line 11: `ten` is not a number of records"),
            (SMALL.replace("2500,S,", "2500,Q,"), "line 7: unknown funds type `Q`"),
            (SMALL.replace("16,699", "16,010"), "line 8: type code 010 is not a credit or debit transaction"),
            (SMALL.replace("16,699", "16,720"), "line 8: type code 720 is not a credit or debit transaction"),
            (SMALL.replace("D,2,1,50,2,50,,", "D,3,1,50,2,50,,"), "line 8: missing distribution days"),
            (SMALL.replace(",USD,", ",US$,"), "line 2: `US$` is not a currency code"),
            (SMALL.replace("80,,2/", "80,,3/"), "line 1: version `3`"),
            (format!("88,X/\n{SMALL}"), "line 1: 88 continuation with no record before it"),
            (format!("{SMALL}16,195,1,0/\n"), "line 19: record after the 99 file trailer"),
            (SMALL.replacen("01,", "02,", 1), "line 1: 02 group header before the 01 file header"),
            (String::new(), "line 1: the file is empty"),
            ("\n \n".to_owned(), "line 1: the file is empty"),
        ];
        for (input, expected) in cases {
            let message = error(&input);
            assert!(message.starts_with(expected), "expected `{expected}`, got `{message}`");
        }
        let mut latin1 = SMALL.as_bytes().to_vec();
        latin1.splice(0..0, b"01,\xE9\n".iter().copied());
        assert_eq!(parse(&latin1).unwrap_err().to_string(), "line 1: not text: BAI2 is plain ASCII");
    }

    #[test]
    fn huge_numbers_are_refused_without_panicking() {
        let nines = "9".repeat(60);
        let cases = [
            SMALL.replace("16,165,150000,", &format!("16,165,{nines},")),
            SMALL.replace("16,165,150000,", "16,165,999999999999999999,"),
            SMALL.replace("16,165,150000,", &format!("16,165,{}1,", "0".repeat(50))),
            SMALL.replace("88,015,-2500", &format!("88,015,-{nines}")),
            SMALL.replace("49,1001530,4/", &format!("49,-{nines},4/")),
            SMALL.replace("98,1001530,1,6/", &format!("98,1001530,{nines},6/")),
            SMALL.replace("99,1651630,2,18/", &format!("99,1651630,2,{nines}/")),
            SMALL.replace("D,2,", &format!("D,{},", "999999999")),
            SMALL.replace("D,2,", &format!("D,{nines},")),
        ];
        for input in cases {
            assert!(parse(input.as_bytes()).is_err());
        }
        // Large but within the limit: 18 digits add up without overflow and are checked.
        let big = "999999999999999999";
        let input = format!(
            "01,A,B,240101,,F,,,2/\n02,B,O,1,240101,,USD/\n03,1,,010,{big},,,015,{big},,,040,-{big},,/\n\
             49,{big},2/\n98,{big},1,4/\n99,{big},1,6/\n"
        );
        assert_eq!(parse(input.as_bytes()).unwrap()[0].lines.len(), 0);
    }

    /// Small deterministic generator: the tests must not depend on outside crates or luck.
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
    }

    #[test]
    fn every_truncation_is_refused_without_panicking() {
        for text in [citi(), SMALL.to_owned()] {
            let bytes = text.as_bytes();
            let end = bytes.trim_ascii_end().len();
            for i in 0..200 {
                let cut = bytes.len() * i / 200;
                let result = parse(&bytes[..cut]);
                // Cutting just the final `/` still leaves a whole file; anything earlier does not.
                if cut + 1 < end {
                    assert!(result.is_err(), "cut at {cut} accepted");
                }
            }
        }
    }

    #[test]
    fn random_byte_flips_and_insertions_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let seeds = [citi().into_bytes(), SMALL.as_bytes().to_vec()];
        // Bytes that matter to the format, so mutations reach deep paths, and any byte.
        let interesting = b",/\n\r088916-+SVDZ ";
        for round in 0..2000 {
            let mut bytes = seeds[round % 2].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len() + 1);
                let byte = if rng.below(2) == 0 {
                    interesting[rng.below(interesting.len())]
                } else {
                    u8::try_from(rng.next() & 0xFF).unwrap()
                };
                match rng.below(3) {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, byte),
                }
            }
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn random_byte_strings_never_panic() {
        let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
        for round in 0..500_usize {
            let len = rng.below(400);
            let bytes: Vec<u8> = if round.is_multiple_of(2) {
                (0..len).map(|_| u8::try_from(rng.next() & 0xFF).unwrap()).collect()
            } else {
                // Mostly record-shaped noise: digits, commas, slashes and newlines.
                let alphabet = b"0123456789,,,//\n\n0102031649889899SVDZ-";
                (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect()
            };
            assert!(parse(&bytes).is_err());
        }
    }
}

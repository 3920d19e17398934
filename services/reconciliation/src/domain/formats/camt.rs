//! ISO 20022 bank-to-customer messages: camt.053 statements, camt.054 debit/credit
//! notifications and camt.052 account reports, any version (they share the entry structure we
//! read). The file is read into a small element tree first, then walked: the messages are small
//! enough, and a tree makes "this child of that entry" lookups simple and free of state bugs.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use rust_decimal::Decimal;

use crate::domain::statement::{BankLine, Direction, ParseError, Statement, collapse, parse_amount, shorten};

/// Deeper nesting than any camt message needs; bounds the tree walk and refuses
/// "billion nested elements" inputs early.
const MAX_DEPTH: usize = 64;

/// The message kinds we read: root element, record element, format name, message number used
/// in the namespace (`camt.053.001.08`).
const MESSAGES: [(&str, &str, &str); 3] = [
    ("BkToCstmrStmt", "Stmt", "camt.053"),
    ("BkToCstmrDbtCdtNtfctn", "Ntfctn", "camt.054"),
    ("BkToCstmrAcctRpt", "Rpt", "camt.052"),
];

/// Parse a camt.052/053/054 file into its statements, or refuse it whole with the first error.
pub fn parse(input: &[u8]) -> Result<Vec<Statement>, ParseError> {
    let root = read_tree(input)?;
    let doc_path = root.name.clone();
    // Banks wrap the message in `Document`; accept a bare message root too, it is unambiguous.
    let (message, message_path) = if root.name == "Document" {
        let found = root.children.iter().find(|c| MESSAGES.iter().any(|(m, _, _)| c.name == *m));
        match found {
            Some(m) => (m, format!("{doc_path}/{}", m.name)),
            None => {
                return Err(ParseError::new(
                    doc_path,
                    "not a camt.052/053/054 message (expected BkToCstmrStmt, BkToCstmrDbtCdtNtfctn or BkToCstmrAcctRpt)",
                ));
            }
        }
    } else if MESSAGES.iter().any(|(m, _, _)| root.name == *m) {
        (&root, doc_path.clone())
    } else {
        return Err(ParseError::new(shorten(&doc_path), "unknown root element, expected a camt.052/053/054 Document"));
    };
    let Some(&(_, record_tag, format)) = MESSAGES.iter().find(|(m, _, _)| message.name == *m) else {
        return Err(ParseError::new(message_path, "unknown message"));
    };
    // A camt namespace naming another message (camt.052 URN around a BkToCstmrStmt) means the
    // file is not what it claims; refuse rather than guess.
    if let Some(ns) = root.namespace.as_deref()
        && let Some(rest) = ns.strip_prefix("urn:iso:std:iso:20022:tech:xsd:")
        && rest.starts_with("camt.")
        && !rest.starts_with(&format!("{format}."))
    {
        return Err(ParseError::new(doc_path, format!("namespace `{}` does not match {}", shorten(ns), message.name)));
    }

    let mut statements = Vec::new();
    for (i, record) in message.children.iter().filter(|c| c.name == record_tag).enumerate() {
        let path = format!("{message_path}/{record_tag}[{}]", i + 1);
        statements.push(parse_record(record, &path, format)?);
    }
    if statements.is_empty() {
        // The schema requires at least one; an empty message is a broken export, not "no money".
        return Err(ParseError::new(message_path, format!("no {record_tag} in the message")));
    }
    Ok(statements)
}

/// One `Stmt`/`Ntfctn`/`Rpt`.
fn parse_record(record: &Node, path: &str, format: &str) -> Result<Statement, ParseError> {
    let statement_id = required_text(record, "Id", path)?;
    let acct_path = format!("{path}/Acct");
    let acct = only(record, "Acct", path)?.ok_or_else(|| ParseError::new(&acct_path, "missing"))?;
    let account =
        account_id(acct).ok_or_else(|| ParseError::new(format!("{acct_path}/Id"), "missing IBAN or Othr/Id"))?;
    let mut currency = acct.child("Ccy").map(|c| c.text.trim().to_string()).unwrap_or_default();
    if !currency.is_empty() && !is_currency(&currency) {
        return Err(ParseError::new(format!("{acct_path}/Ccy"), format!("`{}` is not a currency", shorten(&currency))));
    }

    // Entries without a booking date (allowed in camt.052 reports and camt.054 notifications)
    // are dated by their value date, else by when the bank made the record.
    let created = match only(record, "CreDtTm", path)? {
        Some(n) => Some(date_of_datetime(&n.text, &format!("{path}/CreDtTm"))?),
        None => None,
    };
    let mut lines = Vec::new();
    for (i, entry) in record.children.iter().filter(|c| c.name == "Ntry").enumerate() {
        let entry_path = format!("{path}/Ntry[{}]", i + 1);
        parse_entry(entry, &entry_path, i + 1, &statement_id, created, &mut lines)?;
    }
    if currency.is_empty() {
        currency = lines.first().map(|l| l.currency.clone()).unwrap_or_default();
    }
    Ok(Statement { format: format.to_string(), statement_id, account, currency, lines })
}

/// One `Ntry`: one line, or one per transaction of a batch.
fn parse_entry(
    entry: &Node,
    path: &str,
    position: usize,
    statement_id: &str,
    created: Option<NaiveDate>,
    lines: &mut Vec<BankLine>,
) -> Result<(), ParseError> {
    let (amount, currency) = amount_of(only(entry, "Amt", path)?, &format!("{path}/Amt"))?;
    let booked = direction_of(entry, path)?;
    let reversal = match only(entry, "RvslInd", path)? {
        None => false,
        Some(n) => match n.text.trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            other => {
                return Err(ParseError::new(
                    format!("{path}/RvslInd"),
                    format!("`{}` is not a boolean", shorten(other)),
                ));
            }
        },
    };
    // A reversed credit is money going back out.
    let direction = if reversal { booked.reversed() } else { booked };

    let bookg_path = format!("{path}/BookgDt");
    let val_path = format!("{path}/ValDt");
    let value_date = match only(entry, "ValDt", path)? {
        Some(n) => date_choice(n, &val_path)?,
        None => None,
    };
    let booking_date = match only(entry, "BookgDt", path)? {
        Some(n) => date_choice(n, &bookg_path)?.ok_or_else(|| ParseError::new(&bookg_path, "missing Dt or DtTm"))?,
        None => value_date
            .or(created)
            .ok_or_else(|| ParseError::new(&bookg_path, "missing booking date, and no value or creation date"))?,
    };

    let entry_id = [entry.child("AcctSvcrRef"), entry.child("NtryRef")]
        .into_iter()
        .flatten()
        .map(|n| n.text.trim().to_string())
        .find(|t| !t.is_empty())
        .unwrap_or_else(|| position.to_string());

    let txs: Vec<&Node> = entry
        .children
        .iter()
        .filter(|c| c.name == "NtryDtls")
        .flat_map(|d| d.children.iter().filter(|c| c.name == "TxDtls"))
        .collect();

    let entry_code = entry.child("BkTxCd").map(bank_code).unwrap_or_default();
    let line = |tx: Option<&Node>, amount: Decimal, entry_id: String| {
        let details = tx.map(|t| tx_details(t, booked)).unwrap_or_default();
        let bank_code = if entry_code.is_empty() {
            tx.and_then(|t| t.child("BkTxCd")).map(bank_code).unwrap_or_default()
        } else {
            entry_code.clone()
        };
        BankLine {
            booking_date,
            value_date,
            amount,
            currency: currency.clone(),
            direction,
            counterparty_name: details.counterparty_name,
            counterparty_account: details.counterparty_account,
            end_to_end_id: details.end_to_end_id,
            reference: details.reference,
            remittance: details.remittance,
            bank_code,
            statement_id: statement_id.to_string(),
            entry_id,
        }
    };

    // Amounts of the batch parts; all `None` when the bank gave none (then we cannot split).
    let mut parts = Vec::with_capacity(txs.len());
    if txs.len() > 1 {
        for (k, tx) in txs.iter().enumerate() {
            let tx_path = format!("{path}/NtryDtls/TxDtls[{}]", k + 1);
            parts.push(tx_amount(tx, &tx_path)?);
        }
    }
    if txs.len() <= 1 || parts.iter().all(|p| p.is_none()) {
        // One line for the entry; with several amount-less transactions the first one's details
        // stand for the entry (what genkgo/camt's `getTransactionDetail` does too).
        lines.push(line(txs.first().copied(), amount, entry_id));
        return Ok(());
    }

    let mut total = Decimal::ZERO;
    let mut split = Vec::with_capacity(txs.len());
    for (k, (tx, part)) in txs.iter().zip(parts).enumerate() {
        let tx_path = format!("{path}/NtryDtls/TxDtls[{}]", k + 1);
        let Some((part_amount, part_currency)) = part else {
            return Err(ParseError::new(tx_path, "batch transaction without an amount"));
        };
        if part_currency != currency {
            return Err(ParseError::new(
                tx_path,
                format!("transaction currency {part_currency} differs from the entry's {currency}"),
            ));
        }
        total = total.checked_add(part_amount).ok_or_else(|| ParseError::new(path, "transaction amounts overflow"))?;
        // Suffix keeps batch lines unique under (account, statement, entry id).
        split.push(line(Some(tx), part_amount, format!("{entry_id}#{}", k + 1)));
    }
    if total != amount {
        return Err(ParseError::new(
            path,
            format!("batch transactions add up to {total}, the entry amount is {amount}"),
        ));
    }
    lines.extend(split);
    Ok(())
}

/// What a `TxDtls` tells about the other party and the payment's references.
#[derive(Default)]
struct Details {
    counterparty_name: String,
    counterparty_account: String,
    end_to_end_id: String,
    reference: String,
    remittance: String,
}

fn tx_details(tx: &Node, booked: Direction) -> Details {
    let mut d = Details::default();
    if let Some(e2e) = tx.path(&["Refs", "EndToEndId"]) {
        let e2e = e2e.text.trim();
        if !e2e.eq_ignore_ascii_case("NOTPROVIDED") {
            d.end_to_end_id = e2e.to_string();
        }
    }
    // The parties describe the booked transaction, so the booked indicator (before a reversal
    // flips it) says which side is "them": the payer of a credit, the payee of a debit.
    let (party, account, ultimate) = match booked {
        Direction::Credit => ("Dbtr", "DbtrAcct", "UltmtDbtr"),
        Direction::Debit => ("Cdtr", "CdtrAcct", "UltmtCdtr"),
    };
    if let Some(parties) = tx.child("RltdPties") {
        d.counterparty_name = [party, ultimate]
            .iter()
            .filter_map(|p| parties.child(p))
            // Version 8 and later nest the party one level deeper (`Dbtr/Pty/Nm`).
            .filter_map(|p| p.child("Nm").or_else(|| p.path(&["Pty", "Nm"])))
            .map(|n| collapse(&n.text))
            .find(|n| !n.is_empty())
            .unwrap_or_default();
        d.counterparty_account = parties.child(account).and_then(account_id).unwrap_or_default();
    }
    if let Some(rmt) = tx.child("RmtInf") {
        d.reference = rmt
            .children
            .iter()
            .filter(|c| c.name == "Strd")
            .filter_map(|s| s.path(&["CdtrRefInf", "Ref"]))
            .map(|r| r.text.trim().to_string())
            .find(|r| !r.is_empty())
            .unwrap_or_default();
        let ustrd: Vec<&str> = rmt.children.iter().filter(|c| c.name == "Ustrd").map(|c| c.text.as_str()).collect();
        d.remittance = collapse(&ustrd.join(" "));
    }
    d
}

/// The amount of one batch transaction: `AmtDtls/TxAmt/Amt` (the part booked on this entry),
/// else the version 3+ `TxDtls/Amt`.
fn tx_amount(tx: &Node, path: &str) -> Result<Option<(Decimal, String)>, ParseError> {
    if let Some(amt) = tx.path(&["AmtDtls", "TxAmt", "Amt"]) {
        return amount_of(Some(amt), &format!("{path}/AmtDtls/TxAmt/Amt")).map(Some);
    }
    match tx.child("Amt") {
        Some(amt) => amount_of(Some(amt), &format!("{path}/Amt")).map(Some),
        None => Ok(None),
    }
}

fn amount_of(node: Option<&Node>, path: &str) -> Result<(Decimal, String), ParseError> {
    let node = node.ok_or_else(|| ParseError::new(path, "missing amount"))?;
    let amount = parse_amount(&node.text, path)?;
    let currency = node.ccy.as_deref().map(str::trim).unwrap_or_default();
    if !is_currency(currency) {
        return Err(ParseError::new(path, format!("missing or bad currency `{}`", shorten(currency))));
    }
    Ok((amount, currency.to_string()))
}

fn direction_of(entry: &Node, path: &str) -> Result<Direction, ParseError> {
    let loc = format!("{path}/CdtDbtInd");
    match only(entry, "CdtDbtInd", path)?.map(|n| n.text.trim()) {
        Some("CRDT") => Ok(Direction::Credit),
        Some("DBIT") => Ok(Direction::Debit),
        Some(other) => Err(ParseError::new(loc, format!("`{}` is neither CRDT nor DBIT", shorten(other)))),
        None => Err(ParseError::new(loc, "missing")),
    }
}

/// `BkTxCd` as `PMNT/ICDT/DMCT`, or the proprietary code when there is no ISO one.
fn bank_code(code: &Node) -> String {
    if let Some(domain) = code.child("Domn") {
        let part = |n: Option<&Node>| n.map(|n| n.text.trim()).unwrap_or_default().to_string();
        let d = part(domain.child("Cd"));
        let f = part(domain.path(&["Fmly", "Cd"]));
        let s = part(domain.path(&["Fmly", "SubFmlyCd"]));
        if !d.is_empty() {
            return format!("{d}/{f}/{s}");
        }
    }
    code.path(&["Prtry", "Cd"]).map(|n| n.text.trim().to_string()).unwrap_or_default()
}

/// `Acct`-like element: `Id/IBAN` or `Id/Othr/Id`.
fn account_id(acct: &Node) -> Option<String> {
    [acct.path(&["Id", "IBAN"]), acct.path(&["Id", "Othr", "Id"])]
        .into_iter()
        .flatten()
        .map(|n| n.text.trim().to_string())
        .find(|t| !t.is_empty())
}

/// The calendar day of an `xs:dateTime` element such as `CreDtTm`.
fn date_of_datetime(raw: &str, path: &str) -> Result<NaiveDate, ParseError> {
    parse_date_time(raw).ok_or_else(|| bad_date(raw, path))
}

/// A `Dt` or `DtTm` child (`BookgDt`, `ValDt`); `None` when it has neither.
fn date_choice(node: &Node, path: &str) -> Result<Option<NaiveDate>, ParseError> {
    if let Some(dt) = node.child("Dt") {
        return parse_date(&dt.text).map(Some).ok_or_else(|| bad_date(&dt.text, &format!("{path}/Dt")));
    }
    if let Some(dt) = node.child("DtTm") {
        return parse_date_time(&dt.text).map(Some).ok_or_else(|| bad_date(&dt.text, &format!("{path}/DtTm")));
    }
    Ok(None)
}

fn bad_date(raw: &str, path: &str) -> ParseError {
    ParseError::new(path, format!("`{}` is not a date", shorten(raw)))
}

/// `xs:date`: `2014-12-31`, optionally with a time zone (`Z`, `+01:00`), which we drop: the
/// bank's calendar day is the booking day.
fn parse_date(raw: &str) -> Option<NaiveDate> {
    let raw = raw.trim();
    let (day, zone) = (raw.get(..10)?, raw.get(10..)?);
    let b = day.as_bytes();
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !b.get(..4)?.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let zone_ok = zone.is_empty()
        || zone == "Z"
        || (zone.len() == 6
            && (zone.starts_with('+') || zone.starts_with('-'))
            && zone.get(3..4) == Some(":")
            && zone.bytes().enumerate().all(|(i, c)| i == 0 || i == 3 || c.is_ascii_digit()));
    if !zone_ok {
        return None;
    }
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

/// `xs:dateTime` with or without offset; the date as the bank wrote it (its local day).
fn parse_date_time(raw: &str) -> Option<NaiveDate> {
    let raw = raw.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(raw) {
        return Some(dt.naive_local().date());
    }
    let dt = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    // `%Y` takes signs and long years; insist on the plain 4-digit form.
    raw.get(..4).filter(|y| y.bytes().all(|c| c.is_ascii_digit()))?;
    Some(dt.date())
}

fn is_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|c| c.is_ascii_uppercase())
}

fn required_text(node: &Node, name: &str, path: &str) -> Result<String, ParseError> {
    let loc = format!("{path}/{name}");
    let text = only(node, name, path)?.map(|n| n.text.trim().to_string()).unwrap_or_default();
    if text.is_empty() {
        return Err(ParseError::new(loc, "missing"));
    }
    Ok(text)
}

/// The child `name`, refusing it repeated: two amounts on one entry is a broken file, and
/// picking one would be a guess.
fn only<'a>(node: &'a Node, name: &str, path: &str) -> Result<Option<&'a Node>, ParseError> {
    let mut found = node.children.iter().filter(|c| c.name == name);
    let first = found.next();
    if found.next().is_some() {
        return Err(ParseError::new(format!("{path}/{name}"), "appears more than once"));
    }
    Ok(first)
}

/// An element: local name (namespace prefix dropped), the `Ccy` attribute (the only one camt
/// amounts need), its own text and its children.
#[derive(Debug, Default)]
struct Node {
    name: String,
    ccy: Option<String>,
    /// The default namespace declared on this element, read on the root only.
    namespace: Option<String>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn path(&self, names: &[&str]) -> Option<&Node> {
        names.iter().try_fold(self, |node, name| node.child(name))
    }
}

/// Read the XML into a tree, refusing anything that is not one well-formed element.
fn read_tree(input: &[u8]) -> Result<Node, ParseError> {
    // quick-xml without the encoding feature does not skip a byte order mark.
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;

    let open_path = |stack: &[Node]| stack.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join("/");
    let xml_error = |stack: &[Node], pos: u64, what: String| {
        let location =
            if stack.is_empty() { format!("byte {pos}") } else { format!("{} (byte {pos})", open_path(stack)) };
        ParseError::new(location, format!("malformed XML: {}", limit(&what)))
    };

    loop {
        let event = reader.read_event_into(&mut buf);
        let pos = reader.buffer_position();
        let event = match event {
            Ok(e) => e,
            Err(e) => return Err(xml_error(&stack, reader.error_position(), e.to_string())),
        };
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(xml_error(&stack, pos, "content after the root element".into()));
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(xml_error(&stack, pos, format!("nested deeper than {MAX_DEPTH} elements")));
                }
                let node = new_node(&e, stack.is_empty()).map_err(|m| xml_error(&stack, pos, m))?;
                stack.push(node);
            }
            Event::Empty(e) => {
                let node = new_node(&e, stack.is_empty()).map_err(|m| xml_error(&stack, pos, m))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                // quick-xml already checked the end name matches the open element.
                let Some(node) = stack.pop() else {
                    return Err(xml_error(&stack, pos, "closing tag without an open element".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| xml_error(&stack, pos, e.to_string()))?;
                match stack.last_mut() {
                    Some(node) => node.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(xml_error(&stack, pos, "text outside the root element".into())),
                }
            }
            Event::CData(c) => {
                let text = c.decode().map_err(|e| xml_error(&stack, pos, e.to_string()))?;
                match stack.last_mut() {
                    Some(node) => node.text.push_str(&text),
                    None => return Err(xml_error(&stack, pos, "CDATA outside the root element".into())),
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        let pos = reader.buffer_position();
        return Err(xml_error(&stack, pos, "file ends inside an open element".into()));
    }
    root.ok_or_else(|| ParseError::new("byte 0", "no XML element in the file"))
}

fn new_node(e: &BytesStart<'_>, is_root: bool) -> Result<Node, String> {
    let name =
        std::str::from_utf8(e.local_name().as_ref()).map_err(|_| "element name is not UTF-8".to_string())?.to_string();
    let mut node = Node { name, ..Node::default() };
    for attr in e.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let key = attr.key.as_ref();
        if key == b"Ccy" {
            node.ccy = Some(attr.unescape_value().map_err(|e| e.to_string())?.into_owned());
        } else if is_root && key == b"xmlns" {
            node.namespace = Some(attr.unescape_value().map_err(|e| e.to_string())?.into_owned());
        } else if is_root && key.starts_with(b"xmlns:") && node.namespace.is_none() {
            // A prefixed root (`<ns2:Document xmlns:ns2=...>`) declares its namespace this way.
            let prefix = e.name().prefix().map(|p| p.as_ref().to_vec());
            if prefix.as_deref() == key.get(6..) {
                node.namespace = Some(attr.unescape_value().map_err(|e| e.to_string())?.into_owned());
            }
        }
    }
    Ok(node)
}

/// quick-xml errors quote input; keep them readable.
fn limit(message: &str) -> String {
    let mut s: String = message.chars().filter(|c| !c.is_control()).take(160).collect();
    if message.chars().count() > 160 {
        s.push('…');
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::path::PathBuf;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/statements/camt/");

    /// Every `.xml` test file with its bytes; fails loudly when the shared test data is missing.
    fn xml_files() -> Vec<(String, Vec<u8>)> {
        let dir = PathBuf::from(DIR);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("test data {} missing: {e}", dir.display()));
        let mut files: Vec<(String, Vec<u8>)> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect();
        files.sort();
        assert!(files.len() >= 9, "expected the camt test files in {}, found {}", dir.display(), files.len());
        files
    }

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR}{name}")).unwrap_or_else(|e| panic!("{DIR}{name}: {e}"))
    }

    /// `a.b.c` in the JSON, `None` for a missing key or a JSON null.
    fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
        path.split('.').try_fold(v, |v, k| v.get(k)).filter(|v| !v.is_null())
    }

    fn get_str<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
        get(v, path).and_then(Value::as_str)
    }

    /// The first string under `key` anywhere below `v` (genkgo nests the same data in several
    /// DTO shapes; `__RECURSIVITY__` markers are skipped).
    fn find_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
        match v {
            Value::Object(map) => {
                if let Some(s) = map.get(key).and_then(Value::as_str).filter(|s| *s != "__RECURSIVITY__") {
                    return Some(s);
                }
                map.values().find_map(|v| find_str(v, key))
            }
            Value::Array(items) => items.iter().find_map(|v| find_str(v, key)),
            _ => None,
        }
    }

    /// Minor units as genkgo (moneyphp) writes them.
    fn minor_units(amount: Decimal, currency: &str) -> String {
        let exponent = if currency == "JPY" { 0 } else { 2 };
        (amount * Decimal::from(10i64.pow(exponent))).normalize().to_string()
    }

    /// The party genkgo saw on the side we take as counterparty.
    fn expected_party<'a>(detail: &'a Value, booked: &str) -> Option<&'a Value> {
        let side = if booked == "CRDT" { "Debtor" } else { "Creditor" };
        let parties = get(detail, "getRelatedParties")?.as_array()?;
        let of = |class: String| parties.iter().find(|p| get_str(p, "getRelatedPartyType.__CLASS__") == Some(&*class));
        of(format!("Genkgo\\Camt\\DTO\\{side}")).or_else(|| of(format!("Genkgo\\Camt\\DTO\\Ultimate{side}")))
    }

    /// Compares `name` with its JSON; false when the file is (rightly) refused.
    fn compare_with_json(name: &str) -> bool {
        let xml = read(name);
        let json: Value = serde_json::from_slice(&read(&name.replace(".xml", ".json"))).unwrap();
        let entries = get(&json, "getEntries").and_then(Value::as_array).expect("getEntries");
        assert!(!entries.is_empty(), "{name}: no entries in the JSON");

        // Entries without a booking date are dated by their value date or the record's creation.
        let undated = entries.iter().any(|e| get(e, "getBookingDate").is_none());

        let statements = parse(&xml).unwrap_or_else(|e| panic!("{name}: {e}"));
        let lines: Vec<&BankLine> = statements.iter().flat_map(|s| &s.lines).collect();
        assert_eq!(lines.len(), entries.len(), "{name}: lines");
        for (i, (line, entry)) in lines.iter().zip(entries).enumerate() {
            let what = format!("{name} entry {i}");
            let record = get(entry, "getRecord").expect("getRecord");
            let statement = statements.iter().find(|s| s.lines.contains(line)).unwrap();
            assert_eq!(Some(statement.statement_id.as_str()), get_str(record, "getId"), "{what}: id");
            assert_eq!(
                Some(statement.account.as_str()),
                get_str(record, "getAccount.getIdentification"),
                "{what}: account"
            );
            assert_eq!(statement.format, format!("camt.{}", &name[4..7]), "{what}: format");

            let json_amount = get_str(entry, "getAmount.getAmount").unwrap();
            assert_eq!(minor_units(line.amount, &line.currency), json_amount.trim_start_matches('-'), "{what}");
            assert_eq!(Some(line.currency.as_str()), get_str(entry, "getAmount.getCurrency.getCode"), "{what}");
            let booked = get_str(entry, "getCreditDebitIndicator").unwrap();
            let reversed = get(entry, "getReversalIndicator").and_then(Value::as_bool).unwrap_or(false);
            let expected = match (booked, reversed) {
                ("CRDT", false) | ("DBIT", true) => Direction::Credit,
                _ => Direction::Debit,
            };
            assert_eq!(line.direction, expected, "{what}: direction");

            // genkgo converts to UTC; none of the test dates cross midnight doing so.
            let day = |key: &str| get_str(entry, &format!("{key}.0")).map(|d| d[..10].to_string());
            if !undated {
                assert_eq!(Some(line.booking_date.to_string()), day("getBookingDate"), "{what}: booking date");
            }
            assert_eq!(line.value_date.map(|d| d.to_string()), day("getValueDate"), "{what}: value date");
            if let Some(asr) = get_str(entry, "getAccountServicerReference") {
                assert_eq!(line.entry_id, asr, "{what}: entry id");
            } else {
                assert_eq!(line.entry_id, (i + 1).to_string(), "{what}: entry id");
            }

            let Some(detail) = get(entry, "getTransactionDetail") else { continue };
            let e2e = get_str(detail, "getReference.getEndToEndId").unwrap_or_default();
            assert_eq!(line.end_to_end_id, e2e, "{what}: end-to-end id");
            let rmt = get(detail, "getRemittanceInformation");
            let reference = rmt.and_then(|r| find_str(r, "getRef")).unwrap_or_default();
            assert_eq!(line.reference, reference, "{what}: reference");
            let message = rmt.and_then(|r| get_str(r, "getUnstructuredBlock.getMessage")).unwrap_or_default();
            assert!(line.remittance.starts_with(message), "{what}: remittance {:?}", line.remittance);
            match expected_party(detail, booked) {
                Some(party) => {
                    assert_eq!(
                        Some(line.counterparty_name.as_str()),
                        get_str(party, "getRelatedPartyType.getName"),
                        "{what}: counterparty"
                    );
                    let account = get_str(party, "getAccount.getIdentification").unwrap_or_default();
                    assert_eq!(line.counterparty_account, account, "{what}: counterparty account");
                }
                None => assert_eq!(line.counterparty_name, "", "{what}: counterparty"),
            }
        }
        true
    }

    #[test]
    fn test_files_match_genkgo_camt() {
        let files = xml_files();
        let mut compared = Vec::new();
        for (name, _) in &files {
            if name != "camt053.v2.wrong.xml" && compare_with_json(name) {
                compared.push(name.as_str());
            }
        }
        // Every file but the one that is invalid on purpose.
        assert_eq!(compared.len(), files.len() - 1, "{compared:?}");
    }

    #[test]
    fn statement_without_records_is_refused() {
        let err = parse(&read("camt053.v2.wrong.xml")).unwrap_err();
        assert_eq!(err.to_string(), "Document/BkToCstmrStmt: no Stmt in the message");
    }

    #[test]
    fn notification_details_are_read() {
        let statements = parse(&read("camt054.v2.xml")).unwrap();
        let [statement] = statements.as_slice() else { panic!("one notification") };
        assert_eq!(statement.format, "camt.054");
        assert_eq!(statement.account, "CH2801234000123456789");
        // No Acct/Ccy: the first entry's currency.
        assert_eq!(statement.currency, "SEK");
        let [line] = statement.lines.as_slice() else { panic!("amount-less batch stays one line") };
        assert_eq!(line.amount.to_string(), "200000");
        assert_eq!(line.bank_code, "PMNT/ICDT/DMCT");
        assert_eq!(line.booking_date.to_string(), "2007-10-18");
        assert_eq!(line.remittance, "Unstructured Remittance Information V1");
        assert_eq!(line.reference, "ISR ref number V1");
        assert_eq!(line.entry_id, "AAAASESS-FP-ACCR001");
    }

    /// A camt.053 of the given version around the given entries.
    fn statement(version: u8, entries: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.0{version}"><BkToCstmrStmt>
<GrpHdr><MsgId>M1</MsgId></GrpHdr>
<Stmt><Id>S-1</Id><Acct><Id><Othr><Id>0123456789</Id></Othr></Id><Ccy>MXN</Ccy></Acct>{entries}</Stmt>
</BkToCstmrStmt></Document>"#
        )
    }

    fn entry(body: &str) -> String {
        format!(
            "<Ntry><Amt Ccy=\"MXN\">100.50</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2024-03-01</Dt></BookgDt>{body}</Ntry>"
        )
    }

    fn tx(amount: &str, e2e: &str) -> String {
        format!(
            "<TxDtls><Refs><EndToEndId>{e2e}</EndToEndId></Refs><AmtDtls><TxAmt><Amt Ccy=\"MXN\">{amount}</Amt></TxAmt></AmtDtls>\
             <RltdPties><Dbtr><Pty><Nm>ACME  SA</Nm></Pty></Dbtr><DbtrAcct><Id><Othr><Id>646180</Id></Othr></Id></DbtrAcct></RltdPties>\
             <RmtInf><Ustrd>Factura</Ustrd><Ustrd> F-1 </Ustrd></RmtInf></TxDtls>"
        )
    }

    #[test]
    fn batch_entries_become_one_line_per_transaction() {
        let body =
            format!("<NtryRef>N7</NtryRef><NtryDtls>{}{}</NtryDtls>", tx("60.25", "E1"), tx("40.25", "NOTPROVIDED"));
        let statements = parse(statement(8, &entry(&body)).as_bytes()).unwrap();
        let lines = &statements[0].lines;
        assert_eq!(lines.len(), 2);
        assert_eq!(statements[0].account, "0123456789");
        assert_eq!(statements[0].currency, "MXN");
        assert_eq!(lines[0].amount.to_string(), "60.25");
        assert_eq!(lines[1].amount.to_string(), "40.25");
        assert_eq!((lines[0].end_to_end_id.as_str(), lines[1].end_to_end_id.as_str()), ("E1", ""));
        assert_eq!(lines[0].counterparty_name, "ACME SA");
        assert_eq!(lines[0].counterparty_account, "646180");
        assert_eq!(lines[0].remittance, "Factura F-1");
        assert_eq!((lines[0].entry_id.as_str(), lines[1].entry_id.as_str()), ("N7#1", "N7#2"));
    }

    #[test]
    fn batch_parts_must_add_up() {
        let body = format!("<NtryDtls>{}{}</NtryDtls>", tx("60.25", "E1"), tx("40.00", "E2"));
        let err = parse(statement(2, &format!("{}{}", entry(""), entry(&body))).as_bytes()).unwrap_err();
        assert_eq!(err.location, "Document/BkToCstmrStmt/Stmt[1]/Ntry[2]");
        assert!(err.reason.contains("100.25") && err.reason.contains("100.50"), "{err}");
    }

    #[test]
    fn reversal_turns_the_direction_around() {
        let body = "<RvslInd>true</RvslInd><ValDt><DtTm>2024-03-02T23:30:00-06:00</DtTm></ValDt>\
                    <BkTxCd><Prtry><Cd>544</Cd></Prtry></BkTxCd>";
        let statements = parse(statement(4, &entry(body)).as_bytes()).unwrap();
        let line = &statements[0].lines[0];
        assert_eq!(line.direction, Direction::Debit);
        assert_eq!(line.value_date.map(|d| d.to_string()).as_deref(), Some("2024-03-02"));
        assert_eq!(line.bank_code, "544");
        assert_eq!(line.entry_id, "1");
    }

    #[test]
    fn errors_name_the_element() {
        let cases = [
            (entry("").replace("<Amt Ccy=\"MXN\">100.50</Amt>", ""), "Ntry[2]/Amt"),
            (entry("").replace("100.50", "1O0"), "Ntry[2]/Amt"),
            (entry("").replace(" Ccy=\"MXN\"", ""), "Ntry[2]/Amt"),
            (entry("").replace("CRDT", "CRED"), "Ntry[2]/CdtDbtInd"),
            (entry("").replace("<BookgDt><Dt>2024-03-01</Dt></BookgDt>", ""), "Ntry[2]/BookgDt"),
            (entry("").replace("2024-03-01", "2024-02-30"), "Ntry[2]/BookgDt/Dt"),
            (entry("<ValDt><DtTm>yesterday</DtTm></ValDt>"), "Ntry[2]/ValDt/DtTm"),
            (entry("<RvslInd>maybe</RvslInd>"), "Ntry[2]/RvslInd"),
        ];
        for (bad, place) in cases {
            let err = parse(statement(2, &format!("{}{bad}", entry(""))).as_bytes()).unwrap_err();
            assert_eq!(err.location, format!("Document/BkToCstmrStmt/Stmt[1]/{place}"), "{bad}: {err}");
        }
    }

    #[test]
    fn broken_xml_and_foreign_roots_are_refused() {
        let good = statement(2, &entry(""));
        let truncated = parse(&good.as_bytes()[..good.len() - 30]).unwrap_err();
        assert!(truncated.location.contains("byte"), "{truncated}");
        let mismatched = parse(good.replace("</Stmt>", "</Stmx>").as_bytes()).unwrap_err();
        assert!(mismatched.reason.starts_with("malformed XML"), "{mismatched}");
        let foreign = parse(b"<Document><CstmrCdtTrfInitn/></Document>").unwrap_err();
        assert_eq!(foreign.location, "Document");
        let other_root = parse(b"<html><body/></html>").unwrap_err();
        assert_eq!(other_root.location, "html");
        let wrong_namespace = parse(good.replace("camt.053.001", "camt.052.001").as_bytes()).unwrap_err();
        assert!(wrong_namespace.reason.contains("namespace"), "{wrong_namespace}");
        assert!(parse(b"").is_err());
        assert!(parse(format!("{good}<Document/>").as_bytes()).is_err());
        let deep = format!("<Document>{}{}</Document>", "<a>".repeat(100), "</a>".repeat(100));
        assert!(parse(deep.as_bytes()).unwrap_err().reason.contains("deeper"));
    }

    #[test]
    fn prefixed_namespace_and_byte_order_mark_are_read() {
        let xml = statement(8, &entry(""))
            .replace("<Document xmlns=", "<ns2:Document xmlns:ns2=")
            .replace("</Document>", "</ns2:Document>");
        let bytes = [b"\xEF\xBB\xBF".as_slice(), xml.as_bytes()].concat();
        let statements = parse(&bytes).unwrap();
        assert_eq!(statements[0].lines[0].amount.to_string(), "100.50");
        let other = xml.replace("camt.053.001", "camt.054.001");
        assert!(parse(other.as_bytes()).unwrap_err().reason.contains("namespace"));
    }

    /// xorshift64: reproducible pseudo-random bytes without a dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn never_panics_on_damaged_input() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let files = xml_files();
        for (_, xml) in &files {
            for i in 0..=200 {
                let _ = parse(&xml[..xml.len() * i / 200]);
            }
            for _ in 0..2_000 {
                let mut bytes = xml.clone();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(bytes.len());
                    let byte = b"<>/=\"&;0-9.CRDTBITxAmt \x00\xff"[rng.below(23)];
                    match rng.below(3) {
                        0 => bytes[at] = byte,
                        1 => bytes[at] ^= 1 << rng.below(8),
                        _ => bytes.insert(at, byte),
                    }
                }
                let _ = parse(&bytes);
            }
        }
        for _ in 0..500 {
            let len = rng.below(400);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert!(parse(&bytes).is_err());
        }
    }
}

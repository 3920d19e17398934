//! Matching rules without I/O: which open items a bank credit pays.
//!
//! Lines are taken in order; for each credit the rules are tried in order and the first that
//! gives exactly one best answer wins. An item is used at most once across all matches. When two
//! answers are equally good the rule is ambiguous and the next rule is tried. Candidates are
//! always considered in due date then id order, so the result does not depend on input order.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use super::rf::valid_rf;
use super::statement::{BankLine, Direction};

/// An invoice (or one installment of it) not yet fully paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenItem {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub invoice_number: String,
    pub installment: Option<u32>,
    /// RF creditor reference (ISO 11649) the customer was asked to quote.
    pub reference: String,
    pub amount_open: Decimal,
    pub currency: String,
    pub due_date: NaiveDate,
    pub customer_name: String,
    /// IBAN / CLABE the customer paid from before.
    pub customer_accounts: Vec<String>,
}

/// The rule that matched a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// RF creditor reference, amount equal to or above the open amount.
    Reference,
    /// Invoice number quoted in the text, exact amount.
    InvoiceNumber,
    /// Reserved for end-to-end id matching; not produced by [`match_lines`] yet.
    EndToEnd,
    /// Exact amount of one open item of a customer identified by account or name.
    AmountAndCustomer,
    /// Exact amount of several open items of one identified customer.
    SeveralInvoices,
    /// Reference or invoice number found, amount below the open amount.
    Partial,
}

/// A line matched to the items it pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Match {
    /// Index into the lines given to [`match_lines`].
    pub line: usize,
    /// Items paid and the amount applied to each.
    pub items: Vec<(Uuid, Decimal)>,
    pub rule: Rule,
    /// Between 0 and 1.
    pub confidence: Decimal,
}

/// Largest number of items one payment may be split over (rule 4).
pub const MAX_SPLIT: usize = 5;
/// Most open items of one customer searched for a split payment, earliest due first: bounds the
/// search to C(30, 5) combinations.
pub const MAX_SPLIT_CANDIDATES: usize = 30;

/// Match bank credits to open items. `window_days`: how far the booking date may be from the
/// due date for a match by amount and customer (rule 3).
pub fn match_lines(lines: &[BankLine], items: &[OpenItem], window_days: i64) -> Vec<Match> {
    let mut sorted: Vec<&OpenItem> = items.iter().filter(|i| i.amount_open > Decimal::ZERO).collect();
    sorted.sort_by(|a, b| a.due_date.cmp(&b.due_date).then(a.id.cmp(&b.id)));
    let customers = customers(&sorted);
    let mut used: HashSet<Uuid> = HashSet::new();
    let mut matches = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.direction != Direction::Credit || line.amount <= Decimal::ZERO {
            continue;
        }
        let open: Vec<&OpenItem> =
            sorted.iter().copied().filter(|i| !used.contains(&i.id) && i.currency == line.currency).collect();
        let found = by_reference(line, &open)
            .or_else(|| by_invoice_number(line, &open))
            .or_else(|| by_amount_and_customer(line, &open, &customers, window_days))
            .or_else(|| by_several_invoices(line, &open, &customers));
        if let Some((applied, rule, confidence)) = found {
            used.extend(applied.iter().map(|(id, _)| *id));
            matches.push(Match { line: index, items: applied, rule, confidence });
        }
    }
    matches
}

type Found = (Vec<(Uuid, Decimal)>, Rule, Decimal);

/// Decimal from hundredths, e.g. `pct(99)` = 0.99.
fn pct(hundredths: i64) -> Decimal {
    Decimal::new(hundredths, 2)
}

/// How well an amount pays an item: 0 exact, 1 partial, 2 overpaid (lower is better).
fn fit(line: &BankLine, item: &OpenItem) -> u8 {
    match line.amount.cmp(&item.amount_open) {
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Less => 1,
        std::cmp::Ordering::Greater => 2,
    }
}

/// The one candidate with the best fit, none when two share it.
fn best<'a>(line: &BankLine, candidates: &[&'a OpenItem]) -> Option<(&'a OpenItem, u8)> {
    let top = candidates.iter().map(|i| fit(line, i)).min()?;
    let mut at_top = candidates.iter().filter(|i| fit(line, i) == top);
    let first = at_top.next()?;
    if at_top.next().is_some() { None } else { Some((first, top)) }
}

// ----- rule 1: RF creditor reference -----

/// Uppercase without whitespace.
fn compact(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect()
}

/// Valid RF references written in a text: a whole field, a word, or a word starting with `RF`
/// followed by further words (the reference in groups of four).
fn rf_candidates(text: &str, into: &mut BTreeSet<String>) {
    let whole = compact(text);
    if valid_rf(&whole) {
        into.insert(whole);
    }
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == ':' || c == '/')
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_uppercase())
        .collect();
    for start in 0..words.len() {
        if !words[start].starts_with("RF") {
            continue;
        }
        let mut joined = String::new();
        for word in &words[start..] {
            if word.is_empty() || !word.chars().all(|c| c.is_ascii_alphanumeric()) || joined.len() + word.len() > 25 {
                break;
            }
            joined.push_str(word);
            if valid_rf(&joined) {
                into.insert(joined.clone());
            }
        }
    }
}

fn by_reference(line: &BankLine, open: &[&OpenItem]) -> Option<Found> {
    let mut found = BTreeSet::new();
    rf_candidates(&line.reference, &mut found);
    rf_candidates(&line.remittance, &mut found);
    if found.is_empty() {
        return None;
    }
    let candidates: Vec<&OpenItem> = open.iter().copied().filter(|i| found.contains(&compact(&i.reference))).collect();
    let (item, fit) = best(line, &candidates)?;
    let (rule, confidence) = match fit {
        0 => (Rule::Reference, pct(99)),
        1 => (Rule::Partial, pct(90)),
        _ => (Rule::Reference, pct(60)),
    };
    Some((vec![(item.id, line.amount.min(item.amount_open))], rule, confidence))
}

// ----- rule 2: invoice number -----

/// Uppercase alphanumeric segments, split at other characters and at letter/digit changes,
/// each with whether a separator (or the text's edge) comes before it and after it.
fn segments(text: &str) -> Vec<(String, bool, bool)> {
    let mut out: Vec<(String, bool, bool)> = Vec::new();
    let mut hard = true;
    for c in text.chars() {
        if !c.is_alphanumeric() {
            if let Some(last) = out.last_mut() {
                last.2 = true;
            }
            hard = true;
            continue;
        }
        let upper: String = c.to_uppercase().collect();
        let digit = c.is_numeric();
        match out.last_mut() {
            Some(last) if !hard && last.0.chars().last().is_some_and(|p| p.is_numeric() == digit) => {
                last.0.push_str(&upper);
            }
            _ => {
                out.push((upper, hard, false));
            }
        }
        hard = false;
    }
    if let Some(last) = out.last_mut() {
        last.2 = true;
    }
    out
}

/// Whether `number` is written in `text` as a whole token, separators between its letter and
/// digit parts optional (`F-1001`, `F1001`, `f 1001`).
fn mentions(text: &[(String, bool, bool)], number: &[(String, bool, bool)]) -> bool {
    if number.is_empty() || number.len() > text.len() {
        return false;
    }
    text.windows(number.len()).any(|w| {
        w.iter().zip(number).all(|(a, b)| a.0 == b.0) && w.first().is_some_and(|s| s.1) && w.last().is_some_and(|s| s.2)
    })
}

fn by_invoice_number(line: &BankLine, open: &[&OpenItem]) -> Option<Found> {
    let texts = [segments(&line.reference), segments(&line.remittance)];
    let candidates: Vec<&OpenItem> = open
        .iter()
        .copied()
        .filter(|i| {
            let number = segments(&i.invoice_number);
            texts.iter().any(|t| mentions(t, &number))
        })
        .collect();
    let (item, fit) = best(line, &candidates)?;
    let (rule, confidence) = match fit {
        0 => (Rule::InvoiceNumber, pct(97)),
        1 => (Rule::Partial, pct(85)),
        _ => return None,
    };
    Some((vec![(item.id, line.amount)], rule, confidence))
}

// ----- customers -----

struct Customer {
    words: BTreeSet<String>,
    accounts: BTreeSet<String>,
}

fn customers(items: &[&OpenItem]) -> BTreeMap<Uuid, Customer> {
    let mut out: BTreeMap<Uuid, Customer> = BTreeMap::new();
    for item in items {
        let customer = out
            .entry(item.customer_id)
            .or_insert_with(|| Customer { words: name_words(&item.customer_name), accounts: BTreeSet::new() });
        customer.accounts.extend(item.customer_accounts.iter().map(|a| compact(a)).filter(|a| !a.is_empty()));
    }
    out
}

/// Legal forms dropped from the end of a name (after single letters are joined: `S.A.` = `sa`).
const LEGAL_SUFFIXES: &[&str] = &[
    "sa", "de", "cv", "rl", "srl", "sapi", "sab", "sc", "gmbh", "mbh", "ag", "kg", "ug", "llc", "ltd", "limited",
    "inc", "corp", "co", "plc", "bv", "nv", "sas", "sarl", "spa", "sl", "slu", "ab", "oy", "as",
];

fn fold(c: char) -> &'static str {
    match c {
        'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => "a",
        'é' | 'è' | 'ê' | 'ë' => "e",
        'í' | 'ì' | 'î' | 'ï' => "i",
        'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => "o",
        'ú' | 'ù' | 'û' | 'ü' => "u",
        'ñ' => "n",
        'ç' => "c",
        'ß' => "ss",
        _ => "",
    }
}

/// A name as a set of words: lowercase, accents and punctuation removed, runs of single letters
/// joined (`s a de c v` = `sa de cv`), legal forms dropped from the end.
fn name_words(name: &str) -> BTreeSet<String> {
    let mut plain = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        let folded = fold(c);
        if !folded.is_empty() {
            plain.push_str(folded);
        } else if c.is_alphanumeric() {
            plain.push(c);
        } else if c == '&' || c == '\'' {
            // `AT&T`, `O'Brien`: one word.
        } else {
            plain.push(' ');
        }
    }
    let mut words: Vec<String> = Vec::new();
    let mut previous_single = false;
    for word in plain.split_whitespace() {
        let single = word.chars().count() == 1;
        match words.last_mut() {
            Some(last) if single && previous_single => last.push_str(word),
            _ => words.push(word.to_string()),
        }
        previous_single = single;
    }
    while words.len() > 1 && words.last().is_some_and(|w| LEGAL_SUFFIXES.contains(&w.as_str())) {
        words.pop();
    }
    words.into_iter().collect()
}

/// Jaccard similarity of two word sets.
fn similarity(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Decimal {
    let union = a.union(b).count();
    if union == 0 {
        return Decimal::ZERO;
    }
    Decimal::from(a.intersection(b).count()) / Decimal::from(union)
}

/// How a customer was recognized: by account (strong) or by name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Identified {
    Account,
    Name,
}

/// Customers the line's counterparty is: those whose accounts hold its account, else those
/// whose name is similar enough.
fn identify(line: &BankLine, customers: &BTreeMap<Uuid, Customer>) -> Option<(Vec<Uuid>, Identified)> {
    let account = compact(&line.counterparty_account);
    if !account.is_empty() {
        let by_account: Vec<Uuid> =
            customers.iter().filter(|(_, c)| c.accounts.contains(&account)).map(|(id, _)| *id).collect();
        if !by_account.is_empty() {
            return Some((by_account, Identified::Account));
        }
    }
    let words = name_words(&line.counterparty_name);
    if words.is_empty() {
        return None;
    }
    let by_name: Vec<Uuid> =
        customers.iter().filter(|(_, c)| similarity(&words, &c.words) >= pct(80)).map(|(id, _)| *id).collect();
    if by_name.is_empty() { None } else { Some((by_name, Identified::Name)) }
}

// ----- rule 3: amount of one item of an identified customer -----

fn by_amount_and_customer(
    line: &BankLine,
    open: &[&OpenItem],
    customers: &BTreeMap<Uuid, Customer>,
    window_days: i64,
) -> Option<Found> {
    let (who, how) = identify(line, customers)?;
    let mut candidates = open.iter().filter(|i| {
        who.contains(&i.customer_id)
            && i.amount_open == line.amount
            && (line.booking_date - i.due_date).num_days().abs() <= window_days
    });
    let item = candidates.next()?;
    if candidates.next().is_some() {
        return None;
    }
    let confidence = if how == Identified::Account { pct(95) } else { pct(85) };
    Some((vec![(item.id, item.amount_open)], Rule::AmountAndCustomer, confidence))
}

// ----- rule 4: several items of one identified customer -----

fn by_several_invoices(line: &BankLine, open: &[&OpenItem], customers: &BTreeMap<Uuid, Customer>) -> Option<Found> {
    let (who, how) = identify(line, customers)?;
    for size in 2..=MAX_SPLIT {
        let mut solutions: Vec<Vec<&OpenItem>> = Vec::new();
        for customer in &who {
            let theirs: Vec<&OpenItem> = open
                .iter()
                .copied()
                .filter(|i| i.customer_id == *customer && i.amount_open <= line.amount)
                .take(MAX_SPLIT_CANDIDATES)
                .collect();
            let mut chosen = Vec::new();
            subsets(&theirs, 0, size, line.amount, &mut chosen, &mut solutions);
            if solutions.len() > 1 {
                return None;
            }
        }
        match solutions.as_slice() {
            [] => continue,
            [one] => {
                let confidence = if how == Identified::Account { pct(90) } else { pct(80) };
                let applied = one.iter().map(|i| (i.id, i.amount_open)).collect();
                return Some((applied, Rule::SeveralInvoices, confidence));
            }
            _ => return None,
        }
    }
    None
}

/// Collect subsets of exactly `size` items from `items[from..]` summing to `left`; stops after
/// two (two is already ambiguous).
fn subsets<'a>(
    items: &[&'a OpenItem],
    from: usize,
    size: usize,
    left: Decimal,
    chosen: &mut Vec<&'a OpenItem>,
    out: &mut Vec<Vec<&'a OpenItem>>,
) {
    if out.len() > 1 {
        return;
    }
    if chosen.len() == size {
        if left.is_zero() {
            out.push(chosen.clone());
        }
        return;
    }
    for (index, item) in items.iter().enumerate().skip(from) {
        if item.amount_open > left || items.len() - index < size - chosen.len() {
            continue;
        }
        chosen.push(item);
        subsets(items, index + 1, size, left - item.amount_open, chosen, out);
        chosen.pop();
        if out.len() > 1 {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const ACME: u128 = 0xA;
    const BETA: u128 = 0xB;
    const GAMMA: u128 = 0xC;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// An item of `customer`: (id, customer, invoice, reference, amount, due date).
    fn item(n: u128, customer: u128, invoice: &str, reference: &str, amount: &str, due: &str) -> OpenItem {
        let (name, accounts) = match customer {
            ACME => ("ACME S.A. de C.V.", vec!["012180001234567895".to_string()]),
            BETA => ("Müller Beta GmbH", vec!["DE89 3704 0044 0532 0130 00".to_string()]),
            _ => ("Gamma Ltd", vec![]),
        };
        OpenItem {
            id: id(n),
            customer_id: id(customer),
            invoice_number: invoice.to_string(),
            installment: None,
            reference: reference.to_string(),
            amount_open: d(amount),
            currency: "MXN".to_string(),
            due_date: date(due),
            customer_name: name.to_string(),
            customer_accounts: accounts,
        }
    }

    /// A credit: (amount, booked, counterparty name, account, reference, remittance).
    fn credit(amount: &str, booked: &str, name: &str, account: &str, reference: &str, remittance: &str) -> BankLine {
        BankLine {
            booking_date: date(booked),
            value_date: None,
            amount: d(amount),
            currency: "MXN".to_string(),
            direction: Direction::Credit,
            counterparty_name: name.to_string(),
            counterparty_account: account.to_string(),
            end_to_end_id: String::new(),
            reference: reference.to_string(),
            remittance: remittance.to_string(),
            bank_code: String::new(),
            statement_id: "S1".to_string(),
            entry_id: String::new(),
        }
    }

    fn one(lines: &[BankLine], items: &[OpenItem]) -> Option<Match> {
        let mut found = match_lines(lines, items, 10);
        assert!(found.len() <= 1, "{found:?}");
        found.pop()
    }

    fn book() -> Vec<OpenItem> {
        vec![
            item(1, ACME, "F-1001", "RF401001", "1000.00", "2026-03-01"),
            item(2, ACME, "F-1002", "RF131002", "250.00", "2026-03-05"),
            item(3, BETA, "2026-0017", "RF062001", "400.00", "2026-03-10"),
            item(4, GAMMA, "G-77", "RF693001", "75.50", "2026-03-15"),
        ]
    }

    /// Each case: a line, then the expected (rule, confidence, applied items) or none.
    #[test]
    fn table_of_single_lines() {
        type Expected = Option<(Rule, &'static str, Vec<(u128, &'static str)>)>;
        let cases: Vec<(&str, BankLine, Expected)> = vec![
            (
                "RF in reference, exact amount",
                credit("1000.00", "2026-06-01", "Someone", "", "RF401001", ""),
                Some((Rule::Reference, "0.99", vec![(1, "1000.00")])),
            ),
            (
                "RF in remittance, lower case, groups of four",
                credit("250.00", "2026-06-01", "Someone", "", "", "pago rf13 1002 gracias"),
                Some((Rule::Reference, "0.99", vec![(2, "250.00")])),
            ),
            (
                "RF in groups of four, longer reference",
                credit("400.00", "2026-06-01", "", "", "RF06 2001", ""),
                Some((Rule::Reference, "0.99", vec![(3, "400.00")])),
            ),
            (
                "RF with less than open amount is partial",
                credit("300.00", "2026-06-01", "", "", "RF401001", ""),
                Some((Rule::Partial, "0.90", vec![(1, "300.00")])),
            ),
            (
                "RF with more than open amount applies the open amount",
                credit("1200.00", "2026-06-01", "", "", "RF401001", ""),
                Some((Rule::Reference, "0.60", vec![(1, "1000.00")])),
            ),
            (
                "mistyped RF (digits swapped) matches nothing, not the item it resembles",
                credit("250.00", "2026-06-01", "Someone", "", "RF401002", ""),
                None,
            ),
            (
                "mistyped RF of another item's check digits falls to the invoice number",
                credit("250.00", "2026-06-01", "Someone", "", "RF13 1001", "F1002"),
                Some((Rule::InvoiceNumber, "0.97", vec![(2, "250.00")])),
            ),
            (
                "invoice number without dash",
                credit("1000.00", "2026-06-01", "Someone", "", "", "Factura F1001"),
                Some((Rule::InvoiceNumber, "0.97", vec![(1, "1000.00")])),
            ),
            (
                "invoice number lower case with a space",
                credit("1000.00", "2026-06-01", "Someone", "", "", "pago f 1001."),
                Some((Rule::InvoiceNumber, "0.97", vec![(1, "1000.00")])),
            ),
            (
                "invoice number partial",
                credit("100.00", "2026-06-01", "Someone", "", "inv 2026-0017", ""),
                Some((Rule::Partial, "0.85", vec![(3, "100.00")])),
            ),
            (
                "invoice number inside a longer token does not count",
                credit("1000.00", "2026-06-01", "Someone", "", "", "F10011 XF1001"),
                None,
            ),
            (
                "invoice number overpaid is not rule 2",
                credit("1100.00", "2026-06-01", "Someone", "", "", "F-1001"),
                None,
            ),
            (
                "amount and customer by account, spaces in the account",
                credit("400.00", "2026-03-12", "Unknown", "de89370400440532013000", "", ""),
                Some((Rule::AmountAndCustomer, "0.95", vec![(3, "400.00")])),
            ),
            (
                "amount and customer by account, outside the window",
                credit("400.00", "2026-04-12", "Unknown", "DE89370400440532013000", "", ""),
                None,
            ),
            (
                "amount and customer by a name spelled differently",
                credit("1000.00", "2026-03-02", "Acme", "", "", ""),
                Some((Rule::AmountAndCustomer, "0.85", vec![(1, "1000.00")])),
            ),
            (
                "name with accents and legal form",
                credit("400.00", "2026-03-02", "MULLER BETA", "", "", ""),
                Some((Rule::AmountAndCustomer, "0.85", vec![(3, "400.00")])),
            ),
            (
                "a different name is not the customer",
                credit("1000.00", "2026-03-02", "Acme Holdings Group", "", "", ""),
                None,
            ),
            ("amount of no item of an unidentified payer", credit("75.50", "2026-03-15", "Nobody", "", "", ""), None),
            (
                "several invoices of one customer by account",
                credit("1250.00", "2026-06-01", "", "012180001234567895", "", ""),
                Some((Rule::SeveralInvoices, "0.90", vec![(1, "1000.00"), (2, "250.00")])),
            ),
            (
                "several invoices of one customer by name",
                credit("1250.00", "2026-06-01", "ACME SA DE CV", "", "", ""),
                Some((Rule::SeveralInvoices, "0.80", vec![(1, "1000.00"), (2, "250.00")])),
            ),
        ];
        for (name, line, expected) in cases {
            let got = one(std::slice::from_ref(&line), &book());
            let got = got.map(|m| {
                assert_eq!(m.line, 0, "{name}");
                (m.rule, m.confidence, m.items)
            });
            let expected = expected.map(|(rule, confidence, items)| {
                (rule, d(confidence), items.into_iter().map(|(n, a)| (id(n), d(a))).collect::<Vec<_>>())
            });
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn valid_rf_checks_the_check_digits() {
        assert!(valid_rf("RF18539007547034"));
        assert!(valid_rf("RF401001"));
        assert!(!valid_rf("RF19539007547034"));
        assert!(!valid_rf("RF18539007547043"));
        assert!(!valid_rf("RF"));
    }

    #[test]
    fn names_are_normalized() {
        let acme = name_words("ACME S.A. de C.V.");
        assert_eq!(acme, name_words("Acme"));
        assert_eq!(acme, name_words("acme sa de cv"));
        assert_eq!(name_words("Müller GmbH"), name_words("MULLER"));
        assert_eq!(name_words("Tools, Ltd."), name_words("tools llc"));
        assert_eq!(name_words("Holland B.V."), name_words("holland"));
        assert_eq!(similarity(&name_words("Acme Foods"), &name_words("Acme")), d("0.5"));
    }

    #[test]
    fn invoice_number_tokens() {
        let number = segments("F-1001");
        for text in ["F-1001", "F1001", "f 1001", "pago: F1001, gracias", "(f-1001)"] {
            assert!(mentions(&segments(text), &number), "{text}");
        }
        for text in ["F10010", "XF1001", "1001", "F-100", "F 1001A"] {
            assert!(!mentions(&segments(text), &number), "{text}");
        }
    }

    #[test]
    fn debits_are_ignored() {
        let mut line = credit("1000.00", "2026-03-01", "ACME", "012180001234567895", "RF401001", "F-1001");
        line.direction = Direction::Debit;
        assert_eq!(match_lines(&[line], &book(), 10), vec![]);
    }

    #[test]
    fn other_currency_is_ignored() {
        let mut line = credit("1000.00", "2026-03-01", "", "", "RF401001", "");
        line.currency = "USD".to_string();
        assert_eq!(match_lines(&[line], &book(), 10), vec![]);
    }

    #[test]
    fn tie_between_two_items_is_left_unmatched() {
        let items = vec![
            item(1, ACME, "F-1001", "RF401001", "500.00", "2026-03-01"),
            item(2, ACME, "F-1002", "RF131002", "500.00", "2026-03-03"),
        ];
        let line = credit("500.00", "2026-03-02", "Acme", "012180001234567895", "", "");
        assert_eq!(match_lines(&[line], &items, 10), vec![]);
    }

    #[test]
    fn tie_between_two_split_subsets_is_left_unmatched() {
        let items = vec![
            item(1, ACME, "F-1", "", "100.00", "2026-03-01"),
            item(2, ACME, "F-2", "", "200.00", "2026-03-02"),
            item(3, ACME, "F-3", "", "150.00", "2026-03-03"),
            item(4, ACME, "F-4", "", "150.00", "2026-03-04"),
        ];
        let line = credit("300.00", "2026-06-01", "Acme", "", "", "");
        assert_eq!(match_lines(&[line], &items, 10), vec![]);
    }

    #[test]
    fn two_invoices_quoted_with_exact_amounts_tie() {
        let items = vec![
            item(1, ACME, "F-1001", "", "500.00", "2026-03-01"),
            item(2, ACME, "F-1002", "", "500.00", "2026-03-03"),
        ];
        let line = credit("500.00", "2026-06-01", "Nobody", "", "", "F1001 F1002");
        assert_eq!(match_lines(&[line], &items, 10), vec![]);
    }

    #[test]
    fn split_payment_over_three_invoices() {
        let items = vec![
            item(1, ACME, "F-1", "", "100.00", "2026-03-01"),
            item(2, ACME, "F-2", "", "230.00", "2026-03-02"),
            item(3, ACME, "F-3", "", "45.25", "2026-03-03"),
            item(4, ACME, "F-4", "", "999.00", "2026-03-04"),
            item(5, BETA, "B-1", "", "100.00", "2026-03-01"),
            item(6, ACME, "F-5", "", "80.00", "2026-03-05"),
        ];
        let line = credit("375.25", "2026-06-01", "", "012180001234567895", "", "pago facturas");
        let found = match_lines(&[line], &items, 10);
        assert_eq!(
            found,
            vec![Match {
                line: 0,
                items: vec![(id(1), d("100.00")), (id(2), d("230.00")), (id(3), d("45.25"))],
                rule: Rule::SeveralInvoices,
                confidence: d("0.90"),
            }]
        );
    }

    #[test]
    fn smallest_subset_wins() {
        let items = vec![
            item(1, ACME, "F-1", "", "100.00", "2026-03-01"),
            item(2, ACME, "F-2", "", "200.00", "2026-03-02"),
            item(3, ACME, "F-3", "", "300.00", "2026-03-03"),
            item(4, ACME, "F-4", "", "400.00", "2026-03-04"),
        ];
        // 600 = 200 + 400 (two items) = 100 + 200 + 300 (three items).
        let line = credit("600.00", "2026-06-01", "", "012180001234567895", "", "");
        let found = match_lines(&[line], &items, 10);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].items, vec![(id(2), d("200.00")), (id(4), d("400.00"))]);
    }

    #[test]
    fn an_item_is_not_used_twice() {
        let lines = vec![
            credit("1000.00", "2026-03-01", "", "", "RF401001", ""),
            credit("1000.00", "2026-03-01", "", "", "RF401001", ""),
            credit("1000.00", "2026-03-01", "Acme", "012180001234567895", "", "F-1001"),
            credit("250.00", "2026-03-05", "Acme", "", "", ""),
        ];
        let found = match_lines(&lines, &book(), 10);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].line, found[0].rule), (0, Rule::Reference));
        assert_eq!(found[0].items, vec![(id(1), d("1000.00"))]);
        assert_eq!((found[1].line, found[1].rule), (3, Rule::AmountAndCustomer));
        assert_eq!(found[1].items, vec![(id(2), d("250.00"))]);
    }

    #[test]
    fn a_used_item_leaves_the_other_tied_item_unambiguous() {
        let items = vec![
            item(1, ACME, "F-1001", "RF401001", "500.00", "2026-03-01"),
            item(2, ACME, "F-1002", "RF131002", "500.00", "2026-03-03"),
        ];
        let lines = vec![
            credit("500.00", "2026-03-02", "", "", "RF401001", ""),
            credit("500.00", "2026-03-02", "Acme", "", "", ""),
        ];
        let found = match_lines(&lines, &items, 10);
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].items, vec![(id(2), d("500.00"))]);
        assert_eq!(found[1].rule, Rule::AmountAndCustomer);
    }

    #[test]
    fn result_does_not_depend_on_item_order() {
        let lines = vec![
            credit("1250.00", "2026-06-01", "ACME", "", "", ""),
            credit("400.00", "2026-03-10", "Muller Beta", "", "", ""),
        ];
        let mut items = book();
        let forward = match_lines(&lines, &items, 10);
        items.reverse();
        assert_eq!(match_lines(&lines, &items, 10), forward);
        assert_eq!(forward.len(), 2);
    }

    #[test]
    fn reference_beats_invoice_number_and_customer() {
        // The text quotes F-1002 but the reference is item 1's: rule 1 wins.
        let line = credit("1000.00", "2026-03-05", "Acme", "", "RF40 1001", "F-1002");
        let found = match_lines(&[line], &book(), 10);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].items, vec![(id(1), d("1000.00"))]);
        assert_eq!(found[0].rule, Rule::Reference);
    }
}

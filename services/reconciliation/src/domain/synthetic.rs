//! Labelled synthetic bank statements: open items of invented customers and the bank lines that
//! pay them, each line with the items it truly pays, to measure the matcher against. Pure and
//! deterministic: the same seed gives the same book.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::matching::{Match, OpenItem};
use super::rf::{mod97, rf_reference};
use super::statement::{BankLine, Direction};

/// How a line was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// RF reference in the reference field, exact amount.
    RfInReference,
    /// RF reference written in groups of four in the remittance, exact amount.
    RfGroupedInRemittance,
    /// Invoice number in the remittance (`F1001`, `F-1001`, `f 1001`), exact amount.
    InvoiceNumber,
    /// Nothing quoted; the payer's account is known and the amount exact.
    KnownAccount,
    /// Nothing quoted, no known account; the name spelled differently, amount exact.
    NameVariant,
    /// One payment for 2–3 invoices of a customer whose account is known.
    SeveralInvoices,
    /// RF reference in the reference field, less than the open amount.
    Partial,
    /// An RF reference with one digit changed (check digits fail) and the invoice number.
    MistypedReference,
    /// Fees, debits and credits from unknown payers: must match nothing.
    Noise,
}

impl Scenario {
    /// All scenarios with their share of lines, per mille.
    pub const SHARES: [(Scenario, u32); 9] = [
        (Scenario::RfInReference, 400),
        (Scenario::RfGroupedInRemittance, 100),
        (Scenario::InvoiceNumber, 150),
        (Scenario::KnownAccount, 100),
        (Scenario::NameVariant, 50),
        (Scenario::SeveralInvoices, 50),
        (Scenario::Partial, 50),
        (Scenario::MistypedReference, 30),
        (Scenario::Noise, 70),
    ];
}

/// Open items, bank lines and, for each line, the items it truly pays (`None` for noise lines,
/// which must not be matched) and the scenario that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Book {
    pub items: Vec<OpenItem>,
    pub lines: Vec<BankLine>,
    pub truth: Vec<Option<Vec<Uuid>>>,
    pub scenarios: Vec<Scenario>,
}

/// How a matcher did on a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    /// Matches made.
    pub matched: usize,
    /// Matches whose item set equals the truth of their line.
    pub correct: usize,
    /// Lines that truly pay something (truth is `Some`).
    pub lines: usize,
}

impl Score {
    /// Correct matches per thousand matches (1000 when nothing was matched).
    pub fn precision_per_mille(&self) -> usize {
        (self.correct * 1000).checked_div(self.matched).unwrap_or(1000)
    }

    /// Correct matches per thousand lines that pay something (1000 when there are none).
    pub fn coverage_per_mille(&self) -> usize {
        (self.correct * 1000).checked_div(self.lines).unwrap_or(1000)
    }
}

/// Score matches against the truth of the book.
pub fn score(book: &Book, matches: &[Match]) -> Score {
    let correct = matches
        .iter()
        .filter(|m| {
            let Some(Some(truth)) = book.truth.get(m.line) else { return false };
            let got: BTreeSet<Uuid> = m.items.iter().map(|(id, _)| *id).collect();
            let want: BTreeSet<Uuid> = truth.iter().copied().collect();
            got == want
        })
        .count();
    Score { matched: matches.len(), correct, lines: book.truth.iter().filter(|t| t.is_some()).count() }
}

// ----- check digits -----

/// An IBAN for a country code and a numeric BBAN, with its check digits.
fn iban(country: &str, bban: &str) -> String {
    let rest = mod97(&format!("{bban}{country}00")).unwrap_or(0);
    format!("{country}{:02}{bban}", 98 - rest)
}

/// A text in groups of four separated by spaces, as printed.
fn grouped(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join(" ")
}

// ----- randomness -----

/// xorshift64*: small, seeded, good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        let mut rng = Rng(if mixed == 0 { 1 } else { mixed });
        for _ in 0..8 {
            rng.next();
        }
        rng
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { (self.next() >> 11) % n }
    }

    /// In `low..=high`.
    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below(high.abs_diff(low) + 1) as i64
    }

    fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len() as u64) as usize]
    }
}

// ----- customers -----

const TRADES: &[&str] = &[
    "Talleres",
    "Distribuidora",
    "Comercial",
    "Ferretería",
    "Panadería",
    "Transportes",
    "Construcciones",
    "Bäckerei",
    "Autohaus",
    "Logística",
    "Consultoría",
    "Maschinenbau",
    "Papelería",
    "Farmacia",
    "Óptica",
    "Agrícola",
    "Textil",
    "Importadora",
    "Elektro",
    "Cafetería",
];

const SURNAMES: &[&str] = &[
    "Núñez",
    "García",
    "Müller",
    "Schäfer",
    "López",
    "Peña",
    "Köhler",
    "Ibáñez",
    "Fernández",
    "Weiß",
    "Martín",
    "Gómez",
    "Brandt",
    "Vogel",
    "Ramírez",
    "Jiménez",
    "Álvarez",
    "Hoffmann",
    "Castillo",
    "Ortega",
];

/// Legal forms and other ways of writing each (the matcher drops them all).
const LEGAL_FORMS: &[(&str, &[&str])] = &[
    ("S.A. de C.V.", &["SA DE CV", "sa de cv", "S.A. DE C.V.", ""]),
    ("GmbH", &["GMBH", "gmbh", ""]),
    ("S.L.", &["SL", "S L", ""]),
    ("", &[""]),
    ("S.A.", &["SA", "S A", ""]),
    ("KG", &["kg", ""]),
    ("Ltd", &["LTD", "Limited", ""]),
    ("S.R.L.", &["SRL", ""]),
];

/// Payers that are no customer: no word in common with any customer name.
const STRANGERS: &[&str] = &[
    "Amazon Payments Europe",
    "PayPal Europe",
    "Stripe Technology Europe",
    "Juan Pablo Pérez",
    "Hacienda Tesorería",
    "Adyen NV",
    "Marisol Quintana",
    "Kundenservice Nord",
    "Seguros Atlántico",
    "Rückerstattung Versand",
];

struct Customer {
    id: Uuid,
    trade: &'static str,
    surname: String,
    legal: usize,
    account: String,
}

impl Customer {
    fn name(&self) -> String {
        let form = LEGAL_FORMS[self.legal].0;
        if form.is_empty() {
            format!("{} {}", self.trade, self.surname)
        } else {
            format!("{} {} {form}", self.trade, self.surname)
        }
    }
}

/// Accents removed, for names as some banks print them.
fn ascii_fold(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'á' | 'à' | 'ä' => "a".to_string(),
            'Á' | 'Ä' => "A".to_string(),
            'é' | 'è' => "e".to_string(),
            'í' => "i".to_string(),
            'ó' | 'ö' => "o".to_string(),
            'Ó' | 'Ö' => "O".to_string(),
            'ú' | 'ü' => "u".to_string(),
            'Ü' => "U".to_string(),
            'ñ' => "n".to_string(),
            'ß' => "ss".to_string(),
            other => other.to_string(),
        })
        .collect()
}

/// The customer's name as another payer's bank might write it: case, accents, legal form and
/// word order changed, still the same words.
fn name_variant(customer: &Customer, rng: &mut Rng) -> String {
    let legal = *rng.pick(LEGAL_FORMS[customer.legal].1);
    let (first, second) = if rng.below(2) == 0 {
        (customer.trade, customer.surname.as_str())
    } else {
        (customer.surname.as_str(), customer.trade)
    };
    let base = format!("{first} {second}");
    let base = match rng.below(3) {
        0 => base.to_uppercase(),
        1 => ascii_fold(&base),
        _ => ascii_fold(&base).to_uppercase(),
    };
    if legal.is_empty() { base } else { format!("{base} {legal}") }
}

// ----- generation -----

struct Generator {
    rng: Rng,
    start: NaiveDate,
    next_id: u128,
    next_invoice: u64,
    amounts: HashSet<i64>,
    items: Vec<OpenItem>,
    customers: Vec<Customer>,
}

impl Generator {
    fn id(&mut self) -> Uuid {
        self.next_id += 1;
        Uuid::from_u128(self.next_id)
    }

    fn day(&self, offset: i64) -> NaiveDate {
        self.start + Duration::days(offset)
    }

    /// An amount in cents between `low` and `high` euros used by nothing else.
    fn fresh_cents(&mut self, low: i64, high: i64) -> i64 {
        loop {
            let cents = self.rng.between(low * 100, high * 100);
            if self.amounts.insert(cents) {
                return cents;
            }
        }
    }

    /// A new open item of a customer; its index in `items`.
    fn item(&mut self, customer: usize) -> usize {
        let id = self.id();
        self.next_invoice += 1;
        let number = self.next_invoice;
        let cents = self.fresh_cents(40, 6000);
        let due_offset = self.rng.between(-30, 30);
        let due_date = self.day(due_offset);
        let c = &self.customers[customer];
        let body = format!("{:04}{:08}", customer % 10_000, number % 100_000_000);
        self.items.push(OpenItem {
            id,
            customer_id: c.id,
            invoice_number: format!("F-{number}"),
            installment: None,
            reference: rf_reference(&body),
            amount_open: Decimal::new(cents, 2),
            currency: "EUR".to_string(),
            due_date,
            customer_name: c.name(),
            customer_accounts: vec![c.account.clone()],
        });
        self.items.len() - 1
    }

    /// The account as the bank printed it: compact or in groups of four.
    fn printed(&mut self, account: &str) -> String {
        if self.rng.below(3) == 0 { grouped(account) } else { account.to_string() }
    }

    /// An invoice number as payers write it.
    fn invoice_text(&mut self, invoice: &str) -> String {
        let digits = invoice.trim_start_matches("F-");
        let number = match self.rng.below(4) {
            0 => format!("F{digits}"),
            1 => format!("F-{digits}"),
            2 => format!("f {digits}"),
            _ => format!("f{digits}"),
        };
        let lead = *self.rng.pick(&["Factura", "Pago factura", "Rechnung", "Invoice", "", "Pago"]);
        if lead.is_empty() { number } else { format!("{lead} {number}") }
    }

    /// The reference with one body digit changed: its check digits fail.
    fn mistyped(&mut self, reference: &str) -> String {
        let mut chars: Vec<char> = reference.chars().collect();
        let at = 4 + self.rng.below((chars.len() - 4) as u64) as usize;
        let old = chars[at].to_digit(10).unwrap_or(0);
        let new = (old + 1 + self.rng.below(9) as u32) % 10;
        chars[at] = char::from_digit(new, 10).unwrap_or('0');
        chars.into_iter().collect()
    }
}

fn blank_line(booking_date: NaiveDate, cents: i64, direction: Direction) -> BankLine {
    BankLine {
        booking_date,
        value_date: Some(booking_date),
        amount: Decimal::new(cents, 2),
        currency: "EUR".to_string(),
        direction,
        counterparty_name: String::new(),
        counterparty_account: String::new(),
        end_to_end_id: "NOTPROVIDED".to_string(),
        reference: String::new(),
        remittance: String::new(),
        bank_code: "PMNT-RCDT-ESCT".to_string(),
        statement_id: String::new(),
        entry_id: String::new(),
    }
}

/// A book of `customers` customers (at least one) and `lines` bank lines booked around `start`,
/// scenarios in the shares of [`Scenario::SHARES`], in booking date order. Besides the items the
/// lines pay, each customer has a few items nobody pays.
pub fn generate(seed: u64, customers: usize, lines: usize, start: NaiveDate) -> Book {
    let customers = customers.max(1);
    let mut g = Generator {
        rng: Rng::new(seed),
        start,
        next_id: 0,
        next_invoice: 1000,
        amounts: HashSet::new(),
        items: Vec::new(),
        customers: Vec::new(),
    };

    // Customers: distinct trade and surname pairs, an IBAN or CLABE each.
    let pairs = TRADES.len() * SURNAMES.len();
    let offset = g.rng.below(pairs as u64) as usize;
    for index in 0..customers {
        let pair = (offset + index * 7) % pairs;
        let round = index / pairs;
        let surname = SURNAMES[pair % SURNAMES.len()];
        let surname = if round == 0 { surname.to_string() } else { format!("{surname} {}", round + 1) };
        let account = match g.rng.below(3) {
            0 => format!("0121800{:011}", index),
            1 => iban("DE", &format!("37040044{:010}", index)),
            _ => iban("ES", &format!("2100041845{:010}", index)),
        };
        let id = g.id();
        let legal = g.rng.below(LEGAL_FORMS.len() as u64) as usize;
        g.customers.push(Customer { id, trade: TRADES[pair / SURNAMES.len()], surname, legal, account });
    }

    // Scenarios by quota, then shuffled.
    let mut scenarios: Vec<Scenario> = Vec::with_capacity(lines);
    for (scenario, share) in Scenario::SHARES {
        let count = lines * share as usize / 1000;
        scenarios.extend(std::iter::repeat_n(scenario, count));
    }
    while scenarios.len() < lines {
        scenarios.push(Scenario::RfInReference);
    }
    for i in (1..scenarios.len()).rev() {
        let j = g.rng.below(i as u64 + 1) as usize;
        scenarios.swap(i, j);
    }

    let mut made: Vec<(BankLine, Option<Vec<Uuid>>, Scenario)> = Vec::with_capacity(lines);
    for scenario in scenarios {
        let customer = g.rng.below(customers as u64) as usize;
        let (line, truth) = make_line(&mut g, scenario, customer);
        made.push((line, truth, scenario));
    }

    // Items nobody pays.
    for customer in 0..customers {
        for _ in 0..2 {
            g.item(customer);
        }
    }

    made.sort_by_key(|(line, _, _)| line.booking_date);
    let statement_id = format!("SYN-{seed}");
    let mut book = Book { items: g.items, lines: Vec::new(), truth: Vec::new(), scenarios: Vec::new() };
    for (index, (mut line, truth, scenario)) in made.into_iter().enumerate() {
        line.statement_id.clone_from(&statement_id);
        line.entry_id = format!("SYN{seed:X}-{index:07}");
        book.lines.push(line);
        book.truth.push(truth);
        book.scenarios.push(scenario);
    }
    book
}

fn make_line(g: &mut Generator, scenario: Scenario, customer: usize) -> (BankLine, Option<Vec<Uuid>>) {
    if scenario == Scenario::Noise {
        return (noise(g), None);
    }
    let index = g.item(customer);
    let item = g.items[index].clone();
    let near = g.rng.between(-7, 7);
    let later = g.rng.between(-10, 30);
    let name = g.customers[customer].name();
    let account = g.customers[customer].account.clone();
    let mut line = blank_line(item.due_date + Duration::days(later), 0, Direction::Credit);
    line.amount = item.amount_open;
    line.counterparty_name = name;
    let mut truth = vec![item.id];
    match scenario {
        Scenario::RfInReference => {
            line.counterparty_account = g.printed(&account);
            line.reference = item.reference.clone();
        }
        Scenario::RfGroupedInRemittance => {
            line.counterparty_account = g.printed(&account);
            let lead = *g.rng.pick(&["Pago", "Zahlung", "Payment ref", "Ref."]);
            line.remittance = format!("{lead} {}", grouped(&item.reference));
        }
        Scenario::InvoiceNumber => {
            if g.rng.below(2) == 0 {
                line.counterparty_account = g.printed(&account);
            }
            line.remittance = g.invoice_text(&item.invoice_number);
        }
        Scenario::KnownAccount => {
            line.booking_date = item.due_date + Duration::days(near);
            line.counterparty_account = g.printed(&account);
            line.remittance = g.rng.pick(&["Pago", "Zahlung", "Transferencia", "", "Payment"]).to_string();
        }
        Scenario::NameVariant => {
            line.booking_date = item.due_date + Duration::days(near);
            line.counterparty_name = name_variant(&g.customers[customer], &mut g.rng);
            if g.rng.below(2) == 0 {
                line.counterparty_account = iban("NL", &format!("{}", 4_000_000_000u64 + g.rng.below(1_000_000_000)));
            }
            line.remittance = g.rng.pick(&["Pago proveedor", "Überweisung", ""]).to_string();
        }
        Scenario::SeveralInvoices => {
            line.counterparty_account = g.printed(&account);
            let more = 1 + g.rng.below(2) as usize;
            let mut total = item.amount_open;
            for _ in 0..more {
                let other = g.item(customer);
                total += g.items[other].amount_open;
                truth.push(g.items[other].id);
            }
            line.amount = total;
            line.remittance = g.rng.pick(&["Pago facturas", "Sammelzahlung", "Payment several invoices"]).to_string();
        }
        Scenario::Partial => {
            line.counterparty_account = g.printed(&account);
            line.reference = item.reference.clone();
            let share = g.rng.between(20, 90);
            line.amount = (item.amount_open * Decimal::new(share, 2)).round_dp(2);
        }
        Scenario::MistypedReference => {
            line.counterparty_account = g.printed(&account);
            line.reference = g.mistyped(&item.reference);
            line.remittance = g.invoice_text(&item.invoice_number);
        }
        Scenario::Noise => {}
    }
    (line, Some(truth))
}

/// A fee, a debit or a credit from a stranger, with an amount no item has.
fn noise(g: &mut Generator) -> BankLine {
    let booked = g.rng.between(-30, 40);
    let booked = g.day(booked);
    match g.rng.below(3) {
        0 => {
            let cents = g.fresh_cents(1, 30);
            let mut line = blank_line(booked, cents, Direction::Debit);
            line.counterparty_name = "Banco".to_string();
            line.remittance = g.rng.pick(&["Comisión mantenimiento", "Kontoführungsgebühr", "Wire fee"]).to_string();
            line.bank_code = "ACMT-MDOP-CHRG".to_string();
            line
        }
        1 => {
            let cents = g.fresh_cents(50, 5000);
            let mut line = blank_line(booked, cents, Direction::Debit);
            line.counterparty_name = g.rng.pick(STRANGERS).to_string();
            line.remittance = "Proveedor pago".to_string();
            line.bank_code = "PMNT-ICDT-ESCT".to_string();
            line
        }
        _ => {
            let cents = g.fresh_cents(5, 8000);
            let mut line = blank_line(booked, cents, Direction::Credit);
            line.counterparty_name = g.rng.pick(STRANGERS).to_string();
            line.counterparty_account = iban("NL", &format!("{}", 5_000_000_000u64 + g.rng.below(1_000_000_000)));
            line.remittance = g.rng.pick(&["Refund", "Auszahlung", "Devolución", "Payout"]).to_string();
            line
        }
    }
}

/// Scenarios counted, for tests and reports.
pub fn scenario_counts(book: &Book) -> BTreeMap<Scenario, usize> {
    let mut counts = BTreeMap::new();
    for scenario in &book.scenarios {
        *counts.entry(*scenario).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::matching::match_lines;
    use super::*;
    use crate::domain::rf::valid_rf;

    fn start() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    }

    #[test]
    fn same_seed_same_book() {
        let a = generate(42, 30, 300, start());
        let b = generate(42, 30, 300, start());
        assert_eq!(a, b);
        let c = generate(43, 30, 300, start());
        assert_ne!(a.lines, c.lines);
        assert_eq!(a.lines.len(), 300);
        assert_eq!(a.truth.len(), 300);
    }

    #[test]
    fn rf_check_digits() {
        assert_eq!(rf_reference("539007547034"), "RF18539007547034");
        assert!(valid_rf("RF18539007547034"));
        assert!(valid_rf("RF401001"));
        assert!(!valid_rf("RF19539007547034"));
        assert!(!valid_rf("RF18539007547043"));
        assert_eq!(iban("DE", "370400440532013000"), "DE89370400440532013000");
    }

    #[test]
    fn every_reference_is_valid_and_every_mistyped_one_is_not() {
        let book = generate(3, 100, 1000, start());
        for item in &book.items {
            assert!(valid_rf(&item.reference), "{}", item.reference);
        }
        let references: HashSet<&str> = book.items.iter().map(|i| i.reference.as_str()).collect();
        assert_eq!(references.len(), book.items.len());
        for (line, scenario) in book.lines.iter().zip(&book.scenarios) {
            if *scenario == Scenario::MistypedReference {
                assert!(!valid_rf(&line.reference), "{}", line.reference);
            }
        }
    }

    #[test]
    fn scenarios_in_the_shares_asked() {
        let book = generate(11, 100, 2000, start());
        let counts = scenario_counts(&book);
        for (scenario, share) in Scenario::SHARES {
            let got = counts.get(&scenario).copied().unwrap_or(0) * 1000 / 2000;
            assert!(got.abs_diff(share as usize) <= 10, "{scenario:?}: {got} per mille, asked {share}");
        }
        for (truth, scenario) in book.truth.iter().zip(&book.scenarios) {
            match scenario {
                Scenario::Noise => assert!(truth.is_none()),
                Scenario::SeveralInvoices => assert!(matches!(truth, Some(t) if (2..=3).contains(&t.len()))),
                _ => assert!(matches!(truth, Some(t) if t.len() == 1)),
            }
        }
    }

    #[test]
    fn matcher_quality_on_a_synthetic_book() {
        let book = generate(7, 200, 2000, start());
        let matches = match_lines(&book.lines, &book.items, 10);
        let figures = score(&book, &matches);
        let mut missed: BTreeMap<Scenario, (usize, usize)> = BTreeMap::new();
        let by_line: BTreeMap<usize, &Match> = matches.iter().map(|m| (m.line, m)).collect();
        for (index, (truth, scenario)) in book.truth.iter().zip(&book.scenarios).enumerate() {
            let entry = missed.entry(*scenario).or_insert((0, 0));
            let got: Option<BTreeSet<Uuid>> = by_line.get(&index).map(|m| m.items.iter().map(|(id, _)| *id).collect());
            let want: Option<BTreeSet<Uuid>> = truth.as_ref().map(|t| t.iter().copied().collect());
            match (got, want) {
                (Some(g), Some(w)) if g == w => {}
                (None, None) => {}
                (None, Some(_)) => entry.0 += 1,
                _ => entry.1 += 1,
            }
        }
        eprintln!(
            "synthetic book: {} matched, {} correct, {} payable lines; precision {}‰, coverage {}‰",
            figures.matched,
            figures.correct,
            figures.lines,
            figures.precision_per_mille(),
            figures.coverage_per_mille()
        );
        for (scenario, (unmatched, wrong)) in &missed {
            eprintln!("  {scenario:?}: {unmatched} unmatched, {wrong} wrong");
        }
        assert!(figures.precision_per_mille() >= 995, "{figures:?}");
        assert!(figures.coverage_per_mille() >= 850, "{figures:?}");
    }
}

//! Labelled synthetic bank statements: open items of invented customers and the bank lines that
//! pay them, each line with the items it truly pays, to measure the matcher against. Pure and
//! deterministic: the same seed gives the same book.
//!
//! The lines are what payers really send: references quoted right, mistyped, missing or in the
//! wrong field, names spelled differently, one payment split over two lines or covering several
//! invoices, bank fees deducted, the same payment sent twice, and lines that pay nothing. Amounts
//! repeat (round amounts and list prices are common), so the amount alone rarely says which
//! invoice a line pays.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::matching::{Match, OpenItem, Rule};
use super::rf::{mod97, rf_reference};
use super::statement::{BankLine, Direction};

/// How a line was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// RF reference in the reference field, exact amount.
    RfInReference,
    /// RF reference written in groups of four in the remittance, exact amount.
    RfGroupedInRemittance,
    /// RF reference in the end-to-end id (the wrong field), exact amount.
    RfInEndToEnd,
    /// Invoice number in the remittance (`F1001`, `F-1001`, `f 1001`), exact amount.
    InvoiceNumber,
    /// Reference missing; the payer's account is known and the amount exact.
    KnownAccount,
    /// Reference missing, account unknown; the name spelled differently (case, accents, legal
    /// form, word order, sometimes a typo), amount exact.
    NameVariant,
    /// One payment for 2–4 invoices of a customer whose account is known, the invoice numbers
    /// listed or not.
    SeveralInvoices,
    /// RF reference in the reference field, less than the open amount.
    Partial,
    /// One invoice paid in two lines, each quoting the reference or the invoice number.
    SplitPayment,
    /// A bank fee deducted from the amount: a little short, with the reference or invoice number.
    BankFee,
    /// An RF reference with one digit changed (check digits fail), with the invoice number, with
    /// the known account, or with nothing else to go on.
    MistypedReference,
    /// The same payment sent again a few days later: it pays nothing (truth `None`).
    Duplicate,
    /// Fees, debits and credits from unknown payers: must match nothing.
    Noise,
}

impl Scenario {
    /// All scenarios with their share of lines, per mille. [`Scenario::Duplicate`] counts the
    /// repeated lines; the originals are extra lines of the kinds they are.
    pub const SHARES: [(Scenario, u32); 13] = [
        (Scenario::RfInReference, 300),
        (Scenario::RfGroupedInRemittance, 80),
        (Scenario::RfInEndToEnd, 40),
        (Scenario::InvoiceNumber, 130),
        (Scenario::KnownAccount, 100),
        (Scenario::NameVariant, 40),
        (Scenario::SeveralInvoices, 60),
        (Scenario::Partial, 30),
        (Scenario::SplitPayment, 40),
        (Scenario::BankFee, 30),
        (Scenario::MistypedReference, 40),
        (Scenario::Duplicate, 20),
        (Scenario::Noise, 90),
    ];
}

/// How big a book to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Customers (at least one).
    pub customers: usize,
    /// Bank lines.
    pub lines: usize,
    /// Open items at least: those the lines pay, then items nobody pays up to this number.
    pub items: usize,
}

/// Open items, bank lines and, for each line, the items it truly pays (`None` for lines that pay
/// nothing, which must not be matched) and the scenario that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Book {
    pub items: Vec<OpenItem>,
    pub lines: Vec<BankLine>,
    pub truth: Vec<Option<Vec<Uuid>>>,
    pub scenarios: Vec<Scenario>,
}

/// How a matcher did on a book, counting as confirmed the matches at or above a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    /// Matches made, confirmed or not.
    pub matched: usize,
    /// Matches confirmed automatically (confidence at or above the threshold).
    pub confirmed: usize,
    /// Confirmed matches whose item set equals the truth of their line.
    pub correct: usize,
    /// Lines that truly pay something (truth is `Some`).
    pub lines: usize,
}

impl Score {
    /// Precision: the share of automatically confirmed matches that are right, `correct /
    /// confirmed` (1 when nothing was confirmed).
    pub fn precision(&self) -> Decimal {
        ratio(self.correct, self.confirmed)
    }

    /// Coverage: the share of the lines that truly pay something which were confirmed
    /// automatically and rightly, `correct / lines`. Lines paying nothing (noise, a payment sent
    /// twice) are not counted: for them leaving the line alone is the right answer.
    pub fn coverage(&self) -> Decimal {
        ratio(self.correct, self.lines)
    }

    /// [`Score::precision`] per thousand, rounded down.
    pub fn precision_per_mille(&self) -> usize {
        (self.correct * 1000).checked_div(self.confirmed).unwrap_or(1000)
    }

    /// [`Score::coverage`] per thousand, rounded down.
    pub fn coverage_per_mille(&self) -> usize {
        (self.correct * 1000).checked_div(self.lines).unwrap_or(1000)
    }
}

/// `part / whole`, 1 when `whole` is 0.
fn ratio(part: usize, whole: usize) -> Decimal {
    if whole == 0 { Decimal::ONE } else { Decimal::from(part) / Decimal::from(whole) }
}

/// Whether a match's item set is the truth of its line.
fn right(book: &Book, m: &Match) -> bool {
    let Some(Some(truth)) = book.truth.get(m.line) else { return false };
    let got: BTreeSet<Uuid> = m.items.iter().map(|(id, _)| *id).collect();
    let want: BTreeSet<Uuid> = truth.iter().copied().collect();
    got == want
}

/// Score matches against the truth of the book; matches with a confidence at or above
/// `threshold` count as confirmed automatically.
pub fn score(book: &Book, matches: &[Match], threshold: Decimal) -> Score {
    let confirmed: Vec<&Match> = matches.iter().filter(|m| m.confidence >= threshold).collect();
    Score {
        matched: matches.len(),
        confirmed: confirmed.len(),
        correct: confirmed.iter().filter(|m| right(book, m)).count(),
        lines: book.truth.iter().filter(|t| t.is_some()).count(),
    }
}

/// Lines of one kind and what became of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Lines (for a rule: lines it matched).
    pub lines: usize,
    /// Lines matched, confirmed or not.
    pub matched: usize,
    /// Matched lines whose items are the truth.
    pub matched_right: usize,
    /// Lines confirmed automatically.
    pub confirmed: usize,
    /// Confirmed lines whose items are the truth.
    pub confirmed_right: usize,
}

impl Tally {
    fn add(&mut self, m: Option<&Match>, is_right: bool, threshold: Decimal) {
        self.lines += 1;
        if let Some(m) = m {
            self.matched += 1;
            self.matched_right += usize::from(is_right);
            if m.confidence >= threshold {
                self.confirmed += 1;
                self.confirmed_right += usize::from(is_right);
            }
        }
    }
}

/// What became of the lines, per scenario and per rule that matched them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breakdown {
    pub by_scenario: BTreeMap<Scenario, Tally>,
    pub by_rule: BTreeMap<Rule, Tally>,
}

/// Per scenario and per rule counts of matches against the truth, confirmed at `threshold`.
pub fn breakdown(book: &Book, matches: &[Match], threshold: Decimal) -> Breakdown {
    let by_line: BTreeMap<usize, &Match> = matches.iter().map(|m| (m.line, m)).collect();
    let mut out = Breakdown::default();
    for (line, scenario) in book.scenarios.iter().enumerate() {
        let m = by_line.get(&line).copied();
        let is_right = m.is_some_and(|m| right(book, m));
        out.by_scenario.entry(*scenario).or_default().add(m, is_right, threshold);
        if let Some(m) = m {
            out.by_rule.entry(m.rule).or_default().add(Some(m), is_right, threshold);
        }
    }
    out
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

    /// True `per_mille` times in a thousand.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
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

/// Third words of names, so that most customers' names are unique.
const PLACES: &[&str] = &[
    "Norte",
    "Sur",
    "Levante",
    "Poniente",
    "Central",
    "Industrial",
    "Ibérica",
    "Mexicana",
    "Bavaria",
    "Rheinland",
    "Pacífico",
    "Atlántico",
    "Express",
    "Global",
    "Hermanos",
    "Nordstern",
    "Sierra",
    "Valle",
    "Costa",
    "Montaña",
];

struct Customer {
    id: Uuid,
    /// The words of the name, without the legal form.
    words: Vec<String>,
    legal: usize,
    account: String,
}

impl Customer {
    fn name(&self) -> String {
        let base = self.words.join(" ");
        let form = LEGAL_FORMS[self.legal].0;
        if form.is_empty() { base } else { format!("{base} {form}") }
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

/// One typo in the longest word: two neighbouring letters swapped, or one dropped.
fn typo(words: &mut [String], rng: &mut Rng) {
    let Some(word) = words.iter_mut().max_by_key(|w| w.chars().count()) else { return };
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() < 6 {
        return;
    }
    let at = 1 + rng.below(chars.len() as u64 - 3) as usize;
    if rng.below(2) == 0 {
        chars.swap(at, at + 1);
        if chars[at] == chars[at + 1] {
            chars.remove(at);
        }
    } else {
        chars.remove(at);
    }
    *word = chars.into_iter().collect();
}

/// The customer's name as another payer's bank might write it: case, accents, legal form and
/// word order changed, sometimes one typo.
fn name_variant(customer: &Customer, rng: &mut Rng) -> String {
    let legal = *rng.pick(LEGAL_FORMS[customer.legal].1);
    let mut words = customer.words.clone();
    let turns = rng.below(words.len() as u64) as usize;
    words.rotate_left(turns);
    if rng.chance(300) {
        typo(&mut words, rng);
    }
    let base = words.join(" ");
    let base = match rng.below(4) {
        0 => base.to_uppercase(),
        1 => ascii_fold(&base),
        2 => ascii_fold(&base).to_uppercase(),
        _ => base,
    };
    if legal.is_empty() { base } else { format!("{base} {legal}") }
}

// ----- amounts -----

/// Round amounts in euros, common in invoices for services and instalments.
const ROUND: &[i64] = &[100, 150, 200, 250, 300, 400, 500, 600, 750, 800, 1000, 1200, 1500, 2000, 2500, 3000, 5000];

/// Bank fees deducted from a transfer, in cents.
const FEES: &[i64] = &[50, 150, 250, 500, 750, 1000, 1250, 1500, 2500];

// ----- generation -----

struct Generator {
    rng: Rng,
    start: NaiveDate,
    next_id: u128,
    next_invoice: u64,
    next_e2e: u64,
    /// List prices in cents shared by many invoices.
    prices: Vec<i64>,
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

    /// An invoice amount in cents: a round amount (30%), a list price (25%) or any amount
    /// between 40 and 6000 euros.
    fn cents(&mut self) -> i64 {
        match self.rng.below(20) {
            0..=5 => *self.rng.pick(ROUND) * 100,
            6..=10 => *self.rng.pick(&self.prices),
            _ => self.rng.between(4_000, 600_000),
        }
    }

    /// A new open item of a customer; its index in `items`.
    fn item(&mut self, customer: usize) -> usize {
        let id = self.id();
        self.next_invoice += 1;
        let number = self.next_invoice;
        let cents = self.cents();
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

    /// An account no customer has.
    fn stranger_account(&mut self) -> String {
        iban("NL", &format!("{}", 4_000_000_000u64 + self.rng.below(1_000_000_000)))
    }

    /// An end-to-end id: mostly not provided, else the payer's own unique id.
    fn end_to_end(&mut self) -> String {
        if self.rng.chance(700) {
            return "NOTPROVIDED".to_string();
        }
        self.next_e2e += 1;
        format!("E2E{:06X}{:08}", self.rng.below(0xFF_FFFF), self.next_e2e)
    }

    /// An invoice number as payers write it.
    fn invoice_text(&mut self, invoice: &str) -> String {
        let number = self.invoice_token(invoice);
        let lead = *self.rng.pick(&["Factura", "Pago factura", "Rechnung", "Invoice", "", "Pago"]);
        if lead.is_empty() { number } else { format!("{lead} {number}") }
    }

    fn invoice_token(&mut self, invoice: &str) -> String {
        let digits = invoice.trim_start_matches("F-");
        match self.rng.below(4) {
            0 => format!("F{digits}"),
            1 => format!("F-{digits}"),
            2 => format!("f {digits}"),
            _ => format!("f{digits}"),
        }
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

    /// A generic remittance text saying nothing about which invoice.
    fn vague(&mut self) -> String {
        self.rng.pick(&["Pago", "Zahlung", "Transferencia", "", "Payment", "Pago proveedor", "Überweisung"]).to_string()
    }
}

fn blank_line(booking_date: NaiveDate, amount: Decimal, direction: Direction) -> BankLine {
    BankLine {
        booking_date,
        value_date: Some(booking_date),
        amount,
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

/// Lines made for one event, each with its truth and scenario.
type Made = Vec<(BankLine, Option<Vec<Uuid>>, Scenario)>;

/// A book of `shape.customers` customers (at least one) and `shape.lines` bank lines booked
/// around `start`, scenarios in the shares of [`Scenario::SHARES`], in booking date order.
/// Besides the items the lines pay, customers have items nobody pays, up to `shape.items` items.
pub fn generate(seed: u64, shape: Shape, start: NaiveDate) -> Book {
    let customers = shape.customers.max(1);
    let mut g = Generator {
        rng: Rng::new(seed),
        start,
        next_id: 0,
        next_invoice: 1000,
        next_e2e: 0,
        prices: Vec::new(),
        items: Vec::new(),
        customers: Vec::new(),
    };
    for _ in 0..60 {
        let euros = g.rng.between(20, 4000);
        let cents = *g.rng.pick(&[0, 0, 50, 90, 99]);
        g.prices.push(euros * 100 + cents);
    }

    // Customers: distinct trade, surname and place triples, an IBAN or CLABE each.
    let triples = TRADES.len() * SURNAMES.len() * PLACES.len();
    let offset = g.rng.below(triples as u64) as usize;
    for index in 0..customers {
        let triple = (offset + index * 7) % triples;
        let round = index / triples;
        let mut words = vec![
            TRADES[triple / (SURNAMES.len() * PLACES.len())].to_string(),
            SURNAMES[triple / PLACES.len() % SURNAMES.len()].to_string(),
            PLACES[triple % PLACES.len()].to_string(),
        ];
        if round > 0 {
            words.push(format!("{}", round + 1));
        }
        let account = match g.rng.below(3) {
            0 => format!("0121800{index:011}"),
            1 => iban("DE", &format!("37040044{index:010}")),
            _ => iban("ES", &format!("2100041845{index:010}")),
        };
        let id = g.id();
        let legal = g.rng.below(LEGAL_FORMS.len() as u64) as usize;
        g.customers.push(Customer { id, words, legal, account });
    }

    // Events by quota, then shuffled: a split payment makes two lines, a duplicate its original
    // and the repeat.
    let mut events: Vec<Scenario> = Vec::with_capacity(shape.lines);
    let mut planned = 0;
    for (scenario, share) in Scenario::SHARES {
        if scenario == Scenario::RfInReference {
            continue;
        }
        let count = shape.lines * share as usize / 1000;
        let (events_of, lines_each) = match scenario {
            Scenario::SplitPayment => (count / 2, 2),
            Scenario::Duplicate => (count, 2),
            _ => (count, 1),
        };
        let events_of = events_of.min(shape.lines.saturating_sub(planned) / lines_each);
        events.extend(std::iter::repeat_n(scenario, events_of));
        planned += events_of * lines_each;
    }
    events.extend(std::iter::repeat_n(Scenario::RfInReference, shape.lines.saturating_sub(planned)));
    for i in (1..events.len()).rev() {
        let j = g.rng.below(i as u64 + 1) as usize;
        events.swap(i, j);
    }

    let mut made: Made = Vec::with_capacity(shape.lines);
    for scenario in events {
        let customer = g.rng.below(customers as u64) as usize;
        make_lines(&mut g, scenario, customer, &mut made);
    }

    // Items nobody pays.
    while g.items.len() < shape.items {
        let customer = g.rng.below(customers as u64) as usize;
        g.item(customer);
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

/// The lines of one event, added to `made`.
fn make_lines(g: &mut Generator, scenario: Scenario, customer: usize, made: &mut Made) {
    match scenario {
        Scenario::Noise => {
            let line = noise(g);
            made.push((line, None, scenario));
        }
        Scenario::Duplicate => {
            let kind = *g.rng.pick(&[Scenario::RfInReference, Scenario::InvoiceNumber, Scenario::KnownAccount]);
            let (line, truth) = make_line(g, kind, customer);
            let mut again = line.clone();
            again.booking_date = line.booking_date + Duration::days(g.rng.between(0, 3));
            made.push((line, truth, kind));
            made.push((again, None, Scenario::Duplicate));
        }
        Scenario::SplitPayment => {
            let index = g.item(customer);
            let item = g.items[index].clone();
            let account = g.customers[customer].account.clone();
            let share = g.rng.between(25, 75);
            let first = (item.amount_open * Decimal::new(share, 2)).round_dp(2);
            let booked = item.due_date + Duration::days(g.rng.between(-10, 20));
            for (amount, booking_date) in
                [(first, booked), (item.amount_open - first, booked + Duration::days(g.rng.between(3, 20)))]
            {
                let mut line = blank_line(booking_date, amount, Direction::Credit);
                line.counterparty_name = g.customers[customer].name();
                line.counterparty_account = g.printed(&account);
                line.end_to_end_id = g.end_to_end();
                if g.rng.chance(700) {
                    line.reference = item.reference.clone();
                } else {
                    line.remittance = format!("{} parcial", g.invoice_text(&item.invoice_number));
                }
                made.push((line, Some(vec![item.id]), scenario));
            }
        }
        _ => {
            let (line, truth) = make_line(g, scenario, customer);
            made.push((line, truth, scenario));
        }
    }
}

/// One line paying one or more new items of a customer.
fn make_line(g: &mut Generator, scenario: Scenario, customer: usize) -> (BankLine, Option<Vec<Uuid>>) {
    let index = g.item(customer);
    let item = g.items[index].clone();
    let near = g.rng.between(-7, 7);
    let later = g.rng.between(-10, 30);
    let name = g.customers[customer].name();
    let account = g.customers[customer].account.clone();
    let mut line = blank_line(item.due_date + Duration::days(later), item.amount_open, Direction::Credit);
    line.counterparty_name = name;
    line.end_to_end_id = g.end_to_end();
    let mut truth = vec![item.id];
    match scenario {
        Scenario::RfInReference | Scenario::Duplicate | Scenario::Noise | Scenario::SplitPayment => {
            line.counterparty_account = g.printed(&account);
            line.reference = item.reference.clone();
        }
        Scenario::RfGroupedInRemittance => {
            line.counterparty_account = g.printed(&account);
            let lead = *g.rng.pick(&["Pago", "Zahlung", "Payment ref", "Ref."]);
            line.remittance = format!("{lead} {}", grouped(&item.reference));
        }
        Scenario::RfInEndToEnd => {
            if g.rng.below(2) == 0 {
                line.counterparty_account = g.printed(&account);
            }
            line.end_to_end_id = item.reference.clone();
            line.remittance = g.vague();
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
            line.remittance = g.vague();
        }
        Scenario::NameVariant => {
            line.booking_date = item.due_date + Duration::days(near);
            line.counterparty_name = name_variant(&g.customers[customer], &mut g.rng);
            if g.rng.below(2) == 0 {
                line.counterparty_account = g.stranger_account();
            }
            line.remittance = g.vague();
        }
        Scenario::SeveralInvoices => {
            line.counterparty_account = g.printed(&account);
            let more = 1 + g.rng.below(3) as usize;
            let mut total = item.amount_open;
            let mut numbers = vec![item.invoice_number.clone()];
            for _ in 0..more {
                let other = g.item(customer);
                total += g.items[other].amount_open;
                truth.push(g.items[other].id);
                numbers.push(g.items[other].invoice_number.clone());
            }
            line.amount = total;
            line.remittance = if g.rng.below(2) == 0 {
                let tokens: Vec<String> = numbers.iter().map(|n| g.invoice_token(n)).collect();
                format!("Facturas {}", tokens.join(", "))
            } else {
                g.rng.pick(&["Pago facturas", "Sammelzahlung", "Payment several invoices"]).to_string()
            };
        }
        Scenario::Partial => {
            line.counterparty_account = g.printed(&account);
            line.reference = item.reference.clone();
            let share = g.rng.between(20, 90);
            line.amount = (item.amount_open * Decimal::new(share, 2)).round_dp(2);
        }
        Scenario::BankFee => {
            line.counterparty_account = g.printed(&account);
            if g.rng.chance(700) {
                line.reference = item.reference.clone();
            } else {
                line.remittance = g.invoice_text(&item.invoice_number);
            }
            let fee = *g.rng.pick(FEES);
            line.amount = item.amount_open - Decimal::new(fee, 2);
        }
        Scenario::MistypedReference => {
            line.reference = g.mistyped(&item.reference);
            match g.rng.below(10) {
                0..=3 => {
                    line.counterparty_account = g.printed(&account);
                    line.remittance = g.invoice_text(&item.invoice_number);
                }
                4..=6 => {
                    line.booking_date = item.due_date + Duration::days(near);
                    line.counterparty_account = g.printed(&account);
                }
                _ => {
                    // Nothing else to go on: an account never seen, the name as another bank
                    // writes it.
                    line.counterparty_name = name_variant(&g.customers[customer], &mut g.rng);
                    line.counterparty_account = g.stranger_account();
                }
            }
        }
    }
    (line, Some(truth))
}

/// A fee, a debit or a credit from a stranger.
fn noise(g: &mut Generator) -> BankLine {
    let booked = g.rng.between(-30, 40);
    let booked = g.day(booked);
    match g.rng.below(3) {
        0 => {
            let cents = g.rng.between(100, 3000);
            let mut line = blank_line(booked, Decimal::new(cents, 2), Direction::Debit);
            line.counterparty_name = "Banco".to_string();
            line.remittance = g.rng.pick(&["Comisión mantenimiento", "Kontoführungsgebühr", "Wire fee"]).to_string();
            line.bank_code = "ACMT-MDOP-CHRG".to_string();
            line
        }
        1 => {
            let cents = g.cents();
            let mut line = blank_line(booked, Decimal::new(cents, 2), Direction::Debit);
            line.counterparty_name = g.rng.pick(STRANGERS).to_string();
            line.remittance = "Proveedor pago".to_string();
            line.bank_code = "PMNT-ICDT-ESCT".to_string();
            line
        }
        _ => {
            let cents = g.cents();
            let mut line = blank_line(booked, Decimal::new(cents, 2), Direction::Credit);
            line.counterparty_name = g.rng.pick(STRANGERS).to_string();
            line.counterparty_account = iban("NL", &format!("{}", 5_000_000_000u64 + g.rng.below(1_000_000_000)));
            line.remittance = g.rng.pick(&["Refund", "Auszahlung", "Devolución", "Payout"]).to_string();
            line.end_to_end_id = g.end_to_end();
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
    use std::collections::{HashMap, HashSet};

    use super::super::matching::{DEFAULT_AUTO_CONFIRM, DEFAULT_WINDOW_DAYS, match_lines};
    use super::*;
    use crate::domain::rf::valid_rf;

    fn start() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    }

    fn shape(customers: usize, lines: usize, items: usize) -> Shape {
        Shape { customers, lines, items }
    }

    /// A book of a few thousand lines, matched once for all the tests that look at it.
    fn matched() -> &'static (Book, Vec<Match>) {
        static BOOK: std::sync::OnceLock<(Book, Vec<Match>)> = std::sync::OnceLock::new();
        BOOK.get_or_init(|| {
            let book = generate(7, shape(150, 4000, 4400), start());
            let matches = match_lines(&book.lines, &book.items, DEFAULT_WINDOW_DAYS);
            (book, matches)
        })
    }

    fn by_line(matches: &[Match]) -> BTreeMap<usize, &Match> {
        matches.iter().map(|m| (m.line, m)).collect()
    }

    #[test]
    fn same_seed_same_book() {
        let a = generate(42, shape(30, 300, 0), start());
        let b = generate(42, shape(30, 300, 0), start());
        assert_eq!(a, b);
        let c = generate(43, shape(30, 300, 0), start());
        assert_ne!(a.lines, c.lines);
        assert_eq!(a.lines.len(), 300);
        assert_eq!(a.truth.len(), 300);
        let d = generate(42, shape(30, 300, 1000), start());
        assert_eq!(d.items.len(), 1000);
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
        let book = generate(3, shape(100, 1000, 0), start());
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
        let book = generate(11, shape(100, 4000, 0), start());
        let counts = scenario_counts(&book);
        for (scenario, share) in Scenario::SHARES {
            let got = counts.get(&scenario).copied().unwrap_or(0) * 1000 / 4000;
            // The originals of duplicates add to the kinds they are.
            assert!(got.abs_diff(share as usize) <= 15, "{scenario:?}: {got} per mille, asked {share}");
        }
        for (truth, scenario) in book.truth.iter().zip(&book.scenarios) {
            match scenario {
                Scenario::Noise | Scenario::Duplicate => assert!(truth.is_none()),
                Scenario::SeveralInvoices => assert!(matches!(truth, Some(t) if (2..=4).contains(&t.len()))),
                _ => assert!(matches!(truth, Some(t) if t.len() == 1)),
            }
        }
    }

    #[test]
    fn amounts_repeat() {
        let book = generate(5, shape(100, 2000, 2200), start());
        let mut seen: HashMap<Decimal, usize> = HashMap::new();
        for item in &book.items {
            *seen.entry(item.amount_open).or_default() += 1;
        }
        let repeated: usize = seen.values().filter(|n| **n > 1).sum();
        assert!(repeated * 3 > book.items.len(), "{repeated} of {} items share their amount", book.items.len());
    }

    #[test]
    fn matcher_quality_on_a_synthetic_book() {
        let (book, matches) = matched();
        let figures = score(book, matches, DEFAULT_AUTO_CONFIRM);
        let detail = breakdown(book, matches, DEFAULT_AUTO_CONFIRM);
        eprintln!(
            "synthetic book: {} matched, {} confirmed, {} right, {} payable lines; precision {}, coverage {}",
            figures.matched,
            figures.confirmed,
            figures.correct,
            figures.lines,
            figures.precision().round_dp(4),
            figures.coverage().round_dp(4)
        );
        for (scenario, t) in &detail.by_scenario {
            eprintln!("  {scenario:?}: {t:?}");
        }
        for (rule, t) in &detail.by_rule {
            eprintln!("  {rule:?}: {t:?}");
        }
        assert!(figures.precision() >= Decimal::new(995, 3), "{figures:?}");
        assert!(figures.coverage() >= Decimal::new(9, 1), "{figures:?}");
    }

    #[test]
    fn matching_does_not_depend_on_item_order() {
        let book = generate(9, shape(40, 600, 700), start());
        let forward = match_lines(&book.lines, &book.items, DEFAULT_WINDOW_DAYS);
        let mut items = book.items.clone();
        items.reverse();
        assert_eq!(match_lines(&book.lines, &items, DEFAULT_WINDOW_DAYS), forward);
    }

    #[test]
    fn duplicates_are_never_confirmed_and_no_item_is_paid_twice() {
        let (book, matches) = matched();
        let lines = by_line(matches);
        let mut duplicates = 0;
        for (at, scenario) in book.scenarios.iter().enumerate() {
            if *scenario == Scenario::Duplicate {
                duplicates += 1;
                assert!(lines.get(&at).is_none_or(|m| m.confidence < DEFAULT_AUTO_CONFIRM), "line {at}");
            }
        }
        assert!(duplicates > 20);
        let mut applied: HashMap<Uuid, Decimal> = HashMap::new();
        for m in matches {
            for (id, amount) in &m.items {
                *applied.entry(*id).or_default() += *amount;
            }
        }
        for item in &book.items {
            assert!(applied.get(&item.id).is_none_or(|a| *a <= item.amount_open), "{}", item.invoice_number);
        }
    }

    #[test]
    fn a_mistyped_reference_alone_is_not_confirmed() {
        let (book, matches) = matched();
        let lines = by_line(matches);
        let mut alone = 0;
        for (at, line) in book.lines.iter().enumerate() {
            if book.scenarios[at] == Scenario::MistypedReference && line.counterparty_account.starts_with("NL") {
                alone += 1;
                assert!(lines.get(&at).is_none_or(|m| m.confidence < DEFAULT_AUTO_CONFIRM), "line {at}");
            }
        }
        assert!(alone > 10);
    }

    #[test]
    fn noise_is_never_matched() {
        let (book, matches) = matched();
        let lines = by_line(matches);
        for (at, scenario) in book.scenarios.iter().enumerate() {
            if *scenario == Scenario::Noise {
                assert!(!lines.contains_key(&at), "line {at}: {:?}", lines.get(&at));
            }
        }
    }

    /// The share of a scenario's lines confirmed rightly, per mille, and by which rules.
    fn confirmed_right(scenario: Scenario) -> (usize, BTreeSet<Rule>) {
        let (book, matches) = matched();
        let lines = by_line(matches);
        let mut total = 0;
        let mut good = 0;
        let mut rules = BTreeSet::new();
        for (at, s) in book.scenarios.iter().enumerate() {
            if *s != scenario {
                continue;
            }
            total += 1;
            if let Some(m) = lines.get(&at).filter(|m| m.confidence >= DEFAULT_AUTO_CONFIRM && right(book, m)) {
                good += 1;
                rules.insert(m.rule);
            }
        }
        assert!(total > 0, "{scenario:?}");
        (good * 1000 / total, rules)
    }

    #[test]
    fn references_in_the_wrong_field_are_found() {
        let (share, rules) = confirmed_right(Scenario::RfInEndToEnd);
        assert_eq!(share, 1000);
        assert!(rules.contains(&Rule::EndToEnd), "{rules:?}");
        let (share, _) = confirmed_right(Scenario::RfGroupedInRemittance);
        assert_eq!(share, 1000);
    }

    #[test]
    fn split_payments_and_fees_are_partials() {
        let (share, rules) = confirmed_right(Scenario::SplitPayment);
        assert!(share >= 650, "{share}");
        assert!(rules.contains(&Rule::Partial), "{rules:?}");
        let (share, rules) = confirmed_right(Scenario::BankFee);
        assert!(share >= 600, "{share}");
        assert_eq!(rules, BTreeSet::from([Rule::Partial]));
    }

    #[test]
    fn combined_payments_are_found() {
        let (share, rules) = confirmed_right(Scenario::SeveralInvoices);
        assert!(share >= 700, "{share}");
        assert_eq!(rules, BTreeSet::from([Rule::SeveralInvoices]));
    }

    #[test]
    fn names_spelled_differently_are_suggested_not_confirmed() {
        let (book, matches) = matched();
        let lines = by_line(matches);
        let mut total = 0;
        let mut suggested = 0;
        for (at, s) in book.scenarios.iter().enumerate() {
            if *s == Scenario::NameVariant {
                total += 1;
                if let Some(m) = lines.get(&at) {
                    assert!(m.confidence < DEFAULT_AUTO_CONFIRM, "line {at}");
                    suggested += usize::from(right(book, m));
                }
            }
        }
        assert!(suggested * 10 >= total * 6, "{suggested} of {total}");
    }

    #[test]
    fn known_accounts_and_invoice_numbers_are_confirmed() {
        let (share, rules) = confirmed_right(Scenario::KnownAccount);
        assert!(share >= 700, "{share}");
        assert_eq!(rules, BTreeSet::from([Rule::AmountAndCustomer]));
        let (share, rules) = confirmed_right(Scenario::InvoiceNumber);
        assert!(share >= 990, "{share}");
        assert_eq!(rules, BTreeSet::from([Rule::InvoiceNumber]));
    }
}

//! Matching rules without I/O: which open items a bank credit pays.
//!
//! The rules, strongest first, each with a confidence between 0 and 1:
//!
//! 1. A structured reference: an RF creditor reference or an invoice number written in the
//!    reference, the remittance or (the wrong field) the end-to-end id. Several quoted items whose
//!    open amounts add up to the payment are paid together.
//! 2. The exact open amount of one item of a customer identified by the account paid from, due
//!    within a window around the booking date.
//! 3. The exact sum of several (up to [`MAX_SPLIT`]) open items of a customer identified by
//!    account: the smallest such set, when it is the only one of its size.
//! 4. and 5. The same as 2. and 3. for a customer recognized by name only (spelled differently,
//!    legal form dropped, words reordered, one typo), with a lower confidence.
//!
//! Each rule is a pass over all lines in their order, so a line quoting an item's reference
//! claims it before a line that only has the right amount. An item's open amount goes down as
//! lines are applied to it; an item with nothing left open is not matched again, and a line that
//! quotes only such items is a repeat of a payment already seen and is left unmatched. So is a
//! line identical to one booked shortly before it (the same payment sent twice). When two answers
//! are equally good a rule gives none and the next is tried. Items are indexed once (by
//! reference, invoice number, customer, account and name words) so each line costs about the
//! number of candidates it has, and candidates are taken in due date then id order, so the result
//! does not depend on the order of the items.
//!
//! Matches at or above [`DEFAULT_AUTO_CONFIRM`] are confirmed without review; the others are
//! suggestions.

use std::collections::{BTreeSet, HashMap};

use chrono::{Duration, NaiveDate};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// RF creditor reference in the reference or remittance, amount equal to or above the open
    /// amount.
    Reference,
    /// Invoice number quoted in the reference or remittance, exact amount.
    InvoiceNumber,
    /// RF reference or invoice number found only in the end-to-end id (the payer put it in the
    /// wrong field), amount equal to or above the open amount.
    EndToEnd,
    /// Exact amount of one open item of a customer identified by account or name.
    AmountAndCustomer,
    /// Exact amount of several open items, quoted or of one identified customer.
    SeveralInvoices,
    /// Reference or invoice number found, amount below the open amount.
    Partial,
}

/// A line matched to the items it pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Match {
    /// Index into the lines given to [`match_lines`].
    pub line: usize,
    /// Items paid and the amount applied to each, in due date then id order.
    pub items: Vec<(Uuid, Decimal)>,
    pub rule: Rule,
    /// Between 0 and 1; see [`DEFAULT_AUTO_CONFIRM`].
    pub confidence: Decimal,
}

/// Matches with at least this confidence (0.90) are confirmed automatically; below it they are
/// suggestions for a person to confirm. It admits a valid RF reference (0.99, partial 0.90), an
/// invoice number with the exact amount (0.97), the exact amount of one item (0.95) or several
/// items (0.91 to 0.93) of a customer identified by account; it leaves out partial payments found
/// by invoice number only (0.85), overpayments (0.60) and everything found by name (0.85 and
/// lower).
pub const DEFAULT_AUTO_CONFIRM: Decimal = Decimal::from_parts(90, 0, 0, false, 2);

/// How far (days) the booking date may be from the due date for a match by amount and customer.
pub const DEFAULT_WINDOW_DAYS: i64 = 10;

/// Largest number of items one payment may be split over (rule 3).
pub const MAX_SPLIT: usize = 5;
/// Most open items of one customer searched for a split payment, earliest due first.
pub const MAX_SPLIT_CANDIDATES: usize = 30;

/// A credit identical to an earlier one (amount, payer, texts) booked at most this many days
/// apart is taken for the same payment sent twice and left unmatched.
pub const DUPLICATE_DAYS: i64 = 5;

/// Longest invoice number, in segments (`F-1001` has two), looked for in texts.
const MAX_INVOICE_SEGMENTS: usize = 8;

/// Match bank credits to open items. `window_days`: how far the booking date may be from the
/// due date for a match by amount and customer (rules 2 and 4).
pub fn match_lines(lines: &[BankLine], items: &[OpenItem], window_days: i64) -> Vec<Match> {
    let index = Index::new(items);
    let mut matcher = Matcher {
        remaining: index.items.iter().map(|i| i.amount_open).collect(),
        names: HashMap::new(),
        index: &index,
        window: Duration::days(window_days.max(0)),
    };
    let repeated = repeats(lines);
    let mut state: Vec<LineState> = lines
        .iter()
        .zip(&repeated)
        .map(|(line, repeat)| {
            if line.direction != Direction::Credit || line.amount <= Decimal::ZERO || *repeat {
                LineState::Closed
            } else {
                LineState::Open
            }
        })
        .collect();
    for pass in Pass::ALL {
        for (at, line) in lines.iter().enumerate() {
            if state.get(at) != Some(&LineState::Open) {
                continue;
            }
            let outcome = matcher.apply(pass, line);
            if let Some(slot) = state.get_mut(at) {
                match outcome {
                    Outcome::Next => {}
                    Outcome::Stop => *slot = LineState::Closed,
                    Outcome::Matched(found) => *slot = LineState::Matched(found),
                }
            }
        }
    }
    state
        .into_iter()
        .enumerate()
        .filter_map(|(line, s)| match s {
            LineState::Matched(found) => Some(Match {
                line,
                items: found.items.iter().map(|(i, amount)| (index.items[*i].id, *amount)).collect(),
                rule: found.rule,
                confidence: found.confidence,
            }),
            _ => None,
        })
        .collect()
}

/// Decimal from hundredths, e.g. `pct(99)` = 0.99.
fn pct(hundredths: i64) -> Decimal {
    Decimal::new(hundredths, 2)
}

/// Whether each line repeats an earlier credit: same amount, currency, payer and texts, booked
/// at most [`DUPLICATE_DAYS`] apart.
fn repeats(lines: &[BankLine]) -> Vec<bool> {
    let mut last: HashMap<String, NaiveDate> = HashMap::new();
    lines
        .iter()
        .map(|l| {
            if l.direction != Direction::Credit {
                return false;
            }
            let key = format!(
                "{}|{}|{}|{}|{}|{}|{}",
                l.currency,
                l.amount.normalize(),
                compact(&l.counterparty_account),
                compact(&l.counterparty_name),
                compact(&l.reference),
                compact(&l.remittance),
                compact(&l.end_to_end_id)
            );
            let repeat =
                last.get(&key).is_some_and(|before| (l.booking_date - *before).num_days().abs() <= DUPLICATE_DAYS);
            last.insert(key, l.booking_date);
            repeat
        })
        .collect()
}

// ----- the index -----

struct Customer {
    words: BTreeSet<String>,
}

/// Items (open amount above zero, in due date then id order) and what finds them.
struct Index<'a> {
    items: Vec<&'a OpenItem>,
    /// Compact RF reference to items.
    by_reference: HashMap<String, Vec<usize>>,
    /// Invoice number segments joined by `\u{1f}` to items.
    by_invoice: HashMap<String, Vec<usize>>,
    /// Most segments of an indexed invoice number.
    invoice_segments: usize,
    customers: Vec<Customer>,
    /// Compact account to customers.
    by_account: HashMap<String, Vec<usize>>,
    /// Name word, and each word of five letters or more with one letter deleted, to customers.
    by_word: HashMap<String, Vec<usize>>,
    /// (customer, currency) to items in due date then id order.
    by_customer: HashMap<(usize, &'a str), Vec<usize>>,
}

impl<'a> Index<'a> {
    fn new(items: &'a [OpenItem]) -> Self {
        let mut sorted: Vec<&OpenItem> = items.iter().filter(|i| i.amount_open > Decimal::ZERO).collect();
        sorted.sort_by(|a, b| a.due_date.cmp(&b.due_date).then(a.id.cmp(&b.id)));
        let mut index = Index {
            items: Vec::new(),
            by_reference: HashMap::new(),
            by_invoice: HashMap::new(),
            invoice_segments: 0,
            customers: Vec::new(),
            by_account: HashMap::new(),
            by_word: HashMap::new(),
            by_customer: HashMap::new(),
        };
        let mut customer_ids: HashMap<Uuid, usize> = HashMap::new();
        for (at, item) in sorted.iter().enumerate() {
            let reference = compact(&item.reference);
            if !reference.is_empty() {
                index.by_reference.entry(reference).or_default().push(at);
            }
            let number = segments(&item.invoice_number);
            if !number.is_empty() && number.len() <= MAX_INVOICE_SEGMENTS {
                index.invoice_segments = index.invoice_segments.max(number.len());
                index.by_invoice.entry(segment_key(&number)).or_default().push(at);
            }
            let customer = match customer_ids.get(&item.customer_id) {
                Some(c) => *c,
                None => {
                    let c = index.customers.len();
                    customer_ids.insert(item.customer_id, c);
                    let words = name_words(&item.customer_name);
                    for word in &words {
                        index.by_word.entry(word.clone()).or_default().push(c);
                        for variant in deletions(word) {
                            index.by_word.entry(variant).or_default().push(c);
                        }
                    }
                    index.customers.push(Customer { words });
                    c
                }
            };
            for account in &item.customer_accounts {
                let account = compact(account);
                if !account.is_empty() {
                    index.by_account.entry(account).or_default().push(customer);
                }
            }
            index.by_customer.entry((customer, item.currency.as_str())).or_default().push(at);
        }
        for list in index.by_account.values_mut().chain(index.by_word.values_mut()) {
            list.sort_unstable();
            list.dedup();
        }
        index.items = sorted;
        index
    }
}

// ----- matching state -----

/// Items (indices into the index) with the amount applied to each, the rule and confidence.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    items: Vec<(usize, Decimal)>,
    rule: Rule,
    confidence: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LineState {
    /// Not matched yet: later passes may try it.
    Open,
    /// Not a credit, a repeat, or quoting only items already paid: no pass tries it.
    Closed,
    Matched(Found),
}

enum Outcome {
    Matched(Found),
    /// Leave the line unmatched.
    Stop,
    /// Let the next pass try.
    Next,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Structured,
    AmountByAccount,
    SeveralByAccount,
    AmountByName,
    SeveralByName,
}

impl Pass {
    const ALL: [Pass; 5] =
        [Pass::Structured, Pass::AmountByAccount, Pass::SeveralByAccount, Pass::AmountByName, Pass::SeveralByName];
}

/// A payer recognized by name: the customers and whether every word matched exactly.
type NameHit = Option<(Vec<usize>, bool)>;

struct Matcher<'i, 'a> {
    index: &'i Index<'a>,
    /// Amount still open per item.
    remaining: Vec<Decimal>,
    /// Names already looked up.
    names: HashMap<String, NameHit>,
    window: Duration,
}

impl Matcher<'_, '_> {
    fn apply(&mut self, pass: Pass, line: &BankLine) -> Outcome {
        let found = match pass {
            Pass::Structured => return self.structured(line),
            Pass::AmountByAccount => {
                let who = self.by_account(line);
                self.one_item(line, &who).map(|item| self.settle(line, &[item], Rule::AmountAndCustomer, pct(95)))
            }
            Pass::SeveralByAccount => {
                let who = self.by_account(line);
                self.several(line, &who).map(|(chosen, alternatives)| {
                    let confidence = match (alternatives, chosen.len()) {
                        (true, _) => pct(85),
                        (false, 2) => pct(93),
                        (false, 3) => pct(92),
                        _ => pct(91),
                    };
                    self.settle(line, &chosen, Rule::SeveralInvoices, confidence)
                })
            }
            Pass::AmountByName => {
                let (who, exact) = self.by_name(line).unwrap_or_default();
                self.one_item(line, &who).map(|item| {
                    let confidence = if exact { pct(85) } else { pct(80) };
                    self.settle(line, &[item], Rule::AmountAndCustomer, confidence)
                })
            }
            Pass::SeveralByName => {
                let (who, exact) = self.by_name(line).unwrap_or_default();
                self.several(line, &who).map(|(chosen, alternatives)| {
                    let confidence = if exact && !alternatives { pct(80) } else { pct(75) };
                    self.settle(line, &chosen, Rule::SeveralInvoices, confidence)
                })
            }
        };
        found.map_or(Outcome::Next, Outcome::Matched)
    }

    /// Apply the line to the items (all of each one's open amount, or the whole line to one
    /// item when it pays less) and record it.
    fn settle(&mut self, line: &BankLine, chosen: &[usize], rule: Rule, confidence: Decimal) -> Found {
        let mut chosen = chosen.to_vec();
        chosen.sort_unstable();
        let mut items = Vec::with_capacity(chosen.len());
        for at in chosen {
            if let Some(left) = self.remaining.get_mut(at) {
                let applied = if rule == Rule::Partial { line.amount.min(*left) } else { *left };
                *left -= applied;
                items.push((at, applied));
            }
        }
        Found { items, rule, confidence }
    }

    fn open(&self, at: usize) -> Decimal {
        self.remaining.get(at).copied().unwrap_or_default()
    }

    // ----- rule 1: structured references -----

    fn structured(&mut self, line: &BankLine) -> Outcome {
        let index = self.index;
        let known = |hits: BTreeSet<usize>| -> BTreeSet<usize> {
            hits.into_iter()
                .filter(|i| index.items.get(*i).is_some_and(|item| item.currency == line.currency))
                .collect()
        };
        let rf_main = known(self.rf_hits(&[&line.reference, &line.remittance]));
        let rf_e2e = known(self.rf_hits(&[&line.end_to_end_id]));
        let invoice_main = known(self.invoice_hits(&[&line.reference, &line.remittance]));
        let invoice_e2e = known(self.invoice_hits(&[&line.end_to_end_id]));

        // Several quoted items paid together.
        let quoted: BTreeSet<usize> = rf_main
            .iter()
            .chain(&rf_e2e)
            .chain(&invoice_main)
            .chain(&invoice_e2e)
            .copied()
            .filter(|i| self.open(*i) > Decimal::ZERO)
            .collect();
        if quoted.len() >= 2 && quoted.iter().map(|i| self.open(*i)).sum::<Decimal>() == line.amount {
            let chosen: Vec<usize> = quoted.into_iter().collect();
            return Outcome::Matched(self.settle(line, &chosen, Rule::SeveralInvoices, pct(97)));
        }

        for (hits, wrong_field) in [(&rf_main, false), (&rf_e2e, true)] {
            if hits.is_empty() {
                continue;
            }
            let Some((item, fit)) = self.best(line, hits) else {
                if hits.iter().all(|i| self.open(*i) <= Decimal::ZERO) {
                    return Outcome::Stop;
                }
                break;
            };
            let full = if wrong_field { Rule::EndToEnd } else { Rule::Reference };
            let (rule, confidence) = match fit {
                Fit::Exact => (full, if wrong_field { pct(98) } else { pct(99) }),
                Fit::Short => (Rule::Partial, pct(90)),
                Fit::Over => (full, pct(60)),
            };
            return Outcome::Matched(self.settle(line, &[item], rule, confidence));
        }

        for (hits, wrong_field) in [(&invoice_main, false), (&invoice_e2e, true)] {
            if hits.is_empty() {
                continue;
            }
            let Some((item, fit)) = self.best(line, hits) else {
                if hits.iter().all(|i| self.open(*i) <= Decimal::ZERO) {
                    return Outcome::Stop;
                }
                break;
            };
            let (rule, confidence) = match (fit, wrong_field) {
                (Fit::Exact, false) => (Rule::InvoiceNumber, pct(97)),
                (Fit::Exact, true) => (Rule::EndToEnd, pct(96)),
                (Fit::Short, false) => (Rule::Partial, pct(85)),
                (Fit::Short, true) => (Rule::Partial, pct(80)),
                (Fit::Over, _) => break,
            };
            return Outcome::Matched(self.settle(line, &[item], rule, confidence));
        }
        Outcome::Next
    }

    fn rf_hits(&self, texts: &[&String]) -> BTreeSet<usize> {
        let mut references = BTreeSet::new();
        for text in texts {
            rf_candidates(text, &mut references);
        }
        references.iter().filter_map(|r| self.index.by_reference.get(r)).flatten().copied().collect()
    }

    fn invoice_hits(&self, texts: &[&String]) -> BTreeSet<usize> {
        let mut hits = BTreeSet::new();
        for text in texts {
            let segs = segments(text);
            for start in 0..segs.len() {
                if !segs[start].1 {
                    continue;
                }
                for len in 1..=self.index.invoice_segments.min(segs.len() - start) {
                    if !segs[start + len - 1].2 {
                        continue;
                    }
                    if let Some(found) = self.index.by_invoice.get(&segment_key(&segs[start..start + len])) {
                        hits.extend(found.iter().copied());
                    }
                }
            }
        }
        hits
    }

    /// The one open item with the best fit, none when two share it or none is open.
    fn best(&self, line: &BankLine, hits: &BTreeSet<usize>) -> Option<(usize, Fit)> {
        let fits: Vec<(usize, Fit)> = hits
            .iter()
            .filter(|i| self.open(**i) > Decimal::ZERO)
            .map(|i| (*i, Fit::of(line.amount, self.open(*i))))
            .collect();
        let top = fits.iter().map(|(_, f)| *f).min()?;
        let mut at_top = fits.iter().filter(|(_, f)| *f == top);
        let first = at_top.next().copied()?;
        if at_top.next().is_some() { None } else { Some(first) }
    }

    // ----- customers -----

    fn by_account(&self, line: &BankLine) -> Vec<usize> {
        let account = compact(&line.counterparty_account);
        if account.is_empty() {
            return Vec::new();
        }
        self.index.by_account.get(&account).cloned().unwrap_or_default()
    }

    /// Customers whose name is similar enough to the payer's (when none is known by the
    /// account), and whether the words all matched exactly.
    fn by_name(&mut self, line: &BankLine) -> NameHit {
        if !self.by_account(line).is_empty() {
            return None;
        }
        if let Some(hit) = self.names.get(&line.counterparty_name) {
            return hit.clone();
        }
        let hit = self.look_up_name(&line.counterparty_name);
        self.names.insert(line.counterparty_name.clone(), hit.clone());
        hit
    }

    fn look_up_name(&self, name: &str) -> NameHit {
        let words = name_words(name);
        if words.is_empty() {
            return None;
        }
        // A name similar enough (0.8) has at least `needed` of the words, exactly or with a
        // typo: only customers found by that many words are compared.
        let needed = (4 * words.len()).div_ceil(5);
        let mut hits: HashMap<usize, usize> = HashMap::new();
        for word in &words {
            let found: BTreeSet<usize> = std::iter::once(word.clone())
                .chain(deletions(word))
                .filter_map(|key| self.index.by_word.get(&key))
                .flatten()
                .copied()
                .collect();
            for c in found {
                *hits.entry(c).or_default() += 1;
            }
        }
        let seed: BTreeSet<usize> = hits.into_iter().filter(|(_, n)| *n >= needed).map(|(c, _)| c).collect();
        let mut exact = Vec::new();
        let mut close = Vec::new();
        for c in seed {
            let Some(customer) = self.index.customers.get(c) else { continue };
            let (same, typos) = word_matches(&words, &customer.words);
            if same == words.len() && same == customer.words.len() {
                exact.push(c);
            } else if similarity_of(same + typos, words.len(), customer.words.len()) >= pct(80) {
                close.push(c);
            }
        }
        if !exact.is_empty() {
            Some((exact, true))
        } else if !close.is_empty() {
            Some((close, false))
        } else {
            None
        }
    }

    // ----- rules 2 and 4: the amount of one item -----

    /// The one open item of these customers in the line's currency, due within the window,
    /// whose open amount is the line's.
    fn one_item(&self, line: &BankLine, who: &[usize]) -> Option<usize> {
        let mut found = None;
        for customer in who {
            let Some(list) = self.index.by_customer.get(&(*customer, line.currency.as_str())) else { continue };
            let earliest = line.booking_date.checked_sub_signed(self.window).unwrap_or(NaiveDate::MIN);
            let latest = line.booking_date.checked_add_signed(self.window).unwrap_or(NaiveDate::MAX);
            let from = list.partition_point(|i| self.index.items[*i].due_date < earliest);
            for at in &list[from..] {
                if self.index.items[*at].due_date > latest {
                    break;
                }
                if self.open(*at) == line.amount {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(*at);
                }
            }
        }
        found
    }

    // ----- rules 3 and 5: several items -----

    /// The smallest set of 2 to [`MAX_SPLIT`] open items of one of these customers adding up
    /// to the line, when it is the only set of its size; and whether a set of another size fits
    /// too.
    fn several(&self, line: &BankLine, who: &[usize]) -> Option<(Vec<usize>, bool)> {
        let pools: Vec<Vec<(usize, Decimal)>> = who
            .iter()
            .filter_map(|c| self.index.by_customer.get(&(*c, line.currency.as_str())))
            .map(|list| {
                let mut pool: Vec<(usize, Decimal)> = list
                    .iter()
                    .map(|i| (*i, self.open(*i)))
                    .filter(|(_, open)| *open > Decimal::ZERO && *open <= line.amount)
                    .take(MAX_SPLIT_CANDIDATES)
                    .collect();
                pool.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
                pool
            })
            .filter(|pool| pool.len() >= 2)
            .collect();
        let mut chosen: Option<Vec<usize>> = None;
        for size in 2..=MAX_SPLIT {
            let mut solutions = Vec::new();
            for pool in &pools {
                let search = SubsetSearch::new(pool, 2);
                search.run(size, line.amount, &mut solutions);
                if solutions.len() > 1 {
                    break;
                }
            }
            match (&chosen, solutions.len()) {
                (_, 0) => {}
                (None, 1) => chosen = solutions.pop(),
                (None, _) => return None,
                (Some(_), _) => return chosen.map(|c| (c, true)),
            }
        }
        chosen.map(|c| (c, false))
    }
}

/// How an amount pays an item, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fit {
    Exact,
    /// Less than the open amount.
    Short,
    /// More than the open amount.
    Over,
}

impl Fit {
    fn of(amount: Decimal, open: Decimal) -> Fit {
        match amount.cmp(&open) {
            std::cmp::Ordering::Equal => Fit::Exact,
            std::cmp::Ordering::Less => Fit::Short,
            std::cmp::Ordering::Greater => Fit::Over,
        }
    }
}

/// Subsets of a pool of (item, amount) in ascending amount order that add up to a target,
/// pruned by the smallest and largest sums still reachable.
struct SubsetSearch<'p> {
    pool: &'p [(usize, Decimal)],
    /// `prefix[k]`: sum of the first `k` amounts.
    prefix: Vec<Decimal>,
    /// Stop after this many solutions.
    limit: usize,
}

impl<'p> SubsetSearch<'p> {
    fn new(pool: &'p [(usize, Decimal)], limit: usize) -> Self {
        let mut prefix = Vec::with_capacity(pool.len() + 1);
        let mut sum = Decimal::ZERO;
        prefix.push(sum);
        for (_, amount) in pool {
            sum += *amount;
            prefix.push(sum);
        }
        SubsetSearch { pool, prefix, limit }
    }

    /// Add the subsets of exactly `size` items adding up to `target` to `out` (items in pool
    /// order), until `out` holds `limit`.
    fn run(&self, size: usize, target: Decimal, out: &mut Vec<Vec<usize>>) {
        let mut chosen = Vec::with_capacity(size);
        self.step(0, size, target, &mut chosen, out);
    }

    fn sum(&self, from: usize, to: usize) -> Decimal {
        self.prefix[to] - self.prefix[from]
    }

    fn step(&self, from: usize, left_count: usize, left: Decimal, chosen: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if out.len() >= self.limit {
            return;
        }
        if left_count == 0 {
            if left.is_zero() {
                out.push(chosen.clone());
            }
            return;
        }
        let n = self.pool.len();
        if n < from + left_count || self.sum(n - left_count, n) < left {
            return;
        }
        for at in from..=n - left_count {
            // The smallest sum from here on only grows.
            if self.sum(at, at + left_count) > left {
                break;
            }
            chosen.push(self.pool[at].0);
            self.step(at + 1, left_count - 1, left - self.pool[at].1, chosen, out);
            chosen.pop();
            if out.len() >= self.limit {
                return;
            }
        }
    }
}

// ----- rule 1: RF creditor reference -----

/// Uppercase without whitespace.
fn compact(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect()
}

/// Valid RF references written in a text: a whole field, a word, or a word starting with `RF`
/// followed by further words (the reference in groups of four).
pub fn rf_candidates(text: &str, into: &mut BTreeSet<String>) {
    if text.is_empty() {
        return;
    }
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

// ----- invoice numbers -----

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

/// The lookup key of segments: their text joined by a unit separator.
fn segment_key(segments: &[(String, bool, bool)]) -> String {
    let mut key = String::new();
    for (at, segment) in segments.iter().enumerate() {
        if at > 0 {
            key.push('\u{1f}');
        }
        key.push_str(&segment.0);
    }
    key
}

/// Whether `number` is written in `text` as a whole token, separators between its letter and
/// digit parts optional (`F-1001`, `F1001`, `f 1001`).
#[cfg(test)]
fn mentions(text: &[(String, bool, bool)], number: &[(String, bool, bool)]) -> bool {
    if number.is_empty() || number.len() > text.len() {
        return false;
    }
    text.windows(number.len()).any(|w| {
        w.iter().zip(number).all(|(a, b)| a.0 == b.0) && w.first().is_some_and(|s| s.1) && w.last().is_some_and(|s| s.2)
    })
}

// ----- names -----

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
        let mut chars = word.chars();
        let single = chars.next().is_some_and(char::is_alphabetic) && chars.next().is_none();
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

/// A word of five letters or more with each one letter left out: two words one typo apart
/// (a letter changed, added, dropped or two swapped) share one of these or one is the other.
fn deletions(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    if chars.len() < 5 {
        return Vec::new();
    }
    (0..chars.len())
        .map(|skip| chars.iter().enumerate().filter(|(at, _)| *at != skip).map(|(_, c)| *c).collect())
        .collect()
}

/// Whether two different words are one typo apart: a letter changed, added or dropped, or two
/// neighbours swapped; both of at least five letters.
fn one_typo(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() < 5 || b.len() < 5 || a == b {
        return false;
    }
    let (short, long) = if a.len() <= b.len() { (&a, &b) } else { (&b, &a) };
    match long.len() - short.len() {
        0 => {
            let differ: Vec<usize> = (0..a.len()).filter(|i| a[*i] != b[*i]).collect();
            match differ.as_slice() {
                [_] => true,
                [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
                _ => false,
            }
        }
        1 => {
            let first = (0..short.len()).find(|i| short[*i] != long[*i]).unwrap_or(short.len());
            short[first..] == long[first + 1..]
        }
        _ => false,
    }
}

/// Words of `a` found in `b`: (the same, one typo apart), each word of `b` used once.
fn word_matches(a: &BTreeSet<String>, b: &BTreeSet<String>) -> (usize, usize) {
    let same = a.intersection(b).count();
    let mut left: Vec<&String> = b.difference(a).collect();
    let mut typos = 0;
    for word in a.difference(b) {
        if let Some(at) = left.iter().position(|other| one_typo(word, other)) {
            left.swap_remove(at);
            typos += 1;
        }
    }
    (same, typos)
}

/// Matched words over all words of both names (Jaccard, a typo counting as a match).
fn similarity_of(matched: usize, a: usize, b: usize) -> Decimal {
    let union = (a + b).saturating_sub(matched);
    if union == 0 {
        return Decimal::ZERO;
    }
    Decimal::from(matched) / Decimal::from(union)
}

/// How similar two names' word sets are, between 0 and 1.
#[cfg(test)]
fn similarity(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Decimal {
    let (same, typos) = word_matches(a, b);
    similarity_of(same + typos, a.len(), b.len())
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
                Some((Rule::SeveralInvoices, "0.93", vec![(1, "1000.00"), (2, "250.00")])),
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
                confidence: d("0.92"),
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

    #[test]
    fn reference_in_the_end_to_end_id() {
        let mut line = credit("1000.00", "2026-03-01", "", "", "", "");
        line.end_to_end_id = "RF401001".to_string();
        let found = one(&[line.clone()], &book()).unwrap();
        assert_eq!((found.rule, found.confidence), (Rule::EndToEnd, d("0.98")));
        assert_eq!(found.items, vec![(id(1), d("1000.00"))]);
        line.end_to_end_id = "F-1002".to_string();
        line.amount = d("250.00");
        let found = one(&[line], &book()).unwrap();
        assert_eq!((found.rule, found.confidence), (Rule::EndToEnd, d("0.96")));
        assert_eq!(found.items, vec![(id(2), d("250.00"))]);
    }

    #[test]
    fn several_quoted_invoices_paid_together() {
        let line = credit("1250.00", "2026-06-01", "Nobody", "", "", "Facturas F-1001 y F-1002");
        let found = one(&[line], &book()).unwrap();
        assert_eq!((found.rule, found.confidence), (Rule::SeveralInvoices, d("0.97")));
        assert_eq!(found.items, vec![(id(1), d("1000.00")), (id(2), d("250.00"))]);
    }

    #[test]
    fn split_payment_by_reference_settles_the_item() {
        let lines = vec![
            credit("600.00", "2026-03-01", "", "", "RF401001", ""),
            credit("400.00", "2026-03-09", "", "", "RF401001", ""),
            credit("400.00", "2026-03-12", "", "", "RF401001", ""),
        ];
        let found = match_lines(&lines, &book(), 10);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].rule, found[0].confidence), (Rule::Partial, d("0.90")));
        assert_eq!(found[0].items, vec![(id(1), d("600.00"))]);
        assert_eq!((found[1].rule, found[1].confidence), (Rule::Reference, d("0.99")));
        assert_eq!(found[1].items, vec![(id(1), d("400.00"))]);
    }

    #[test]
    fn a_payment_sent_twice_is_matched_once() {
        let items =
            vec![item(1, ACME, "F-1", "", "500.00", "2026-03-01"), item(2, ACME, "F-2", "", "500.00", "2026-03-20")];
        let line = credit("500.00", "2026-03-02", "Acme", "012180001234567895", "", "Pago");
        let mut again = line.clone();
        again.booking_date = date("2026-03-04");
        let found = match_lines(&[line.clone(), again], &items, 10);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].items, vec![(id(1), d("500.00"))]);
        // The same amount a month later is another payment.
        let mut later = line.clone();
        later.booking_date = date("2026-03-21");
        assert_eq!(match_lines(&[line, later], &items, 10).len(), 2);
    }

    #[test]
    fn a_paid_reference_stops_the_line() {
        // The second line quotes a paid invoice: it is not matched to the other item of the same
        // amount of the same customer.
        let items = vec![
            item(1, ACME, "F-1", "RF401001", "500.00", "2026-03-01"),
            item(2, ACME, "F-2", "", "500.00", "2026-03-03"),
        ];
        let lines = vec![
            credit("500.00", "2026-03-02", "", "", "RF401001", ""),
            credit("500.00", "2026-03-02", "Acme", "012180001234567895", "RF401001", "again"),
        ];
        let found = match_lines(&lines, &items, 10);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 0);
    }

    #[test]
    fn references_claim_items_before_amounts() {
        // Line 0 has only the amount, line 1 the reference of the item line 0 would take.
        let items = vec![item(1, ACME, "F-1", "RF401001", "500.00", "2026-03-01")];
        let lines = vec![
            credit("500.00", "2026-03-01", "Acme", "012180001234567895", "", ""),
            credit("500.00", "2026-03-02", "", "", "RF401001", ""),
        ];
        let found = match_lines(&lines, &items, 10);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].line, found[0].rule), (1, Rule::Reference));
    }

    #[test]
    fn name_with_a_typo_is_recognized_with_less_confidence() {
        let items = vec![{
            let mut i = item(1, GAMMA, "G-1", "", "75.50", "2026-03-15");
            i.customer_name = "Talleres Hoffmann Norte".to_string();
            i
        }];
        let line = credit("75.50", "2026-03-16", "TALLERES HOFMANN NORTE", "", "", "");
        let found = one(&[line], &items).unwrap();
        assert_eq!((found.rule, found.confidence), (Rule::AmountAndCustomer, d("0.80")));
        let line = credit("75.50", "2026-03-16", "Talleres Hoffmann Sur", "", "", "");
        assert_eq!(one(&[line], &items), None);
    }

    #[test]
    fn one_typo_apart() {
        for (a, b) in [("hoffmann", "hofmann"), ("garcia", "gracia"), ("talleres", "talleras"), ("vogel", "vogels")] {
            assert!(one_typo(a, b), "{a} {b}");
            assert!(deletions(a).iter().chain([&a.to_string()]).any(|x| *x == b || deletions(b).contains(x)));
        }
        for (a, b) in [("garcia", "garcia"), ("garcia", "garzon"), ("peña", "pena"), ("talleres", "tallerxyz")] {
            assert!(!one_typo(a, b), "{a} {b}");
        }
    }

    #[test]
    fn overpaying_an_invoice_number_is_no_match_by_it() {
        let line = credit("1100.00", "2026-03-01", "", "", "", "F-1001");
        assert_eq!(one(&[line], &book()), None);
    }

    #[test]
    fn auto_confirm_threshold() {
        assert_eq!(DEFAULT_AUTO_CONFIRM, d("0.90"));
    }
}

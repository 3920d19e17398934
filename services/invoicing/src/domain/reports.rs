//! Accounts-receivable analytics: aging, DSO, collection effectiveness, days to pay and a cash
//! forecast.
//!
//! Pure functions over plain rows: the service loads the rows and calls these, so each figure
//! can be checked by hand in a test. Ratios are `Decimal` rounded half away from zero, never
//! floats, so the same inputs always give the same figure on every machine. Sums saturate at
//! `Decimal`'s limit (about 7.9 × 10^28, far beyond any ledger) rather than panicking, so one
//! corrupt row cannot take a report down.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;

/// How overdue an amount is, in the bands collections teams work by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// Not yet due, or due today.
    Current,
    Days1To30,
    Days31To60,
    Days61To90,
    Over90,
}

impl Bucket {
    /// Every bucket, from current to most overdue.
    pub const ALL: [Bucket; 5] =
        [Bucket::Current, Bucket::Days1To30, Bucket::Days31To60, Bucket::Days61To90, Bucket::Over90];

    /// Stable label used in reports and on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Bucket::Current => "current",
            Bucket::Days1To30 => "1-30",
            Bucket::Days31To60 => "31-60",
            Bucket::Days61To90 => "61-90",
            Bucket::Over90 => "90+",
        }
    }
}

/// The bucket of an amount due on `due_date`, seen on `as_of`.
pub fn bucket(due_date: NaiveDate, as_of: NaiveDate) -> Bucket {
    match as_of.signed_duration_since(due_date).num_days() {
        ..=0 => Bucket::Current,
        1..=30 => Bucket::Days1To30,
        31..=60 => Bucket::Days31To60,
        61..=90 => Bucket::Days61To90,
        _ => Bucket::Over90,
    }
}

/// One open balance to age: an invoice or an installment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgingRow {
    pub customer_id: Uuid,
    pub due_date: NaiveDate,
    pub balance: Decimal,
}

/// Open balances per bucket and in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgingTotals {
    pub current: Decimal,
    pub d1_30: Decimal,
    pub d31_60: Decimal,
    pub d61_90: Decimal,
    pub over_90: Decimal,
    pub total: Decimal,
}

impl AgingTotals {
    /// The total of one bucket.
    pub fn get(&self, bucket: Bucket) -> Decimal {
        match bucket {
            Bucket::Current => self.current,
            Bucket::Days1To30 => self.d1_30,
            Bucket::Days31To60 => self.d31_60,
            Bucket::Days61To90 => self.d61_90,
            Bucket::Over90 => self.over_90,
        }
    }

    fn add(&mut self, bucket: Bucket, balance: Decimal) {
        let slot = match bucket {
            Bucket::Current => &mut self.current,
            Bucket::Days1To30 => &mut self.d1_30,
            Bucket::Days31To60 => &mut self.d31_60,
            Bucket::Days61To90 => &mut self.d61_90,
            Bucket::Over90 => &mut self.over_90,
        };
        *slot = slot.saturating_add(balance);
        self.total = self.total.saturating_add(balance);
    }
}

/// Age open balances as of `as_of`: totals for the tenant and for each customer.
///
/// One pass, allocating only per customer: rows are summed into a hash map (constant time per
/// row, in any order) and sorted into the returned map once at the end. Balances are summed as
/// given, so a credit balance lowers its bucket.
pub fn aging(rows: impl IntoIterator<Item = AgingRow>, as_of: NaiveDate) -> (AgingTotals, BTreeMap<Uuid, AgingTotals>) {
    let mut tenant = AgingTotals::default();
    let mut per_customer: HashMap<Uuid, AgingTotals> = HashMap::new();
    for row in rows {
        let band = bucket(row.due_date, as_of);
        tenant.add(band, row.balance);
        per_customer.entry(row.customer_id).or_default().add(band, row.balance);
    }
    (tenant, per_customer.into_iter().collect())
}

/// Days sales outstanding: ending receivables / credit sales × days in the period, to 1
/// decimal. `None` when there were no credit sales (the ratio means nothing) or on overflow.
pub fn dso(ending_receivables: Decimal, credit_sales: Decimal, days_in_period: u32) -> Option<Decimal> {
    if credit_sales.is_zero() {
        return None;
    }
    // Multiply first so a repeating quotient is not scaled up with its rounding error.
    let days = ending_receivables.checked_mul(Decimal::from(days_in_period))?.checked_div(credit_sales)?;
    Some(one_decimal(days))
}

/// Collection effectiveness index: the share of what could have been collected in the period
/// that was, as a percentage to 1 decimal:
/// (beginning + sales − ending total) / (beginning + sales − ending current) × 100.
/// `None` when the denominator is zero (nothing was collectable) or on overflow.
pub fn cei(
    beginning_ar: Decimal,
    credit_sales: Decimal,
    ending_total_ar: Decimal,
    ending_current_ar: Decimal,
) -> Option<Decimal> {
    let available = beginning_ar.checked_add(credit_sales)?;
    let collected = available.checked_sub(ending_total_ar)?;
    let collectable = available.checked_sub(ending_current_ar)?;
    if collectable.is_zero() {
        return None;
    }
    let percent = collected.checked_mul(Decimal::ONE_HUNDRED)?.checked_div(collectable)?;
    Some(one_decimal(percent))
}

/// Round half away from zero to 1 decimal and show it ("30.0", not "30").
fn one_decimal(value: Decimal) -> Decimal {
    let mut rounded = value.round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(1);
    if rounded.is_zero() {
        rounded.set_sign_positive(true);
    }
    rounded
}

/// A settled invoice, for measuring how a customer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaidInvoice {
    pub customer_id: Uuid,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub paid_date: NaiveDate,
    pub amount: Decimal,
}

/// Average days from issue to payment per customer, weighted by amount so a large invoice
/// paid late counts for more than a small one paid early; to 1 decimal. Invoices with a
/// non-positive amount carry no weight; customers without weighted history are absent.
pub fn average_days_to_pay(paid: &[PaidInvoice]) -> BTreeMap<Uuid, Decimal> {
    weighted_days(paid, |invoice| invoice.paid_date.signed_duration_since(invoice.issue_date).num_days())
        .into_iter()
        .map(|(customer, average)| (customer, one_decimal(average)))
        .collect()
}

/// Average days paid after the due date per customer (negative: early), weighted by amount and
/// rounded half away from zero to whole days: the delay [`forecast_weekly`] expects. Invoices
/// with a non-positive amount carry no weight; customers without weighted history are absent.
pub fn average_delay(paid: &[PaidInvoice]) -> BTreeMap<Uuid, i64> {
    weighted_days(paid, |invoice| invoice.paid_date.signed_duration_since(invoice.due_date).num_days())
        .into_iter()
        .filter_map(|(customer, average)| {
            let whole = average.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
            i64::try_from(whole).ok().map(|days| (customer, days))
        })
        .collect()
}

/// Σ(amount × days) / Σ(amount) per customer, unrounded.
fn weighted_days(paid: &[PaidInvoice], days: impl Fn(&PaidInvoice) -> i64) -> BTreeMap<Uuid, Decimal> {
    // (Σ amount × days, Σ amount)
    let mut sums: BTreeMap<Uuid, (Decimal, Decimal)> = BTreeMap::new();
    for invoice in paid.iter().filter(|invoice| invoice.amount > Decimal::ZERO) {
        let weighted = invoice.amount.saturating_mul(Decimal::from(days(invoice)));
        let (weighted_sum, weight) = sums.entry(invoice.customer_id).or_default();
        *weighted_sum = weighted_sum.saturating_add(weighted);
        *weight = weight.saturating_add(invoice.amount);
    }
    sums.into_iter()
        .filter_map(|(customer, (weighted_sum, weight))| {
            weighted_sum.checked_div(weight).map(|average| (customer, average))
        })
        .collect()
}

/// An unpaid balance to forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenInvoice {
    pub customer_id: Uuid,
    pub due_date: NaiveDate,
    pub balance: Decimal,
}

/// Cash expected in the week starting `week_start` (that day and the six after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekForecast {
    pub week_start: NaiveDate,
    pub expected: Decimal,
}

/// Expected collections for the `weeks` weeks starting `today`.
///
/// Each balance is expected on its due date plus the customer's average delay from `delays`
/// (none without history). What was expected before today is overdue and expected now, in
/// week 0; what is expected after the last week is left out. Balances of zero or less are not
/// cash coming in and are skipped. Returns exactly `weeks` entries (fewer only if the calendar
/// ends first), so callers bound `weeks`.
pub fn forecast_weekly(
    open: &[OpenInvoice],
    delays: &BTreeMap<Uuid, i64>,
    today: NaiveDate,
    weeks: u32,
) -> Vec<WeekForecast> {
    let mut forecast: Vec<WeekForecast> = (0..u64::from(weeks))
        .map_while(|k| {
            let week_start = today.checked_add_days(Days::new(k.checked_mul(7)?))?;
            Some(WeekForecast { week_start, expected: Decimal::ZERO })
        })
        .collect();
    for invoice in open.iter().filter(|invoice| invoice.balance > Decimal::ZERO) {
        let delay = delays.get(&invoice.customer_id).copied().unwrap_or(0);
        let days_from_today = invoice.due_date.signed_duration_since(today).num_days().saturating_add(delay);
        let week = days_from_today.max(0) / 7;
        if let Some(slot) = usize::try_from(week).ok().and_then(|week| forecast.get_mut(week)) {
            slot.expected = slot.expected.saturating_add(invoice.balance);
        }
    }
    forecast
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse::<Decimal>().unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn customer(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn buckets_at_every_boundary() {
        let as_of = date(2025, 6, 30);
        let cases: &[(i64, Bucket, &str)] = &[
            (-30, Bucket::Current, "current"),
            (-1, Bucket::Current, "current"),
            (0, Bucket::Current, "current"),
            (1, Bucket::Days1To30, "1-30"),
            (30, Bucket::Days1To30, "1-30"),
            (31, Bucket::Days31To60, "31-60"),
            (60, Bucket::Days31To60, "31-60"),
            (61, Bucket::Days61To90, "61-90"),
            (90, Bucket::Days61To90, "61-90"),
            (91, Bucket::Over90, "90+"),
            (3650, Bucket::Over90, "90+"),
        ];
        for &(days_past_due, expected, label) in cases {
            let due = as_of - chrono::TimeDelta::days(days_past_due);
            let got = bucket(due, as_of);
            assert_eq!(got, expected, "{days_past_due} days past due");
            assert_eq!(got.as_str(), label);
        }
        assert_eq!(bucket(NaiveDate::MIN, NaiveDate::MAX), Bucket::Over90);
        assert_eq!(bucket(NaiveDate::MAX, NaiveDate::MIN), Bucket::Current);
    }

    #[test]
    fn aging_totals_per_tenant_and_customer() {
        let as_of = date(2025, 6, 30);
        let (a, b, c) = (customer(1), customer(2), customer(3));
        let row = |customer_id, due_date, balance: &str| AgingRow { customer_id, due_date, balance: dec(balance) };
        let rows = vec![
            row(a, date(2025, 7, 15), "100.00"), // current
            row(a, date(2025, 6, 30), "50.00"),  // due today: current
            row(a, date(2025, 6, 10), "200.00"), // 20 days: 1-30
            row(b, date(2025, 5, 31), "300.00"), // 30 days: 1-30
            row(b, date(2025, 5, 1), "400.00"),  // 60 days: 31-60
            row(a, date(2025, 4, 1), "500.00"),  // 90 days: 61-90
            row(c, date(2025, 3, 31), "600.00"), // 91 days: 90+
            row(b, date(2024, 1, 1), "700.50"),  // 90+
            row(c, date(2025, 6, 29), "-25.00"), // a credit, 1 day: 1-30
        ];
        let (tenant, per_customer) = aging(rows, as_of);

        let expected_tenant = AgingTotals {
            current: dec("150.00"),
            d1_30: dec("475.00"),
            d31_60: dec("400.00"),
            d61_90: dec("500.00"),
            over_90: dec("1300.50"),
            total: dec("2825.50"),
        };
        assert_eq!(tenant, expected_tenant);

        let expected: BTreeMap<Uuid, AgingTotals> = [
            (
                a,
                AgingTotals {
                    current: dec("150.00"),
                    d1_30: dec("200.00"),
                    d61_90: dec("500.00"),
                    total: dec("850.00"),
                    ..AgingTotals::default()
                },
            ),
            (
                b,
                AgingTotals {
                    d1_30: dec("300.00"),
                    d31_60: dec("400.00"),
                    over_90: dec("700.50"),
                    total: dec("1400.50"),
                    ..AgingTotals::default()
                },
            ),
            (
                c,
                AgingTotals {
                    d1_30: dec("-25.00"),
                    over_90: dec("600.00"),
                    total: dec("575.00"),
                    ..AgingTotals::default()
                },
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(per_customer, expected);

        for totals in per_customer.values().chain([&tenant]) {
            let sum: Decimal = Bucket::ALL.iter().map(|&b| totals.get(b)).sum();
            assert_eq!(sum, totals.total);
        }
    }

    #[test]
    fn aging_of_nothing_is_zero() {
        let (tenant, per_customer) = aging(Vec::<AgingRow>::new(), date(2025, 1, 1));
        assert_eq!(tenant, AgingTotals::default());
        assert!(per_customer.is_empty());
    }

    #[test]
    fn aging_a_million_rows_in_one_pass() {
        let as_of = date(2025, 6, 30);
        let rows = (0..1_000_000_u32).map(|i| AgingRow {
            customer_id: customer(u128::from(i % 1000)),
            due_date: as_of - chrono::TimeDelta::days(i64::from(i % 120)),
            balance: Decimal::new(i64::from(i % 100) + 1, 2),
        });
        let (tenant, per_customer) = aging(rows, as_of);
        assert_eq!(per_customer.len(), 1000);
        // Σ over i of (i % 100 + 1) cents = 10,000 cycles × 5,050 cents.
        assert_eq!(tenant.total, dec("505000.00"));
    }

    #[test]
    fn dso_examples() {
        assert_eq!(dso(dec("120000"), dec("360000"), 90), Some(dec("30.0")));
        assert_eq!(dso(dec("120000"), dec("360000"), 90).unwrap().to_string(), "30.0");
        // 100 / 300 × 30 = 10.0; 50,000 / 180,000 × 365 = 101.388… -> 101.4.
        assert_eq!(dso(dec("100"), dec("300"), 30), Some(dec("10.0")));
        assert_eq!(dso(dec("50000"), dec("180000"), 365), Some(dec("101.4")));
        // 1 / 3 × 1 = 0.333… -> 0.3; 1 / 4 × 1 = 0.25 -> 0.3 (half away from zero).
        assert_eq!(dso(dec("1"), dec("3"), 1), Some(dec("0.3")));
        assert_eq!(dso(dec("1"), dec("4"), 1), Some(dec("0.3")));
        assert_eq!(dso(dec("0"), dec("1000"), 30), Some(dec("0.0")));
        assert_eq!(dso(dec("5000"), dec("0"), 30), None);
        assert_eq!(dso(Decimal::MAX, dec("0.5"), 90), None);
    }

    #[test]
    fn cei_examples() {
        // (100,000 + 500,000 − 150,000) / (100,000 + 500,000 − 90,000) × 100
        //   = 450,000 / 510,000 × 100 = 88.235… -> 88.2
        assert_eq!(cei(dec("100000"), dec("500000"), dec("150000"), dec("90000")), Some(dec("88.2")));
        // Everything collectable was collected: ending total equals ending current.
        assert_eq!(cei(dec("1000"), dec("2000"), dec("500"), dec("500")), Some(dec("100.0")));
        // (200 + 800 − 700) / (200 + 800 − 200) × 100 = 300 / 800 × 100 = 37.5
        assert_eq!(cei(dec("200"), dec("800"), dec("700"), dec("200")), Some(dec("37.5")));
        // (0 + 300 − 100) / (0 + 300 − 0) × 100 = 66.666… -> 66.7
        assert_eq!(cei(dec("0"), dec("300"), dec("100"), dec("0")), Some(dec("66.7")));
        assert_eq!(cei(dec("100"), dec("50"), dec("150"), dec("150")), None);
        assert_eq!(cei(Decimal::MAX, Decimal::MAX, dec("0"), dec("0")), None);
    }

    fn paid(customer_id: Uuid, issue: NaiveDate, due: NaiveDate, paid_on: NaiveDate, amount: &str) -> PaidInvoice {
        PaidInvoice { customer_id, issue_date: issue, due_date: due, paid_date: paid_on, amount: dec(amount) }
    }

    #[test]
    fn days_to_pay_and_delay_are_amount_weighted() {
        let (a, b, c, d) = (customer(1), customer(2), customer(3), customer(4));
        let history = [
            // a: 1,000 paid 40 days after issue (10 late), 3,000 paid 20 days after (10 early).
            //   to pay: (1000×40 + 3000×20) / 4000 = 25.0; delay: (1000×10 + 3000×−10) / 4000 = −5
            paid(a, date(2025, 1, 1), date(2025, 1, 31), date(2025, 2, 10), "1000"),
            paid(a, date(2025, 2, 1), date(2025, 3, 3), date(2025, 2, 21), "3000"),
            // b: 100 paid 45 days after issue (15 late), 200 paid 31 days after (1 late).
            //   to pay: (100×45 + 200×31) / 300 = 10700 / 300 = 35.666… -> 35.7
            //   delay: (100×15 + 200×1) / 300 = 1700 / 300 = 5.666… -> 6
            paid(b, date(2025, 1, 1), date(2025, 1, 31), date(2025, 2, 15), "100"),
            paid(b, date(2025, 3, 1), date(2025, 3, 31), date(2025, 4, 1), "200"),
            // c: delay (50×−2 + 50×−3) / 100 = −2.5 -> −3 (half away from zero); to pay 12.5.
            paid(c, date(2025, 1, 1), date(2025, 1, 16), date(2025, 1, 14), "50"),
            paid(c, date(2025, 1, 1), date(2025, 1, 16), date(2025, 1, 13), "50"),
            // d: only a zero-amount invoice, which carries no weight.
            paid(d, date(2025, 1, 1), date(2025, 1, 31), date(2025, 3, 1), "0"),
        ];

        let to_pay = average_days_to_pay(&history);
        let expected: BTreeMap<Uuid, Decimal> =
            [(a, dec("25.0")), (b, dec("35.7")), (c, dec("12.5"))].into_iter().collect();
        assert_eq!(to_pay, expected);
        assert_eq!(to_pay.get(&a).unwrap().to_string(), "25.0");

        let delay = average_delay(&history);
        let expected: BTreeMap<Uuid, i64> = [(a, -5), (b, 6), (c, -3)].into_iter().collect();
        assert_eq!(delay, expected);

        assert!(average_days_to_pay(&[]).is_empty());
        assert!(average_delay(&[]).is_empty());
    }

    #[test]
    fn forecast_by_week_with_and_without_history() {
        let today = date(2025, 6, 2); // a Monday; weeks start on `today` whatever the weekday
        let (late, early, new) = (customer(1), customer(2), customer(3));
        let delays: BTreeMap<Uuid, i64> = [(late, 10), (early, -3)].into_iter().collect();
        let open = |customer_id, due_date, balance: &str| OpenInvoice { customer_id, due_date, balance: dec(balance) };
        let invoices = [
            // Overdue without history: expected now, week 0.
            open(new, date(2025, 5, 1), "100.00"),
            // Due in 2 days but paid 10 late: day 12, week 1.
            open(late, date(2025, 6, 4), "200.00"),
            // Overdue 20 days, 10 more late: still overdue, week 0.
            open(late, date(2025, 5, 13), "300.00"),
            // Due on day 9, paid 3 early: day 6, week 0 (the last day of it).
            open(early, date(2025, 6, 11), "400.00"),
            // Due on day 10, paid 3 early: day 7, first day of week 1.
            open(early, date(2025, 6, 12), "50.00"),
            // Due on day 14 without history: week 2.
            open(new, date(2025, 6, 16), "25.50"),
            // Due on day 80, 10 late: day 90, week 12, beyond a 12-week horizon: dropped.
            open(late, date(2025, 8, 21), "999.00"),
            // Due on day 83 without history: week 11, the last one kept.
            open(new, date(2025, 8, 24), "75.00"),
            // Nothing owed: not cash coming in.
            open(new, date(2025, 6, 3), "0.00"),
            open(new, date(2025, 6, 3), "-40.00"),
        ];
        let forecast = forecast_weekly(&invoices, &delays, today, 12);

        assert_eq!(forecast.len(), 12);
        for (k, week) in (0_u64..).zip(&forecast) {
            assert_eq!(week.week_start, today + Days::new(7 * k));
        }
        let expected: Vec<Decimal> = [
            "800.00", // 100 + 300 + 400
            "250.00", // 200 + 50
            "25.50", "0", "0", "0", "0", "0", "0", "0", "0", "75.00",
        ]
        .into_iter()
        .map(dec)
        .collect();
        assert_eq!(forecast.iter().map(|w| w.expected).collect::<Vec<_>>(), expected);
        assert_eq!(forecast.iter().map(|w| w.expected).sum::<Decimal>(), dec("1150.50"));

        // A longer horizon picks up the dropped invoice in week 12.
        let longer = forecast_weekly(&invoices, &delays, today, 13);
        assert_eq!(longer.last().map(|w| w.expected), Some(dec("999.00")));
    }

    #[test]
    fn forecast_shape_edges() {
        let today = date(2025, 6, 2);
        let invoices = [OpenInvoice { customer_id: customer(1), due_date: today, balance: dec("10") }];
        assert!(forecast_weekly(&invoices, &BTreeMap::new(), today, 0).is_empty());
        let one = forecast_weekly(&invoices, &BTreeMap::new(), today, 1);
        assert_eq!(one, [WeekForecast { week_start: today, expected: dec("10") }]);
        // Absurd delays neither panic nor land anywhere odd.
        let delays: BTreeMap<Uuid, i64> = [(customer(1), i64::MAX)].into_iter().collect();
        let far = forecast_weekly(&invoices, &delays, today, 4);
        assert!(far.iter().all(|w| w.expected.is_zero()));
        let delays: BTreeMap<Uuid, i64> = [(customer(1), i64::MIN)].into_iter().collect();
        assert_eq!(forecast_weekly(&invoices, &delays, today, 4)[0].expected, dec("10"));
        // The calendar ends before the horizon does.
        assert_eq!(forecast_weekly(&[], &BTreeMap::new(), NaiveDate::MAX, 3).len(), 1);
    }
}

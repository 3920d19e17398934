//! Installment plans and payment allocation.
//!
//! An invoice may be paid in installments: split evenly by Cobro ([`split_equal`]) or given one
//! by one by the user ([`validate_explicit`]). Either way the installments add up exactly to the
//! invoice total, because a plan that is off by a cent can never be fully settled. Payments are
//! spread over open items oldest first ([`allocate_oldest_first`]) unless the payer names the
//! item they are paying ([`allocate_to`]).

use chrono::{Days, Months, NaiveDate};
use cobro_kit::error::InvalidField;
use cobro_kit::money::{Currency, Money, MoneyError};
use rust_decimal::Decimal;
use uuid::Uuid;

/// Fewest installments [`split_equal`] makes: one installment is not a plan.
pub const MIN_SPLIT_COUNT: u32 = 2;

/// Most installments in any plan: five years of monthly payments.
pub const MAX_INSTALLMENTS: usize = 60;

/// One payment of a plan: how much is due and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Installment {
    pub due_date: NaiveDate,
    pub amount: Decimal,
}

/// Time between consecutive due dates of an equal split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Days(u32),
    /// Calendar months: the due day of the first installment is kept, moved back to the last
    /// day of shorter months (Jan 31, Feb 28, Mar 31).
    Months(u32),
}

/// Split `total` into `count` installments, `every` interval apart from `first_due`.
///
/// Each installment is the share rounded down to minor units and the last one also takes the
/// remainder, so the plan adds up exactly: 100.00 MXN in three is 33.33, 33.33, 33.34. Monthly
/// due dates are counted from `first_due` each time, so a short month never shifts later ones.
pub fn split_equal(
    total: Decimal,
    currency: Currency,
    count: u32,
    first_due: NaiveDate,
    every: Interval,
) -> Result<Vec<Installment>, InvalidField> {
    let max_count = u32::try_from(MAX_INSTALLMENTS).unwrap_or(u32::MAX);
    if !(MIN_SPLIT_COUNT..=max_count).contains(&count) {
        return Err(InvalidField::new(
            "installments.count",
            format!("must be between {MIN_SPLIT_COUNT} and {max_count}; got {count}"),
        ));
    }
    let step = match every {
        Interval::Days(n) | Interval::Months(n) => n,
    };
    if step == 0 {
        return Err(InvalidField::new("installments.interval", "must be at least 1 day or 1 month"));
    }
    if total <= Decimal::ZERO {
        return Err(InvalidField::new("total", "must be greater than zero to split into installments"));
    }
    let total = Money::new(total, currency).map_err(|e| InvalidField::new("total", amount_reason(&e, currency)))?;
    let shares = total.allocate(count).map_err(|e| InvalidField::new("total", e.to_string()))?;
    let mut plan = Vec::with_capacity(shares.len());
    for (k, share) in (0_u32..).zip(shares) {
        let due_date = nth_due_date(first_due, every, k).ok_or_else(|| {
            InvalidField::new("installments.first_due", "the plan would run past the last date the calendar supports")
        })?;
        plan.push(Installment { due_date, amount: share.amount() });
    }
    Ok(plan)
}

/// `first_due` plus `k` intervals, or `None` past the end of the calendar.
fn nth_due_date(first_due: NaiveDate, every: Interval, k: u32) -> Option<NaiveDate> {
    match every {
        Interval::Days(n) => first_due.checked_add_days(Days::new(u64::from(n.checked_mul(k)?))),
        // chrono clamps to the month's last day and we always count from `first_due`.
        Interval::Months(n) => first_due.checked_add_months(Months::new(n.checked_mul(k)?)),
    }
}

/// Check a plan the user wrote out: 1 to [`MAX_INSTALLMENTS`] installments, each a positive
/// amount exact to the currency's minor units, due dates strictly increasing and none before
/// the invoice's `issue_date`, adding up exactly to `total`. The first problem found is
/// reported, naming the installment at fault.
pub fn validate_explicit(
    total: Decimal,
    currency: Currency,
    items: &[Installment],
    issue_date: NaiveDate,
) -> Result<(), InvalidField> {
    if items.is_empty() || items.len() > MAX_INSTALLMENTS {
        return Err(InvalidField::new(
            "installments",
            format!("must have between 1 and {MAX_INSTALLMENTS} installments; got {}", items.len()),
        ));
    }
    let mut sum = Decimal::ZERO;
    let mut previous_due: Option<NaiveDate> = None;
    for (i, item) in items.iter().enumerate() {
        if item.amount <= Decimal::ZERO {
            return Err(InvalidField::new(format!("installments[{i}].amount"), "must be greater than zero"));
        }
        Money::new(item.amount, currency)
            .map_err(|e| InvalidField::new(format!("installments[{i}].amount"), amount_reason(&e, currency)))?;
        if item.due_date < issue_date {
            return Err(InvalidField::new(
                format!("installments[{i}].due_date"),
                format!("must not be before the invoice's issue date {issue_date}; got {}", item.due_date),
            ));
        }
        if let Some(previous) = previous_due
            && item.due_date <= previous
        {
            return Err(InvalidField::new(
                format!("installments[{i}].due_date"),
                format!("must be after the previous installment's due date {previous}; got {}", item.due_date),
            ));
        }
        previous_due = Some(item.due_date);
        // Each amount is below 10^18 (checked by `Money::new`), so 60 of them cannot overflow.
        sum = sum.saturating_add(item.amount);
    }
    if sum != total {
        return Err(InvalidField::new(
            "installments",
            format!(
                "must add up to the invoice total {}; they add up to {}",
                show(total, currency),
                show(sum, currency)
            ),
        ));
    }
    Ok(())
}

/// Why an installment amount does not fit its currency, in the words the wire errors use.
fn amount_reason(err: &MoneyError, currency: Currency) -> String {
    match (err, currency.minor_units()) {
        (MoneyError::TooManyDecimals { .. }, 0) => {
            format!("{currency} amounts are whole numbers, without decimal places")
        }
        (MoneyError::TooManyDecimals { .. }, 1) => format!("{currency} amounts take at most 1 decimal place"),
        (MoneyError::TooManyDecimals { .. }, n) => format!("{currency} amounts take at most {n} decimal places"),
        (other, _) => other.to_string(),
    }
}

/// An amount as an invoice shows it ("100.00"), unless that would hide decimals it has.
fn show(amount: Decimal, currency: Currency) -> Decimal {
    let mut shown = amount;
    if amount.normalize().scale() <= currency.minor_units() {
        shown.rescale(currency.minor_units());
    }
    shown
}

/// Something a payment can settle: an invoice or one of its installments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenItem {
    pub id: Uuid,
    pub due_date: NaiveDate,
    pub balance: Decimal,
}

/// Spread a payment over open items, oldest due date first (ties by id, so the result never
/// depends on load order). Returns the amount applied to each item, in the order applied and
/// never more than its balance, and what is left unapplied. Items with nothing owed are
/// skipped; a non-positive `amount` applies nothing.
pub fn allocate_oldest_first(amount: Decimal, items: &[OpenItem]) -> (Vec<(Uuid, Decimal)>, Decimal) {
    apply_in_order(amount, oldest_first(items.iter()))
}

/// Like [`allocate_oldest_first`], but `target` (the item the payer named) is settled first.
/// If `target` is not among `items`, or owes nothing, this is plain oldest-first allocation.
pub fn allocate_to(amount: Decimal, items: &[OpenItem], target: Uuid) -> (Vec<(Uuid, Decimal)>, Decimal) {
    let targeted = oldest_first(items.iter().filter(|item| item.id == target));
    let others = oldest_first(items.iter().filter(|item| item.id != target));
    apply_in_order(amount, targeted.into_iter().chain(others))
}

/// Items that owe something, by due date then id.
fn oldest_first<'a>(items: impl Iterator<Item = &'a OpenItem>) -> Vec<&'a OpenItem> {
    let mut owing: Vec<&OpenItem> = items.filter(|item| item.balance > Decimal::ZERO).collect();
    owing.sort_by_key(|item| (item.due_date, item.id));
    owing
}

fn apply_in_order<'a>(
    amount: Decimal,
    ordered: impl IntoIterator<Item = &'a OpenItem>,
) -> (Vec<(Uuid, Decimal)>, Decimal) {
    let mut left = amount.max(Decimal::ZERO);
    let mut applied = Vec::new();
    for item in ordered {
        if left.is_zero() {
            break;
        }
        let part = left.min(item.balance);
        applied.push((item.id, part));
        left -= part;
    }
    (applied, left)
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

    fn cur(code: &str) -> Currency {
        Currency::from_code(code).unwrap()
    }

    fn amounts(plan: &[Installment]) -> Vec<String> {
        plan.iter().map(|i| i.amount.to_string()).collect()
    }

    fn dates(plan: &[Installment]) -> Vec<NaiveDate> {
        plan.iter().map(|i| i.due_date).collect()
    }

    #[test]
    fn equal_split_puts_the_remainder_on_the_last_installment() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("100.00", "MXN", &["33.33", "33.33", "33.34"]),
            ("100", "MXN", &["33.33", "33.33", "33.34"]),
            ("1000", "JPY", &["333", "333", "334"]),
            ("10.000", "BHD", &["3.333", "3.333", "3.334"]),
            ("90.00", "USD", &["30.00", "30.00", "30.00"]),
        ];
        for &(total, code, expected) in cases {
            let plan = split_equal(dec(total), cur(code), 3, date(2025, 1, 10), Interval::Days(30)).unwrap();
            assert_eq!(amounts(&plan), expected, "{total} {code}");
            assert_eq!(plan.iter().map(|i| i.amount).sum::<Decimal>(), dec(total));
        }
    }

    #[test]
    fn equal_split_sums_exactly_for_every_count() {
        for count in MIN_SPLIT_COUNT..=60 {
            let plan =
                split_equal(dec("1234.57"), Currency::MXN, count, date(2025, 1, 1), Interval::Months(1)).unwrap();
            assert_eq!(plan.len(), usize::try_from(count).unwrap());
            assert_eq!(plan.iter().map(|i| i.amount).sum::<Decimal>(), dec("1234.57"));
            assert!(plan.iter().all(|i| i.amount.scale() == 2 && i.amount > Decimal::ZERO));
        }
    }

    #[test]
    fn equal_split_every_n_days() {
        let plan = split_equal(dec("100"), Currency::MXN, 3, date(2025, 12, 20), Interval::Days(15)).unwrap();
        assert_eq!(dates(&plan), [date(2025, 12, 20), date(2026, 1, 4), date(2026, 1, 19)]);
    }

    #[test]
    fn monthly_dates_clamp_to_month_end_without_drifting() {
        let plan = split_equal(dec("400"), Currency::MXN, 4, date(2025, 1, 31), Interval::Months(1)).unwrap();
        assert_eq!(dates(&plan), [date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31), date(2025, 4, 30)]);

        let leap = split_equal(dec("400"), Currency::MXN, 4, date(2024, 1, 31), Interval::Months(1)).unwrap();
        assert_eq!(dates(&leap), [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)]);

        let quarterly = split_equal(dec("300"), Currency::MXN, 3, date(2025, 11, 30), Interval::Months(3)).unwrap();
        assert_eq!(dates(&quarterly), [date(2025, 11, 30), date(2026, 2, 28), date(2026, 5, 30)]);
    }

    #[test]
    fn equal_split_rejects_bad_input_naming_the_field() {
        let first = date(2025, 1, 1);
        let cases: &[(&str, u32, Interval, &str, &str)] = &[
            ("100", 1, Interval::Months(1), "installments.count", "between 2 and 60"),
            ("100", 0, Interval::Months(1), "installments.count", "got 0"),
            ("100", 61, Interval::Months(1), "installments.count", "got 61"),
            ("100", 3, Interval::Days(0), "installments.interval", "at least 1"),
            ("100", 3, Interval::Months(0), "installments.interval", "at least 1"),
            ("0", 3, Interval::Months(1), "total", "greater than zero"),
            ("-10", 3, Interval::Months(1), "total", "greater than zero"),
            ("10.005", 3, Interval::Months(1), "total", "MXN amounts take at most 2 decimal places"),
            ("1000000000000000000", 3, Interval::Months(1), "total", "too large"),
        ];
        for &(total, count, every, field, fragment) in cases {
            let err = split_equal(dec(total), Currency::MXN, count, first, every).unwrap_err();
            assert_eq!(err.field, field, "{total} {count} {every:?}");
            assert!(err.reason.contains(fragment), "{:?} lacks {fragment:?}", err.reason);
        }
        let err = split_equal(dec("100"), Currency::MXN, 3, NaiveDate::MAX, Interval::Days(1)).unwrap_err();
        assert_eq!(err.field, "installments.first_due");
    }

    fn inst(y: i32, m: u32, d: u32, amount: &str) -> Installment {
        Installment { due_date: date(y, m, d), amount: dec(amount) }
    }

    #[test]
    fn explicit_plan_that_adds_up_is_accepted() {
        let issue = date(2025, 3, 1);
        let items = [inst(2025, 3, 1, "40.00"), inst(2025, 4, 1, "35.50"), inst(2025, 5, 1, "24.50")];
        assert_eq!(validate_explicit(dec("100.00"), Currency::MXN, &items, issue), Ok(()));
        assert_eq!(validate_explicit(dec("100"), Currency::MXN, &items, issue), Ok(()));
        let single = [inst(2025, 3, 31, "100")];
        assert_eq!(validate_explicit(dec("100.00"), Currency::MXN, &single, issue), Ok(()));
    }

    #[test]
    fn explicit_plan_sum_mismatch_names_both_amounts() {
        let issue = date(2025, 3, 1);
        let items = [inst(2025, 4, 1, "33.33"), inst(2025, 5, 1, "33.33"), inst(2025, 6, 1, "33.33")];
        let err = validate_explicit(dec("100"), Currency::MXN, &items, issue).unwrap_err();
        assert_eq!(err.field, "installments");
        assert_eq!(err.reason, "must add up to the invoice total 100.00; they add up to 99.99");
    }

    #[test]
    fn explicit_plan_dates_must_increase_strictly() {
        let issue = date(2025, 3, 1);
        let same = [inst(2025, 4, 1, "50"), inst(2025, 4, 1, "50")];
        let err = validate_explicit(dec("100"), Currency::MXN, &same, issue).unwrap_err();
        assert_eq!(err.field, "installments[1].due_date");
        assert!(err.reason.contains("after the previous installment's due date 2025-04-01"), "{}", err.reason);

        let backwards = [inst(2025, 4, 1, "30"), inst(2025, 6, 1, "30"), inst(2025, 5, 1, "40")];
        let err = validate_explicit(dec("100"), Currency::MXN, &backwards, issue).unwrap_err();
        assert_eq!(err.field, "installments[2].due_date");
    }

    #[test]
    fn explicit_plan_date_before_issue_is_refused() {
        let issue = date(2025, 3, 1);
        let items = [inst(2025, 2, 28, "50"), inst(2025, 4, 1, "50")];
        let err = validate_explicit(dec("100"), Currency::MXN, &items, issue).unwrap_err();
        assert_eq!(err.field, "installments[0].due_date");
        assert!(err.reason.contains("issue date 2025-03-01"), "{}", err.reason);
    }

    #[test]
    fn explicit_plan_amounts_must_fit_the_currency() {
        let issue = date(2025, 3, 1);
        let cases: &[(&str, &str, usize, &str)] = &[
            ("MXN", "10.001", 1, "MXN amounts take at most 2 decimal places"),
            ("JPY", "10.5", 1, "JPY amounts are whole numbers"),
            ("BHD", "1.0001", 1, "BHD amounts take at most 3 decimal places"),
            ("MXN", "0", 1, "greater than zero"),
            ("MXN", "-5", 1, "greater than zero"),
        ];
        for &(code, bad, index, fragment) in cases {
            let items = [inst(2025, 4, 1, "10"), inst(2025, 5, 1, bad)];
            let err = validate_explicit(dec("20"), cur(code), &items, issue).unwrap_err();
            assert_eq!(err.field, format!("installments[{index}].amount"), "{code} {bad}");
            assert!(err.reason.contains(fragment), "{:?} lacks {fragment:?}", err.reason);
        }
        // Trailing zeros are not extra decimals.
        let items = [inst(2025, 4, 1, "10.500"), inst(2025, 5, 1, "9.50")];
        assert_eq!(validate_explicit(dec("20"), Currency::MXN, &items, issue), Ok(()));
    }

    #[test]
    fn explicit_plan_size_is_bounded() {
        let issue = date(2025, 1, 1);
        let err = validate_explicit(dec("100"), Currency::MXN, &[], issue).unwrap_err();
        assert_eq!(err.field, "installments");
        assert!(err.reason.contains("between 1 and 60"), "{}", err.reason);

        let sixty_one: Vec<Installment> =
            (0..61).map(|k| Installment { due_date: issue + Days::new(k), amount: Decimal::ONE }).collect();
        let err = validate_explicit(dec("61"), Currency::MXN, &sixty_one, issue).unwrap_err();
        assert_eq!(err.field, "installments");
        assert!(err.reason.contains("got 61"), "{}", err.reason);
        assert_eq!(validate_explicit(dec("60"), Currency::MXN, &sixty_one[..60], issue), Ok(()));
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn item(n: u128, due: NaiveDate, balance: &str) -> OpenItem {
        OpenItem { id: id(n), due_date: due, balance: dec(balance) }
    }

    fn applied(pairs: &[(u128, &str)]) -> Vec<(Uuid, Decimal)> {
        pairs.iter().map(|&(n, amount)| (id(n), dec(amount))).collect()
    }

    fn fixture() -> Vec<OpenItem> {
        // Deliberately not in due-date order.
        vec![
            item(3, date(2025, 3, 1), "300.00"),
            item(1, date(2025, 1, 1), "100.00"),
            item(2, date(2025, 2, 1), "200.00"),
        ]
    }

    #[test]
    fn allocation_exact() {
        let (parts, left) = allocate_oldest_first(dec("600.00"), &fixture());
        assert_eq!(parts, applied(&[(1, "100.00"), (2, "200.00"), (3, "300.00")]));
        assert_eq!(left, Decimal::ZERO);
    }

    #[test]
    fn allocation_partial_stops_when_the_payment_runs_out() {
        let (parts, left) = allocate_oldest_first(dec("150.00"), &fixture());
        assert_eq!(parts, applied(&[(1, "100.00"), (2, "50.00")]));
        assert_eq!(left, Decimal::ZERO);
    }

    #[test]
    fn allocation_overpayment_leaves_a_remainder() {
        let (parts, left) = allocate_oldest_first(dec("650.25"), &fixture());
        assert_eq!(parts, applied(&[(1, "100.00"), (2, "200.00"), (3, "300.00")]));
        assert_eq!(left, dec("50.25"));

        let (parts, left) = allocate_oldest_first(dec("10"), &[]);
        assert!(parts.is_empty());
        assert_eq!(left, dec("10"));
    }

    #[test]
    fn allocation_skips_items_that_owe_nothing() {
        let items = vec![
            item(1, date(2025, 1, 1), "0.00"),
            item(2, date(2025, 1, 2), "-5.00"),
            item(3, date(2025, 1, 3), "40.00"),
        ];
        let (parts, left) = allocate_oldest_first(dec("50"), &items);
        assert_eq!(parts, applied(&[(3, "40.00")]));
        assert_eq!(left, dec("10"));
    }

    #[test]
    fn allocation_orders_by_due_date_then_id() {
        let due = date(2025, 1, 1);
        let items = vec![item(9, date(2025, 1, 2), "10"), item(7, due, "10"), item(5, due, "10")];
        let (parts, _) = allocate_oldest_first(dec("25"), &items);
        assert_eq!(parts, applied(&[(5, "10"), (7, "10"), (9, "5")]));
    }

    #[test]
    fn allocation_of_nothing_applies_nothing() {
        for amount in ["0", "-10"] {
            let (parts, left) = allocate_oldest_first(dec(amount), &fixture());
            assert!(parts.is_empty(), "{amount}");
            assert_eq!(left, Decimal::ZERO);
        }
    }

    #[test]
    fn targeted_allocation_settles_the_target_first() {
        let (parts, left) = allocate_to(dec("350.00"), &fixture(), id(3));
        assert_eq!(parts, applied(&[(3, "300.00"), (1, "50.00")]));
        assert_eq!(left, Decimal::ZERO);

        let (parts, left) = allocate_to(dec("120.00"), &fixture(), id(2));
        assert_eq!(parts, applied(&[(2, "120.00")]));
        assert_eq!(left, Decimal::ZERO);

        let (parts, left) = allocate_to(dec("700.00"), &fixture(), id(2));
        assert_eq!(parts, applied(&[(2, "200.00"), (1, "100.00"), (3, "300.00")]));
        assert_eq!(left, dec("100.00"));
    }

    #[test]
    fn targeted_allocation_falls_back_to_oldest_first() {
        let mut items = fixture();
        items.push(item(4, date(2024, 12, 1), "0"));
        let oldest = allocate_oldest_first(dec("250"), &items);
        assert_eq!(allocate_to(dec("250"), &items, id(99)), oldest);
        assert_eq!(allocate_to(dec("250"), &items, id(4)), oldest);
    }
}

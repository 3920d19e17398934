//! When autopay retries a declined charge.
//!
//! A soft decline (insufficient funds, issuer unavailable) often clears within days, so it is
//! retried on a fixed schedule counted from the first try. A hard decline (card stolen, account
//! closed) will never succeed, and retrying it only risks the card network's penalties for
//! excessive retries.

use chrono::{Days, NaiveDate};

/// Soft declines are retried 1, 3 and 7 days after the due date's first try.
pub const RETRY_AFTER_DAYS: [i64; 3] = [1, 3, 7];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    RetryOn(NaiveDate),
    GiveUp,
}

/// What to do after a declined charge.
///
/// `attempts_made` counts the tries so far, including the one that just failed: 1 after the
/// first try. Zero is read as 1 so a caller that has not counted yet still gets the first retry.
/// Retry dates are counted from `first_try_on`, not from the last try, so a late-running job does
/// not push the whole schedule back.
pub fn after_decline(first_try_on: NaiveDate, attempts_made: u32, soft: bool) -> Decision {
    if !soft {
        return Decision::GiveUp;
    }
    let index = usize::try_from(attempts_made.max(1) - 1).unwrap_or(usize::MAX);
    RETRY_AFTER_DAYS
        .get(index)
        .and_then(|&days| u64::try_from(days).ok())
        .and_then(|days| first_try_on.checked_add_days(Days::new(days)))
        .map_or(Decision::GiveUp, Decision::RetryOn)
}

/// A retry is never on the day of the try it follows: when the schedule's date has already
/// passed (the run waited on a hold, or the job was down), it moves to the next day.
pub fn not_the_same_day(decision: Decision, last_tried_on: Option<NaiveDate>) -> Decision {
    match (decision, last_tried_on.and_then(|d| d.succ_opt())) {
        (Decision::RetryOn(day), Some(earliest)) if day < earliest => Decision::RetryOn(earliest),
        (decision, _) => decision,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn soft_decline_schedule() {
        let first = date(2025, 6, 10);
        assert_eq!(after_decline(first, 1, true), Decision::RetryOn(date(2025, 6, 11)));
        assert_eq!(after_decline(first, 2, true), Decision::RetryOn(date(2025, 6, 13)));
        assert_eq!(after_decline(first, 3, true), Decision::RetryOn(date(2025, 6, 17)));
        assert_eq!(after_decline(first, 4, true), Decision::GiveUp);
    }

    #[test]
    fn schedule_follows_the_constant() {
        let first = date(2025, 1, 1);
        for (n, days) in (1_u32..).zip(RETRY_AFTER_DAYS) {
            let expected = first + chrono::TimeDelta::days(days);
            assert_eq!(after_decline(first, n, true), Decision::RetryOn(expected));
        }
    }

    #[test]
    fn a_late_try_is_retried_the_next_day_at_the_earliest() {
        let first = date(2025, 6, 10);
        let late = date(2025, 6, 14);
        let scheduled = after_decline(first, 2, true);
        assert_eq!(scheduled, Decision::RetryOn(date(2025, 6, 13)));
        assert_eq!(not_the_same_day(scheduled, Some(late)), Decision::RetryOn(date(2025, 6, 15)));
        assert_eq!(not_the_same_day(scheduled, Some(date(2025, 6, 11))), scheduled, "on time: unchanged");
        assert_eq!(not_the_same_day(scheduled, None), scheduled);
        assert_eq!(not_the_same_day(Decision::GiveUp, Some(late)), Decision::GiveUp);
    }

    #[test]
    fn zero_attempts_is_the_first() {
        let first = date(2025, 6, 10);
        assert_eq!(after_decline(first, 0, true), after_decline(first, 1, true));
    }

    #[test]
    fn retries_are_always_later_and_increasing() {
        let first = date(2025, 6, 10);
        let mut last = first;
        for n in 1..=3 {
            let Decision::RetryOn(on) = after_decline(first, n, true) else {
                panic!("attempt {n} should retry");
            };
            assert!(on > last, "attempt {n}: {on} after {last}");
            last = on;
        }
    }

    #[test]
    fn hard_decline_gives_up() {
        let first = date(2025, 6, 10);
        for n in [0, 1, 2, 3, 4, 10, u32::MAX] {
            assert_eq!(after_decline(first, n, false), Decision::GiveUp, "attempt {n}");
        }
    }

    #[test]
    fn beyond_the_schedule() {
        let first = date(2025, 6, 10);
        for n in [4, 5, 8, 100, u32::MAX] {
            assert_eq!(after_decline(first, n, true), Decision::GiveUp, "attempt {n}");
        }
    }

    #[test]
    fn month_and_year_boundaries() {
        let first = date(2025, 1, 30);
        assert_eq!(after_decline(first, 1, true), Decision::RetryOn(date(2025, 1, 31)));
        assert_eq!(after_decline(first, 2, true), Decision::RetryOn(date(2025, 2, 2)));
        assert_eq!(after_decline(first, 3, true), Decision::RetryOn(date(2025, 2, 6)));

        let first = date(2025, 12, 29);
        assert_eq!(after_decline(first, 1, true), Decision::RetryOn(date(2025, 12, 30)));
        assert_eq!(after_decline(first, 2, true), Decision::RetryOn(date(2026, 1, 1)));
        assert_eq!(after_decline(first, 3, true), Decision::RetryOn(date(2026, 1, 5)));

        let first = date(2024, 2, 28);
        assert_eq!(after_decline(first, 1, true), Decision::RetryOn(date(2024, 2, 29)));
        assert_eq!(after_decline(first, 2, true), Decision::RetryOn(date(2024, 3, 2)));
        let first = date(2025, 2, 28);
        assert_eq!(after_decline(first, 1, true), Decision::RetryOn(date(2025, 3, 1)));
    }

    #[test]
    fn end_of_calendar_gives_up() {
        assert_eq!(after_decline(NaiveDate::MAX, 1, true), Decision::GiveUp);
        let near = NaiveDate::MAX - chrono::TimeDelta::days(2);
        assert_eq!(after_decline(near, 1, true), Decision::RetryOn(near + chrono::TimeDelta::days(1)));
        assert_eq!(after_decline(near, 2, true), Decision::GiveUp);
    }
}

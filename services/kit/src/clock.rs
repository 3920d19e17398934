//! What "now" and "today" are to the work that acts on business dates: reminders falling due,
//! autopay, recurring invoices, due notices, default issue and receipt dates.
//!
//! It is the system clock. The whole-platform tests (feature `testing`) move it forward to watch
//! next month's installment be charged without waiting a month. Leases, token expiry and the
//! timestamps on records stay on the system clock, so moving this one never breaks a lock.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

static OFFSET_SECONDS: AtomicI64 = AtomicI64::new(0);

/// The current business moment.
pub fn now() -> DateTime<Utc> {
    let real = Utc::now();
    TimeDelta::try_seconds(OFFSET_SECONDS.load(Ordering::Relaxed))
        .and_then(|offset| real.checked_add_signed(offset))
        .unwrap_or(real)
}

/// The current business date, in UTC.
pub fn today() -> NaiveDate {
    now().date_naive()
}

/// Move the business clock of this process forward (never back: a job must not see a day twice).
#[cfg(feature = "testing")]
pub fn advance(by: TimeDelta) {
    OFFSET_SECONDS.fetch_add(by.num_seconds().max(0), Ordering::Relaxed);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_today_by_whole_days() {
        let before = today();
        advance(TimeDelta::days(31));
        let after = today();
        // The real date may roll over between the two reads.
        assert!((31..=32).contains(&(after - before).num_days()), "{before} -> {after}");
        advance(TimeDelta::days(-5));
        assert!(today() >= after, "the clock never goes back");
    }
}

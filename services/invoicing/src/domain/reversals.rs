//! Taking a payment back: what an invoice's status becomes when money it was paid with is
//! returned to its balance.

use rust_decimal::Decimal;

/// The status of an invoice after `taken_back` of its payments is returned to its balance.
/// A written-off invoice stays written off (it is out of the receivables whatever it owes);
/// otherwise the balance decides, as it does when money arrives: partially paid while some
/// payment still stands, open when none does (a credit note alone leaves an invoice open).
pub fn status_after_reversal(current: &str, paid_now: Decimal, balance_now: Decimal) -> &'static str {
    match current {
        "uncollectible" => "uncollectible",
        _ if balance_now.is_zero() => "paid",
        _ if paid_now > Decimal::ZERO => "partially_paid",
        _ => "open",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn the_balance_decides_the_status_except_for_a_write_off() {
        assert_eq!(status_after_reversal("paid", d("0"), d("100.00")), "open");
        assert_eq!(status_after_reversal("paid", d("40.00"), d("60.00")), "partially_paid");
        assert_eq!(status_after_reversal("partially_paid", d("0"), d("100.00")), "open");
        assert_eq!(status_after_reversal("uncollectible", d("0"), d("100.00")), "uncollectible");
        // Nothing returned to a settled invoice leaves it paid.
        assert_eq!(status_after_reversal("paid", d("100.00"), d("0")), "paid");
    }
}

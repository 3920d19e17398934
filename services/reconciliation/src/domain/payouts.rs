//! Processor payouts: the bank credit that pays out a day's card payments, net of fees and
//! refunds, matched by the payout's reference or by the processor's name and the net amount.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::statement::{BankLine, Direction};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    pub id: Uuid,
    pub connector: String,
    pub payout_ref: String,
    pub day: NaiveDate,
    pub currency: String,
    pub gross: Decimal,
    pub fees: Decimal,
    pub refunds: Decimal,
    pub net: Decimal,
}

impl Payout {
    /// What the payout should be from its parts; `None` when the processor's net agrees.
    pub fn arithmetic_gap(&self) -> Option<Decimal> {
        let expected = self.gross - self.fees - self.refunds;
        (expected != self.net).then_some(expected)
    }
}

/// How a bank line relates to a payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayoutFit {
    /// The line pays the payout out, within the tolerance.
    Paid { payout: Uuid, difference: Decimal },
    /// The line names the payout but its amount is off by more than the tolerance.
    Mismatch { payout: Uuid, difference: Decimal },
}

/// How many days after its day a payout may reach the bank when only its amount identifies it.
pub const ARRIVAL_DAYS: i64 = 7;

fn compact(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric()).flat_map(|c| c.to_uppercase()).collect()
}

/// The payout `line` pays out, if any: first a payout whose reference the line quotes, then the
/// one payout of a processor the line names with the net amount within `tolerance`.
pub fn find_payout(line: &BankLine, payouts: &[Payout], tolerance: Decimal) -> Option<PayoutFit> {
    if line.direction != Direction::Credit {
        return None;
    }
    let text =
        compact(&format!("{} {} {} {}", line.reference, line.remittance, line.end_to_end_id, line.counterparty_name));
    let same_currency = |p: &&Payout| p.currency == line.currency;
    let named: Vec<&Payout> = payouts
        .iter()
        .filter(same_currency)
        .filter(|p| {
            let r = compact(&p.payout_ref);
            r.len() >= 6 && text.contains(&r)
        })
        .collect();
    if let [payout] = named.as_slice() {
        let difference = line.amount - payout.net;
        return Some(if difference.abs() <= tolerance {
            PayoutFit::Paid { payout: payout.id, difference }
        } else {
            PayoutFit::Mismatch { payout: payout.id, difference }
        });
    }
    let by_amount: Vec<&Payout> = payouts
        .iter()
        .filter(same_currency)
        .filter(|p| !p.connector.is_empty() && text.contains(&compact(&p.connector)))
        .filter(|p| (line.amount - p.net).abs() <= tolerance)
        .filter(|p| {
            let days = (line.booking_date - p.day).num_days();
            (0..=ARRIVAL_DAYS).contains(&days)
        })
        .collect();
    match by_amount.as_slice() {
        [payout] => Some(PayoutFit::Paid { payout: payout.id, difference: line.amount - payout.net }),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn payout(reference: &str, net: &str) -> Payout {
        let net: Decimal = net.parse().unwrap();
        Payout {
            id: Uuid::now_v7(),
            connector: "stripe".into(),
            payout_ref: reference.into(),
            day: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            currency: "MXN".into(),
            gross: net + Decimal::new(3, 0),
            fees: Decimal::new(3, 0),
            refunds: Decimal::ZERO,
            net,
        }
    }

    fn line(amount: &str, name: &str, remittance: &str, day: u32) -> BankLine {
        BankLine {
            booking_date: NaiveDate::from_ymd_opt(2026, 11, day).unwrap(),
            value_date: None,
            amount: amount.parse().unwrap(),
            currency: "MXN".into(),
            direction: Direction::Credit,
            counterparty_name: name.into(),
            counterparty_account: String::new(),
            end_to_end_id: String::new(),
            reference: String::new(),
            remittance: remittance.into(),
            bank_code: String::new(),
            statement_id: "s".into(),
            entry_id: "e".into(),
        }
    }

    #[test]
    fn a_quoted_payout_reference_wins_and_a_wrong_amount_is_a_mismatch() {
        let a = payout("po_1Abc234", "1000.00");
        let b = payout("po_9Zyx876", "1000.00");
        let payouts = [a.clone(), b];
        let tolerance = Decimal::new(50, 2);
        let fit = find_payout(&line("1000.20", "STRIPE PAYMENTS", "PO_1ABC234", 21), &payouts, tolerance);
        assert_eq!(fit, Some(PayoutFit::Paid { payout: a.id, difference: Decimal::new(20, 2) }));
        let fit = find_payout(&line("990.00", "STRIPE", "po_1Abc234", 21), &payouts, tolerance);
        assert_eq!(fit, Some(PayoutFit::Mismatch { payout: a.id, difference: "-10.00".parse::<Decimal>().unwrap() }));
    }

    #[test]
    fn by_amount_only_when_one_payout_of_the_named_processor_fits() {
        let a = payout("po_1", "1000.00");
        let b = payout("po_2", "2000.00");
        let tolerance = Decimal::new(50, 2);
        let payouts = [a.clone(), b.clone()];
        assert_eq!(
            find_payout(&line("2000.00", "Stripe Payments UK", "", 22), &payouts, tolerance),
            Some(PayoutFit::Paid { payout: b.id, difference: Decimal::ZERO })
        );
        // Not the processor, or too late, or two payouts with that amount: nothing.
        assert_eq!(find_payout(&line("2000.00", "ACME SA", "", 22), &payouts, tolerance), None);
        assert_eq!(find_payout(&line("2000.00", "STRIPE", "", 30), &payouts, tolerance), None);
        let twins = [payout("po_3", "1000.00"), a];
        assert_eq!(find_payout(&line("1000.00", "STRIPE", "", 21), &twins, tolerance), None);
    }

    #[test]
    fn payout_arithmetic_is_checked() {
        let mut p = payout("po_1", "1000.00");
        assert_eq!(p.arithmetic_gap(), None);
        p.net = Decimal::new(999, 0);
        assert_eq!(p.arithmetic_gap(), Some("1000.00".parse::<Decimal>().unwrap()));
    }
}

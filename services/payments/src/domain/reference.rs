//! ISO 11649 creditor references ("RF" references).
//!
//! A payer types the reference into a bank transfer; its check digits let the bank and the
//! reconciliation catch a mistyped reference instead of booking the money to the wrong invoice.
//! The check is ISO 7064 mod 97-10, the same as IBANs: it catches every single-character error
//! and every transposition of neighbouring characters.

use std::fmt;

use uuid::Uuid;

const PREFIX: &str = "RF";
/// Longest payload: 25 characters in all, less "RF" and two check digits.
const MAX_PAYLOAD: usize = 21;
const MIN_LEN: usize = 5;
const MAX_LEN: usize = 25;
const DIGITS36: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A valid creditor reference in normal form: "RF", two check digits and the payload, upper case
/// without spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CreditorReference(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("must start with RF")]
    Prefix,
    #[error("must be 5 to 25 characters (RF, two check digits and up to 21 letters or digits)")]
    Length,
    #[error("may hold only letters and digits")]
    Characters,
    #[error("check digits do not match")]
    CheckDigits,
}

impl CreditorReference {
    /// Read a reference as a payer or a bank statement writes it: spaces and lower case are
    /// accepted ("rf18 5390 0754 7034").
    ///
    /// Check digits 00, 01 and 99 are refused although they can satisfy mod 97: they are never
    /// issued, and accepting them would give one payload two spellings.
    pub fn parse(input: &str) -> Result<CreditorReference, ReferenceError> {
        let normal = normalize(input);
        if !normal.starts_with(PREFIX) {
            return Err(ReferenceError::Prefix);
        }
        if !normal.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ReferenceError::Characters);
        }
        // ASCII from here on, so bytes are characters.
        if !(MIN_LEN..=MAX_LEN).contains(&normal.len()) {
            return Err(ReferenceError::Length);
        }
        let (check, payload) =
            normal.get(2..).and_then(|rest| rest.split_at_checked(2)).ok_or(ReferenceError::Length)?;
        if !check.bytes().all(|b| b.is_ascii_digit()) || !(2..=98).contains(&check.parse::<u8>().unwrap_or(0)) {
            return Err(ReferenceError::CheckDigits);
        }
        let rem = [payload, PREFIX, check].into_iter().flat_map(str::bytes).fold(0, mod97_push);
        if rem != 1 {
            return Err(ReferenceError::CheckDigits);
        }
        Ok(CreditorReference(normal))
    }

    /// The reference for `payload`, with its check digits computed. Spaces and lower case in the
    /// payload are accepted as in [`CreditorReference::parse`].
    pub fn from_payload(payload: &str) -> Result<CreditorReference, ReferenceError> {
        let payload = normalize(payload);
        if !payload.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ReferenceError::Characters);
        }
        if !(1..=MAX_PAYLOAD).contains(&payload.len()) {
            return Err(ReferenceError::Length);
        }
        Ok(with_check_digits(&payload))
    }

    /// The reference a customer quotes on any transfer to their account: "C" and the base-36
    /// low 64 bits of the id, which in a UUIDv7 are the random part (the high bits are the
    /// creation time and would be nearly the same for customers created together).
    pub fn for_customer(customer_id: Uuid) -> CreditorReference {
        with_check_digits(&format!("C{}", base36(customer_id.as_u64_pair().1)))
    }

    /// The reference for paying one invoice: "I" and the base-36 low 64 bits of the id.
    pub fn for_invoice(invoice_id: Uuid) -> CreditorReference {
        with_check_digits(&format!("I{}", base36(invoice_id.as_u64_pair().1)))
    }

    /// The normal form, for storing and matching.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The print form, in groups of four: "RF18 5390 0754 7034".
    pub fn grouped(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + self.0.len() / 4);
        for (i, c) in self.0.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }
}

impl fmt::Display for CreditorReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Drop whitespace and upper-case ASCII letters; anything else is kept for validation to refuse.
fn normalize(input: &str) -> String {
    input.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect()
}

/// "RF", check digits and `payload`, which must already be 1 to 21 upper-case letters or digits.
fn with_check_digits(payload: &str) -> CreditorReference {
    let rem = [payload, PREFIX, "00"].into_iter().flat_map(str::bytes).fold(0, mod97_push);
    CreditorReference(format!("{PREFIX}{:02}{payload}", 98 - rem))
}

/// Extend the running remainder by one character, digits as themselves and letters as A=10 to
/// Z=35. Working a character at a time keeps any length within a `u32`.
fn mod97_push(rem: u32, b: u8) -> u32 {
    let value = match b {
        b'0'..=b'9' => u32::from(b - b'0'),
        b'A'..=b'Z' => u32::from(b - b'A') + 10,
        b'a'..=b'z' => u32::from(b - b'a') + 10,
        // Callers validate first; any other byte just yields a remainder that will not match.
        _ => u32::from(b),
    };
    let shift = if value < 10 { 10 } else { 100 };
    (rem * shift + value) % 97
}

/// Upper-case base 36, without padding.
fn base36(mut n: u64) -> String {
    let mut digits = Vec::with_capacity(13);
    loop {
        let d = usize::try_from(n % 36).unwrap_or(0);
        digits.push(char::from(DIGITS36.get(d).copied().unwrap_or(b'0')));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn ok(input: &str) -> CreditorReference {
        CreditorReference::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }

    fn err(input: &str) -> ReferenceError {
        CreditorReference::parse(input).expect_err(input)
    }

    #[test]
    fn iso_example() {
        let r = ok("RF18 5390 0754 7034");
        assert_eq!(r.as_str(), "RF18539007547034");
        assert_eq!(r.to_string(), "RF18539007547034");
        assert_eq!(r.grouped(), "RF18 5390 0754 7034");
        assert_eq!(ok("RF18539007547034"), r);
        assert_eq!(ok("rf18 5390 0754 7034"), r);
        assert_eq!(ok("  Rf18\t53900754 7034 "), r);
    }

    #[test]
    fn other_known_references() {
        for (input, normal) in [
            ("RF75 4300 5000 0000 0000 0005", "RF7543005000000000000005"),
            ("RF04 0", "RF040"),
            ("RF25A", "RF25A"),
            ("rf47abc123", "RF47ABC123"),
            ("RF81 INVO ICE2 024", "RF81INVOICE2024"),
            ("RF40123456789012345678901", "RF40123456789012345678901"),
            ("RF09ZZZZZZZZZZZZZZZZZZZZZ", "RF09ZZZZZZZZZZZZZZZZZZZZZ"),
        ] {
            assert_eq!(ok(input).as_str(), normal);
        }
    }

    #[test]
    fn from_payload_computes_known_check_digits() {
        assert_eq!(CreditorReference::from_payload("539007547034").unwrap().as_str(), "RF18539007547034");
        assert_eq!(
            CreditorReference::from_payload("4300 5000 0000 0000 0005").unwrap().as_str(),
            "RF7543005000000000000005"
        );
        assert_eq!(CreditorReference::from_payload("abc123").unwrap().as_str(), "RF47ABC123");
        assert_eq!(CreditorReference::from_payload("0").unwrap().as_str(), "RF040");
    }

    #[test]
    fn wrong_check_digits() {
        assert_eq!(err("RF19539007547034"), ReferenceError::CheckDigits);
        assert_eq!(err("RF17539007547034"), ReferenceError::CheckDigits);
        assert_eq!(err("RF81539007547034"), ReferenceError::CheckDigits);
    }

    #[test]
    fn non_numeric_check_digits() {
        assert_eq!(err("RFAB539007547034"), ReferenceError::CheckDigits);
        assert_eq!(err("RF1A539007547034"), ReferenceError::CheckDigits);
    }

    #[test]
    fn unissued_check_digits_are_refused() {
        // 99 is 2 mod 97, so RF99 would pass the arithmetic wherever RF02 does.
        let payload = (0..10_000)
            .map(|n| n.to_string())
            .find(|p| CreditorReference::from_payload(p).unwrap().as_str().starts_with("RF02"))
            .unwrap();
        ok(&format!("RF02{payload}"));
        assert_eq!(err(&format!("RF99{payload}")), ReferenceError::CheckDigits);
        for check in ["00", "01"] {
            assert_eq!(err(&format!("RF{check}539007547034")), ReferenceError::CheckDigits);
        }
    }

    #[test]
    fn every_single_substitution_is_caught() {
        // A digit for a digit or a letter for a letter: the mistakes mod 97 is sure to catch. A
        // letter for a digit changes the width of the number and is caught only most of the time.
        for valid in ["RF18539007547034", "RF47ABC123", "RF09ZZZZZZZZZZZZZZZZZZZZZ"] {
            for i in 2..valid.len() {
                let original = valid.as_bytes()[i];
                for &b in DIGITS36.iter().filter(|b| b.is_ascii_digit() == original.is_ascii_digit()) {
                    if b == original {
                        continue;
                    }
                    let mut changed = valid.as_bytes().to_vec();
                    changed[i] = b;
                    let changed = String::from_utf8(changed).unwrap();
                    assert_eq!(err(&changed), ReferenceError::CheckDigits, "{changed}");
                }
            }
        }
    }

    #[test]
    fn transpositions_are_caught() {
        let valid = "RF18539007547034";
        for i in 2..valid.len() - 1 {
            let mut chars: Vec<char> = valid.chars().collect();
            if chars[i] == chars[i + 1] {
                continue;
            }
            chars.swap(i, i + 1);
            let swapped: String = chars.into_iter().collect();
            assert_eq!(err(&swapped), ReferenceError::CheckDigits, "{swapped}");
        }
    }

    #[test]
    fn bad_prefix() {
        for input in ["", " ", "R", "RX18539007547034", "18539007547034", "FR18539007547034", "ÑF18539007547034"] {
            assert_eq!(err(input), ReferenceError::Prefix, "{input:?}");
        }
    }

    #[test]
    fn lengths() {
        assert_eq!(err("RF"), ReferenceError::Length);
        assert_eq!(err("RF1"), ReferenceError::Length);
        // Empty payload.
        assert_eq!(err("RF18"), ReferenceError::Length);
        // 26 characters: a 22-character payload.
        assert_eq!(err("RF001234567890123456789012"), ReferenceError::Length);
        assert_eq!(err(&format!("RF18{}", "9".repeat(10_000))), ReferenceError::Length);
    }

    #[test]
    fn characters() {
        for input in [
            "RF18-5390-0754-7034",
            "RF18.539007547034",
            "RF18539007547034/",
            "RF18 5390 0754 703ñ",
            "RF18 5390 0754 7034 €",
            "RF185390０７５４7034",
            "RF18\u{0}539007547034",
        ] {
            assert_eq!(err(input), ReferenceError::Characters, "{input:?}");
        }
    }

    #[test]
    fn from_payload_errors() {
        assert_eq!(CreditorReference::from_payload(""), Err(ReferenceError::Length));
        assert_eq!(CreditorReference::from_payload("   "), Err(ReferenceError::Length));
        assert_eq!(CreditorReference::from_payload(&"1".repeat(22)), Err(ReferenceError::Length));
        assert_eq!(CreditorReference::from_payload("12-34"), Err(ReferenceError::Characters));
        assert_eq!(CreditorReference::from_payload("12é4"), Err(ReferenceError::Characters));
        assert!(CreditorReference::from_payload(&"1".repeat(21)).is_ok());
    }

    #[test]
    fn random_payloads_round_trip() {
        let mut rng = StdRng::seed_from_u64(11649);
        for _ in 0..5_000 {
            let len = rng.gen_range(1..=MAX_PAYLOAD);
            let payload: String = (0..len).map(|_| char::from(DIGITS36[rng.gen_range(0..DIGITS36.len())])).collect();
            let r = CreditorReference::from_payload(&payload).unwrap();
            assert!(r.as_str().ends_with(&payload));
            assert!(r.as_str().len() <= MAX_LEN);
            assert_eq!(CreditorReference::parse(r.as_str()).as_ref(), Ok(&r));
            assert_eq!(CreditorReference::parse(&r.grouped()).as_ref(), Ok(&r));
            assert_eq!(CreditorReference::parse(&r.as_str().to_lowercase()).as_ref(), Ok(&r));
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let mut rng = StdRng::seed_from_u64(97);
        let alphabet: Vec<char> = "RFrf0123456789AZaz -_/é€\u{0}\t".chars().collect();
        for _ in 0..5_000 {
            let len = rng.gen_range(0..40);
            let input: String = (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())]).collect();
            let _ = CreditorReference::parse(&input);
            let _ = CreditorReference::from_payload(&input);
        }
    }

    #[test]
    fn grouped_forms() {
        assert_eq!(ok("RF040").grouped(), "RF04 0");
        assert_eq!(ok("RF7543005000000000000005").grouped(), "RF75 4300 5000 0000 0000 0005");
        assert_eq!(ok("RF40123456789012345678901").grouped(), "RF40 1234 5678 9012 3456 7890 1");
    }

    #[test]
    fn base36_digits() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "Z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(u64::MAX), "3W5E11264SGSF");
    }

    #[test]
    fn customer_and_invoice_references() {
        let id: Uuid = "0190a5c4-7b2e-7c3d-8f1e-123456789abc".parse().unwrap();
        assert_eq!(CreditorReference::for_customer(id).as_str(), "RF91C26CMZ4IK2IU2K");
        assert_eq!(CreditorReference::for_invoice(id).as_str(), "RF74I26CMZ4IK2IU2K");
        assert_eq!(CreditorReference::for_customer(Uuid::nil()).as_str(), "RF62C0");
        assert_eq!(CreditorReference::for_invoice(Uuid::nil()).as_str(), "RF91I0");
        assert_eq!(CreditorReference::for_customer(Uuid::max()).as_str(), "RF95C3W5E11264SGSF");
    }

    #[test]
    fn generated_references_are_stable_distinct_and_valid() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1_000 {
            let id = Uuid::now_v7();
            let customer = CreditorReference::for_customer(id);
            let invoice = CreditorReference::for_invoice(id);
            assert_eq!(customer, CreditorReference::for_customer(id));
            assert_eq!(invoice, CreditorReference::for_invoice(id));
            assert_ne!(customer, invoice);
            for r in [customer, invoice] {
                assert!(r.as_str().len() <= MAX_LEN, "{r}");
                assert_eq!(CreditorReference::parse(r.as_str()).as_ref(), Ok(&r));
                assert!(seen.insert(r));
            }
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(ReferenceError::Prefix.to_string(), "must start with RF");
        assert_eq!(ReferenceError::CheckDigits.to_string(), "check digits do not match");
    }
}

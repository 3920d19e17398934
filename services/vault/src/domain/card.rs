//! Card numbers (PANs), expiry dates and holder names: the shape checks that run before anything
//! is encrypted and tokenized.
//!
//! PCI DSS treats the full card number as the thing to protect, so [`Pan`] keeps its digits in
//! memory that is wiped on drop, never prints them, and no error here ever carries any part of
//! the number.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use cobro_kit::error::InvalidField;
use zeroize::Zeroizing;

/// The card schemes Cobro accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Diners,
    Jcb,
    UnionPay,
    Maestro,
}

impl Brand {
    pub const ALL: [Brand; 8] = [
        Brand::Visa,
        Brand::Mastercard,
        Brand::Amex,
        Brand::Discover,
        Brand::Diners,
        Brand::Jcb,
        Brand::UnionPay,
        Brand::Maestro,
    ];

    /// The stable lower-case name stored in the database and sent over the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::Amex => "amex",
            Brand::Discover => "discover",
            Brand::Diners => "diners",
            Brand::Jcb => "jcb",
            Brand::UnionPay => "unionpay",
            Brand::Maestro => "maestro",
        }
    }
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A brand name that is not one of [`Brand::as_str`]'s values. It does not echo the input, in
/// case a card number ended up where a brand was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown card brand")]
pub struct UnknownBrand;

impl FromStr for Brand {
    type Err = UnknownBrand;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Brand::ALL.into_iter().find(|brand| brand.as_str() == s).ok_or(UnknownBrand)
    }
}

/// One IIN/BIN range: numbers whose first `low.len()` digits lie in `low..=high` belong to
/// `brand`, and must have one of `lengths` digits.
struct BinRange {
    low: &'static str,
    high: &'static str,
    brand: Brand,
    lengths: &'static [usize],
}

const fn range(low: &'static str, high: &'static str, brand: Brand, lengths: &'static [usize]) -> BinRange {
    BinRange { low, high, brand, lengths }
}

const VISA_LENGTHS: &[usize] = &[13, 16, 19];
const LEN_15: &[usize] = &[15];
const LEN_16: &[usize] = &[16];
const LEN_16_TO_19: &[usize] = &[16, 17, 18, 19];
const LEN_14_TO_19: &[usize] = &[14, 15, 16, 17, 18, 19];
const LEN_12_TO_19: &[usize] = &[12, 13, 14, 15, 16, 17, 18, 19];

/// The IIN/BIN table, longest prefixes first: [`brand_of`] takes the first row that matches, so
/// a specific range (Discover's 622126–622925) wins over the broad one it sits in (UnionPay's
/// 62). Within a row `low` and `high` have the same number of digits, so comparing them as
/// strings compares them as numbers.
///
/// | Prefix            | Brand      | Lengths    |
/// |-------------------|------------|------------|
/// | 622126–622925     | Discover   | 16–19      |
/// | 6011              | Discover   | 16–19      |
/// | 2221–2720         | Mastercard | 16         |
/// | 3528–3589         | JCB        | 16–19      |
/// | 3095              | Diners     | 14–19      |
/// | 644–649           | Discover   | 16–19      |
/// | 300–305           | Diners     | 14–19      |
/// | 639               | Maestro    | 12–19      |
/// | 65                | Discover   | 16–19      |
/// | 51–55             | Mastercard | 16         |
/// | 34, 37            | Amex       | 15         |
/// | 36, 38–39         | Diners     | 14–19      |
/// | 62, 81            | UnionPay   | 16–19      |
/// | 50, 56–58, 67     | Maestro    | 12–19      |
/// | 4                 | Visa       | 13, 16, 19 |
const BIN_RANGES: &[BinRange] = &[
    // Six digits.
    range("622126", "622925", Brand::Discover, LEN_16_TO_19),
    // Four digits.
    range("6011", "6011", Brand::Discover, LEN_16_TO_19),
    range("2221", "2720", Brand::Mastercard, LEN_16),
    range("3528", "3589", Brand::Jcb, LEN_16_TO_19),
    range("3095", "3095", Brand::Diners, LEN_14_TO_19),
    // Three digits.
    range("644", "649", Brand::Discover, LEN_16_TO_19),
    range("300", "305", Brand::Diners, LEN_14_TO_19),
    range("639", "639", Brand::Maestro, LEN_12_TO_19),
    // Two digits.
    range("65", "65", Brand::Discover, LEN_16_TO_19),
    range("51", "55", Brand::Mastercard, LEN_16),
    range("34", "34", Brand::Amex, LEN_15),
    range("37", "37", Brand::Amex, LEN_15),
    range("36", "36", Brand::Diners, LEN_14_TO_19),
    range("38", "39", Brand::Diners, LEN_14_TO_19),
    range("62", "62", Brand::UnionPay, LEN_16_TO_19),
    range("81", "81", Brand::UnionPay, LEN_16_TO_19),
    range("50", "50", Brand::Maestro, LEN_12_TO_19),
    range("56", "58", Brand::Maestro, LEN_12_TO_19),
    range("67", "67", Brand::Maestro, LEN_12_TO_19),
    // One digit.
    range("4", "4", Brand::Visa, VISA_LENGTHS),
];

/// The brand a card number belongs to, or `None` when no range matches, the input is not all
/// ASCII digits, or its length is not one the matching brand issues. The most specific range
/// decides alone: a wrong length there does not fall back to a broader range.
pub fn brand_of(digits: &str) -> Option<Brand> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let row = BIN_RANGES
        .iter()
        .find(|row| digits.get(..row.low.len()).is_some_and(|prefix| row.low <= prefix && prefix <= row.high))?;
    row.lengths.contains(&digits.len()).then_some(row.brand)
}

/// The Luhn (mod 10) check every card number's last digit satisfies; catches single-digit typos
/// and most swaps. False for empty input or anything but ASCII digits.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut sum: u32 = 0;
    for (position, byte) in digits.bytes().rev().enumerate() {
        let digit = u32::from(byte - b'0');
        let value = if position % 2 == 1 {
            let doubled = digit * 2;
            if doubled > 9 { doubled - 9 } else { doubled }
        } else {
            digit
        };
        sum = (sum + value) % 10;
    }
    sum == 0
}

/// Anything longer cannot be a card number even with separators; refusing it early bounds the
/// work and the buffer the digits are copied into.
const MAX_INPUT_BYTES: usize = 64;
const MIN_DIGITS: usize = 12;
const MAX_DIGITS: usize = 19;

const ONLY_DIGITS: &str = "must contain only digits, spaces and dashes";
const DIGIT_COUNT: &str = "must be 12 to 19 digits";
const CHECK_DIGIT: &str = "is not a valid card number (check digit)";
const UNKNOWN_BRAND: &str = concat!(
    "is not a card brand Cobro accepts (Visa, Mastercard, American Express, Discover, Diners Club, JCB, ",
    "UnionPay, Maestro)"
);

/// A validated card number. The digits live in memory that is zeroed on drop, and `Debug` and
/// `Display` show only the brand and last four digits, so a stray log line cannot leak it.
#[derive(Clone)]
pub struct Pan {
    digits: Zeroizing<String>,
    brand: Brand,
}

impl Pan {
    /// Parses what a person typed: ASCII spaces and dashes are dropped, then the digits must be
    /// 12 to 19 long, pass Luhn and belong to an accepted brand. Errors name `field` and never
    /// include the number.
    pub fn parse(field: &str, input: &str) -> Result<Pan, InvalidField> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(InvalidField::new(field, DIGIT_COUNT));
        }
        // Sized up front so pushing never reallocates and leaves an unwiped copy behind.
        let mut digits = Zeroizing::new(String::with_capacity(MAX_INPUT_BYTES));
        for c in input.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' => {}
                _ => return Err(InvalidField::new(field, ONLY_DIGITS)),
            }
        }
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) {
            return Err(InvalidField::new(field, DIGIT_COUNT));
        }
        if !luhn_valid(&digits) {
            return Err(InvalidField::new(field, CHECK_DIGIT));
        }
        let brand = brand_of(&digits).ok_or_else(|| InvalidField::new(field, UNKNOWN_BRAND))?;
        Ok(Pan { digits, brand })
    }

    /// Rebuilds a number the vault decrypted. It was validated when stored, so failure means
    /// corruption or a wrong key; the caller reports that without details about the value.
    pub fn from_stored(digits: Zeroizing<String>) -> Option<Pan> {
        let shape_ok = (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) && luhn_valid(&digits);
        if !shape_ok {
            return None;
        }
        let brand = brand_of(&digits)?;
        Some(Pan { digits, brand })
    }

    pub fn brand(&self) -> Brand {
        self.brand
    }

    /// The last four digits: the part PCI DSS allows to be shown and stored in the clear.
    pub fn last4(&self) -> &str {
        self.digits.get(self.digits.len().saturating_sub(4)..).unwrap_or_default()
    }

    /// The full number. Only for encrypting it and for the detokenize response; never log,
    /// store or compare it anywhere else.
    pub fn expose(&self) -> &str {
        &self.digits
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({} ****{})", self.brand, self.last4())
    }
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// How far ahead an expiry may be; issuers use at most a few years, so anything beyond this is
/// a typo.
const MAX_MONTHS_AHEAD: i64 = 20 * 12;

/// A card's expiry month. `year` is always four digits (two-digit input means 20xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub month: u32,
    pub year: u32,
}

impl Expiry {
    /// Validates an expiry against `today`. A card works through the last day of its expiry
    /// month, so this month is still valid.
    pub fn parse(month: u32, year: u32, today: NaiveDate) -> Result<Expiry, InvalidField> {
        if !(1..=12).contains(&month) {
            return Err(InvalidField::new("exp_month", "must be 1 to 12"));
        }
        let year = match year {
            0..=99 => 2000 + year,
            2000..=2099 => year,
            _ => return Err(InvalidField::new("exp_year", "must be a year from 2000 to 2099, or its last two digits")),
        };
        let expiry = Expiry { month, year };
        let ahead = expiry.month_index() - month_index_of(today);
        if ahead < 0 {
            return Err(InvalidField::new("exp_year", "the card has expired"));
        }
        if ahead > MAX_MONTHS_AHEAD {
            return Err(InvalidField::new("exp_year", "is too far in the future"));
        }
        Ok(expiry)
    }

    /// True once `today` is past the expiry month.
    pub fn is_expired(&self, today: NaiveDate) -> bool {
        self.month_index() < month_index_of(today)
    }

    /// Months since year 0, so month comparisons are plain integer comparisons.
    fn month_index(&self) -> i64 {
        i64::from(self.year) * 12 + i64::from(self.month) - 1
    }
}

fn month_index_of(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

const MAX_HOLDER_NAME_CHARS: usize = 100;
/// The shortest card number; a run this long in a name is a number typed in the wrong field.
const CARD_NUMBER_RUN: usize = 12;

/// The optional cardholder name: trimmed, empty means none, at most 100 characters, no control
/// characters, and no card number (12 or more digits, counting through spaces and dashes) so
/// a misplaced number is not stored unencrypted. Errors never echo the input.
pub fn holder_name(field: &str, input: &str) -> Result<Option<String>, InvalidField> {
    let name = input.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > MAX_HOLDER_NAME_CHARS {
        return Err(InvalidField::new(field, format!("must be at most {MAX_HOLDER_NAME_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(InvalidField::new(field, "must not contain control characters"));
    }
    if longest_digit_run(name) >= CARD_NUMBER_RUN {
        return Err(InvalidField::new(field, "must not contain a card number"));
    }
    Ok(Some(name.to_owned()))
}

/// The most digits in a row, where spaces and dashes between digits do not break the run
/// ("4111 1111-1111 1111" counts as 16).
fn longest_digit_run(text: &str) -> usize {
    let mut longest = 0;
    let mut current = 0;
    for c in text.chars() {
        if c.is_numeric() {
            current += 1;
            longest = longest.max(current);
        } else if c != ' ' && c != '-' {
            current = 0;
        }
    }
    longest
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Public test numbers the schemes and processors publish for integration testing.
    const KNOWN_PANS: &[(&str, Brand)] = &[
        ("4111111111111111", Brand::Visa),
        ("4012888888881881", Brand::Visa),
        ("4222222222222", Brand::Visa),
        ("5555555555554444", Brand::Mastercard),
        ("5105105105105100", Brand::Mastercard),
        ("2223003122003222", Brand::Mastercard),
        ("378282246310005", Brand::Amex),
        ("371449635398431", Brand::Amex),
        ("6011111111111117", Brand::Discover),
        ("6011000990139424", Brand::Discover),
        ("30569309025904", Brand::Diners),
        ("38520000023237", Brand::Diners),
        ("36227206271667", Brand::Diners),
        ("3530111333300000", Brand::Jcb),
        ("3566002020360505", Brand::Jcb),
        ("6200000000000005", Brand::UnionPay),
        ("6759649826438453", Brand::Maestro),
    ];

    /// Appends the digit that makes `body` pass Luhn.
    fn with_check_digit(body: &str) -> String {
        (0..=9)
            .map(|d| format!("{body}{d}"))
            .find(|candidate| luhn_valid(candidate))
            .expect("exactly one check digit fits")
    }

    /// The same number with its last digit changed, so Luhn fails.
    fn with_wrong_check_digit(pan: &str) -> String {
        let (body, last) = pan.split_at(pan.len() - 1);
        let wrong = if last == "0" { '1' } else { '0' };
        format!("{body}{wrong}")
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 6, 15).unwrap()
    }

    fn reason(result: Result<Pan, InvalidField>) -> String {
        let err = result.expect_err("should be rejected");
        assert_eq!(err.field, "card_number");
        err.reason
    }

    fn longest_ascii_digit_run(text: &str) -> usize {
        text.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0)
    }

    #[test]
    fn known_test_pans_pass_luhn_and_get_their_brand() {
        for &(pan, brand) in KNOWN_PANS {
            assert!(luhn_valid(pan), "{pan} should pass Luhn");
            assert_eq!(brand_of(pan), Some(brand), "{pan}");
            let parsed = Pan::parse("card_number", pan).unwrap();
            assert_eq!(parsed.brand(), brand);
            assert_eq!(parsed.expose(), pan);
            assert_eq!(parsed.last4(), &pan[pan.len() - 4..]);
        }
    }

    #[test]
    fn generated_pans_at_the_length_limits() {
        let cases = [
            (with_check_digit("400000000000000000"), Brand::Visa, 19),
            (with_check_digit("621234567890123456"), Brand::UnionPay, 19),
            (with_check_digit("601100000000000000"), Brand::Discover, 19),
            (with_check_digit("353000000000000000"), Brand::Jcb, 19),
            (with_check_digit("8100000000000000"), Brand::UnionPay, 17),
            (with_check_digit("67000000000"), Brand::Maestro, 12),
            (with_check_digit("639000000000000000"), Brand::Maestro, 19),
            (with_check_digit("5000000000000"), Brand::Maestro, 14),
            (with_check_digit("3095000000000"), Brand::Diners, 14),
            (with_check_digit("64400000000000000"), Brand::Discover, 18),
            (with_check_digit("622126000000000"), Brand::Discover, 16),
            (with_check_digit("622925000000000"), Brand::Discover, 16),
            (with_check_digit("272099000000000"), Brand::Mastercard, 16),
        ];
        for (pan, brand, len) in cases {
            assert_eq!(pan.len(), len, "{pan}");
            assert_eq!(Pan::parse("card_number", &pan).unwrap().brand(), brand, "{pan}");
        }
    }

    #[test]
    fn specific_ranges_win_over_broad_ones() {
        // Just outside Discover's slice of 62 is UnionPay again.
        assert_eq!(brand_of(&with_check_digit("622125000000000")), Some(Brand::UnionPay));
        assert_eq!(brand_of(&with_check_digit("622926000000000")), Some(Brand::UnionPay));
        // Just outside Mastercard's 2-series and JCB's range: nobody's.
        assert_eq!(brand_of(&with_check_digit("222099000000000")), None);
        assert_eq!(brand_of(&with_check_digit("272100000000000")), None);
        assert_eq!(brand_of(&with_check_digit("352799000000000")), None);
        assert_eq!(brand_of(&with_check_digit("359000000000000")), None);
    }

    #[test]
    fn table_rows_are_well_formed_and_longest_first() {
        for row in BIN_RANGES {
            assert_eq!(row.low.len(), row.high.len(), "{}", row.low);
            assert!(row.low.bytes().chain(row.high.bytes()).all(|b| b.is_ascii_digit()));
            assert!(row.low <= row.high, "{}", row.low);
            assert!(!row.lengths.is_empty());
        }
        assert!(BIN_RANGES.windows(2).all(|pair| pair[0].low.len() >= pair[1].low.len()));
    }

    #[test]
    fn wrong_length_for_the_brand_is_rejected() {
        let visa_14 = with_check_digit("4111111111111");
        assert_eq!(visa_14.len(), 14);
        assert_eq!(brand_of(&visa_14), None);
        assert_eq!(reason(Pan::parse("card_number", &visa_14)), UNKNOWN_BRAND);

        let amex_16 = with_check_digit("371449635398431");
        assert_eq!(brand_of(&amex_16), None);
        assert_eq!(reason(Pan::parse("card_number", &amex_16)), UNKNOWN_BRAND);

        let mastercard_17 = with_check_digit("5555555555555555");
        assert_eq!(reason(Pan::parse("card_number", &mastercard_17)), UNKNOWN_BRAND);

        let diners_13 = with_check_digit("360000000000");
        assert_eq!(reason(Pan::parse("card_number", &diners_13)), UNKNOWN_BRAND);
    }

    #[test]
    fn unknown_prefixes_are_rejected() {
        for body in ["100000000000000", "700000000000000", "900000000000000", "600000000000000"] {
            let pan = with_check_digit(body);
            assert_eq!(brand_of(&pan), None, "{pan}");
            assert_eq!(reason(Pan::parse("card_number", &pan)), UNKNOWN_BRAND);
        }
    }

    #[test]
    fn bad_check_digits_are_rejected() {
        for &(pan, _) in KNOWN_PANS {
            let wrong = with_wrong_check_digit(pan);
            assert!(!luhn_valid(&wrong), "{wrong}");
            assert_eq!(reason(Pan::parse("card_number", &wrong)), CHECK_DIGIT);
        }
    }

    #[test]
    fn luhn_rejects_non_digits_and_empty() {
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("4111 1111 1111 1111"));
        assert!(!luhn_valid("411111111111111a"));
        assert!(luhn_valid("0"));
        assert!(luhn_valid("79927398713"));
    }

    #[test]
    fn separators_are_accepted() {
        let pan = Pan::parse("card_number", "4111 1111-1111 1111").unwrap();
        assert_eq!(pan.expose(), "4111111111111111");
        assert_eq!(pan.brand(), Brand::Visa);
        assert_eq!(pan.last4(), "1111");
    }

    #[test]
    fn malformed_input_is_rejected() {
        assert_eq!(reason(Pan::parse("card_number", "")), DIGIT_COUNT);
        assert_eq!(reason(Pan::parse("card_number", "   ")), DIGIT_COUNT);
        assert_eq!(reason(Pan::parse("card_number", "41111111111")), DIGIT_COUNT);
        assert_eq!(reason(Pan::parse("card_number", &with_check_digit("4111111111111111111"))), DIGIT_COUNT);
        assert_eq!(reason(Pan::parse("card_number", "4111abcd11111111")), ONLY_DIGITS);
        assert_eq!(reason(Pan::parse("card_number", "4111\t1111 1111 1111")), ONLY_DIGITS);
        assert_eq!(reason(Pan::parse("card_number", "4111.1111.1111.1111")), ONLY_DIGITS);
        // Fullwidth and Arabic-Indic digits are digits to Unicode, not to a card network.
        assert_eq!(reason(Pan::parse("card_number", "４１１１１１１１１１１１１１１１")), ONLY_DIGITS);
        assert_eq!(reason(Pan::parse("card_number", "٤١١١١١١١١١١١١١١١")), ONLY_DIGITS);
        assert_eq!(reason(Pan::parse("card_number", &"4".repeat(1000))), DIGIT_COUNT);
        assert_eq!(reason(Pan::parse("card_number", &" ".repeat(65))), DIGIT_COUNT);
    }

    #[test]
    fn errors_name_the_field_and_never_the_number() {
        let inputs = [
            with_wrong_check_digit("4111111111111111"),
            with_check_digit("4111111111111"),
            "4111x11111111111".to_owned(),
            "41111111111".to_owned(),
        ];
        for input in inputs {
            let err = Pan::parse("payment.card_number", &input).unwrap_err();
            assert_eq!(err.field, "payment.card_number");
            let shown = format!("{err} {err:?}");
            assert!(longest_ascii_digit_run(&shown) <= 2, "{shown}");
            assert!(!shown.contains("1111"), "{shown}");
        }
    }

    #[test]
    fn debug_and_display_mask_the_number() {
        for &(pan, brand) in KNOWN_PANS {
            let parsed = Pan::parse("card_number", pan).unwrap();
            let expected = format!("Pan({} ****{})", brand.as_str(), &pan[pan.len() - 4..]);
            assert_eq!(format!("{parsed:?}"), expected);
            assert_eq!(format!("{parsed}"), expected);
            assert_eq!(format!("{parsed:#?}"), expected);
            for shown in [format!("{parsed:?}"), format!("{parsed}"), format!("{:?}", Some(parsed.clone()))] {
                assert!(longest_ascii_digit_run(&shown) <= 4, "{shown}");
            }
        }
        let visa = Pan::parse("card_number", "4111111111111111").unwrap();
        assert_eq!(visa.to_string(), "Pan(visa ****1111)");
    }

    #[test]
    fn clone_keeps_the_number() {
        let pan = Pan::parse("card_number", "5555555555554444").unwrap();
        let copy = pan.clone();
        drop(pan);
        assert_eq!(copy.expose(), "5555555555554444");
        assert_eq!(copy.brand(), Brand::Mastercard);
    }

    #[test]
    fn from_stored_revalidates() {
        let pan = Pan::from_stored(Zeroizing::new("378282246310005".to_owned())).unwrap();
        assert_eq!(pan.brand(), Brand::Amex);
        assert_eq!(pan.last4(), "0005");
        assert!(Pan::from_stored(Zeroizing::new(String::new())).is_none());
        assert!(Pan::from_stored(Zeroizing::new("4111 1111 1111 1111".to_owned())).is_none());
        assert!(Pan::from_stored(Zeroizing::new("4111111111111112".to_owned())).is_none());
        assert!(Pan::from_stored(Zeroizing::new(with_check_digit("4111111111111"))).is_none());
        assert!(Pan::from_stored(Zeroizing::new(with_check_digit("70000000000000"))).is_none());
    }

    #[test]
    fn brand_names_round_trip() {
        for brand in Brand::ALL {
            assert_eq!(brand.as_str().parse::<Brand>(), Ok(brand));
            assert_eq!(brand.to_string(), brand.as_str());
        }
        assert_eq!("Visa".parse::<Brand>(), Err(UnknownBrand));
        assert_eq!("".parse::<Brand>(), Err(UnknownBrand));
        assert_eq!("american express".parse::<Brand>(), Err(UnknownBrand));
    }

    #[test]
    fn expiry_this_month_is_valid_through_its_last_day() {
        let expiry = Expiry::parse(6, 2025, today()).unwrap();
        assert_eq!(expiry, Expiry { month: 6, year: 2025 });
        let last_day = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
        assert!(!expiry.is_expired(last_day));
        assert!(expiry.is_expired(NaiveDate::from_ymd_opt(2025, 7, 1).unwrap()));
        assert!(Expiry::parse(6, 2025, last_day).is_ok());
    }

    #[test]
    fn expiry_in_the_past_is_rejected() {
        for (month, year) in [(5, 2025), (12, 2024), (1, 2000), (5, 25), (12, 24)] {
            let err = Expiry::parse(month, year, today()).unwrap_err();
            assert_eq!(err, InvalidField::new("exp_year", "the card has expired"), "{month}/{year}");
        }
        assert!(Expiry { month: 5, year: 2025 }.is_expired(today()));
        assert!(!Expiry { month: 1, year: 2026 }.is_expired(today()));
    }

    #[test]
    fn expiry_month_out_of_range_is_rejected() {
        for month in [0, 13, 99, u32::MAX] {
            let err = Expiry::parse(month, 2027, today()).unwrap_err();
            assert_eq!(err.field, "exp_month");
        }
    }

    #[test]
    fn expiry_two_digit_year_means_20xx() {
        assert_eq!(Expiry::parse(1, 27, today()).unwrap(), Expiry { month: 1, year: 2027 });
        assert_eq!(Expiry::parse(6, 25, today()).unwrap(), Expiry { month: 6, year: 2025 });
        assert_eq!(Expiry::parse(12, 2099, NaiveDate::from_ymd_opt(2099, 1, 1).unwrap()).unwrap().year, 2099);
    }

    #[test]
    fn expiry_year_out_of_range_is_rejected() {
        for year in [100, 999, 1999, 2100, u32::MAX] {
            let err = Expiry::parse(1, year, today()).unwrap_err();
            assert_eq!(err.field, "exp_year", "{year}");
            assert_ne!(err.reason, "the card has expired");
        }
    }

    #[test]
    fn expiry_far_future_is_rejected() {
        assert!(Expiry::parse(6, 2045, today()).is_ok());
        assert_eq!(
            Expiry::parse(7, 2045, today()).unwrap_err(),
            InvalidField::new("exp_year", "is too far in the future")
        );
        assert_eq!(Expiry::parse(1, 2099, today()).unwrap_err().reason, "is too far in the future");
        assert_eq!(Expiry::parse(1, 99, today()).unwrap_err().reason, "is too far in the future");
    }

    #[test]
    fn holder_name_is_trimmed_and_optional() {
        assert_eq!(holder_name("holder_name", "  Ada Lovelace  ").unwrap(), Some("Ada Lovelace".to_owned()));
        assert_eq!(holder_name("holder_name", "").unwrap(), None);
        assert_eq!(holder_name("holder_name", " \t ").unwrap(), None);
        assert_eq!(holder_name("holder_name", "José Ñúñez-O'Brien").unwrap(), Some("José Ñúñez-O'Brien".to_owned()));
        assert_eq!(holder_name("holder_name", "Unit 12345678901").unwrap(), Some("Unit 12345678901".to_owned()));
    }

    #[test]
    fn holder_name_length_is_counted_in_characters() {
        assert!(holder_name("holder_name", &"é".repeat(100)).unwrap().is_some());
        let err = holder_name("holder_name", &"a".repeat(101)).unwrap_err();
        assert_eq!(err.field, "holder_name");
        assert_eq!(err.reason, "must be at most 100 characters");
    }

    #[test]
    fn holder_name_rejects_control_characters() {
        for name in ["Ada\nLovelace", "Ada\u{0}", "Ada\u{7f}Lovelace", "Ada\u{85}Lovelace", "\u{1b}[31mAda"] {
            let err = holder_name("holder_name", name).unwrap_err();
            assert_eq!(err.reason, "must not contain control characters");
        }
    }

    #[test]
    fn holder_name_rejects_a_card_number() {
        for name in ["4111111111111111", "Ada 411111111111", "4111 1111-1111 1111", "John 4111-1111-1111-1111 Doe"] {
            let err = holder_name("holder_name", name).unwrap_err();
            assert_eq!(err.field, "holder_name");
            assert_eq!(err.reason, "must not contain a card number");
            assert!(longest_ascii_digit_run(&format!("{err:?}")) <= 3);
        }
    }
}

//! Money: ISO 4217 currencies, strict decimal parsing and rounding to minor units.
//!
//! Amounts are [`Decimal`], never floats, and always travel with their [`Currency`]. Totals are
//! rounded half away from zero to the currency's minor units (what invoices and tax authorities
//! expect; banker's rounding would surprise a customer checking a bill by hand). Unit prices may
//! carry up to [`UNIT_PRICE_SCALE`] decimals. On the wire an amount is `cobro.common.v1.Money`:
//! a currency code and a plain decimal string such as "1234.50", with no exponent, no grouping
//! and no sign other than a leading "-".

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use cobro_proto::common::v1 as proto;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tonic::Code;

use crate::error::{DomainError, InvalidField};

/// Decimals a unit price may carry; totals carry the currency's minor units instead.
pub const UNIT_PRICE_SCALE: u32 = 4;

/// Longest amount string accepted, so parsing cost and error text stay bounded.
pub const MAX_AMOUNT_LEN: usize = 40;

/// Digits allowed before the decimal point: a quintillion is far beyond any real receivable,
/// and the bound keeps every product of an amount and a quantity inside `Decimal`.
pub const MAX_INTEGER_DIGITS: usize = 18;

/// Most parts [`Money::allocate`] splits into; guards against requests that would allocate
/// huge vectors.
pub const MAX_SPLIT_PARTS: u32 = 10_000;

/// Digits a `Decimal` always holds exactly (96-bit mantissa, scale at most 28).
const DECIMAL_DIGITS: usize = 28;

/// How much of an unknown currency code an error repeats, so errors cannot echo huge input.
const SHOWN_CODE_CHARS: usize = 8;

/// Why an amount or a currency was refused, or why two amounts could not be combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("the amount is empty")]
    Empty,
    #[error(
        "the amount is not a plain decimal number such as 1234.50 (digits, an optional leading \
         minus and an optional point followed by digits; no spaces, plus sign, thousands \
         separators or leading zeros)"
    )]
    Malformed,
    #[error(
        "the amount is written in exponent notation; write it as a plain decimal number such \
         as 1234.50"
    )]
    Exponent,
    #[error("the amount is not a number")]
    NotANumber,
    #[error(
        "the amount is too long: at most {} digits before the decimal point and {} characters \
         in all",
        MAX_INTEGER_DIGITS,
        MAX_AMOUNT_LEN
    )]
    TooLong,
    #[error("{}", too_many_decimals_message(*.max))]
    TooManyDecimals { max: u32 },
    #[error(
        "{0:?} is not a supported ISO 4217 currency code (three upper-case letters, such as MXN \
         or USD)"
    )]
    UnknownCurrency(String),
    #[error("amounts in {left} and {right} cannot be combined; convert them to one currency first")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("the amount is too large")]
    Overflow,
    #[error("an amount can only be split into 1 to {} parts", MAX_SPLIT_PARTS)]
    InvalidSplit,
}

fn too_many_decimals_message(max: u32) -> String {
    match max {
        0 => "the amount must be a whole number: this currency has no decimal places".to_owned(),
        1 => "the amount has too many decimal places: at most 1 is allowed".to_owned(),
        n => format!("the amount has too many decimal places: at most {n} are allowed"),
    }
}

impl MoneyError {
    /// An [`MoneyError::UnknownCurrency`] that repeats at most a few characters of `code`.
    fn unknown_currency(code: &str) -> Self {
        let mut shown: String = code.chars().take(SHOWN_CODE_CHARS).collect();
        if code.chars().nth(SHOWN_CODE_CHARS).is_some() {
            shown.push('…');
        }
        MoneyError::UnknownCurrency(shown)
    }
}

impl DomainError for MoneyError {
    fn code(&self) -> &'static str {
        match self {
            MoneyError::Empty
            | MoneyError::Malformed
            | MoneyError::Exponent
            | MoneyError::NotANumber
            | MoneyError::TooLong
            | MoneyError::TooManyDecimals { .. } => "invalid_amount",
            MoneyError::UnknownCurrency(_) => "unknown_currency",
            MoneyError::CurrencyMismatch { .. } => "currency_mismatch",
            MoneyError::Overflow => "amount_out_of_range",
            MoneyError::InvalidSplit => "invalid_split",
        }
    }

    /// Every money error is the caller's input (or a combination of inputs) being unusable.
    fn grpc_code(&self) -> Code {
        Code::InvalidArgument
    }
}

/// An ISO 4217 currency. Only codes from [`Currency::all`] exist, so holding a `Currency`
/// proves the code is known and its minor units are at hand.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    minor_units: u32,
}

impl Currency {
    pub const MXN: Currency = Currency::known("MXN", 2);
    pub const USD: Currency = Currency::known("USD", 2);
    pub const EUR: Currency = Currency::known("EUR", 2);

    const fn known(code: &'static str, minor_units: u32) -> Currency {
        Currency { code, minor_units }
    }

    /// The currency for an exact ISO 4217 code: three upper-case ASCII letters. Lower case is
    /// refused rather than fixed up, so every stored code is canonical.
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(MoneyError::unknown_currency(code));
        }
        CURRENCIES
            .binary_search_by(|c| c.code.cmp(code))
            .ok()
            .and_then(|i| CURRENCIES.get(i))
            .copied()
            .ok_or_else(|| MoneyError::unknown_currency(code))
    }

    /// The ISO 4217 alphabetic code, e.g. "MXN".
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Decimals a total in this currency carries: 2 for MXN, 0 for JPY, 3 for BHD.
    pub fn minor_units(&self) -> u32 {
        self.minor_units
    }

    /// Every supported currency, sorted by code.
    pub fn all() -> &'static [Currency] {
        CURRENCIES
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::from_code(&code).map_err(D::Error::custom)
    }
}

/// ISO 4217 List One as published on 2026-01-01: every code with defined minor units. Left out
/// are codes whose minor units are "N.A." (metals XAU/XAG/XPT/XPD, bond units XBA-XBD, XDR, XSU,
/// XUA, test code XTS, no-currency XXX) and withdrawn codes (e.g. BGN, replaced by EUR on
/// 2026-01-01; ANG, replaced by XCG; HRK, CUC, SLL, ZWL). Fund codes with real minor units (CLF,
/// UYW, MXV, ...) stay: they are used on contracts. Kept sorted for binary search.
static CURRENCIES: &[Currency] = &[
    Currency::known("AED", 2),
    Currency::known("AFN", 2),
    Currency::known("ALL", 2),
    Currency::known("AMD", 2),
    Currency::known("AOA", 2),
    Currency::known("ARS", 2),
    Currency::known("AUD", 2),
    Currency::known("AWG", 2),
    Currency::known("AZN", 2),
    Currency::known("BAM", 2),
    Currency::known("BBD", 2),
    Currency::known("BDT", 2),
    Currency::known("BHD", 3),
    Currency::known("BIF", 0),
    Currency::known("BMD", 2),
    Currency::known("BND", 2),
    Currency::known("BOB", 2),
    Currency::known("BOV", 2),
    Currency::known("BRL", 2),
    Currency::known("BSD", 2),
    Currency::known("BTN", 2),
    Currency::known("BWP", 2),
    Currency::known("BYN", 2),
    Currency::known("BZD", 2),
    Currency::known("CAD", 2),
    Currency::known("CDF", 2),
    Currency::known("CHE", 2),
    Currency::known("CHF", 2),
    Currency::known("CHW", 2),
    Currency::known("CLF", 4),
    Currency::known("CLP", 0),
    Currency::known("CNY", 2),
    Currency::known("COP", 2),
    Currency::known("COU", 2),
    Currency::known("CRC", 2),
    Currency::known("CUP", 2),
    Currency::known("CVE", 2),
    Currency::known("CZK", 2),
    Currency::known("DJF", 0),
    Currency::known("DKK", 2),
    Currency::known("DOP", 2),
    Currency::known("DZD", 2),
    Currency::known("EGP", 2),
    Currency::known("ERN", 2),
    Currency::known("ETB", 2),
    Currency::known("EUR", 2),
    Currency::known("FJD", 2),
    Currency::known("FKP", 2),
    Currency::known("GBP", 2),
    Currency::known("GEL", 2),
    Currency::known("GHS", 2),
    Currency::known("GIP", 2),
    Currency::known("GMD", 2),
    Currency::known("GNF", 0),
    Currency::known("GTQ", 2),
    Currency::known("GYD", 2),
    Currency::known("HKD", 2),
    Currency::known("HNL", 2),
    Currency::known("HTG", 2),
    Currency::known("HUF", 2),
    Currency::known("IDR", 2),
    Currency::known("ILS", 2),
    Currency::known("INR", 2),
    Currency::known("IQD", 3),
    Currency::known("IRR", 2),
    Currency::known("ISK", 0),
    Currency::known("JMD", 2),
    Currency::known("JOD", 3),
    Currency::known("JPY", 0),
    Currency::known("KES", 2),
    Currency::known("KGS", 2),
    Currency::known("KHR", 2),
    Currency::known("KMF", 0),
    Currency::known("KPW", 2),
    Currency::known("KRW", 0),
    Currency::known("KWD", 3),
    Currency::known("KYD", 2),
    Currency::known("KZT", 2),
    Currency::known("LAK", 2),
    Currency::known("LBP", 2),
    Currency::known("LKR", 2),
    Currency::known("LRD", 2),
    Currency::known("LSL", 2),
    Currency::known("LYD", 3),
    Currency::known("MAD", 2),
    Currency::known("MDL", 2),
    Currency::known("MGA", 2),
    Currency::known("MKD", 2),
    Currency::known("MMK", 2),
    Currency::known("MNT", 2),
    Currency::known("MOP", 2),
    Currency::known("MRU", 2),
    Currency::known("MUR", 2),
    Currency::known("MVR", 2),
    Currency::known("MWK", 2),
    Currency::known("MXN", 2),
    Currency::known("MXV", 2),
    Currency::known("MYR", 2),
    Currency::known("MZN", 2),
    Currency::known("NAD", 2),
    Currency::known("NGN", 2),
    Currency::known("NIO", 2),
    Currency::known("NOK", 2),
    Currency::known("NPR", 2),
    Currency::known("NZD", 2),
    Currency::known("OMR", 3),
    Currency::known("PAB", 2),
    Currency::known("PEN", 2),
    Currency::known("PGK", 2),
    Currency::known("PHP", 2),
    Currency::known("PKR", 2),
    Currency::known("PLN", 2),
    Currency::known("PYG", 0),
    Currency::known("QAR", 2),
    Currency::known("RON", 2),
    Currency::known("RSD", 2),
    Currency::known("RUB", 2),
    Currency::known("RWF", 0),
    Currency::known("SAR", 2),
    Currency::known("SBD", 2),
    Currency::known("SCR", 2),
    Currency::known("SDG", 2),
    Currency::known("SEK", 2),
    Currency::known("SGD", 2),
    Currency::known("SHP", 2),
    Currency::known("SLE", 2),
    Currency::known("SOS", 2),
    Currency::known("SRD", 2),
    Currency::known("SSP", 2),
    Currency::known("STN", 2),
    Currency::known("SVC", 2),
    Currency::known("SYP", 2),
    Currency::known("SZL", 2),
    Currency::known("THB", 2),
    Currency::known("TJS", 2),
    Currency::known("TMT", 2),
    Currency::known("TND", 3),
    Currency::known("TOP", 2),
    Currency::known("TRY", 2),
    Currency::known("TTD", 2),
    Currency::known("TWD", 2),
    Currency::known("TZS", 2),
    Currency::known("UAH", 2),
    Currency::known("UGX", 0),
    Currency::known("USD", 2),
    Currency::known("USN", 2),
    Currency::known("UYI", 0),
    Currency::known("UYU", 2),
    Currency::known("UYW", 4),
    Currency::known("UZS", 2),
    Currency::known("VED", 2),
    Currency::known("VES", 2),
    Currency::known("VND", 0),
    Currency::known("VUV", 0),
    Currency::known("WST", 2),
    Currency::known("XAD", 2),
    Currency::known("XAF", 0),
    Currency::known("XCD", 2),
    Currency::known("XCG", 2),
    Currency::known("XOF", 0),
    Currency::known("XPF", 0),
    Currency::known("YER", 2),
    Currency::known("ZAR", 2),
    Currency::known("ZMW", 2),
    Currency::known("ZWG", 2),
];

/// Parse an amount strictly: `-?[0-9]+(\.[0-9]+)?` with at most `max_scale` decimals.
///
/// Anything a person or a spreadsheet might mean differently is refused rather than guessed:
/// whitespace, a leading "+", exponents, NaN/infinity, "1." and ".5", grouping separators,
/// non-ASCII digits. Leading zeros ("007.5", "00") are refused as [`MoneyError::Malformed`]:
/// they usually come from fixed-width files that an importer should normalise on purpose. "0.50"
/// and "-0.50" are fine, and "-0" reads as 0. Trailing zeros count as decimals ("1.500" has
/// three), so the scale of the result is exactly the number of decimals written. Never panics.
pub fn parse_amount(s: &str, max_scale: u32) -> Result<Decimal, MoneyError> {
    if s.is_empty() {
        return Err(MoneyError::Empty);
    }
    if s.len() > MAX_AMOUNT_LEN {
        return Err(MoneyError::TooLong);
    }
    if is_not_a_number(s) {
        return Err(MoneyError::NotANumber);
    }
    if is_exponent_notation(s) {
        return Err(MoneyError::Exponent);
    }
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match unsigned.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (unsigned, ""),
    };
    let has_point = unsigned.len() != int.len();
    if !is_ascii_digits(int) || (has_point && !is_ascii_digits(frac)) {
        return Err(MoneyError::Malformed);
    }
    if int.len() > 1 && int.starts_with('0') {
        return Err(MoneyError::Malformed);
    }
    if int.len() > MAX_INTEGER_DIGITS {
        return Err(MoneyError::TooLong);
    }
    let scale = u32::try_from(frac.len()).map_err(|_| MoneyError::TooLong)?;
    if scale > max_scale {
        return Err(MoneyError::TooManyDecimals { max: max_scale });
    }
    let int_digits = if int == "0" { 0 } else { int.len() };
    if frac.len() > DECIMAL_DIGITS || int_digits.saturating_add(frac.len()) > DECIMAL_DIGITS {
        return Err(MoneyError::Overflow);
    }
    let mut amount = Decimal::from_str_exact(s).map_err(|_| MoneyError::Overflow)?;
    if amount.scale() != scale {
        return Err(MoneyError::Overflow);
    }
    normalize_zero(&mut amount);
    Ok(amount)
}

fn is_ascii_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_not_a_number(s: &str) -> bool {
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    ["nan", "inf", "infinity"].iter().any(|word| unsigned.eq_ignore_ascii_case(word))
}

/// "1e5", "-1.5E-3": numeric characters around an e/E. Other text with an "e" is just malformed.
fn is_exponent_notation(s: &str) -> bool {
    s.bytes().any(|b| b == b'e' || b == b'E')
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
}

/// `Decimal` has a negative zero; it must never show up as "-0.00" on an invoice.
fn normalize_zero(amount: &mut Decimal) {
    if amount.is_zero() {
        amount.set_sign_positive(true);
    }
}

/// Round half away from zero to the currency's minor units, with the scale set to exactly the
/// minor units so "7" becomes 7.00 in MXN. (For magnitudes far beyond [`MAX_INTEGER_DIGITS`]
/// `Decimal` may not hold that many decimals; [`Money`] refuses such amounts anyway.)
pub fn round_to_minor(amount: Decimal, currency: Currency) -> Decimal {
    let minor_units = currency.minor_units();
    let mut rounded = amount.round_dp_with_strategy(minor_units, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(minor_units);
    normalize_zero(&mut rounded);
    rounded
}

/// An amount in a currency, always exact to the currency's minor units and below 10^18 in
/// magnitude, so it always survives the wire format unchanged.
///
/// There is deliberately no `PartialOrd`: comparing MXN with USD has no answer, so use
/// [`Money::checked_cmp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Money for an amount that already fits the currency: more decimals than its minor units
    /// are refused, not rounded (trailing zeros do not count, so 1.500 USD is 1.50).
    pub fn new(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        if amount.normalize().scale() > currency.minor_units() {
            return Err(MoneyError::TooManyDecimals { max: currency.minor_units() });
        }
        Money::bounded(amount, currency)
    }

    /// Money for any amount, rounded half away from zero to the currency's minor units.
    pub fn rounded(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        Money::bounded(round_to_minor(amount, currency), currency)
    }

    /// Zero in `currency`, with its minor units ("0.00" in MXN, "0" in JPY).
    pub fn zero(currency: Currency) -> Money {
        let mut amount = Decimal::ZERO;
        amount.rescale(currency.minor_units());
        Money { amount, currency }
    }

    /// Parse an amount string and a currency code, as they arrive from clients and files. The
    /// currency is checked first because it decides how many decimals the amount may carry.
    pub fn parse(amount: &str, currency: &str) -> Result<Money, MoneyError> {
        let currency = Currency::from_code(currency)?;
        let amount = parse_amount(amount, currency.minor_units())?;
        Money::new(amount, currency)
    }

    /// The one place a `Money` is built: enforces the magnitude bound and the exact scale.
    fn bounded(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        if amount.abs() >= amount_limit() {
            return Err(MoneyError::Overflow);
        }
        let mut exact = amount;
        exact.rescale(currency.minor_units());
        if exact != amount || exact.scale() != currency.minor_units() {
            return Err(MoneyError::Overflow);
        }
        normalize_zero(&mut exact);
        Ok(Money { amount: exact, currency })
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch { left: self.currency, right: other.currency })
        }
    }

    /// The sum, or an error when the currencies differ or the result is too large.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self.amount.checked_add(other.amount).ok_or(MoneyError::Overflow)?;
        Money::bounded(sum, self.currency)
    }

    /// The difference, or an error when the currencies differ or the result is too large.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let difference = self.amount.checked_sub(other.amount).ok_or(MoneyError::Overflow)?;
        Money::bounded(difference, self.currency)
    }

    /// Order two amounts of the same currency.
    pub fn checked_cmp(&self, other: &Money) -> Result<Ordering, MoneyError> {
        self.same_currency(other)?;
        Ok(self.amount.cmp(&other.amount))
    }

    /// The same amount with the opposite sign (a credit note for an invoice line).
    pub fn neg(&self) -> Money {
        let mut amount = -self.amount;
        normalize_zero(&mut amount);
        Money { amount, currency: self.currency }
    }

    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    pub fn is_positive(&self) -> bool {
        self.amount.is_sign_positive() && !self.amount.is_zero()
    }

    /// `self × quantity`, rounded half away from zero to minor units: a line total from a unit
    /// price and a quantity, or a tax from a rate.
    pub fn mul_round(&self, quantity: Decimal) -> Result<Money, MoneyError> {
        let product = self.amount.checked_mul(quantity).ok_or(MoneyError::Overflow)?;
        Money::rounded(product, self.currency)
    }

    /// Split into `parts` amounts that add up exactly to `self`: every part but the last is the
    /// share truncated to minor units, and the last takes the remainder (installment plans put
    /// the odd cents on the final installment). 100.00 / 3 is 33.33, 33.33, 33.34. `parts` must
    /// be between 1 and [`MAX_SPLIT_PARTS`].
    pub fn allocate(&self, parts: u32) -> Result<Vec<Money>, MoneyError> {
        if parts == 0 || parts > MAX_SPLIT_PARTS {
            return Err(MoneyError::InvalidSplit);
        }
        // Work in whole minor units (the scale always equals the minor units), so the split
        // is exact integer arithmetic.
        let minor_units = self.currency.minor_units();
        let total = self.amount.mantissa();
        let others = parts.saturating_sub(1);
        let share = total.checked_div(i128::from(parts)).ok_or(MoneyError::Overflow)?;
        let last = share
            .checked_mul(i128::from(others))
            .and_then(|taken| total.checked_sub(taken))
            .ok_or(MoneyError::Overflow)?;
        let to_money = |minor: i128| {
            Decimal::try_from_i128_with_scale(minor, minor_units)
                .map_err(|_| MoneyError::Overflow)
                .and_then(|amount| Money::bounded(amount, self.currency))
        };
        let share = to_money(share)?;
        let last = to_money(last)?;
        let others = usize::try_from(others).map_err(|_| MoneyError::InvalidSplit)?;
        let mut split = Vec::with_capacity(others.saturating_add(1));
        split.extend(std::iter::repeat_n(share, others));
        split.push(last);
        Ok(split)
    }

    /// The plain amount string with exactly the currency's minor units: "1234.50", "1234" for
    /// JPY, "1.250" for BHD, "-0.50". Never an exponent.
    pub fn format_amount(&self) -> String {
        // The scale always equals the minor units, and `Decimal`'s Display never uses an
        // exponent; the explicit precision only restates that.
        let precision = usize::try_from(self.currency.minor_units()).unwrap_or_default();
        format!("{:.precision$}", self.amount)
    }

    /// Read a wire `Money`. `field` is the path of the message in the request ("amount",
    /// "lines[2].unit_price"); errors name "<field>.currency" or "<field>.amount".
    pub fn from_proto(pb: &proto::Money, field: &str) -> Result<Money, InvalidField> {
        let currency_field = || field_path(field, "currency");
        let amount_field = || field_path(field, "amount");
        if pb.currency.is_empty() {
            return Err(InvalidField::new(currency_field(), "is required: an ISO 4217 currency code such as MXN"));
        }
        let currency =
            Currency::from_code(&pb.currency).map_err(|e| InvalidField::new(currency_field(), e.to_string()))?;
        parse_amount(&pb.amount, currency.minor_units())
            .and_then(|amount| Money::new(amount, currency))
            .map_err(|e| InvalidField::new(amount_field(), amount_reason(&e, currency)))
    }

    /// The wire `Money`.
    pub fn to_proto(&self) -> proto::Money {
        proto::Money { currency: self.currency.code().to_owned(), amount: self.format_amount() }
    }
}

/// 10^18: amounts must stay strictly below it in magnitude.
fn amount_limit() -> Decimal {
    Decimal::from(1_000_000_000_000_000_000_i64)
}

fn field_path(field: &str, leaf: &str) -> String {
    if field.is_empty() { leaf.to_owned() } else { format!("{field}.{leaf}") }
}

/// The reason for a bad wire amount, naming the currency when its minor units are at fault.
fn amount_reason(err: &MoneyError, currency: Currency) -> String {
    match (err, currency.minor_units()) {
        (MoneyError::Empty, _) => "is required: a decimal amount such as 1234.50".to_owned(),
        (MoneyError::TooManyDecimals { .. }, 0) => {
            format!("{currency} amounts are whole numbers, without decimal places")
        }
        (MoneyError::TooManyDecimals { .. }, 1) => {
            format!("{currency} amounts take at most 1 decimal place")
        }
        (MoneyError::TooManyDecimals { .. }, n) => {
            format!("{currency} amounts take at most {n} decimal places")
        }
        (other, _) => other.to_string(),
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.currency, self.format_amount())
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut wire = serializer.serialize_struct("Money", 2)?;
        wire.serialize_field("currency", self.currency.code())?;
        wire.serialize_field("amount", &self.format_amount())?;
        wire.end()
    }
}

/// The JSON shape of [`Money`]; deserialization goes through [`Money::parse`], so JSON is held
/// to the same rules as the wire (a string amount, no extra fields).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyWire {
    currency: String,
    amount: String,
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = MoneyWire::deserialize(deserializer)?;
        Money::parse(&wire.amount, &wire.currency).map_err(D::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::to_status;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn cur(code: &str) -> Currency {
        Currency::from_code(code).unwrap()
    }

    fn money(amount: &str, currency: &str) -> Money {
        Money::parse(amount, currency).unwrap()
    }

    #[test]
    fn currency_table_is_sorted_unique_and_well_formed() {
        let all = Currency::all();
        assert!(all.len() >= 150, "only {} currencies", all.len());
        for pair in all.windows(2) {
            let (a, b) = (pair.first().unwrap(), pair.last().unwrap());
            assert!(a.code() < b.code(), "{a} must sort before {b}");
        }
        for c in all {
            assert_eq!(c.code().len(), 3);
            assert!(c.code().bytes().all(|b| b.is_ascii_uppercase()), "{c}");
            assert!(c.minor_units() <= UNIT_PRICE_SCALE, "{c}");
            assert_eq!(Currency::from_code(c.code()), Ok(*c));
        }
        for c in [Currency::MXN, Currency::USD, Currency::EUR] {
            assert_eq!(Currency::from_code(c.code()), Ok(c));
        }
    }

    #[test]
    fn currency_minor_units_table() {
        let cases: &[(&str, u32)] = &[
            ("USD", 2),
            ("EUR", 2),
            ("MXN", 2),
            ("GBP", 2),
            ("JPY", 0),
            ("CLP", 0),
            ("KRW", 0),
            ("ISK", 0),
            ("VND", 0),
            ("XAF", 0),
            ("XOF", 0),
            ("XPF", 0),
            ("PYG", 0),
            ("UGX", 0),
            ("BHD", 3),
            ("KWD", 3),
            ("JOD", 3),
            ("OMR", 3),
            ("TND", 3),
            ("IQD", 3),
            ("LYD", 3),
            ("CLF", 4),
            ("UYW", 4),
            ("XCG", 2),
            ("ZWG", 2),
            ("SLE", 2),
            ("VED", 2),
        ];
        for &(code, minor_units) in cases {
            let c = cur(code);
            assert_eq!(c.code(), code);
            assert_eq!(c.minor_units(), minor_units, "{code}");
            assert_eq!(c.to_string(), code);
            assert_eq!(code.parse::<Currency>(), Ok(c));
        }
    }

    #[test]
    fn unknown_currencies_are_refused() {
        let cases: &[(&str, &str)] = &[
            ("usd", "usd"),
            ("Usd", "Usd"),
            ("XTS", "XTS"),
            ("XXX", "XXX"),
            ("XAU", "XAU"),
            ("XAG", "XAG"),
            ("XDR", "XDR"),
            ("BGN", "BGN"),
            ("ANG", "ANG"),
            ("HRK", "HRK"),
            ("ABC", "ABC"),
            ("US", "US"),
            ("USDD", "USDD"),
            ("", ""),
            (" USD", " USD"),
            ("USD ", "USD "),
            ("ÜSD", "ÜSD"),
            ("MXNMXNMXNMXN", "MXNMXNMX…"),
        ];
        for &(code, shown) in cases {
            assert_eq!(Currency::from_code(code), Err(MoneyError::UnknownCurrency(shown.to_owned())), "{code:?}");
        }
        let huge = "Z".repeat(100_000);
        let message = Currency::from_code(&huge).unwrap_err().to_string();
        assert!(message.len() < 150, "{message}");
    }

    #[test]
    fn parse_amount_table() {
        use MoneyError::*;
        let cases: &[(&str, u32, Result<&str, MoneyError>)] = &[
            // Valid.
            ("0", 2, Ok("0")),
            ("5", 2, Ok("5")),
            ("1.5", 2, Ok("1.5")),
            ("1234.50", 2, Ok("1234.50")),
            ("-1234.50", 2, Ok("-1234.50")),
            ("0.50", 2, Ok("0.50")),
            ("-0.50", 2, Ok("-0.50")),
            ("0.00", 2, Ok("0.00")),
            ("-0", 2, Ok("0")),
            ("-0.00", 2, Ok("0.00")),
            ("100", 0, Ok("100")),
            ("12.3456", 4, Ok("12.3456")),
            ("999999999999999999.99", 2, Ok("999999999999999999.99")),
            ("-999999999999999999", 0, Ok("-999999999999999999")),
            // Empty.
            ("", 2, Err(Empty)),
            // Whitespace anywhere.
            (" ", 2, Err(Malformed)),
            (" 1", 2, Err(Malformed)),
            ("1 ", 2, Err(Malformed)),
            ("1 000", 2, Err(Malformed)),
            ("\t1", 2, Err(Malformed)),
            ("1\n", 2, Err(Malformed)),
            ("1\u{a0}000", 2, Err(Malformed)),
            // Signs.
            ("+1", 2, Err(Malformed)),
            ("--1", 2, Err(Malformed)),
            ("-", 2, Err(Malformed)),
            ("1-", 2, Err(Malformed)),
            ("−1", 2, Err(Malformed)),
            // Exponents.
            ("1e5", 2, Err(Exponent)),
            ("1E5", 2, Err(Exponent)),
            ("-1.5e-3", 2, Err(Exponent)),
            ("1e+2", 2, Err(Exponent)),
            ("e", 2, Err(Malformed)),
            // Not numbers.
            ("NaN", 2, Err(NotANumber)),
            ("nan", 2, Err(NotANumber)),
            ("inf", 2, Err(NotANumber)),
            ("-inf", 2, Err(NotANumber)),
            ("+Infinity", 2, Err(NotANumber)),
            // Incomplete decimals.
            ("1.", 2, Err(Malformed)),
            (".5", 2, Err(Malformed)),
            ("-.5", 2, Err(Malformed)),
            (".", 2, Err(Malformed)),
            ("1.2.3", 2, Err(Malformed)),
            ("1..2", 2, Err(Malformed)),
            // Grouping and other notations.
            ("1,000.00", 2, Err(Malformed)),
            ("1,5", 2, Err(Malformed)),
            ("1_000", 2, Err(Malformed)),
            ("0x10", 2, Err(Malformed)),
            ("$5", 2, Err(Malformed)),
            ("5 MXN", 2, Err(Malformed)),
            // Leading zeros.
            ("007.5", 2, Err(Malformed)),
            ("00", 2, Err(Malformed)),
            ("-01", 2, Err(Malformed)),
            // Non-ASCII digits.
            ("１２３", 2, Err(Malformed)),
            ("١٢٣", 2, Err(Malformed)),
            ("٣٫٥", 2, Err(Malformed)),
            ("½", 2, Err(Malformed)),
            ("𝟙", 2, Err(Malformed)),
            // Too many decimals.
            ("1.234", 2, Err(TooManyDecimals { max: 2 })),
            ("1.500", 2, Err(TooManyDecimals { max: 2 })),
            ("1.5", 0, Err(TooManyDecimals { max: 0 })),
            ("0.00001", 4, Err(TooManyDecimals { max: 4 })),
            // Too long.
            ("10000000000000000000000000000000000000000", 2, Err(TooLong)),
            ("1234567890123456789", 2, Err(TooLong)),
            ("-1234567890123456789.5", 2, Err(TooLong)),
            // Beyond what Decimal holds exactly.
            ("0.00000000000000000000000000001", 40, Err(Overflow)),
            ("123456789012345678.12345678901", 40, Err(Overflow)),
        ];
        for (input, max_scale, expected) in cases {
            let got = parse_amount(input, *max_scale).map(|d| d.to_string());
            let expected = expected.clone().map(str::to_owned);
            assert_eq!(got, expected, "parse_amount({input:?}, {max_scale})");
        }
    }

    #[test]
    fn parse_amount_keeps_the_written_scale() {
        assert_eq!(parse_amount("1.50", 4).unwrap().scale(), 2);
        assert_eq!(parse_amount("0.0000", 4).unwrap().scale(), 4);
        assert_eq!(parse_amount("0.0000000000000000000000000001", 28).unwrap().scale(), 28);
    }

    #[test]
    fn rounding_table() {
        let cases: &[(&str, &str, &str)] = &[
            ("2.345", "USD", "2.35"),
            ("-2.345", "USD", "-2.35"),
            ("2.344", "USD", "2.34"),
            ("2.3449999", "USD", "2.34"),
            ("0.005", "USD", "0.01"),
            ("-0.005", "USD", "-0.01"),
            ("-0.004", "USD", "0.00"),
            ("7", "USD", "7.00"),
            ("1234.5", "MXN", "1234.50"),
            ("0.5", "JPY", "1"),
            ("-0.5", "JPY", "-1"),
            ("1.5", "JPY", "2"),
            ("2.5", "JPY", "3"),
            ("0.4999", "JPY", "0"),
            ("2.4", "CLP", "2"),
            ("1499.5", "CLP", "1500"),
            ("-1499.5", "KRW", "-1500"),
            ("1.0005", "BHD", "1.001"),
            ("-1.0005", "KWD", "-1.001"),
            ("1.0004", "BHD", "1.000"),
            ("7", "BHD", "7.000"),
            ("1.00005", "CLF", "1.0001"),
            ("3", "UYW", "3.0000"),
        ];
        for &(amount, code, expected) in cases {
            let currency = cur(code);
            let rounded = round_to_minor(dec(amount), currency);
            assert_eq!(rounded.to_string(), expected, "round_to_minor({amount}, {code})");
            assert_eq!(rounded.scale(), currency.minor_units(), "{amount} {code}");
            let money = Money::rounded(dec(amount), currency).unwrap();
            assert_eq!(money.format_amount(), expected, "Money::rounded({amount}, {code})");
        }
    }

    #[test]
    fn formatting_table() {
        let cases: &[(&str, &str, &str)] = &[
            ("0", "USD", "0.00"),
            ("0", "JPY", "0"),
            ("0", "BHD", "0.000"),
            ("0", "CLF", "0.0000"),
            ("-0", "USD", "0.00"),
            ("5", "USD", "5.00"),
            ("5.5", "EUR", "5.50"),
            ("1234.5", "MXN", "1234.50"),
            ("1234.50", "MXN", "1234.50"),
            ("1234", "JPY", "1234"),
            ("-1234", "JPY", "-1234"),
            ("1.25", "BHD", "1.250"),
            ("-7", "KWD", "-7.000"),
            ("12.3", "CLF", "12.3000"),
            ("0.0001", "UYW", "0.0001"),
            ("-0.5", "USD", "-0.50"),
            ("1.500", "USD", "1.50"),
            ("999999999999999999.99", "USD", "999999999999999999.99"),
            ("100000000000000000", "USD", "100000000000000000.00"),
        ];
        for &(amount, code, expected) in cases {
            let m = Money::new(dec(amount), cur(code)).unwrap();
            assert_eq!(m.format_amount(), expected, "{amount} {code}");
            assert_eq!(m.to_string(), format!("{code} {expected}"));
            assert_eq!(Money::parse(&m.format_amount(), code), Ok(m));
        }
    }

    #[test]
    fn new_refuses_excess_decimals_and_huge_amounts() {
        use MoneyError::*;
        let cases: &[(&str, &str, MoneyError)] = &[
            ("1.234", "USD", TooManyDecimals { max: 2 }),
            ("0.5", "JPY", TooManyDecimals { max: 0 }),
            ("1.0001", "BHD", TooManyDecimals { max: 3 }),
            ("0.00001", "CLF", TooManyDecimals { max: 4 }),
            ("1000000000000000000", "USD", Overflow),
            ("-1000000000000000000", "JPY", Overflow),
            ("79228162514264337593543950335", "USD", Overflow),
        ];
        for (amount, code, expected) in cases {
            assert_eq!(Money::new(dec(amount), cur(code)), Err(expected.clone()), "{amount} {code}");
        }
        assert_eq!(Money::rounded(Decimal::MAX, Currency::USD), Err(Overflow));
        assert_eq!(Money::rounded(Decimal::MIN, Currency::USD), Err(Overflow));
    }

    #[test]
    fn money_parse_table() {
        use MoneyError::*;
        let cases: &[(&str, &str, Result<&str, MoneyError>)] = &[
            ("1234.50", "MXN", Ok("MXN 1234.50")),
            ("1234.5", "MXN", Ok("MXN 1234.50")),
            ("1234", "JPY", Ok("JPY 1234")),
            ("1.25", "BHD", Ok("BHD 1.250")),
            ("1234.5", "JPY", Err(TooManyDecimals { max: 0 })),
            ("1.234", "MXN", Err(TooManyDecimals { max: 2 })),
            ("1.00", "mxn", Err(UnknownCurrency("mxn".to_owned()))),
            ("junk", "mxn", Err(UnknownCurrency("mxn".to_owned()))),
            ("", "MXN", Err(Empty)),
            ("1e3", "MXN", Err(Exponent)),
        ];
        for (amount, code, expected) in cases {
            let got = Money::parse(amount, code).map(|m| m.to_string());
            assert_eq!(got, expected.clone().map(str::to_owned), "{amount:?} {code:?}");
        }
    }

    #[test]
    fn arithmetic_table() {
        let cases: &[(&str, &str, &str, &str, &str)] = &[
            // (left, right, currency, left + right, left - right)
            ("1.10", "2.20", "USD", "3.30", "-1.10"),
            ("0.50", "0.50", "MXN", "1.00", "0.00"),
            ("-5.00", "5.00", "EUR", "0.00", "-10.00"),
            ("100", "1", "JPY", "101", "99"),
            ("1.001", "0.009", "BHD", "1.010", "0.992"),
        ];
        for &(left, right, code, sum, difference) in cases {
            let (l, r) = (money(left, code), money(right, code));
            assert_eq!(l.checked_add(&r).unwrap().format_amount(), sum, "{left} + {right}");
            assert_eq!(l.checked_sub(&r).unwrap().format_amount(), difference, "{left} - {right}");
        }
    }

    #[test]
    fn arithmetic_overflow_is_an_error() {
        let max = money("999999999999999999.99", "USD");
        let cent = money("0.01", "USD");
        assert_eq!(max.checked_add(&cent), Err(MoneyError::Overflow));
        assert_eq!(max.neg().checked_sub(&cent), Err(MoneyError::Overflow));
        assert_eq!(max.mul_round(dec("2")), Err(MoneyError::Overflow));
        assert_eq!(max.mul_round(Decimal::MAX), Err(MoneyError::Overflow));
        assert_eq!(max.checked_sub(&cent).unwrap().format_amount(), "999999999999999999.98");
    }

    #[test]
    fn currency_mismatch_on_add_sub_and_cmp() {
        let usd = money("1.00", "USD");
        let mxn = money("1.00", "MXN");
        let mismatch = MoneyError::CurrencyMismatch { left: Currency::USD, right: Currency::MXN };
        assert_eq!(usd.checked_add(&mxn), Err(mismatch.clone()));
        assert_eq!(usd.checked_sub(&mxn), Err(mismatch.clone()));
        assert_eq!(usd.checked_cmp(&mxn), Err(mismatch.clone()));
        assert_eq!(
            mismatch.to_string(),
            "amounts in USD and MXN cannot be combined; convert them to one currency first"
        );
    }

    #[test]
    fn comparison_table() {
        let cases: &[(&str, &str, &str, Ordering)] = &[
            ("1.00", "2.00", "USD", Ordering::Less),
            ("2.00", "1.00", "USD", Ordering::Greater),
            ("1.50", "1.5", "USD", Ordering::Equal),
            ("-1.00", "0.00", "MXN", Ordering::Less),
            ("10", "9", "JPY", Ordering::Greater),
        ];
        for &(left, right, code, expected) in cases {
            let got = money(left, code).checked_cmp(&money(right, code));
            assert_eq!(got, Ok(expected), "{left} vs {right}");
        }
    }

    #[test]
    fn sign_helpers_table() {
        let cases: &[(&str, &str, bool, bool, bool, &str)] = &[
            // (amount, currency, zero, negative, positive, negated)
            ("0.00", "USD", true, false, false, "0.00"),
            ("-0", "USD", true, false, false, "0.00"),
            ("1.50", "USD", false, false, true, "-1.50"),
            ("-1.50", "USD", false, true, false, "1.50"),
            ("-3", "JPY", false, true, false, "3"),
        ];
        for &(amount, code, zero, negative, positive, negated) in cases {
            let m = money(amount, code);
            assert_eq!(m.is_zero(), zero, "{amount}");
            assert_eq!(m.is_negative(), negative, "{amount}");
            assert_eq!(m.is_positive(), positive, "{amount}");
            assert_eq!(m.neg().format_amount(), negated, "{amount}");
        }
        assert_eq!(Money::zero(cur("BHD")).format_amount(), "0.000");
        assert_eq!(Money::zero(cur("JPY")).format_amount(), "0");
        assert!(Money::zero(Currency::MXN).is_zero());
    }

    #[test]
    fn mul_round_table() {
        let cases: &[(&str, &str, &str, &str)] = &[
            // (amount, currency, quantity, expected)
            ("10.00", "USD", "3", "30.00"),
            ("0.10", "USD", "0.5", "0.05"),
            ("0.01", "USD", "0.5", "0.01"),
            ("-0.01", "USD", "0.5", "-0.01"),
            ("100.00", "MXN", "0.16", "16.00"),
            ("19.99", "MXN", "0.16", "3.20"),
            ("1", "JPY", "0.5", "1"),
            ("1.000", "BHD", "0.0005", "0.001"),
            ("5.00", "USD", "-2", "-10.00"),
            ("5.00", "USD", "0", "0.00"),
        ];
        for &(amount, code, quantity, expected) in cases {
            let got = money(amount, code).mul_round(dec(quantity)).unwrap();
            assert_eq!(got.format_amount(), expected, "{amount} {code} × {quantity}");
        }
    }

    #[test]
    fn allocation_table() {
        let cases: &[(&str, &str, u32, &[&str])] = &[
            ("100.00", "USD", 3, &["33.33", "33.33", "33.34"]),
            ("100", "JPY", 3, &["33", "33", "34"]),
            ("-100.00", "USD", 3, &["-33.33", "-33.33", "-33.34"]),
            ("0.02", "USD", 3, &["0.00", "0.00", "0.02"]),
            ("10.00", "MXN", 1, &["10.00"]),
            ("10.00", "MXN", 2, &["5.00", "5.00"]),
            ("1.000", "BHD", 3, &["0.333", "0.333", "0.334"]),
            ("0.00", "USD", 2, &["0.00", "0.00"]),
            ("100.00", "MXN", 7, &["14.28", "14.28", "14.28", "14.28", "14.28", "14.28", "14.32"]),
        ];
        for &(amount, code, parts, expected) in cases {
            let total = money(amount, code);
            let split = total.allocate(parts).unwrap();
            let got: Vec<String> = split.iter().map(Money::format_amount).collect();
            assert_eq!(got, expected, "{amount} {code} / {parts}");
            let sum = split.iter().try_fold(Money::zero(total.currency()), |acc, m| acc.checked_add(m));
            assert_eq!(sum, Ok(total), "{amount} {code} / {parts}");
        }
        let total = money("100.00", "USD");
        assert_eq!(total.allocate(0), Err(MoneyError::InvalidSplit));
        assert_eq!(total.allocate(MAX_SPLIT_PARTS + 1), Err(MoneyError::InvalidSplit));
        assert_eq!(total.allocate(u32::MAX), Err(MoneyError::InvalidSplit));
        assert_eq!(total.allocate(MAX_SPLIT_PARTS).unwrap().len(), 10_000);
    }

    #[test]
    fn proto_round_trip() {
        let cases: &[(&str, &str)] = &[("MXN", "1234.50"), ("JPY", "1234"), ("BHD", "-1.250"), ("CLF", "0.0001")];
        for &(code, amount) in cases {
            let pb = proto::Money { currency: code.to_owned(), amount: amount.to_owned() };
            let m = Money::from_proto(&pb, "amount").unwrap();
            assert_eq!(m.to_proto(), pb);
        }
        let m = money("5", "USD");
        assert_eq!(m.to_proto(), proto::Money { currency: "USD".to_owned(), amount: "5.00".to_owned() });
    }

    #[test]
    fn proto_errors_name_the_field() {
        let cases: &[(&str, &str, &str, &str, &str)] = &[
            // (field, currency, amount, expected field, reason fragment)
            ("amount", "", "1.00", "amount.currency", "is required"),
            ("amount", "mxn", "1.00", "amount.currency", "ISO 4217"),
            ("amount", "XXX", "1.00", "amount.currency", "ISO 4217"),
            ("amount", "MXN", "", "amount.amount", "is required"),
            ("amount", "MXN", "1.234", "amount.amount", "MXN amounts take at most 2 decimal places"),
            ("amount", "JPY", "1.5", "amount.amount", "JPY amounts are whole numbers"),
            ("amount", "MXN", "1e3", "amount.amount", "exponent"),
            ("amount", "MXN", "1,000.00", "amount.amount", "plain decimal"),
            ("amount", "MXN", "12345678901234567890", "amount.amount", "too long"),
            ("lines[2].unit_price", "USD", "abc", "lines[2].unit_price.amount", "plain decimal"),
            ("", "USD", "abc", "amount", "plain decimal"),
            ("", "", "", "currency", "is required"),
        ];
        for &(field, code, amount, expected_field, fragment) in cases {
            let pb = proto::Money { currency: code.to_owned(), amount: amount.to_owned() };
            let err = Money::from_proto(&pb, field).unwrap_err();
            assert_eq!(err.field, expected_field, "{code:?} {amount:?}");
            assert!(err.reason.contains(fragment), "{:?} lacks {fragment:?}", err.reason);
        }
    }

    #[test]
    fn serde_round_trip() {
        let cases: &[(&str, &str, &str)] = &[
            ("1234.50", "MXN", r#"{"currency":"MXN","amount":"1234.50"}"#),
            ("5", "USD", r#"{"currency":"USD","amount":"5.00"}"#),
            ("-1234", "JPY", r#"{"currency":"JPY","amount":"-1234"}"#),
            ("1.25", "BHD", r#"{"currency":"BHD","amount":"1.250"}"#),
        ];
        for &(amount, code, json) in cases {
            let m = money(amount, code);
            assert_eq!(serde_json::to_string(&m).unwrap(), json);
            assert_eq!(serde_json::from_str::<Money>(json).unwrap(), m);
        }
        assert_eq!(serde_json::to_string(&Currency::MXN).unwrap(), r#""MXN""#);
        assert_eq!(serde_json::from_str::<Currency>(r#""JPY""#).unwrap(), cur("JPY"));
    }

    #[test]
    fn serde_deserializes_strictly() {
        let rejected = [
            r#"{"currency":"MXN","amount":1234.5}"#,
            r#"{"currency":"MXN","amount":"1.234"}"#,
            r#"{"currency":"MXN","amount":"1e3"}"#,
            r#"{"currency":"MXN","amount":" 1.00"}"#,
            r#"{"currency":"mxn","amount":"1.00"}"#,
            r#"{"currency":"MXN"}"#,
            r#"{"amount":"1.00"}"#,
            r#"{"currency":"MXN","amount":"1.00","note":"x"}"#,
            r#""MXN 1.00""#,
        ];
        for json in rejected {
            assert!(serde_json::from_str::<Money>(json).is_err(), "{json}");
        }
        assert!(serde_json::from_str::<Currency>(r#""usd""#).is_err());
        assert!(serde_json::from_str::<Currency>("840").is_err());
    }

    #[test]
    fn domain_error_codes_table() {
        use MoneyError::*;
        let cases: &[(MoneyError, &str)] = &[
            (Empty, "invalid_amount"),
            (Malformed, "invalid_amount"),
            (Exponent, "invalid_amount"),
            (NotANumber, "invalid_amount"),
            (TooLong, "invalid_amount"),
            (TooManyDecimals { max: 2 }, "invalid_amount"),
            (UnknownCurrency("ABC".to_owned()), "unknown_currency"),
            (CurrencyMismatch { left: Currency::USD, right: Currency::EUR }, "currency_mismatch"),
            (Overflow, "amount_out_of_range"),
            (InvalidSplit, "invalid_split"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), *code, "{err:?}");
            assert_eq!(err.grpc_code(), Code::InvalidArgument, "{err:?}");
            let status = to_status(err);
            assert_eq!(status.code(), Code::InvalidArgument);
            assert_eq!(status.message(), err.to_string());
            assert!(err.to_string().len() < 250, "{err}");
        }
    }

    #[test]
    fn error_messages_read_as_sentences() {
        use MoneyError::*;
        let cases: &[(MoneyError, &str)] = &[
            (Empty, "the amount is empty"),
            (
                TooLong,
                "the amount is too long: at most 18 digits before the decimal point and 40 \
                 characters in all",
            ),
            (TooManyDecimals { max: 2 }, "the amount has too many decimal places: at most 2 are allowed"),
            (TooManyDecimals { max: 1 }, "the amount has too many decimal places: at most 1 is allowed"),
            (TooManyDecimals { max: 0 }, "the amount must be a whole number: this currency has no decimal places"),
            (
                UnknownCurrency("mxn".to_owned()),
                "\"mxn\" is not a supported ISO 4217 currency code (three upper-case letters, \
                 such as MXN or USD)",
            ),
            (InvalidSplit, "an amount can only be split into 1 to 10000 parts"),
        ];
        for (err, message) in cases {
            assert_eq!(err.to_string(), *message);
        }
    }

    /// Hundreds of odd strings, including unicode digits and huge inputs: parsing must never
    /// panic, and anything accepted must survive a format/parse round trip.
    #[test]
    fn no_panic_sweep() {
        let bodies = [
            "",
            "0",
            "1",
            "00",
            "007.5",
            "1.",
            ".5",
            ".",
            "-",
            "+",
            "--",
            "+-1",
            "1e5",
            "1E-5",
            "e",
            "NaN",
            "inf",
            "-Infinity",
            "1,000",
            "1_000",
            "0x1F",
            "1.2.3",
            "1..0",
            " 1",
            "1 ",
            "\t",
            "\n",
            "\u{0}",
            "\u{feff}1",
            "1\u{200b}",
            "１２",
            "١٢٣",
            "٣٫٥",
            "½",
            "²",
            "−1",
            "𝟙",
            "ⅰ",
            "💶",
            "€1",
            "1€",
            "1.2345",
            "123456789012345678",
            "1234567890123456789",
            "79228162514264337593543950335",
            "79228162514264337593543950336",
            "0.0000000000000000000000000001",
            "0.00000000000000000000000000001",
            "-0",
            "-0.0",
            "999999999999999999.9999",
            "MXN",
            "usd",
        ];
        let prefixes = ["", "-", "+", "0", " ", ".", "9"];
        let suffixes = ["", "0", ".", ".00", ".5", "e2", " ", "\u{660}", "9999999999"];
        let mut inputs: Vec<String> = Vec::new();
        for body in bodies {
            for prefix in prefixes {
                for suffix in suffixes {
                    inputs.push(format!("{prefix}{body}{suffix}"));
                }
            }
        }
        inputs.extend([
            "9".repeat(100_000),
            format!("1.{}", "0".repeat(10_000)),
            "-".repeat(1_000),
            "é".repeat(50),
            "1".repeat(41),
            "1".repeat(40),
            format!("0.{}", "0".repeat(38)),
            "٠".repeat(20),
        ]);
        assert!(inputs.len() > 300);

        let currencies = ["USD", "JPY", "BHD", "CLF"];
        for input in &inputs {
            for max_scale in [0, 2, 4, 28, 29, 40, u32::MAX] {
                if let Ok(d) = parse_amount(input, max_scale) {
                    assert!(d.scale() <= max_scale, "{input:?}");
                    assert_eq!(parse_amount(&d.to_string(), max_scale), Ok(d), "{input:?}");
                }
            }
            for code in currencies {
                if let Ok(m) = Money::parse(input, code) {
                    assert_eq!(Money::parse(&m.format_amount(), code), Ok(m), "{input:?}");
                    let pb = m.to_proto();
                    assert_eq!(Money::from_proto(&pb, "amount"), Ok(m));
                }
            }
            if let Err(err) = Money::parse("1.00", input) {
                assert!(err.to_string().len() < 150, "{input:?}");
            }
            let pb = proto::Money { currency: input.clone(), amount: input.clone() };
            if let Err(err) = Money::from_proto(&pb, "amount") {
                assert!(err.reason.len() < 300, "{input:?}");
            }
        }

        let extremes = [
            Decimal::MAX,
            Decimal::MIN,
            Decimal::ZERO,
            Decimal::ONE,
            Decimal::NEGATIVE_ONE,
            Decimal::new(1, 28),
            Decimal::new(-5, 28),
            dec("999999999999999999.995"),
            dec("-999999999999999999.995"),
        ];
        for currency in Currency::all() {
            for value in extremes {
                let _ = round_to_minor(value, *currency);
                let _ = Money::rounded(value, *currency);
                let _ = Money::new(value, *currency);
                let big = Money::rounded(dec("999999999999999999"), *currency).unwrap();
                let _ = big.mul_round(value);
                let _ = big.neg().mul_round(value);
            }
        }
        let big = money("-999999999999999999.99", "USD");
        for parts in [0, 1, 2, 3, 7, 999, MAX_SPLIT_PARTS, MAX_SPLIT_PARTS + 1, u32::MAX] {
            if let Ok(split) = big.allocate(parts) {
                assert_eq!(split.len(), usize::try_from(parts).unwrap());
            }
        }
    }
}

/// Generated inputs: every string over the characters amounts are made of either parses to a
/// value that prints back as itself (what was accepted is exactly what was written) or is
/// refused; nothing panics, and rounding never moves a value by half a minor unit or more.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod generated {
    use super::*;
    use crate::seeded::SeededRng;

    const ALPHABET: &[u8] = b"0123456789000999.-+eE, _\t1";

    #[test]
    fn accepted_amounts_print_back_as_written_and_round_within_half_a_minor_unit() {
        let mut rng = SeededRng::new(0x5DEE_CE66_D1CE_4E5B);
        let mut accepted = 0;
        for _ in 0..50_000 {
            let len = rng.below(40);
            let s: String = (0..len).map(|_| char::from(ALPHABET[rng.below(ALPHABET.len())])).collect();
            let Ok(amount) = parse_amount(&s, 4) else { continue };
            accepted += 1;
            let printed = amount.to_string();
            let same = printed == s || (amount.is_zero() && s.starts_with('-'));
            assert!(same, "{s:?} parsed as {printed}");
            for currency in [Currency::from_code("MXN").unwrap(), Currency::from_code("JPY").unwrap()] {
                let rounded = round_to_minor(amount, currency);
                let half = Decimal::new(5, currency.minor_units() + 1);
                assert!((rounded - amount).abs() <= half, "{s} rounds to {rounded} in {currency:?}");
                assert_eq!(rounded.scale(), currency.minor_units());
            }
        }
        assert!(accepted > 1_000, "the generator reaches valid amounts ({accepted})");
    }
}

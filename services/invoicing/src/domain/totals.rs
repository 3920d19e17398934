//! Invoice line and invoice totals: how quantities, unit prices, discounts and taxes become the
//! figures printed on an invoice.
//!
//! Money is never a float. An invoice has one [`Currency`] and every figure is a [`Decimal`] in
//! it, rounded half away from zero to the currency's minor units with [`round_to_minor`] and
//! carrying exactly that many decimals ("100" MXN is 100.00, JPY has none, BHD three). Every
//! figure must also stay below 10^18 in magnitude, the bound of [`Money`], so each one converts
//! to `Money` unchanged. [`compute`] never panics: arithmetic is checked and anything out of
//! range is an [`InvalidField`] naming the request field at fault.
//!
//! # Validation
//!
//! Field names are request paths; `i` is the line index and `j` the tax index, both from 0.
//! Decimals are counted without trailing zeros (1.500 has one).
//!
//! - `lines`: at least one line and at most [`MAX_LINES`].
//! - `lines[i].quantity`: greater than zero, at most [`QUANTITY_SCALE`] decimals.
//! - `lines[i].unit_price`: zero or more, at most [`UNIT_PRICE_SCALE`] decimals.
//! - `lines[i].discount`: a percentage within 0..=100 with at most [`PERCENT_SCALE`] decimals,
//!   or an amount that is zero or more, has at most the currency's minor units of decimals and
//!   does not exceed the line gross.
//! - `lines[i].taxes[j].name`: not blank (invoice taxes are summed by name).
//! - `lines[i].taxes[j].rate_percent`: within 0..=100 with at most [`PERCENT_SCALE`] decimals.
//! - `lines[i].taxes`: all inclusive or all exclusive; several of either kind are fine.
//! - `discount` (the invoice discount): as a line discount, with the subtotal as the ceiling.
//! - Any figure reaching 10^18 is refused as "is too large": on `lines[i].unit_price` for
//!   quantity × unit price, `lines[i].discount` for the line's net, `lines[i].taxes` for its
//!   taxes and total, `discount` for the invoice discount and its allocation, and `lines` for
//!   the invoice sums.
//!
//! # Rules
//!
//! 1. Gross = round(quantity × unit price).
//! 2. Line discount: a percentage p gives round(gross × p / 100); an amount is taken as is.
//! 3. Line amount = gross − line discount.
//! 4. No taxes: net = line amount; total = net.
//! 5. Exclusive taxes: net = line amount; each tax = round(net × rate / 100); total = net + Σ
//!    taxes.
//! 6. Inclusive taxes: the line amount already contains the taxes. With R the sum of the line's
//!    rates, net = round(line amount × 100 / (100 + R)); each tax but the last =
//!    round(net × rate / 100); the last tax takes the remainder, so net + Σ taxes equals the line
//!    amount exactly and the customer pays the printed price. The last tax may therefore differ
//!    from its nominal rate by a minor unit or two (and be negative when its rate is 0 and others
//!    rounded up); list the main tax last.
//! 7. Subtotal = Σ line nets. Invoice discount: a percentage p gives round(subtotal × p / 100);
//!    an amount is taken as is.
//! 8. The invoice discount is shared among the lines in proportion to their nets by largest
//!    remainder, in whole minor units: each line gets the floor of its exact share, and the
//!    minor units left over go one each to the lines with the largest remainders (the earlier
//!    line on a tie). The shares add up to the invoice discount exactly and never exceed a
//!    line's net.
//! 9. A line's final net is its net − its share, and its taxes are recomputed on that net:
//!    exclusive lines as in rule 5. For inclusive lines the share is a share of the tax-exclusive
//!    subtotal, so the tax-inclusive amount shrinks in the same proportion as the net:
//!    amount' = round(line amount × final net / net); taxes as in rule 6 with the final net kept
//!    as is, the last tax taking amount' − final net − Σ other taxes. With no share a line keeps
//!    the figures of rules 1–6. (Reducing the inclusive amount by the bare share instead would
//!    make a 10 % invoice discount take less than 10 % off, and the taxable amount would no
//!    longer be the subtotal minus the discount.)
//! 10. Taxable = subtotal − invoice discount = Σ final line nets. Invoice taxes = the final line
//!     taxes summed by name, in first-seen order (lines in order, taxes in line order, 0 % taxes
//!     included since tax reports need them). Tax total = Σ invoice taxes; total = taxable + tax
//!     total = Σ final line totals.
//!
//! [`LineTotals`] holds each line's final figures; its `discount` is the line's own discount
//! and `invoice_discount_share` its part of the invoice discount. Without inclusive taxes
//! net + discount + share = gross; an inclusive line's gross also holds its taxes. Divisions (rules 6, 8 and 9) are done exactly on whole minor units; products of an
//! amount and a percentage are exact in `Decimal`, which is why percentages carry at most
//! [`PERCENT_SCALE`] decimals.

use cobro_kit::error::InvalidField;
use cobro_kit::money::{Currency, Money, UNIT_PRICE_SCALE, round_to_minor};
use rust_decimal::Decimal;

/// Most lines an invoice may carry, so the work per request and the printed invoice stay bounded.
pub const MAX_LINES: usize = 500;

/// Decimals a quantity may carry: enough for hours to the second or kilograms to the milligram.
pub const QUANTITY_SCALE: u32 = 6;

/// Decimals a percentage (discount or tax rate) may carry. 10.6667 % (two thirds of 16 %, a
/// common withholding) fits, and the product of any amount below 10^18 and such a percentage
/// stays exact in `Decimal`.
pub const PERCENT_SCALE: u32 = 4;

/// 100 % in units of 10^-[`PERCENT_SCALE`] percent, for exact integer division.
const HUNDRED_PERCENT_UNITS: u128 = 1_000_000;

/// A discount on a line or on the whole invoice.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Discount {
    #[default]
    None,
    /// A percentage within 0..=100 of the line gross or the invoice subtotal.
    Percent(Decimal),
    /// A fixed amount in the invoice currency, at least zero.
    Amount(Decimal),
}

/// Whether a tax is added to the price or already included in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaxMode {
    /// The tax is added on top of the price (B2B prices in Mexico).
    Exclusive,
    /// The price already contains the tax (retail shelf prices).
    Inclusive,
}

/// A tax applied to a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxRate {
    /// Invoice taxes are summed by this name ("IVA", "IEPS").
    pub name: String,
    /// Within 0..=100.
    pub rate_percent: Decimal,
    pub mode: TaxMode,
}

/// One invoice line as requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineInput {
    pub description: String,
    pub quantity: Decimal,
    /// Up to [`UNIT_PRICE_SCALE`] decimals; only totals are rounded to minor units.
    pub unit_price: Decimal,
    pub discount: Discount,
    pub taxes: Vec<TaxRate>,
}

/// A line's final figures, after the invoice discount is shared out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTotals {
    /// Quantity × unit price, rounded.
    pub gross: Decimal,
    /// The line's own discount.
    pub discount: Decimal,
    /// The line's part of the invoice discount.
    pub invoice_discount_share: Decimal,
    /// Taxable base, excluding tax: gross − discount − invoice discount share, less the taxes
    /// when they are included in the price.
    pub net: Decimal,
    /// Each tax of the line, in the line's order.
    pub taxes: Vec<(String, Decimal)>,
    pub tax_total: Decimal,
    /// Net + tax total.
    pub total: Decimal,
}

/// An invoice's figures, all in `currency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceTotals {
    pub currency: Currency,
    pub lines: Vec<LineTotals>,
    /// Σ line nets before the invoice discount.
    pub subtotal: Decimal,
    pub invoice_discount: Decimal,
    /// Subtotal − invoice discount.
    pub taxable: Decimal,
    /// Line taxes summed by name, in first-seen order.
    pub taxes: Vec<(String, Decimal)>,
    pub tax_total: Decimal,
    /// Taxable + tax total.
    pub total: Decimal,
}

/// Compute an invoice's totals from its lines and invoice-level discount, following the rules in
/// this module's documentation.
pub fn compute(
    currency: Currency,
    lines: &[LineInput],
    invoice_discount: &Discount,
) -> Result<InvoiceTotals, InvalidField> {
    if lines.is_empty() {
        return Err(InvalidField::new("lines", "must contain at least one line"));
    }
    if lines.len() > MAX_LINES {
        return Err(InvalidField::new("lines", format!("must contain at most {MAX_LINES} lines")));
    }
    let priced = lines
        .iter()
        .enumerate()
        .map(|(index, line)| price_line(currency, index, line))
        .collect::<Result<Vec<_>, _>>()?;

    let subtotal = sum(currency, priced.iter().map(|line| line.net), "lines")?;
    let invoice_discount =
        discount_amount(currency, invoice_discount, subtotal, "discount", "the subtotal (the sum of the line nets)")?;

    let nets = priced.iter().map(|line| minor_units(currency, line.net)).collect::<Option<Vec<_>>>();
    let shares = nets
        .zip(minor_units(currency, invoice_discount))
        .and_then(|(nets, discount)| allocate(discount, &nets))
        .ok_or_else(|| too_large("discount"))?;

    let mut line_totals = Vec::with_capacity(priced.len());
    for (line, share) in priced.iter().zip(shares) {
        let share = from_minor_units(currency, share, "discount")?;
        line_totals.push(finish_line(currency, line, share)?);
    }

    let taxable = fit(currency, subtotal.checked_sub(invoice_discount), "discount")?;
    let taxes = sum_taxes_by_name(currency, &line_totals)?;
    let tax_total = sum(currency, taxes.iter().map(|(_, amount)| *amount), "lines")?;
    let total = fit(currency, taxable.checked_add(tax_total), "lines")?;
    Ok(InvoiceTotals { currency, lines: line_totals, subtotal, invoice_discount, taxable, taxes, tax_total, total })
}

/// A validated line before the invoice discount is shared out.
struct PricedLine<'a> {
    index: usize,
    gross: Decimal,
    discount: Decimal,
    /// Taxable base before the invoice discount.
    net: Decimal,
    /// Gross − discount, when the line's taxes are included in it; `None` for exclusive or no
    /// taxes.
    amount_incl: Option<Decimal>,
    taxes: &'a [TaxRate],
}

/// Validate a line and work out its figures before the invoice discount (rules 1–6).
fn price_line(currency: Currency, index: usize, line: &LineInput) -> Result<PricedLine<'_>, InvalidField> {
    let field = |leaf: &str| format!("lines[{index}].{leaf}");

    // Normalized, so trailing zeros neither count as decimals nor inflate products' scales.
    let quantity = line.quantity.normalize();
    if quantity <= Decimal::ZERO {
        return Err(InvalidField::new(field("quantity"), "must be greater than zero"));
    }
    if quantity.scale() > QUANTITY_SCALE {
        return Err(InvalidField::new(field("quantity"), decimals_reason(QUANTITY_SCALE)));
    }
    let unit_price = line.unit_price.normalize();
    if unit_price < Decimal::ZERO {
        return Err(InvalidField::new(field("unit_price"), "must not be negative"));
    }
    if unit_price.scale() > UNIT_PRICE_SCALE {
        return Err(InvalidField::new(field("unit_price"), decimals_reason(UNIT_PRICE_SCALE)));
    }

    let gross = fit(currency, quantity.checked_mul(unit_price), &field("unit_price"))?;
    let discount =
        discount_amount(currency, &line.discount, gross, &field("discount"), "the line gross (quantity × unit price)")?;
    let amount = fit(currency, gross.checked_sub(discount), &field("discount"))?;

    let inclusive = validate_taxes(index, &line.taxes)?;
    let (net, amount_incl) = if inclusive {
        let combined_rate = line
            .taxes
            .iter()
            .try_fold(0_u128, |sum, tax| percent_units(tax.rate_percent).and_then(|rate| sum.checked_add(rate)));
        let net = combined_rate
            .and_then(|rate| HUNDRED_PERCENT_UNITS.checked_add(rate))
            .zip(minor_units(currency, amount))
            .and_then(|(divisor, amount)| mul_div_round(amount, HUNDRED_PERCENT_UNITS, divisor));
        let net = net.ok_or_else(|| too_large(&field("taxes")))?;
        (from_minor_units(currency, net, &field("taxes"))?, Some(amount))
    } else {
        (amount, None)
    };
    Ok(PricedLine { index, gross, discount, net, amount_incl, taxes: &line.taxes })
}

/// Check a line's tax names and rates; `Ok(true)` when its taxes are included in its price.
fn validate_taxes(index: usize, taxes: &[TaxRate]) -> Result<bool, InvalidField> {
    for (j, tax) in taxes.iter().enumerate() {
        if tax.name.trim().is_empty() {
            return Err(InvalidField::new(format!("lines[{index}].taxes[{j}].name"), "is required"));
        }
        check_percent(tax.rate_percent, &format!("lines[{index}].taxes[{j}].rate_percent"))?;
    }
    let inclusive = taxes.iter().any(|tax| tax.mode == TaxMode::Inclusive);
    let exclusive = taxes.iter().any(|tax| tax.mode == TaxMode::Exclusive);
    if inclusive && exclusive {
        return Err(InvalidField::new(
            format!("lines[{index}].taxes"),
            "cannot mix tax-inclusive and tax-exclusive rates",
        ));
    }
    Ok(inclusive)
}

/// A line's final figures once its share of the invoice discount is known (rule 9).
fn finish_line(currency: Currency, line: &PricedLine<'_>, share: Decimal) -> Result<LineTotals, InvalidField> {
    let taxes_field = format!("lines[{}].taxes", line.index);
    let net = fit(currency, line.net.checked_sub(share), "discount")?;
    let taxes = match (line.amount_incl, line.taxes.split_last()) {
        (Some(amount_incl), Some((last, others))) => {
            let amount_incl = if share.is_zero() {
                amount_incl
            } else {
                let scaled = minor_units(currency, amount_incl)
                    .zip(minor_units(currency, net))
                    .zip(minor_units(currency, line.net))
                    .and_then(|((amount, net), net_before)| mul_div_round(amount, net, net_before))
                    .ok_or_else(|| too_large(&taxes_field))?;
                from_minor_units(currency, scaled, &taxes_field)?
            };
            let mut taxes = Vec::with_capacity(line.taxes.len());
            let mut assigned = zero(currency);
            for tax in others {
                let amount = tax_on(currency, net, tax, &taxes_field)?;
                assigned = fit(currency, assigned.checked_add(amount), &taxes_field)?;
                taxes.push((tax.name.clone(), amount));
            }
            let remainder = amount_incl.checked_sub(net).and_then(|rest| rest.checked_sub(assigned));
            taxes.push((last.name.clone(), fit(currency, remainder, &taxes_field)?));
            taxes
        }
        _ => line
            .taxes
            .iter()
            .map(|tax| Ok((tax.name.clone(), tax_on(currency, net, tax, &taxes_field)?)))
            .collect::<Result<Vec<_>, InvalidField>>()?,
    };
    let tax_total = sum(currency, taxes.iter().map(|(_, amount)| *amount), &taxes_field)?;
    let total = fit(currency, net.checked_add(tax_total), &taxes_field)?;
    Ok(LineTotals {
        gross: line.gross,
        discount: line.discount,
        invoice_discount_share: share,
        net,
        taxes,
        tax_total,
        total,
    })
}

/// round(net × rate / 100).
fn tax_on(currency: Currency, net: Decimal, tax: &TaxRate, field: &str) -> Result<Decimal, InvalidField> {
    fit(
        currency,
        net.checked_mul(tax.rate_percent.normalize()).and_then(|x| x.checked_div(Decimal::ONE_HUNDRED)),
        field,
    )
}

/// The amount a discount takes off `base` (a line gross or the invoice subtotal), validated.
fn discount_amount(
    currency: Currency,
    discount: &Discount,
    base: Decimal,
    field: &str,
    base_name: &str,
) -> Result<Decimal, InvalidField> {
    match discount {
        Discount::None => Ok(zero(currency)),
        Discount::Percent(percent) => {
            let percent = check_percent(*percent, field)?;
            fit(currency, base.checked_mul(percent).and_then(|x| x.checked_div(Decimal::ONE_HUNDRED)), field)
        }
        Discount::Amount(amount) => {
            if *amount < Decimal::ZERO {
                return Err(InvalidField::new(field, "must not be negative"));
            }
            if amount.normalize().scale() > currency.minor_units() {
                return Err(InvalidField::new(field, minor_units_reason(currency)));
            }
            if *amount > base {
                return Err(InvalidField::new(
                    field,
                    format!("must not exceed {base_name}, {base} {}", currency.code()),
                ));
            }
            fit(currency, Some(*amount), field)
        }
    }
}

/// A percentage within 0..=100 with at most [`PERCENT_SCALE`] decimals, normalized.
fn check_percent(percent: Decimal, field: &str) -> Result<Decimal, InvalidField> {
    if percent < Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
        return Err(InvalidField::new(field, "must be a percentage between 0 and 100"));
    }
    let percent = percent.normalize();
    if percent.scale() > PERCENT_SCALE {
        return Err(InvalidField::new(field, decimals_reason(PERCENT_SCALE)));
    }
    Ok(percent)
}

/// A validated percentage in units of 10^-[`PERCENT_SCALE`] percent (16 % is 160 000).
fn percent_units(percent: Decimal) -> Option<u128> {
    let mut units = percent.normalize();
    units.rescale(PERCENT_SCALE);
    if units.scale() != PERCENT_SCALE || units != percent {
        return None;
    }
    u128::try_from(units.mantissa()).ok()
}

/// Line taxes summed by name, in first-seen order.
fn sum_taxes_by_name(currency: Currency, lines: &[LineTotals]) -> Result<Vec<(String, Decimal)>, InvalidField> {
    let mut taxes: Vec<(String, Decimal)> = Vec::new();
    for (name, amount) in lines.iter().flat_map(|line| line.taxes.iter()) {
        match taxes.iter_mut().find(|(seen, _)| seen == name) {
            Some((_, total)) => *total = fit(currency, total.checked_add(*amount), "lines")?,
            None => taxes.push((name.clone(), *amount)),
        }
    }
    Ok(taxes)
}

/// Split `total` minor units among `weights` by largest remainder (rule 8). `None` when the
/// total exceeds the sum of the weights (or is positive while they are all zero).
fn allocate(total: u128, weights: &[u128]) -> Option<Vec<u128>> {
    if total == 0 {
        return Some(vec![0; weights.len()]);
    }
    let weight_sum = weights.iter().try_fold(0_u128, |sum, weight| sum.checked_add(*weight))?;
    if total > weight_sum {
        return None;
    }
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (index, weight) in weights.iter().enumerate() {
        let (share, remainder) = mul_div_rem(total, *weight, weight_sum)?;
        shares.push(share);
        remainders.push((remainder, index));
    }
    let allocated = shares.iter().try_fold(0_u128, |sum, share| sum.checked_add(*share))?;
    // Fewer than the number of lines, since each floor falls short by less than one unit.
    let leftover = usize::try_from(total.checked_sub(allocated)?).ok()?;
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, index) in remainders.iter().take(leftover) {
        let share = shares.get_mut(*index)?;
        *share = share.checked_add(1)?;
    }
    Some(shares)
}

/// round(a × b / divisor), half up (half away from zero, as everything here is non-negative).
fn mul_div_round(a: u128, b: u128, divisor: u128) -> Option<u128> {
    let (quotient, remainder) = mul_div_rem(a, b, divisor)?;
    if remainder >= divisor.checked_sub(remainder)? { quotient.checked_add(1) } else { Some(quotient) }
}

/// Quotient and remainder of a × b / divisor, exact even when a × b does not fit in 128 bits.
/// `None` for a zero divisor, a divisor above 2^127 or a quotient that does not fit.
fn mul_div_rem(a: u128, b: u128, divisor: u128) -> Option<(u128, u128)> {
    if divisor == 0 || divisor > u128::MAX / 2 {
        return None;
    }
    // a × b = (whole × divisor + part) × b; part × b is worked out bit by bit modulo divisor,
    // keeping every intermediate below 2 × divisor.
    let whole = a.checked_div(divisor)?;
    let part = a.checked_rem(divisor)?;
    let mut quotient = 0_u128;
    let mut remainder = 0_u128;
    for bit in (0..u128::BITS).rev() {
        quotient = quotient.checked_mul(2)?;
        remainder = remainder.checked_mul(2)?;
        if remainder >= divisor {
            remainder = remainder.checked_sub(divisor)?;
            quotient = quotient.checked_add(1)?;
        }
        if (b >> bit) & 1 == 1 {
            remainder = remainder.checked_add(part)?;
            if remainder >= divisor {
                remainder = remainder.checked_sub(divisor)?;
                quotient = quotient.checked_add(1)?;
            }
        }
    }
    Some((whole.checked_mul(b)?.checked_add(quotient)?, remainder))
}

/// Round to minor units and check the amount fits [`Money`]; `None` (a checked operation that
/// overflowed) and out-of-range amounts are "too large" on `field`.
fn fit(currency: Currency, amount: Option<Decimal>, field: &str) -> Result<Decimal, InvalidField> {
    amount
        .and_then(|amount| Money::new(round_to_minor(amount, currency), currency).ok())
        .map(|money| money.amount())
        .ok_or_else(|| too_large(field))
}

/// Σ amounts, rounded and bounded like every other figure.
fn sum(currency: Currency, amounts: impl IntoIterator<Item = Decimal>, field: &str) -> Result<Decimal, InvalidField> {
    let total = amounts.into_iter().try_fold(zero(currency), |sum, amount| sum.checked_add(amount));
    fit(currency, total, field)
}

fn zero(currency: Currency) -> Decimal {
    Money::zero(currency).amount()
}

/// A non-negative figure (already at the currency's scale) as a count of minor units.
fn minor_units(currency: Currency, amount: Decimal) -> Option<u128> {
    if amount.scale() != currency.minor_units() {
        return None;
    }
    u128::try_from(amount.mantissa()).ok()
}

fn from_minor_units(currency: Currency, units: u128, field: &str) -> Result<Decimal, InvalidField> {
    let amount = i128::try_from(units)
        .ok()
        .and_then(|units| Decimal::try_from_i128_with_scale(units, currency.minor_units()).ok());
    fit(currency, amount, field)
}

fn too_large(field: &str) -> InvalidField {
    InvalidField::new(field, "is too large: amounts must stay below 10^18")
}

fn decimals_reason(max: u32) -> String {
    match max {
        1 => "must have at most 1 decimal place".to_owned(),
        n => format!("must have at most {n} decimal places"),
    }
}

fn minor_units_reason(currency: Currency) -> String {
    match currency.minor_units() {
        0 => format!("{currency} amounts are whole numbers, without decimal places"),
        1 => format!("{currency} amounts take at most 1 decimal place"),
        n => format!("{currency} amounts take at most {n} decimal places"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn cur(code: &str) -> Currency {
        Currency::from_code(code).unwrap()
    }

    fn excl(name: &str, rate: &str) -> TaxRate {
        TaxRate { name: name.to_owned(), rate_percent: d(rate), mode: TaxMode::Exclusive }
    }

    fn incl(name: &str, rate: &str) -> TaxRate {
        TaxRate { name: name.to_owned(), rate_percent: d(rate), mode: TaxMode::Inclusive }
    }

    fn pct(p: &str) -> Discount {
        Discount::Percent(d(p))
    }

    fn amt(a: &str) -> Discount {
        Discount::Amount(d(a))
    }

    fn line(quantity: &str, unit_price: &str, discount: Discount, taxes: Vec<TaxRate>) -> LineInput {
        LineInput {
            description: format!("{quantity} × {unit_price}"),
            quantity: d(quantity),
            unit_price: d(unit_price),
            discount,
            taxes,
        }
    }

    /// Expected line figures, written as they must print (scale included).
    struct Line {
        gross: &'static str,
        discount: &'static str,
        share: &'static str,
        net: &'static str,
        taxes: &'static [(&'static str, &'static str)],
        tax_total: &'static str,
        total: &'static str,
    }

    /// Expected invoice figures, written as they must print (scale included).
    struct Invoice {
        subtotal: &'static str,
        invoice_discount: &'static str,
        taxable: &'static str,
        taxes: &'static [(&'static str, &'static str)],
        tax_total: &'static str,
        total: &'static str,
    }

    struct Case {
        name: &'static str,
        currency: &'static str,
        lines: Vec<LineInput>,
        discount: Discount,
        expected_lines: Vec<Line>,
        expected: Invoice,
    }

    fn printed(taxes: &[(String, Decimal)]) -> Vec<(String, String)> {
        taxes.iter().map(|(name, amount)| (name.clone(), amount.to_string())).collect()
    }

    fn written(taxes: &[(&str, &str)]) -> Vec<(String, String)> {
        taxes.iter().map(|(name, amount)| ((*name).to_owned(), (*amount).to_owned())).collect()
    }

    /// What must hold for any computed invoice, whatever its inputs.
    fn assert_invariants(totals: &InvoiceTotals, context: &str) {
        let minor = totals.currency.minor_units();
        let total_of = |values: &mut dyn Iterator<Item = Decimal>| values.fold(Decimal::ZERO, |sum, x| sum + x);
        assert_eq!(totals.total, totals.taxable + totals.tax_total, "{context}: total = taxable + tax total");
        assert_eq!(totals.taxable, totals.subtotal - totals.invoice_discount, "{context}: taxable");
        assert_eq!(total_of(&mut totals.lines.iter().map(|l| l.total)), totals.total, "{context}: Σ line totals");
        assert_eq!(
            total_of(&mut totals.lines.iter().map(|l| l.invoice_discount_share)),
            totals.invoice_discount,
            "{context}: Σ shares"
        );
        assert_eq!(total_of(&mut totals.lines.iter().map(|l| l.net)), totals.taxable, "{context}: Σ final nets");
        assert_eq!(
            total_of(&mut totals.lines.iter().map(|l| l.tax_total)),
            totals.tax_total,
            "{context}: Σ line taxes"
        );
        assert_eq!(total_of(&mut totals.taxes.iter().map(|(_, a)| *a)), totals.tax_total, "{context}: Σ invoice taxes");
        let mut figures =
            vec![totals.subtotal, totals.invoice_discount, totals.taxable, totals.tax_total, totals.total];
        figures.extend(totals.taxes.iter().map(|(_, a)| *a));
        for l in &totals.lines {
            // Equal without inclusive taxes; an inclusive line's net also leaves its taxes out.
            assert!(l.net + l.invoice_discount_share <= l.gross - l.discount, "{context}: line breakdown");
            assert_eq!(l.total, l.net + l.tax_total, "{context}: line total");
            assert_eq!(l.tax_total, total_of(&mut l.taxes.iter().map(|(_, a)| *a)), "{context}: line tax total");
            assert!(l.net >= Decimal::ZERO && l.invoice_discount_share >= Decimal::ZERO, "{context}: signs");
            figures.extend([l.gross, l.discount, l.invoice_discount_share, l.net, l.tax_total, l.total]);
            figures.extend(l.taxes.iter().map(|(_, a)| *a));
        }
        for figure in figures {
            assert_eq!(figure.scale(), minor, "{context}: {figure} has the currency's scale");
        }
    }

    #[test]
    fn computes_hand_checked_invoices() {
        let cases = vec![
            Case {
                // 3 × 19.99 = 59.97; IVA 59.97 × 16 % = 9.5952 → 9.60; total 59.97 + 9.60 = 69.57.
                name: "MXN exclusive 16 % IVA",
                currency: "MXN",
                lines: vec![line("3", "19.99", Discount::None, vec![excl("IVA", "16")])],
                discount: Discount::None,
                expected_lines: vec![Line {
                    gross: "59.97",
                    discount: "0.00",
                    share: "0.00",
                    net: "59.97",
                    taxes: &[("IVA", "9.60")],
                    tax_total: "9.60",
                    total: "69.57",
                }],
                expected: Invoice {
                    subtotal: "59.97",
                    invoice_discount: "0.00",
                    taxable: "59.97",
                    taxes: &[("IVA", "9.60")],
                    tax_total: "9.60",
                    total: "69.57",
                },
            },
            Case {
                // 7 × 12.35 = 86.45; IVA 86.45 × 16 % = 13.832 → 13.83; IEPS 86.45 × 8 % = 6.916 →
                // 6.92; taxes 20.75; total 86.45 + 20.75 = 107.20.
                name: "several exclusive taxes on one line",
                currency: "MXN",
                lines: vec![line("7", "12.35", Discount::None, vec![excl("IVA", "16"), excl("IEPS", "8")])],
                discount: Discount::None,
                expected_lines: vec![Line {
                    gross: "86.45",
                    discount: "0.00",
                    share: "0.00",
                    net: "86.45",
                    taxes: &[("IVA", "13.83"), ("IEPS", "6.92")],
                    tax_total: "20.75",
                    total: "107.20",
                }],
                expected: Invoice {
                    subtotal: "86.45",
                    invoice_discount: "0.00",
                    taxable: "86.45",
                    taxes: &[("IVA", "13.83"), ("IEPS", "6.92")],
                    tax_total: "20.75",
                    total: "107.20",
                },
            },
            Case {
                // 116.00 with 16 % included: net = 116.00 × 100 / 116 = 100.00; IVA = 116.00 − 100.00
                // = 16.00; total 116.00.
                name: "inclusive 16 %, exact",
                currency: "MXN",
                lines: vec![line("1", "116", Discount::None, vec![incl("IVA", "16")])],
                discount: Discount::None,
                expected_lines: vec![Line {
                    gross: "116.00",
                    discount: "0.00",
                    share: "0.00",
                    net: "100.00",
                    taxes: &[("IVA", "16.00")],
                    tax_total: "16.00",
                    total: "116.00",
                }],
                expected: Invoice {
                    subtotal: "100.00",
                    invoice_discount: "0.00",
                    taxable: "100.00",
                    taxes: &[("IVA", "16.00")],
                    tax_total: "16.00",
                    total: "116.00",
                },
            },
            Case {
                // 10.00 with 16 % included: net = 10.00 × 100 / 116 = 8.6206… → 8.62; IVA = 10.00 −
                // 8.62 = 1.38; total 10.00.
                name: "inclusive 16 %, awkward",
                currency: "MXN",
                lines: vec![line("1", "10", Discount::None, vec![incl("IVA", "16")])],
                discount: Discount::None,
                expected_lines: vec![Line {
                    gross: "10.00",
                    discount: "0.00",
                    share: "0.00",
                    net: "8.62",
                    taxes: &[("IVA", "1.38")],
                    tax_total: "1.38",
                    total: "10.00",
                }],
                expected: Invoice {
                    subtotal: "8.62",
                    invoice_discount: "0.00",
                    taxable: "8.62",
                    taxes: &[("IVA", "1.38")],
                    tax_total: "1.38",
                    total: "10.00",
                },
            },
            Case {
                // 10.00 with 16 % + 8 % included, R = 24: net = 10.00 × 100 / 124 = 8.0645… → 8.06;
                // IVA = 8.06 × 16 % = 1.2896 → 1.29; IEPS (last) = 10.00 − 8.06 − 1.29 = 0.65
                // (nominally 8.06 × 8 % = 0.6448 → 0.64: the remainder keeps the price at 10.00).
                name: "two inclusive taxes, remainder on the last",
                currency: "MXN",
                lines: vec![line("1", "10", Discount::None, vec![incl("IVA", "16"), incl("IEPS", "8")])],
                discount: Discount::None,
                expected_lines: vec![Line {
                    gross: "10.00",
                    discount: "0.00",
                    share: "0.00",
                    net: "8.06",
                    taxes: &[("IVA", "1.29"), ("IEPS", "0.65")],
                    tax_total: "1.94",
                    total: "10.00",
                }],
                expected: Invoice {
                    subtotal: "8.06",
                    invoice_discount: "0.00",
                    taxable: "8.06",
                    taxes: &[("IVA", "1.29"), ("IEPS", "0.65")],
                    tax_total: "1.94",
                    total: "10.00",
                },
            },
            Case {
                // 3 × 33.33 = 99.99; 15 % of 99.99 = 14.9985 → 15.00; net 84.99; IVA 84.99 × 16 % =
                // 13.5984 → 13.60; total 84.99 + 13.60 = 98.59.
                name: "percent line discount",
                currency: "MXN",
                lines: vec![line("3", "33.33", pct("15"), vec![excl("IVA", "16")])],
                discount: Discount::None,
                expected_lines: vec![Line {
                    gross: "99.99",
                    discount: "15.00",
                    share: "0.00",
                    net: "84.99",
                    taxes: &[("IVA", "13.60")],
                    tax_total: "13.60",
                    total: "98.59",
                }],
                expected: Invoice {
                    subtotal: "84.99",
                    invoice_discount: "0.00",
                    taxable: "84.99",
                    taxes: &[("IVA", "13.60")],
                    tax_total: "13.60",
                    total: "98.59",
                },
            },
            Case {
                // 2 × 150.00 = 300.00; − 45.50 = 254.50; IVA 254.50 × 16 % = 40.72; total 295.22.
                name: "fixed line discount",
                currency: "MXN",
                lines: vec![line("2", "150", amt("45.5"), vec![excl("IVA", "16")])],
                discount: Discount::None,
                expected_lines: vec![Line {
                    gross: "300.00",
                    discount: "45.50",
                    share: "0.00",
                    net: "254.50",
                    taxes: &[("IVA", "40.72")],
                    tax_total: "40.72",
                    total: "295.22",
                }],
                expected: Invoice {
                    subtotal: "254.50",
                    invoice_discount: "0.00",
                    taxable: "254.50",
                    taxes: &[("IVA", "40.72")],
                    tax_total: "40.72",
                    total: "295.22",
                },
            },
            Case {
                // Nets 100.00 and 50.01, subtotal 150.01; 10 % = 15.001 → 15.00 = 1500 cents.
                // Exact shares: 1500 × 10000 / 15001 = 999 r 14001; 1500 × 5001 / 15001 = 500 r 1000.
                // Floors sum to 1499; the leftover cent goes to the larger remainder (line 0):
                // shares 10.00 and 5.00. Line 0: net 90.00, IVA 16 % = 14.40, total 104.40.
                // Line 1: net 45.01, IEPS 8 % = 3.6008 → 3.60, total 48.61.
                // Taxable 135.01; taxes 18.00; total 153.01 = 104.40 + 48.61.
                name: "invoice percent discount over two lines with different taxes",
                currency: "MXN",
                lines: vec![
                    line("1", "100", Discount::None, vec![excl("IVA", "16")]),
                    line("1", "50.01", Discount::None, vec![excl("IEPS", "8")]),
                ],
                discount: pct("10"),
                expected_lines: vec![
                    Line {
                        gross: "100.00",
                        discount: "0.00",
                        share: "10.00",
                        net: "90.00",
                        taxes: &[("IVA", "14.40")],
                        tax_total: "14.40",
                        total: "104.40",
                    },
                    Line {
                        gross: "50.01",
                        discount: "0.00",
                        share: "5.00",
                        net: "45.01",
                        taxes: &[("IEPS", "3.60")],
                        tax_total: "3.60",
                        total: "48.61",
                    },
                ],
                expected: Invoice {
                    subtotal: "150.01",
                    invoice_discount: "15.00",
                    taxable: "135.01",
                    taxes: &[("IVA", "14.40"), ("IEPS", "3.60")],
                    tax_total: "18.00",
                    total: "153.01",
                },
            },
            Case {
                // Line 0: 200.00, IVA 16 % exclusive, net 200.00. Line 1: 108.00 with IVA 8 %
                // included, net 108.00 × 100 / 108 = 100.00. Subtotal 300.00; fixed 50.00 = 5000 cents.
                // Shares: 5000 × 20000 / 30000 = 3333 r 10000; 5000 × 10000 / 30000 = 1666 r 20000;
                // leftover cent to line 1 (larger remainder): 33.33 and 16.67.
                // Line 0: net 166.67, IVA 166.67 × 16 % = 26.6672 → 26.67, total 193.34.
                // Line 1: net 83.33; price shrinks with the net: 108.00 × 83.33 / 100.00 = 89.9964 →
                // 90.00; IVA = 90.00 − 83.33 = 6.67; total 90.00.
                // Taxable 250.00; IVA 26.67 + 6.67 = 33.34; total 283.34 = 193.34 + 90.00.
                name: "invoice fixed discount over exclusive and inclusive lines",
                currency: "MXN",
                lines: vec![
                    line("1", "200", Discount::None, vec![excl("IVA", "16")]),
                    line("1", "108", Discount::None, vec![incl("IVA", "8")]),
                ],
                discount: amt("50"),
                expected_lines: vec![
                    Line {
                        gross: "200.00",
                        discount: "0.00",
                        share: "33.33",
                        net: "166.67",
                        taxes: &[("IVA", "26.67")],
                        tax_total: "26.67",
                        total: "193.34",
                    },
                    Line {
                        gross: "108.00",
                        discount: "0.00",
                        share: "16.67",
                        net: "83.33",
                        taxes: &[("IVA", "6.67")],
                        tax_total: "6.67",
                        total: "90.00",
                    },
                ],
                expected: Invoice {
                    subtotal: "300.00",
                    invoice_discount: "50.00",
                    taxable: "250.00",
                    taxes: &[("IVA", "33.34")],
                    tax_total: "33.34",
                    total: "283.34",
                },
            },
            Case {
                // 3 × 333 = 999; 10 % = 99.9 → 100; total 1099. No decimals at all.
                name: "JPY, no minor units",
                currency: "JPY",
                lines: vec![line("3", "333", Discount::None, vec![excl("JCT", "10")])],
                discount: Discount::None,
                expected_lines: vec![Line {
                    gross: "999",
                    discount: "0",
                    share: "0",
                    net: "999",
                    taxes: &[("JCT", "100")],
                    tax_total: "100",
                    total: "1099",
                }],
                expected: Invoice {
                    subtotal: "999",
                    invoice_discount: "0",
                    taxable: "999",
                    taxes: &[("JCT", "100")],
                    tax_total: "100",
                    total: "1099",
                },
            },
            Case {
                // 2 × 19.995 = 39.99; sales tax 8.875 % = 3.5491125 → 3.55; total 43.54.
                name: "USD, four-decimal unit price and a three-decimal rate",
                currency: "USD",
                lines: vec![line("2", "19.995", Discount::None, vec![excl("Sales tax", "8.875")])],
                discount: Discount::None,
                expected_lines: vec![Line {
                    gross: "39.99",
                    discount: "0.00",
                    share: "0.00",
                    net: "39.99",
                    taxes: &[("Sales tax", "3.55")],
                    tax_total: "3.55",
                    total: "43.54",
                }],
                expected: Invoice {
                    subtotal: "39.99",
                    invoice_discount: "0.00",
                    taxable: "39.99",
                    taxes: &[("Sales tax", "3.55")],
                    tax_total: "3.55",
                    total: "43.54",
                },
            },
            Case {
                // 3 × 1.2345 = 3.7035 → 3.704 (half away from zero); VAT 10 % = 0.3704 → 0.370;
                // total 4.074.
                name: "BHD, three minor units",
                currency: "BHD",
                lines: vec![line("3", "1.2345", Discount::None, vec![excl("VAT", "10")])],
                discount: Discount::None,
                expected_lines: vec![Line {
                    gross: "3.704",
                    discount: "0.000",
                    share: "0.000",
                    net: "3.704",
                    taxes: &[("VAT", "0.370")],
                    tax_total: "0.370",
                    total: "4.074",
                }],
                expected: Invoice {
                    subtotal: "3.704",
                    invoice_discount: "0.000",
                    taxable: "3.704",
                    taxes: &[("VAT", "0.370")],
                    tax_total: "0.370",
                    total: "4.074",
                },
            },
            Case {
                // Exact halves round away from zero (banker's rounding would go down each time):
                // line 0: 1 × 0.125 = 0.125 → 0.13, no taxes.
                // line 1: 10.50, VAT 5 % = 0.525 → 0.53; total 11.03.
                // line 2: 0.03 with 100 % included: net 0.03 × 100 / 200 = 0.015 → 0.02; X = 0.01.
                // Subtotal 0.13 + 10.50 + 0.02 = 10.65; taxes 0.54; total 11.19 = 0.13 + 11.03 + 0.03.
                name: "half away from zero at .5",
                currency: "MXN",
                lines: vec![
                    line("1", "0.125", Discount::None, vec![]),
                    line("1", "10.50", Discount::None, vec![excl("VAT", "5")]),
                    line("1", "0.03", Discount::None, vec![incl("X", "100")]),
                ],
                discount: Discount::None,
                expected_lines: vec![
                    Line {
                        gross: "0.13",
                        discount: "0.00",
                        share: "0.00",
                        net: "0.13",
                        taxes: &[],
                        tax_total: "0.00",
                        total: "0.13",
                    },
                    Line {
                        gross: "10.50",
                        discount: "0.00",
                        share: "0.00",
                        net: "10.50",
                        taxes: &[("VAT", "0.53")],
                        tax_total: "0.53",
                        total: "11.03",
                    },
                    Line {
                        gross: "0.03",
                        discount: "0.00",
                        share: "0.00",
                        net: "0.02",
                        taxes: &[("X", "0.01")],
                        tax_total: "0.01",
                        total: "0.03",
                    },
                ],
                expected: Invoice {
                    subtotal: "10.65",
                    invoice_discount: "0.00",
                    taxable: "10.65",
                    taxes: &[("VAT", "0.53"), ("X", "0.01")],
                    tax_total: "0.54",
                    total: "11.19",
                },
            },
            Case {
                // 2.5 × 123.4567 = 308.64175 → 308.64; IVA 308.64 × 16 % = 49.3824 → 49.38;
                // total 358.02.
                name: "fractional quantity",
                currency: "MXN",
                lines: vec![line("2.5", "123.4567", Discount::None, vec![excl("IVA", "16")])],
                discount: Discount::None,
                expected_lines: vec![Line {
                    gross: "308.64",
                    discount: "0.00",
                    share: "0.00",
                    net: "308.64",
                    taxes: &[("IVA", "49.38")],
                    tax_total: "49.38",
                    total: "358.02",
                }],
                expected: Invoice {
                    subtotal: "308.64",
                    invoice_discount: "0.00",
                    taxable: "308.64",
                    taxes: &[("IVA", "49.38")],
                    tax_total: "49.38",
                    total: "358.02",
                },
            },
            Case {
                // Line 0: 5 × 0.00 = 0.00, IVA 0.00. Line 1: 10.00. Subtotal 10.00; 10 % = 1.00, all
                // of it on line 1 (line 0 weighs nothing): net 9.00, IVA 1.44, total 10.44.
                name: "zero-price line with an invoice discount",
                currency: "MXN",
                lines: vec![
                    line("5", "0", Discount::None, vec![excl("IVA", "16")]),
                    line("1", "10", Discount::None, vec![excl("IVA", "16")]),
                ],
                discount: pct("10"),
                expected_lines: vec![
                    Line {
                        gross: "0.00",
                        discount: "0.00",
                        share: "0.00",
                        net: "0.00",
                        taxes: &[("IVA", "0.00")],
                        tax_total: "0.00",
                        total: "0.00",
                    },
                    Line {
                        gross: "10.00",
                        discount: "0.00",
                        share: "1.00",
                        net: "9.00",
                        taxes: &[("IVA", "1.44")],
                        tax_total: "1.44",
                        total: "10.44",
                    },
                ],
                expected: Invoice {
                    subtotal: "10.00",
                    invoice_discount: "1.00",
                    taxable: "9.00",
                    taxes: &[("IVA", "1.44")],
                    tax_total: "1.44",
                    total: "10.44",
                },
            },
            Case {
                // 116.00 with 16 % included, invoice 10 %: subtotal 100.00, discount 10.00, all on the
                // one line: net 90.00; price 116.00 × 90.00 / 100.00 = 104.40; IVA = 104.40 − 90.00
                // = 14.40: exactly 10 % off the printed price.
                name: "invoice percent discount on an inclusive line",
                currency: "MXN",
                lines: vec![line("1", "116", Discount::None, vec![incl("IVA", "16")])],
                discount: pct("10"),
                expected_lines: vec![Line {
                    gross: "116.00",
                    discount: "0.00",
                    share: "10.00",
                    net: "90.00",
                    taxes: &[("IVA", "14.40")],
                    tax_total: "14.40",
                    total: "104.40",
                }],
                expected: Invoice {
                    subtotal: "100.00",
                    invoice_discount: "10.00",
                    taxable: "90.00",
                    taxes: &[("IVA", "14.40")],
                    tax_total: "14.40",
                    total: "104.40",
                },
            },
        ];

        for case in cases {
            let totals = compute(cur(case.currency), &case.lines, &case.discount)
                .unwrap_or_else(|e| panic!("{}: unexpected error {e}", case.name));
            let name = case.name;
            assert_eq!(totals.lines.len(), case.expected_lines.len(), "{name}");
            for (i, (got, want)) in totals.lines.iter().zip(&case.expected_lines).enumerate() {
                assert_eq!(got.gross.to_string(), want.gross, "{name}: line {i} gross");
                assert_eq!(got.discount.to_string(), want.discount, "{name}: line {i} discount");
                assert_eq!(got.invoice_discount_share.to_string(), want.share, "{name}: line {i} share");
                assert_eq!(got.net.to_string(), want.net, "{name}: line {i} net");
                assert_eq!(printed(&got.taxes), written(want.taxes), "{name}: line {i} taxes");
                assert_eq!(got.tax_total.to_string(), want.tax_total, "{name}: line {i} tax total");
                assert_eq!(got.total.to_string(), want.total, "{name}: line {i} total");
            }
            let want = &case.expected;
            assert_eq!(totals.subtotal.to_string(), want.subtotal, "{name}: subtotal");
            assert_eq!(totals.invoice_discount.to_string(), want.invoice_discount, "{name}: invoice discount");
            assert_eq!(totals.taxable.to_string(), want.taxable, "{name}: taxable");
            assert_eq!(printed(&totals.taxes), written(want.taxes), "{name}: taxes");
            assert_eq!(totals.tax_total.to_string(), want.tax_total, "{name}: tax total");
            assert_eq!(totals.total.to_string(), want.total, "{name}: total");
            assert_eq!(totals.currency, cur(case.currency), "{name}: currency");
            assert_invariants(&totals, name);
        }
    }

    #[test]
    fn refuses_invalid_input_naming_the_field() {
        let iva = || vec![excl("IVA", "16")];
        let one = |discount: Discount, taxes: Vec<TaxRate>| vec![line("1", "10", discount, taxes)];
        let huge = "79228162514264337593543950335";
        let cases: Vec<(&str, Vec<LineInput>, Discount, &str, &str)> = vec![
            // (case, lines, invoice discount, field, reason fragment)
            ("no lines", vec![], Discount::None, "lines", "at least one line"),
            ("501 lines", vec![line("1", "1", Discount::None, vec![]); 501], Discount::None, "lines", "at most 500"),
            (
                "negative quantity",
                vec![line("-1", "10", Discount::None, iva())],
                Discount::None,
                "lines[0].quantity",
                "must be greater than zero",
            ),
            (
                "zero quantity on the second line",
                vec![line("1", "10", Discount::None, iva()), line("0", "10", Discount::None, iva())],
                Discount::None,
                "lines[1].quantity",
                "must be greater than zero",
            ),
            (
                "quantity with 7 decimals",
                vec![line("1.0000001", "10", Discount::None, iva())],
                Discount::None,
                "lines[0].quantity",
                "at most 6 decimal places",
            ),
            (
                "unit price with 5 decimals",
                vec![line("1", "1.23456", Discount::None, iva())],
                Discount::None,
                "lines[0].unit_price",
                "at most 4 decimal places",
            ),
            (
                "negative unit price",
                vec![line("1", "-0.01", Discount::None, iva())],
                Discount::None,
                "lines[0].unit_price",
                "must not be negative",
            ),
            (
                "discount over 100 %",
                one(pct("100.01"), iva()),
                Discount::None,
                "lines[0].discount",
                "between 0 and 100",
            ),
            ("negative percent", one(pct("-1"), iva()), Discount::None, "lines[0].discount", "between 0 and 100"),
            ("percent with 5 decimals", one(pct("1.00001"), iva()), Discount::None, "lines[0].discount", "at most 4"),
            ("amount over the line", one(amt("10.01"), iva()), Discount::None, "lines[0].discount", "must not exceed"),
            ("negative amount", one(amt("-1"), iva()), Discount::None, "lines[0].discount", "must not be negative"),
            ("amount in tenths of a cent", one(amt("1.005"), iva()), Discount::None, "lines[0].discount", "at most 2"),
            (
                "mixed inclusive and exclusive",
                one(Discount::None, vec![excl("IVA", "16"), incl("IEPS", "8")]),
                Discount::None,
                "lines[0].taxes",
                "cannot mix tax-inclusive and tax-exclusive rates",
            ),
            (
                "rate over 100",
                one(Discount::None, vec![excl("IVA", "16"), excl("X", "100.5")]),
                Discount::None,
                "lines[0].taxes[1].rate_percent",
                "between 0 and 100",
            ),
            (
                "negative rate",
                one(Discount::None, vec![incl("IVA", "-16")]),
                Discount::None,
                "lines[0].taxes[0].rate_percent",
                "between 0 and 100",
            ),
            (
                "blank tax name",
                one(Discount::None, vec![excl(" ", "16")]),
                Discount::None,
                "lines[0].taxes[0].name",
                "required",
            ),
            ("invoice percent over 100", one(Discount::None, iva()), pct("101"), "discount", "between 0 and 100"),
            (
                "invoice amount over subtotal",
                one(amt("1"), iva()),
                amt("9.01"),
                "discount",
                "must not exceed the subtotal",
            ),
            ("invoice amount negative", one(Discount::None, iva()), amt("-0.01"), "discount", "must not be negative"),
            (
                "quantity × price overflows Decimal",
                vec![line(huge, "2", Discount::None, iva())],
                Discount::None,
                "lines[0].unit_price",
                "is too large",
            ),
            (
                "gross reaches 10^18",
                vec![line("1000000", "1000000000000", Discount::None, iva())],
                Discount::None,
                "lines[0].unit_price",
                "is too large",
            ),
            (
                "line taxes reach 10^18",
                vec![line("1", "600000000000000000", Discount::None, vec![excl("A", "100"), excl("B", "100")])],
                Discount::None,
                "lines[0].taxes",
                "is too large",
            ),
            (
                "subtotal reaches 10^18",
                vec![line("1", "600000000000000000", Discount::None, vec![]); 2],
                Discount::None,
                "lines",
                "is too large",
            ),
        ];
        for (name, lines, discount, field, fragment) in cases {
            let err = compute(Currency::MXN, &lines, &discount).expect_err(name);
            assert_eq!(err.field, field, "{name}: {err}");
            assert!(err.reason.contains(fragment), "{name}: {:?} lacks {fragment:?}", err.reason);
        }
        let err = compute(cur("JPY"), &one(amt("0.5"), vec![]), &Discount::None).unwrap_err();
        assert_eq!(err.reason, "JPY amounts are whole numbers, without decimal places");
    }

    #[test]
    fn whole_discounts_and_trailing_zeros() {
        // A 100 % line discount leaves nothing to tax; trailing zeros are not decimals.
        let lines = vec![
            line("1.0000000000", "10.000000", pct("100.000000"), vec![excl("IVA", "16.00000")]),
            line("2", "5", Discount::None, vec![excl("IVA", "16")]),
        ];
        let totals = compute(Currency::MXN, &lines, &amt("10.000")).unwrap();
        // Line 0 net 0.00, line 1 net 10.00: the whole 10.00 invoice discount lands on line 1.
        assert_eq!(totals.lines.iter().map(|l| l.net.to_string()).collect::<Vec<_>>(), ["0.00", "0.00"]);
        assert_eq!(totals.total.to_string(), "0.00");
        assert_invariants(&totals, "whole discounts");
    }

    #[test]
    fn allocation_is_exact_largest_remainder() {
        // 100 units over three equal weights of 100: 33 r 100 each; the leftover unit goes to the
        // first.
        assert_eq!(allocate(100, &[100, 100, 100]), Some(vec![34, 33, 33]));
        assert_eq!(allocate(301, &[100, 100, 100]), None);
        // 10 over weights 1, 2, 7 (sum 10): exact, no leftover.
        assert_eq!(allocate(10, &[1, 2, 7]), Some(vec![1, 2, 7]));
        // 5 over 3, 3, 4 (sum 10): 1.5, 1.5, 2.0 → floors 1, 1, 2; one leftover to the first tie.
        assert_eq!(allocate(5, &[3, 3, 4]), Some(vec![2, 1, 2]));
        assert_eq!(allocate(0, &[0, 0]), Some(vec![0, 0]));
        assert_eq!(allocate(1, &[0, 0]), None);
        // Products beyond 128 bits stay exact.
        let big = 10_u128.pow(30);
        assert_eq!(mul_div_rem(big, big, big), Some((big, 0)));
        assert_eq!(mul_div_rem(big + 1, big, big + 2), Some((big - 1, 2)));
        assert_eq!(mul_div_round(15, 1, 10), Some(2));
        assert_eq!(mul_div_round(14, 1, 10), Some(1));
        assert_eq!(mul_div_rem(1, 1, 0), None);
    }

    /// Deterministic pseudo-random invoices: whatever the inputs, either a field error or figures
    /// that satisfy every invariant.
    #[test]
    fn invariants_hold_for_generated_invoices() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |bound: u64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % bound
        };
        let currencies = ["MXN", "JPY", "BHD", "CLF", "USD"];
        let mut computed = 0;
        for round in 0..400 {
            let currency = cur(currencies[usize::try_from(next(5)).unwrap()]);
            let line_count = next(6) + 1;
            let mut lines = Vec::new();
            for _ in 0..line_count {
                let quantity = Decimal::new(i64::try_from(next(100_000) + 1).unwrap(), u32::try_from(next(4)).unwrap());
                let unit_price =
                    Decimal::new(i64::try_from(next(10_000_000)).unwrap(), u32::try_from(next(5)).unwrap());
                let discount = match next(3) {
                    0 => Discount::None,
                    1 => Discount::Percent(Decimal::new(i64::try_from(next(10_001)).unwrap(), 2)),
                    _ => Discount::Amount(Decimal::new(i64::try_from(next(1_000)).unwrap(), 0)),
                };
                let mode = if next(2) == 0 { TaxMode::Exclusive } else { TaxMode::Inclusive };
                let taxes = (0..next(4))
                    .map(|t| TaxRate {
                        name: ["IVA", "IEPS", "ISH"][usize::try_from(t).unwrap()].to_owned(),
                        rate_percent: Decimal::new(i64::try_from(next(1_000_001)).unwrap(), 4),
                        mode,
                    })
                    .collect();
                lines.push(LineInput { description: String::new(), quantity, unit_price, discount, taxes });
            }
            let invoice_discount = match next(3) {
                0 => Discount::None,
                1 => Discount::Percent(Decimal::new(i64::try_from(next(10_001)).unwrap(), 2)),
                _ => Discount::Amount(Decimal::new(i64::try_from(next(100)).unwrap(), 0)),
            };
            if let Ok(totals) = compute(currency, &lines, &invoice_discount) {
                assert_invariants(&totals, &format!("round {round}"));
                computed += 1;
            }
        }
        assert!(computed > 200, "only {computed} invoices computed");
    }

    /// Extreme values in every position: never a panic, and anything computed is consistent.
    #[test]
    fn no_panic_on_extreme_values() {
        let values = [
            Decimal::MAX,
            Decimal::MIN,
            Decimal::ZERO,
            -Decimal::ZERO,
            Decimal::ONE,
            Decimal::new(1, 28),
            Decimal::new(-1, 28),
            Decimal::ONE_HUNDRED,
            d("100.0001"),
            d("999999999999999999.9999"),
            d("0.000001"),
            d("0.5"),
        ];
        let currencies = [Currency::MXN, cur("JPY"), cur("BHD"), cur("CLF")];
        for currency in currencies {
            for quantity in values {
                for unit_price in values {
                    for (k, percent) in values.iter().enumerate() {
                        let discount =
                            if k % 2 == 0 { Discount::Percent(*percent) } else { Discount::Amount(*percent) };
                        let mode = if k % 3 == 0 { TaxMode::Inclusive } else { TaxMode::Exclusive };
                        let taxes = vec![
                            TaxRate { name: "A".to_owned(), rate_percent: *percent, mode },
                            TaxRate { name: "B".to_owned(), rate_percent: Decimal::ONE_HUNDRED, mode },
                        ];
                        let lines = vec![
                            LineInput { description: String::new(), quantity, unit_price, discount, taxes },
                            line("1", "1", Discount::None, vec![]),
                        ];
                        for invoice_discount in [Discount::Percent(*percent), Discount::Amount(*percent)] {
                            if let Ok(totals) = compute(currency, &lines, &invoice_discount) {
                                assert_invariants(&totals, "extremes");
                            }
                        }
                    }
                }
            }
        }
    }
}

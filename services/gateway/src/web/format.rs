//! How the pages write money and dates: amounts as the services send them (already rounded to
//! the currency's minor units), grouped for reading in the person's language.

use cobro_proto::common::v1::Money;

use super::i18n::Language;

/// "1,234.50 MXN" in English, "1.234,50 MXN" in Spanish; empty for no amount.
pub fn money(amount: Option<&Money>, lang: Language) -> String {
    match amount {
        Some(m) if !m.amount.is_empty() => format!("{} {}", number(&m.amount, lang), m.currency),
        _ => String::new(),
    }
}

/// A plain decimal string ("-1234.5") grouped in thousands for `lang`. Anything that is not a
/// plain decimal comes back unchanged rather than mangled.
pub fn number(amount: &str, lang: Language) -> String {
    let (sign, digits) = amount.strip_prefix('-').map_or(("", amount), |rest| ("-", rest));
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return amount.to_owned();
    }
    let (group, point) = match lang {
        Language::Es => ('.', ','),
        Language::En => (',', '.'),
    };
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(group);
        }
        grouped.push(digit);
    }
    if fraction.is_empty() { format!("{sign}{grouped}") } else { format!("{sign}{grouped}{point}{fraction}") }
}

/// An ISO date ("2026-12-05") as people write it: "05/12/2026" in Spanish, "Dec 5, 2026" in
/// English. Anything else comes back unchanged.
pub fn date(iso: &str, lang: Language) -> String {
    let Ok(day) = chrono::NaiveDate::parse_from_str(iso, "%Y-%m-%d") else { return iso.to_owned() };
    match lang {
        Language::Es => day.format("%d/%m/%Y").to_string(),
        Language::En => day.format("%b %-d, %Y").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_per_language_and_keep_their_decimals() {
        let m = Money { currency: "MXN".into(), amount: "1234567.50".into() };
        assert_eq!(money(Some(&m), Language::En), "1,234,567.50 MXN");
        assert_eq!(money(Some(&m), Language::Es), "1.234.567,50 MXN");
        assert_eq!(number("-1000", Language::En), "-1,000");
        assert_eq!(number("999.9", Language::En), "999.9");
        assert_eq!(number("0.05", Language::Es), "0,05");
        assert_eq!(number("1e5", Language::En), "1e5");
        assert_eq!(money(None, Language::En), "");
    }

    #[test]
    fn dates_read_naturally() {
        assert_eq!(date("2026-12-05", Language::Es), "05/12/2026");
        assert_eq!(date("2026-12-05", Language::En), "Dec 5, 2026");
        assert_eq!(date("", Language::En), "");
    }
}

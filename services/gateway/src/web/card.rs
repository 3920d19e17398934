//! A new card as a form typed it, checked before it goes to payments: the field at fault is
//! named and nothing of the card is ever echoed. Payments checks the number itself (Luhn,
//! expiry); this only refuses what is not a card form at all.

use cobro_proto::payments::v1::NewCard;

use super::i18n::Language;

/// The card, or the field at fault and why, in `lang`.
pub fn new_card(
    lang: Language,
    pan: &str,
    exp_month: &str,
    exp_year: &str,
    holder: &str,
) -> Result<NewCard, (&'static str, &'static str)> {
    let pick = |es: &'static str, en: &'static str| if lang == Language::Es { es } else { en };
    let required = pick("es obligatorio", "is required");
    let not_number = pick("debe ser un número", "must be a number");
    let pan: String = pan.chars().filter(char::is_ascii_digit).collect();
    let holder = holder.trim();
    if pan.is_empty() {
        return Err(("pan", required));
    }
    let Some(month) = number(exp_month) else { return Err(("exp_month", not_number)) };
    let Some(year) = number(exp_year) else { return Err(("exp_year", not_number)) };
    if holder.is_empty() {
        return Err(("holder_name", required));
    }
    // "31" on a card means 2031.
    let year = if year < 100 { year + 2000 } else { year };
    Ok(NewCard { pan, exp_month: month, exp_year: year, holder_name: holder.to_owned() })
}

fn number(value: &str) -> Option<u32> {
    let value = value.trim();
    if value.is_empty() || value.len() > 4 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_card_form_names_the_field_at_fault_and_reads_short_years() {
        let card = new_card(Language::En, "4242 4242 4242 4242", "12", "31", " Ana ").unwrap();
        assert_eq!(
            (card.pan.as_str(), card.exp_month, card.exp_year, card.holder_name.as_str()),
            ("4242424242424242", 12, 2031, "Ana")
        );
        assert_eq!(new_card(Language::En, "", "12", "2031", "Ana").unwrap_err().0, "pan");
        assert_eq!(
            new_card(Language::Es, "4242", "diciembre", "2031", "Ana").unwrap_err(),
            ("exp_month", "debe ser un número")
        );
        assert_eq!(new_card(Language::En, "4242", "12", "20311", "Ana").unwrap_err().0, "exp_year");
        assert_eq!(new_card(Language::En, "4242", "12", "2031", " ").unwrap_err().0, "holder_name");
    }
}

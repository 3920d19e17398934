//! ISO 11649 creditor references (`RF` + two check digits + up to 21 alphanumerics) and the
//! ISO 7064 mod 97-10 they share with IBANs.

/// ISO 7064 mod 97-10 of a text of digits and letters (letters count as 10..35), `None` when
/// it holds anything else.
pub fn mod97(text: &str) -> Option<u32> {
    let mut rest: u32 = 0;
    for c in text.chars() {
        let value = c.to_ascii_uppercase().to_digit(36)?;
        let factor = if value >= 10 { 100 } else { 10 };
        rest = (rest * factor + value) % 97;
    }
    Some(rest)
}

/// The creditor reference for a body of up to 21 alphanumerics.
pub fn rf_reference(body: &str) -> String {
    let rest = mod97(&format!("{body}RF00")).unwrap_or(0);
    format!("RF{:02}{body}", 98 - rest)
}

/// Whether a compact text (uppercase, no spaces) is a valid creditor reference.
pub fn valid_rf(reference: &str) -> bool {
    let len = reference.len();
    if !(5..=25).contains(&len) || !reference.starts_with("RF") || !reference.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return false;
    }
    match (reference.get(2..4), reference.get(4..), reference.get(..4)) {
        (Some(digits), Some(body), Some(head)) if digits.chars().all(|c| c.is_ascii_digit()) => {
            mod97(&format!("{body}{head}")) == Some(1)
        }
        _ => false,
    }
}

//! Recipient checks the API runs before storing a contact, and the channels run again before
//! sending (stored data may predate a rule).

/// RFC 5321's limit on a forward path, which bounds the whole address.
const MAX_EMAIL_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;
const MAX_DOMAIN_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// An email address in the normalized form Cobro stores and sends to: surrounding whitespace
/// trimmed, domain lowercased (the local part is case-sensitive by RFC 5321, so it is kept).
///
/// Deliberately narrower than RFC 5322: ASCII only (international domains in punycode), a
/// dot-atom local part (no quoted strings or comments), exactly one `@`, a domain name with at
/// least one dot (no address literals), at most 254 characters.
pub fn check_email(raw: &str) -> Result<String, &'static str> {
    let address = raw.trim();
    if address.is_empty() {
        return Err("the email address is empty");
    }
    if address.len() > MAX_EMAIL_LEN {
        return Err("the email address is longer than 254 characters");
    }
    if !address.is_ascii() {
        return Err("the email address must be ASCII (write international domains in punycode)");
    }
    if address.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err("the email address contains spaces or control characters");
    }
    let Some((local, domain)) = address.split_once('@') else {
        return Err("the email address has no @");
    };
    if domain.contains('@') {
        return Err("the email address has more than one @");
    }
    check_local_part(local)?;
    let domain = domain.to_ascii_lowercase();
    check_domain(&domain)?;
    Ok(format!("{local}@{domain}"))
}

fn check_local_part(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("the email address has nothing before the @");
    }
    if local.len() > MAX_LOCAL_LEN {
        return Err("the part before the @ is longer than 64 characters");
    }
    // RFC 5322 atext plus dots; quoted local parts are legal but not worth their ambiguity.
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    if !local.bytes().all(|b| atext(b) || b == b'.') {
        return Err("the part before the @ contains characters an address cannot have");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the part before the @ has a misplaced dot");
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.is_empty() {
        return Err("the email address has no domain after the @");
    }
    if domain.len() > MAX_DOMAIN_LEN {
        return Err("the email domain is longer than 253 characters");
    }
    if !domain.contains('.') {
        return Err("the email domain must contain a dot");
    }
    let mut last = "";
    for label in domain.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err("the email domain has an empty or overlong label");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err("the email domain contains characters a domain cannot have");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label of the email domain starts or ends with a dash");
        }
        last = label;
    }
    // No top-level domain is numeric; an all-digit one means an IP address was typed.
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the email domain must be a name, not an IP address");
    }
    Ok(())
}

/// A phone number in E.164 form (`+` and 8–15 digits, no leading zero in the country code).
/// Spaces, dashes and parentheses people type are removed; anything else is refused rather than
/// guessed (a national number without a country code cannot be routed).
pub fn check_phone(raw: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(16);
    for c in raw.trim().chars() {
        match c {
            ' ' | '-' | '(' | ')' => {}
            '+' if out.is_empty() => out.push('+'),
            '+' => return Err("the phone number may have a + only at the start"),
            '0'..='9' => out.push(c),
            _ => return Err("the phone number may contain only digits, spaces, dashes, parentheses and a leading +"),
        }
    }
    let Some(digits) = out.strip_prefix('+') else {
        return Err("the phone number must start with + and the country code (E.164)");
    };
    if !(8..=15).contains(&digits.len()) {
        return Err("the phone number must have 8 to 15 digits after the +");
    }
    if digits.starts_with('0') {
        return Err("the country code of the phone number cannot start with 0");
    }
    Ok(out)
}

/// A phone number reduced to its last 4 digits (`***0001`), the most an error or log may show.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits.get(digits.len().saturating_sub(4)..).unwrap_or_default().iter().collect();
    if digits.len() <= 4 { "***".to_owned() } else { format!("***{tail}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_masked_to_the_last_four_digits() {
        assert_eq!(mask_phone("+15005550006"), "***0006");
        assert_eq!(mask_phone("+1 (500) 555-0006"), "***0006");
        assert_eq!(mask_phone("1234"), "***");
        assert_eq!(mask_phone(""), "***");
    }
}

//! Shape checks for what people type: emails, slugs, names, locales, time zones. Each failure
//! names the request field so the caller can point at it.

use cobro_kit::error::InvalidField;

pub const MAX_EMAIL_LEN: usize = 254;
pub const MAX_NAME_LEN: usize = 200;

/// A required single-line text: trimmed, 1..=max characters, no control characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, InvalidField> {
    cobro_kit::error::text_field(field, value, max, true)
}

/// An email address, normalized to lower case. Deliberately simple (one `@`, a dotted domain,
/// no spaces or quotes): it must be deliverable, not every RFC 5322 oddity.
pub fn email(field: &str, value: &str) -> Result<String, InvalidField> {
    let value = value.trim();
    if value.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    if value.len() > MAX_EMAIL_LEN {
        return Err(InvalidField::new(field, format!("must be at most {MAX_EMAIL_LEN} characters")));
    }
    let invalid = || InvalidField::new(field, "must be an email address like name@example.com");
    let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    if local_ok && domain_ok { Ok(value.to_ascii_lowercase()) } else { Err(invalid()) }
}

/// A tenant slug: what staff type at sign-in. 3..=63 of a-z, 0-9 and inner hyphens.
pub fn slug(field: &str, value: &str) -> Result<String, InvalidField> {
    let value = value.trim();
    if value.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    let ok = (3..=63).contains(&value.len())
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(InvalidField::new(field, "must be 3 to 63 characters of a-z, 0-9 and inner hyphens"))
    }
}

/// A BCP 47 language tag in the common `ll` / `ll-RR` / `ll-Scrp-RR` shapes, normalized
/// (`es-mx` -> `es-MX`).
pub fn locale(field: &str, value: &str) -> Result<String, InvalidField> {
    let value = value.trim();
    if value.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    let invalid = || InvalidField::new(field, "must be a language tag like es-MX or en");
    let parts: Vec<&str> = value.split(['-', '_']).collect();
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let alpha = part.chars().all(|c| c.is_ascii_alphabetic());
        let digits = part.chars().all(|c| c.is_ascii_digit());
        match (i, part.len()) {
            (0, 2..=3) if alpha => out.push(part.to_ascii_lowercase()),
            (1.., 4) if alpha => {
                // Title case: "Hant".
                let script: String = part
                    .chars()
                    .enumerate()
                    .map(|(i, c)| if i == 0 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                    .collect();
                out.push(script);
            }
            (1.., 2) if alpha => out.push(part.to_ascii_uppercase()),
            (1.., 3) if digits => out.push((*part).to_owned()),
            _ => return Err(invalid()),
        }
    }
    if out.len() > 3 {
        return Err(invalid());
    }
    Ok(out.join("-"))
}

/// An IANA time zone name ("America/Mexico_City", "UTC"). Checked for shape, since the zone
/// database itself is not bundled here; the services that compute dates load it.
pub fn timezone(field: &str, value: &str) -> Result<String, InvalidField> {
    let value = value.trim();
    if value.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    let ok = value.len() <= 64
        && value.split('/').all(|part| {
            !part.is_empty()
                && part.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
        })
        && (value.contains('/') || matches!(value, "UTC" | "GMT" | "Etc/UTC"));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(InvalidField::new(field, "must be an IANA time zone like America/Mexico_City"))
    }
}

/// A required secret-ish string (password, token) with a size bound, checked before any work.
pub fn present(field: &str, value: &str, max_bytes: usize) -> Result<(), InvalidField> {
    if value.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    if value.len() > max_bytes {
        return Err(InvalidField::new(field, format!("must be at most {max_bytes} bytes")));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email("email", "  Ana.Lopez@Acme.MX ").unwrap(), "ana.lopez@acme.mx");
        assert!(email("email", "a+tag@sub.example.com").is_ok());
        for bad in [
            "",
            "plain",
            "@acme.mx",
            "ana@",
            "ana@acme",
            "ana@@acme.mx",
            "ana lopez@acme.mx",
            "ana@acme..mx",
            ".ana@acme.mx",
            "ana@-acme.mx",
            "ana@acme.m",
            "ána@acme.mx",
            "ana@acme.123",
        ] {
            assert_eq!(email("owner_email", bad).unwrap_err().field, "owner_email", "{bad:?}");
        }
        let long = format!("{}@acme.mx", "a".repeat(300));
        assert!(email("email", &long).unwrap_err().reason.contains("254"));
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("slug", "acme-mx").unwrap(), "acme-mx");
        for bad in ["", "ab", "Acme", "-acme", "acme-", "acme mx", "acmé", &"a".repeat(64)] {
            assert_eq!(slug("slug", bad).unwrap_err().field, "slug", "{bad:?}");
        }
    }

    #[test]
    fn texts() {
        assert_eq!(text("name", "  Acme  ", 10).unwrap(), "Acme");
        assert_eq!(text("name", "   ", 10).unwrap_err().reason, "is required");
        assert!(text("name", &"x".repeat(11), 10).unwrap_err().reason.contains("10"));
        assert!(text("name", "a\u{0}b", 10).is_err());
        // Counted in characters, not bytes.
        assert!(text("name", "ñañañañaña", 10).is_ok());
    }

    #[test]
    fn locales() {
        assert_eq!(locale("default_locale", "es-mx").unwrap(), "es-MX");
        assert_eq!(locale("default_locale", "en").unwrap(), "en");
        assert_eq!(locale("default_locale", "zh-hant-tw").unwrap(), "zh-Hant-TW");
        assert_eq!(locale("default_locale", "es_419").unwrap(), "es-419");
        for bad in ["", "e", "english", "es-MEX1", "es-", "12-MX", "és-MX"] {
            assert_eq!(locale("default_locale", bad).unwrap_err().field, "default_locale", "{bad:?}");
        }
    }

    #[test]
    fn timezones() {
        assert!(timezone("tz", "America/Mexico_City").is_ok());
        assert!(timezone("tz", "America/Argentina/Buenos_Aires").is_ok());
        assert!(timezone("tz", "UTC").is_ok());
        assert!(timezone("tz", "Etc/GMT+6").is_ok());
        for bad in ["", "Mexico", "America/", "/UTC", "America//X", "America/Mexico City", "../etc/passwd"] {
            assert_eq!(timezone("tz", bad).unwrap_err().field, "tz", "{bad:?}");
        }
    }

    #[test]
    fn present_bounds_size() {
        assert!(present("password", "", 10).is_err());
        assert!(present("password", &"x".repeat(11), 10).is_err());
        assert!(present("password", "x", 10).is_ok());
    }
}

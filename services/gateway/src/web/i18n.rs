//! The language a person reads: their choice (a cookie set by the language switch), else the
//! browser's `Accept-Language` by preference, else Spanish.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    Es,
    En,
}

/// The cookie the language switch sets.
pub const COOKIE: &str = "cobro_lang";

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::Es => "es",
            Language::En => "en",
        }
    }

    /// `es`, `es-MX`, `EN-us`, ...; `None` for languages Cobro does not speak.
    pub fn parse(tag: &str) -> Option<Language> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "es" => Some(Language::Es),
            "en" => Some(Language::En),
            _ => None,
        }
    }

    /// The best supported language of an `Accept-Language` header, by its q-values (ties keep
    /// the header's order); `None` when it names none Cobro speaks.
    pub fn from_accept_language(header: &str) -> Option<Language> {
        let mut best: Option<(u16, Language)> = None;
        for part in header.split(',').take(20) {
            let mut pieces = part.split(';');
            let Some(language) = pieces.next().and_then(Language::parse) else { continue };
            let weight =
                pieces.filter_map(|p| p.trim().strip_prefix("q=")).map(thousandths).next().unwrap_or(Some(1000));
            let Some(weight) = weight else { continue };
            if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, language));
            }
        }
        best.map(|(_, language)| language)
    }

    /// The choice a request carries: the switch's cookie first, then the browser's header.
    pub fn choose(cookie: Option<&str>, accept_language: Option<&str>) -> Language {
        cookie
            .and_then(Language::parse)
            .or_else(|| accept_language.and_then(Language::from_accept_language))
            .unwrap_or_default()
    }
}

/// A q-value (`1`, `0.8`, `0.125`) in thousandths; `None` when it is not one.
fn thousandths(q: &str) -> Option<u16> {
    let (whole, fraction) = q.trim().split_once('.').unwrap_or((q.trim(), ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(fraction),
        "1" if fraction == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_wins_then_the_browser_then_spanish() {
        assert_eq!(Language::choose(Some("en"), Some("es-MX,es;q=0.9")), Language::En);
        assert_eq!(Language::choose(Some("fr"), Some("en-US,en;q=0.9,es;q=0.8")), Language::En);
        assert_eq!(Language::choose(None, Some("fr-FR, de;q=0.9")), Language::Es);
        assert_eq!(Language::choose(None, None), Language::Es);
    }

    #[test]
    fn accept_language_is_read_by_quality() {
        assert_eq!(Language::from_accept_language("de, en;q=0.4, es;q=0.7"), Some(Language::Es));
        assert_eq!(Language::from_accept_language("es;q=0, en"), Some(Language::En));
        assert_eq!(Language::from_accept_language("EN_gb"), Some(Language::En));
        assert_eq!(Language::from_accept_language("es;q=abc, en;q=0.1"), Some(Language::En));
        assert_eq!(Language::from_accept_language("en;q=0.125, es;q=0.12"), Some(Language::En));
        assert_eq!(Language::from_accept_language(";;,,q=1"), None);
        assert_eq!(Language::from_accept_language(""), None);
    }
}

//! Two-factor recovery codes.
//!
//! A code reads "abcd-efgh-jkmn-pqrs". The first group is a selector, stored in plaintext so the
//! server can find the one row to check instead of running Argon2 against every stored code. The other
//! twelve characters are the secret, which the caller stores only as an Argon2id hash.

use std::collections::HashSet;
use std::fmt;

use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use secrecy::{ExposeSecret, SecretString};

/// Codes issued per set.
pub const COUNT: usize = 10;

/// Lowercase letters and digits without the look-alikes 0/o, 1/l and i. Only 31 such symbols
/// exist, so each character carries log2(31) ≈ 4.95 bits and the 12-character secret ≈ 59.5 bits.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
const SELECTOR_LEN: usize = 4;
const SECRET_LEN: usize = 12;
const CODE_LEN: usize = SELECTOR_LEN + SECRET_LEN;
const GROUP_LEN: usize = 4;
/// Longest input worth normalizing; anything longer cannot be a code even with generous separators.
const MAX_INPUT_BYTES: usize = 64;

/// One recovery code. The secret is only readable through `secret` and `display`.
pub struct RecoveryCode {
    selector: String,
    secret: SecretString,
}

impl RecoveryCode {
    /// A fresh code from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self { selector: random_symbols(SELECTOR_LEN), secret: SecretString::from(random_symbols(SECRET_LEN)) }
    }

    /// `COUNT` codes whose selectors are pairwise distinct, so each selector identifies one row.
    pub fn generate_set() -> Vec<RecoveryCode> {
        let mut seen = HashSet::with_capacity(COUNT);
        let mut codes = Vec::with_capacity(COUNT);
        while codes.len() < COUNT {
            let code = Self::generate();
            if seen.insert(code.selector.clone()) {
                codes.push(code);
            }
        }
        codes
    }

    /// The non-secret lookup key (first group).
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The twelve secret characters, to be hashed before storage.
    pub fn secret(&self) -> &str {
        self.secret.expose_secret()
    }

    /// The dashed 19-character form, shown to the user once.
    pub fn display(&self) -> String {
        let mut out = String::with_capacity(CODE_LEN + CODE_LEN / GROUP_LEN);
        for (i, c) in self.selector.chars().chain(self.secret().chars()).enumerate() {
            if i > 0 && i % GROUP_LEN == 0 {
                out.push('-');
            }
            out.push(c);
        }
        out
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCode").field("selector", &self.selector).field("secret", &"[redacted]").finish()
    }
}

/// Splits user input into `(selector, secret)`. Case-insensitive; dashes and whitespace are ignored.
/// None unless exactly 16 alphabet characters remain.
pub fn parse(input: &str) -> Option<(String, String)> {
    if input.len() > MAX_INPUT_BYTES {
        return None;
    }
    let mut normalized = String::with_capacity(CODE_LEN);
    for c in input.chars() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        let c = c.to_ascii_lowercase();
        if !u8::try_from(c).is_ok_and(|b| ALPHABET.contains(&b)) {
            return None;
        }
        normalized.push(c);
    }
    if normalized.len() != CODE_LEN {
        return None;
    }
    let (selector, secret) = normalized.split_at_checked(SELECTOR_LEN)?;
    Some((selector.to_owned(), secret.to_owned()))
}

fn random_symbols(len: usize) -> String {
    let mut rng = OsRng;
    (0..len).filter_map(|_| ALPHABET.choose(&mut rng)).map(|&b| char::from(b)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_is_unambiguous_and_unique() {
        assert_eq!(ALPHABET.len(), 31);
        let unique: HashSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(unique.len(), ALPHABET.len());
        for ambiguous in b"0o1li" {
            assert!(!ALPHABET.contains(ambiguous));
        }
        assert!(ALPHABET.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    }

    #[test]
    fn generate_set_has_distinct_selectors() {
        let codes = RecoveryCode::generate_set();
        assert_eq!(codes.len(), COUNT);
        let selectors: HashSet<&str> = codes.iter().map(RecoveryCode::selector).collect();
        assert_eq!(selectors.len(), COUNT);
        for code in &codes {
            assert_eq!(code.selector().len(), SELECTOR_LEN);
            assert_eq!(code.secret().len(), SECRET_LEN);
            assert!(code.selector().bytes().chain(code.secret().bytes()).all(|b| ALPHABET.contains(&b)));
        }
        let secrets: HashSet<&str> = codes.iter().map(RecoveryCode::secret).collect();
        assert_eq!(secrets.len(), COUNT);
    }

    #[test]
    fn display_is_four_dashed_groups() {
        let code = RecoveryCode::generate();
        let shown = code.display();
        assert_eq!(shown.len(), 19);
        let groups: Vec<&str> = shown.split('-').collect();
        assert_eq!(groups.len(), 4);
        assert!(groups.iter().all(|g| g.len() == 4));
        assert_eq!(groups.first().copied(), Some(code.selector()));
        assert_eq!(groups[1..].concat(), code.secret());
    }

    #[test]
    fn parse_round_trips_display() {
        for _ in 0..50 {
            let code = RecoveryCode::generate();
            let (selector, secret) = parse(&code.display()).unwrap();
            assert_eq!(selector, code.selector());
            assert_eq!(secret, code.secret());
        }
    }

    #[test]
    fn parse_is_lenient_about_case_and_separators() {
        let expected = Some(("abcd".to_owned(), "efghjkmnpqrs".to_owned()));
        assert_eq!(parse("abcd-efgh-jkmn-pqrs"), expected);
        assert_eq!(parse("ABCD-EFGH-JKMN-PQRS"), expected);
        assert_eq!(parse("abcdefghjkmnpqrs"), expected);
        assert_eq!(parse("abcd efgh jkmn pqrs"), expected);
        assert_eq!(parse("  aBcD - eFgH\tjkmn-pqrs \n"), expected);
    }

    #[test]
    fn parse_rejects_bad_input() {
        for input in [
            "",
            "   ",
            "----",
            "abcd-efgh-jkmn-pqr",
            "abcd-efgh-jkmn-pqrst",
            "abcd-efgh-jkmn-pqrs-abcd",
            "abcd-efgh-jkmn-pqr0",
            "abcd-efgh-jkmn-pqro",
            "abcd-efgh-jkmn-pqr1",
            "abcd-efgh-jkmn-pqrl",
            "abcd-efgh-jkmn-pqri",
            "abcd_efgh_jkmn_pqrs",
            "abcd-efgh-jkmn-pqrß",
            "abcd-efgh-jkmn-pqr\u{212A}",
            "ａｂｃｄ-efgh-jkmn-pqrs",
            "abcd-efgh-jkmn-🔑🔑🔑🔑",
        ] {
            assert_eq!(parse(input), None, "{input:?}");
        }
        assert_eq!(parse(&"a".repeat(10_000)), None);
        assert_eq!(parse(&format!("abcd{}efghjkmnpqrs", " ".repeat(100))), None);
    }

    #[test]
    fn debug_redacts_secret() {
        let code = RecoveryCode::generate();
        let debug = format!("{code:?}");
        assert!(debug.contains(code.selector()));
        assert!(!debug.contains(code.secret()));
        assert!(debug.contains("[redacted]"));
    }
}

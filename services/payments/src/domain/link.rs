//! Payment-link tokens.
//!
//! The token is the only credential a payer needs, so it is shown once, when the link is made,
//! and only its SHA-256 is stored: a leaked database does not leak working links. 256 random bits
//! make guessing hopeless, and a plain hash (no salt or stretching) is enough for that much
//! entropy while still letting a lookup go by hash.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

/// Marks a payment-link token wherever it turns up (logs, secret scanners, support tickets).
pub const PREFIX: &str = "pl_";

const RANDOM_BYTES: usize = 32;
/// Unpadded base64 of 32 bytes.
const ENCODED_LEN: usize = 43;

/// A new token and the hash to store. `Debug` leaves the token out so it cannot reach a log.
pub struct LinkToken {
    pub token: String,
    pub hash: [u8; 32],
}

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hash: String = self.hash.iter().map(|b| format!("{b:02x}")).collect();
        f.debug_struct("LinkToken").field("token", &"<redacted>").field("hash", &hash).finish()
    }
}

/// A fresh token: "pl_" and 256 bits from the operating system, base64url without padding.
pub fn new_token() -> LinkToken {
    let mut bytes = [0_u8; RANDOM_BYTES];
    OsRng.fill_bytes(&mut bytes);
    let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&token);
    LinkToken { token, hash }
}

/// SHA-256 of the whole token, prefix included.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A presented token was not one we could have issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a payment-link token")]
pub struct MalformedToken;

/// The hash to look a presented token up by. Refusing what cannot be a token before hashing
/// keeps junk from ever reaching the database.
pub fn parse(token: &str) -> Result<[u8; 32], MalformedToken> {
    let body = token.strip_prefix(PREFIX).ok_or(MalformedToken)?;
    if body.len() != ENCODED_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(MalformedToken);
    }
    Ok(hash(token))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Active,
    Expired,
    Revoked,
}

/// Whether a link can be paid at `now`. A revoked link reports revoked even once it has also
/// expired, since that is what its owner did; a link is expired from `expires_at` on.
pub fn state(expires_at: DateTime<Utc>, revoked_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> LinkState {
    if revoked_at.is_some() {
        LinkState::Revoked
    } else if now >= expires_at {
        LinkState::Expired
    } else {
        LinkState::Active
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};
    use std::collections::HashSet;

    #[test]
    fn token_shape() {
        let t = new_token();
        assert!(t.token.starts_with(PREFIX));
        assert_eq!(t.token.len(), 46);
        let body = &t.token[PREFIX.len()..];
        assert!(body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{body}");
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
    }

    #[test]
    fn tokens_differ() {
        let tokens: HashSet<String> = (0..1_000).map(|_| new_token().token).collect();
        assert_eq!(tokens.len(), 1_000);
    }

    #[test]
    fn hash_covers_the_whole_token() {
        let t = new_token();
        assert_eq!(t.hash, hash(&t.token));
        let expected: [u8; 32] = Sha256::digest(t.token.as_bytes()).into();
        assert_eq!(t.hash, expected);
        assert_ne!(t.hash, hash(&t.token[PREFIX.len()..]));
    }

    #[test]
    fn known_hash() {
        // SHA-256("abc") from FIPS 180-2.
        let expected = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03,
            0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
        ];
        assert_eq!(hash("abc"), expected);
    }

    #[test]
    fn parse_accepts_issued_tokens() {
        for _ in 0..100 {
            let t = new_token();
            assert_eq!(parse(&t.token), Ok(t.hash));
        }
        let all_edges = format!("{PREFIX}{}", "-_Az09".repeat(8).get(..43).unwrap());
        assert_eq!(parse(&all_edges), Ok(hash(&all_edges)));
    }

    #[test]
    fn parse_refuses_malformed() {
        let good = new_token().token;
        let body = &good[PREFIX.len()..];
        let mut cases = vec![
            String::new(),
            PREFIX.to_owned(),
            body.to_owned(),
            format!("pk_{body}"),
            format!("PL_{body}"),
            format!("pl-{body}"),
            format!(" {good}"),
            format!("{good} "),
            format!("{good}\n"),
            good[..good.len() - 1].to_owned(),
            format!("{good}A"),
            format!("{good}="),
            format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode([0_u8; 31])),
            format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode([0_u8; 33])),
            format!("{PREFIX}{}", base64::engine::general_purpose::STANDARD.encode([0_u8; 32])),
        ];
        for bad in ['+', '/', '=', '.', ' ', '%', '\0'] {
            cases.push(format!("{}{bad}", &good[..good.len() - 1]));
            cases.push(format!("{PREFIX}{bad}{}", &body[1..]));
        }
        // Same number of bytes as a token, but not ASCII.
        cases.push(format!("{PREFIX}é{}", &body[2..]));
        cases.push(format!("{PREFIX}€{}", &body[3..]));
        cases.push(format!("{PREFIX}a{}", "ñ".repeat(21)));
        for case in cases {
            assert_eq!(parse(&case), Err(MalformedToken), "{case:?}");
        }
    }

    #[test]
    fn debug_redacts_the_token() {
        let t = new_token();
        let shown = format!("{t:?}");
        assert!(!shown.contains(&t.token), "{shown}");
        assert!(!shown.contains(&t.token[PREFIX.len()..]), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let pretty = format!("{t:#?}");
        assert!(!pretty.contains(&t.token[PREFIX.len()..]), "{pretty}");
    }

    #[test]
    fn error_message() {
        assert_eq!(MalformedToken.to_string(), "is not a payment-link token");
    }

    #[test]
    fn state_at_the_boundaries() {
        let expires = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
        let just = TimeDelta::nanoseconds(1);
        assert_eq!(state(expires, None, expires - TimeDelta::days(30)), LinkState::Active);
        assert_eq!(state(expires, None, expires - just), LinkState::Active);
        assert_eq!(state(expires, None, expires), LinkState::Expired);
        assert_eq!(state(expires, None, expires + just), LinkState::Expired);
    }

    #[test]
    fn revoked_wins() {
        let expires = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
        let revoked = expires - TimeDelta::hours(1);
        for now in [revoked, expires - TimeDelta::seconds(1), expires, expires + TimeDelta::days(1)] {
            assert_eq!(state(expires, Some(revoked), now), LinkState::Revoked, "{now}");
        }
        // Revoked after it had already expired.
        let late = expires + TimeDelta::days(2);
        assert_eq!(state(expires, Some(late), late + TimeDelta::days(1)), LinkState::Revoked);
    }
}

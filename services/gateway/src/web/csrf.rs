//! CSRF tokens: one random token per session, sent back as a hidden field of every form and
//! compared in constant time on every state-changing request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use subtle::ConstantTimeEq;

/// The form field that carries the token.
pub const FIELD: &str = "csrf_token";

/// 256 random bits, base64url.
pub fn new_token() -> String {
    let mut bytes = [0_u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether the submitted token is the session's. An empty token never matches.
pub fn verify(expected: &str, submitted: &str) -> bool {
    !expected.is_empty()
        && expected.len() == submitted.len()
        && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sessions_own_token_passes() {
        let token = new_token();
        assert_eq!(token.len(), 43);
        assert!(verify(&token, &token));
        assert!(!verify(&token, &new_token()));
        assert!(!verify(&token, ""));
        assert!(!verify("", ""));
        assert!(!verify(&token, &token[..42]));
        assert_ne!(new_token(), new_token());
    }
}

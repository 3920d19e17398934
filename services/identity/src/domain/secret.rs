//! Secrets at rest and opaque tokens.
//!
//! - [`DataKey`] encrypts small secrets (TOTP seeds, signing keys) with AES-256-GCM, bound to their
//!   row through associated data.
//! - [`random_token`] and [`token_hash`] cover high-entropy bearer tokens, where a fast hash suffices.
//! - [`Pepper`] keys an HMAC for API keys and client secrets, so a leaked table alone cannot be used
//!   to test guesses offline.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::digest::Key as MacKey;
use hmac::{Hmac, Mac};
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::{Rng as _, RngCore as _};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretBox, SecretSlice};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

type HmacSha256 = Hmac<Sha256>;

/// Format version of sealed data, so the scheme can change without ambiguity.
const SEAL_VERSION: u8 = 0x01;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
/// Minimum pepper size: an HMAC-SHA256 key shorter than the output would weaken it.
const MIN_PEPPER_LEN: usize = 32;

/// Prefix of live API keys; makes leaked keys recognizable to secret scanners.
pub const API_KEY_PREFIX: &str = "ck_live_";
/// Random characters after the prefix: 43 × log2(62) ≥ 256 bits.
const API_KEY_RANDOM_LEN: usize = 43;
/// Random characters kept in the listing form of an API key.
const API_KEY_DISPLAY_LEN: usize = 6;

/// Key or ciphertext failure. Deliberately vague about why opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    #[error("encryption failed")]
    Seal,
    #[error("decryption failed")]
    Open,
}

/// AES-256-GCM key for secrets stored in the database. Zeroed on drop.
pub struct DataKey {
    key: SecretBox<[u8; KEY_LEN]>,
}

impl DataKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self { key: SecretBox::new(Box::new(bytes)) }
    }

    /// Parses standard base64 (surrounding whitespace ignored) of exactly 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, CryptoError> {
        let invalid = CryptoError::InvalidKey("data key must be standard base64 of exactly 32 bytes");
        let decoded = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| invalid.clone())?);
        let bytes = <[u8; KEY_LEN]>::try_from(decoded.as_slice()).map_err(|_| invalid)?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut_slice());
        Self::from_bytes(*bytes)
    }

    /// Standard base64 of the key, for the admin command that provisions keys.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key.expose_secret())
    }

    /// Encrypts `plaintext`; `aad` must identify the row it will be stored in (e.g. tenant id and user
    /// id), so a ciphertext copied elsewhere will not open. Layout: version || nonce || ciphertext+tag.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
            .map_err(|_| CryptoError::Seal)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(SEAL_VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts output of [`DataKey::seal`] made with the same key and `aad`. Every failure (short
    /// input, unknown version, wrong key, wrong aad, tampering) is the same [`CryptoError::Open`].
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (&version, rest) = sealed.split_first().ok_or(CryptoError::Open)?;
        if version != SEAL_VERSION {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = rest.split_at_checked(NONCE_LEN).ok_or(CryptoError::Open)?;
        if ciphertext.len() < TAG_LEN {
            return Err(CryptoError::Open);
        }
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| CryptoError::Open)?;
        self.cipher().decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad }).map_err(|_| CryptoError::Open)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(*self.key.expose_secret()))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// `prefix` followed by `len` characters drawn uniformly from [A-Za-z0-9] by the OS CSPRNG.
/// Each character carries log2(62) ≈ 5.95 bits; `len` 43 gives at least 256 bits.
pub fn random_token(prefix: &str, len: usize) -> String {
    let mut token = String::with_capacity(prefix.len() + len);
    token.push_str(prefix);
    token.extend(OsRng.sample_iter(&Alphanumeric).take(len).map(char::from));
    token
}

/// SHA-256 of a high-entropy token, for lookup by hash. Not for passwords or other guessable values.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Server-side HMAC-SHA256 key for API keys and service-client secrets. Zeroed on drop.
pub struct Pepper {
    key: SecretSlice<u8>,
}

impl Pepper {
    /// Parses standard base64 (surrounding whitespace ignored) of at least 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, CryptoError> {
        let invalid = CryptoError::InvalidKey("pepper must be standard base64 of at least 32 bytes");
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| invalid.clone())?;
        if decoded.len() < MIN_PEPPER_LEN {
            return Err(invalid);
        }
        Ok(Self::from_bytes(decoded))
    }

    /// Wraps raw key bytes as is. Prefer [`Pepper::generate`] or [`Pepper::from_base64`], which
    /// guarantee at least 32 bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { key: SecretSlice::from(bytes) }
    }

    pub fn generate() -> Self {
        let mut bytes = vec![0u8; MIN_PEPPER_LEN];
        OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// Standard base64 of the key, for the admin command that provisions it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key.expose_secret())
    }

    /// HMAC-SHA256 of `value` under this pepper.
    pub fn keyed_hash(&self, value: &str) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Compares `keyed_hash(value)` with `expected` in constant time.
    pub fn verify(&self, value: &str, expected: &[u8]) -> bool {
        self.keyed_hash(value).as_slice().ct_eq(expected).into()
    }

    /// HMAC state keyed with this pepper. The key is laid out as one HMAC block as RFC 2104 does it
    /// (longer keys hashed first, shorter ones zero-padded), which keeps construction infallible.
    fn mac(&self) -> HmacSha256 {
        let key = self.key.expose_secret();
        let mut block = MacKey::<HmacSha256>::default();
        let hashed = (key.len() > block.len()).then(|| Sha256::digest(key));
        let material = hashed.as_deref().unwrap_or(key);
        for (dst, src) in block.iter_mut().zip(material) {
            *dst = *src;
        }
        <HmacSha256 as Mac>::new(&block)
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper([redacted])")
    }
}

/// A new API key: `ck_live_` followed by 43 random alphanumerics. Show it once; store its keyed hash.
pub fn generate_api_key() -> String {
    random_token(API_KEY_PREFIX, API_KEY_RANDOM_LEN)
}

/// True when `s` has the exact shape of an API key, so malformed input is refused before any lookup.
pub fn is_api_key_shaped(s: &str) -> bool {
    s.strip_prefix(API_KEY_PREFIX)
        .is_some_and(|rest| rest.len() == API_KEY_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Prefix plus the first six random characters, enough to tell keys apart in a listing without
/// revealing them.
pub fn api_key_display_prefix(key: &str) -> String {
    key.chars().take(API_KEY_PREFIX.len() + API_KEY_DISPLAY_LEN).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    const AAD: &[u8] = b"tenant:7f3c|user:42";

    #[test]
    fn seal_open_round_trip() {
        let key = DataKey::generate();
        for plaintext in [&b""[..], b"x", b"JBSWY3DPEHPK3PXP", &[0u8; 1000]] {
            let sealed = key.seal(plaintext, AAD).unwrap();
            assert_eq!(sealed.len(), 1 + NONCE_LEN + plaintext.len() + TAG_LEN);
            assert_eq!(sealed.first(), Some(&SEAL_VERSION));
            assert_eq!(key.open(&sealed, AAD).unwrap(), plaintext);
        }
    }

    #[test]
    fn wrong_aad_or_key_fails() {
        let key = DataKey::generate();
        let sealed = key.seal(b"totp seed", AAD).unwrap();
        assert_eq!(key.open(&sealed, b"tenant:7f3c|user:43"), Err(CryptoError::Open));
        assert_eq!(key.open(&sealed, b""), Err(CryptoError::Open));
        assert_eq!(DataKey::generate().open(&sealed, AAD), Err(CryptoError::Open));
    }

    #[test]
    fn any_tampered_byte_fails() {
        let key = DataKey::generate();
        let sealed = key.seal(b"signing key material", AAD).unwrap();
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert_eq!(key.open(&tampered, AAD), Err(CryptoError::Open), "byte {i}");
        }
    }

    #[test]
    fn truncated_or_empty_input_fails() {
        let key = DataKey::generate();
        let sealed = key.seal(b"secret", AAD).unwrap();
        for len in 0..sealed.len() {
            assert_eq!(key.open(&sealed[..len], AAD), Err(CryptoError::Open), "len {len}");
        }
        assert_eq!(key.open(&[], AAD), Err(CryptoError::Open));
        assert_eq!(key.open(&[SEAL_VERSION], AAD), Err(CryptoError::Open));
        assert_eq!(key.open(&[0x02; 64], AAD), Err(CryptoError::Open));
    }

    #[test]
    fn seals_of_same_plaintext_differ() {
        let key = DataKey::generate();
        let a = key.seal(b"same", AAD).unwrap();
        let b = key.seal(b"same", AAD).unwrap();
        assert_ne!(a, b);
        assert_eq!(key.open(&a, AAD).unwrap(), key.open(&b, AAD).unwrap());
    }

    #[test]
    fn data_key_base64_round_trip() {
        let key = DataKey::generate();
        let encoded = key.to_base64();
        let restored = DataKey::from_base64(&format!("  {encoded}\n")).unwrap();
        let sealed = key.seal(b"portable", AAD).unwrap();
        assert_eq!(restored.open(&sealed, AAD).unwrap(), b"portable");
        assert_eq!(DataKey::from_bytes([7; 32]).to_base64(), STANDARD.encode([7u8; 32]));
    }

    #[test]
    fn data_key_from_base64_rejects_bad_input() {
        for encoded in [
            String::new(),
            STANDARD.encode([1u8; 31]),
            STANDARD.encode([1u8; 33]),
            STANDARD.encode([1u8; 16]),
            "not base64!!".to_owned(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xffu8; 32]),
        ] {
            assert!(matches!(DataKey::from_base64(&encoded), Err(CryptoError::InvalidKey(_))), "{encoded}");
        }
    }

    #[test]
    fn random_token_shape_and_uniqueness() {
        let token = random_token("rt_", 43);
        assert!(token.starts_with("rt_"));
        assert_eq!(token.len(), 46);
        assert!(token["rt_".len()..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(random_token("", 0), "");
        assert_eq!(random_token("p_", 0), "p_");

        let tokens: HashSet<String> = (0..1000).map(|_| random_token("", 43)).collect();
        assert_eq!(tokens.len(), 1000);

        // All three character classes show up in a long sample.
        let long = random_token("", 4096);
        assert!(long.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(long.bytes().any(|b| b.is_ascii_lowercase()));
        assert!(long.bytes().any(|b| b.is_ascii_digit()));
    }

    #[test]
    fn token_hash_matches_sha256_vector() {
        assert_eq!(hex(&token_hash("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex(&token_hash("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn pepper_matches_rfc4231_case_2() {
        let pepper = Pepper::from_bytes(b"Jefe".to_vec());
        assert_eq!(
            hex(&pepper.keyed_hash("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn pepper_matches_rfc4231_case_6_long_key() {
        let pepper = Pepper::from_bytes(vec![0xaa; 131]);
        assert_eq!(
            hex(&pepper.keyed_hash("Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn pepper_agrees_with_hmac_for_every_key_length() {
        for len in [0, 1, 31, 32, 63, 64, 65, 128, 200] {
            let key: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
            let mut reference = <HmacSha256 as Mac>::new_from_slice(&key).unwrap();
            reference.update(b"client secret");
            let expected: [u8; 32] = reference.finalize().into_bytes().into();
            assert_eq!(Pepper::from_bytes(key).keyed_hash("client secret"), expected, "key length {len}");
        }
    }

    #[test]
    fn pepper_verify() {
        let pepper = Pepper::generate();
        let key = generate_api_key();
        let stored = pepper.keyed_hash(&key);
        assert!(pepper.verify(&key, &stored));
        assert!(!pepper.verify(&generate_api_key(), &stored));
        assert!(!pepper.verify(&key, &stored[..31]));
        assert!(!pepper.verify(&key, &[]));
        assert!(!Pepper::generate().verify(&key, &stored));
    }

    #[test]
    fn pepper_base64() {
        let pepper = Pepper::generate();
        let restored = Pepper::from_base64(&pepper.to_base64()).unwrap();
        assert_eq!(restored.keyed_hash("v"), pepper.keyed_hash("v"));
        assert!(Pepper::from_base64(&STANDARD.encode([1u8; 64])).is_ok());
        assert!(matches!(Pepper::from_base64(&STANDARD.encode([1u8; 31])), Err(CryptoError::InvalidKey(_))));
        assert!(matches!(Pepper::from_base64("%%%"), Err(CryptoError::InvalidKey(_))));
    }

    #[test]
    fn api_key_shape() {
        let key = generate_api_key();
        assert!(key.starts_with(API_KEY_PREFIX));
        assert_eq!(key.len(), API_KEY_PREFIX.len() + 43);
        assert!(is_api_key_shaped(&key));

        let valid_tail = "a".repeat(43);
        assert!(is_api_key_shaped(&format!("ck_live_{valid_tail}")));
        assert!(!is_api_key_shaped(&format!("ck_test_{valid_tail}")));
        assert!(!is_api_key_shaped(&format!("ck_live_{}", "a".repeat(42))));
        assert!(!is_api_key_shaped(&format!("ck_live_{}", "a".repeat(44))));
        assert!(!is_api_key_shaped(&format!("ck_live_{}-", "a".repeat(42))));
        assert!(!is_api_key_shaped(&format!("ck_live_{}é", "a".repeat(41))));
        assert!(!is_api_key_shaped(""));
        assert!(!is_api_key_shaped("ck_live_"));
    }

    #[test]
    fn api_key_display_prefix_hides_the_rest() {
        let key = generate_api_key();
        let shown = api_key_display_prefix(&key);
        assert_eq!(shown.len(), API_KEY_PREFIX.len() + 6);
        assert!(key.starts_with(&shown));
        assert_eq!(api_key_display_prefix("ck_live_abcdefghij"), "ck_live_abcdef");
        assert_eq!(api_key_display_prefix("short"), "short");
        assert_eq!(api_key_display_prefix("ñññññññññññññññ"), "ññññññññññññññ");
    }

    #[test]
    fn debug_is_redacted() {
        let key = DataKey::from_bytes([0x41; 32]);
        assert_eq!(format!("{key:?}"), "DataKey([redacted])");
        let pepper = Pepper::from_bytes(b"Jefe".to_vec());
        assert_eq!(format!("{pepper:?}"), "Pepper([redacted])");
        assert!(!format!("{:?}", CryptoError::Open).contains("Jefe"));
    }
}

//! Time-based one-time passwords (RFC 6238) on top of HOTP (RFC 4226), plus the base32 and
//! `otpauth://` formats authenticator apps use to enrol a secret.

use std::fmt;

use hmac::digest::Digest;
use hmac::digest::core_api::BlockSizeUser;
use hmac::{Mac, SimpleHmac};
use rand::RngCore;
use rand::rngs::OsRng;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// The hash behind the HMAC. Authenticator apps reliably support only SHA-1, so enrolment uses
/// it; the others exist for the RFC test vectors and for completeness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// Length of one time step (RFC 6238's default, and what every authenticator app assumes).
pub const STEP_SECONDS: u64 = 30;
/// Digits of the codes users type.
pub const DIGITS: u32 = 6;
/// Key length of generated secrets: 160 bits, the HMAC-SHA-1 output size RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;
/// Steps accepted on either side of the current one, to absorb clock skew and typing time.
pub const ALLOWED_DRIFT_STEPS: u64 = 1;

const MIN_DIGITS: u32 = 6;
const MAX_DIGITS: u32 = 8;

/// A shared TOTP key. `Debug` never prints the bytes so the key cannot leak through logs.
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A fresh random key of [`SECRET_LEN`] bytes from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_LEN];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key as authenticator apps expect it typed or scanned: uppercase base32, no padding.
    pub fn to_base32(&self) -> String {
        base32_encode(&self.0)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// RFC 4648 base32 (uppercase alphabet), without `=` padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(base32_char(buffer >> bits));
            buffer &= (1 << bits) - 1;
        }
    }
    if bits > 0 {
        out.push(base32_char(buffer << (5 - bits)));
    }
    out
}

/// Decodes RFC 4648 base32 leniently about presentation (any case, spaces anywhere, trailing
/// `=` padding) but strictly about content: an invalid character, `=` followed by data, or a
/// length no encoder can produce gives `None`.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 8 * 5);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    let mut symbols: usize = 0;
    let mut padding_started = false;
    for c in s.chars() {
        match c {
            ' ' => continue,
            '=' => padding_started = true,
            _ if padding_started => return None,
            _ => {
                buffer = (buffer << 5) | base32_value(c)?;
                bits += 5;
                symbols += 1;
                if bits >= 8 {
                    bits -= 8;
                    // Truncation keeps exactly the 8 bits just completed.
                    out.push((buffer >> bits) as u8);
                    buffer &= (1 << bits) - 1;
                }
            }
        }
    }
    // 1, 3 or 6 trailing symbols carry fewer bits than a byte needs, so no encoder emits them.
    if matches!(symbols % 8, 1 | 3 | 6) {
        return None;
    }
    Some(out)
}

fn base32_char(value: u32) -> char {
    let value = (value & 0x1f) as u8;
    char::from(if value < 26 { b'A' + value } else { b'2' + (value - 26) })
}

fn base32_value(c: char) -> Option<u32> {
    match c {
        'A'..='Z' => Some(u32::from(c) - u32::from('A')),
        'a'..='z' => Some(u32::from(c) - u32::from('a')),
        '2'..='7' => Some(u32::from(c) - u32::from('2') + 26),
        _ => None,
    }
}

/// RFC 4226 HOTP: HMAC of the big-endian counter, dynamic truncation, zero-padded decimal.
/// `digits` is clamped to 6..=8, the range the RFC allows.
pub fn hotp(alg: Algorithm, key: &[u8], counter: u64, digits: u32) -> String {
    let digits = digits.clamp(MIN_DIGITS, MAX_DIGITS);
    let message = counter.to_be_bytes();
    let mac = match alg {
        Algorithm::Sha1 => hmac_bytes::<sha1::Sha1>(key, &message),
        Algorithm::Sha256 => hmac_bytes::<sha2::Sha256>(key, &message),
        Algorithm::Sha512 => hmac_bytes::<sha2::Sha512>(key, &message),
    };
    match mac.as_deref().and_then(truncate) {
        Some(value) => format!("{:0width$}", value % 10u32.pow(digits), width = digits as usize),
        // Unreachable (HMAC takes keys of any length), but an empty string matches no code.
        None => String::new(),
    }
}

fn hmac_bytes<D>(key: &[u8], message: &[u8]) -> Option<Vec<u8>>
where
    D: Digest + BlockSizeUser,
{
    let mut mac = <SimpleHmac<D> as Mac>::new_from_slice(key).ok()?;
    mac.update(message);
    Some(mac.finalize().into_bytes().to_vec())
}

/// RFC 4226 section 5.3: 31 bits read at the offset named by the low nibble of the last byte.
fn truncate(mac: &[u8]) -> Option<u32> {
    let offset = usize::from(mac.last()? & 0x0f);
    let window: [u8; 4] = mac.get(offset..offset + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(window) & 0x7fff_ffff)
}

/// The RFC 6238 time step (counter) that `unix_time` falls in.
pub fn time_step(unix_time: u64) -> u64 {
    unix_time / STEP_SECONDS
}

/// RFC 6238 TOTP: HOTP over the current time step.
pub fn totp(alg: Algorithm, key: &[u8], unix_time: u64, digits: u32) -> String {
    hotp(alg, key, time_step(unix_time), digits)
}

/// Accepts codes the way people type them ("123 456"): ASCII spaces are dropped, then exactly
/// [`DIGITS`] ASCII digits must remain. Stops reading as soon as the input cannot be valid.
pub fn normalize_code(input: &str) -> Option<String> {
    let wanted = DIGITS as usize;
    let mut code = String::with_capacity(wanted);
    for c in input.chars() {
        if c == ' ' {
            continue;
        }
        if !c.is_ascii_digit() || code.len() == wanted {
            return None;
        }
        code.push(c);
    }
    (code.len() == wanted).then_some(code)
}

/// The time step whose SHA-1, 6-digit code equals `code`, among the current step and
/// [`ALLOWED_DRIFT_STEPS`] on either side (never below step 0).
///
/// Replay protection is the caller's job: store the returned step and reject any later code whose
/// step is not greater. That is why the exact step is returned rather than a bool; if codes of
/// several candidate steps collide, the latest one is returned so the stored step is never too low.
///
/// `code` goes through [`normalize_code`] first. Every candidate is computed and compared in
/// constant time, without early exit, so timing does not reveal which step matched.
pub fn matching_step(secret: &TotpSecret, code: &str, unix_time: u64) -> Option<u64> {
    let code = normalize_code(code)?;
    let now = time_step(unix_time);
    let mut found = Choice::from(0);
    let mut step_found: u64 = 0;
    for step in now.saturating_sub(ALLOWED_DRIFT_STEPS)..=now.saturating_add(ALLOWED_DRIFT_STEPS) {
        let expected = hotp(Algorithm::Sha1, secret.as_bytes(), step, DIGITS);
        let is_match = expected.as_bytes().ct_eq(code.as_bytes());
        step_found.conditional_assign(&step, is_match);
        found |= is_match;
    }
    bool::from(found).then_some(step_found)
}

/// The `otpauth://` URI authenticator apps scan from a QR code (Key Uri Format). Issuer and account
/// are percent-encoded so characters like ':' '@' or spaces cannot change the URI's structure.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        account = percent_encode(account),
        secret = secret.to_base32(),
    )
}

/// RFC 3986 percent-encoding of the UTF-8 bytes of `s`; only unreserved characters stay literal.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &byte in s.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0x0f));
        }
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    let nibble = nibble & 0x0f;
    char::from(if nibble < 10 { b'0' + nibble } else { b'A' + (nibble - 10) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let vectors: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (time, sha1, sha256, sha512) in vectors {
            assert_eq!(totp(Algorithm::Sha1, SEED_SHA1, time, 8), sha1, "SHA-1 at {time}");
            assert_eq!(totp(Algorithm::Sha256, SEED_SHA256, time, 8), sha256, "SHA-256 at {time}");
            assert_eq!(totp(Algorithm::Sha512, SEED_SHA512, time, 8), sha512, "SHA-512 at {time}");
        }
    }

    #[test]
    fn rfc4226_appendix_d_vectors() {
        let expected =
            ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
        for (counter, code) in (0u64..).zip(expected) {
            assert_eq!(hotp(Algorithm::Sha1, SEED_SHA1, counter, 6), code, "counter {counter}");
        }
    }

    #[test]
    fn hotp_clamps_digits() {
        assert_eq!(hotp(Algorithm::Sha1, SEED_SHA1, 0, 0).len(), 6);
        assert_eq!(hotp(Algorithm::Sha1, SEED_SHA1, 0, 20).len(), 8);
        assert_eq!(hotp(Algorithm::Sha1, b"", 0, 6).len(), 6);
    }

    #[test]
    fn time_step_divides_by_period() {
        assert_eq!(time_step(0), 0);
        assert_eq!(time_step(29), 0);
        assert_eq!(time_step(30), 1);
        assert_eq!(time_step(59), 1);
    }

    #[test]
    fn base32_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base32_encode(plain.as_bytes()), encoded);
            assert_eq!(base32_decode(encoded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn base32_round_trips_every_length() {
        let data: Vec<u8> = (0u8..=255).collect();
        for len in 0..=data.len() {
            let bytes = &data[..len];
            assert_eq!(base32_decode(&base32_encode(bytes)).unwrap(), bytes, "length {len}");
        }
        let secret = TotpSecret::generate();
        assert_eq!(base32_decode(&secret.to_base32()).unwrap(), secret.as_bytes());
    }

    #[test]
    fn base32_decode_is_lenient_about_presentation() {
        assert_eq!(base32_decode("mzxw6ytboi").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZXW 6YTB OI").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(base32_decode("MY======").unwrap(), b"f");
    }

    #[test]
    fn base32_decode_rejects_invalid_input() {
        assert_eq!(base32_decode("MZXW1"), None);
        assert_eq!(base32_decode("MZXW8"), None);
        assert_eq!(base32_decode("MZ-XW"), None);
        assert_eq!(base32_decode("MY=Y"), None);
        assert_eq!(base32_decode("MZXWé"), None);
        assert_eq!(base32_decode("M"), None);
        assert_eq!(base32_decode("MZX"), None);
    }

    #[test]
    fn generated_secrets_are_random_and_sized() {
        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_eq!(a.as_bytes().len(), SECRET_LEN);
        assert_eq!(a.to_base32().len(), 32);
        assert_ne!(a.as_bytes(), b.as_bytes());
    }

    #[test]
    fn normalize_code_accepts_typed_codes() {
        assert_eq!(normalize_code("123456").as_deref(), Some("123456"));
        assert_eq!(normalize_code("123 456").as_deref(), Some("123456"));
        assert_eq!(normalize_code(" 1 2 3 4 5 6 ").as_deref(), Some("123456"));
        assert_eq!(normalize_code("000000").as_deref(), Some("000000"));
    }

    #[test]
    fn normalize_code_rejects_odd_inputs() {
        for input in [
            "",
            "     ",
            "12345",
            "1234567",
            "12345a",
            "123-456",
            "123\t456",
            "123456\n",
            "+12345",
            "١٢٣٤٥٦",
            "１２３４５６",
            "12345😀",
            "\u{0}23456",
        ] {
            assert_eq!(normalize_code(input), None, "{input:?}");
        }
        assert_eq!(normalize_code(&"1".repeat(1_000_000)), None);
        assert_eq!(normalize_code(&" ".repeat(1_000_000)), None);
    }

    #[test]
    fn matching_step_accepts_drift_of_one_step_and_returns_it() {
        let secret = TotpSecret::from_bytes(SEED_SHA1.to_vec());
        let now = 1_111_111_111;
        let step = time_step(now);
        for candidate in [step - 1, step, step + 1] {
            let code = hotp(Algorithm::Sha1, SEED_SHA1, candidate, DIGITS);
            assert_eq!(matching_step(&secret, &code, now), Some(candidate));
        }
        let spaced = hotp(Algorithm::Sha1, SEED_SHA1, step, DIGITS);
        let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
        assert_eq!(matching_step(&secret, &spaced, now), Some(step));
    }

    #[test]
    fn matching_step_rejects_two_steps_away_and_garbage() {
        let secret = TotpSecret::from_bytes(SEED_SHA1.to_vec());
        let now = 1_111_111_111;
        let step = time_step(now);
        for far in [step - 2, step + 2] {
            let code = hotp(Algorithm::Sha1, SEED_SHA1, far, DIGITS);
            assert_eq!(matching_step(&secret, &code, now), None, "step {far}");
        }
        assert_eq!(matching_step(&secret, "", now), None);
        assert_eq!(matching_step(&secret, "abcdef", now), None);
        let other = TotpSecret::from_bytes(SEED_SHA256.to_vec());
        assert_eq!(matching_step(&other, &hotp(Algorithm::Sha1, SEED_SHA1, step, DIGITS), now), None);
    }

    #[test]
    fn matching_step_saturates_at_zero() {
        let secret = TotpSecret::from_bytes(SEED_SHA1.to_vec());
        assert_eq!(matching_step(&secret, &hotp(Algorithm::Sha1, SEED_SHA1, 0, DIGITS), 0), Some(0));
        assert_eq!(matching_step(&secret, &hotp(Algorithm::Sha1, SEED_SHA1, 1, DIGITS), 0), Some(1));
        assert_eq!(matching_step(&secret, &hotp(Algorithm::Sha1, SEED_SHA1, 2, DIGITS), 0), None);
    }

    #[test]
    fn otpauth_uri_percent_encodes_label_and_issuer() {
        let secret = TotpSecret::from_bytes(b"foobar".to_vec());
        assert_eq!(
            otpauth_uri(&secret, "Cobro Billing", "ana.pérez+ar@example.com"),
            "otpauth://totp/Cobro%20Billing:ana.p%C3%A9rez%2Bar%40example.com?secret=MZXW6YTBOI\
             &issuer=Cobro%20Billing&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(percent_encode("a:b/c?d&e=f#g"), "a%3Ab%2Fc%3Fd%26e%3Df%23g");
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
    }

    #[test]
    fn debug_redacts_secret() {
        let secret = TotpSecret::from_bytes(b"foobar".to_vec());
        let shown = format!("{secret:?}");
        assert_eq!(shown, "TotpSecret([redacted])");
        assert!(!shown.contains("102"));
        assert!(!shown.contains("MZXW"));
    }
}

//! A small compact-JWS (RFC 7515) implementation for one algorithm only: EdDSA over Ed25519
//! (RFC 8037).
//!
//! Kept small on purpose so it can be audited in one sitting. The algorithm is fixed by us, never
//! chosen by the token, so the classic confusions (`alg: none`, HS256 keyed with the public key)
//! cannot happen. The signature is checked before the payload is parsed, and every error is a
//! static description that never carries any part of the token.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::AuthError;
use super::jwks::{Jwk, JwkSet};
use super::principal::PrincipalKind;

/// The only `alg` accepted or produced.
pub const ALGORITHM: &str = "EdDSA";
/// The only `typ` accepted when a token carries one.
pub const TOKEN_TYPE: &str = "JWT";
/// Longest token accepted; anything larger is rejected before decoding, so oversized headers
/// cannot make us allocate or parse much.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Default clock skew tolerated on `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The claims of a Cobro access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: identity's configured issuer name.
    pub iss: String,
    /// Subject: user id, contact id, API key id or service name.
    pub sub: String,
    /// Audience: a single string; arrays are not accepted.
    pub aud: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Token id, for audit trails.
    pub jti: String,
    /// Tenant every query of this caller is scoped to.
    pub tid: Uuid,
    /// Principal kind.
    pub knd: PrincipalKind,
    /// Role names, informative; authorization uses `perms`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Effective permissions, already expanded by identity from roles or API-key scopes.
    #[serde(default)]
    pub perms: Vec<String>,
    /// Customer id, for customer-portal contacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<Uuid>,
    /// Service name, for service principals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svc: Option<String>,
}

/// An Ed25519 signing key with its key id. `Debug` never shows the key.
pub struct SigningKey {
    kid: String,
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// A fresh key from the OS random generator.
    pub fn generate(kid: impl Into<String>) -> Self {
        Self { kid: kid.into(), key: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    /// A key from its 32-byte secret seed.
    pub fn from_bytes(kid: impl Into<String>, secret: &[u8; 32]) -> Self {
        Self { kid: kid.into(), key: ed25519_dalek::SigningKey::from_bytes(secret) }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The 32-byte secret seed, for sealing the key at rest. Handle with care.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public half, as published in the JWKS.
    pub fn public_jwk(&self) -> Jwk {
        Jwk::ed25519(self.kid.clone(), &self.verifying_key())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("key", &"[redacted]").finish()
    }
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Sign `claims` into a compact JWS: `base64url(header).base64url(payload).base64url(sig)`.
pub fn sign(key: &SigningKey, claims: &Claims) -> String {
    let header = HeaderOut { alg: ALGORITHM, typ: TOKEN_TYPE, kid: &key.kid };
    // Serializing these structs cannot fail (no maps with non-string keys, no custom
    // `Serialize`), so the empty fallback is unreachable; it only avoids a panic path.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = String::with_capacity((header.len() + payload.len() + 64) * 4 / 3 + 4);
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = key.key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    token
}

/// What a token must satisfy besides a good signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

impl Validation {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self { issuer: issuer.into(), audience: audience.into(), leeway: DEFAULT_LEEWAY }
    }

    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Check the time window, audience and issuer of signature-verified claims.
    pub fn check(&self, claims: &Claims, now: i64) -> Result<(), AuthError> {
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let latest_ok = now.saturating_add(leeway);
        if now >= claims.exp.saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > latest_ok) {
            return Err(AuthError::NotYetValid);
        }
        // A token "issued" well after now was minted by a skewed or compromised issuer.
        if claims.iat > latest_ok {
            return Err(AuthError::IssuedInFuture);
        }
        if claims.aud != self.audience {
            return Err(AuthError::WrongAudience);
        }
        if claims.iss != self.issuer {
            return Err(AuthError::WrongIssuer);
        }
        Ok(())
    }
}

/// Where verification finds public keys by `kid`.
pub trait KeyLookup {
    fn verifying_key(&self, kid: &str) -> Option<VerifyingKey>;
}

impl KeyLookup for JwkSet {
    fn verifying_key(&self, kid: &str) -> Option<VerifyingKey> {
        self.get(kid).copied()
    }
}

/// A structurally valid token whose signature has not been checked yet. Only [`decode`] makes
/// one and only [`Unverified::verify`] gets claims out of it.
pub struct Unverified<'a> {
    kid: String,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Signature,
}

impl Unverified<'_> {
    /// The key id the header names; unauthenticated input until [`Unverified::verify`] succeeds.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Check the signature with `key`, then parse and validate the claims at time `now`
    /// (seconds since the Unix epoch).
    pub fn verify(self, key: &VerifyingKey, validation: &Validation, now: i64) -> Result<Claims, AuthError> {
        // verify_strict also rejects small-order keys and non-canonical signatures, so one token
        // has exactly one valid encoding.
        key.verify_strict(self.signing_input.as_bytes(), &self.signature).map_err(|_| AuthError::BadSignature)?;
        // serde's derive rejects duplicate fields, so a claim cannot be read two ways.
        let claims: Claims = serde_json::from_slice(&self.payload)
            .map_err(|_| AuthError::InvalidClaims("payload is not a valid claims object"))?;
        validation.check(&claims, now)?;
        Ok(claims)
    }
}

impl fmt::Debug for Unverified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unverified").field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    // Presence alone matters: `"crit": null` is rejected too.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, AuthError> {
    // The engine rejects padding, whitespace, the standard alphabet and non-zero trailing bits.
    URL_SAFE_NO_PAD.decode(part).map_err(|_| AuthError::Malformed(what))
}

/// Parse a compact JWS strictly and check its header, without verifying anything yet.
pub fn decode(token: &str) -> Result<Unverified<'_>, AuthError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::TooLarge);
    }
    let (signing_input, signature) =
        token.rsplit_once('.').ok_or(AuthError::Malformed("expected three dot-separated parts"))?;
    let (header, payload) =
        signing_input.split_once('.').ok_or(AuthError::Malformed("expected three dot-separated parts"))?;
    if payload.contains('.') {
        return Err(AuthError::Malformed("expected three dot-separated parts"));
    }
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(AuthError::Malformed("empty part"));
    }

    let header = b64(header, "header is not base64url")?;
    let header: RawHeader =
        serde_json::from_slice(&header).map_err(|_| AuthError::Malformed("header is not a valid JSON object"))?;
    // Allow-list, exact match: no "none", no HMAC, no case games.
    if header.alg != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm);
    }
    // We implement no extensions, and RFC 7515 says unknown critical ones must fail.
    if header.crit {
        return Err(AuthError::UnsupportedHeader("crit"));
    }
    if header.typ.as_deref().is_some_and(|typ| typ != TOKEN_TYPE) {
        return Err(AuthError::UnsupportedHeader("typ"));
    }
    let kid = header.kid.filter(|kid| !kid.is_empty()).ok_or(AuthError::Malformed("header has no kid"))?;

    let payload = b64(payload, "payload is not base64url")?;
    let signature = b64(signature, "signature is not base64url")?;
    let signature: [u8; 64] =
        signature.as_slice().try_into().map_err(|_| AuthError::Malformed("signature is not 64 bytes"))?;

    Ok(Unverified { kid, signing_input, payload, signature: Signature::from_bytes(&signature) })
}

/// Decode, find the key by `kid`, verify and validate: the whole check for a synchronous key set.
pub fn verify<K: KeyLookup + ?Sized>(
    token: &str,
    keys: &K,
    validation: &Validation,
    now: i64,
) -> Result<Claims, AuthError> {
    let unverified = decode(token)?;
    let key = keys.verifying_key(unverified.kid()).ok_or(AuthError::UnknownKey)?;
    unverified.verify(&key, validation, now)
}

/// Seconds since the Unix epoch, the unit of `exp`, `nbf` and `iat`.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;
    const ISS: &str = "cobro-identity";
    const AUD: &str = "cobro";

    fn claims() -> Claims {
        Claims {
            iss: ISS.into(),
            sub: "user-1".into(),
            aud: AUD.into(),
            exp: NOW + 900,
            iat: NOW,
            nbf: Some(NOW),
            jti: Uuid::now_v7().to_string(),
            tid: Uuid::now_v7(),
            knd: PrincipalKind::User,
            roles: vec!["accountant".into()],
            perms: vec!["invoices.read".into(), "invoices.write".into()],
            cid: None,
            svc: None,
        }
    }

    fn setup() -> (SigningKey, JwkSet, Validation) {
        let key = SigningKey::generate("k1");
        let set = JwkSet::new().with_key(key.kid(), key.verifying_key());
        (key, set, Validation::new(ISS, AUD))
    }

    fn enc(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Sign arbitrary header and payload JSON, to build tokens `sign` would never produce.
    fn sign_raw(key: &SigningKey, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", enc(header.as_bytes()), enc(payload.as_bytes()));
        let sig = key.key.sign(input.as_bytes());
        format!("{input}.{}", enc(&sig.to_bytes()))
    }

    fn payload_json(c: &Claims) -> String {
        serde_json::to_string(c).unwrap()
    }

    #[test]
    fn valid_token_verifies() {
        let (key, set, validation) = setup();
        let c = claims();
        let token = sign(&key, &c);
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(verify(&token, &set, &validation, NOW).unwrap(), c);
        // Optional claims may be absent, typ may be absent.
        let mut minimal = claims();
        minimal.nbf = None;
        let token = sign_raw(&key, r#"{"alg":"EdDSA","kid":"k1"}"#, &payload_json(&minimal));
        assert_eq!(verify(&token, &set, &validation, NOW).unwrap(), minimal);
    }

    #[test]
    fn alg_none_is_rejected() {
        let (key, set, validation) = setup();
        let payload = enc(payload_json(&claims()).as_bytes());
        let header = enc(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        // Unsigned, as RFC 7519 writes it: empty third part.
        let unsigned = format!("{header}.{payload}.");
        assert!(verify(&unsigned, &set, &validation, NOW).is_err());
        // And with a genuine EdDSA signature over the same input: alg still decides nothing.
        let signed = sign_raw(&key, r#"{"alg":"none","typ":"JWT","kid":"k1"}"#, &payload_json(&claims()));
        assert!(matches!(verify(&signed, &set, &validation, NOW), Err(AuthError::UnsupportedAlgorithm)));
        for alg in ["None", "NONE", "eddsa", "EDDSA", "EdDSA ", "ES256", "RS256", "Ed25519", ""] {
            let header = format!(r#"{{"alg":"{alg}","kid":"k1"}}"#);
            let token = sign_raw(&key, &header, &payload_json(&claims()));
            assert!(matches!(verify(&token, &set, &validation, NOW), Err(AuthError::UnsupportedAlgorithm)), "{alg}");
        }
        let token = sign_raw(&key, r#"{"alg":null,"kid":"k1"}"#, &payload_json(&claims()));
        assert!(verify(&token, &set, &validation, NOW).is_err());
    }

    #[test]
    fn hs256_keyed_with_the_public_key_is_rejected() {
        // Make sure the forgery below is a real HMAC-SHA256, not a strawman.
        assert_eq!(
            enc(&sha256(b"abc")),
            enc(&[
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0,
                0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad
            ])
        );
        assert_eq!(
            enc(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            enc(&[
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a,
                0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43
            ])
        );

        let (key, set, validation) = setup();
        let public = key.verifying_key().to_bytes();
        let jwk_x = key.public_jwk().x;
        let input = format!(
            "{}.{}",
            enc(br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#),
            enc(payload_json(&claims()).as_bytes())
        );
        for secret in [&public[..], jwk_x.as_bytes()] {
            let mac = hmac_sha256(secret, input.as_bytes());
            let token = format!("{input}.{}", enc(&mac));
            assert!(matches!(verify(&token, &set, &validation, NOW), Err(AuthError::UnsupportedAlgorithm)));
            // A 64-byte "signature" of the right length gets no further.
            let token = format!("{input}.{}", enc(&[mac, mac].concat()));
            assert!(matches!(verify(&token, &set, &validation, NOW), Err(AuthError::UnsupportedAlgorithm)));
        }
    }

    #[test]
    fn header_checks() {
        let (key, set, validation) = setup();
        let p = payload_json(&claims());
        let crit = sign_raw(&key, r#"{"alg":"EdDSA","kid":"k1","crit":["exp"],"exp":1}"#, &p);
        assert!(matches!(verify(&crit, &set, &validation, NOW), Err(AuthError::UnsupportedHeader("crit"))));
        let crit_null = sign_raw(&key, r#"{"alg":"EdDSA","kid":"k1","crit":null}"#, &p);
        assert!(matches!(verify(&crit_null, &set, &validation, NOW), Err(AuthError::UnsupportedHeader("crit"))));
        let typ = sign_raw(&key, r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#, &p);
        assert!(matches!(verify(&typ, &set, &validation, NOW), Err(AuthError::UnsupportedHeader("typ"))));
        let no_kid = sign_raw(&key, r#"{"alg":"EdDSA"}"#, &p);
        assert!(matches!(verify(&no_kid, &set, &validation, NOW), Err(AuthError::Malformed(_))));
        let empty_kid = sign_raw(&key, r#"{"alg":"EdDSA","kid":""}"#, &p);
        assert!(matches!(verify(&empty_kid, &set, &validation, NOW), Err(AuthError::Malformed(_))));
        let dup_alg = sign_raw(&key, r#"{"alg":"none","alg":"EdDSA","kid":"k1"}"#, &p);
        assert!(verify(&dup_alg, &set, &validation, NOW).is_err());
    }

    #[test]
    fn unknown_kid_and_wrong_key_are_rejected() {
        let (key, set, validation) = setup();
        let stranger = SigningKey::generate("k2");
        let token = sign(&stranger, &claims());
        assert!(matches!(verify(&token, &set, &validation, NOW), Err(AuthError::UnknownKey)));
        // Same kid, different key: the signature decides.
        let impostor = SigningKey::generate(key.kid());
        let token = sign(&impostor, &claims());
        assert!(matches!(verify(&token, &set, &validation, NOW), Err(AuthError::BadSignature)));
    }

    #[test]
    fn time_window_is_enforced_with_leeway() {
        let (key, set, validation) = setup();
        let at = |exp: i64, nbf: Option<i64>, iat: i64| {
            let mut c = claims();
            c.exp = exp;
            c.nbf = nbf;
            c.iat = iat;
            verify(&sign(&key, &c), &set, &validation, NOW)
        };
        assert!(at(NOW - 10, None, NOW - 900).is_ok(), "within leeway");
        assert!(matches!(at(NOW - 30, None, NOW - 900), Err(AuthError::Expired)));
        assert!(matches!(at(NOW - 3600, None, NOW - 7200), Err(AuthError::Expired)));
        assert!(matches!(at(i64::MIN, None, NOW), Err(AuthError::Expired)));
        assert!(at(NOW + 900, Some(NOW + 20), NOW).is_ok(), "within leeway");
        assert!(matches!(at(NOW + 900, Some(NOW + 120), NOW), Err(AuthError::NotYetValid)));
        assert!(matches!(at(NOW + 900, None, NOW + 3600), Err(AuthError::IssuedInFuture)));
        assert!(at(i64::MAX, None, NOW).is_ok(), "no overflow");

        let strict = validation.clone().with_leeway(Duration::ZERO);
        let mut c = claims();
        c.exp = NOW - 1;
        assert!(matches!(verify(&sign(&key, &c), &set, &strict, NOW), Err(AuthError::Expired)));
        c.exp = NOW;
        assert!(matches!(verify(&sign(&key, &c), &set, &strict, NOW), Err(AuthError::Expired)));
    }

    #[test]
    fn audience_and_issuer_must_match() {
        let (key, set, validation) = setup();
        let mut c = claims();
        c.aud = "cobro-admin".into();
        assert!(matches!(verify(&sign(&key, &c), &set, &validation, NOW), Err(AuthError::WrongAudience)));
        let mut c = claims();
        c.iss = "https://evil.example".into();
        assert!(matches!(verify(&sign(&key, &c), &set, &validation, NOW), Err(AuthError::WrongIssuer)));
        // An array audience is not a string audience.
        let mut v = serde_json::to_value(claims()).unwrap();
        v["aud"] = serde_json::json!([AUD]);
        let token = sign_raw(&key, r#"{"alg":"EdDSA","kid":"k1"}"#, &v.to_string());
        assert!(matches!(verify(&token, &set, &validation, NOW), Err(AuthError::InvalidClaims(_))));
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let (key, set, validation) = setup();
        let token = sign(&key, &claims());
        let (header, rest) = token.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();

        let mut elevated = claims();
        elevated.perms.push("vault.detokenize".into());
        let forged = format!("{header}.{}.{sig}", enc(payload_json(&elevated).as_bytes()));
        assert!(matches!(verify(&forged, &set, &validation, NOW), Err(AuthError::BadSignature)));

        let mut other_tenant = claims();
        other_tenant.tid = Uuid::now_v7();
        let forged = format!("{header}.{}.{sig}", enc(payload_json(&other_tenant).as_bytes()));
        assert!(matches!(verify(&forged, &set, &validation, NOW), Err(AuthError::BadSignature)));

        let mut sig_bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
        for i in [0, 31, 32, 63] {
            sig_bytes[i] ^= 0x01;
            let forged = format!("{header}.{}.{}", rest.split_once('.').unwrap().0, enc(&sig_bytes));
            assert!(matches!(verify(&forged, &set, &validation, NOW), Err(AuthError::BadSignature)));
            sig_bytes[i] ^= 0x01;
        }
    }

    #[test]
    fn payload_must_be_well_formed_claims() {
        let (key, set, validation) = setup();
        let header = r#"{"alg":"EdDSA","kid":"k1"}"#;
        let mut v = serde_json::to_value(claims()).unwrap();
        v["knd"] = serde_json::json!("admin");
        let token = sign_raw(&key, header, &v.to_string());
        assert!(matches!(verify(&token, &set, &validation, NOW), Err(AuthError::InvalidClaims(_))));
        let good = payload_json(&claims());
        let dup = format!(r#"{{"tid":"{}",{}"#, Uuid::now_v7(), &good[1..]);
        let token = sign_raw(&key, header, &dup);
        assert!(matches!(verify(&token, &set, &validation, NOW), Err(AuthError::InvalidClaims(_))));
        for payload in ["null", "[]", "\"x\"", "{}", "not json"] {
            let token = sign_raw(&key, header, payload);
            assert!(matches!(verify(&token, &set, &validation, NOW), Err(AuthError::InvalidClaims(_))));
        }
    }

    #[test]
    fn malformed_tokens_never_panic() {
        let (key, set, validation) = setup();
        let good = sign(&key, &claims());
        let parts: Vec<&str> = good.split('.').collect();
        let huge_header = enc(format!(r#"{{"alg":"EdDSA","kid":"k1","pad":"{}"}}"#, "a".repeat(9000)).as_bytes());
        let cases = [
            String::new(),
            ".".into(),
            "..".into(),
            "...".into(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{good}.{}", parts[2]),
            format!("{}..{}", parts[0], parts[2]),
            format!("*{good}"),
            good.replace('.', ". "),
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}==", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}", enc(b"not json"), parts[1], parts[2]),
            format!("{}.{}.{}", enc(b"[]"), parts[1], parts[2]),
            format!("{}.{}.{}", enc(br#"{"alg":"EdDSA","kid":"k1"} x"#), parts[1], parts[2]),
            format!("{}.{}.{}", enc(&[0xff, 0xfe]), parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], parts[1], &parts[2][..40]),
            format!("{}.{}.{}A", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], parts[1], "+".repeat(86)),
            format!("{huge_header}.{}.{}", parts[1], parts[2]),
            "a".repeat(MAX_TOKEN_LEN + 1),
            "é.é.é".into(),
            "\u{0}.\u{0}.\u{0}".into(),
        ];
        for token in &cases {
            assert!(verify(token, &set, &validation, NOW).is_err(), "accepted {token:.60}");
        }
        assert!(matches!(verify(&"a".repeat(MAX_TOKEN_LEN + 1), &set, &validation, NOW), Err(AuthError::TooLarge)));
        // Changing the unused trailing bits of the last base64 char gives a second encoding of
        // the same signature; the strict decoder refuses it.
        let last = parts[2].chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.find(last).unwrap();
        let twin = alphabet.chars().nth((idx & !0b1111) | ((idx + 1) & 0b1111)).unwrap();
        let sig_twin = format!("{}{twin}", &parts[2][..parts[2].len() - 1]);
        let token = format!("{}.{}.{sig_twin}", parts[0], parts[1]);
        assert!(matches!(verify(&token, &set, &validation, NOW), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn signing_key_debug_redacts_and_bytes_round_trip() {
        let seed = [7u8; 32];
        let key = SigningKey::from_bytes("k9", &seed);
        let debug = format!("{key:?}");
        assert!(debug.contains("k9") && debug.contains("redacted"));
        assert!(!debug.contains("7, 7") && !debug.contains(&enc(&seed)));
        let again = SigningKey::from_bytes("k9", &seed);
        assert_eq!(key.verifying_key(), again.verifying_key());
        let jwk = key.public_jwk();
        assert_eq!(
            (jwk.kid.as_str(), jwk.kty.as_str(), jwk.crv.as_str(), jwk.alg.as_str()),
            ("k9", "OKP", "Ed25519", "EdDSA")
        );
        assert_eq!(jwk.verifying_key().unwrap(), key.verifying_key());
    }

    #[allow(clippy::needless_range_loop)]
    fn sha256(data: &[u8]) -> [u8; 32] {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
            0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
            0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
            0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
            0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
            0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
            0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let mut h: [u32; 8] =
            [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        for chunk in msg.chunks(64) {
            let mut w = [0u32; 64];
            for i in 0..16 {
                w[i] = u32::from_be_bytes([chunk[4 * i], chunk[4 * i + 1], chunk[4 * i + 2], chunk[4 * i + 3]]);
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
            for i in 0..64 {
                let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
                let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                hh = g;
                g = f;
                f = e;
                e = d.wrapping_add(t1);
                d = c;
                c = b;
                b = a;
                a = t1.wrapping_add(t2);
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
                *x = x.wrapping_add(y);
            }
        }
        let mut out = [0u8; 32];
        for (o, v) in out.chunks_mut(4).zip(h) {
            o.copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&sha256(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(msg.iter().copied()).collect();
        let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(sha256(&inner)).collect();
        sha256(&outer)
    }
}

//! Authenticated encryption for vault records: AES-256-GCM under a per-record data key.
//!
//! Every card record gets its own [`DataKey`]; the record is sealed under it and the data key is
//! itself wrapped by a key-encryption key (see [`crate::keys`]). The associated data binds each
//! ciphertext to its row, so a ciphertext copied onto another row fails to open.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

/// Version byte leading every [`seal`] output, so the format can change without guessing.
pub const SEALED_VERSION: u8 = 0x01;
/// Length of the AES-GCM nonce: 96 bits, the size GCM is designed and standardised for.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM authentication tag (128 bits, never truncated).
pub const TAG_LEN: usize = 16;
/// Length of a data key: AES-256.
pub const KEY_LEN: usize = 32;
/// Bytes [`seal`] adds around the ciphertext: version, nonce and tag.
pub const SEALED_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Failures of sealing and opening. The messages never carry key or plaintext material, so they
/// are safe to log and to return to callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the ciphertext does not belong to this record or was altered")]
    Open,
    #[error("encryption failed")]
    Seal,
    #[error("bad key: {0}")]
    Key(&'static str),
}

/// A 256-bit AES key, wiped from memory when dropped.
///
/// It has no `Display` and a redacted `Debug`, so it cannot end up in logs or error messages by
/// accident.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut_slice());
        Self(bytes)
    }

    /// Takes ownership of raw key bytes; the caller's copy is moved in, not retained.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies a key out of a buffer (for example a freshly unwrapped one), checking its length.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let array: &[u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::Key("a data key must be 32 bytes"))?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(array);
        Ok(Self(key))
    }

    /// The raw key bytes, for wrapping under a key-encryption key.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn cipher(&self) -> Result<Aes256Gcm, CryptoError> {
        Aes256Gcm::new_from_slice(self.0.as_slice()).map_err(|_| CryptoError::Key("not a valid AES-256 key"))
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// AES-256-GCM with a caller-chosen nonce; returns ciphertext || tag, the `C || T` of the GCM
/// specification and of the NIST test vectors.
///
/// A nonce must never be reused with the same key; outside known-answer tests use [`seal`],
/// which draws a random one.
pub fn seal_with_nonce(
    key: &DataKey,
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let cipher = key.cipher()?;
    // The plaintext is copied into a wiped buffer so a failed encryption leaves no copy behind.
    let mut buffer = Zeroizing::new(Vec::with_capacity(plaintext.len().saturating_add(TAG_LEN)));
    buffer.extend_from_slice(plaintext);
    cipher.encrypt_in_place(&Nonce::from(*nonce), aad, &mut *buffer).map_err(|_| CryptoError::Seal)?;
    Ok(std::mem::take(&mut *buffer))
}

/// Inverse of [`seal_with_nonce`]: verifies the tag over ciphertext and `aad`, then decrypts.
///
/// The plaintext comes back in a buffer that is wiped when dropped.
pub fn open_with_nonce(
    key: &DataKey,
    nonce: &[u8; NONCE_LEN],
    ciphertext_and_tag: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if ciphertext_and_tag.len() < TAG_LEN {
        return Err(CryptoError::Open);
    }
    let cipher = key.cipher()?;
    let mut buffer = Zeroizing::new(ciphertext_and_tag.to_vec());
    cipher.decrypt_in_place(&Nonce::from(*nonce), aad, &mut *buffer).map_err(|_| CryptoError::Open)?;
    Ok(buffer)
}

/// Encrypts under a random 96-bit nonce: `0x01 || nonce (12) || ciphertext || tag (16)`.
///
/// Random nonces are safe while one key seals fewer than 2^32 messages (NIST SP 800-38D): a data
/// key seals a handful of values and a key-encryption key version one data key per record.
pub fn seal(key: &DataKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.try_fill_bytes(&mut nonce).map_err(|_| CryptoError::Seal)?;
    let body = seal_with_nonce(key, &nonce, plaintext, aad)?;
    let mut sealed = Vec::with_capacity(body.len().saturating_add(1 + NONCE_LEN));
    sealed.push(SEALED_VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&body);
    Ok(sealed)
}

/// Opens the output of [`seal`]. Short input, an unknown version byte, a wrong key, altered
/// bytes and different associated data all give the same [`CryptoError::Open`], so a caller
/// learns nothing about which check failed.
pub fn open(key: &DataKey, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < SEALED_OVERHEAD {
        return Err(CryptoError::Open);
    }
    let (version, rest) = sealed.split_first().ok_or(CryptoError::Open)?;
    if *version != SEALED_VERSION {
        return Err(CryptoError::Open);
    }
    let (nonce, ciphertext_and_tag) = rest.split_first_chunk::<NONCE_LEN>().ok_or(CryptoError::Open)?;
    open_with_nonce(key, nonce, ciphertext_and_tag, aad)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd-length hex");
        s.as_bytes().chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
    }

    struct Kat {
        key: &'static str,
        nonce: &'static str,
        plaintext: &'static str,
        aad: &'static str,
        ciphertext: &'static str,
        tag: &'static str,
    }

    /// NIST CAVP AES-256-GCM vectors, `gcmEncryptExtIV256.rsp` (96-bit IVs, 128-bit tags).
    const KATS: &[Kat] = &[
        Kat {
            key: "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4",
            nonce: "516c33929df5a3284ff463d7",
            plaintext: "",
            aad: "",
            ciphertext: "",
            tag: "bdc1ac884d332457a1d2664f168c76f0",
        },
        Kat {
            key: "78dc4e0aaf52d935c3c01eea57428f00ca1fd475f5da86a49c8dd73d68c8e223",
            nonce: "d79cf22d504cc793c3fb6c8a",
            plaintext: "",
            aad: "b96baa8c1c75a671bfb2d08d06be5f36",
            ciphertext: "",
            tag: "3e5d486aa2e30b22e040b85723a06e76",
        },
        Kat {
            key: "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
            nonce: "0d18e06c7c725ac9e362e1ce",
            plaintext: "2db5168e932556f8089a0622981d017d",
            aad: "",
            ciphertext: "fa4362189661d163fcd6a56d8bf0405a",
            tag: "d636ac1bbedd5cc3ee727dc2ab4a9489",
        },
        Kat {
            key: "dad89d9be9bba138cdcf8752c45b579d7e27c3dbb40f53e771dd8cfd500aa2d5",
            nonce: "cfb2aec82cfa6c7d89ee72ff",
            plaintext: "b526ba1050177d05b0f72f8d67",
            aad: "6e43784a91851a77667a02198e28dc32",
            ciphertext: "8b29e66e924ecae84f6d8f7d68",
            tag: "1e365805c8f28b2ed8a5cadfd9079158",
        },
        Kat {
            key: "83688deb4af8007f9b713b47cfa6c73e35ea7a3aa4ecdb414dded03bf7a0fd3a",
            nonce: "0b459724904e010a46901cf3",
            plaintext: "33d893a2114ce06fc15d55e454cf90c3",
            aad: "794a14ccd178c8ebfd1379dc704c5e208f9d8424",
            ciphertext: "cc66bee423e3fcd4c0865715e9586696",
            tag: "0fb291bd3dba94a1dfd8b286cfb97ac5",
        },
        Kat {
            key: "dc776f0156c15d032623854b625c61868e5db84b7b6f9fbd3672f12f0025e0f6",
            nonce: "67130951c4a57f6ae7f13241",
            plaintext: "9378a727a5119595ad631b12a5a6bc8a91756ef09c8d6eaa2b718fe86876da20",
            aad: "fd0920faeb7b212932280a009bac969145e5c316cf3922622c3705c3457c4e9f\
                  124b2076994323fbcfb523f8ed16d241",
            ciphertext: "6d958c20870d401a3c1f7a0ac092c97774d451c09f7aae992a8841ff0ab9d60d",
            tag: "b876831b4ecd7242963b040aa45c4114",
        },
        Kat {
            key: "148579a3cbca86d5520d66c0ec71ca5f7e41ba78e56dc6eebd566fed547fe691",
            nonce: "b08a5ea1927499c6ecbfd4e0",
            plaintext: "9d0b15fdf1bd595f91f8b3abc0f7dec927dfd4799935a1795d9ce00c9b879434\
                        420fe42c275a7cd7b39d638fb81ca52b49dc41",
            aad: "e4f963f015ffbb99ee3349bbaf7e8e8e6c2a71c230a48f9d59860a29091d2747\
                  e01a5ca572347e247d25f56ba7ae8e05cde2be3c97931292c02370208ecd097e\
                  f692687fecf2f419d3200162a6480a57dad408a0dfeb492e2c5d",
            ciphertext: "2097e372950a5e9383c675e89eea1c314f999159f5611344b298cda45e628437\
                         16f215f82ee663919c64002a5c198d7878fd3f",
            tag: "adbecdb0d5c2224d804d2886ff9a5760",
        },
        Kat {
            key: "ff9506b4d46ba54128876fadfcc673a4c927c618ea7d95cfcaa508cbc8f7fc66",
            nonce: "3742ad2208a0484345eee1be",
            plaintext: "7fd0d6cadc92cad27bb2d7d8c8",
            aad: "f1360a27fdc244be8739d85af6491c762a693aafe668c449515fdeeedb6a90ae\
                  ee3891bbc8b69adc6a6426cb12fcdebc32c9f58c5259d128b91efa28620a3a9a\
                  0168b0ff5e76951cb41647ba4aa1f87fac0d97ac580e42cffc7e",
            ciphertext: "bdb8346b28eb4d7226493611a6",
            tag: "7484d827b767647f44c7f94a39f8175c",
        },
    ];

    struct Decoded {
        key: DataKey,
        nonce: [u8; NONCE_LEN],
        plaintext: Vec<u8>,
        aad: Vec<u8>,
        expected: Vec<u8>,
    }

    fn decode(kat: &Kat) -> Decoded {
        let mut expected = hex(kat.ciphertext);
        expected.extend_from_slice(&hex(kat.tag));
        Decoded {
            key: DataKey::try_from_slice(&hex(kat.key)).unwrap(),
            nonce: hex(kat.nonce).try_into().unwrap(),
            plaintext: hex(kat.plaintext),
            aad: hex(kat.aad),
            expected,
        }
    }

    #[test]
    fn test_hex_decoder_is_right() {
        assert_eq!(hex(""), Vec::<u8>::new());
        assert_eq!(hex("00ff7a10"), vec![0x00, 0xff, 0x7a, 0x10]);
    }

    #[test]
    fn test_vector_set_covers_plaintext_with_aad() {
        let both = KATS.iter().filter(|k| !k.plaintext.is_empty() && !k.aad.is_empty()).count();
        assert!(both >= 4);
        assert!(KATS.len() >= 6);
    }

    #[test]
    fn test_nist_vectors_seal_to_expected_ciphertext_and_tag() {
        for (i, kat) in KATS.iter().enumerate() {
            let v = decode(kat);
            let sealed = seal_with_nonce(&v.key, &v.nonce, &v.plaintext, &v.aad).unwrap();
            assert_eq!(sealed, v.expected, "vector {i}");
        }
    }

    #[test]
    fn test_nist_vectors_open_to_expected_plaintext() {
        for (i, kat) in KATS.iter().enumerate() {
            let v = decode(kat);
            let opened = open_with_nonce(&v.key, &v.nonce, &v.expected, &v.aad).unwrap();
            assert_eq!(opened.as_slice(), v.plaintext.as_slice(), "vector {i}");
        }
    }

    #[test]
    fn test_nist_vectors_reject_any_flipped_byte() {
        for (i, kat) in KATS.iter().enumerate() {
            let v = decode(kat);
            for pos in 0..v.expected.len() {
                let mut tampered = v.expected.clone();
                tampered[pos] ^= 0x01;
                assert_eq!(
                    open_with_nonce(&v.key, &v.nonce, &tampered, &v.aad),
                    Err(CryptoError::Open),
                    "vector {i} byte {pos}"
                );
            }
            let mut other_aad = v.aad.clone();
            other_aad.push(0);
            assert_eq!(open_with_nonce(&v.key, &v.nonce, &v.expected, &other_aad), Err(CryptoError::Open));
            let mut other_nonce = v.nonce;
            other_nonce[0] ^= 0x80;
            assert_eq!(open_with_nonce(&v.key, &other_nonce, &v.expected, &v.aad), Err(CryptoError::Open));
        }
    }

    #[test]
    fn test_open_with_nonce_rejects_input_shorter_than_a_tag() {
        let key = DataKey::generate();
        let nonce = [7u8; NONCE_LEN];
        for len in 0..TAG_LEN {
            assert_eq!(open_with_nonce(&key, &nonce, &vec![0u8; len], b""), Err(CryptoError::Open));
        }
    }

    #[test]
    fn test_seal_open_round_trip() {
        let key = DataKey::generate();
        let aad = b"card:0191c3a4-row";
        for plaintext in [&b""[..], b"4111111111111111", &[0xabu8; 1000][..]] {
            let sealed = seal(&key, plaintext, aad).unwrap();
            assert_eq!(sealed.len(), plaintext.len() + SEALED_OVERHEAD);
            assert_eq!(sealed[0], SEALED_VERSION);
            assert_eq!(open(&key, &sealed, aad).unwrap().as_slice(), plaintext);
        }
    }

    #[test]
    fn test_seal_layout_is_version_nonce_then_gcm_output() {
        let key = DataKey::generate();
        let sealed = seal(&key, b"4242424242424242", b"row-1").unwrap();
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().unwrap();
        let opened = open_with_nonce(&key, &nonce, &sealed[1 + NONCE_LEN..], b"row-1").unwrap();
        assert_eq!(opened.as_slice(), b"4242424242424242");
    }

    #[test]
    fn test_two_seals_of_the_same_plaintext_differ() {
        let key = DataKey::generate();
        let a = seal(&key, b"4111111111111111", b"row").unwrap();
        let b = seal(&key, b"4111111111111111", b"row").unwrap();
        assert_ne!(a, b);
        assert_ne!(a[1..1 + NONCE_LEN], b[1..1 + NONCE_LEN]);
    }

    #[test]
    fn test_open_rejects_tampering_in_every_byte() {
        let key = DataKey::generate();
        let sealed = seal(&key, b"5555555555554444", b"row-7").unwrap();
        for pos in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[pos] ^= 0x40;
            assert_eq!(open(&key, &tampered, b"row-7"), Err(CryptoError::Open), "byte {pos}");
        }
    }

    #[test]
    fn test_open_rejects_other_aad_and_other_key() {
        let key = DataKey::generate();
        let sealed = seal(&key, b"5555555555554444", b"row-7").unwrap();
        assert_eq!(open(&key, &sealed, b"row-8"), Err(CryptoError::Open));
        assert_eq!(open(&key, &sealed, b""), Err(CryptoError::Open));
        assert_eq!(open(&DataKey::generate(), &sealed, b"row-7"), Err(CryptoError::Open));
    }

    #[test]
    fn test_open_rejects_truncated_input() {
        let key = DataKey::generate();
        let sealed = seal(&key, b"4111111111111111", b"row").unwrap();
        for len in 0..sealed.len() {
            assert_eq!(open(&key, &sealed[..len], b"row"), Err(CryptoError::Open), "length {len}");
        }
        let empty = seal(&key, b"", b"row").unwrap();
        assert_eq!(empty.len(), SEALED_OVERHEAD);
        assert!(open(&key, &empty, b"row").unwrap().is_empty());
        assert_eq!(open(&key, &empty[..SEALED_OVERHEAD - 1], b"row"), Err(CryptoError::Open));
    }

    #[test]
    fn test_open_rejects_unknown_version() {
        let key = DataKey::generate();
        let mut sealed = seal(&key, b"4111111111111111", b"row").unwrap();
        for version in [0x00, 0x02, 0xff] {
            sealed[0] = version;
            assert_eq!(open(&key, &sealed, b"row"), Err(CryptoError::Open));
        }
    }

    #[test]
    fn test_data_key_constructors() {
        let bytes = [9u8; KEY_LEN];
        assert_eq!(DataKey::from_bytes(bytes).as_bytes(), &bytes);
        assert_eq!(DataKey::try_from_slice(&bytes).unwrap().as_bytes(), &bytes);
        for len in [0, 16, 31, 33, 64] {
            assert!(matches!(DataKey::try_from_slice(&vec![1u8; len]), Err(CryptoError::Key(_))));
        }
        assert_ne!(DataKey::generate().as_bytes(), DataKey::generate().as_bytes());
        let key = DataKey::generate();
        assert_eq!(key.clone().as_bytes(), key.as_bytes());
    }

    #[test]
    fn test_debug_is_redacted() {
        let key = DataKey::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{key:?} {key:#?}");
        assert_eq!(format!("{key:?}"), "DataKey([redacted])");
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab, ") && !shown.contains("abab"));
    }

    #[test]
    fn test_error_messages_carry_no_material() {
        assert_eq!(CryptoError::Open.to_string(), "the ciphertext does not belong to this record or was altered");
        assert_eq!(CryptoError::Seal.to_string(), "encryption failed");
        let err = DataKey::try_from_slice(&[0x5a; 5]).unwrap_err();
        assert_eq!(err.to_string(), "bad key: a data key must be 32 bytes");
    }
}

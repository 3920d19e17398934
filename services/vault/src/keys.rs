//! Key-encryption keys (KEKs): the keys that wrap each record's data key.
//!
//! Records are sealed under their own [`DataKey`]; only the wrapped data key is stored next to
//! them, together with the KEK version that wrapped it. Rotating the KEK means wrapping new data
//! keys under a new version (and re-wrapping old ones at leisure) without touching the records.

use std::future::Future;
use std::io::Read;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::domain::crypto::{self, DataKey, KEY_LEN};

/// Failures of a [`KeyProvider`]. The messages never carry key material, so they are safe to log.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key-encryption key version {0} is not available")]
    UnknownVersion(u32),
    #[error("the wrapped key does not belong to this record or KEK version, or was altered")]
    Unwrap,
    #[error("the key provider failed: {0}")]
    Provider(String),
    #[error("no key-encryption key: {0}")]
    Missing(String),
}

/// Where key-encryption keys live. The vault never sees a KEK through this interface, only
/// wrapped and unwrapped data keys, so a provider may keep its keys in hardware.
///
/// A cloud KMS maps onto it directly:
/// - each KEK version is one KMS key (or one version of a KMS key), named from the version
///   number; [`ensure_version`](KeyProvider::ensure_version) creates or looks it up before the
///   vault starts wrapping under it;
/// - [`wrap`](KeyProvider::wrap) is KMS `Encrypt` of the 32 data-key bytes, passing `aad` as the
///   encryption context (AWS) or additional authenticated data (GCP, Azure), and returns the
///   KMS ciphertext blob as is;
/// - [`unwrap`](KeyProvider::unwrap) is KMS `Decrypt` of that blob with the same context; a
///   context mismatch or an altered blob maps to [`KeyError::Unwrap`], throttling and network
///   failures to [`KeyError::Provider`].
///
/// The methods return `Send` futures because they run inside gRPC handlers and spawned tasks.
/// Version 0 is never valid, so a zeroed column cannot pass for a real version.
pub trait KeyProvider: Send + Sync + 'static {
    /// Short name for logs and metrics, e.g. `local` or `aws-kms`.
    fn name(&self) -> &'static str;

    /// Wraps `dek` under KEK `version`, bound to `aad` (the record's row identity).
    fn wrap(&self, version: u32, dek: &DataKey, aad: &[u8]) -> impl Future<Output = Result<Vec<u8>, KeyError>> + Send;

    /// Recovers the data key from [`wrap`](KeyProvider::wrap)'s output; fails unless `version`
    /// and `aad` are the ones it was wrapped with.
    fn unwrap(
        &self,
        version: u32,
        wrapped: &[u8],
        aad: &[u8],
    ) -> impl Future<Output = Result<DataKey, KeyError>> + Send;

    /// Makes KEK `version` usable: a KMS creates or looks up its key, the local provider only
    /// checks the number (it derives every version from its root).
    fn ensure_version(&self, version: u32) -> impl Future<Output = Result<(), KeyError>> + Send;
}

/// The label KEKs are derived under; changing it would orphan every wrapped key.
const KEK_LABEL: &[u8] = b"cobro-vault-kek-v";
/// Generous bound on a root key file: the key itself is 44 base64 characters.
const MAX_KEY_FILE_LEN: usize = 4096;
/// What a root key must look like, repeated in every parse error.
const ROOT_KEY_FORMAT: &str = "must be base64 of exactly 32 random bytes";

/// A provider for development and tests that derives every KEK version from one root key:
/// `KEK(v) = HMAC-SHA256(root, "cobro-vault-kek-v" || decimal(v))`.
///
/// Every replica holding the same root derives the same KEKs, and a new version needs no
/// storage. Anyone holding the root can unwrap every data key, so production uses a KMS.
pub struct LocalKeyProvider {
    root: Zeroizing<[u8; KEY_LEN]>,
}

impl LocalKeyProvider {
    /// Uses `bytes` as the root key; the caller's copy is moved in.
    pub fn from_root(bytes: [u8; KEY_LEN]) -> Self {
        Self { root: Zeroizing::new(bytes) }
    }

    /// Parses a root key given as standard base64 (surrounding whitespace is ignored), e.g. from
    /// an environment variable.
    pub fn from_base64(s: &str) -> Result<Self, KeyError> {
        Self::decode_root(s)
            .map(|root| Self { root })
            .ok_or_else(|| KeyError::Missing(format!("the vault root key {ROOT_KEY_FORMAT}")))
    }

    /// Reads a root key file holding standard base64.
    ///
    /// On unix the file must not be accessible by group or others, so a root key copied around
    /// with loose permissions is refused rather than used. Errors name the path, never the
    /// content.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display();
        let file = std::fs::File::open(path)
            .map_err(|e| KeyError::Missing(format!("cannot open the root key file {shown}: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file
                .metadata()
                .map_err(|e| KeyError::Missing(format!("cannot inspect the root key file {shown}: {e}")))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(KeyError::Missing(format!(
                    "the root key file {shown} is accessible by group or others (mode {:o}); \
                     run `chmod 600 {shown}`",
                    mode & 0o777
                )));
            }
        }
        // Capacity beyond the read limit means the buffer never reallocates, so no stray copy
        // of the key is left in freed memory.
        let mut contents = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN.saturating_mul(2)));
        file.take(u64::try_from(MAX_KEY_FILE_LEN.saturating_add(1)).unwrap_or(u64::MAX))
            .read_to_end(&mut contents)
            .map_err(|e| KeyError::Missing(format!("cannot read the root key file {shown}: {e}")))?;
        let invalid = || KeyError::Missing(format!("the root key file {shown} {ROOT_KEY_FORMAT}"));
        if contents.len() > MAX_KEY_FILE_LEN {
            return Err(invalid());
        }
        let text = std::str::from_utf8(&contents).map_err(|_| invalid())?;
        Self::decode_root(text).map(|root| Self { root }).ok_or_else(invalid)
    }

    /// A fresh random root key in the format [`from_base64`](Self::from_base64) and
    /// [`from_file`](Self::from_file) accept, for the admin command that provisions one.
    pub fn generate_root_base64() -> String {
        let mut root = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(root.as_mut_slice());
        STANDARD.encode(root.as_slice())
    }

    /// Decodes into wiped buffers only. Returns `None` rather than the decoder's error, which
    /// would quote an offending character of the key.
    fn decode_root(s: &str) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        let mut decoded = Zeroizing::new([0u8; KEY_LEN * 2]);
        let len = STANDARD.decode_slice(s.trim(), decoded.as_mut_slice()).ok()?;
        if len != KEY_LEN {
            return None;
        }
        let mut root = Zeroizing::new([0u8; KEY_LEN]);
        root.copy_from_slice(decoded.get(..KEY_LEN)?);
        Some(root)
    }

    /// Derives KEK `version`; version 0 is never valid.
    fn kek(&self, version: u32) -> Result<DataKey, KeyError> {
        if version == 0 {
            return Err(KeyError::UnknownVersion(0));
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(self.root.as_slice())
            .map_err(|_| KeyError::Provider("cannot key HMAC-SHA256 with the root key".to_owned()))?;
        mac.update(KEK_LABEL);
        mac.update(version.to_string().as_bytes());
        let derived = mac.finalize().into_bytes();
        DataKey::try_from_slice(&derived)
            .map_err(|_| KeyError::Provider("HMAC-SHA256 gave a key of the wrong length".to_owned()))
    }
}

impl std::fmt::Debug for LocalKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKeyProvider { root: [redacted] }")
    }
}

impl KeyProvider for LocalKeyProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn wrap(&self, version: u32, dek: &DataKey, aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        let kek = self.kek(version)?;
        crypto::seal(&kek, dek.as_bytes(), aad)
            .map_err(|e| KeyError::Provider(format!("cannot wrap a data key under version {version}: {e}")))
    }

    async fn unwrap(&self, version: u32, wrapped: &[u8], aad: &[u8]) -> Result<DataKey, KeyError> {
        let kek = self.kek(version)?;
        let dek = crypto::open(&kek, wrapped, aad).map_err(|_| KeyError::Unwrap)?;
        DataKey::try_from_slice(&dek).map_err(|_| KeyError::Unwrap)
    }

    async fn ensure_version(&self, version: u32) -> Result<(), KeyError> {
        self.kek(version).map(drop)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn provider() -> LocalKeyProvider {
        LocalKeyProvider::from_root([0x11; KEY_LEN])
    }

    /// A unique path in the temp directory, removed on drop.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new() -> Self {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            Self(std::env::temp_dir().join(format!("cobro-vault-key-{}-{nanos}-{n}", std::process::id())))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[cfg(unix)]
    fn write_with_mode(path: &Path, contents: &str, mode: u32) {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        // The umask may have narrowed the mode at creation; set it exactly.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[tokio::test]
    async fn test_wrap_unwrap_round_trip() {
        let keys = provider();
        let dek = DataKey::generate();
        let wrapped = keys.wrap(1, &dek, b"card:row-1").await.unwrap();
        assert_eq!(wrapped.len(), KEY_LEN + crypto::SEALED_OVERHEAD);
        assert!(!wrapped.windows(KEY_LEN).any(|w| w == dek.as_bytes()));
        let unwrapped = keys.unwrap(1, &wrapped, b"card:row-1").await.unwrap();
        assert_eq!(unwrapped.as_bytes(), dek.as_bytes());
        let again = keys.wrap(1, &dek, b"card:row-1").await.unwrap();
        assert_ne!(wrapped, again, "each wrap draws a fresh nonce");
    }

    #[tokio::test]
    async fn test_replicas_with_the_same_root_agree() {
        let dek = DataKey::generate();
        let wrapped = provider().wrap(3, &dek, b"row").await.unwrap();
        let unwrapped = provider().unwrap(3, &wrapped, b"row").await.unwrap();
        assert_eq!(unwrapped.as_bytes(), dek.as_bytes());
    }

    #[tokio::test]
    async fn test_unwrap_with_another_version_fails() {
        let keys = provider();
        let wrapped = keys.wrap(1, &DataKey::generate(), b"row").await.unwrap();
        assert!(matches!(keys.unwrap(2, &wrapped, b"row").await, Err(KeyError::Unwrap)));
        let wrapped = keys.wrap(10, &DataKey::generate(), b"row").await.unwrap();
        assert!(matches!(keys.unwrap(1, &wrapped, b"row").await, Err(KeyError::Unwrap)));
        assert!(keys.unwrap(10, &wrapped, b"row").await.is_ok());
    }

    #[tokio::test]
    async fn test_unwrap_with_another_aad_fails() {
        let keys = provider();
        let wrapped = keys.wrap(1, &DataKey::generate(), b"card:row-1").await.unwrap();
        assert!(matches!(keys.unwrap(1, &wrapped, b"card:row-2").await, Err(KeyError::Unwrap)));
        assert!(matches!(keys.unwrap(1, &wrapped, b"").await, Err(KeyError::Unwrap)));
    }

    #[tokio::test]
    async fn test_unwrap_with_another_root_fails() {
        let wrapped = provider().wrap(1, &DataKey::generate(), b"row").await.unwrap();
        let other = LocalKeyProvider::from_root([0x12; KEY_LEN]);
        assert!(matches!(other.unwrap(1, &wrapped, b"row").await, Err(KeyError::Unwrap)));
    }

    #[tokio::test]
    async fn test_unwrap_rejects_altered_truncated_and_wrong_length_keys() {
        let keys = provider();
        let wrapped = keys.wrap(1, &DataKey::generate(), b"row").await.unwrap();
        for pos in 0..wrapped.len() {
            let mut tampered = wrapped.clone();
            tampered[pos] ^= 0x01;
            assert!(matches!(keys.unwrap(1, &tampered, b"row").await, Err(KeyError::Unwrap)), "byte {pos}");
        }
        assert!(matches!(keys.unwrap(1, &wrapped[..wrapped.len() - 1], b"row").await, Err(KeyError::Unwrap)));
        assert!(matches!(keys.unwrap(1, b"", b"row").await, Err(KeyError::Unwrap)));
        // A validly sealed value that is not a 32-byte key is refused too.
        let kek = keys.kek(1).unwrap();
        let short = crypto::seal(&kek, &[7u8; 16], b"row").unwrap();
        assert!(matches!(keys.unwrap(1, &short, b"row").await, Err(KeyError::Unwrap)));
    }

    #[tokio::test]
    async fn test_version_zero_is_invalid() {
        let keys = provider();
        assert!(matches!(keys.ensure_version(0).await, Err(KeyError::UnknownVersion(0))));
        assert!(matches!(keys.wrap(0, &DataKey::generate(), b"row").await, Err(KeyError::UnknownVersion(0))));
        assert!(matches!(keys.unwrap(0, &[0u8; 61], b"row").await, Err(KeyError::UnknownVersion(0))));
        keys.ensure_version(1).await.unwrap();
        keys.ensure_version(u32::MAX).await.unwrap();
        assert_eq!(keys.name(), "local");
    }

    #[test]
    fn test_kek_derivation_is_hmac_of_the_versioned_label() {
        let keys = provider();
        let mut mac = Hmac::<Sha256>::new_from_slice(&[0x11; KEY_LEN]).unwrap();
        mac.update(b"cobro-vault-kek-v42");
        let expected = mac.finalize().into_bytes();
        assert_eq!(keys.kek(42).unwrap().as_bytes().as_slice(), &expected[..]);
        assert_ne!(keys.kek(1).unwrap().as_bytes(), keys.kek(2).unwrap().as_bytes());
        // "v1" || "1" must not collide with "v11": the version is the whole suffix.
        assert_ne!(keys.kek(1).unwrap().as_bytes(), keys.kek(11).unwrap().as_bytes());
    }

    #[test]
    fn test_from_base64_accepts_32_bytes() {
        let root = [0x5c; KEY_LEN];
        let encoded = STANDARD.encode(root);
        let keys = LocalKeyProvider::from_base64(&format!("  {encoded}\n")).unwrap();
        assert_eq!(keys.root.as_slice(), root.as_slice());
        let generated = LocalKeyProvider::generate_root_base64();
        assert_eq!(generated.len(), 44);
        assert!(LocalKeyProvider::from_base64(&generated).is_ok());
        assert_ne!(generated, LocalKeyProvider::generate_root_base64());
    }

    #[test]
    fn test_from_base64_errors() {
        let short = STANDARD.encode([1u8; 31]);
        let long = STANDARD.encode([1u8; 33]);
        let huge = STANDARD.encode([1u8; 200]);
        let unpadded = STANDARD.encode([1u8; KEY_LEN]).trim_end_matches('=').to_owned();
        for bad in ["", "   ", "not base64!", short.as_str(), long.as_str(), huge.as_str(), unpadded.as_str()] {
            match LocalKeyProvider::from_base64(bad) {
                Err(KeyError::Missing(msg)) => {
                    assert!(msg.contains("must be base64 of exactly 32 random bytes"), "{msg}");
                    assert!(!msg.contains('!'), "the message must not quote the input: {msg}");
                }
                other => panic!("expected Missing for {bad:?}, got {other:?}"),
            }
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn test_from_file_with_owner_only_mode_works() {
        let path = TempPath::new();
        let encoded = LocalKeyProvider::generate_root_base64();
        write_with_mode(&path.0, &format!("{encoded}\n"), 0o600);
        let from_file = LocalKeyProvider::from_file(&path.0).unwrap();
        let from_env = LocalKeyProvider::from_base64(&encoded).unwrap();
        let dek = DataKey::generate();
        let wrapped = from_file.wrap(1, &dek, b"row").await.unwrap();
        assert_eq!(from_env.unwrap(1, &wrapped, b"row").await.unwrap().as_bytes(), dek.as_bytes());
    }

    #[cfg(unix)]
    #[test]
    fn test_from_file_refuses_group_or_world_access() {
        let encoded = LocalKeyProvider::generate_root_base64();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let path = TempPath::new();
            write_with_mode(&path.0, &encoded, mode);
            match LocalKeyProvider::from_file(&path.0) {
                Err(KeyError::Missing(msg)) => {
                    assert!(msg.contains("chmod 600"), "{msg}");
                    assert!(msg.contains(&path.0.display().to_string()), "{msg}");
                    assert!(!msg.contains(&encoded), "{msg}");
                }
                other => panic!("expected Missing for mode {mode:o}, got {other:?}"),
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn test_from_file_errors_name_the_path_not_the_content() {
        let missing = TempPath::new();
        match LocalKeyProvider::from_file(&missing.0) {
            Err(KeyError::Missing(msg)) => assert!(msg.contains(&missing.0.display().to_string()), "{msg}"),
            other => panic!("expected Missing, got {other:?}"),
        }
        let secret_looking = "c2VjcmV0LXNlY3JldC1zZWNyZXQ=";
        for contents in [secret_looking, "", &"A".repeat(MAX_KEY_FILE_LEN + 10)] {
            let path = TempPath::new();
            write_with_mode(&path.0, contents, 0o600);
            match LocalKeyProvider::from_file(&path.0) {
                Err(KeyError::Missing(msg)) => {
                    assert!(msg.contains("must be base64 of exactly 32 random bytes"), "{msg}");
                    assert!(msg.contains(&path.0.display().to_string()), "{msg}");
                    assert!(!msg.contains(secret_looking), "{msg}");
                }
                other => panic!("expected Missing, got {other:?}"),
            }
        }
    }

    #[test]
    fn test_debug_is_redacted() {
        let keys = LocalKeyProvider::from_root([0xab; KEY_LEN]);
        let shown = format!("{keys:?} {keys:#?}");
        assert!(shown.contains("[redacted]"));
        assert!(!shown.contains("171") && !shown.contains("ab"));
    }

    #[test]
    fn test_error_messages_carry_no_material() {
        assert_eq!(KeyError::UnknownVersion(7).to_string(), "key-encryption key version 7 is not available");
        assert_eq!(
            KeyError::Unwrap.to_string(),
            "the wrapped key does not belong to this record or KEK version, or was altered"
        );
    }

    fn assert_send<T: Send>(_: &T) {}

    /// Compile-time check that any provider's futures can cross threads (tonic handlers,
    /// `tokio::spawn`); never called.
    #[allow(dead_code)]
    fn provider_futures_are_send<P: KeyProvider>(keys: &P, dek: &DataKey) {
        assert_send(&keys.wrap(1, dek, b"row"));
        assert_send(&keys.unwrap(1, b"", b"row"));
        assert_send(&keys.ensure_version(1));
    }

    #[test]
    fn test_local_provider_futures_are_send() {
        let keys = provider();
        let dek = DataKey::generate();
        assert_send(&keys.wrap(1, &dek, b"row"));
        assert_send(&keys.unwrap(1, b"", b"row"));
        assert_send(&keys.ensure_version(1));
        provider_futures_are_send(&keys, &dek);
    }

    #[tokio::test]
    async fn test_provider_works_inside_spawned_tasks() {
        let keys = std::sync::Arc::new(provider());
        let task_keys = std::sync::Arc::clone(&keys);
        let wrapped = tokio::spawn(async move {
            let dek = DataKey::from_bytes([3; KEY_LEN]);
            task_keys.wrap(5, &dek, b"row").await
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(keys.unwrap(5, &wrapped, b"row").await.unwrap().as_bytes(), &[3; KEY_LEN]);
    }
}

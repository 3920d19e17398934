//! Identity's public keys: JWK types, where they come from, and a cache that refreshes on
//! rotation without letting forged key ids hammer identity.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cobro_proto::identity::v1 as pb;
use cobro_proto::identity::v1::identity_service_client::IdentityServiceClient;
use ed25519_dalek::VerifyingKey;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tonic::transport::Channel;

use super::AuthError;

/// Default minimum time between two on-demand refreshes triggered by unknown key ids.
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Default deadline of one GetJwks call.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One public key in JWK form (RFC 7517; RFC 8037 for Ed25519), as identity publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kid: String,
    /// "OKP"
    pub kty: String,
    /// "Ed25519"
    pub crv: String,
    /// base64url (no padding) of the 32-byte public key.
    pub x: String,
    /// "EdDSA"; empty means unspecified (proto3 default).
    #[serde(default)]
    pub alg: String,
}

impl Jwk {
    /// The JWK of an Ed25519 public key.
    pub fn ed25519(kid: impl Into<String>, key: &VerifyingKey) -> Self {
        Self {
            kid: kid.into(),
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(key.to_bytes()),
            alg: super::jwt::ALGORITHM.to_owned(),
        }
    }

    /// The key, when this JWK is a usable Ed25519 verification key; otherwise why not.
    pub fn verifying_key(&self) -> Result<VerifyingKey, &'static str> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err("not an OKP/Ed25519 key");
        }
        if !self.alg.is_empty() && self.alg != super::jwt::ALGORITHM {
            return Err("alg is not EdDSA");
        }
        if self.kid.is_empty() {
            return Err("empty kid");
        }
        let bytes = URL_SAFE_NO_PAD.decode(&self.x).map_err(|_| "x is not base64url")?;
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| "x is not 32 bytes")?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| "x is not a valid Ed25519 point")?;
        // Small-order keys make signatures that verify for many messages.
        if key.is_weak() {
            return Err("weak key");
        }
        Ok(key)
    }
}

impl From<pb::Jwk> for Jwk {
    fn from(jwk: pb::Jwk) -> Self {
        Self { kid: jwk.kid, kty: jwk.kty, crv: jwk.crv, x: jwk.x, alg: jwk.alg }
    }
}

impl From<Jwk> for pb::Jwk {
    fn from(jwk: Jwk) -> Self {
        Self { kid: jwk.kid, kty: jwk.kty, crv: jwk.crv, x: jwk.x, alg: jwk.alg }
    }
}

/// The usable Ed25519 keys of a JWKS, by key id. Anything else a JWKS holds is dropped on the way
/// in, so lookups only ever see keys we can verify with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    keys: BTreeMap<String, VerifyingKey>,
}

impl JwkSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep the usable keys of `jwks`. Other key types are skipped quietly; broken Ed25519 keys
    /// and duplicate kids are skipped with a warning (first one wins).
    pub fn from_jwks<I: IntoIterator<Item = Jwk>>(jwks: I) -> Self {
        let mut set = Self::new();
        for jwk in jwks {
            match jwk.verifying_key() {
                Ok(key) => match set.keys.entry(jwk.kid) {
                    Entry::Vacant(slot) => {
                        slot.insert(key);
                    }
                    Entry::Occupied(taken) => {
                        tracing::warn!(kid = %taken.key(), "ignoring JWK with a duplicate kid");
                    }
                },
                Err(reason) if jwk.kty != "OKP" => {
                    tracing::debug!(kid = %jwk.kid, kty = %jwk.kty, reason, "ignoring non-Ed25519 JWK");
                }
                Err(reason) => tracing::warn!(kid = %jwk.kid, reason, "ignoring unusable JWK"),
            }
        }
        set
    }

    /// Add or replace a key, returning the one it replaced.
    pub fn insert(&mut self, kid: impl Into<String>, key: VerifyingKey) -> Option<VerifyingKey> {
        self.keys.insert(kid.into(), key)
    }

    /// Builder form of [`JwkSet::insert`].
    pub fn with_key(mut self, kid: impl Into<String>, key: VerifyingKey) -> Self {
        self.insert(kid, key);
        self
    }

    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The set as JWKs, e.g. for identity to publish.
    pub fn to_jwks(&self) -> Vec<Jwk> {
        self.keys.iter().map(|(kid, key)| Jwk::ed25519(kid.clone(), key)).collect()
    }

    /// The set as the GetJwks response.
    pub fn to_proto(&self) -> pb::GetJwksResponse {
        pb::GetJwksResponse { keys: self.to_jwks().into_iter().map(pb::Jwk::from).collect() }
    }
}

impl FromIterator<Jwk> for JwkSet {
    fn from_iter<I: IntoIterator<Item = Jwk>>(iter: I) -> Self {
        Self::from_jwks(iter)
    }
}

impl From<pb::GetJwksResponse> for JwkSet {
    fn from(response: pb::GetJwksResponse) -> Self {
        Self::from_jwks(response.keys.into_iter().map(Jwk::from))
    }
}

/// Where a [`JwksCache`] gets the current key set. Boxed future so it stays dyn-compatible.
pub trait JwksSource: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, AuthError>>;
}

/// A key set held in memory: for tests, and for identity, which owns its keys. Replaceable, so
/// rotation can be simulated or applied.
#[derive(Debug, Default)]
pub struct StaticJwks {
    set: RwLock<JwkSet>,
}

impl StaticJwks {
    pub fn new(set: JwkSet) -> Self {
        Self { set: RwLock::new(set) }
    }

    /// Swap in a new key set; caches see it on their next refresh.
    pub fn replace(&self, set: JwkSet) {
        *self.set.write().unwrap_or_else(PoisonError::into_inner) = set;
    }

    pub fn current(&self) -> JwkSet {
        self.set.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl JwksSource for StaticJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, AuthError>> {
        let set = self.current();
        Box::pin(async move { Ok(set) })
    }
}

/// Identity's `GetJwks` over gRPC.
#[derive(Debug, Clone)]
pub struct IdentityJwks {
    client: IdentityServiceClient<Channel>,
    timeout: Duration,
}

impl IdentityJwks {
    pub fn new(channel: Channel) -> Self {
        Self { client: IdentityServiceClient::new(channel), timeout: DEFAULT_FETCH_TIMEOUT }
    }

    /// Deadline of one fetch, so a hung identity cannot stall requests waiting on a refresh.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl JwksSource for IdentityJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, AuthError>> {
        let mut client = self.client.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let mut request = tonic::Request::new(pb::GetJwksRequest {});
            request.set_timeout(timeout);
            match tokio::time::timeout(timeout, client.get_jwks(request)).await {
                Ok(Ok(response)) => Ok(JwkSet::from(response.into_inner())),
                Ok(Err(status)) => Err(AuthError::KeysUnavailable(format!(
                    "GetJwks failed: {:?}: {}",
                    status.code(),
                    status.message()
                ))),
                Err(_) => Err(AuthError::KeysUnavailable("GetJwks timed out".to_owned())),
            }
        })
    }
}

/// The current key set, refreshed from a [`JwksSource`].
///
/// Known kids are answered from memory. An unknown kid triggers a refresh, but at most one per
/// `min_refresh_interval` (concurrent misses wait for the refresh in flight instead of starting
/// their own), so tokens with made-up kids cost identity nothing. Identity should therefore
/// publish a new key before signing with it; [`JwksCache::run_periodic_refresh`] picks it up.
pub struct JwksCache {
    source: Arc<dyn JwksSource>,
    // Readers clone the Arc and drop the guard at once; the lock is never held across an await.
    keys: RwLock<Arc<JwkSet>>,
    // Serializes refreshes and remembers how the last one went.
    fetch_state: tokio::sync::Mutex<FetchState>,
    min_refresh_interval: Duration,
}

#[derive(Debug, Default)]
struct FetchState {
    started: Option<Instant>,
    failed: bool,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache")
            .field("kids", &self.current().kids().collect::<Vec<_>>())
            .field("min_refresh_interval", &self.min_refresh_interval)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// An empty cache; the first lookup (or [`JwksCache::refresh`]) fills it.
    pub fn new(source: Arc<dyn JwksSource>) -> Self {
        Self {
            source,
            keys: RwLock::new(Arc::new(JwkSet::new())),
            fetch_state: tokio::sync::Mutex::new(FetchState::default()),
            min_refresh_interval: DEFAULT_MIN_REFRESH_INTERVAL,
        }
    }

    /// Minimum time between refreshes caused by unknown kids.
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// The key set as of now.
    pub fn current(&self) -> Arc<JwkSet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Fetch and store; the caller holds the fetch lock.
    async fn fetch_locked(&self, state: &mut FetchState) -> Result<Arc<JwkSet>, AuthError> {
        state.started = Some(Instant::now());
        let set = match self.source.fetch().await {
            Ok(set) => set,
            Err(err) => {
                state.failed = true;
                return Err(err);
            }
        };
        state.failed = false;
        if set.is_empty() {
            tracing::warn!("JWKS source returned no usable keys; every token will be rejected");
        }
        let set = Arc::new(set);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&set);
        Ok(set)
    }

    /// The key for `kid`, refreshing once if it is unknown and the last refresh is old enough.
    pub async fn key(&self, kid: &str) -> Result<VerifyingKey, AuthError> {
        if let Some(key) = self.current().get(kid) {
            return Ok(*key);
        }
        let mut state = self.fetch_state.lock().await;
        // Someone may have refreshed while we waited for the lock.
        if let Some(key) = self.current().get(kid) {
            return Ok(*key);
        }
        if state.started.is_some_and(|at| at.elapsed() < self.min_refresh_interval) {
            // While identity is unreachable, say so (retryable) rather than condemn a token that
            // may be signed with a key we have not seen yet.
            return Err(if state.failed {
                AuthError::KeysUnavailable("last JWKS fetch failed".to_owned())
            } else {
                AuthError::UnknownKey
            });
        }
        let set = self.fetch_locked(&mut state).await?;
        set.get(kid).copied().ok_or(AuthError::UnknownKey)
    }

    /// Fetch the key set now, whatever the interval. On failure the old keys stay.
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let mut state = self.fetch_state.lock().await;
        self.fetch_locked(&mut state).await.map(drop)
    }

    /// Refresh every `period` forever (failures are logged and retried next period). Spawn it,
    /// or select it against shutdown.
    pub async fn run_periodic_refresh(&self, period: Duration) {
        // tokio's interval panics on a zero period.
        let mut ticker = tokio::time::interval(period.max(Duration::from_secs(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; startup loads keys with `refresh` or on first use.
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if let Err(error) = self.refresh().await {
                tracing::warn!(%error, "periodic JWKS refresh failed; keeping the previous keys");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::auth::jwt::SigningKey;

    /// A source that counts fetches, and can be told to fail.
    struct Counting {
        inner: StaticJwks,
        fetches: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Counting {
        fn new(set: JwkSet) -> Arc<Self> {
            Arc::new(Self { inner: StaticJwks::new(set), fetches: AtomicUsize::new(0), fail: Default::default() })
        }
        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    impl JwksSource for Counting {
        fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, AuthError>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Box::pin(async { Err(AuthError::KeysUnavailable("down".into())) });
            }
            self.inner.fetch()
        }
    }

    fn set_of(keys: &[&SigningKey]) -> JwkSet {
        keys.iter().map(|k| k.public_jwk()).collect()
    }

    #[test]
    fn jwk_round_trips_through_proto_and_json() {
        let key = SigningKey::generate("k1");
        let set = set_of(&[&key]);
        let proto = set.to_proto();
        assert_eq!(proto.keys.len(), 1);
        assert_eq!(proto.keys[0].kty, "OKP");
        assert_eq!(JwkSet::from(proto), set);
        let json = serde_json::to_string(&key.public_jwk()).unwrap();
        let back: Jwk = serde_json::from_str(&json).unwrap();
        assert_eq!(back.verifying_key().unwrap(), key.verifying_key());
    }

    #[test]
    fn unusable_keys_are_ignored() {
        let good = SigningKey::generate("good");
        let mut rsa = good.public_jwk();
        rsa.kid = "rsa".into();
        rsa.kty = "RSA".into();
        let mut x25519 = good.public_jwk();
        x25519.kid = "x".into();
        x25519.crv = "X25519".into();
        let mut hs = good.public_jwk();
        hs.kid = "hs".into();
        hs.alg = "HS256".into();
        let mut short = good.public_jwk();
        short.kid = "short".into();
        short.x = URL_SAFE_NO_PAD.encode([1u8; 31]);
        let mut padded = good.public_jwk();
        padded.kid = "padded".into();
        padded.x.push('=');
        let mut weak = good.public_jwk();
        weak.kid = "weak".into();
        // The identity point: small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        weak.x = URL_SAFE_NO_PAD.encode(identity);
        let mut no_alg = good.public_jwk();
        no_alg.kid = "no-alg".into();
        no_alg.alg.clear();
        let mut dup = SigningKey::generate("good").public_jwk();
        dup.kid = "good".into();

        let set: JwkSet = [good.public_jwk(), rsa, x25519, hs, short, padded, weak, no_alg, dup].into_iter().collect();
        assert_eq!(set.kids().collect::<Vec<_>>(), ["good", "no-alg"]);
        assert_eq!(set.get("good"), Some(&good.verifying_key()), "first of duplicate kids wins");
    }

    #[tokio::test]
    async fn unknown_kid_refreshes_at_most_once_per_interval() {
        let known = SigningKey::generate("k1");
        let source = Counting::new(set_of(&[&known]));
        let cache = Arc::new(JwksCache::new(source.clone()));

        assert_eq!(cache.key("k1").await.unwrap(), known.verifying_key());
        assert_eq!(source.fetches(), 1, "first use loads the keys");
        for _ in 0..20 {
            assert!(matches!(cache.key("forged").await, Err(AuthError::UnknownKey)));
        }
        // Concurrent misses share the budget too.
        let misses: Vec<_> = (0..20)
            .map(|i| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.key(&format!("forged-{i}")).await })
            })
            .collect();
        for miss in misses {
            assert!(miss.await.unwrap().is_err());
        }
        assert_eq!(source.fetches(), 1, "no refresh within the interval");
        assert_eq!(cache.key("k1").await.unwrap(), known.verifying_key());
        assert_eq!(source.fetches(), 1);

        // Once the interval has passed, a miss may refresh again (exactly once per miss here).
        let eager = JwksCache::new(source.clone()).with_min_refresh_interval(Duration::ZERO);
        assert!(eager.key("forged").await.is_err());
        assert!(eager.key("forged").await.is_err());
        assert_eq!(source.fetches(), 3);
    }

    #[tokio::test]
    async fn rotation_is_picked_up() {
        let old = SigningKey::generate("2025-01");
        let new = SigningKey::generate("2025-02");
        let source = Counting::new(set_of(&[&old]));
        let cache = JwksCache::new(source.clone()).with_min_refresh_interval(Duration::from_millis(1));
        cache.refresh().await.unwrap();
        assert!(cache.current().contains("2025-01"));

        // Identity publishes the new key next to the old one.
        source.inner.replace(set_of(&[&old, &new]));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(cache.key("2025-02").await.unwrap(), new.verifying_key());
        assert_eq!(cache.key("2025-01").await.unwrap(), old.verifying_key());

        // The old key is retired: a forced refresh drops it.
        source.inner.replace(set_of(&[&new]));
        cache.refresh().await.unwrap();
        assert!(!cache.current().contains("2025-01"));
        assert!(cache.current().contains("2025-02"));
    }

    #[tokio::test]
    async fn failed_refresh_keeps_old_keys_and_reports_unavailable() {
        let key = SigningKey::generate("k1");
        let source = Counting::new(set_of(&[&key]));
        let cache = JwksCache::new(source.clone()).with_min_refresh_interval(Duration::ZERO);
        cache.refresh().await.unwrap();
        source.fail.store(true, Ordering::SeqCst);
        assert!(matches!(cache.refresh().await, Err(AuthError::KeysUnavailable(_))));
        assert!(matches!(cache.key("k2").await, Err(AuthError::KeysUnavailable(_))));
        assert_eq!(cache.key("k1").await.unwrap(), key.verifying_key());

        // Within the interval after a failure, misses stay "unavailable" without new fetches.
        let cold = JwksCache::new(source.clone());
        let before = source.fetches();
        assert!(matches!(cold.key("k1").await, Err(AuthError::KeysUnavailable(_))));
        assert!(matches!(cold.key("k1").await, Err(AuthError::KeysUnavailable(_))));
        assert_eq!(source.fetches(), before + 1);
        source.fail.store(false, Ordering::SeqCst);
        cold.refresh().await.unwrap();
        assert_eq!(cold.key("k1").await.unwrap(), key.verifying_key());
        assert!(matches!(cold.key("forged").await, Err(AuthError::UnknownKey)));
    }
}

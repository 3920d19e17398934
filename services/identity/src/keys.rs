//! The signing keys: Ed25519 seeds sealed under the data key in Postgres, shared by every
//! identity replica.
//!
//! A new key is published at once but signs only from `signing_from` (now + publish delay), so
//! every verifier's JWKS cache holds it before the first token it signed arrives. The key it
//! replaces stays published until the last token it signed has expired.

use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cobro_kit::auth::{AuthError, Claims, JwkSet, JwksSource, SigningKey};
use sqlx::PgPool;

use crate::domain::secret::DataKey;
use crate::error::{IdentityError, Result};
use crate::store;

/// Tolerated clock skew, as the verifiers' leeway: a retired key stays published this much
/// longer than its last token's expiry.
const LEEWAY: Duration = Duration::from_secs(30);

struct LoadedKey {
    key: SigningKey,
    signing_from: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
}

pub struct KeyRing {
    pool: PgPool,
    data_key: Arc<DataKey>,
    token_ttl: Duration,
    publish_delay: Duration,
    keys: RwLock<Arc<Vec<LoadedKey>>>,
}

impl KeyRing {
    pub fn new(pool: PgPool, data_key: Arc<DataKey>, token_ttl: Duration, publish_delay: Duration) -> Self {
        Self { pool, data_key, token_ttl, publish_delay, keys: RwLock::new(Arc::new(Vec::new())) }
    }

    fn published_until(&self, retired_at: DateTime<Utc>) -> DateTime<Utc> {
        retired_at + chrono_duration(self.token_ttl + LEEWAY)
    }

    /// Read the keys from Postgres; on first start, create one that signs at once (no verifier
    /// can have an older key set to be out of sync with).
    pub async fn load(&self) -> Result<()> {
        let mut rows =
            store::keys::published(&self.pool, Utc::now() - chrono_duration(self.token_ttl + LEEWAY)).await?;
        if rows.is_empty() {
            self.create(Utc::now()).await?;
            rows = store::keys::published(&self.pool, Utc::now() - chrono_duration(self.token_ttl + LEEWAY)).await?;
        }
        let mut loaded = Vec::with_capacity(rows.len());
        for row in rows {
            let seed = self
                .data_key
                .open(&row.private_key_sealed, row.kid.as_bytes())
                .map_err(|_| IdentityError::Internal(format!("signing key {} cannot be decrypted", row.kid)))?;
            let seed: [u8; 32] = seed
                .try_into()
                .map_err(|_| IdentityError::Internal(format!("signing key {} has a bad length", row.kid)))?;
            loaded.push(LoadedKey {
                key: SigningKey::from_bytes(row.kid, &seed),
                signing_from: row.signing_from,
                retired_at: row.retired_at,
            });
        }
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
        Ok(())
    }

    async fn create(&self, signing_from: DateTime<Utc>) -> Result<String> {
        let kid = format!("k{}", uuid::Uuid::now_v7().simple());
        let key = SigningKey::generate(kid.clone());
        let seed = key_seed(&key);
        let sealed = self
            .data_key
            .seal(&seed, kid.as_bytes())
            .map_err(|_| IdentityError::Internal("cannot seal a signing key".to_owned()))?;
        store::keys::insert(&self.pool, &kid, &sealed, key.verifying_key().as_bytes(), signing_from).await?;
        Ok(kid)
    }

    /// Start a new key: published now, signing after the publish delay, when the current key
    /// retires. Returns the new key id.
    pub async fn rotate(&self) -> Result<String> {
        let signing_from = Utc::now() + chrono_duration(self.publish_delay);
        let kid = format!("k{}", uuid::Uuid::now_v7().simple());
        let key = SigningKey::generate(kid.clone());
        let sealed = self
            .data_key
            .seal(&key_seed(&key), kid.as_bytes())
            .map_err(|_| IdentityError::Internal("cannot seal a signing key".to_owned()))?;
        store::keys::rotate(&self.pool, &kid, &sealed, key.verifying_key().as_bytes(), signing_from).await?;
        self.load().await?;
        Ok(kid)
    }

    /// Sign with the newest key whose time has come.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let keys = Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner));
        let now = Utc::now();
        let key = keys
            .iter()
            .filter(|k| k.signing_from <= now)
            .max_by_key(|k| k.signing_from)
            .ok_or_else(|| IdentityError::Internal("no signing key loaded".to_owned()))?;
        Ok(cobro_kit::auth::jwt::sign(&key.key, claims))
    }

    /// The keys verifiers must know now: every key not yet retired (including the next one),
    /// and retired keys whose tokens may still be live.
    pub fn jwks(&self) -> JwkSet {
        let keys = Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner));
        let now = Utc::now();
        JwkSet::from_jwks(
            keys.iter()
                .filter(|k| k.retired_at.is_none_or(|retired| self.published_until(retired) > now))
                .map(|k| k.key.public_jwk()),
        )
    }

    /// Reload every `period` so replicas pick up keys another replica rotated in.
    pub async fn run_reload(self: Arc<Self>, period: Duration, shutdown: tokio_util::sync::CancellationToken) {
        let mut ticker = tokio::time::interval(period.max(Duration::from_secs(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    if let Err(error) = self.load().await {
                        tracing::warn!(%error, "reloading signing keys failed; keeping the keys in memory");
                    }
                }
            }
        }
    }
}

/// Identity verifies its own callers against its own keys, without a gRPC call to itself.
impl JwksSource for KeyRing {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = std::result::Result<JwkSet, AuthError>> + Send + '_>> {
        Box::pin(async move {
            self.load().await.map_err(|e| AuthError::KeysUnavailable(format!("signing keys: {e}")))?;
            Ok(self.jwks())
        })
    }
}

fn key_seed(key: &SigningKey) -> [u8; 32] {
    key.secret_bytes()
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

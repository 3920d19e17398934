//! The vault's use cases: tokenize, detokenize, metadata, delete, key rotation, and the two
//! background jobs (rewrap after rotation, shred expired temporary tokens).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Utc;
use cobro_kit::auth::{Principal, PrincipalKind};
use cobro_kit::error::InvalidField;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use rand::distributions::Alphanumeric;
use sha2::Sha256;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::domain::card::{self, Expiry, Pan};
use crate::domain::crypto::{self, DataKey};
use crate::error::{Result, VaultError};
use crate::keys::KeyProvider;
use crate::store::{self, AuditEntry, CardMeta};

/// Temporary tokens live at most a day.
pub const MAX_TTL_SECONDS: u32 = 86_400;
/// The platform operator's service name and permission (issued by identity).
const OPERATOR: &str = "operator";
const PLATFORM_OPERATE: &str = "platform:operate";
/// Tries when a concurrent rotation moves the record under our feet.
const KEY_RACE_RETRIES: usize = 3;

/// What the caller gave to store.
pub struct CardInput<'a> {
    pub pan: &'a str,
    pub exp_month: u32,
    pub exp_year: u32,
    pub holder_name: &'a str,
    pub dedupe: bool,
    pub ttl_seconds: u32,
}

/// A card read back for payments. `Debug` never shows the number.
pub struct Card {
    pub pan: Pan,
    pub exp_month: u32,
    pub exp_year: u32,
    pub holder_name: String,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card").field("pan", &self.pan).finish_non_exhaustive()
    }
}

pub struct Vault<P: KeyProvider> {
    pool: PgPool,
    provider: Arc<P>,
    // Unwrapped per-tenant fingerprint keys; they never change, only their wrapping does.
    fingerprint_keys: Mutex<HashMap<Uuid, Arc<Zeroizing<[u8; 32]>>>>,
    // The version new records are wrapped under; a write under a version that stopped being
    // active is refused by the database and retried with the new one.
    active: AtomicI32,
    rotated: Notify,
}

/// The sealed card is bound to its row: tenant, id, token and the expiry shown beside it, so
/// a ciphertext moved to another row, or an expiry edited in place, does not open.
fn card_aad(tenant_id: Uuid, id: Uuid, token: &str, exp_month: i16, exp_year: i16) -> Vec<u8> {
    let mut aad = b"cobro-vault-card\0".to_vec();
    aad.extend_from_slice(tenant_id.as_bytes());
    aad.extend_from_slice(id.as_bytes());
    aad.extend_from_slice(token.as_bytes());
    aad.extend_from_slice(&exp_month.to_be_bytes());
    aad.extend_from_slice(&exp_year.to_be_bytes());
    aad
}

/// The wrapped data key is bound to its row and to the KEK version that wrapped it.
fn dek_aad(tenant_id: Uuid, id: Uuid, token: &str, version: i32) -> Vec<u8> {
    let mut aad = b"cobro-vault-dek\0".to_vec();
    aad.extend_from_slice(tenant_id.as_bytes());
    aad.extend_from_slice(id.as_bytes());
    aad.extend_from_slice(token.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn fingerprint_aad(tenant_id: Uuid, version: i32) -> Vec<u8> {
    let mut aad = b"cobro-vault-fingerprint-key\0".to_vec();
    aad.extend_from_slice(tenant_id.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn canary_aad(version: i32) -> Vec<u8> {
    format!("cobro-vault-kek-canary-v{version}").into_bytes()
}

fn version_u32(version: i32) -> Result<u32> {
    u32::try_from(version).map_err(|_| VaultError::Internal(format!("bad KEK version {version}")))
}

fn actor(principal: &Principal) -> (String, String) {
    (principal.subject.clone(), principal.kind.as_str().to_owned())
}

/// The stored plaintext: the number, then the holder's name.
fn encode_card(pan: &Pan, holder: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(pan.expose().len() + 1 + holder.len()));
    out.extend_from_slice(pan.expose().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(holder.as_bytes());
    out
}

fn decode_card(plain: &[u8]) -> Result<(Pan, String)> {
    let text = std::str::from_utf8(plain).map_err(|_| VaultError::Integrity)?;
    let (digits, holder) = text.split_once('\n').ok_or(VaultError::Integrity)?;
    let pan = Pan::from_stored(Zeroizing::new(digits.to_owned())).ok_or(VaultError::Integrity)?;
    Ok((pan, holder.to_owned()))
}

fn new_token() -> String {
    let random: String = rand::rngs::OsRng.sample_iter(&Alphanumeric).take(32).map(char::from).collect();
    format!("tok_{random}")
}

/// Letters and underscores only: no digits, so a card number given as a purpose can never reach
/// the audit log.
fn purpose_ok(purpose: &str) -> bool {
    (1..=64).contains(&purpose.len())
        && purpose.starts_with(|c: char| c.is_ascii_lowercase())
        && purpose.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

fn check_token(token: &str) -> Result<()> {
    let ok = token.len() == 36 && token.starts_with("tok_") && token.bytes().skip(4).all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(InvalidField::new("token", "must be a card token (tok_ and 32 letters or digits)").into())
    }
}

impl<P: KeyProvider> Vault<P> {
    /// The vault over a migrated schema. Creates KEK version 1 on first start, and refuses to
    /// start when the provider's keys do not open what earlier runs wrapped.
    pub async fn start(pool: PgPool, provider: Arc<P>) -> Result<Self> {
        let zero = DataKey::from_bytes([0; 32]);
        if store::kek_versions(&pool).await?.is_empty() {
            provider.ensure_version(1).await?;
            let canary = provider.wrap(1, &zero, &canary_aad(1)).await?;
            store::insert_first_kek(&pool, &canary).await?;
        }
        for version in store::kek_versions(&pool).await? {
            if version.state == "retired" {
                continue;
            }
            let opened =
                provider.unwrap(version_u32(version.version)?, &version.canary, &canary_aad(version.version)).await;
            if !opened.is_ok_and(|key| key.as_bytes() == zero.as_bytes()) {
                return Err(VaultError::Keys(format!(
                    "the key-encryption key does not open version {} of this vault's keys: is it the key these records were written with?",
                    version.version
                )));
            }
        }
        let active = store::active_kek(&pool).await?.ok_or_else(no_active)?;
        Ok(Self {
            pool,
            provider,
            fingerprint_keys: Mutex::new(HashMap::new()),
            active: AtomicI32::new(active),
            rotated: Notify::new(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The tenant's fingerprint key, created on first use.
    async fn fingerprint_key(&self, tenant_id: Uuid) -> Result<Arc<Zeroizing<[u8; 32]>>> {
        if let Some(key) = self.fingerprint_keys.lock().unwrap_or_else(PoisonError::into_inner).get(&tenant_id) {
            return Ok(Arc::clone(key));
        }
        if store::fingerprint_key(&self.pool, tenant_id).await?.is_none() {
            let fresh = DataKey::generate();
            let mut tx = self.pool.begin().await?;
            let version = store::active_kek_for_share(&mut tx).await?.ok_or_else(no_active)?;
            let wrapped =
                self.provider.wrap(version_u32(version)?, &fresh, &fingerprint_aad(tenant_id, version)).await?;
            store::insert_fingerprint_key(&mut tx, tenant_id, &wrapped, version).await?;
            tx.commit().await?;
        }
        for _ in 0..KEY_RACE_RETRIES {
            let (wrapped, version, state) = store::fingerprint_key(&self.pool, tenant_id)
                .await?
                .ok_or_else(|| VaultError::Internal("fingerprint key vanished".to_owned()))?;
            if state == "retired" {
                continue;
            }
            match self.provider.unwrap(version_u32(version)?, &wrapped, &fingerprint_aad(tenant_id, version)).await {
                Ok(key) => {
                    let key = Arc::new(Zeroizing::new(*key.as_bytes()));
                    self.fingerprint_keys
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(tenant_id, Arc::clone(&key));
                    return Ok(key);
                }
                // Rewrapped between the read and the unwrap: read again.
                Err(_)
                    if store::fingerprint_key(&self.pool, tenant_id).await?.is_some_and(|(_, v, _)| v != version) =>
                {
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(VaultError::KekRetired)
    }

    fn fingerprint(key: &[u8; 32], pan: &Pan) -> Result<Vec<u8>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .map_err(|_| VaultError::Internal("fingerprint key".to_owned()))?;
        mac.update(pan.expose().as_bytes());
        Ok(mac.finalize().into_bytes().to_vec())
    }

    async fn audit_alone(&self, tenant_id: Uuid, entry: AuditEntry) -> Result<()> {
        store::audit(&self.pool, tenant_id, &entry).await?;
        Ok(())
    }

    /// Store a card; returns its metadata and whether a new token was made.
    pub async fn tokenize(&self, principal: &Principal, input: CardInput<'_>) -> Result<(CardMeta, bool)> {
        let customer = Self::may_write_cards(principal)?;
        let pan = Pan::parse("pan", input.pan)?;
        let expiry = Expiry::parse(input.exp_month, input.exp_year, Utc::now().date_naive())?;
        let holder = card::holder_name("holder_name", input.holder_name)?.unwrap_or_default();
        if input.ttl_seconds > MAX_TTL_SECONDS {
            return Err(InvalidField::new("ttl_seconds", format!("must be at most {MAX_TTL_SECONDS}")).into());
        }
        let tenant_id = principal.tenant_id;
        let key = self.fingerprint_key(tenant_id).await?;
        let fingerprint = Self::fingerprint(&key, &pan)?;
        let (who, kind) = actor(principal);
        let audit = |token: &str, outcome: &'static str| AuditEntry {
            action: "tokenize",
            actor: who.clone(),
            actor_kind: kind.clone(),
            token: token.to_owned(),
            outcome,
            detail: format!("{} ****{}", pan.brand().as_str(), pan.last4()),
            ..AuditEntry::default()
        };

        let id = Uuid::now_v7();
        let meta = CardMeta {
            tenant_id,
            id,
            token: new_token(),
            brand: pan.brand().as_str().to_owned(),
            last4: pan.last4().to_owned(),
            exp_month: i16::try_from(expiry.month).map_err(|_| InvalidField::new("exp_month", "is out of range"))?,
            exp_year: i16::try_from(expiry.year).map_err(|_| InvalidField::new("exp_year", "is out of range"))?,
            fingerprint,
            created_at: Utc::now(),
            expires_at: (input.ttl_seconds > 0)
                .then(|| Utc::now() + chrono::Duration::seconds(i64::from(input.ttl_seconds))),
            customer_id: customer,
        };
        // Only permanent cards stored by staff or services deduplicate: a temporary token must
        // not stand in for a permanent one, and a contact must not learn that another customer
        // stored the same card.
        let dedupe = input.dedupe && input.ttl_seconds == 0 && customer.is_none();
        let dek = DataKey::generate();
        let aad = card_aad(tenant_id, id, &meta.token, meta.exp_month, meta.exp_year);
        let ciphertext = crypto::seal(&dek, &encode_card(&pan, &holder), &aad)
            .map_err(|_| VaultError::Internal("seal".to_owned()))?;

        if dedupe {
            let mut conn = self.pool.acquire().await?;
            if let Some(existing) = store::deduped_card(&mut conn, tenant_id, &meta.fingerprint).await? {
                store::audit(&mut *conn, tenant_id, &audit(&existing.token, "existing")).await?;
                return Ok((existing, false));
            }
        }
        for _ in 0..KEY_RACE_RETRIES {
            let version = self.active.load(Ordering::Acquire);
            let wrapped =
                self.provider.wrap(version_u32(version)?, &dek, &dek_aad(tenant_id, id, &meta.token, version)).await?;
            let card = store::NewCard {
                meta: &meta,
                dedupe,
                ciphertext: &ciphertext,
                wrapped_dek: &wrapped,
                kek_version: version,
            };
            match store::insert_tokenized(&self.pool, &card, &audit(&meta.token, "ok")).await? {
                store::Inserted::Yes => return Ok((meta, true)),
                store::Inserted::StaleKek => {
                    // Another replica rotated: learn the new version and wrap again.
                    let active = store::active_kek(&self.pool).await?.ok_or_else(no_active)?;
                    self.active.store(active, Ordering::Release);
                }
                store::Inserted::Duplicate => {
                    // Another request stored the same card with dedupe a moment ago.
                    let mut conn = self.pool.acquire().await?;
                    let existing = store::deduped_card(&mut conn, tenant_id, &meta.fingerprint)
                        .await?
                        .ok_or(VaultError::NotFound)?;
                    store::audit(&mut *conn, tenant_id, &audit(&existing.token, "existing")).await?;
                    return Ok((existing, false));
                }
            }
        }
        Err(VaultError::Internal("the active key-encryption key kept changing".to_owned()))
    }

    /// The card behind a token, for the payments service only.
    pub async fn detokenize(&self, principal: &Principal, token: &str, purpose: &str) -> Result<Card> {
        let (who, kind) = actor(principal);
        let entry = |outcome: &'static str, detail: &str| AuditEntry {
            action: "detokenize",
            actor: who.clone(),
            actor_kind: kind.clone(),
            // Only well-formed values reach the log: a card number pasted into the token field
            // must not be stored, and a NUL would make the audit write itself fail.
            token: if check_token(token).is_ok() { token.to_owned() } else { "(malformed)".to_owned() },
            purpose: if purpose_ok(purpose) { purpose.to_owned() } else { "(malformed)".to_owned() },
            outcome,
            detail: detail.to_owned(),
        };
        if principal.kind != PrincipalKind::Service || principal.service.as_deref() != Some("payments") {
            self.audit_alone(principal.tenant_id, entry("denied", "caller is not the payments service")).await?;
            return Err(VaultError::PermissionDenied("only the payments service may detokenize".to_owned()));
        }
        check_token(token)?;
        if !purpose_ok(purpose) {
            return Err(InvalidField::new("purpose", "must be 1 to 64 of a-z and _ (e.g. charge, refund)").into());
        }
        let tenant_id = principal.tenant_id;
        for _ in 0..KEY_RACE_RETRIES {
            let Some(row) = store::sealed_card(&self.pool, tenant_id, token).await? else {
                self.audit_alone(tenant_id, entry("not_found", "")).await?;
                return Err(VaultError::NotFound);
            };
            if row.kek_state == "retired" {
                self.audit_alone(tenant_id, entry("refused", "record wrapped under a retired key")).await?;
                return Err(VaultError::KekRetired);
            }
            let dek = match self
                .provider
                .unwrap(
                    version_u32(row.kek_version)?,
                    &row.wrapped_dek,
                    &dek_aad(tenant_id, row.id, token, row.kek_version),
                )
                .await
            {
                Ok(dek) => dek,
                // A rotation rewrapped the record between our read and the unwrap: read again.
                Err(_)
                    if store::sealed_card(&self.pool, tenant_id, token)
                        .await?
                        .is_some_and(|r| r.kek_version != row.kek_version) =>
                {
                    continue;
                }
                Err(e) => {
                    self.audit_alone(tenant_id, entry("failed", "data key does not unwrap")).await?;
                    return Err(e.into());
                }
            };
            let aad = card_aad(tenant_id, row.id, token, row.exp_month, row.exp_year);
            let plain = match crypto::open(&dek, &row.ciphertext, &aad) {
                Ok(plain) => plain,
                Err(_) => {
                    self.audit_alone(tenant_id, entry("failed", "ciphertext does not belong to this record")).await?;
                    return Err(VaultError::Integrity);
                }
            };
            let (pan, holder_name) = decode_card(&plain)?;
            if pan.last4() != row.last4 {
                self.audit_alone(tenant_id, entry("failed", "card does not match its row")).await?;
                return Err(VaultError::Integrity);
            }
            self.audit_alone(tenant_id, entry("ok", "")).await?;
            return Ok(Card {
                pan,
                exp_month: u32::try_from(row.exp_month).unwrap_or(0),
                exp_year: u32::try_from(row.exp_year).unwrap_or(0),
                holder_name,
            });
        }
        Err(VaultError::Internal("the record kept moving between key versions".to_owned()))
    }

    pub async fn metadata(&self, principal: &Principal, token: &str) -> Result<CardMeta> {
        let customer = match principal.kind {
            PrincipalKind::Service
                if principal.service.as_deref() == Some("payments") && !principal.tenant_id.is_nil() =>
            {
                None
            }
            PrincipalKind::User | PrincipalKind::ApiKey if principal.has("payments:read") => None,
            PrincipalKind::Customer if principal.has("portal:read") => principal.customer_id,
            _ => return Err(VaultError::PermissionDenied("missing permission payments:read".to_owned())),
        };
        check_token(token)?;
        store::card_meta(&self.pool, principal.tenant_id, token, customer).await?.ok_or(VaultError::NotFound)
    }

    /// Who may store and delete cards: payments (acting for a tenant), staff with payments:write,
    /// and portal contacts (for their own customer, returned). The gateway never touches cards
    /// by its own credential: the portal's pages call payments as the signed-in person.
    fn may_write_cards(principal: &Principal) -> Result<Option<Uuid>> {
        match principal.kind {
            PrincipalKind::Service
                if principal.service.as_deref() == Some("payments") && !principal.tenant_id.is_nil() =>
            {
                Ok(None)
            }
            PrincipalKind::User if principal.has("payments:write") => Ok(None),
            PrincipalKind::Customer if principal.has("portal:pay") => principal
                .customer_id
                .map(Some)
                .ok_or_else(|| VaultError::PermissionDenied("contact without a customer".to_owned())),
            _ => Err(VaultError::PermissionDenied("missing permission payments:write".to_owned())),
        }
    }

    /// Crypto-shred a token.
    pub async fn delete(&self, principal: &Principal, token: &str) -> Result<()> {
        let customer = Self::may_write_cards(principal)?;
        check_token(token)?;
        let (who, kind) = actor(principal);
        let mut tx = self.pool.begin().await?;
        store::shred_card(&mut tx, principal.tenant_id, token, customer).await?.ok_or(VaultError::NotFound)?;
        store::audit(
            &mut *tx,
            principal.tenant_id,
            &AuditEntry {
                action: "delete",
                actor: who,
                actor_kind: kind,
                token: token.to_owned(),
                outcome: "ok",
                detail: "data key destroyed".to_owned(),
                ..AuditEntry::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    fn require_operator(principal: Option<&Principal>) -> Result<()> {
        match principal {
            None => Ok(()),
            Some(p) if p.require_service(OPERATOR).is_ok() && p.has(PLATFORM_OPERATE) => Ok(()),
            Some(_) => Err(VaultError::PermissionDenied("only the platform operator may manage vault keys".to_owned())),
        }
    }

    /// Start a new KEK version (the admin command passes no principal). The rewrap job moves
    /// existing keys to it.
    pub async fn rotate_kek(&self, principal: Option<&Principal>) -> Result<u32> {
        Self::require_operator(principal)?;
        let mut tx = self.pool.begin().await?;
        let version = store::max_kek_version(&mut tx).await? + 1;
        let v = version_u32(version)?;
        self.provider.ensure_version(v).await?;
        let canary = self.provider.wrap(v, &DataKey::from_bytes([0; 32]), &canary_aad(version)).await?;
        store::rotate_kek(&mut tx, version, &canary).await?;
        store::audit(
            &mut *tx,
            Uuid::nil(),
            &AuditEntry {
                action: "rotate_kek",
                actor: principal.map_or_else(|| "admin-command".to_owned(), |p| p.subject.clone()),
                actor_kind: principal.map_or_else(|| "operator".to_owned(), |p| p.kind.as_str().to_owned()),
                outcome: "ok",
                detail: format!("version {version} active"),
                ..AuditEntry::default()
            },
        )
        .await?;
        tx.commit().await?;
        self.active.store(version, Ordering::Release);
        self.rotated.notify_one();
        Ok(v)
    }

    pub async fn key_status(&self, principal: Option<&Principal>) -> Result<Vec<store::KekRow>> {
        Self::require_operator(principal)?;
        Ok(store::kek_versions(&self.pool).await?)
    }

    /// One batch of the rewrap pass: up to `batch` data keys (and fingerprint keys) after
    /// `cursor` move from retiring versions to the active one. A record that does not unwrap is
    /// audited and skipped (it keeps its version retiring, which an operator sees in
    /// `GetKeyStatus`), so one bad row cannot stop the others. Returns the keys moved and the
    /// cursor for the next batch (None when the pass is done).
    pub async fn rewrap_batch(
        &self,
        batch: u32,
        cursor: Option<(Uuid, String)>,
    ) -> Result<(usize, Option<(Uuid, String)>)> {
        let active = store::active_kek(&self.pool).await?.ok_or_else(no_active)?;
        let av = version_u32(active)?;
        let limit = i64::from(batch);
        let mut tx = self.pool.begin().await?;
        let mut moved = 0;
        let first_batch = cursor.is_none();
        let stale = store::stale_cards(&mut tx, cursor, limit).await?;
        let next =
            (stale.len() as i64 == limit).then(|| stale.last().map(|s| (s.tenant_id, s.token.clone()))).flatten();
        for s in &stale {
            let old_aad = dek_aad(s.tenant_id, s.id, &s.token, s.kek_version);
            match self.provider.unwrap(version_u32(s.kek_version)?, &s.wrapped, &old_aad).await {
                Ok(dek) => {
                    let wrapped = self.provider.wrap(av, &dek, &dek_aad(s.tenant_id, s.id, &s.token, active)).await?;
                    store::rewrap_card(&mut tx, s.tenant_id, &s.token, &wrapped, active).await?;
                    moved += 1;
                }
                Err(error) => {
                    tracing::error!(tenant = %s.tenant_id, token = %s.token, %error, "a data key does not unwrap; left for an operator");
                    store::audit(
                        &mut *tx,
                        s.tenant_id,
                        &AuditEntry {
                            action: "rewrap",
                            actor: "vault".to_owned(),
                            actor_kind: "service".to_owned(),
                            token: s.token.clone(),
                            outcome: "failed",
                            detail: format!("data key under version {} does not unwrap", s.kek_version),
                            ..AuditEntry::default()
                        },
                    )
                    .await?;
                }
            }
        }
        if first_batch {
            // Fingerprint keys are one per tenant: each pass takes them in one go.
            for f in store::stale_fingerprint_keys(&mut tx, None, i64::MAX).await? {
                let key = self
                    .provider
                    .unwrap(version_u32(f.kek_version)?, &f.wrapped, &fingerprint_aad(f.tenant_id, f.kek_version))
                    .await?;
                let wrapped = self.provider.wrap(av, &key, &fingerprint_aad(f.tenant_id, active)).await?;
                store::rewrap_fingerprint_key(&mut tx, f.tenant_id, &wrapped, active).await?;
                moved += 1;
            }
        }
        if next.is_none() {
            for version in store::retire_empty_keks(&mut tx).await? {
                store::audit(
                    &mut *tx,
                    Uuid::nil(),
                    &AuditEntry {
                        action: "retire_kek",
                        actor: "vault".to_owned(),
                        actor_kind: "service".to_owned(),
                        outcome: "ok",
                        detail: format!("version {version} retired: every key rewrapped"),
                        ..AuditEntry::default()
                    },
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok((moved, next))
    }

    /// A whole rewrap pass. Returns how many keys moved.
    pub async fn rewrap_all(&self, batch: u32) -> Result<usize> {
        let mut total = 0;
        let mut cursor = None;
        loop {
            let (moved, next) = self.rewrap_batch(batch, cursor).await?;
            total += moved;
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(total),
            }
        }
    }

    /// Shred expired temporary tokens, auditing each.
    pub async fn purge_expired(&self, batch: u32) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let shredded = store::shred_expired(&mut tx, i64::from(batch)).await?;
        for (tenant_id, token) in &shredded {
            store::audit(
                &mut *tx,
                *tenant_id,
                &AuditEntry {
                    action: "purge",
                    actor: "vault".to_owned(),
                    actor_kind: "service".to_owned(),
                    token: token.clone(),
                    outcome: "ok",
                    detail: "temporary token expired; data key destroyed".to_owned(),
                    ..AuditEntry::default()
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(shredded.len())
    }

    /// The background jobs: rewrap after rotations (at once when this replica rotated), purge
    /// expired temporary tokens.
    pub async fn run_jobs(self: Arc<Self>, jobs: crate::config::Jobs, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            if let Err(error) = self.rewrap_all(jobs.rewrap_batch).await {
                tracing::warn!(%error, "rewrapping data keys failed; retrying next round");
            }
            // Batches until one comes back short, so a steady stream of temporary tokens never
            // outlives its TTL by more than a round.
            loop {
                match self.purge_expired(jobs.rewrap_batch).await {
                    Ok(n) if n >= jobs.rewrap_batch as usize => {
                        tracing::info!(shredded = n, "expired temporary tokens shredded")
                    }
                    Ok(0) => break,
                    Ok(n) => {
                        tracing::info!(shredded = n, "expired temporary tokens shredded");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "purging expired tokens failed; retrying next round");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.rotated.notified() => {}
                _ = tokio::time::sleep(jobs.interval) => {}
            }
        }
    }
}

fn no_active() -> VaultError {
    VaultError::Internal("no active key-encryption key version".to_owned())
}

//! Every SQL statement of the vault. Card rows are addressed by `(tenant_id, token)`.

use chrono::{DateTime, Utc};
use cobro_kit::events::{NewEvent, PreparedEvent, prepare};
use cobro_proto::events::v1::VaultAudit;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

pub const TOPIC: &str = "cobro.vault.v1";

// --- key-encryption-key versions ---

#[derive(Debug, sqlx::FromRow)]
pub struct KekRow {
    pub version: i32,
    pub state: String,
    pub canary: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    /// Live records (cards and fingerprint keys) wrapped under this version.
    pub records: i64,
}

pub async fn kek_versions(pool: &PgPool) -> sqlx::Result<Vec<KekRow>> {
    sqlx::query_as(
        "SELECT k.version, k.state, k.canary, k.created_at, k.retired_at, \
         (SELECT count(*) FROM cards c WHERE c.kek_version = k.version AND c.deleted_at IS NULL) \
         + (SELECT count(*) FROM fingerprint_keys f WHERE f.kek_version = k.version) AS records \
         FROM kek_versions k ORDER BY k.version",
    )
    .fetch_all(pool)
    .await
}

/// Version 1, when there is none yet. Serialized so two replicas starting together agree.
pub async fn insert_first_kek(pool: &PgPool, canary: &[u8]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('vault.kek_versions'))").execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO kek_versions (version, state, canary) SELECT 1, 'active', $1 \
         WHERE NOT EXISTS (SELECT 1 FROM kek_versions)",
    )
    .bind(canary)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The active version, share-locked for the rest of the transaction: a rotation waits for
/// this transaction, and no record is written under a version that stopped being active.
pub async fn active_kek_for_share(conn: &mut PgConnection) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar("SELECT version FROM kek_versions WHERE state = 'active' FOR SHARE").fetch_optional(conn).await
}

pub async fn active_kek(pool: &PgPool) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar("SELECT version FROM kek_versions WHERE state = 'active'").fetch_optional(pool).await
}

/// Make `version` the active one; the previous active one starts retiring.
pub async fn rotate_kek(conn: &mut PgConnection, version: i32, canary: &[u8]) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('vault.kek_versions'))").execute(&mut *conn).await?;
    sqlx::query("UPDATE kek_versions SET state = 'retiring' WHERE state = 'active'").execute(&mut *conn).await?;
    sqlx::query("INSERT INTO kek_versions (version, state, canary) VALUES ($1, 'active', $2)")
        .bind(version)
        .bind(canary)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn max_kek_version(conn: &mut PgConnection) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM kek_versions").fetch_one(conn).await
}

/// Retire every retiring version that no longer wraps anything. Returns the versions retired.
/// The share locks wait for writes in flight (a tokenize that read the old version as active
/// just before the rotation) and hold new ones back, so the check sees every record.
pub async fn retire_empty_keks(conn: &mut PgConnection) -> sqlx::Result<Vec<i32>> {
    let retiring: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM kek_versions WHERE state = 'retiring')")
        .fetch_one(&mut *conn)
        .await?;
    if !retiring {
        return Ok(Vec::new());
    }
    sqlx::query("LOCK TABLE cards, fingerprint_keys IN SHARE MODE").execute(&mut *conn).await?;
    sqlx::query_scalar(
        "UPDATE kek_versions k SET state = 'retired', retired_at = now() WHERE k.state = 'retiring' \
         AND NOT EXISTS (SELECT 1 FROM cards c WHERE c.kek_version = k.version AND c.deleted_at IS NULL) \
         AND NOT EXISTS (SELECT 1 FROM fingerprint_keys f WHERE f.kek_version = k.version) \
         RETURNING k.version",
    )
    .fetch_all(conn)
    .await
}

// --- fingerprint keys ---

pub async fn fingerprint_key(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Option<(Vec<u8>, i32, String)>> {
    sqlx::query_as(
        "SELECT f.wrapped_key, f.kek_version, k.state FROM fingerprint_keys f \
         JOIN kek_versions k ON k.version = f.kek_version WHERE f.tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(pool)
    .await
}

/// Store the tenant's key unless another request stored one first.
pub async fn insert_fingerprint_key(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    wrapped: &[u8],
    version: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO fingerprint_keys (tenant_id, wrapped_key, kek_version) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(wrapped)
    .bind(version)
    .execute(conn)
    .await?;
    Ok(())
}

// --- cards ---

/// What may be shown about a card.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CardMeta {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub token: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: i16,
    pub exp_year: i16,
    pub fingerprint: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The customer whose portal contact stored the card.
    pub customer_id: Option<Uuid>,
}

const META: &str =
    "tenant_id, id, token, brand, last4, exp_month, exp_year, fingerprint, created_at, expires_at, customer_id";

pub struct NewCard<'a> {
    pub meta: &'a CardMeta,
    pub dedupe: bool,
    pub ciphertext: &'a [u8],
    pub wrapped_dek: &'a [u8],
    pub kek_version: i32,
}

/// The live deduplicated card with this fingerprint.
pub async fn deduped_card(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    fingerprint: &[u8],
) -> sqlx::Result<Option<CardMeta>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {META} FROM cards WHERE tenant_id = $1 AND fingerprint = $2 AND dedupe AND deleted_at IS NULL \
         AND (expires_at IS NULL OR expires_at > now())"
    )))
    .bind(tenant_id)
    .bind(fingerprint)
    .fetch_optional(conn)
    .await
}

/// A live card's metadata; with `customer`, only a card that customer's contact stored.
pub async fn card_meta(
    pool: &PgPool,
    tenant_id: Uuid,
    token: &str,
    customer: Option<Uuid>,
) -> sqlx::Result<Option<CardMeta>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {META} FROM cards WHERE tenant_id = $1 AND token = $2 AND deleted_at IS NULL \
         AND (expires_at IS NULL OR expires_at > now()) AND ($3::uuid IS NULL OR customer_id = $3)"
    )))
    .bind(tenant_id)
    .bind(token)
    .bind(customer)
    .fetch_optional(pool)
    .await
}

/// What decryption needs: the sealed card, its wrapped key and the state of the key's version.
#[derive(sqlx::FromRow)]
pub struct SealedCard {
    pub id: Uuid,
    pub ciphertext: Vec<u8>,
    pub wrapped_dek: Vec<u8>,
    pub kek_version: i32,
    pub kek_state: String,
    pub last4: String,
    pub exp_month: i16,
    pub exp_year: i16,
}

pub async fn sealed_card(pool: &PgPool, tenant_id: Uuid, token: &str) -> sqlx::Result<Option<SealedCard>> {
    sqlx::query_as(
        "SELECT c.id, c.ciphertext, c.wrapped_dek, c.kek_version, k.state AS kek_state, c.last4, c.exp_month, c.exp_year \
         FROM cards c JOIN kek_versions k ON k.version = c.kek_version \
         WHERE c.tenant_id = $1 AND c.token = $2 AND c.deleted_at IS NULL \
         AND c.ciphertext IS NOT NULL AND c.wrapped_dek IS NOT NULL \
         AND (c.expires_at IS NULL OR c.expires_at > now())",
    )
    .bind(tenant_id)
    .bind(token)
    .fetch_optional(pool)
    .await
}

/// Crypto-shred: the wrapped key and the ciphertext are destroyed; the metadata row remains
/// for the audit trail. Returns the card, or None when the tenant has no such live token.
pub async fn shred_card(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    token: &str,
    customer: Option<Uuid>,
) -> sqlx::Result<Option<CardMeta>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE cards SET wrapped_dek = NULL, ciphertext = NULL, fingerprint = '\\x', deleted_at = now() \
         WHERE tenant_id = $1 AND token = $2 AND deleted_at IS NULL AND ($3::uuid IS NULL OR customer_id = $3) \
         RETURNING {META}"
    )))
    .bind(tenant_id)
    .bind(token)
    .bind(customer)
    .fetch_optional(conn)
    .await
}

/// Shred up to `limit` expired temporary cards; returns (tenant, token) of each.
pub async fn shred_expired(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(
        "UPDATE cards SET wrapped_dek = NULL, ciphertext = NULL, fingerprint = '\\x', deleted_at = now() \
         WHERE (tenant_id, token) IN (SELECT tenant_id, token FROM cards WHERE expires_at <= now() AND deleted_at IS NULL \
                                   LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING tenant_id, token",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A record whose data key is wrapped under an old version.
#[derive(sqlx::FromRow)]
pub struct StaleKey {
    pub tenant_id: Uuid,
    pub id: Uuid,
    /// Empty for fingerprint keys.
    pub token: String,
    pub wrapped: Vec<u8>,
    pub kek_version: i32,
}

/// Up to `limit` cards wrapped under a retiring version, after `after` in (tenant, token)
/// order, locked (skipping rows other rewrappers hold). Rows under a retired version are not
/// touched: they stay unreadable.
pub async fn stale_cards(
    conn: &mut PgConnection,
    after: Option<(Uuid, String)>,
    limit: i64,
) -> sqlx::Result<Vec<StaleKey>> {
    let (after_tenant, after_token) = after.map_or((None, None), |(t, k)| (Some(t), Some(k)));
    sqlx::query_as(
        "SELECT c.tenant_id, c.id, c.token, c.wrapped_dek AS wrapped, c.kek_version FROM cards c \
         JOIN kek_versions k ON k.version = c.kek_version AND k.state = 'retiring' \
         WHERE c.deleted_at IS NULL AND ($1::uuid IS NULL OR (c.tenant_id, c.token) > ($1, $2)) \
         ORDER BY c.tenant_id, c.token LIMIT $3 FOR UPDATE OF c SKIP LOCKED",
    )
    .bind(after_tenant)
    .bind(after_token)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn rewrap_card(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    token: &str,
    wrapped: &[u8],
    version: i32,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE cards SET wrapped_dek = $3, kek_version = $4 WHERE tenant_id = $1 AND token = $2")
        .bind(tenant_id)
        .bind(token)
        .bind(wrapped)
        .bind(version)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn stale_fingerprint_keys(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<StaleKey>> {
    sqlx::query_as(
        "SELECT f.tenant_id, f.tenant_id AS id, '' AS token, f.wrapped_key AS wrapped, f.kek_version \
         FROM fingerprint_keys f JOIN kek_versions k ON k.version = f.kek_version AND k.state = 'retiring' \
         WHERE ($1::uuid IS NULL OR f.tenant_id > $1) ORDER BY f.tenant_id LIMIT $2 FOR UPDATE OF f SKIP LOCKED",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn rewrap_fingerprint_key(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    wrapped: &[u8],
    version: i32,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE fingerprint_keys SET wrapped_key = $2, kek_version = $3 WHERE tenant_id = $1")
        .bind(tenant_id)
        .bind(wrapped)
        .bind(version)
        .execute(conn)
        .await?;
    Ok(())
}

// --- audit ---

/// One audited operation. Never a card number.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub action: &'static str,
    pub actor: String,
    pub actor_kind: String,
    pub token: String,
    pub purpose: String,
    pub outcome: &'static str,
    pub detail: String,
}

fn audit_event(tenant_id: Uuid, id: Uuid, entry: &AuditEntry) -> PreparedEvent {
    let event = VaultAudit {
        audit_id: id.to_string(),
        action: entry.action.to_owned(),
        actor: entry.actor.clone(),
        actor_kind: entry.actor_kind.clone(),
        token: entry.token.clone(),
        purpose: entry.purpose.clone(),
        outcome: entry.outcome.to_owned(),
        detail: entry.detail.clone(),
    };
    let aggregate = if entry.token.is_empty() { tenant_id.to_string() } else { entry.token.clone() };
    prepare(TOPIC, NewEvent::new("vault.audit", tenant_id, aggregate, &event))
}

/// Append to the audit log and publish it: one statement, so it is atomic on its own (pass the
/// pool) or part of the caller's transaction (pass `&mut *tx`).
pub async fn audit<'c>(conn: impl PgExecutor<'c>, tenant_id: Uuid, entry: &AuditEntry) -> sqlx::Result<()> {
    let id = Uuid::now_v7();
    let event = audit_event(tenant_id, id, entry);
    sqlx::query(
        "WITH a AS (INSERT INTO audit_log (tenant_id, id, action, actor, actor_kind, token, purpose, outcome, detail) \
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)) \
         INSERT INTO outbox (event_id, topic, message_key, event_type, tenant_id, envelope, traceparent) \
         VALUES ($10, $11, $12, $13, $1, $14, $15)",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(entry.action)
    .bind(&entry.actor)
    .bind(&entry.actor_kind)
    .bind(&entry.token)
    .bind(&entry.purpose)
    .bind(entry.outcome)
    .bind(&entry.detail)
    .bind(event.event_id)
    .bind(&event.topic)
    .bind(&event.message_key)
    .bind(&event.event_type)
    .bind(&event.envelope)
    .bind(&event.traceparent)
    .execute(conn)
    .await?;
    Ok(())
}

/// How a tokenize insert went.
pub enum Inserted {
    Yes,
    /// The KEK version given is no longer the active one.
    StaleKek,
    /// `dedupe` and the tenant already holds this card.
    Duplicate,
}

/// The card, its audit entry and its event in one statement (one round trip, atomic), written
/// only while `kek_version` is still the active version.
pub async fn insert_tokenized(pool: &PgPool, c: &NewCard<'_>, entry: &AuditEntry) -> sqlx::Result<Inserted> {
    let m = c.meta;
    let audit_id = Uuid::now_v7();
    let event = audit_event(m.tenant_id, audit_id, entry);
    let (active, inserted): (i64, i64) = sqlx::query_as(
        "WITH k AS (SELECT 1 FROM kek_versions WHERE version = $12 AND state = 'active'), \
         c AS (INSERT INTO cards (tenant_id, id, token, brand, last4, exp_month, exp_year, fingerprint, dedupe, \
                                  ciphertext, wrapped_dek, kek_version, created_at, expires_at, customer_id) \
               SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $27 FROM k \
               ON CONFLICT (tenant_id, fingerprint) WHERE dedupe AND deleted_at IS NULL DO NOTHING \
               RETURNING id), \
         a AS (INSERT INTO audit_log (tenant_id, id, action, actor, actor_kind, token, purpose, outcome, detail) \
               SELECT $1, $15, $16, $17, $18, $3, '', $19, $20 FROM c), \
         o AS (INSERT INTO outbox (event_id, topic, message_key, event_type, tenant_id, envelope, traceparent) \
               SELECT $21, $22, $23, $24, $1, $25, $26 FROM c) \
         SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM c)",
    )
    .bind(m.tenant_id)
    .bind(m.id)
    .bind(&m.token)
    .bind(&m.brand)
    .bind(&m.last4)
    .bind(m.exp_month)
    .bind(m.exp_year)
    .bind(&m.fingerprint)
    .bind(c.dedupe)
    .bind(c.ciphertext)
    .bind(c.wrapped_dek)
    .bind(c.kek_version)
    .bind(m.created_at)
    .bind(m.expires_at)
    .bind(audit_id)
    .bind(entry.action)
    .bind(&entry.actor)
    .bind(&entry.actor_kind)
    .bind(entry.outcome)
    .bind(&entry.detail)
    .bind(event.event_id)
    .bind(&event.topic)
    .bind(&event.message_key)
    .bind(&event.event_type)
    .bind(&event.envelope)
    .bind(&event.traceparent)
    .bind(m.customer_id)
    .fetch_one(pool)
    .await?;
    Ok(match (active, inserted) {
        (0, _) => Inserted::StaleKek,
        (_, 0) => Inserted::Duplicate,
        _ => Inserted::Yes,
    })
}

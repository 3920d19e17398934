//! API keys (tenant-owned) and service clients (platform-wide), both stored as HMAC-SHA256
//! under the server's pepper.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub name: String,
    pub display_prefix: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

const COLUMNS: &str =
    "tenant_id, id, name, display_prefix, scopes, expires_at, last_used_at, revoked_at, created_at, created_by";

pub async fn insert_api_key(conn: &mut PgConnection, key: &ApiKeyRow, key_hash: &[u8]) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (tenant_id, id, name, display_prefix, key_hash, scopes, expires_at, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(key.tenant_id)
    .bind(key.id)
    .bind(&key.name)
    .bind(&key.display_prefix)
    .bind(key_hash)
    .bind(&key.scopes)
    .bind(key.expires_at)
    .bind(key.created_at)
    .bind(&key.created_by)
    .execute(conn)
    .await?;
    Ok(())
}

/// The key with this hash, whatever its state (the caller decides what revoked or expired means).
pub async fn api_key_by_hash(pool: &PgPool, key_hash: &[u8]) -> Result<Option<ApiKeyRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1")))
        .bind(key_hash)
        .fetch_optional(pool)
        .await?)
}

pub async fn list_api_keys(pool: &PgPool, tenant_id: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<ApiKeyRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    )))
    .bind(tenant_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Revoke (idempotently) and return the key; None when the tenant has no such key.
pub async fn revoke_api_key(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> Result<Option<ApiKeyRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE tenant_id = $1 AND id = $2 \
         RETURNING {COLUMNS}"
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Record use, at most once a minute per key so a busy ERP does not turn every exchange
/// into a write.
pub async fn touch_api_key(pool: &PgPool, tenant_id: Uuid, id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now() WHERE tenant_id = $1 AND id = $2 \
         AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(tenant_id)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Create the client or replace its secret.
pub async fn put_service_client(pool: &PgPool, name: &str, secret_hash: &[u8]) -> Result<()> {
    sqlx::query(
        "INSERT INTO service_clients (name, secret_hash) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET secret_hash = excluded.secret_hash, rotated_at = now()",
    )
    .bind(name)
    .bind(secret_hash)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn service_client_hash(pool: &PgPool, name: &str) -> Result<Option<Vec<u8>>> {
    Ok(sqlx::query_scalar("SELECT secret_hash FROM service_clients WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?)
}

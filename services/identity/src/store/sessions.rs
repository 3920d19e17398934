//! Refresh tokens, stored as SHA-256 of the token (256 random bits need no slow hash).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, sqlx::FromRow)]
pub struct RefreshRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub struct NewRefresh<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, r: &NewRefresh<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, tenant_id, user_id, family_id, token_hash, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(r.id)
    .bind(r.tenant_id)
    .bind(r.user_id)
    .bind(r.family_id)
    .bind(r.token_hash)
    .bind(r.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The token row, locked for the rest of the transaction so two concurrent refreshes of one
/// token are serialized: the second sees it rotated and is treated as reuse.
pub async fn for_update(conn: &mut PgConnection, token_hash: &[u8]) -> Result<Option<RefreshRow>> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, user_id, family_id, expires_at, rotated_at, revoked_at FROM refresh_tokens \
         WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?)
}

pub async fn mark_rotated(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    sqlx::query("UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}

pub async fn revoke_family(conn: &mut PgConnection, tenant_id: Uuid, family_id: Uuid, reason: &str) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = $3 \
         WHERE tenant_id = $1 AND family_id = $2 AND revoked_at IS NULL",
    )
    .bind(tenant_id)
    .bind(family_id)
    .bind(reason)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Revoke every live token of the user; returns how many sign-ins (families) that ended.
pub async fn revoke_user(conn: &mut PgConnection, tenant_id: Uuid, user_id: Uuid, reason: &str) -> Result<u64> {
    let families: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = $3 \
         WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING family_id",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(reason)
    .fetch_all(conn)
    .await?;
    let mut families = families;
    families.sort_unstable();
    families.dedup();
    Ok(families.len() as u64)
}

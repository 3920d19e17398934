use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::unique_or;
use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub default_locale: String,
    pub default_timezone: String,
    pub mfa_required_for_staff: bool,
    pub mfa_required_for_contacts: bool,
    pub lockout_threshold: i32,
    pub lockout_duration_seconds: i32,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, slug, name, default_locale, default_timezone, mfa_required_for_staff, \
     mfa_required_for_contacts, lockout_threshold, lockout_duration_seconds, created_at";

pub async fn insert(conn: &mut PgConnection, t: &TenantRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO tenants (id, slug, name, default_locale, default_timezone, mfa_required_for_staff, \
         mfa_required_for_contacts, lockout_threshold, lockout_duration_seconds, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(t.id)
    .bind(&t.slug)
    .bind(&t.name)
    .bind(&t.default_locale)
    .bind(&t.default_timezone)
    .bind(t.mfa_required_for_staff)
    .bind(t.mfa_required_for_contacts)
    .bind(t.lockout_threshold)
    .bind(t.lockout_duration_seconds)
    .bind(t.created_at)
    .execute(conn)
    .await
    .map_err(|e| unique_or(e, "tenants_slug_key", "slug_taken", "slug", "a tenant with this slug already exists"))?;
    Ok(())
}

pub async fn by_slug(pool: &PgPool, slug: &str) -> Result<Option<TenantRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tenants WHERE slug = $1")))
        .bind(slug)
        .fetch_optional(pool)
        .await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<TenantRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tenants WHERE id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// The tenant, locked until the transaction ends.
pub async fn get_for_update(conn: &mut PgConnection, id: Uuid) -> Result<Option<TenantRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE")))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// Write the mutable settings of `t` (everything but id, slug and creation time).
pub async fn update(conn: &mut PgConnection, t: &TenantRow) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE tenants SET name = $2, default_locale = $3, default_timezone = $4, mfa_required_for_staff = $5, \
         mfa_required_for_contacts = $6, lockout_threshold = $7, lockout_duration_seconds = $8, updated_at = now() \
         WHERE id = $1",
    )
    .bind(t.id)
    .bind(&t.name)
    .bind(&t.default_locale)
    .bind(&t.default_timezone)
    .bind(t.mfa_required_for_staff)
    .bind(t.mfa_required_for_contacts)
    .bind(t.lockout_threshold)
    .bind(t.lockout_duration_seconds)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

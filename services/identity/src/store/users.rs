use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::unique_or;
use crate::error::Result;

#[derive(Clone, sqlx::FromRow)]
pub struct UserRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    /// "user" or "customer".
    pub kind: String,
    pub role: Option<String>,
    pub customer_id: Option<Uuid>,
    pub password_hash: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// A confirmed authenticator exists.
    pub mfa_enrolled: bool,
}

/// `Debug` leaves out the password hash.
impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("tenant_id", &self.tenant_id)
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("role", &self.role)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

const SELECT: &str = "SELECT u.tenant_id, u.id, u.email, u.display_name, u.kind, u.role, u.customer_id, \
     u.password_hash, u.disabled_at, u.created_at, u.last_login_at, \
     EXISTS (SELECT 1 FROM totp_credentials t WHERE t.tenant_id = u.tenant_id AND t.user_id = u.id \
             AND t.confirmed_at IS NOT NULL) AS mfa_enrolled \
     FROM users u";

pub struct NewUser<'a> {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub email: &'a str,
    pub display_name: &'a str,
    pub kind: &'a str,
    pub role: Option<&'a str>,
    pub customer_id: Option<Uuid>,
    pub password_hash: &'a str,
}

pub async fn insert(conn: &mut PgConnection, u: &NewUser<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (tenant_id, id, email, display_name, kind, role, customer_id, password_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(u.tenant_id)
    .bind(u.id)
    .bind(u.email)
    .bind(u.display_name)
    .bind(u.kind)
    .bind(u.role)
    .bind(u.customer_id)
    .bind(u.password_hash)
    .execute(conn)
    .await
    .map_err(|e| unique_or(e, "users_tenant_id_email_key", "email_taken", "email", "a user with this email exists"))?;
    Ok(())
}

pub async fn by_email(pool: &PgPool, tenant_id: Uuid, email: &str) -> Result<Option<UserRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE u.tenant_id = $1 AND u.email = $2")))
        .bind(tenant_id)
        .bind(email)
        .fetch_optional(pool)
        .await?)
}

pub async fn get(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> Result<Option<UserRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE u.tenant_id = $1 AND u.id = $2")))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// Users in id (creation) order after `after`.
pub async fn list(pool: &PgPool, tenant_id: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<UserRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE u.tenant_id = $1 AND ($2::uuid IS NULL OR u.id > $2) ORDER BY u.id LIMIT $3"
    )))
    .bind(tenant_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn set_role(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid, role: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE users SET role = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2 AND kind = 'user'",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(role)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn disable(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE users SET disabled_at = coalesce(disabled_at, now()), updated_at = now() \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_password(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid, hash: &str) -> Result<bool> {
    let done = sqlx::query("UPDATE users SET password_hash = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn touch_login(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> Result<()> {
    sqlx::query("UPDATE users SET last_login_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Active owners, locked against concurrent demotion so the last owner cannot be removed by two
/// admins at once.
pub async fn active_owners_for_update(conn: &mut PgConnection, tenant_id: Uuid) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM users WHERE tenant_id = $1 AND role = 'owner' AND disabled_at IS NULL FOR UPDATE",
    )
    .bind(tenant_id)
    .fetch_all(conn)
    .await?)
}

//! Authenticators (TOTP), recovery codes and sign-in challenges.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, sqlx::FromRow)]
pub struct TotpRow {
    pub secret_sealed: Vec<u8>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub last_used_step: Option<i64>,
}

pub async fn totp(conn: &mut PgConnection, tenant_id: Uuid, user_id: Uuid) -> Result<Option<TotpRow>> {
    Ok(sqlx::query_as(
        "SELECT secret_sealed, confirmed_at, last_used_step FROM totp_credentials WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
}

/// Store a new, unconfirmed secret, replacing an earlier unconfirmed one. False when a
/// confirmed authenticator exists (it must be removed first).
pub async fn put_pending_totp(conn: &mut PgConnection, tenant_id: Uuid, user_id: Uuid, sealed: &[u8]) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO totp_credentials (tenant_id, user_id, secret_sealed) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, user_id) DO UPDATE \
         SET secret_sealed = excluded.secret_sealed, created_at = now(), last_used_step = NULL \
         WHERE totp_credentials.confirmed_at IS NULL",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(sealed)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Accept time step `step` for the user's authenticator: true only if it is newer than every
/// step accepted before. One statement, so two concurrent uses of one code cannot both win.
/// `confirming` accepts only the unconfirmed authenticator whose sealed secret is `pending`
/// (the one whose code was checked, not one a concurrent enrolment put in its place) and
/// confirms it; otherwise only a confirmed one is accepted.
pub async fn accept_step(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    user_id: Uuid,
    step: i64,
    confirming: bool,
    pending: Option<&[u8]>,
) -> Result<bool> {
    let sql = if confirming {
        "UPDATE totp_credentials SET last_used_step = $3, confirmed_at = now() \
         WHERE tenant_id = $1 AND user_id = $2 AND confirmed_at IS NULL AND secret_sealed = $4 \
         AND (last_used_step IS NULL OR last_used_step < $3)"
    } else {
        "UPDATE totp_credentials SET last_used_step = $3 \
         WHERE tenant_id = $1 AND user_id = $2 AND confirmed_at IS NOT NULL \
         AND (last_used_step IS NULL OR last_used_step < $3)"
    };
    let mut query = sqlx::query(sql).bind(tenant_id).bind(user_id).bind(step);
    if confirming {
        query = query.bind(pending.unwrap_or_default());
    }
    let done = query.execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

/// Remove the authenticator and its recovery codes. True when there was one.
pub async fn delete_totp(conn: &mut PgConnection, tenant_id: Uuid, user_id: Uuid) -> Result<bool> {
    sqlx::query("DELETE FROM recovery_codes WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("DELETE FROM totp_credentials WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Replace the user's recovery codes with `codes` (selector, argon2id hash).
pub async fn replace_recovery_codes(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    user_id: Uuid,
    codes: &[(String, String)],
) -> Result<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let selectors: Vec<&str> = codes.iter().map(|(s, _)| s.as_str()).collect();
    let hashes: Vec<&str> = codes.iter().map(|(_, h)| h.as_str()).collect();
    sqlx::query(
        "INSERT INTO recovery_codes (tenant_id, user_id, selector, secret_hash) \
         SELECT $1, $2, s, h FROM unnest($3::text[], $4::text[]) AS c(s, h)",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(&selectors)
    .bind(&hashes)
    .execute(conn)
    .await?;
    Ok(())
}

/// The unused code with `selector`, as its hash.
pub async fn unused_recovery_code(
    pool: &PgPool,
    tenant_id: Uuid,
    user_id: Uuid,
    selector: &str,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT secret_hash FROM recovery_codes \
         WHERE tenant_id = $1 AND user_id = $2 AND selector = $3 AND used_at IS NULL",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(selector)
    .fetch_optional(pool)
    .await?)
}

/// Spend a code; false when it was spent meanwhile.
pub async fn use_recovery_code(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    user_id: Uuid,
    selector: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE recovery_codes SET used_at = now() \
         WHERE tenant_id = $1 AND user_id = $2 AND selector = $3 AND used_at IS NULL",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(selector)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn recovery_codes_remaining(conn: &mut PgConnection, tenant_id: Uuid, user_id: Uuid) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM recovery_codes WHERE tenant_id = $1 AND user_id = $2 AND used_at IS NULL",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_one(conn)
    .await?)
}

#[derive(Debug, sqlx::FromRow)]
pub struct ChallengeRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub enrolment_required: bool,
    pub attempts: i32,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

pub struct NewChallenge<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub token_hash: &'a [u8],
    pub enrolment_required: bool,
    pub client_ip: &'a str,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_challenge(conn: &mut PgConnection, c: &NewChallenge<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO mfa_challenges (id, tenant_id, user_id, token_hash, enrolment_required, client_ip, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(c.id)
    .bind(c.tenant_id)
    .bind(c.user_id)
    .bind(c.token_hash)
    .bind(c.enrolment_required)
    .bind(c.client_ip)
    .bind(c.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A live challenge by its token: not consumed, not expired.
pub async fn live_challenge(conn: &mut PgConnection, token_hash: &[u8]) -> Result<Option<ChallengeRow>> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, user_id, enrolment_required, attempts, expires_at, consumed_at FROM mfa_challenges \
         WHERE token_hash = $1 AND consumed_at IS NULL AND expires_at > now()",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?)
}

/// Reserve one attempt on a live challenge; false when it has none left.
pub async fn reserve_challenge_attempt(conn: &mut PgConnection, id: Uuid, max_attempts: i32) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE mfa_challenges SET attempts = attempts + 1 \
         WHERE id = $1 AND attempts < $2 AND consumed_at IS NULL AND expires_at > now()",
    )
    .bind(id)
    .bind(max_attempts)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Use the challenge up; false if someone else did first or it expired.
pub async fn consume_challenge(conn: &mut PgConnection, id: Uuid) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE mfa_challenges SET consumed_at = now() WHERE id = $1 AND consumed_at IS NULL AND expires_at > now()",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Challenges die with a new sign-in's success or failure anyway; this only keeps the table small.
pub async fn purge_challenges(pool: &PgPool) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM mfa_challenges WHERE expires_at < now() - interval '1 day'")
        .execute(pool)
        .await?
        .rows_affected())
}

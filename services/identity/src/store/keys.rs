//! Token signing keys.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::error::Result;

#[derive(Debug, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub private_key_sealed: Vec<u8>,
    pub signing_from: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// Keys not retired, or retired after `retired_after` (their tokens may still be live).
pub async fn published(pool: &PgPool, retired_after: DateTime<Utc>) -> Result<Vec<SigningKeyRow>> {
    Ok(sqlx::query_as(
        "SELECT kid, private_key_sealed, signing_from, retired_at FROM signing_keys \
         WHERE retired_at IS NULL OR retired_at > $1 ORDER BY signing_from",
    )
    .bind(retired_after)
    .fetch_all(pool)
    .await?)
}

/// The first key. Serialized by an advisory lock so two replicas starting together create one.
pub async fn insert(
    pool: &PgPool,
    kid: &str,
    sealed: &[u8],
    public_key: &[u8],
    signing_from: DateTime<Utc>,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('identity.signing_keys'))").execute(&mut *tx).await?;
    let existing: i64 =
        sqlx::query_scalar("SELECT count(*) FROM signing_keys WHERE retired_at IS NULL").fetch_one(&mut *tx).await?;
    if existing == 0 {
        insert_row(&mut tx, kid, sealed, public_key, signing_from).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Add the next key; the current ones retire when it starts signing.
pub async fn rotate(
    pool: &PgPool,
    kid: &str,
    sealed: &[u8],
    public_key: &[u8],
    signing_from: DateTime<Utc>,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('identity.signing_keys'))").execute(&mut *tx).await?;
    sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
        .bind(signing_from)
        .execute(&mut *tx)
        .await?;
    insert_row(&mut tx, kid, sealed, public_key, signing_from).await?;
    // Private halves of keys long out of use serve no one.
    sqlx::query("DELETE FROM signing_keys WHERE retired_at < now() - interval '7 days'").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_row(
    conn: &mut PgConnection,
    kid: &str,
    sealed: &[u8],
    public_key: &[u8],
    signing_from: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("INSERT INTO signing_keys (kid, private_key_sealed, public_key, signing_from) VALUES ($1, $2, $3, $4)")
        .bind(kid)
        .bind(sealed)
        .bind(public_key)
        .bind(signing_from)
        .execute(conn)
        .await?;
    Ok(())
}

//! Postgres for a service: a pool whose `search_path` is the service's own schema, migrations
//! run under sqlx's advisory lock, and Postgres error codes mapped to meanings in one place.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::ServiceConfig;

/// The event tables (outbox, inbox) every service carries in its schema.
static KIT_MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Bookkeeping table for the kit's own migrations, so they never collide with the service's
/// versions in `_sqlx_migrations`.
const KIT_MIGRATIONS_TABLE: &str = "_kit_migrations";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("schema `{0}` does not exist: create it and grant it to the service role (infra/dev start does this)")]
    MissingSchema(String),
    #[error("invalid schema name `{0}`")]
    InvalidSchema(String),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Open a pool for `schema`. Every connection starts with `search_path = <schema>`, so the
/// service's SQL never names its schema and cannot wander into another's by accident.
pub async fn connect(cfg: &ServiceConfig, schema: &str) -> Result<PgPool, DbError> {
    connect_url(cfg.database_url.expose_secret(), schema, cfg.max_connections).await
}

pub async fn connect_url(url: &str, schema: &str, max_connections: u32) -> Result<PgPool, DbError> {
    check_schema_name(schema)?;
    let options: PgConnectOptions = url.parse::<PgConnectOptions>()?.options([("search_path", schema)]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Run the kit's migrations, then the service's, in the pool's schema. sqlx takes a Postgres
/// advisory lock for each run, so replicas starting together migrate one at a time.
pub async fn migrate(pool: &PgPool, schema: &str, service: &Migrator) -> Result<(), DbError> {
    check_schema_name(schema)?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(pool)
        .await?;
    if !exists {
        return Err(DbError::MissingSchema(schema.to_owned()));
    }
    let mut kit = Migrator::with_migrations(KIT_MIGRATOR.iter().cloned().collect());
    kit.dangerous_set_table_name(KIT_MIGRATIONS_TABLE);
    kit.run(pool).await?;
    service.run(pool).await?;
    Ok(())
}

fn check_schema_name(schema: &str) -> Result<(), DbError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if ok { Ok(()) } else { Err(DbError::InvalidSchema(schema.to_owned())) }
}

/// What a Postgres error means to a domain, by SQLSTATE. Stores map with this once and turn
/// the meaning into their own domain error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgErrorKind {
    /// 23505: the named constraint already holds this value.
    UniqueViolation { constraint: Option<String> },
    /// 23503: a referenced row is missing (or still referenced).
    ForeignKeyViolation { constraint: Option<String> },
    /// 23514: a CHECK constraint refused the row.
    CheckViolation { constraint: Option<String> },
    /// 40001 / 40P01: retry the whole transaction.
    SerializationFailure,
    /// Anything else: an internal error.
    Other,
}

pub fn classify(err: &sqlx::Error) -> PgErrorKind {
    let Some(db) = err.as_database_error() else {
        return PgErrorKind::Other;
    };
    let constraint = db.constraint().map(str::to_owned);
    match db.code().as_deref() {
        Some("23505") => PgErrorKind::UniqueViolation { constraint },
        Some("23503") => PgErrorKind::ForeignKeyViolation { constraint },
        Some("23514") => PgErrorKind::CheckViolation { constraint },
        Some("40001") | Some("40P01") => PgErrorKind::SerializationFailure,
        _ => PgErrorKind::Other,
    }
}

/// Run `f` in a transaction, retrying serialization failures and deadlocks a few times.
pub async fn retry_serializable<T, F>(mut f: F) -> Result<T, sqlx::Error>
where
    F: AsyncFnMut() -> Result<T, sqlx::Error>,
{
    let mut attempt = 0u32;
    loop {
        match f().await {
            Err(err) if classify(&err) == PgErrorKind::SerializationFailure && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["identity", "payments", "test_0193a"] {
            assert!(check_schema_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Payments", "a;drop", "a-b", "1abc", "x y"] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_database_errors_are_other() {
        assert_eq!(classify(&sqlx::Error::RowNotFound), PgErrorKind::Other);
    }
}

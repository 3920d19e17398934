//! Every SQL statement of identity. Tenant-owned rows are always addressed by
//! `(tenant_id, id)`; rows found by a secret (refresh tokens, challenges, API keys) carry their
//! tenant, which the caller then uses for everything else.

pub mod audit;
pub mod credentials;
pub mod keys;
pub mod mfa;
pub mod sessions;
pub mod tenants;
pub mod users;

use cobro_kit::db::{PgErrorKind, classify};

use crate::error::IdentityError;

/// Map a unique violation on `constraint` to `AlreadyExists`; anything else stays a database
/// error.
pub(crate) fn unique_or(
    err: sqlx::Error,
    constraint: &str,
    code: &'static str,
    field: &'static str,
    message: &'static str,
) -> IdentityError {
    match classify(&err) {
        PgErrorKind::UniqueViolation { constraint: Some(c) } if c == constraint => {
            IdentityError::AlreadyExists { code, field, message }
        }
        _ => IdentityError::Database(err),
    }
}

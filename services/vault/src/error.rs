//! The vault's errors and their one mapping to gRPC codes. No message ever carries card data.

use cobro_kit::error::{DomainError, InvalidField};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("token not found")]
    NotFound,
    #[error("{0}")]
    PermissionDenied(String),
    /// The stored record does not decrypt: tampered, moved to another row, or a key is wrong.
    #[error("the stored card record failed its integrity check")]
    Integrity,
    /// The record's data key is wrapped under a retired key-encryption key.
    #[error("the card record is wrapped under a retired key-encryption key")]
    KekRetired,
    #[error("key provider: {0}")]
    Keys(String),
    #[error("internal: {0}")]
    Internal(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl DomainError for VaultError {
    fn code(&self) -> &'static str {
        match self {
            VaultError::Invalid(e) => e.code(),
            VaultError::NotFound => "token_not_found",
            VaultError::PermissionDenied(_) => "permission_denied",
            VaultError::Integrity => "card_record_integrity",
            VaultError::KekRetired => "kek_retired",
            VaultError::Keys(_) => "key_provider_unavailable",
            VaultError::Internal(_) | VaultError::Database(_) => "internal",
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            VaultError::Invalid(_) => Code::InvalidArgument,
            VaultError::NotFound => Code::NotFound,
            VaultError::PermissionDenied(_) => Code::PermissionDenied,
            VaultError::Integrity => Code::DataLoss,
            VaultError::KekRetired => Code::FailedPrecondition,
            VaultError::Keys(_) => Code::Unavailable,
            VaultError::Internal(_) | VaultError::Database(_) => Code::Internal,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            VaultError::Invalid(e) => Some(&e.field),
            _ => None,
        }
    }

    fn public_message(&self) -> String {
        match self {
            VaultError::Keys(_) => "the key service is unavailable; retry later".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<VaultError> for tonic::Status {
    fn from(err: VaultError) -> Self {
        cobro_kit::error::to_status(&err)
    }
}

impl From<crate::keys::KeyError> for VaultError {
    fn from(err: crate::keys::KeyError) -> Self {
        match err {
            crate::keys::KeyError::Unwrap => VaultError::Integrity,
            other => VaultError::Keys(other.to_string()),
        }
    }
}

pub type Result<T, E = VaultError> = std::result::Result<T, E>;

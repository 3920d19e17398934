//! Invoicing's errors and their one mapping to gRPC codes.

use cobro_kit::error::{DomainError, InvalidField};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum InvoicingError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{field}: {message}")]
    AlreadyExists { code: &'static str, field: &'static str, message: &'static str },
    #[error("internal: {0}")]
    Internal(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl InvoicingError {
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        InvoicingError::Conflict { code, message: message.into() }
    }
}

impl DomainError for InvoicingError {
    fn code(&self) -> &'static str {
        match self {
            InvoicingError::Invalid(e) => e.code(),
            InvoicingError::NotFound(_) => "not_found",
            InvoicingError::PermissionDenied(_) => "permission_denied",
            InvoicingError::Conflict { code, .. } | InvoicingError::AlreadyExists { code, .. } => code,
            InvoicingError::Internal(_) | InvoicingError::Database(_) => "internal",
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            InvoicingError::Invalid(_) => Code::InvalidArgument,
            InvoicingError::NotFound(_) => Code::NotFound,
            InvoicingError::PermissionDenied(_) => Code::PermissionDenied,
            InvoicingError::Conflict { .. } => Code::FailedPrecondition,
            InvoicingError::AlreadyExists { .. } => Code::AlreadyExists,
            InvoicingError::Internal(_) | InvoicingError::Database(_) => Code::Internal,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            InvoicingError::Invalid(e) => Some(&e.field),
            InvoicingError::AlreadyExists { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<InvoicingError> for tonic::Status {
    fn from(err: InvoicingError) -> Self {
        cobro_kit::error::to_status(&err)
    }
}

pub type Result<T, E = InvoicingError> = std::result::Result<T, E>;

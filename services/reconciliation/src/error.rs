//! Reconciliation's errors and their one mapping to gRPC codes. Parse errors name the line or
//! element; nothing carries SQL or internal text to callers.

use cobro_kit::error::{DomainError, InvalidField};
use tonic::Code;

use crate::domain::statement::ParseError;
use crate::import::ImportError;

#[derive(Debug, thiserror::Error)]
pub enum ReconciliationError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("the file was refused: {0}")]
    Parse(ParseError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("internal: {0}")]
    Internal(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl ReconciliationError {
    pub fn conflict(code: &'static str, message: String) -> Self {
        Self::Conflict { code, message }
    }
}

impl From<ImportError> for ReconciliationError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Parse(p) => Self::Parse(p),
            ImportError::UnknownAccount => Self::NotFound("bank account"),
            other @ ImportError::OtherAccount { .. } => {
                Self::conflict("statement_for_another_account", other.to_string())
            }
            ImportError::Database(e) => Self::Database(e),
        }
    }
}

impl DomainError for ReconciliationError {
    fn code(&self) -> &'static str {
        match self {
            Self::Invalid(e) => e.code(),
            Self::Parse(_) => "statement_invalid",
            Self::NotFound("bank account") => "bank_account_not_found",
            Self::NotFound("bank line") => "bank_line_not_found",
            Self::NotFound("match") => "match_not_found",
            Self::NotFound("invoice") => "invoice_not_found",
            Self::NotFound("discrepancy") => "discrepancy_not_found",
            Self::NotFound(_) => "not_found",
            Self::PermissionDenied(_) => "permission_denied",
            Self::Conflict { code, .. } => code,
            Self::Internal(_) | Self::Database(_) => "internal",
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            Self::Invalid(_) | Self::Parse(_) => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::Conflict { .. } => Code::FailedPrecondition,
            Self::Internal(_) | Self::Database(_) => Code::Internal,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid(e) => Some(&e.field),
            _ => None,
        }
    }
}

impl From<ReconciliationError> for tonic::Status {
    fn from(err: ReconciliationError) -> Self {
        cobro_kit::error::to_status(&err)
    }
}

pub type Result<T, E = ReconciliationError> = std::result::Result<T, E>;

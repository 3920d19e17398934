//! Notifications' errors and their one mapping to gRPC codes. No message carries an address's
//! secret, a provider credential or SQL.

use cobro_kit::error::{DomainError, InvalidField};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum NotificationsError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Precondition(String),
    #[error("the channel refused the message: {0}")]
    Channel(String),
    #[error("internal: {0}")]
    Internal(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl DomainError for NotificationsError {
    fn code(&self) -> &'static str {
        match self {
            NotificationsError::Invalid(e) => e.code(),
            NotificationsError::NotFound("invoice") => "invoice_not_found",
            NotificationsError::NotFound("customer") => "customer_not_found",
            NotificationsError::NotFound(_) => "not_found",
            NotificationsError::PermissionDenied(_) => "permission_denied",
            NotificationsError::Precondition(_) => "failed_precondition",
            NotificationsError::Channel(_) => "channel_refused",
            NotificationsError::Internal(_) | NotificationsError::Database(_) => "internal",
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            NotificationsError::Invalid(_) => Code::InvalidArgument,
            NotificationsError::NotFound(_) => Code::NotFound,
            NotificationsError::PermissionDenied(_) => Code::PermissionDenied,
            NotificationsError::Precondition(_) | NotificationsError::Channel(_) => Code::FailedPrecondition,
            NotificationsError::Internal(_) | NotificationsError::Database(_) => Code::Internal,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            NotificationsError::Invalid(e) => Some(&e.field),
            _ => None,
        }
    }
}

impl From<NotificationsError> for tonic::Status {
    fn from(err: NotificationsError) -> Self {
        cobro_kit::error::to_status(&err)
    }
}

pub type Result<T, E = NotificationsError> = std::result::Result<T, E>;

//! Payments' errors and their one mapping to gRPC codes. No message carries card data, SQL or
//! a processor's internals.

use cobro_kit::error::{DomainError, InvalidField};
use tonic::Code;

use crate::domain::state::IllegalTransition;

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    PermissionDenied(String),
    /// The intent is in a state that does not allow this; the message names the state.
    #[error(transparent)]
    State(#[from] IllegalTransition),
    /// A rule about amounts: above the open balance, above what is left to refund.
    #[error("{message}")]
    Amount { field: String, message: String },
    #[error("the idempotency key was used for a different request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is still in progress; retry shortly")]
    IdempotencyInProgress,
    #[error("the payment link {0}")]
    LinkUnusable(&'static str),
    #[error("{0}")]
    Precondition(String),
    #[error("the processor refused the request: {0}")]
    Processor(String),
    #[error("{0} is unavailable; retry later")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl PaymentsError {
    pub fn amount(field: impl Into<String>, message: impl Into<String>) -> Self {
        PaymentsError::Amount { field: field.into(), message: message.into() }
    }
}

impl DomainError for PaymentsError {
    fn code(&self) -> &'static str {
        match self {
            PaymentsError::Invalid(e) => e.code(),
            PaymentsError::NotFound("payment") => "payment_not_found",
            PaymentsError::NotFound("payment method") => "payment_method_not_found",
            PaymentsError::NotFound("invoice") => "invoice_not_found",
            PaymentsError::NotFound("payment link") => "payment_link_not_found",
            PaymentsError::NotFound("mandate") => "mandate_not_found",
            PaymentsError::NotFound("reference") => "reference_not_found",
            PaymentsError::NotFound(_) => "not_found",
            PaymentsError::PermissionDenied(_) => "permission_denied",
            PaymentsError::State(_) => "payment_state_conflict",
            PaymentsError::Amount { .. } => "amount_not_allowed",
            PaymentsError::IdempotencyKeyReused => "idempotency_key_reused",
            PaymentsError::IdempotencyInProgress => "idempotency_key_in_progress",
            PaymentsError::LinkUnusable("has expired") => "payment_link_expired",
            PaymentsError::LinkUnusable(_) => "payment_link_unusable",
            PaymentsError::Precondition(_) => "failed_precondition",
            PaymentsError::Processor(_) => "processor_refused",
            PaymentsError::Unavailable(_) => "unavailable",
            PaymentsError::Internal(_) | PaymentsError::Database(_) => "internal",
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            PaymentsError::Invalid(_) | PaymentsError::Amount { .. } => Code::InvalidArgument,
            PaymentsError::NotFound(_) => Code::NotFound,
            PaymentsError::PermissionDenied(_) => Code::PermissionDenied,
            PaymentsError::State(_)
            | PaymentsError::LinkUnusable(_)
            | PaymentsError::Precondition(_)
            | PaymentsError::Processor(_) => Code::FailedPrecondition,
            PaymentsError::IdempotencyKeyReused => Code::AlreadyExists,
            PaymentsError::IdempotencyInProgress => Code::Aborted,
            PaymentsError::Unavailable(_) => Code::Unavailable,
            PaymentsError::Internal(_) | PaymentsError::Database(_) => Code::Internal,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            PaymentsError::Invalid(e) => Some(&e.field),
            PaymentsError::Amount { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<PaymentsError> for tonic::Status {
    fn from(err: PaymentsError) -> Self {
        cobro_kit::error::to_status(&err)
    }
}

pub type Result<T, E = PaymentsError> = std::result::Result<T, E>;

//! One mapping from domain errors to `tonic::Status`.
//!
//! Each service keeps its own error enum and implements [`DomainError`] for it; [`to_status`]
//! is the only place a `Status` is built from a domain error. Callers see a stable machine code
//! in the `cobro-error-code` metadata and an [`ErrorDetail`] in the status details, never the
//! internal cause (SQL, I/O, stack), which is logged instead.

use cobro_proto::common::v1::ErrorDetail;
use prost::Message;
use tonic::{Code, Status, metadata::MetadataValue};

/// Metadata key carrying the stable machine code of an error.
pub const ERROR_CODE_HEADER: &str = "cobro-error-code";

/// What a domain error must say about itself so it can cross the wire.
pub trait DomainError: std::error::Error {
    /// Stable snake_case machine code, e.g. `invoice_already_paid`.
    fn code(&self) -> &'static str;
    /// The gRPC code clients should react to.
    fn grpc_code(&self) -> Code;
    /// The request field at fault, when there is one.
    fn field(&self) -> Option<&str> {
        None
    }
    /// Text safe to show callers. Defaults to `Display`; internal errors must override this.
    fn public_message(&self) -> String {
        self.to_string()
    }
}

/// Build the `Status` for a domain error. Internal errors are logged here with their cause and
/// reach the caller only as "internal error".
pub fn to_status<E: DomainError + ?Sized>(err: &E) -> Status {
    let code = err.grpc_code();
    let message = if code == Code::Internal || code == Code::Unknown {
        tracing::error!(error = %err, error.code = err.code(), "internal error");
        "internal error".to_owned()
    } else {
        err.public_message()
    };
    status_with_code(code, err.code(), err.field(), &message)
}

/// A `Status` carrying `machine_code` in metadata and an [`ErrorDetail`] in its details.
pub fn status_with_code(code: Code, machine_code: &str, field: Option<&str>, message: &str) -> Status {
    let detail = ErrorDetail {
        code: machine_code.to_owned(),
        field: field.unwrap_or_default().to_owned(),
        message: message.to_owned(),
    };
    let mut status = Status::with_details(code, message, detail.encode_to_vec().into());
    if let Ok(value) = MetadataValue::try_from(machine_code) {
        status.metadata_mut().insert(ERROR_CODE_HEADER, value);
    }
    status
}

/// The machine code a `Status` carries, if it came from [`to_status`].
pub fn error_code(status: &Status) -> Option<&str> {
    status.metadata().get(ERROR_CODE_HEADER).and_then(|v| v.to_str().ok())
}

/// The [`ErrorDetail`] a `Status` carries, if any.
pub fn error_detail(status: &Status) -> Option<ErrorDetail> {
    ErrorDetail::decode(status.details()).ok().filter(|d| !d.code.is_empty())
}

/// A field-level validation failure: the most common error of every service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    pub field: String,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

impl DomainError for InvalidField {
    fn code(&self) -> &'static str {
        "invalid_argument"
    }
    fn grpc_code(&self) -> Code {
        Code::InvalidArgument
    }
    fn field(&self) -> Option<&str> {
        Some(&self.field)
    }
}

/// A single-line text field: trimmed, at most `max` characters, no control characters; empty
/// only when not `required`. The check every service makes of names, reasons and notes.
pub fn text_field(field: &str, value: &str, max: usize, required: bool) -> Result<String, InvalidField> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(InvalidField::new(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidField::new(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

impl From<InvalidField> for Status {
    fn from(err: InvalidField) -> Self {
        to_status(&err)
    }
}

/// Infrastructure failures every service shares. Service error enums wrap it with `#[from]`.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event broker: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
}

impl DomainError for InfraError {
    fn code(&self) -> &'static str {
        match self {
            InfraError::Unavailable(_) => "unavailable",
            InfraError::Database(_) | InfraError::Kafka(_) => "internal",
        }
    }
    fn grpc_code(&self) -> Code {
        match self {
            InfraError::Unavailable(_) => Code::Unavailable,
            InfraError::Database(_) | InfraError::Kafka(_) => Code::Internal,
        }
    }
    fn public_message(&self) -> String {
        match self {
            InfraError::Unavailable(_) => "service temporarily unavailable, retry later".to_owned(),
            _ => "internal error".to_owned(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum InvoiceError {
        #[error("invoice is already paid")]
        AlreadyPaid,
        #[error("query failed: relation \"invoices\" does not exist")]
        Storage,
    }

    impl DomainError for InvoiceError {
        fn code(&self) -> &'static str {
            match self {
                InvoiceError::AlreadyPaid => "invoice_already_paid",
                InvoiceError::Storage => "internal",
            }
        }
        fn grpc_code(&self) -> Code {
            match self {
                InvoiceError::AlreadyPaid => Code::FailedPrecondition,
                InvoiceError::Storage => Code::Internal,
            }
        }
    }

    #[test]
    fn domain_error_carries_machine_code_and_detail() {
        let status = to_status(&InvoiceError::AlreadyPaid);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(error_code(&status), Some("invoice_already_paid"));
        assert_eq!(status.message(), "invoice is already paid");
        let detail = error_detail(&status).unwrap();
        assert_eq!(detail.code, "invoice_already_paid");
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let status = to_status(&InvoiceError::Storage);
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        assert!(!format!("{status:?}").contains("relation"));
    }

    #[test]
    fn invalid_field_names_the_field() {
        let status = to_status(&InvalidField::new("lines[2].quantity", "must not be negative"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(error_detail(&status).unwrap().field, "lines[2].quantity");
        assert!(status.message().contains("lines[2].quantity"));
    }
}

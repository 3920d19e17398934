//! Identity's errors and their one mapping to gRPC codes and machine codes.

use cobro_kit::error::{DomainError, InvalidField};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Unknown tenant, unknown email, wrong password and disabled account all look alike.
    #[error("the email or password is not correct")]
    InvalidCredentials,
    #[error("too many failed sign-ins: the account is locked; try again in {retry_after_secs} seconds")]
    AccountLocked { retry_after_secs: u64 },
    #[error("too many failed sign-ins from this address; try again in {retry_after_secs} seconds")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("the code is not correct or was already used")]
    InvalidMfaCode,
    #[error("the sign-in challenge is unknown, expired or used up; sign in again")]
    ChallengeInvalid,
    #[error("a second factor is required to continue: enrol an authenticator first")]
    MfaEnrolmentRequired,
    #[error("no authenticator is enrolled")]
    MfaNotEnrolled,
    #[error("an authenticator is already enrolled; remove it first")]
    MfaAlreadyEnrolled,
    #[error("the refresh token is unknown, expired or revoked; sign in again")]
    InvalidRefreshToken,
    #[error("the refresh token was already used; every session of this sign-in was ended")]
    RefreshTokenReused,
    #[error("the API key is unknown, expired or revoked")]
    InvalidApiKey,
    #[error("the client credentials are not correct")]
    InvalidClient,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{field}: {message}")]
    AlreadyExists { code: &'static str, field: &'static str, message: &'static str },
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    FailedPrecondition(&'static str),
    /// A dependency that must answer for the request to be safe (Redis for sign-in limits).
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    #[error("internal: {0}")]
    Internal(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl DomainError for IdentityError {
    fn code(&self) -> &'static str {
        match self {
            IdentityError::Invalid(e) => e.code(),
            IdentityError::InvalidCredentials => "invalid_credentials",
            IdentityError::AccountLocked { .. } => "account_locked",
            IdentityError::TooManyAttempts { .. } => "too_many_attempts",
            IdentityError::InvalidMfaCode => "invalid_mfa_code",
            IdentityError::ChallengeInvalid => "mfa_challenge_invalid",
            IdentityError::MfaEnrolmentRequired => "mfa_enrolment_required",
            IdentityError::MfaNotEnrolled => "mfa_not_enrolled",
            IdentityError::MfaAlreadyEnrolled => "mfa_already_enrolled",
            IdentityError::InvalidRefreshToken => "invalid_refresh_token",
            IdentityError::RefreshTokenReused => "refresh_token_reused",
            IdentityError::InvalidApiKey => "invalid_api_key",
            IdentityError::InvalidClient => "invalid_client",
            IdentityError::NotFound(_) => "not_found",
            IdentityError::AlreadyExists { code, .. } => code,
            IdentityError::PermissionDenied(_) => "permission_denied",
            IdentityError::FailedPrecondition(_) => "failed_precondition",
            IdentityError::Unavailable(_) => "unavailable",
            IdentityError::Internal(_) | IdentityError::Database(_) => "internal",
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            IdentityError::Invalid(_) => Code::InvalidArgument,
            IdentityError::InvalidCredentials
            | IdentityError::InvalidMfaCode
            | IdentityError::ChallengeInvalid
            | IdentityError::InvalidRefreshToken
            | IdentityError::RefreshTokenReused
            | IdentityError::InvalidApiKey
            | IdentityError::InvalidClient => Code::Unauthenticated,
            IdentityError::AccountLocked { .. } | IdentityError::TooManyAttempts { .. } => Code::ResourceExhausted,
            IdentityError::MfaEnrolmentRequired
            | IdentityError::MfaNotEnrolled
            | IdentityError::MfaAlreadyEnrolled
            | IdentityError::FailedPrecondition(_) => Code::FailedPrecondition,
            IdentityError::NotFound(_) => Code::NotFound,
            IdentityError::AlreadyExists { .. } => Code::AlreadyExists,
            IdentityError::PermissionDenied(_) => Code::PermissionDenied,
            IdentityError::Unavailable(_) => Code::Unavailable,
            IdentityError::Internal(_) | IdentityError::Database(_) => Code::Internal,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            IdentityError::Invalid(e) => Some(&e.field),
            IdentityError::AlreadyExists { field, .. } => Some(field),
            _ => None,
        }
    }

    fn public_message(&self) -> String {
        match self {
            IdentityError::Unavailable(_) => "sign-in is temporarily unavailable; try again shortly".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<IdentityError> for tonic::Status {
    fn from(err: IdentityError) -> Self {
        cobro_kit::error::to_status(&err)
    }
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

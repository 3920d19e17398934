//! Identity's rules, free of I/O: password policy and hashing, TOTP, recovery codes, secrets and
//! tokens, roles and permissions, input validation.

pub mod password;
pub mod qr;
pub mod recovery;
pub mod roles;
pub mod secret;
pub mod totp;
pub mod validate;

//! The vault's rules, free of I/O: card numbers and expiry dates, and the encryption that
//! keeps them.

pub mod card;
pub mod crypto;

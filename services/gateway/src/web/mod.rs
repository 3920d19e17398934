//! What every page and form of the gateway stands on: server-side sessions in Redis, CSRF
//! tokens, security headers, per-address rate limits and the language a person reads.

pub mod card;
pub mod csrf;
pub mod edge;
pub mod format;
pub mod headers;
pub mod i18n;
pub mod limits;
pub mod session;

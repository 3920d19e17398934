//! Rules without I/O: bank statements as Cobro reads them.

pub mod formats;
pub mod matching;
pub mod payouts;
pub mod report;
pub mod rf;
pub mod statement;
pub mod synthetic;

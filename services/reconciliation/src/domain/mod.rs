//! Rules without I/O: bank statements as Cobro reads them.

pub mod formats;
pub mod matching;
pub mod rf;
pub mod statement;
pub mod synthetic;

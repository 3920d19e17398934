//! The statement formats Cobro reads. Each parser takes the whole file and returns every
//! statement in it, or the first error, naming where.

pub mod bai2;
pub mod camt;
pub mod csv;
pub mod detect;
pub mod mt940;

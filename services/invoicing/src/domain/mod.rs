//! Invoicing's rules, free of I/O: how totals are computed and rounded, how installments split
//! and payments allocate (and are taken back), and how the receivables reports are figured.

pub mod installments;
pub mod pdf;
pub mod reports;
pub mod reversals;
pub mod totals;

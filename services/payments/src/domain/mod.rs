//! Payment rules without I/O: the intent state machine, creditor references, payment-link
//! tokens, the autopay retry schedule.

pub mod autopay;
pub mod link;
pub mod reference;
pub mod state;

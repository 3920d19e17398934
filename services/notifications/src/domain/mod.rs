//! Rules without I/O: when reminders go out, what they say.

pub mod schedule;
pub mod templates;

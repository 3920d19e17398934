//! Cross-service end-to-end tests: the platform started in-process (`platform`), driven over
//! its gRPC APIs and its web pages (`web`, and `webdriver` for a real browser).

pub mod platform;
pub mod postgres;
pub mod statements;
pub mod web;
pub mod webdriver;

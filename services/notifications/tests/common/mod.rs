//! Test helpers for the notifications service: the kit's local SMTP server ([`SmtpSink`]) and
//! recording HTTP stubs for Twilio, WhatsApp Cloud and tenants' webhook endpoints ([`HttpStub`]).
//! Every test binary uses a different subset, hence `dead_code`.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod http;

pub use cobro_kit::testing::smtp::{SmtpMessage, SmtpSink};
pub use http::{HttpStub, Recorded, StubReply, closed_port, graph_error, twilio_error};

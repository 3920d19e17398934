//! Events between services over Kafka, with nothing lost and nothing applied twice.
//!
//! - [`outbox::enqueue`] writes an event in the caller's transaction, next to the state change
//!   it announces; a rolled-back transaction publishes nothing.
//! - [`relay::Relay`] publishes pending outbox rows with an idempotent producer, in order, and
//!   marks them sent. One replica relays at a time (a Postgres advisory lock).
//! - [`consumer::Consumer`] hands each event to a handler inside a transaction that also records
//!   the event id in the inbox; the Kafka offset is committed only after that transaction, so a
//!   crash means redelivery, and redelivery is recognised by the inbox and skipped.

pub mod consumer;
pub mod outbox;
pub mod relay;
pub mod topics;

pub use consumer::{Consumer, ConsumerConfig, ConsumerStats, EventHandler, HandlerError};
pub use outbox::{NewEvent, PreparedEvent, enqueue, prepare};
pub use relay::{Relay, RelayConfig};
pub use topics::{ensure_topics, topic_for};

/// Kafka headers on published events. Only the trace context rides as a header (so tracing
/// tooling can follow it without decoding); id and type are in the envelope.
pub mod headers {
    pub const TRACEPARENT: &str = "traceparent";
}

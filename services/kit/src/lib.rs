//! cobro-kit: what every Cobro service stands on.
//!
//! - [`config`]: layered configuration, validated at start.
//! - [`telemetry`]: logs, traces (OTLP) and Prometheus metrics.
//! - [`db`]: a Postgres pool per service schema, migrations, error mapping.
//! - [`money`]: currencies, strict decimal parsing, rounding to minor units.
//! - [`error`]: domain errors to `tonic::Status`, once.
//! - [`grpc`]: the server every service runs (health, reflection, limits, auth, shutdown).
//! - [`auth`]: JWT verification against identity's JWKS, principals and permissions.
//! - [`events`]: transactional outbox, relay, and an inbox-backed consumer.
//! - [`service`]: the start-up every service shares (config, pool, migrations, topic, serve).

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod grpc;
pub mod money;
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

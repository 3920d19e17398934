//! cobro-kit: what every Cobro service stands on.
//!
//! - [`cache`]: Redis, connected lazily.
//! - [`clock`]: the business date the jobs act on.
//! - [`config`]: layered configuration, validated at start.
//! - [`telemetry`]: logs, traces (OTLP) and Prometheus metrics.
//! - [`db`]: a Postgres pool per service schema, migrations, error mapping.
//! - [`ids`]: prefixed ids at the API edge (`inv_…`).
//! - [`money`]: currencies, strict decimal parsing, rounding to minor units.
//! - [`error`]: domain errors to `tonic::Status`, once.
//! - [`grpc`]: the server every service runs (health, reflection, limits, auth, shutdown).
//! - [`auth`]: JWT verification against identity's JWKS, principals and permissions.
//! - [`events`]: transactional outbox, relay, and an inbox-backed consumer.
//! - [`wire`]: timestamps and paging as every API encodes them.
//! - [`service`]: the start-up every service shares (config, pool, migrations, topic, serve).

pub mod auth;
pub mod cache;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod grpc;
pub mod ids;
pub mod money;
#[cfg(any(test, feature = "testing"))]
pub mod seeded;
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

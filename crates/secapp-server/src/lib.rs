//! The secapp server: an axum application that takes a bound listener and a
//! shutdown future, so the binary and the tests start it the same way.
//!
//! Map of the crate:
//! - [`config`]: the settings, declared once, layered defaults → file →
//!   environment → flags.
//! - [`token`]: the shared compatibility token, redacted in logs.
//! - [`access`]: registered applications, their hashed tokens, the admin
//!   operations and the count of refused authentications.
//! - [`auth`]: the extractors that turn `Token`/`Authorization` and
//!   `App-name` into a [`auth::Principal`] holding the role an endpoint needs.
//! - [`error`]: the one HTTP error type and its JSON body.
//! - [`state`]: the `Clone` context of cheap handles every handler receives.
//! - [`hub`]: the live head and what each application was told, sent and acknowledged.
//! - [`streams`]: caps on open event streams, overall and per application.
//! - [`limits`]: per-application request rate limits.
//! - [`metrics`]: Prometheus metrics, counted as requests happen.
//! - [`sightings`]: polls and last sightings per application (bounded labels).
//! - [`scrape`]: the figures read from the hub, registry, streams and
//!   consumer watch at each scrape.
//! - [`listener`]: accepting connections under a cap, and the timeouts that
//!   close idle and slow ones; [`http_limits`]: the request head sizes it reads.
//! - [`headers`]: the header names secapp reads and writes, parsed once.
//! - [`data_dir`]: the data dir, created private and locked while in use.
//! - [`store`]: the storage traits, [`store::connect`] and the SQLite store.
//! - [`routes`]: the endpoints, the OpenAPI document and Swagger UI.
//! - [`clock`]: the injected time source.
//! - [`shutdown`]: SIGTERM/SIGINT handling.
//! - [`telemetry`]: logging set-up.
//! - [`startup`]: the composition root: [`Server::open`] builds the parts
//!   from the grouped settings, [`Server::run`] serves and stops everything
//!   on one shutdown path.
//! - [`replicas`]: following what other servers on a shared store commit;
//!   [`leadership`]: the lease of the once-only duties, kept fresh.
//! - [`alerts`]: the consumer watch (stale-consumer alerts);
//!   [`relay`]: the configured sinks (webhooks, brokers) and the relay
//!   that delivers the outbox to them.

pub mod access;
pub mod alerts;
pub mod auth;
pub mod clock;
pub mod config;
pub mod data_dir;
pub mod error;
pub mod headers;
pub mod http_limits;
pub mod hub;
pub mod leadership;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod relay;
pub mod replicas;
pub mod routes;
pub mod scrape;
pub mod shutdown;
pub mod sightings;
pub mod startup;
pub mod state;
pub mod store;
pub mod streams;
pub mod telemetry;
pub mod token;

pub use startup::{Server, ServerError};

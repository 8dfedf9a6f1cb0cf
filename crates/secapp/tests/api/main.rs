//! End-to-end tests: real servers (in-process on port 0, or the real binary)
//! with fresh SQLite data dirs, spoken to over real HTTP.

// A failed unwrap is a failed test, which is what a test should do.
#![allow(clippy::unwrap_used)]

mod access;
mod alerts;
mod bad_input;
mod balancer;
mod bus;
mod cli;
mod connections;
mod contract;
mod delivery;
mod durability;
mod fencing;
mod helpers;
mod history;
mod idempotency;
mod level_cli;
mod metrics;
mod operations;
mod postgres;
mod realtime;
mod receiver;
mod tcp_proxy;
mod traces;
mod watch;
mod webhooks;

//! rds-iam-proxy: a sidecar that lets clients connect to Aurora/RDS PostgreSQL on localhost
//! with no password, authenticating upstream with IAM tokens over verified TLS.
//!
//! The folders follow a connection's life (see `docs/architecture.md`); imports run one way:
//! `daemon` → `listen` → `connection` → `upstream` → `targets`, with `admin` and `metrics`
//! beside them and `commands` (check, policy, token) reusing the same stages.
#![forbid(unsafe_code)]

mod admin;
mod commands;
mod connection;
mod daemon;
mod listen;
mod metrics;
mod targets;
mod upstream;

pub use daemon::main;

// Every binary built on this library (the daemon and the copy the end-to-end tests run) uses
// jemalloc with its background purging thread: memory freed after a burst of connections goes
// back to the OS within seconds (decay time set in `.cargo/config.toml`), where glibc malloc
// keeps its high-water mark in per-thread arenas.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

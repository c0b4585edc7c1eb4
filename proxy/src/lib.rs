//! rds-iam-proxy: a sidecar that lets clients connect to Aurora/RDS PostgreSQL on localhost
//! with no password, authenticating upstream with IAM tokens over verified TLS.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod ca_bundle;
pub mod cancel;
pub mod check;
pub mod cli;
pub mod client_tls;
pub mod connection;
pub mod context;
pub mod entry;
pub mod error;
pub mod lifecycle;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod passthrough;
pub mod policy;
pub mod rate;
pub mod reload;
pub mod route;
pub mod run;
pub mod sd_notify;
pub mod server;
pub mod tls;
pub mod token_cmd;
pub mod upstream;
pub mod warmup;

// Every binary built on this library (the daemon and the copy the end-to-end tests run) uses
// jemalloc with its background purging thread: memory freed after a burst of connections goes
// back to the OS within seconds (decay time set in `.cargo/config.toml`), where glibc malloc
// keeps its high-water mark in per-thread arenas.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

//! rds-iam-proxy: a sidecar that lets clients connect to Aurora/RDS PostgreSQL on localhost
//! with no password, authenticating upstream with IAM tokens over verified TLS.
#![forbid(unsafe_code)]

pub mod app;
pub mod cancel;
pub mod cli;
pub mod connection;
pub mod context;
pub mod entry;
pub mod error;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod passthrough;
pub mod rate;
pub mod run;
pub mod server;
pub mod tls;
pub mod token_cmd;
pub mod upstream;

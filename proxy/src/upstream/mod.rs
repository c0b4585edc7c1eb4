//! Connect stage: DNS, TCP, TLS, startup and IAM authentication towards the database.

mod connect;
mod error;
mod frames;
mod tls_start;

pub use connect::{connect, Upstream, UpstreamStream};
pub use error::UpstreamError;
pub use tls_start::{dial, start_tls};

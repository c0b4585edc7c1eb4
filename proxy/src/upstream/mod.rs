//! Connect stage: DNS, TCP, TLS, startup and IAM authentication towards the database.

mod connect;
mod error;
mod frames;
mod tls_start;

pub use connect::{authenticate, connect, Upstream, UpstreamStream};
pub use error::UpstreamError;
pub use frames::read_backend;
pub use tls_start::{connect_any, dial, resolve, start_tls};

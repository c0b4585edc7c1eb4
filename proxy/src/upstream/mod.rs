//! Towards the database: DNS, TCP, TLS, startup and IAM authentication, and the one place a
//! connection gets its [`ServerSession`] from and gives it back to.

mod auth;
mod dial;
mod error;
mod frames;
mod session;
mod tls;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub(crate) use auth::authenticate;
pub(crate) use dial::{connect_any, resolve};
pub(crate) use error::UpstreamError;
pub(crate) use frames::read_backend;
pub(crate) use session::{open, release, ServerSession};
pub(crate) use tls::start_tls;

/// A TLS session with the database.
pub(crate) type UpstreamStream = TlsStream<TcpStream>;

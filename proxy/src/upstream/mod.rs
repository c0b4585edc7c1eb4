//! Towards the database: DNS, TCP, TLS, startup and IAM authentication, the pool of server
//! connections, and the one place a connection gets its [`ServerSession`] from and gives it
//! back to.

mod auth;
mod cancel;
mod dial;
mod error;
mod frames;
mod pool;
mod query;
mod redact;
mod session;
mod tls;
mod topology;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub(crate) use auth::authenticate;
pub(crate) use cancel::send_cancel;
pub(crate) use dial::{connect_any, resolve};
pub(crate) use error::UpstreamError;
pub(crate) use frames::read_backend;
pub(crate) use pool::{Pool, PoolSet};
pub(crate) use query::{send_query, simple_query, QueryError, Rows};
pub(crate) use session::{open, release, Ending, ServerSession};
pub(crate) use tls::start_tls;
pub(crate) use topology::{describe as describe_topology, Follow, TopologySet};

/// A TLS session with the database.
pub(crate) type UpstreamStream = TlsStream<TcpStream>;

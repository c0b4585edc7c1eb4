use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rds_iam_protocol::{ErrorFields, HandshakeError, ProtocolError};
use rds_iam_signer::SignerError;

/// Why a connection to the database could not be made. What a client is told of each is in
/// `connection/error/upstream.rs`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("{host} resolved to no address")]
    NoAddress { host: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no connection to the database within {0:?} (connect_timeout)")]
    Timeout(Duration),
    #[error("no {role} instance of Aurora cluster {cluster} answered within connect_timeout")]
    NoInstance { cluster: String, role: &'static str },
    #[error(transparent)]
    RateLimited(#[from] crate::targets::RateLimited),
    #[error("the database at {addr} refused TLS (answered N to SSLRequest)")]
    TlsRefused { addr: SocketAddr },
    #[error("the database at {addr} answered SSLRequest with unexpected byte {byte:#04x}")]
    TlsUnexpectedResponse { addr: SocketAddr, byte: u8 },
    #[error("TLS with {host} at {addr} failed: {source}")]
    Tls {
        host: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot mint an IAM token: {0}")]
    Signer(#[from] SignerError),
    #[error("the database rejected the IAM token for user {user:?}: {}", .fields.message)]
    TokenRejected { user: String, fields: ErrorFields },
    #[error("user {user:?}: {source}")]
    NotIamUser {
        user: String,
        source: HandshakeError,
    },
    #[error("startup handshake with the database failed: {0}")]
    Handshake(HandshakeError),
    /// An error the database sent that is not about the token (unknown database, ...): the
    /// client gets the server's frame unchanged.
    #[error("the database refused the session: {} ({})", .fields.message, .fields.code)]
    Server { fields: ErrorFields, frame: Bytes },
    #[error("the database sent an invalid message: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("the database sent more than {limit} bytes before ReadyForQuery")]
    StartupTooLarge { limit: usize },
    #[error("the database closed the connection during startup")]
    Closed,
    #[error("I/O error talking to the database: {0}")]
    Io(#[from] std::io::Error),
}

impl UpstreamError {
    /// Whether the server could not be reached at all, or did not answer in time (so another
    /// instance may be tried): not a refusal by a server that answered.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Timeout(_)
            | Self::Resolve { .. }
            | Self::NoAddress { .. }
            | Self::Connect { .. }
            | Self::TlsRefused { .. }
            | Self::Closed
            | Self::Io(_) => true,
            // The instance is starting up, shutting down or in recovery after a crash.
            Self::Server { fields, .. } => fields.code.starts_with("57P"),
            _ => false,
        }
    }

    /// The raw ErrorResponse to forward unchanged, when the database sent one we pass through.
    pub fn server_frame(&self) -> Option<&Bytes> {
        match self {
            Self::Server { frame, .. } => Some(frame),
            _ => None,
        }
    }
}

//! How a connection ended, as one closed set: the `result` label of
//! `rds_iam_proxy_connections_total` and the `outcome` of the close log line.

use crate::upstream::UpstreamError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The session ran until the server closed it (normally after the client's Terminate).
    Ok,
    /// A CancelRequest, forwarded or dropped.
    Cancel,
    /// The client side of the splice failed.
    ClientError,
    /// The server side of the splice failed, or the server refused the session.
    ServerError,
    ProtocolError,
    ClientAuthFailed,
    StartupTimeout,
    ClientGone,
    NoUser,
    TooManyConnections,
    ShuttingDown,
    /// Closed on an Aurora writer that is no longer the writer.
    WriterChanged,
    NoCredentials,
    AuthFailed,
    ConnectTimeout,
    TlsFailed,
    ConnectFailed,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Cancel => "cancel",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::ProtocolError => "protocol_error",
            Outcome::ClientAuthFailed => "client_auth_failed",
            Outcome::StartupTimeout => "startup_timeout",
            Outcome::ClientGone => "client_gone",
            Outcome::NoUser => "no_user",
            Outcome::TooManyConnections => "too_many_connections",
            Outcome::ShuttingDown => "shutting_down",
            Outcome::WriterChanged => "writer_changed",
            Outcome::NoCredentials => "no_credentials",
            Outcome::AuthFailed => "auth_failed",
            Outcome::ConnectTimeout => "connect_timeout",
            Outcome::TlsFailed => "tls_failed",
            Outcome::ConnectFailed => "connect_failed",
        }
    }
}

impl From<&UpstreamError> for Outcome {
    fn from(e: &UpstreamError) -> Outcome {
        use UpstreamError as E;
        match e {
            E::Signer(_) => Outcome::NoCredentials,
            E::TokenRejected { .. } | E::NotIamUser { .. } => Outcome::AuthFailed,
            E::Server { .. } => Outcome::ServerError,
            E::Timeout(_) | E::RateLimited(_) | E::NoInstance { .. } => Outcome::ConnectTimeout,
            E::Tls { .. } | E::TlsRefused { .. } | E::TlsUnexpectedResponse { .. } => {
                Outcome::TlsFailed
            }
            E::Resolve { .. }
            | E::NoAddress { .. }
            | E::Connect { .. }
            | E::Handshake(_)
            | E::Protocol(_)
            | E::StartupTooLarge { .. }
            | E::Closed
            | E::Io(_) => Outcome::ConnectFailed,
        }
    }
}

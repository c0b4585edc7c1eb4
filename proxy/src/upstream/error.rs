use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rds_iam_protocol::{ErrorFields, HandshakeError, ProtocolError, SqlState};
use rds_iam_signer::SignerError;

/// Why a connection to the database could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
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
    #[error(transparent)]
    RateLimited(#[from] crate::rate::RateLimited),
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
    pub fn sqlstate(&self) -> SqlState {
        match self {
            Self::Signer(e) if e.is_credentials() => {
                SqlState::SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION
            }
            Self::Signer(_) => SqlState::SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION,
            Self::TokenRejected { .. } | Self::NotIamUser { .. } => {
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            }
            Self::Protocol(_) | Self::Handshake(_) | Self::StartupTooLarge { .. } => {
                SqlState::PROTOCOL_VIOLATION
            }
            Self::Server { .. } => SqlState::CONNECTION_EXCEPTION,
            _ => SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        }
    }

    /// The raw ErrorResponse to forward unchanged, when the database sent one we pass through.
    pub fn server_frame(&self) -> Option<&Bytes> {
        match self {
            Self::Server { frame, .. } => Some(frame),
            _ => None,
        }
    }

    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Signer(_) => "no_credentials",
            Self::TokenRejected { .. } | Self::NotIamUser { .. } => "auth_failed",
            Self::Server { .. } => "server_error",
            Self::Timeout(_) | Self::RateLimited(_) => "connect_timeout",
            Self::Tls { .. } | Self::TlsRefused { .. } | Self::TlsUnexpectedResponse { .. } => {
                "tls_failed"
            }
            _ => "connect_failed",
        }
    }

    /// What the client may read: what went wrong and what to do about it. Never a token.
    pub fn client_message(&self) -> (String, Option<String>) {
        match self {
            Self::Resolve { host, .. } | Self::NoAddress { host } => (
                format!("cannot resolve the database host {host}: check the endpoint name, DNS, or set connect_to"),
                None,
            ),
            Self::Connect { addr, source } => (
                format!("cannot connect to the database at {addr}: {source}; check that it is running, the security group, and the tunnel if connect_to is set"),
                None,
            ),
            Self::Timeout(d) => (
                format!("could not connect to the database within {}: check network reachability or raise --connect-timeout", humantime::format_duration(*d)),
                None,
            ),
            Self::RateLimited(e) => (
                format!("{e}: too many new connections at once; raise --max-connect-rate or --connect-timeout"),
                None,
            ),
            Self::TlsRefused { addr } => (
                format!("the database at {addr} does not accept TLS; IAM authentication requires TLS and the proxy never falls back to plaintext"),
                None,
            ),
            Self::TlsUnexpectedResponse { addr, .. } => (
                format!("the server at {addr} does not speak the PostgreSQL TLS negotiation: is connect_to pointing at a PostgreSQL server?"),
                None,
            ),
            Self::Tls { host, source, .. } => (
                format!("TLS verification of {host} failed: {source}"),
                Some("check that ca_file holds the RDS CA bundle (global-bundle.pem) and that the target host is the RDS endpoint the certificate names, not a tunnel address (use connect_to for tunnels)".into()),
            ),
            Self::Signer(e) if e.is_credentials() => (
                format!("no AWS credentials to sign an IAM token: {e}"),
                Some("provide credentials through the AWS default chain (environment, profile, IRSA web identity, EKS Pod Identity / ECS container endpoint, or the instance role)".into()),
            ),
            Self::Signer(e) => (format!("cannot mint an IAM token: {e}"), None),
            Self::TokenRejected { user, fields } => (
                format!("the database rejected the IAM token for user \"{user}\" (server said: {})", fields.message),
                Some(format!("likely causes: IAM database authentication is off on the cluster; user \"{user}\" is not granted rds_iam (GRANT rds_iam TO \"{user}\"); the IAM policy does not allow rds-db:connect on arn:aws:rds-db:REGION:ACCOUNT:dbuser:CLUSTER_RESOURCE_ID/{user}; the signing region is wrong; the clock is off")),
            ),
            Self::NotIamUser { user, .. } => (
                format!("the database asked user \"{user}\" for a password instead of an IAM token"),
                Some(format!("grant IAM authentication to the user: GRANT rds_iam TO \"{user}\"; and enable IAM database authentication on the cluster")),
            ),
            Self::Handshake(e) => (format!("startup handshake with the database failed: {e}"), None),
            Self::Server { fields, .. } => (fields.message.clone(), None),
            Self::Protocol(_) | Self::StartupTooLarge { .. } | Self::Closed | Self::Io(_) => (
                format!("{self}; check the database logs"),
                None,
            ),
        }
    }
}

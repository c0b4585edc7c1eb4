//! What a client may see of a failure.
//!
//! Every error that reaches a client goes through [`ClientError`]: it carries a SQLSTATE and a
//! message written for the client. Internal detail (addresses, server text) is only in the
//! variants' `Display`, which is logged, never sent: the allowlist is [`ClientError::client_message`].

use rds_iam_protocol::SqlState;

/// Errors of one client connection, from accept to the end of the splice.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("client sent an invalid startup packet: {0}")]
    Protocol(#[from] rds_iam_protocol::ProtocolError),
    #[error("client did not finish the startup phase within {0:?}")]
    StartupTimeout(std::time::Duration),
    #[error("client closed the connection during startup")]
    ClientGone,
    #[error("client sent no user name")]
    NoUser,
    #[error("too many client connections (limit {0})")]
    TooManyConnections(usize),
    #[error("proxy is shutting down")]
    ShuttingDown,
    #[error("client requested TLS directly but local TLS is not configured")]
    DirectTlsRefused,
    #[error("local TLS handshake with the client failed: {0}")]
    ClientTls(std::io::Error),
    #[error("direct TLS connection without ALPN protocol \"postgresql\"")]
    DirectTlsNoAlpn,
    #[error("client password check failed for user {user:?}: {source}")]
    ClientAuth {
        user: String,
        source: rds_iam_protocol::scram::ScramError,
    },
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
    #[error("client I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl ClientError {
    pub fn sqlstate(&self) -> SqlState {
        match self {
            Self::Protocol(e) => e.sqlstate(),
            Self::StartupTimeout(_) | Self::ClientGone | Self::DirectTlsRefused => {
                SqlState::PROTOCOL_VIOLATION
            }
            Self::ClientTls(_) | Self::Io(_) | Self::DirectTlsNoAlpn => {
                SqlState::PROTOCOL_VIOLATION
            }
            Self::ClientAuth { source, .. } => source.sqlstate(),
            Self::NoUser => SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            Self::TooManyConnections(_) => SqlState::TOO_MANY_CONNECTIONS,
            Self::ShuttingDown => SqlState::ADMIN_SHUTDOWN,
            Self::Upstream(e) => e.sqlstate(),
        }
    }

    /// The text a client may see (after the `rds-iam-proxy: ` prefix) and an optional hint.
    pub fn client_message(&self) -> (String, Option<String>) {
        match self {
            Self::Upstream(e) => e.client_message(),
            Self::NoUser => (
                "no user name in the startup packet: connect with a user (psql -U NAME) or start the proxy with --user".into(),
                None,
            ),
            Self::TooManyConnections(n) => (
                format!("too many client connections (max_connections = {n}): close idle connections or raise --max-connections"),
                None,
            ),
            Self::ShuttingDown => ("the proxy is shutting down: reconnect shortly".into(), None),
            Self::DirectTlsNoAlpn => (
                "direct TLS connections must negotiate ALPN protocol \"postgresql\": use a PostgreSQL 17+ client or sslnegotiation=postgres".into(),
                None,
            ),
            Self::ClientAuth { user, source } => match source {
                rds_iam_protocol::scram::ScramError::InvalidProof => (
                    format!("password authentication failed for user \"{user}\": connect with the proxy's client_password"),
                    None,
                ),
                other => (format!("password authentication for user \"{user}\" failed: {other}"), None),
            },
            other => (other.to_string(), None),
        }
    }

    /// Short label for metrics and the connection-close log line.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Protocol(_)
            | Self::DirectTlsRefused
            | Self::DirectTlsNoAlpn
            | Self::ClientTls(_) => "protocol_error",
            Self::ClientAuth { .. } => "client_auth_failed",
            Self::StartupTimeout(_) => "startup_timeout",
            Self::ClientGone | Self::Io(_) => "client_gone",
            Self::NoUser => "no_user",
            Self::TooManyConnections(_) => "too_many_connections",
            Self::ShuttingDown => "shutting_down",
            Self::Upstream(e) => e.outcome(),
        }
    }
}

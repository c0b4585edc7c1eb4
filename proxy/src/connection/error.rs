//! What a client may see of a failure.
//!
//! [`UserFacing`] is the allowlist: for every variant of every error that can reach a client,
//! its implementation names the SQLSTATE and writes the text, variant by variant. Nothing falls
//! back to an error's `Display`, which is for the log and may carry internal detail.

mod upstream;

use rds_iam_protocol::scram::ScramError;
use rds_iam_protocol::SqlState;

use super::outcome::Outcome;
use crate::upstream::UpstreamError;

/// A message for the client (sent after the `rds-iam-proxy: ` prefix) and an optional hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientMessage {
    pub message: String,
    pub hint: Option<String>,
}

/// An error a client may be told about.
pub(crate) trait UserFacing {
    fn sqlstate(&self) -> SqlState;
    fn client_message(&self) -> ClientMessage;
}

/// Errors of one client connection, from accept to the end of the splice.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
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
    #[error("the Aurora writer changed; session on the old writer closed")]
    WriterChanged,
    #[error("client requested TLS directly but local TLS is not configured")]
    DirectTlsRefused,
    #[error("local TLS handshake with the client failed: {0}")]
    ClientTls(std::io::Error),
    #[error("direct TLS connection without ALPN protocol \"postgresql\"")]
    DirectTlsNoAlpn,
    #[error("client did not start TLS, which allow_remote requires")]
    TlsRequired,
    #[error("client password check failed for user {user:?}: {source}")]
    ClientAuth { user: String, source: ScramError },
    /// Boxed: the database's error fields are large, and every stage returns this type.
    #[error(transparent)]
    Upstream(Box<UpstreamError>),
    #[error("client I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<UpstreamError> for ClientError {
    fn from(e: UpstreamError) -> ClientError {
        ClientError::Upstream(Box::new(e))
    }
}

impl ClientError {
    /// Whether an ErrorResponse can still reach the client: not once it has gone, nor when it
    /// is speaking TLS to a socket that never became TLS.
    pub fn may_reply(&self) -> bool {
        !matches!(
            self,
            Self::ClientGone | Self::DirectTlsRefused | Self::ClientTls(_)
        )
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Protocol(_)
            | Self::DirectTlsRefused
            | Self::DirectTlsNoAlpn
            | Self::ClientTls(_) => Outcome::ProtocolError,
            Self::ClientAuth { .. } | Self::TlsRequired => Outcome::ClientAuthFailed,
            Self::StartupTimeout(_) => Outcome::StartupTimeout,
            Self::ClientGone | Self::Io(_) => Outcome::ClientGone,
            Self::NoUser => Outcome::NoUser,
            Self::TooManyConnections(_) => Outcome::TooManyConnections,
            Self::ShuttingDown => Outcome::ShuttingDown,
            Self::WriterChanged => Outcome::WriterChanged,
            Self::Upstream(e) => Outcome::from(&**e),
        }
    }
}

impl UserFacing for ClientError {
    fn sqlstate(&self) -> SqlState {
        match self {
            Self::Protocol(e) => e.sqlstate(),
            Self::StartupTimeout(_)
            | Self::ClientGone
            | Self::DirectTlsRefused
            | Self::ClientTls(_)
            | Self::Io(_)
            | Self::DirectTlsNoAlpn => SqlState::PROTOCOL_VIOLATION,
            Self::ClientAuth { source, .. } => source.sqlstate(),
            Self::NoUser | Self::TlsRequired => SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            Self::TooManyConnections(_) => SqlState::TOO_MANY_CONNECTIONS,
            Self::ShuttingDown | Self::WriterChanged => SqlState::ADMIN_SHUTDOWN,
            Self::Upstream(e) => e.sqlstate(),
        }
    }

    fn client_message(&self) -> ClientMessage {
        let message = match self {
            Self::Upstream(e) => return e.client_message(),
            // The client's own bytes: telling it what was wrong with them reveals nothing.
            Self::Protocol(e) => format!("client sent an invalid startup packet: {e}"),
            Self::StartupTimeout(d) => {
                format!("client did not finish the startup phase within {d:?}")
            }
            Self::ClientGone => "client closed the connection during startup".into(),
            Self::DirectTlsRefused => {
                "client requested TLS directly but local TLS is not configured".into()
            }
            Self::ClientTls(_) => "local TLS handshake with the client failed".into(),
            Self::Io(_) => "client I/O error".into(),
            Self::NoUser => "no user name in the startup packet: connect with a user (psql -U NAME) or start the proxy with --user".into(),
            Self::TooManyConnections(n) => format!("too many client connections (max_connections = {n}): close idle connections or raise --max-connections"),
            Self::ShuttingDown => "the proxy is shutting down: reconnect shortly".into(),
            Self::WriterChanged => "the Aurora writer changed: reconnect to reach the new writer".into(),
            Self::TlsRequired => "TLS required: this proxy accepts remote clients, so every client must connect with TLS (sslmode=require or stronger)".into(),
            Self::DirectTlsNoAlpn => "direct TLS connections must negotiate ALPN protocol \"postgresql\": use a PostgreSQL 17+ client or sslnegotiation=postgres".into(),
            Self::ClientAuth { user, source: ScramError::InvalidProof } => format!("password authentication failed for user \"{user}\": connect with the proxy's client_password"),
            Self::ClientAuth { user, source } => format!("password authentication for user \"{user}\" failed: {source}"),
        };
        ClientMessage {
            message,
            hint: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // What an I/O or TLS error says is for the log: the client gets the proxy's own words.
    #[test]
    fn internal_detail_stays_out_of_client_messages() {
        let detail = "internal detail 10.1.2.3:5432";
        for e in [
            ClientError::Io(std::io::Error::other(detail)),
            ClientError::ClientTls(std::io::Error::other(detail)),
        ] {
            assert!(e.to_string().contains(detail), "the log keeps it: {e}");
            let shown = e.client_message();
            assert!(!shown.message.contains(detail), "{shown:?}");
            assert_eq!(e.sqlstate(), SqlState::PROTOCOL_VIOLATION);
        }
    }

    #[test]
    fn outcome_labels_are_distinct() {
        let errors = [
            ClientError::NoUser,
            ClientError::ClientGone,
            ClientError::ShuttingDown,
            ClientError::WriterChanged,
            ClientError::TooManyConnections(1),
            ClientError::StartupTimeout(std::time::Duration::from_secs(1)),
            ClientError::DirectTlsNoAlpn,
        ];
        let labels: std::collections::HashSet<&str> =
            errors.iter().map(|e| e.outcome().label()).collect();
        assert_eq!(labels.len(), errors.len(), "{labels:?}");
        assert!(!labels.contains(Outcome::Ok.label()));
    }
}

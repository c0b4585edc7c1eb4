//! What a client is told when the database cannot be reached or refuses: each variant's
//! SQLSTATE and text, spelled out (no variant falls back to its `Display`, which may hold
//! detail meant for the log only).

use rds_iam_protocol::SqlState;

use super::{ClientMessage, UserFacing};
use crate::upstream::UpstreamError;

impl UserFacing for UpstreamError {
    fn sqlstate(&self) -> SqlState {
        match self {
            Self::Signer(_) => SqlState::SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION,
            Self::TokenRejected { .. } | Self::NotIamUser { .. } => {
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            }
            Self::Protocol(_) | Self::Handshake(_) | Self::StartupTooLarge { .. } => {
                SqlState::PROTOCOL_VIOLATION
            }
            Self::Server { .. } => SqlState::CONNECTION_EXCEPTION,
            Self::Resolve { .. }
            | Self::NoAddress { .. }
            | Self::Connect { .. }
            | Self::Timeout(_)
            | Self::NoInstance { .. }
            | Self::RateLimited(_)
            | Self::TlsRefused { .. }
            | Self::TlsUnexpectedResponse { .. }
            | Self::Tls { .. }
            | Self::Closed
            | Self::Io(_) => SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        }
    }

    /// What the client may read: what went wrong and what to do about it. Never a token.
    fn client_message(&self) -> ClientMessage {
        let (message, hint) = match self {
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
            Self::NoInstance { cluster, role } => (
                format!("no {role} instance of Aurora cluster {cluster} could be reached within connect_timeout (a failover in progress, or the cluster is down): retry, or raise --connect-timeout"),
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
            Self::Protocol(e) => (
                format!("the database sent an invalid message: {e}; check the database logs"),
                None,
            ),
            Self::StartupTooLarge { limit } => (
                format!("the database sent more than {limit} bytes before ReadyForQuery; check the database logs"),
                None,
            ),
            Self::Closed => (
                "the database closed the connection during startup; check the database logs".into(),
                None,
            ),
            Self::Io(e) => (
                format!("I/O error talking to the database: {e}; check the database logs"),
                None,
            ),
        };
        ClientMessage { message, hint }
    }
}

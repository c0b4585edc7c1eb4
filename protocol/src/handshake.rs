//! IO-free upstream handshake: StartupMessage out, then one decoded server
//! message at a time until ReadyForQuery.

use bytes::{Bytes, BytesMut};

use crate::backend::BackendMessage;
use crate::error::ErrorFields;
use crate::frontend::StartupMessage;
use crate::sqlstate::SqlState;

/// What the driver does with the message it just fed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeStep {
    /// Write `encode_password_message(token)` upstream; relay nothing.
    SendPassword,
    /// Forward the raw frame to the client unchanged.
    RelayToClient,
    /// ReadyForQuery: forward the raw frame, then splice.
    Ready,
}

const GRANT_HINT: &str = "the database asked for a password, not an IAM token: the user is \
     probably not granted rds_iam (GRANT rds_iam TO user), or IAM authentication is not \
     enabled on the cluster";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("{GRANT_HINT} (server requested md5)")]
    Md5Requested,
    #[error("{GRANT_HINT} (server requested SASL: {})", mechanisms.join(", "))]
    SaslRequested { mechanisms: Vec<String> },
    #[error(
        "the database requested an unsupported authentication method (code {0}); only IAM \
             (cleartext token) authentication is supported"
    )]
    UnsupportedAuth(u32),
    #[error("the database asked for the password twice")]
    PasswordRequestedTwice,
    /// The server's own ErrorResponse. The caller forwards its raw frame
    /// unchanged, after one retry with a fresh token if `fields.is_auth_failure()`.
    #[error("the database refused the connection: {0}")]
    Rejected(ErrorFields),
    #[error("unexpected message '{}' from the database during the handshake", char::from(*tag))]
    UnexpectedMessage { tag: u8 },
}

impl HandshakeError {
    /// SQLSTATE for the FATAL error the proxy sends. For `Rejected`, forward
    /// the server's frame instead; this returns 28000/28P01 when that is its
    /// code and 08004 otherwise.
    pub fn sqlstate(&self) -> SqlState {
        match self {
            HandshakeError::Md5Requested
            | HandshakeError::SaslRequested { .. }
            | HandshakeError::UnsupportedAuth(_) => SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            HandshakeError::PasswordRequestedTwice | HandshakeError::UnexpectedMessage { .. } => {
                SqlState::PROTOCOL_VIOLATION
            }
            HandshakeError::Rejected(f) if f.code == SqlState::INVALID_PASSWORD.0 => {
                SqlState::INVALID_PASSWORD
            }
            HandshakeError::Rejected(f) if f.is_auth_failure() => {
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            }
            HandshakeError::Rejected(_) => {
                SqlState::SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION
            }
        }
    }

    /// True when the server refused the token (28000/28P01): worth one retry
    /// with refreshed credentials.
    pub fn is_auth_rejection(&self) -> bool {
        matches!(self, HandshakeError::Rejected(f) if f.is_auth_failure())
    }

    /// A HINT for the client's ErrorResponse.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            HandshakeError::Md5Requested | HandshakeError::SaslRequested { .. } => Some(
                "Run GRANT rds_iam TO <user>; check that IAM database authentication is enabled \
                 on the cluster.",
            ),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingAuth,
    PasswordSent,
    Authenticated,
    Ready,
    Failed,
}

/// Tracks one upstream handshake. Feed every decoded server message to
/// [`UpstreamHandshake::on_message`] in order.
#[derive(Debug, Clone)]
pub struct UpstreamHandshake {
    state: State,
    backend_key: Option<(u32, Bytes)>,
    negotiated: Option<(u32, Vec<String>)>,
    /// Kept apart from `state`, which a later error turns into `Failed`.
    authenticated: bool,
}

impl UpstreamHandshake {
    /// Writes the StartupMessage to `out` (TLS must already be up).
    pub fn new(startup: &StartupMessage, out: &mut BytesMut) -> Self {
        startup.encode(out);
        UpstreamHandshake {
            state: State::AwaitingAuth,
            backend_key: None,
            negotiated: None,
            authenticated: false,
        }
    }

    /// The server's BackendKeyData (pid, secret), once seen.
    pub fn backend_key(&self) -> Option<(u32, &Bytes)> {
        self.backend_key
            .as_ref()
            .map(|(pid, secret)| (*pid, secret))
    }

    /// NegotiateProtocolVersion contents (newest minor, unrecognized options), once seen.
    pub fn negotiated_protocol(&self) -> Option<(u32, &[String])> {
        self.negotiated.as_ref().map(|(v, o)| (*v, o.as_slice()))
    }

    /// Whether AuthenticationOk has been seen (also after a later error, e.g. 53300 too many
    /// connections, which PostgreSQL sends after authenticating).
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    // `Rejected` carries the server's fields by value so callers can move them
    // into their own errors; this runs a few times per connection, not hot.
    /// Advances on one server message. After an error or `Ready` every
    /// further message is an error.
    #[allow(clippy::result_large_err)]
    pub fn on_message(&mut self, msg: &BackendMessage) -> Result<HandshakeStep, HandshakeError> {
        let result = self.step(msg);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    #[allow(clippy::result_large_err)]
    fn step(&mut self, msg: &BackendMessage) -> Result<HandshakeStep, HandshakeError> {
        use BackendMessage as M;
        use State as S;
        let unexpected = Err(HandshakeError::UnexpectedMessage { tag: msg.tag() });
        if matches!(self.state, S::Ready | S::Failed) {
            return unexpected;
        }
        let before_auth = matches!(self.state, S::AwaitingAuth | S::PasswordSent);
        match msg {
            // Errors end the handshake whenever they come.
            M::ErrorResponse(f) => Err(HandshakeError::Rejected(f.clone())),
            M::NoticeResponse(_) => Ok(HandshakeStep::RelayToClient),
            M::AuthenticationCleartextPassword => match self.state {
                S::AwaitingAuth => {
                    self.state = S::PasswordSent;
                    Ok(HandshakeStep::SendPassword)
                }
                S::PasswordSent => Err(HandshakeError::PasswordRequestedTwice),
                _ => unexpected,
            },
            // Also valid without a password request (e.g. `trust` in
            // pg_hba): the server decides, the proxy relays.
            M::AuthenticationOk if before_auth => {
                self.state = S::Authenticated;
                self.authenticated = true;
                Ok(HandshakeStep::RelayToClient)
            }
            M::AuthenticationMd5Password if before_auth => Err(HandshakeError::Md5Requested),
            M::AuthenticationSasl { mechanisms } if before_auth => {
                Err(HandshakeError::SaslRequested {
                    mechanisms: mechanisms.clone(),
                })
            }
            M::AuthenticationOther(code) if before_auth => {
                Err(HandshakeError::UnsupportedAuth(*code))
            }
            // Sent in reply to the StartupMessage, so only before auth, once.
            M::NegotiateProtocolVersion {
                newest_minor,
                unrecognized,
            } if before_auth && self.negotiated.is_none() => {
                self.negotiated = Some((*newest_minor, unrecognized.clone()));
                Ok(HandshakeStep::RelayToClient)
            }
            M::ParameterStatus { .. } if self.state == S::Authenticated => {
                Ok(HandshakeStep::RelayToClient)
            }
            M::BackendKeyData { pid, secret }
                if self.state == S::Authenticated && self.backend_key.is_none() =>
            {
                self.backend_key = Some((*pid, secret.clone()));
                Ok(HandshakeStep::RelayToClient)
            }
            M::ReadyForQuery { .. } if self.state == S::Authenticated => {
                self.state = S::Ready;
                Ok(HandshakeStep::Ready)
            }
            _ => unexpected,
        }
    }
}

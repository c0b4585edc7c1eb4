//! IAM authentication on a TLS session: the client's StartupMessage, the token as the
//! cleartext password, then everything the server sends up to ReadyForQuery.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use rds_iam_protocol::{
    encode_password_message, BackendMessage, HandshakeError, HandshakeStep, StartupMessage,
    UpstreamHandshake,
};
use rds_iam_signer::AuthToken;
use tokio::io::AsyncWriteExt;

use super::frames::read_backend;
use super::redact;
use super::{UpstreamError, UpstreamStream};

/// Upper bound on what the server may send between AuthenticationOk and ReadyForQuery
/// (ParameterStatus, notices); a real server sends a few hundred bytes.
pub(crate) const MAX_STARTUP_RELAY_LEN: usize = 256 * 1024;

/// What the server said between AuthenticationOk and ReadyForQuery, for the client.
pub(crate) struct Authenticated {
    /// The server's frames from AuthenticationOk to ReadyForQuery, as sent, plus any bytes that
    /// arrived after it: the client gets them before the splice starts.
    pub to_client: BytesMut,
    /// BackendKeyData (pid, secret), for routing CancelRequests.
    pub backend_key: Option<(u32, Bytes)>,
    /// The ParameterStatus values, in the order sent, and the NegotiateProtocolVersion frame
    /// if there was one: what later clients of a pooled connection are greeted with.
    pub params: Vec<(String, String)>,
    pub negotiated: Option<Bytes>,
}

/// StartupMessage, the token as the cleartext password, then everything up to ReadyForQuery.
pub(crate) async fn authenticate(
    stream: &mut UpstreamStream,
    addr: SocketAddr,
    startup: &StartupMessage,
    token: &AuthToken,
    user: &str,
) -> Result<Authenticated, UpstreamError> {
    let mut out = BytesMut::with_capacity(512);
    let mut handshake = UpstreamHandshake::new(startup, &mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut to_client = BytesMut::new();
    let mut params = Vec::new();
    let mut negotiated = None;
    loop {
        let (message, frame) = read_backend(stream, &mut buf).await?;
        match handshake.on_message(&message) {
            Ok(HandshakeStep::SendPassword) => {
                out.clear();
                encode_password_message(token.expose(), &mut out);
                stream.write_all(&out).await?;
                stream.flush().await?;
                // The buffer held a bearer credential: do not leave it lying around.
                out.iter_mut().for_each(|b| *b = 0);
                out.clear();
            }
            Ok(HandshakeStep::RelayToClient) => {
                let frame = redact::frame(frame, token.expose());
                match message {
                    BackendMessage::ParameterStatus { name, value } => {
                        params.push((name, redact::text(value, token.expose())));
                    }
                    BackendMessage::NegotiateProtocolVersion { .. } => {
                        negotiated = Some(frame.clone());
                    }
                    _ => {}
                }
                if to_client.len() + frame.len() > MAX_STARTUP_RELAY_LEN {
                    return Err(UpstreamError::StartupTooLarge {
                        limit: MAX_STARTUP_RELAY_LEN,
                    });
                }
                to_client.extend_from_slice(&frame);
            }
            Ok(HandshakeStep::Ready) => {
                to_client.extend_from_slice(&frame);
                to_client.extend_from_slice(&buf);
                tracing::debug!(%addr, "upstream session authenticated");
                return Ok(Authenticated {
                    to_client,
                    backend_key: handshake.backend_key().map(|(pid, key)| (pid, key.clone())),
                    params,
                    negotiated,
                });
            }
            Err(HandshakeError::Rejected(mut fields)) => {
                redact::fields(&mut fields, token.expose());
                let frame = redact::frame(frame, token.expose());
                return Err(if fields.is_auth_failure() {
                    UpstreamError::TokenRejected {
                        user: user.to_owned(),
                        fields,
                    }
                } else {
                    UpstreamError::Server { fields, frame }
                });
            }
            Err(e @ (HandshakeError::Md5Requested | HandshakeError::SaslRequested { .. })) => {
                return Err(UpstreamError::NotIamUser {
                    user: user.to_owned(),
                    source: e,
                });
            }
            Err(e) => return Err(UpstreamError::Handshake(e)),
        }
    }
}

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use rds_iam_protocol::{
    encode_password_message, HandshakeError, HandshakeStep, StartupMessage, UpstreamHandshake,
};
use rds_iam_signer::AuthToken;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::frames::read_backend;
use super::{dial, start_tls, UpstreamError};
use crate::context::TargetContext;

/// Upper bound on what the server may send between AuthenticationOk and ReadyForQuery
/// (ParameterStatus, notices); a real server sends a few hundred bytes.
pub const MAX_STARTUP_RELAY_LEN: usize = 256 * 1024;

pub type UpstreamStream = TlsStream<TcpStream>;

/// An authenticated session, ready to splice.
pub struct Upstream {
    pub stream: UpstreamStream,
    pub addr: SocketAddr,
    /// The server's frames from AuthenticationOk to ReadyForQuery, as sent, plus any bytes that
    /// arrived after it: the client gets them before the splice starts.
    pub to_client: BytesMut,
    /// BackendKeyData (pid, secret), for routing CancelRequests.
    pub backend_key: Option<(u32, Bytes)>,
}

/// Connects within the target's connect timeout. A rejected token is refreshed (new
/// credentials, new token) and tried once more before the error reaches the client.
pub async fn connect(
    target: &TargetContext,
    startup: &StartupMessage,
    user: &str,
) -> Result<Upstream, UpstreamError> {
    let deadline = Instant::now() + target.connect_timeout;
    tokio::time::timeout_at(
        deadline,
        connect_with_retry(target, startup, user, deadline),
    )
    .await
    .unwrap_or(Err(UpstreamError::Timeout(target.connect_timeout)))
}

async fn connect_with_retry(
    target: &TargetContext,
    startup: &StartupMessage,
    user: &str,
    deadline: Instant,
) -> Result<Upstream, UpstreamError> {
    let request = target.token_request(user);
    let token = target.signer.token(&request).await?;
    match attempt(target, startup, &token, user, deadline).await {
        Err(UpstreamError::TokenRejected { fields, .. }) => {
            tracing::warn!(
                code = %fields.code,
                "database rejected the IAM token; refreshing credentials and retrying once"
            );
            let token = target.signer.refresh_token(&request).await?;
            attempt(target, startup, &token, user, deadline).await
        }
        other => other,
    }
}

async fn attempt(
    target: &TargetContext,
    startup: &StartupMessage,
    token: &AuthToken,
    user: &str,
    deadline: Instant,
) -> Result<Upstream, UpstreamError> {
    target.rate.acquire(deadline).await?;
    let (tcp, addr) = dial(&target.dial.0, target.dial.1).await?;
    let mut stream = start_tls(tcp, addr, target).await?;
    authenticate(&mut stream, addr, startup, token, user)
        .await
        .map(|(to_client, backend_key)| Upstream {
            stream,
            addr,
            to_client,
            backend_key,
        })
}

/// StartupMessage, the token as the cleartext password, then everything up to ReadyForQuery.
pub async fn authenticate(
    stream: &mut UpstreamStream,
    addr: SocketAddr,
    startup: &StartupMessage,
    token: &AuthToken,
    user: &str,
) -> Result<(BytesMut, Option<(u32, Bytes)>), UpstreamError> {
    let mut out = BytesMut::with_capacity(512);
    let mut handshake = UpstreamHandshake::new(startup, &mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut to_client = BytesMut::new();
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
                return Ok((
                    to_client,
                    handshake.backend_key().map(|(pid, key)| (pid, key.clone())),
                ));
            }
            Err(HandshakeError::Rejected(fields)) => {
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

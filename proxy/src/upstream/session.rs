//! Where a connection gets its server session, and where it gives it back. Today every
//! session is a new connection (DNS, TCP, TLS, IAM auth) and giving it back closes it; a pool
//! goes behind these same two calls.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use rds_iam_protocol::StartupMessage;
use rds_iam_signer::AuthToken;
use tokio::time::Instant;

use super::auth::{authenticate, Authenticated};
use super::dial::dial;
use super::tls::start_tls;
use super::{UpstreamError, UpstreamStream};
use crate::targets::TargetContext;

/// An authenticated server session, ready to splice.
pub(crate) struct ServerSession {
    pub stream: UpstreamStream,
    pub addr: SocketAddr,
    /// What the client must be sent before the splice: the server's frames from
    /// AuthenticationOk to ReadyForQuery, and any bytes that followed.
    pub to_client: BytesMut,
    /// BackendKeyData (pid, secret), for routing CancelRequests.
    pub backend_key: Option<(u32, Bytes)>,
}

/// A server session for `startup` as `user`, within the target's connect timeout. A rejected
/// token is refreshed (new credentials, new token) and tried once more before the error
/// reaches the client.
pub(crate) async fn open(
    target: &TargetContext,
    startup: &StartupMessage,
    user: &str,
) -> Result<ServerSession, UpstreamError> {
    let deadline = Instant::now() + target.connect_timeout;
    tokio::time::timeout_at(
        deadline,
        connect_with_retry(target, startup, user, deadline),
    )
    .await
    .unwrap_or(Err(UpstreamError::Timeout(target.connect_timeout)))
}

/// Hands a session back once its client is done with it. Without a pool that closes it: the
/// splice already passed the client's Terminate on and shut the write side down.
pub(crate) fn release(session: ServerSession) {
    drop(session);
}

async fn connect_with_retry(
    target: &TargetContext,
    startup: &StartupMessage,
    user: &str,
    deadline: Instant,
) -> Result<ServerSession, UpstreamError> {
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
) -> Result<ServerSession, UpstreamError> {
    target.rate.acquire(deadline).await?;
    let (tcp, addr) = dial(&target.dial.0, target.dial.1).await?;
    let mut stream = start_tls(tcp, addr, &target.tls).await?;
    let Authenticated {
        to_client,
        backend_key,
    } = authenticate(&mut stream, addr, startup, token, user).await?;
    Ok(ServerSession {
        stream,
        addr,
        to_client,
        backend_key,
    })
}

//! A CancelRequest to one server session, on a connection of its own.

use std::net::SocketAddr;

use bytes::BytesMut;
use rds_iam_protocol::CancelRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{start_tls, UpstreamError};
use crate::targets::ServerTrust;

/// Sends `request` over TLS to the server at `addr`, verified with `trust`, and waits for
/// the server to close (it never replies).
pub(crate) async fn send_cancel(
    addr: SocketAddr,
    trust: &ServerTrust,
    request: &CancelRequest,
) -> Result<(), UpstreamError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| UpstreamError::Connect { addr, source })?;
    tcp.set_nodelay(true)?;
    let mut tls = start_tls(tcp, addr, trust).await?;
    let mut out = BytesMut::with_capacity(16 + request.secret.len());
    request.encode(&mut out);
    tls.write_all(&out).await?;
    tls.flush().await?;
    // The server acts on the request and closes; wait for that so the cancel has landed
    // before we report it forwarded.
    // Servers close without close_notify, which rustls reports as an error: either way the
    // request was delivered.
    let mut sink = [0u8; 64];
    while let Ok(n) = tls.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
    Ok(())
}

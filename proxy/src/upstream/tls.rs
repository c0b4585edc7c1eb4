//! SSLRequest and the TLS handshake, verified against the target's CA bundle and endpoint.

use std::net::SocketAddr;

use bytes::BytesMut;
use rds_iam_protocol::encode_ssl_request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::UpstreamError;
use crate::targets::ServerTrust;

/// SSLRequest, then TLS verified against the target's CA bundle and endpoint name.
pub(crate) async fn start_tls(
    mut tcp: TcpStream,
    addr: SocketAddr,
    trust: &ServerTrust,
) -> Result<TlsStream<TcpStream>, UpstreamError> {
    let mut req = BytesMut::with_capacity(8);
    encode_ssl_request(&mut req);
    tcp.write_all(&req).await?;
    // Exactly one byte, read straight from the socket: anything a server sends after 'S' must
    // go through TLS, never be taken as plaintext (CVE-2021-23222). Any text it sends instead
    // is never shown (CVE-2024-10977).
    let mut answer = [0u8; 1];
    if tcp.read(&mut answer).await? == 0 {
        return Err(UpstreamError::Closed);
    }
    match answer[0] {
        b'S' => {}
        b'N' => return Err(UpstreamError::TlsRefused { addr }),
        byte => return Err(UpstreamError::TlsUnexpectedResponse { addr, byte }),
    }
    TlsConnector::from(trust.config.clone())
        .connect(trust.server_name.clone(), tcp)
        .await
        .map_err(|source| UpstreamError::Tls {
            host: trust.host.clone(),
            addr,
            source,
        })
}

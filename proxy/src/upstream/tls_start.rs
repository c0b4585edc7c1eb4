use std::net::SocketAddr;

use bytes::BytesMut;
use rds_iam_protocol::encode_ssl_request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::UpstreamError;
use crate::context::TargetContext;

/// Resolves the dialled address afresh (a cluster endpoint moves on failover) and connects to
/// the first address that answers.
pub async fn dial(host: &str, port: u16) -> Result<(TcpStream, SocketAddr), UpstreamError> {
    let addrs = resolve(host, port).await?;
    connect_any(host, addrs).await
}

/// The DNS step of [`dial`] on its own (`rds-iam-proxy check` reports it separately).
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, UpstreamError> {
    Ok(tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| UpstreamError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect())
}

/// The TCP step of [`dial`]: the first of `addrs` that accepts, with TCP_NODELAY.
pub async fn connect_any(
    host: &str,
    addrs: Vec<SocketAddr>,
) -> Result<(TcpStream, SocketAddr), UpstreamError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                return Ok((tcp, addr));
            }
            Err(source) => last = Some(UpstreamError::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| UpstreamError::NoAddress {
        host: host.to_owned(),
    }))
}

/// SSLRequest, then TLS verified against the target's CA bundle and endpoint name.
pub async fn start_tls(
    mut tcp: TcpStream,
    addr: SocketAddr,
    target: &TargetContext,
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
    TlsConnector::from(target.tls.clone())
        .connect(target.server_name.clone(), tcp)
        .await
        .map_err(|source| UpstreamError::Tls {
            host: target.host.clone(),
            addr,
            source,
        })
}

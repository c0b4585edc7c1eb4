//! DNS and TCP towards the database.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::UpstreamError;

/// Resolves the dialled address afresh (a cluster endpoint moves on failover) and connects to
/// the first address that answers.
pub(crate) async fn dial(host: &str, port: u16) -> Result<(TcpStream, SocketAddr), UpstreamError> {
    let addrs = resolve(host, port).await?;
    connect_any(host, addrs).await
}

/// The DNS step of [`dial`] on its own (`rds-iam-proxy check` reports it separately).
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, UpstreamError> {
    Ok(tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| UpstreamError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect())
}

/// The TCP step of [`dial`]: the first of `addrs` that accepts, with TCP_NODELAY.
pub(crate) async fn connect_any(
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

//! Client-facing sockets: TCP on loopback by default, and unix sockets for `psql -h DIR`.

use std::io;
use std::path::PathBuf;

use rds_iam_config::ListenAddr;

use tokio::net::{TcpListener, UnixListener};

use super::unix_socket;

#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixSocket),
}

/// A bound unix socket; its file is removed when dropped.
#[derive(Debug)]
pub(crate) struct UnixSocket {
    pub listener: UnixListener,
    pub path: PathBuf,
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Listener {
    /// Where it listens, for logs.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp".into(), |a| a.to_string()),
            Listener::Unix(u) => format!("unix:{}", u.path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ListenError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("unix socket {path} is in use by another running process")]
    InUse { path: PathBuf },
    #[error(
        "{path} is {kind}, not a unix socket: remove it or choose another unix_socket directory"
    )]
    NotASocket { path: PathBuf, kind: &'static str },
}

async fn bind_tcp(addr: std::net::SocketAddr) -> Result<Listener, ListenError> {
    TcpListener::bind(addr)
        .await
        .map(Listener::Tcp)
        .map_err(|source| ListenError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Binds one listen address (unix sockets with `mode`).
pub(crate) async fn bind_addr(addr: &ListenAddr, mode: u32) -> Result<Listener, ListenError> {
    match addr {
        ListenAddr::Tcp(a) => bind_tcp(*a).await,
        unix @ ListenAddr::Unix { .. } => unix_socket::bind(&unix.socket_path(), mode).await,
    }
}

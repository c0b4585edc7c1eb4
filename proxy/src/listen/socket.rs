//! Client-facing sockets: TCP on loopback by default, and unix sockets for `psql -h DIR`.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rds_iam_config::ListenAddr;

use tokio::net::{TcpListener, UnixListener, UnixStream};

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

/// Binds `path` with permissions `mode`. A socket file left by a crashed run (nothing accepts
/// on it) is replaced; a live one is an error.
async fn bind_unix(path: &Path, mode: u32) -> Result<Listener, ListenError> {
    let bind_err = |source| ListenError::Bind {
        addr: format!("unix:{}", path.display()),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ListenError::InUse {
                path: path.to_owned(),
            });
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    let socket = UnixSocket {
        listener,
        path: path.to_owned(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(bind_err)?;
    Ok(Listener::Unix(socket))
}

/// Binds one listen address (unix sockets with `mode`).
pub(crate) async fn bind_addr(addr: &ListenAddr, mode: u32) -> Result<Listener, ListenError> {
    match addr {
        ListenAddr::Tcp(a) => bind_tcp(*a).await,
        unix @ ListenAddr::Unix { .. } => bind_unix(&unix.socket_path(), mode).await,
    }
}

//! systemd readiness notification (`sd_notify(3)`): one datagram to `$NOTIFY_SOCKET`.
//! A plain `UnixDatagram` send, so no libsystemd and no unsafe code.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// Where to send notifications, from `NOTIFY_SOCKET` (unset: not run by systemd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotifySocket {
    Path(PathBuf),
    /// Linux abstract namespace (`@name` in the variable).
    Abstract(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum NotifyError {
    #[error("sending {state:?} to NOTIFY_SOCKET {socket:?}: {source}")]
    Send {
        state: String,
        socket: NotifySocket,
        source: std::io::Error,
    },
}

impl NotifySocket {
    pub fn parse(value: &str) -> Option<NotifySocket> {
        if value.is_empty() {
            return None;
        }
        Some(match value.strip_prefix('@') {
            Some(name) => NotifySocket::Abstract(name.as_bytes().to_vec()),
            None => NotifySocket::Path(PathBuf::from(value)),
        })
    }

    /// Sends one state string such as `READY=1`.
    pub fn notify(&self, state: &str) -> Result<(), NotifyError> {
        self.send(state.as_bytes())
            .map_err(|source| NotifyError::Send {
                state: state.to_owned(),
                socket: self.clone(),
                source,
            })
    }

    fn send(&self, message: &[u8]) -> std::io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        match self {
            NotifySocket::Path(path) => socket.send_to(message, path).map(drop),
            NotifySocket::Abstract(name) => send_abstract(&socket, name, message),
        }
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &[u8], message: &[u8]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(message, &addr).map(drop)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract unix sockets exist only on Linux",
    ))
}

/// Notifies systemd if it is listening; a failure is logged, never fatal.
pub(crate) fn notify(socket: Option<&NotifySocket>, state: &str) {
    if let Some(socket) = socket {
        match socket.notify(state) {
            Ok(()) => tracing::debug!(state, "notified systemd"),
            Err(e) => tracing::warn!(error = %e, "systemd notification failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_abstract_names() {
        assert_eq!(NotifySocket::parse(""), None);
        assert_eq!(
            NotifySocket::parse("/run/systemd/notify"),
            Some(NotifySocket::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            NotifySocket::parse("@sd-notify"),
            Some(NotifySocket::Abstract(b"sd-notify".to_vec()))
        );
    }

    #[test]
    fn sends_to_a_bound_datagram_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        NotifySocket::Path(path.clone()).notify("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("rds-iam-proxy-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        NotifySocket::parse(&format!("@{name}"))
            .unwrap()
            .notify("STOPPING=1")
            .unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}

//! One listener's accept loop: each accepted socket gets the route current at that moment, a
//! connection slot if one is free, and its own task in the connection tracker.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::accept_errors::{AcceptErrors, ACCEPT_ERROR_BACKOFF};
use super::policy::RouteHandle;
use super::socket::Listener;
use crate::connection::{serve, Peer, Shared};

/// Accepts on `listener` until `stop` fires, then closes it.
pub(super) async fn accept_loop(
    listener: Listener,
    route: RouteHandle,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    tracing::info!(target = %route.current().target.name, listen = %listener.describe(), "listening");
    let mut errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = accept(&listener) => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                errors.failed(&listener.describe(), &e);
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let admission = shared.admit();
        let (route, task_shared) = (route.current(), shared.clone());
        match stream {
            Accepted::Tcp(s) => shared
                .tracker
                .spawn(serve(s, peer, route, task_shared, admission)),
            Accepted::Unix(s) => {
                shared
                    .tracker
                    .spawn(serve(s, peer, route, task_shared, admission))
            }
        };
    }
    // Logged once the socket is closed, so whoever waits for it may rely on that.
    let listen = listener.describe();
    drop(listener);
    tracing::info!(target = %route.current().target.name, listen = %listen, "stopped listening");
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<(Accepted, Peer)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            s.set_nodelay(true)?;
            let peer = Peer {
                addr: peer.to_string(),
                unix: false,
            };
            Ok((Accepted::Tcp(s), peer))
        }
        Listener::Unix(u) => {
            let (s, _) = u.listener.accept().await?;
            let peer = Peer {
                addr: format!("unix:{}", u.path.display()),
                unix: true,
            };
            Ok((Accepted::Unix(s), peer))
        }
    }
}

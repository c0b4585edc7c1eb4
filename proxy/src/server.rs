//! Accept loops and the process lifecycle: serve until `shutdown` resolves, stop accepting,
//! drain open connections for up to `drain`, then close what is left.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connection::{serve, Admission};
use crate::context::SharedContext;
use crate::listen::Listener;
use crate::route::RouteHandle;

/// A bound listener and the route (target, client policy) it serves, read at accept time so
/// a config reload applies to new connections.
#[derive(Debug)]
pub struct BoundListener {
    pub listener: Listener,
    pub route: RouteHandle,
    /// Stops this listener alone (a reload removed it).
    pub stop: CancellationToken,
}

/// Pause after an accept error (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections still open at the end of the drain, closed by force.
    pub closed_by_force: usize,
}

/// Serves until `shutdown` resolves, then drains for up to `drain`.
pub async fn run(
    listeners: Vec<BoundListener>,
    shared: Arc<SharedContext>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> Drained {
    let stop = CancellationToken::new();
    let mut accept_loops = JoinSet::new();
    for bound in listeners {
        accept_loops.spawn(accept_loop(bound, shared.clone(), stop.clone()));
    }
    shutdown.await;
    stop.cancel();
    while accept_loops.join_next().await.is_some() {}
    tracing::info!(drain = %humantime::format_duration(drain), "stopped accepting; draining open connections");
    shared.tracker.close();
    let closed_by_force = if tokio::time::timeout(drain, shared.tracker.wait())
        .await
        .is_ok()
    {
        0
    } else {
        let open = shared.tracker.len();
        tracing::warn!(open, "drain time is up; closing the remaining connections");
        shared.close_all.cancel();
        shared.tracker.wait().await;
        open
    };
    Drained { closed_by_force }
}

/// Accepts on one listener until `stop` or the listener's own stop token fires.
pub async fn accept_loop(
    bound: BoundListener,
    shared: Arc<SharedContext>,
    stop: CancellationToken,
) {
    let BoundListener {
        listener,
        route,
        stop: own_stop,
    } = bound;
    tracing::info!(target = %route.current().target.name, listen = %listener.describe(), "listening");
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            () = own_stop.cancelled() => break,
            accepted = accept(&listener) => accepted,
        };
        let (stream, client) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let admission = match &shared.connection_limit {
            None => Admission::Admitted(None),
            Some((semaphore, _)) => match semaphore.clone().try_acquire_owned() {
                Ok(permit) => Admission::Admitted(Some(permit)),
                Err(_) => Admission::OverLimit,
            },
        };
        let (target, task_shared) = (route.current(), shared.clone());
        match stream {
            ClientStream::Tcp(s) => shared
                .tracker
                .spawn(async move { serve(s, client, target, task_shared, admission).await }),
            ClientStream::Unix(s) => shared
                .tracker
                .spawn(async move { serve(s, client, target, task_shared, admission).await }),
        };
    }
    // Logged once the socket is closed, so whoever waits for it may rely on that.
    let listen = listener.describe();
    drop(listener);
    tracing::info!(target = %route.current().target.name, listen = %listen, "stopped listening");
}

enum ClientStream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<(ClientStream, String)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            s.set_nodelay(true)?;
            Ok((ClientStream::Tcp(s), peer.to_string()))
        }
        Listener::Unix(u) => {
            let (s, _) = u.listener.accept().await?;
            Ok((ClientStream::Unix(s), format!("unix:{}", u.path.display())))
        }
    }
}

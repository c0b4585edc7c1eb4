//! The admin listener's accept loop. Every wait is bounded: a header-read timeout, a time
//! limit on each connection, a cap on concurrent connections (a connection over it is closed
//! at once, not queued behind the others) and a bound on request bodies, which no endpoint
//! reads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Extension;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::listen::{AcceptErrors, ACCEPT_ERROR_BACKOFF};

/// A client that has not sent a whole request head by then is disconnected.
pub(super) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Probes and one scraper need a handful; anything beyond is somebody hoarding sockets.
pub(super) const MAX_ADMIN_CONNECTIONS: usize = 32;
/// hyper's read buffer, which bounds a request head (its minimum is 8 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A connection's whole life, so one that stops reading its replies (hyper's writes have no
/// timeout of their own) cannot hold a slot for ever; scrapers simply reconnect.
pub(super) const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(30);
/// How long open admin connections get to finish once the proxy stops.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `stop` fires, then lets replies in flight finish.
pub(super) async fn serve(listener: TcpListener, app: Router, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    let listen = listener
        .local_addr()
        .map_or_else(|_| "admin".into(), |a| a.to_string());
    let mut errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                errors.failed(&listen, &e);
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "admin connection over the cap; closed");
            continue;
        };
        let service = TowerToHyperService::new(app.clone().layer(Extension(peer_info(peer))));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            match tokio::time::timeout(MAX_CONNECTION_LIFE, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "admin connection ended with an error");
                }
                Err(_) => tracing::debug!(%peer, "admin connection closed at its time limit"),
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(STOP_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("admin connections still open after the grace period; dropped");
    }
}

/// What `ConnectInfo` extractors read.
fn peer_info(peer: SocketAddr) -> ConnectInfo<SocketAddr> {
    ConnectInfo(peer)
}

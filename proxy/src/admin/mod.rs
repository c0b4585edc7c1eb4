//! The admin HTTP endpoint (`--admin-listen`): `/startup`, `/liveness`, `/readiness`,
//! `/metrics` and, with `--quitquitquit`, `POST /quitquitquit` for loopback peers.

mod lifecycle;
mod probes;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use lifecycle::{Lifecycle, StopReason};
use probes::{liveness, readiness, startup, Verdict};

use crate::listen::ListenError;
use crate::metrics::Metrics;

/// What the endpoints read.
#[derive(Debug, Clone)]
pub(crate) struct AdminState {
    pub lifecycle: Arc<Lifecycle>,
    pub metrics: Metrics,
    /// `POST /quitquitquit` is served (`--quitquitquit`).
    pub quit: bool,
}

/// No endpoint reads a body; a request that announces a larger one is refused unread.
const MAX_BODY_BYTES: u64 = 1024;

/// The admin listener, bound at start-up so a taken port fails the start.
#[derive(Debug)]
pub(crate) struct AdminServer {
    listener: TcpListener,
    addr: SocketAddr,
}

/// OpenMetrics text, which is what prometheus-client writes and Prometheus scrapes.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl AdminServer {
    pub async fn bind(addr: SocketAddr) -> Result<AdminServer, ListenError> {
        let bind_err = |source| ListenError::Bind {
            addr: format!("{addr} (admin_listen)"),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        Ok(AdminServer { listener, addr })
    }

    /// Serves until `stop` fires; requests in flight then finish (a `/quitquitquit` reply
    /// must reach its caller before the process exits).
    pub fn spawn(self, state: AdminState, stop: CancellationToken) -> JoinHandle<()> {
        tracing::info!(listen = %self.addr, "admin listening");
        tokio::spawn(serve::serve(self.listener, router(state), stop))
    }
}

fn router(state: AdminState) -> Router {
    let mut router = Router::new()
        .route("/startup", get(get_startup))
        .route("/liveness", get(get_liveness))
        .route("/readiness", get(get_readiness))
        .route("/metrics", get(get_metrics));
    if state.quit {
        router = router.route("/quitquitquit", post(post_quit));
    }
    router
        .layer(middleware::from_fn(refuse_bodies))
        .with_state(state)
}

async fn refuse_bodies(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    if chunked || announced.is_some_and(|n| n > MAX_BODY_BYTES) {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
    }
    next.run(request).await
}

fn answer(verdict: Verdict) -> Response {
    let status = if verdict.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{}\n", verdict.detail)).into_response()
}

async fn get_startup(State(state): State<AdminState>) -> Response {
    answer(startup(&state.lifecycle))
}

async fn get_liveness() -> Response {
    answer(liveness())
}

async fn get_readiness(State(state): State<AdminState>) -> Response {
    answer(readiness(
        &state.lifecycle,
        &state.metrics.signers,
        &state.metrics.topology.health,
    ))
}

async fn get_metrics(State(state): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

/// Loopback peers only: a pod's other containers and the host's own tools may stop the
/// proxy, nothing that reaches the admin port from outside.
///
/// A browser on the same host is a loopback peer too; its cross-origin POST carries `Origin`
/// (or `Sec-Fetch-Site`), which curl and kubelet never send, so those are refused as well.
async fn post_quit(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !peer.ip().to_canonical().is_loopback() {
        tracing::warn!(%peer, "/quitquitquit from a non-loopback peer refused");
        return (
            StatusCode::FORBIDDEN,
            "only loopback peers may stop the proxy\n",
        )
            .into_response();
    }
    if headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site") {
        tracing::warn!(%peer, "/quitquitquit from a web page refused");
        return (StatusCode::FORBIDDEN, "a browser may not stop the proxy\n").into_response();
    }
    if state.lifecycle.request_stop(StopReason::Quit) {
        tracing::info!("shutdown requested over /quitquitquit");
        (StatusCode::OK, "shutting down\n").into_response()
    } else {
        (StatusCode::OK, "already shutting down\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AdminState {
        AdminState {
            lifecycle: Arc::new(Lifecycle::default()),
            metrics: Metrics::new(),
            quit: true,
        }
    }

    #[tokio::test]
    async fn only_loopback_peers_may_quit() {
        let state = state();
        for peer in ["192.0.2.7:40000", "[2001:db8::1]:40000", "10.1.2.3:1"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let reply = post_quit(State(state.clone()), ConnectInfo(peer), HeaderMap::new()).await;
            assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{peer}");
            assert!(
                state.lifecycle.stop_requested().is_none(),
                "{peer} stopped it"
            );
        }
        for peer in ["127.0.0.1:40000", "[::ffff:127.0.0.1]:40000"] {
            let state = self::state();
            let peer: SocketAddr = peer.parse().unwrap();
            let mut from_a_page = HeaderMap::new();
            from_a_page.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
            let reply = post_quit(State(state.clone()), ConnectInfo(peer), from_a_page).await;
            assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{peer} from a page");
            assert!(state.lifecycle.stop_requested().is_none());
            let reply = post_quit(State(state.clone()), ConnectInfo(peer), HeaderMap::new()).await;
            assert_eq!(reply.status(), StatusCode::OK, "{peer}");
            assert_eq!(state.lifecycle.stop_requested(), Some(StopReason::Quit));
        }
    }
}

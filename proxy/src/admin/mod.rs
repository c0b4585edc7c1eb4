//! The admin HTTP endpoint (`--admin-listen`): `/startup`, `/liveness`, `/readiness`,
//! `/metrics` and `POST /quitquitquit`.

mod lifecycle;
mod probes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
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
}

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
        let app = router(state);
        tokio::spawn(async move {
            let served = axum::serve(self.listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "admin endpoint failed");
            }
        })
    }
}

fn router(state: AdminState) -> Router {
    Router::new()
        .route("/startup", get(get_startup))
        .route("/liveness", get(get_liveness))
        .route("/readiness", get(get_readiness))
        .route("/metrics", get(get_metrics))
        .route("/quitquitquit", post(post_quit))
        .with_state(state)
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
    answer(readiness(&state.lifecycle, &state.metrics.signers))
}

async fn get_metrics(State(state): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn post_quit(State(state): State<AdminState>) -> Response {
    if state.lifecycle.request_stop(StopReason::Quit) {
        tracing::info!("shutdown requested over /quitquitquit");
        (StatusCode::OK, "shutting down\n").into_response()
    } else {
        (StatusCode::OK, "already shutting down\n").into_response()
    }
}

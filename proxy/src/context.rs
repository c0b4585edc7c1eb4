//! What a connection task needs, built once per target at start-up (and on reload).

use std::sync::Arc;
use std::time::Duration;

use rds_iam_signer::{Signer, TokenRequest};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cancel::CancelMap;
use crate::metrics::Metrics;
use crate::rate::RateLimiter;

/// One database endpoint and how to reach it.
#[derive(Debug)]
pub struct TargetContext {
    pub name: String,
    /// The endpoint the token is signed for and the certificate must name.
    pub host: String,
    pub port: u16,
    pub region: String,
    /// Database used when the client names none.
    pub database: Option<String>,
    /// User forced upstream whatever the client sends.
    pub forced_user: Option<String>,
    /// The address actually dialled (`connect_to`, else host:port).
    pub dial: (String, u16),
    pub tls: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    pub signer: Signer,
    pub rate: RateLimiter,
    pub connect_timeout: Duration,
}

impl TargetContext {
    pub fn token_request(&self, user: &str) -> TokenRequest {
        TokenRequest {
            host: self.host.clone(),
            port: self.port,
            user: user.to_owned(),
            region: self.region.clone(),
        }
    }
}

/// State shared by every listener and connection of the process.
#[derive(Debug)]
pub struct SharedContext {
    pub startup_timeout: Duration,
    /// `None` when `max_connections` is 0 (no limit).
    pub connection_limit: Option<(Arc<Semaphore>, usize)>,
    pub cancel: Arc<CancelMap>,
    /// Fires when open connections must be closed (end of the drain).
    pub close_all: CancellationToken,
    pub tracker: TaskTracker,
    pub metrics: Metrics,
}

//! What a listener hands its connections: the target and the client-side policy (local TLS,
//! client password). Read at accept time through a [`RouteHandle`], so a SIGHUP reload changes
//! what new connections get while open ones keep what they started with.

use std::sync::Arc;

use rds_iam_protocol::scram::ScramSecret;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::context::TargetContext;

/// One listener's current configuration.
#[derive(Debug)]
pub struct Route {
    pub target: Arc<TargetContext>,
    pub client: Arc<ClientPolicy>,
}

/// How clients are met, shared by every listener.
#[derive(Default)]
pub struct ClientPolicy {
    /// Local TLS, when configured.
    pub tls: Option<TlsAcceptor>,
    /// SCRAM-SHA-256 verifier of `client_password`, when set.
    pub password: Option<ScramSecret>,
}

impl std::fmt::Debug for ClientPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPolicy")
            .field("tls", &self.tls.is_some())
            .field("password", &self.password.is_some())
            .finish()
    }
}

/// The read side, held by an accept loop.
#[derive(Debug, Clone)]
pub struct RouteHandle(watch::Receiver<Arc<Route>>);

impl RouteHandle {
    /// A handle and the sender that replaces its route.
    pub fn new(route: Arc<Route>) -> (watch::Sender<Arc<Route>>, Self) {
        let (tx, rx) = watch::channel(route);
        (tx, Self(rx))
    }

    /// The route to use for a connection accepted now.
    pub fn current(&self) -> Arc<Route> {
        self.0.borrow().clone()
    }
}

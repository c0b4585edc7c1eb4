//! What a listener hands each connection it accepts: the target, and how clients are met
//! (local TLS, client password). Open connections keep the route they started with.

use std::sync::Arc;

use rds_iam_protocol::scram::ScramSecret;
use tokio_rustls::TlsAcceptor;

use crate::targets::TargetContext;
use crate::upstream::{Follow, Pool};

/// One listener's current configuration.
#[derive(Debug)]
pub(crate) struct Route {
    pub target: Arc<TargetContext>,
    /// The target's server connection pool, when its `pool_mode` is `session`.
    pub pool: Option<Arc<Pool>>,
    /// The Aurora cluster the target follows, when its `topology` is on.
    pub topology: Option<Arc<Follow>>,
    pub client: Arc<ClientPolicy>,
}

/// How clients are met, shared by every listener.
#[derive(Default)]
pub(crate) struct ClientPolicy {
    /// Local TLS, when configured.
    pub tls: Option<LocalTls>,
    /// SCRAM-SHA-256 verifier of `client_password`, when set.
    pub password: Option<ScramSecret>,
    /// Refuse a client that did not start TLS (`allow_remote`), before any password exchange.
    pub require_tls: bool,
}

/// The local TLS acceptor and what SCRAM-SHA-256-PLUS binds to.
#[derive(Clone)]
pub(crate) struct LocalTls {
    pub acceptor: TlsAcceptor,
    /// `tls-server-end-point` data: the hash of the proxy's certificate (RFC 5929), when its
    /// signature algorithm names one.
    pub end_point: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for ClientPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPolicy")
            .field("tls", &self.tls.is_some())
            .field("password", &self.password.is_some())
            .field("require_tls", &self.require_tls)
            .finish()
    }
}

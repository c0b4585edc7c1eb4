//! What a listener hands each connection it accepts: the target, and how clients are met
//! (local TLS, client password). Open connections keep the route they started with.

use std::sync::Arc;

use rds_iam_protocol::scram::ScramSecret;
use tokio_rustls::TlsAcceptor;

use crate::targets::TargetContext;
use crate::upstream::Pool;

/// One listener's current configuration.
#[derive(Debug)]
pub(crate) struct Route {
    pub target: Arc<TargetContext>,
    /// The target's server connection pool, when its `pool_mode` is `session`.
    pub pool: Option<Arc<Pool>>,
    pub client: Arc<ClientPolicy>,
}

/// How clients are met, shared by every listener.
#[derive(Default)]
pub(crate) struct ClientPolicy {
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

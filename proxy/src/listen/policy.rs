//! Building the client policy (local TLS, the client password's verifier) from the settings,
//! and the [`RouteHandle`] an accept loop reads at accept time, so a SIGHUP reload changes what
//! new connections get while open ones keep what they started with.

use std::sync::Arc;

use rds_iam_config::{Secret, Settings};
use rds_iam_protocol::scram::{ScramSecret, DEFAULT_ITERATIONS};
use tokio::sync::watch;

use super::client_tls::{self, ClientTlsError};
use crate::connection::{ClientPolicy, Route};
use crate::targets::crypto_provider;

/// Why the client policy could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientPolicyError {
    #[error(transparent)]
    Tls(#[from] ClientTlsError),
    #[error("no secure random source for the client password's salt")]
    Random,
}

/// The client policy of `settings`. When `current` is given (a reload), what did not change is
/// kept: the generated certificate and the password's verifier; certificate files are
/// read again so a renewed one is picked up.
pub(crate) fn client_policy(
    settings: &Settings,
    current: Option<(&ClientPolicy, &Settings)>,
) -> Result<ClientPolicy, ClientPolicyError> {
    let tls = match current {
        Some((policy, old))
            if settings.client_tls == old.client_tls
                && !matches!(settings.client_tls, rds_iam_config::ClientTls::Files { .. }) =>
        {
            policy.tls.clone()
        }
        _ => client_tls::acceptor(&settings.client_tls)?,
    };
    let password = match current {
        Some((policy, old)) if settings.client_password == old.client_password => {
            policy.password.clone()
        }
        _ => settings
            .client_password
            .as_ref()
            .map(password_verifier)
            .transpose()?,
    };
    Ok(ClientPolicy {
        tls,
        password,
        require_tls: settings.allow_remote,
    })
}

/// The SCRAM verifier of `client_password`, with a fresh random salt.
fn password_verifier(password: &Secret) -> Result<ScramSecret, ClientPolicyError> {
    let mut salt = [0u8; 16];
    crypto_provider()
        .secure_random
        .fill(&mut salt)
        .map_err(|_| ClientPolicyError::Random)?;
    Ok(ScramSecret::from_password(
        password.expose(),
        &salt,
        DEFAULT_ITERATIONS,
    ))
}

/// The read side, held by an accept loop.
#[derive(Debug, Clone)]
pub(crate) struct RouteHandle(watch::Receiver<Arc<Route>>);

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

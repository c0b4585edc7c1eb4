//! One followed cluster as its monitor runs it: the state its sessions share (`state.rs`,
//! kept across a restart), the endpoint names, whose signer, CA bundle and `resolve` the
//! monitor uses, the monitor's login, and its stop.

use std::sync::Arc;

use rds_iam_config::TopologySettings;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::state::ClusterState;
use crate::targets::{ClusterEndpoint, Endpoint, TargetContext};

/// The user and database the monitor logs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Login {
    pub user: String,
    pub database: String,
}

#[derive(Debug)]
pub(crate) struct Cluster {
    pub shared: Arc<ClusterState>,
    pub endpoint: ClusterEndpoint,
    pub context: Arc<TargetContext>,
    pub settings: TopologySettings,
    pub(super) wake: Notify,
    pub(super) stop: CancellationToken,
    login: watch::Sender<Option<Login>>,
}

impl Cluster {
    pub(super) fn new(
        shared: Arc<ClusterState>,
        endpoint: ClusterEndpoint,
        context: Arc<TargetContext>,
        settings: TopologySettings,
        parent: &CancellationToken,
    ) -> Cluster {
        Cluster {
            shared,
            endpoint,
            context,
            settings,
            wake: Notify::new(),
            stop: parent.child_token(),
            login: watch::channel(None).0,
        }
    }

    /// A session could not reach `endpoint`'s instance: recorded, and the monitor looks now.
    pub fn unreachable(&self, endpoint: &Endpoint) {
        self.shared.unreachable(endpoint);
        self.wake.notify_one();
    }

    /// The monitor's login: the first session that authenticated offers its own, unless
    /// the target forces a user or `topology_user` is set.
    pub fn offer_login(&self, login: impl FnOnce() -> Login) {
        self.login.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(login());
            true
        });
    }

    pub(super) fn login(&self) -> watch::Receiver<Option<Login>> {
        self.login.subscribe()
    }

    /// Stops the monitor (its targets are gone or changed).
    pub fn close(&self) {
        self.stop.cancel();
    }
}

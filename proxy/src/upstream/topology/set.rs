//! The monitors of the running targets: one per cluster (the cluster and reader endpoints of
//! one cluster, at one port, verified with one CA bundle), shared by its targets. On SIGHUP a
//! monitor is kept while the targets and settings that made it are unchanged, and restarted
//! otherwise with the same shared state, so sessions already open still learn of a writer
//! change; it is stopped when no target follows its cluster any more, and at the stop.

use std::collections::HashMap;
use std::sync::Arc;

use rds_iam_config::TopologySettings;
use rds_iam_protocol::StartupMessage;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cluster::{Cluster, Login};
use super::monitor;
use super::state::{ClusterState, Pick};
use crate::metrics::TopologyMetrics;
use crate::targets::{Role, TargetContext};
use crate::upstream::UpstreamError;

/// A target's tie to the cluster it follows.
#[derive(Debug)]
pub(crate) struct Follow {
    pub cluster: Arc<Cluster>,
    pub role: Role,
}

impl Follow {
    /// Where a session goes.
    pub async fn pick(&self, deadline: Instant) -> Result<Pick, UpstreamError> {
        self.cluster.shared.pick(self.role, deadline).await
    }

    /// A session of `user` (with `startup`) authenticated: the monitor may log in as it,
    /// when the target forces no user and `topology_user` is not set (a client that fails
    /// to log in never becomes the monitor's login).
    pub fn authenticated(&self, startup: &StartupMessage, user: &str) {
        self.cluster.offer_login(|| Login {
            user: user.to_owned(),
            database: startup.database().unwrap_or(user).to_owned(),
        });
    }
}

/// Which targets share a monitor.
type ClusterKey = (String, String, u16, Arc<[u8]>);

#[derive(Debug, Default)]
pub(crate) struct TopologySet {
    clusters: HashMap<ClusterKey, (Vec<Arc<TargetContext>>, Arc<Cluster>)>,
    follows: HashMap<String, Arc<Follow>>,
    settings: Option<TopologySettings>,
    stop: CancellationToken,
}

impl TopologySet {
    /// The monitors for `targets`: one per cluster their endpoints name.
    pub fn update(
        &mut self,
        targets: &[Arc<TargetContext>],
        settings: &TopologySettings,
        metrics: &TopologyMetrics,
    ) {
        let mut groups: HashMap<ClusterKey, Vec<Arc<TargetContext>>> = HashMap::new();
        for target in targets {
            if let Some(c) = &target.cluster {
                let key = (
                    c.cluster.clone(),
                    c.domain.clone(),
                    target.port,
                    target.endpoint.trust.ca_pem.clone(),
                );
                groups.entry(key).or_default().push(target.clone());
            }
        }
        let same_settings = self.settings.as_ref() == Some(settings);
        let mut clusters = HashMap::new();
        let mut follows = HashMap::new();
        for (key, members) in groups {
            let cluster = match self.clusters.remove(&key) {
                Some((old, cluster)) if same_settings && same_targets(&old, &members) => cluster,
                Some((_, old)) => {
                    old.close();
                    self.start(Some(old.shared.clone()), &members, settings, metrics)
                }
                None => self.start(None, &members, settings, metrics),
            };
            for target in &members {
                let role = target.cluster.as_ref().map_or(Role::Writer, |c| c.role);
                follows.insert(
                    target.name.clone(),
                    Arc::new(Follow {
                        cluster: cluster.clone(),
                        role,
                    }),
                );
            }
            clusters.insert(key, (members, cluster));
        }
        for (_, (_, cluster)) in self.clusters.drain() {
            cluster.close();
            cluster.shared.forget();
        }
        self.clusters = clusters;
        self.follows = follows;
        self.settings = Some(settings.clone());
    }

    /// A monitor for `members`, with the state `shared` of the one it replaces.
    fn start(
        &self,
        shared: Option<Arc<ClusterState>>,
        members: &[Arc<TargetContext>],
        settings: &TopologySettings,
        metrics: &TopologyMetrics,
    ) -> Arc<Cluster> {
        let first = &members[0];
        let mut endpoint = first
            .cluster
            .clone()
            .unwrap_or_else(|| unreachable!("grouped by cluster"));
        endpoint.role = Role::Writer;
        let names: Vec<String> = members.iter().map(|t| t.name.clone()).collect();
        let shared = match shared {
            Some(shared) => {
                shared.reconfigure(names.clone(), settings.max_replica_lag);
                shared
            }
            None => Arc::new(ClusterState::new(
                endpoint.cluster.clone(),
                names.clone(),
                settings.max_replica_lag,
                metrics.clone(),
            )),
        };
        let cluster = Arc::new(Cluster::new(
            shared,
            endpoint,
            first.clone(),
            settings.clone(),
            &self.stop,
        ));
        // Without a client: the forced user, else topology_user.
        let user = members
            .iter()
            .find_map(|t| t.forced_user.clone())
            .or_else(|| settings.user.clone());
        if let Some(user) = user {
            let database = members
                .iter()
                .find_map(|t| t.database.clone())
                .unwrap_or_else(|| "postgres".to_owned());
            cluster.offer_login(|| Login { user, database });
        }
        tracing::info!(
            cluster = %cluster.shared.name,
            targets = %names.join(","),
            "following the Aurora topology"
        );
        tokio::spawn(monitor::run(cluster.clone()));
        cluster
    }

    /// The tie of the target named `name`, if it follows a cluster.
    pub fn get(&self, name: &str) -> Option<Arc<Follow>> {
        self.follows.get(name).cloned()
    }

    /// Stops every monitor, including those a reload starts, when cancelled (the stop).
    pub fn stopper(&self) -> CancellationToken {
        self.stop.clone()
    }
}

fn same_targets(a: &[Arc<TargetContext>], b: &[Arc<TargetContext>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

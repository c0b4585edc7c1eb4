//! The monitors of the running targets: one per cluster, shared by the cluster's writer and
//! reader targets; kept on SIGHUP while the targets and settings that made it are
//! unchanged, closed otherwise and at the stop.

use std::collections::HashMap;
use std::sync::Arc;

use rds_iam_config::TopologySettings;
use rds_iam_protocol::StartupMessage;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cluster::{Cluster, Login, Pick};
use super::monitor;
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
    /// Where a session of `user` (with `startup`) goes; the first session's login is the
    /// monitor's when the target forces no user and `topology_user` is not set.
    pub async fn pick(
        &self,
        startup: &StartupMessage,
        user: &str,
        deadline: Instant,
    ) -> Result<Pick, UpstreamError> {
        self.cluster.offer_login(|| Login {
            user: user.to_owned(),
            database: startup.database().unwrap_or(user).to_owned(),
        });
        self.cluster.pick(self.role, deadline).await
    }
}

/// Which targets share a monitor: the same cluster at the same port.
type ClusterKey = (String, String, u16);

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
                let key = (c.cluster.clone(), c.domain.clone(), target.port);
                groups.entry(key).or_default().push(target.clone());
            }
        }
        let same_settings = self.settings.as_ref() == Some(settings);
        let mut clusters = HashMap::new();
        let mut follows = HashMap::new();
        for (key, members) in groups {
            let cluster = match self.clusters.remove(&key) {
                Some((old, cluster)) if same_settings && same_targets(&old, &members) => cluster,
                old => {
                    if let Some((_, cluster)) = old {
                        cluster.close();
                    }
                    self.start(&members, settings, metrics)
                }
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
        }
        self.clusters = clusters;
        self.follows = follows;
        self.settings = Some(settings.clone());
    }

    fn start(
        &self,
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
        let cluster = Arc::new(Cluster::new(
            endpoint,
            first.clone(),
            settings.clone(),
            members.iter().map(|t| t.name.clone()).collect(),
            metrics.clone(),
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
            cluster = %cluster.name,
            targets = %cluster.targets.join(","),
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

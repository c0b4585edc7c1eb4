//! Aurora topology figures (spec §9): instances by role, writer changes, sessions per
//! instance; and which clusters have every instance down, for readiness.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{RoleLabel, TargetLabel};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct InstanceLabel {
    pub target: String,
    pub instance: String,
}

/// The topology families, and the clusters readiness looks at.
#[derive(Clone, Debug, Default)]
pub(crate) struct TopologyMetrics {
    pub instances: Family<RoleLabel, Gauge>,
    pub writer_changes: Family<TargetLabel, Counter>,
    pub sessions_active: Family<InstanceLabel, Gauge>,
    pub health: ClusterHealth,
}

impl TopologyMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "topology_instances",
            "Aurora instances the topology names, by role (writer, reader)",
            self.instances.clone(),
        );
        registry.register(
            "writer_changes",
            "Aurora writer changes followed",
            self.writer_changes.clone(),
        );
        registry.register(
            "sessions_active",
            "Client sessions open on each Aurora instance",
            self.sessions_active.clone(),
        );
    }

    /// Publishes what a cluster's latest reading found, for each target that follows it.
    pub fn set_instances(&self, targets: &[String], writers: i64, readers: i64) {
        for target in targets {
            for (role, n) in [("writer", writers), ("reader", readers)] {
                self.instances
                    .get_or_create(&RoleLabel {
                        target: target.clone(),
                        role: role.to_owned(),
                    })
                    .set(n);
            }
        }
    }

    pub fn writer_changed(&self, targets: &[String]) {
        for target in targets {
            self.writer_changes
                .get_or_create(&TargetLabel {
                    target: target.clone(),
                })
                .inc();
        }
    }

    /// Counts a session open on `instance` until the returned gauge is decremented.
    pub fn session_gauge(&self, target: &str, instance: &str) -> Gauge {
        self.sessions_active.get_or_create_owned(&InstanceLabel {
            target: target.to_owned(),
            instance: instance.to_owned(),
        })
    }
}

/// One cluster's entry: its name and targets, and whether every instance is down.
type Health = (String, Vec<String>, Arc<AtomicBool>);

/// Per followed cluster: whether every instance is unreachable, for readiness.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClusterHealth {
    clusters: Arc<Mutex<HashMap<u64, Health>>>,
    next: Arc<AtomicU64>,
}

/// A cluster's place in [`ClusterHealth`], held by its shared state.
#[derive(Debug)]
pub(crate) struct HealthEntry {
    id: u64,
    down: Arc<AtomicBool>,
}

impl HealthEntry {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Release);
    }
}

impl ClusterHealth {
    pub fn watch(&self, cluster: &str, targets: Vec<String>) -> HealthEntry {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let down = Arc::new(AtomicBool::new(false));
        self.lock()
            .insert(id, (cluster.to_owned(), targets, down.clone()));
        HealthEntry { id, down }
    }

    pub fn set_targets(&self, entry: &HealthEntry, targets: Vec<String>) {
        if let Some(health) = self.lock().get_mut(&entry.id) {
            health.1 = targets;
        }
    }

    pub fn forget(&self, entry: &HealthEntry) {
        self.lock().remove(&entry.id);
    }

    /// One line per cluster whose every instance is down.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .lock()
            .values()
            .filter(|(_, _, down)| down.load(Ordering::Acquire))
            .map(|(cluster, targets, _)| {
                format!(
                    "no instance of Aurora cluster {cluster} answers (targets {})",
                    targets.join(", ")
                )
            })
            .collect();
        out.sort();
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Health>> {
        self.clusters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

//! Every target's pool: made at start-up, kept or replaced on SIGHUP, closed at the stop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rds_iam_config::{PoolMode, ServerPool};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Pool;
use crate::metrics::Metrics;
use crate::targets::TargetContext;

/// The pools of the running targets, each tied to the target context it was made for.
#[derive(Debug, Default)]
pub(crate) struct PoolSet {
    pools: HashMap<String, (Arc<TargetContext>, Arc<Pool>)>,
    stop: PoolStop,
}

/// Closes every pool at once, including those a reload made.
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolStop {
    closed: CancellationToken,
    tasks: TaskTracker,
}

impl PoolSet {
    /// The pools for `targets`: a running target's pool is kept while the target and the
    /// pool settings are unchanged; a changed or removed target's pool is closed.
    pub fn update(
        &mut self,
        targets: &[Arc<TargetContext>],
        settings: &ServerPool,
        metrics: &Metrics,
    ) {
        let mut next = HashMap::new();
        for target in targets.iter().filter(|t| t.pool_mode == PoolMode::Session) {
            let pool = match self.pools.remove(&target.name) {
                Some((ctx, pool)) if Arc::ptr_eq(&ctx, target) && pool.settings == *settings => {
                    pool
                }
                old => {
                    if let Some((_, pool)) = old {
                        pool.close();
                    }
                    Arc::new(Pool::new(
                        settings.clone(),
                        target,
                        metrics.pool_meters(&target.name),
                        &self.stop.closed,
                        self.stop.tasks.clone(),
                    ))
                }
            };
            next.insert(target.name.clone(), (target.clone(), pool));
        }
        for (_, (_, pool)) in self.pools.drain() {
            pool.close();
        }
        self.pools = next;
    }

    /// The pool of the target named `name`, if it pools.
    pub fn get(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools.get(name).map(|(_, pool)| pool.clone())
    }

    pub fn stopper(&self) -> PoolStop {
        self.stop.clone()
    }
}

impl PoolStop {
    /// Closes every idle connection (Terminate) now; sessions still open close theirs when
    /// they end.
    pub fn close_idle(&self) {
        self.closed.cancel();
    }

    /// Waits up to `grace` for the pools' Terminates and resets to finish.
    pub async fn finish(&self, grace: Duration) {
        self.tasks.close();
        let _ = tokio::time::timeout(grace, self.tasks.wait()).await;
    }
}

//! State shared by every listener and connection of the process.

use std::sync::Arc;
use std::time::Duration;

use rds_iam_config::Settings;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cancel::CancelMap;
use crate::metrics::Metrics;

#[derive(Debug)]
pub(crate) struct Shared {
    pub startup_timeout: Duration,
    /// `None` when `max_connections` is 0 (no limit).
    connection_limit: Option<(Arc<Semaphore>, usize)>,
    pub cancel: Arc<CancelMap>,
    /// Fires when open connections must be closed (end of the drain).
    pub close_all: CancellationToken,
    /// Every connection task, for the drain.
    pub tracker: TaskTracker,
    pub metrics: Metrics,
}

/// Whether a connection fits under `max_connections`, decided at accept.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Admitted; holds its slot (if there is a limit) until the connection ends.
    Admitted { _slot: Option<OwnedSemaphorePermit> },
    /// Over the limit (of this many): the client is told so once it has said who it is.
    OverLimit(usize),
}

impl Shared {
    pub fn new(settings: &Settings, metrics: Metrics) -> Shared {
        Shared {
            startup_timeout: settings.startup_timeout,
            connection_limit: settings
                .max_connections
                .map(|n| (Arc::new(Semaphore::new(n.get())), n.get())),
            cancel: Arc::new(CancelMap::default()),
            close_all: CancellationToken::new(),
            tracker: TaskTracker::new(),
            metrics,
        }
    }

    /// Takes a connection slot, if any is free.
    pub fn admit(&self) -> Admission {
        match &self.connection_limit {
            None => Admission::Admitted { _slot: None },
            Some((semaphore, limit)) => match semaphore.clone().try_acquire_owned() {
                Ok(permit) => Admission::Admitted {
                    _slot: Some(permit),
                },
                Err(_) => Admission::OverLimit(*limit),
            },
        }
    }
}

//! A pooled writer target after an Aurora writer change: idle connections to any other
//! instance are closed, so none is handed out or kept open on the demoted writer.

use std::sync::{Arc, PoisonError};

use tokio::sync::oneshot;

use super::{Discard, Pool};

impl Pool {
    /// Called with the writer each writer session is sent to; on a change, closes the idle
    /// connections to other instances.
    pub fn follow_writer(self: &Arc<Self>, writer: &Arc<str>) {
        {
            let mut last = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if last.as_ref() == Some(writer) {
                return;
            }
            *last = Some(writer.clone());
        }
        let handles: Vec<_> = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let stale: Vec<_> = idle
                .keys()
                .filter(|k| k.instance().is_some_and(|i| i != &**writer))
                .cloned()
                .collect();
            stale
                .into_iter()
                .flat_map(|k| idle.remove(&k).unwrap_or_default())
                .collect()
        };
        for handle in handles {
            self.meters.idle.dec();
            let (reply, taken) = oneshot::channel();
            if handle.take.send(reply).is_err() {
                continue;
            }
            let pool = self.clone();
            self.tasks.spawn(async move {
                if let Ok(idle) = taken.await {
                    pool.discard(idle.stream, Discard::WriterChanged);
                }
            });
        }
    }
}

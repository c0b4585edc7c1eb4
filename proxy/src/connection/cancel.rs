//! CancelRequest routing. A cancel key (pid, secret) is the server's own, relayed unchanged to
//! the client, so it is routed to the exact server address of that session: a cluster endpoint
//! may resolve elsewhere by the time the cancel arrives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rds_iam_protocol::CancelRequest;

use crate::targets::{ServerTrust, TargetContext};
use crate::upstream::{send_cancel, UpstreamError};

type Key = (u32, Bytes);

/// What became of a CancelRequest: the `result` label of `cancel_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelResult {
    Forwarded,
    /// No session has that key (already ended, or a guess): dropped, as PostgreSQL does.
    Unknown,
    Failed,
}

impl CancelResult {
    pub fn label(self) -> &'static str {
        match self {
            CancelResult::Forwarded => "forwarded",
            CancelResult::Unknown => "unknown",
            CancelResult::Failed => "failed",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct CancelMap {
    sessions: Mutex<HashMap<Key, CancelRoute>>,
}

/// Where a cancel key's session lives, and how to reach it (the same TLS trust as the session).
#[derive(Debug, Clone)]
struct CancelRoute {
    addr: SocketAddr,
    trust: Arc<ServerTrust>,
    timeout: Duration,
}

/// Removes its session's key from the map when the session ends.
#[derive(Debug)]
pub(crate) struct CancelGuard {
    map: Arc<CancelMap>,
    key: Key,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        self.map.lock().remove(&self.key);
    }
}

impl CancelMap {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, CancelRoute>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the session at `addr` (verified with `trust`) under its cancel key until the
    /// guard drops.
    pub fn register(
        self: &Arc<Self>,
        key: (u32, Bytes),
        addr: SocketAddr,
        trust: &Arc<ServerTrust>,
        target: &TargetContext,
    ) -> CancelGuard {
        let route = CancelRoute {
            addr,
            trust: trust.clone(),
            timeout: target.connect_timeout,
        };
        self.lock().insert(key.clone(), route);
        CancelGuard {
            map: self.clone(),
            key,
        }
    }

    /// Forwards `request`; a CancelRequest never gets a reply. Anyone who can connect can send
    /// these as fast as they like, so what became of it is one DEBUG line (and a counter, by
    /// the caller), never INFO.
    pub async fn handle(&self, request: &CancelRequest) -> CancelResult {
        let result = match self.forward(request).await {
            Ok(true) => CancelResult::Forwarded,
            Ok(false) => CancelResult::Unknown,
            Err(e) => {
                tracing::debug!(pid = request.pid, error = %e, "cancel request could not be forwarded");
                CancelResult::Failed
            }
        };
        tracing::debug!(pid = request.pid, result = result.label(), "cancel request");
        result
    }

    /// Forwards a CancelRequest over TLS to the server of the session it names. Unknown keys
    /// are dropped silently, as PostgreSQL does: a CancelRequest never gets a reply.
    async fn forward(&self, request: &CancelRequest) -> Result<bool, UpstreamError> {
        let route = self
            .lock()
            .get(&(request.pid, request.secret.clone()))
            .cloned();
        let Some(route) = route else {
            return Ok(false);
        };
        let timeout = route.timeout;
        tokio::time::timeout(timeout, send_cancel(route.addr, &route.trust, request))
            .await
            .unwrap_or(Err(UpstreamError::Timeout(timeout)))?;
        Ok(true)
    }
}

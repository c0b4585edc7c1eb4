//! Server connections that outlive their clients (`pool_mode = "session"`, spec §8).
//!
//! A connection whose session ended idle and quiet comes back through [`Pool::check_in`],
//! which runs the reset query in the background and keeps it, watched, under its
//! [`PoolKey`]; the next client with that key gets it from [`Pool::reuse`] with a greeting
//! like a fresh session's. Everything else is closed: a dirty session, a failed or slow reset,
//! a full key, an expired lifetime, an idle timeout, a server that spoke or hung up while idle.

mod follow;
mod greeting;
mod idle;
mod key;
mod query;
mod set;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use rds_iam_config::ServerPool;
use rds_iam_protocol::CancelRequest;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use key::PoolKey;
pub(crate) use set::PoolSet;

use self::idle::{watch, IdleHandle};
use super::{send_cancel, ServerSession, UpstreamStream};
use crate::metrics::PoolMeters;
use crate::targets::{ServerTrust, TargetContext};

/// How long closing a connection may take to say Terminate.
const TERMINATE_GRACE: Duration = Duration::from_secs(1);

/// Why a server connection was closed instead of kept: the `reason` label of
/// `pool_discards_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Discard {
    /// The session did not end idle and quiet (transaction, COPY, query running, half a
    /// message, or the server ended it).
    Dirty,
    ResetFailed,
    /// The server closed it, or sent something, while it was idle.
    ServerClosed,
    IdleTimeout,
    Lifetime,
    /// `pool_max_idle` connections with its key were already idle.
    PoolFull,
    /// SIGTERM, or the target was removed or changed on SIGHUP.
    PoolClosed,
    /// Idle on an Aurora instance that is no longer the writer.
    WriterChanged,
}

impl Discard {
    pub fn label(self) -> &'static str {
        match self {
            Discard::Dirty => "dirty",
            Discard::ResetFailed => "reset_failed",
            Discard::ServerClosed => "server_closed",
            Discard::IdleTimeout => "idle_timeout",
            Discard::Lifetime => "lifetime",
            Discard::PoolFull => "pool_full",
            Discard::PoolClosed => "pool_closed",
            Discard::WriterChanged => "writer_changed",
        }
    }
}

/// What a pooled connection carries besides its stream.
#[derive(Debug)]
pub(crate) struct Pooled {
    pub key: PoolKey,
    pub addr: SocketAddr,
    /// How the server was verified, for cancel requests to it.
    pub trust: Arc<ServerTrust>,
    /// ParameterStatus values as after the connection's startup, updated by what the reset
    /// query and `SET application_name` reported.
    pub params: Vec<(String, String)>,
    /// The server's NegotiateProtocolVersion at startup, replayed to each client.
    pub negotiated: Option<Bytes>,
    pub backend_key: Option<(u32, Bytes)>,
    /// Past this the connection is not reused: `server_lifetime` minus up to 10% jitter.
    pub retire_at: Instant,
}

/// A server session's tie to the pool it goes back to.
#[derive(Debug)]
pub(crate) struct Lease {
    pub pool: Arc<Pool>,
    pub conn: Pooled,
}

/// An idle connection, out of the pool.
#[derive(Debug)]
pub(crate) struct Idle {
    pub stream: UpstreamStream,
    pub conn: Pooled,
}

/// One target's pool.
#[derive(Debug)]
pub(crate) struct Pool {
    settings: ServerPool,
    /// Bounds the reset query and `SET application_name`.
    connect_timeout: Duration,
    idle: Mutex<HashMap<PoolKey, Vec<IdleHandle>>>,
    /// The Aurora writer writer sessions last went to (`follow.rs`).
    writer: Mutex<Option<Arc<str>>>,
    next_id: AtomicU64,
    closed: CancellationToken,
    close_reason: OnceLock<Discard>,
    tasks: TaskTracker,
    meters: PoolMeters,
}

impl Pool {
    /// A pool whose background tasks (resets, idle watchers) run on `tasks` and which closes
    /// when `parent` is cancelled (SIGTERM) or [`Pool::close`] is called.
    pub fn new(
        settings: ServerPool,
        target: &TargetContext,
        meters: PoolMeters,
        parent: &CancellationToken,
        tasks: TaskTracker,
    ) -> Pool {
        Pool {
            settings,
            connect_timeout: target.connect_timeout,
            idle: Mutex::new(HashMap::new()),
            writer: Mutex::new(None),
            next_id: AtomicU64::new(0),
            closed: parent.child_token(),
            close_reason: OnceLock::new(),
            tasks,
            meters,
        }
    }

    /// Closes every idle connection (with Terminate) and every one that comes back later.
    pub fn close(&self) {
        let _ = self.close_reason.set(Discard::PoolClosed);
        self.closed.cancel();
    }

    /// A new lease for a connection just opened with `key`.
    pub fn lease(self: &Arc<Self>, key: PoolKey, session: &ServerSession) -> Lease {
        Lease {
            pool: self.clone(),
            conn: Pooled {
                key,
                addr: session.addr,
                trust: session.trust.clone(),
                params: session.params.clone(),
                negotiated: session.negotiated.clone(),
                backend_key: session.backend_key.clone(),
                retire_at: Instant::now() + jittered(self.settings.lifetime),
            },
        }
    }

    /// An idle connection for `key`, made ready for a client with `application_name`
    /// (`None` for a client that sent none), as a session to greet it with; `None` when no
    /// healthy one is idle.
    pub async fn reuse(
        self: &Arc<Self>,
        key: &PoolKey,
        application_name: Option<&str>,
    ) -> Option<ServerSession> {
        loop {
            let mut idle = self.checkout(key).await?;
            let wanted = application_name.unwrap_or_default();
            let current = idle
                .conn
                .params
                .iter()
                .find(|(k, _)| k == "application_name");
            if current.map(|(_, v)| v.as_str()) != Some(wanted) {
                let sql = query::set_application_name(wanted);
                let set = query::run(&mut idle.stream, &sql, &mut idle.conn.params);
                match tokio::time::timeout(self.connect_timeout, set).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "SET application_name failed on a pooled connection");
                        self.discard(idle.stream, Discard::ResetFailed);
                        continue;
                    }
                    Err(_) => {
                        self.discard(idle.stream, Discard::ResetFailed);
                        continue;
                    }
                }
            }
            return Some(greeting::session(self, idle));
        }
    }

    /// Takes the most recently idle connection for `key` from its watcher.
    async fn checkout(&self, key: &PoolKey) -> Option<Idle> {
        loop {
            if self.closed.is_cancelled() {
                return None;
            }
            let handle = {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                let handles = idle.get_mut(key)?;
                let handle = handles.pop();
                if handles.is_empty() {
                    idle.remove(key);
                }
                handle?
            };
            self.meters.idle.dec();
            let (reply, taken) = oneshot::channel();
            if handle.take.send(reply).is_err() {
                continue;
            }
            // The watcher may have found the connection dead at the same moment.
            if let Ok(idle) = taken.await {
                return Some(idle);
            }
        }
    }

    /// A session that ended idle and quiet: reset it in the background, then keep it.
    /// `reported`: the server reported parameter changes during the session, so the values
    /// recorded at startup are re-read after the reset.
    pub fn check_in(self: &Arc<Self>, stream: UpstreamStream, conn: Pooled, reported: bool) {
        let pool = self.clone();
        self.tasks
            .spawn(async move { pool.reset_and_keep(stream, conn, reported).await });
    }

    async fn reset_and_keep(
        self: Arc<Self>,
        mut stream: UpstreamStream,
        mut conn: Pooled,
        reported: bool,
    ) {
        if let Some(reason) = self.refusal(&conn, self.kept(&conn.key)) {
            return self.discard(stream, reason);
        }
        let reset = async {
            query::run(&mut stream, &self.settings.reset_query, &mut conn.params).await?;
            if reported {
                query::reread_params(&mut stream, &mut conn.params).await?;
            }
            Ok::<(), query::QueryError>(())
        };
        let result = tokio::select! {
            r = tokio::time::timeout(self.connect_timeout, reset) => r,
            () = self.closed.cancelled() => return self.discard(stream, Discard::PoolClosed),
        };
        match result {
            Ok(Ok(())) => self.keep(stream, conn),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, reset_query = %self.settings.reset_query, "server reset query failed; closing that server connection");
                self.discard(stream, Discard::ResetFailed);
            }
            Err(_) => {
                tracing::warn!(timeout = ?self.connect_timeout, reset_query = %self.settings.reset_query, "server reset query did not finish within connect_timeout; closing that server connection");
                // Not Terminate: the server is busy and would not read it; cancel instead.
                self.meters.discarded(Discard::ResetFailed.label());
                drop(stream);
                self.cancel(&conn);
            }
        }
    }

    /// Why `conn` may not be kept now, if it may not; `kept` is how many its key holds.
    fn refusal(&self, conn: &Pooled, kept: usize) -> Option<Discard> {
        if self.closed.is_cancelled() {
            return Some(self.close_reason());
        }
        if Instant::now() >= conn.retire_at {
            return Some(Discard::Lifetime);
        }
        (kept >= self.settings.max_idle).then_some(Discard::PoolFull)
    }

    fn kept(&self, key: &PoolKey) -> usize {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.get(key).map_or(0, Vec::len)
    }

    /// Puts a healthy idle connection under its key, with a task watching it.
    fn keep(self: &Arc<Self>, stream: UpstreamStream, conn: Pooled) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (take, taken) = oneshot::channel();
        {
            // Counted and filed under one lock, so concurrent resets cannot pass max_idle.
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let handles = idle.entry(conn.key.clone()).or_default();
            if let Some(reason) = self.refusal(&conn, handles.len()) {
                if handles.is_empty() {
                    idle.remove(&conn.key);
                }
                drop(idle);
                return self.discard(stream, reason);
            }
            handles.push(IdleHandle { id, take });
        }
        self.meters.idle.inc();
        let pool = self.clone();
        self.tasks
            .spawn(watch(pool, Idle { stream, conn }, id, taken));
    }

    /// Removes the handle `id` of `key` if a checkout has not taken it.
    fn forget(&self, key: &PoolKey, id: u64) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handles) = idle.get_mut(key) {
            if let Some(i) = handles.iter().position(|h| h.id == id) {
                handles.remove(i);
                self.meters.idle.dec();
            }
            if handles.is_empty() {
                idle.remove(key);
            }
        }
    }

    fn close_reason(&self) -> Discard {
        self.close_reason
            .get()
            .copied()
            .unwrap_or(Discard::PoolClosed)
    }

    /// Closes a connection that is not kept, saying Terminate unless the server is gone.
    fn discard(&self, stream: UpstreamStream, reason: Discard) {
        self.meters.discarded(reason.label());
        tracing::debug!(
            reason = reason.label(),
            "server connection closed instead of pooled"
        );
        if reason != Discard::ServerClosed {
            self.tasks.spawn(terminate(stream));
        }
    }

    /// Closes a session that did not end clean: with Terminate (the server rolls back an open
    /// transaction, or first finishes what an orderly client sent before its Terminate), or,
    /// `busy`, when its client vanished mid-query, by cancelling that query and closing.
    pub fn abandon(&self, stream: UpstreamStream, conn: &Pooled, busy: bool) {
        self.meters.discarded(Discard::Dirty.label());
        if busy {
            drop(stream);
            self.cancel(conn);
        } else {
            self.tasks.spawn(terminate(stream));
        }
    }

    /// Cancels what the server of `conn` is running, in the background.
    fn cancel(&self, conn: &Pooled) {
        let Some((pid, secret)) = conn.backend_key.clone() else {
            return;
        };
        let (addr, trust, timeout) = (conn.addr, conn.trust.clone(), self.connect_timeout);
        self.tasks.spawn(async move {
            let request = CancelRequest { pid, secret };
            let sent = tokio::time::timeout(timeout, send_cancel(addr, &trust, &request)).await;
            if let Ok(Err(e)) = sent {
                tracing::debug!(error = %e, "cancelling an abandoned server session failed");
            }
        });
    }
}

/// Terminate, then TLS close_notify, within [`TERMINATE_GRACE`].
async fn terminate(mut stream: UpstreamStream) {
    const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];
    let _ = tokio::time::timeout(TERMINATE_GRACE, async {
        stream.write_all(&TERMINATE).await?;
        stream.shutdown().await
    })
    .await;
}

/// `lifetime` minus up to 10%, so connections opened together do not retire together.
fn jittered(lifetime: Duration) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    // Each RandomState is freshly seeded: a cheap random number without a dependency.
    let r = RandomState::new().hash_one(Instant::now());
    let tenth = lifetime / 10;
    lifetime - tenth.mul_f64((r % 1024) as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent_and_varies() {
        let hour = Duration::from_secs(3600);
        let seen: std::collections::HashSet<Duration> = (0..50).map(|_| jittered(hour)).collect();
        assert!(
            seen.iter().all(|d| *d <= hour && *d >= hour - hour / 10),
            "{seen:?}"
        );
        assert!(seen.len() > 10, "jitter does not vary: {seen:?}");
    }
}

//! What a cluster's sessions share, and outlives a restart of its monitor (a reload that
//! changes the cluster's targets or settings): the latest view, the session counts the
//! reader choice balances, the instances a session just failed to reach, and the writer
//! change being timed. Nothing here does IO, so it is unit-tested directly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;
use tokio::time::Instant;

use super::select::{self, Load, View};
use crate::metrics::{HealthEntry, TopologyMetrics};
use crate::targets::{Endpoint, Role};
use crate::upstream::UpstreamError;

/// How long an instance a session could not reach is passed over (the monitor re-reads
/// the topology meanwhile).
const FAILING_FOR: Duration = Duration::from_secs(5);
/// How often a waiting session looks again when nothing has changed (failing instances
/// expire on their own).
const WAIT_STEP: Duration = Duration::from_millis(100);

/// What the monitor knows.
#[derive(Debug, Clone)]
pub(crate) enum State {
    /// Not read yet: sessions dial the endpoint as given meanwhile, so reading the topology
    /// never delays a session (nor changes anything for a target whose topology never reads).
    Reading,
    Known(Arc<View>),
    /// The topology cannot be read (not Aurora, no permission, no function, instance
    /// endpoints unreachable): sessions dial the endpoint as given, as with `topology = off`.
    Fallback,
}

/// Where a new session goes.
#[derive(Debug, Clone)]
pub(crate) enum Pick {
    Instance(Arc<Endpoint>),
    /// The endpoint itself (the topology is not read, or cannot be).
    Endpoint,
}

/// A failure seen and the writer change it led to, for the log line at the first session
/// on the new writer.
#[derive(Debug, Default)]
struct Trouble {
    since: Option<Instant>,
    last_writer: Option<Arc<str>>,
    change: Option<(Arc<str>, Arc<str>, Instant)>,
}

#[derive(Debug)]
pub(crate) struct ClusterState {
    /// The cluster identifier, for logs and error messages.
    pub name: String,
    metrics: TopologyMetrics,
    health: HealthEntry,
    /// The targets that follow the cluster, for metrics; replaced on a restart.
    targets: Mutex<Vec<String>>,
    max_lag_ms: AtomicU64,
    state: watch::Sender<State>,
    sessions: Mutex<HashMap<Arc<str>, usize>>,
    failing: Mutex<HashMap<Arc<str>, Instant>>,
    turn: AtomicUsize,
    trouble: Mutex<Trouble>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClusterState {
    pub fn new(
        name: String,
        targets: Vec<String>,
        max_lag: Duration,
        metrics: TopologyMetrics,
    ) -> ClusterState {
        let health = metrics.health.watch(&name, targets.clone());
        ClusterState {
            name,
            metrics,
            health,
            targets: Mutex::new(targets),
            max_lag_ms: AtomicU64::new(max_lag.as_millis() as u64),
            state: watch::channel(State::Reading).0,
            sessions: Mutex::new(HashMap::new()),
            failing: Mutex::new(HashMap::new()),
            turn: AtomicUsize::new(0),
            trouble: Mutex::new(Trouble::default()),
        }
    }

    /// A restart with other targets or settings.
    pub fn reconfigure(&self, targets: Vec<String>, max_lag: Duration) {
        self.metrics
            .health
            .set_targets(&self.health, targets.clone());
        *lock(&self.targets) = targets;
        self.max_lag_ms
            .store(max_lag.as_millis() as u64, Ordering::Relaxed);
    }

    /// The cluster is no longer followed by any target.
    pub fn forget(&self) {
        self.metrics.health.forget(&self.health);
    }

    /// Where a new `role` session goes: an instance as soon as one fits, waiting (up to
    /// `deadline`) while none does, for example during a failover.
    pub async fn pick(&self, role: Role, deadline: Instant) -> Result<Pick, UpstreamError> {
        let mut rx = self.state.subscribe();
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                State::Fallback | State::Reading => return Ok(Pick::Endpoint),
                State::Known(view) => {
                    if let Some(node) = self.choose(&view, role) {
                        return Ok(Pick::Instance(node.endpoint.clone()));
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(UpstreamError::NoInstance {
                    cluster: self.name.clone(),
                    role: role.label(),
                });
            }
            let step = Instant::now() + WAIT_STEP;
            let _ = tokio::time::timeout_at(step.min(deadline), rx.changed()).await;
        }
    }

    fn choose<'v>(&self, view: &'v View, role: Role) -> Option<&'v select::Node> {
        let sessions = lock(&self.sessions);
        let now = Instant::now();
        let failing = lock(&self.failing);
        let load = Load {
            max_lag: Duration::from_millis(self.max_lag_ms.load(Ordering::Relaxed)),
            sessions: &|id: &str| sessions.get(id).copied().unwrap_or(0),
            failing: &|id: &str| failing.get(id).is_some_and(|at| now < *at + FAILING_FOR),
            turn: self.turn.fetch_add(1, Ordering::Relaxed),
        };
        select::pick(view, role, &load)
    }

    /// A session could not reach `endpoint`'s instance: pass it over for a while, and stop
    /// sending writer sessions there if it was the writer. The caller wakes the monitor.
    pub fn unreachable(&self, endpoint: &Endpoint) {
        let Some(id) = &endpoint.instance else {
            return;
        };
        lock(&self.failing).insert(id.clone(), Instant::now());
        self.trouble_seen();
        self.state.send_if_modified(|state| match state {
            State::Known(view) if view.writer.as_ref() == Some(id) => {
                let mut next = View::clone(view);
                next.writer = None;
                *state = State::Known(Arc::new(next));
                true
            }
            _ => false,
        });
    }

    /// Something went wrong (a connect failure, the monitor's connection lost): the start
    /// of an outage, if this turns out to be one.
    pub fn trouble_seen(&self) {
        lock(&self.trouble).since.get_or_insert_with(Instant::now);
    }

    /// A session of `target` is open on `endpoint`'s instance until the guard drops.
    pub fn opened(
        self: &Arc<Self>,
        role: Role,
        endpoint: &Endpoint,
        target: &str,
    ) -> Option<InstanceSession> {
        let id = endpoint.instance.clone()?;
        *lock(&self.sessions).entry(id.clone()).or_default() += 1;
        lock(&self.failing).remove(&id);
        let mut trouble = lock(&self.trouble);
        if let Some((old, new, since)) = trouble.change.take_if(|(_, new, _)| *new == id) {
            tracing::warn!(
                cluster = %self.name,
                old_writer = %old,
                new_writer = %new,
                outage_ms = since.elapsed().as_millis() as u64,
                "Aurora writer changed: first session on the new writer"
            );
            trouble.since = None;
        }
        drop(trouble);
        let gauge = self.metrics.session_gauge(target, &id);
        gauge.inc();
        Some(InstanceSession {
            cluster: self.clone(),
            id,
            role,
            gauge,
            state: self.state.subscribe(),
        })
    }

    /// The monitor's reading, with the writer confirmed through its own endpoint: that
    /// instance is reachable again.
    pub fn publish(&self, view: View) {
        let writer = view.writer.clone();
        let readers = view.readers().count() as i64;
        {
            let mut trouble = lock(&self.trouble);
            match (trouble.last_writer.clone(), &writer) {
                (Some(old), Some(new)) if old != *new => {
                    let since = trouble.since.unwrap_or_else(Instant::now);
                    tracing::info!(cluster = %self.name, old_writer = %old, new_writer = %new, "Aurora writer change confirmed");
                    self.metrics.writer_changed(&lock(&self.targets));
                    trouble.change = Some((old, new.clone(), since));
                }
                (_, Some(_)) if trouble.change.is_none() => trouble.since = None,
                _ => {}
            }
            if writer.is_some() {
                trouble.last_writer = writer.clone();
            }
        }
        if let Some(id) = &writer {
            lock(&self.failing).remove(id);
        }
        self.metrics
            .set_instances(&lock(&self.targets), i64::from(writer.is_some()), readers);
        self.health.set_down(false);
        self.state.send_replace(State::Known(Arc::new(view)));
    }

    /// No writer is known now: writer sessions wait for the next one.
    pub fn searching(&self, every_instance_down: bool) {
        self.health.set_down(every_instance_down);
        let readers = self.view().map_or(0, |v| v.readers().count() as i64);
        self.metrics.set_instances(&lock(&self.targets), 0, readers);
        self.state.send_if_modified(|state| match state {
            State::Known(view) if view.writer.is_some() => {
                let mut next = View::clone(view);
                next.writer = None;
                *state = State::Known(Arc::new(next));
                true
            }
            _ => false,
        });
    }

    pub fn fall_back(&self) {
        self.health.set_down(false);
        self.metrics.set_instances(&lock(&self.targets), 0, 0);
        self.state.send_if_modified(|state| {
            let changed = !matches!(state, State::Fallback);
            *state = State::Fallback;
            changed
        });
    }

    pub fn view(&self) -> Option<Arc<View>> {
        match &*self.state.borrow() {
            State::Known(view) => Some(view.clone()),
            _ => None,
        }
    }

    pub fn is_fallback(&self) -> bool {
        matches!(*self.state.borrow(), State::Fallback)
    }

    /// The confirmed writer now, if there is one.
    pub fn current_writer(&self) -> Option<Arc<str>> {
        self.view().and_then(|v| v.writer.clone())
    }
}

/// A client session open on one instance: counted for the reader choice and the
/// `sessions_active` gauge, and told when the writer it is on is no longer the writer.
#[derive(Debug)]
pub(crate) struct InstanceSession {
    cluster: Arc<ClusterState>,
    id: Arc<str>,
    role: Role,
    gauge: Gauge,
    state: watch::Receiver<State>,
}

impl InstanceSession {
    /// Resolves when a writer session's instance has been replaced as the writer: the
    /// session is then closed rather than left writing to a demoted instance. Reader
    /// sessions are never closed by a topology change.
    pub async fn superseded(&mut self) {
        if self.role == Role::Reader {
            return std::future::pending().await;
        }
        let id = self.id.clone();
        let replaced = self.state.wait_for(|state| match state {
            State::Known(view) => view.writer.as_ref().is_some_and(|w| *w != id),
            _ => false,
        });
        if replaced.await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for InstanceSession {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.cluster.sessions).get_mut(&self.id) {
            *n = n.saturating_sub(1);
        }
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests;

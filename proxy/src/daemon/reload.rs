//! SIGHUP: re-read the settings (the flags and environment the process started with, the
//! config file again) and apply them without a restart. Added targets and listen addresses
//! start, removed ones stop listening (their open connections stay), changed targets (a
//! rotated CA bundle too) apply to new connections. A config that fails to load, or a target
//! that fails to build or bind, is logged and the running configuration kept as a whole.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rds_iam_config::{ListenAddr, Settings};
use tokio::signal::unix::Signal;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::run::{Running, StartupError};
use crate::connection::{ClientPolicy, Route};
use crate::listen::{bind_addr, client_policy, set_unix_socket_mode, Listener, ListenerControl};
use crate::targets::TargetContext;

/// Watches SIGHUP; [`Reloader::stop`] ends it.
pub(super) struct Reloader {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Reloader {
    /// `pending`: a SIGHUP came during start-up, before `hangup` existed; it is served first.
    pub fn start(
        running: Running,
        listeners: ListenerControl,
        hangup: Option<Signal>,
        pending: bool,
    ) -> Reloader {
        let listening = running
            .settings
            .targets
            .iter()
            .flat_map(|t| t.listen.iter().cloned())
            .collect();
        let state = State {
            running,
            listeners,
            listening,
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch_hangups(state, hangup, pending, stop.clone()));
        Reloader { stop, task }
    }

    /// Stops reloading. The listeners are the owner's to stop.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "config reloader failed");
        }
    }
}

async fn watch_hangups(
    mut state: State,
    mut hangup: Option<Signal>,
    pending: bool,
    stop: CancellationToken,
) {
    if pending {
        tracing::info!("SIGHUP during start-up: reloading the configuration");
        tokio::select! {
            () = stop.cancelled() => return,
            () = state.reload() => {}
        }
    }
    loop {
        let got = tokio::select! {
            () = stop.cancelled() => return,
            got = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => got,
        };
        if got.is_none() {
            // The signal driver is gone; only the stop is left to wait for.
            return stop.cancelled().await;
        }
        tracing::info!("SIGHUP: reloading the configuration");
        tokio::select! {
            () = stop.cancelled() => return,
            () = state.reload() => {}
        }
    }
}

struct State {
    running: Running,
    listeners: ListenerControl,
    /// Addresses the owner is listening on.
    listening: HashSet<ListenAddr>,
}

/// What a reload would change, built completely before anything is applied.
struct Plan {
    settings: Settings,
    client: Arc<ClientPolicy>,
    targets: Vec<Arc<TargetContext>>,
    /// Newly bound addresses and their targets' names.
    bound: Vec<(ListenAddr, Listener, String)>,
    changed: Vec<String>,
}

impl State {
    async fn reload(&mut self) {
        match self.plan().await {
            Ok(plan) => self.apply(plan),
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
            }
        }
    }

    async fn plan(&self) -> Result<Plan, StartupError> {
        let run = &self.running;
        let settings = rds_iam_config::reload(&run.args, run.env.vars())?;
        let old = &run.settings;
        let client = Arc::new(client_policy(&settings, Some((&run.client, old)))?);
        let (targets, changed) = self.targets(&settings).await?;
        let mut bound = Vec::new();
        for target in &settings.targets {
            for addr in &target.listen {
                if !self.listening.contains(addr) {
                    let listener = bind_addr(addr, settings.unix_socket_mode).await?;
                    bound.push((addr.clone(), listener, target.name.clone()));
                }
            }
        }
        Ok(Plan {
            settings,
            client,
            targets,
            bound,
            changed,
        })
    }

    /// The targets of `settings`: running ones kept where nothing about them changed, the
    /// rest built anew. Also returns the names of running targets that changed.
    async fn targets(
        &self,
        settings: &Settings,
    ) -> Result<(Vec<Arc<TargetContext>>, Vec<String>), StartupError> {
        let run = &self.running;
        let old = &run.settings;
        let mut targets = Vec::new();
        let mut changed = Vec::new();
        for target in &settings.targets {
            let current = run.targets.iter().find(|t| t.name == target.name);
            let same_settings = old.target(&target.name) == Some(target)
                && old.connect_timeout == settings.connect_timeout
                && old.resolve == settings.resolve
                && old.max_connect_rate == settings.max_connect_rate;
            let context = match current {
                Some(c) if same_settings && run.builder.same_ca(c, target).await => c.clone(),
                _ => {
                    if current.is_some() {
                        changed.push(target.name.clone());
                    }
                    Arc::new(run.builder.build(target, settings).await?)
                }
            };
            targets.push(context);
        }
        Ok((targets, changed))
    }

    /// Applies a plan; nothing here can fail.
    fn apply(&mut self, plan: Plan) {
        let Plan {
            settings,
            client,
            targets,
            bound,
            changed,
        } = plan;
        let wanted: HashMap<&ListenAddr, &str> = settings
            .targets
            .iter()
            .flat_map(|t| t.listen.iter().map(move |a| (a, t.name.as_str())))
            .collect();
        let pools = &mut self.running.pools;
        pools.update(&targets, &settings.pool, &self.running.shared.metrics);
        let topology = &mut self.running.topology;
        topology.update(
            &targets,
            &settings.topology,
            &self.running.shared.metrics.topology,
        );
        let pools = &self.running.pools;
        let topology = &self.running.topology;
        let route = |name: &str| {
            let target = targets.iter().find(|t| t.name == name)?;
            Some(Arc::new(Route {
                target: target.clone(),
                pool: pools.get(name),
                topology: topology.get(name),
                client: client.clone(),
            }))
        };
        let gone: Vec<ListenAddr> = self
            .listening
            .iter()
            .filter(|a| !wanted.contains_key(a))
            .cloned()
            .collect();
        for addr in gone {
            self.listening.remove(&addr);
            self.listeners.remove(addr);
        }
        let mode_changed = settings.unix_socket_mode != self.running.settings.unix_socket_mode;
        for addr in &self.listening {
            if let Some(route) = wanted.get(addr).and_then(|name| route(name)) {
                self.listeners.replace(addr.clone(), route);
            }
            if let (true, ListenAddr::Unix { .. }) = (mode_changed, addr) {
                let mode = settings.unix_socket_mode;
                if let Err(e) = set_unix_socket_mode(&addr.socket_path(), mode) {
                    tracing::warn!(listen = %addr, error = %e, "cannot change the unix socket mode");
                }
            }
        }
        let added: Vec<String> = bound.iter().map(|(a, _, _)| a.to_string()).collect();
        for (addr, listener, name) in bound {
            if let Some(route) = route(&name) {
                self.listening.insert(addr.clone());
                self.listeners.add(addr, listener, route);
            }
        }
        self.running.shared.metrics.signers.set(targets.clone());
        let restart_only = rds_iam_config::restart_only_changes(&self.running.settings, &settings);
        if !restart_only.is_empty() {
            tracing::warn!(
                keys = %restart_only.join(", "),
                "these settings changed but take effect only after a restart"
            );
        }
        tracing::info!(
            targets = targets.len(),
            listeners = self.listening.len(),
            new_listeners = %added.join(", "),
            changed_targets = %changed.join(", "),
            "configuration reloaded"
        );
        self.running.settings = settings;
        self.running.client = client;
        self.running.targets = targets;
    }
}

//! SIGHUP: re-read the settings (same flags and environment, the config file again) and apply
//! them without a restart. Added targets and listen addresses start, removed ones stop
//! listening (their open connections stay), changed targets apply to new connections.
//! A config that fails to load, or a target that fails to build or bind, is logged and the
//! running configuration kept as a whole.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use clap::Parser;
use rds_iam_config::{ClientTls, ListenAddr, RunArgs, Settings};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{
    bind_addr, build_target, client_password_verifier, Bound, SignerPool, StartupError,
};
use crate::cli::Cli;
use crate::context::{SharedContext, TargetContext};
use crate::listen::Listener;
use crate::metrics::WatchedTarget;
use crate::route::{ClientPolicy, Route, RouteHandle};
use crate::server::{accept_loop, BoundListener};

/// Watches SIGHUP and owns every listener's route; [`Reloader::stop`] stops them all.
pub struct Reloader {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Reloader {
    /// Gives each bound listener its route and starts watching SIGHUP. The returned listeners
    /// go to `server::run`; the reloader can still stop them one by one.
    pub fn start(
        settings: &Settings,
        bound: Vec<Bound>,
        signers: &SignerPool,
        shared: &Arc<SharedContext>,
    ) -> Result<(Vec<BoundListener>, Reloader), StartupError> {
        let client = Arc::new(crate::app::client_policy(settings)?);
        let mut state = State {
            settings: settings.clone(),
            signers: signers.clone(),
            shared: shared.clone(),
            client,
            contexts: HashMap::new(),
            running: HashMap::new(),
            root: CancellationToken::new(),
        };
        let mut listeners = Vec::with_capacity(bound.len());
        for b in bound {
            state
                .contexts
                .insert(b.target.name.clone(), b.target.clone());
            let (running, listener) = state.route(b.listener, b.target);
            state.running.insert(b.addr, running);
            listeners.push(listener);
        }
        let stop = CancellationToken::new();
        // Registered now, before anything listens: an early SIGHUP must not kill the process.
        let hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGHUP handler; config reload is off");
                None
            }
        };
        let task = tokio::spawn(watch_hangups(state, hangup, stop.clone()));
        Ok((listeners, Reloader { stop, task }))
    }

    /// Stops reloading and every listener (those added by reloads too), and waits for the
    /// accept loops it runs to end. Open connections are left to the drain.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "config reloader failed");
        }
    }
}

async fn watch_hangups(
    mut state: State,
    mut hangup: Option<tokio::signal::unix::Signal>,
    stop: CancellationToken,
) {
    loop {
        let got = tokio::select! {
            () = stop.cancelled() => break,
            got = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => got,
        };
        if got.is_none() {
            // The signal driver is gone; only the stop is left to wait for.
            stop.cancelled().await;
            break;
        }
        tracing::info!("SIGHUP: reloading the configuration");
        tokio::select! {
            () = stop.cancelled() => break,
            () = state.reload() => {}
        }
    }
    state.stop_all().await;
}

/// One listen address in service.
struct Running {
    route: watch::Sender<Arc<Route>>,
    stop: CancellationToken,
    /// The accept loop, when a reload started it (`server::run` runs the first ones).
    task: Option<JoinHandle<()>>,
}

struct State {
    settings: Settings,
    signers: SignerPool,
    shared: Arc<SharedContext>,
    client: Arc<ClientPolicy>,
    /// By target name.
    contexts: HashMap<String, Arc<TargetContext>>,
    running: HashMap<ListenAddr, Running>,
    /// Parent of every listener's own stop token.
    root: CancellationToken,
}

/// What a reload would change, built completely before anything is applied.
struct Plan {
    settings: Settings,
    client: Arc<ClientPolicy>,
    contexts: HashMap<String, Arc<TargetContext>>,
    /// Newly bound addresses and their targets.
    bound: Vec<(ListenAddr, Listener, String)>,
    changed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error("cannot read the command line again: {0}")]
    Args(String),
    #[error(transparent)]
    Config(#[from] rds_iam_config::ConfigError),
    #[error(transparent)]
    Startup(#[from] StartupError),
}

impl State {
    fn route(&self, listener: Listener, target: Arc<TargetContext>) -> (Running, BoundListener) {
        let (tx, handle) = RouteHandle::new(Arc::new(Route {
            target,
            client: self.client.clone(),
        }));
        let stop = self.root.child_token();
        let running = Running {
            route: tx,
            stop: stop.clone(),
            task: None,
        };
        (
            running,
            BoundListener {
                listener,
                route: handle,
                stop,
            },
        )
    }

    async fn reload(&mut self) {
        let plan = match self.plan().await {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
                return;
            }
        };
        self.apply(plan);
    }

    async fn plan(&self) -> Result<Plan, ReloadError> {
        let args = command_line_args()?;
        let env: HashMap<String, String> = std::env::vars().collect();
        let settings = rds_iam_config::reload(&args, &env)?;
        let old = &self.settings;

        let tls = match (&settings.client_tls, &self.client.tls) {
            // Files are read again so a renewed certificate is picked up.
            (ClientTls::Files { .. }, _) => {
                crate::client_tls::acceptor(&settings.client_tls).map_err(StartupError::from)?
            }
            (new, current) if *new == old.client_tls => current.clone(),
            (new, _) => crate::client_tls::acceptor(new).map_err(StartupError::from)?,
        };
        let password = if settings.client_password == old.client_password {
            self.client.password.clone()
        } else {
            settings
                .client_password
                .as_ref()
                .map(client_password_verifier)
                .transpose()?
        };
        let client = Arc::new(ClientPolicy { tls, password });

        let mut contexts = HashMap::new();
        let mut changed = Vec::new();
        let mut signers = self.signers.clone();
        for target in &settings.targets {
            let unchanged = old.target(&target.name) == Some(target)
                && old.connect_timeout == settings.connect_timeout
                && old.max_connect_rate == settings.max_connect_rate;
            let context = match self.contexts.get(&target.name) {
                Some(current) if unchanged => current.clone(),
                current => {
                    if current.is_some() {
                        changed.push(target.name.clone());
                    }
                    Arc::new(build_target(target, &settings, &mut signers).await?)
                }
            };
            contexts.insert(target.name.clone(), context);
        }

        let mut bound = Vec::new();
        for target in &settings.targets {
            for addr in &target.listen {
                if !self.running.contains_key(addr) {
                    let listener = bind_addr(addr, settings.unix_socket_mode)
                        .await
                        .map_err(StartupError::from)?;
                    bound.push((addr.clone(), listener, target.name.clone()));
                }
            }
        }
        Ok(Plan {
            settings,
            client,
            contexts,
            bound,
            changed,
        })
    }

    /// Applies a plan; nothing here can fail.
    fn apply(&mut self, plan: Plan) {
        let Plan {
            settings,
            client,
            contexts,
            bound,
            changed,
        } = plan;
        let wanted: HashMap<&ListenAddr, &str> = settings
            .targets
            .iter()
            .flat_map(|t| t.listen.iter().map(move |a| (a, t.name.as_str())))
            .collect();

        let gone: Vec<ListenAddr> = self
            .running
            .keys()
            .filter(|a| !wanted.contains_key(a))
            .cloned()
            .collect();
        for addr in gone {
            // The accept loop logs "stopped listening" once the socket is closed.
            if let Some(r) = self.running.remove(&addr) {
                r.stop.cancel();
            }
        }

        self.client = client;
        self.contexts = contexts;
        let mode_changed = settings.unix_socket_mode != self.settings.unix_socket_mode;
        for (addr, running) in &mut self.running {
            let Some(name) = wanted.get(addr) else {
                continue;
            };
            let Some(target) = self.contexts.get(*name) else {
                continue;
            };
            running.route.send_replace(Arc::new(Route {
                target: target.clone(),
                client: self.client.clone(),
            }));
            if let (true, ListenAddr::Unix { .. }) = (mode_changed, addr) {
                let mode = std::fs::Permissions::from_mode(settings.unix_socket_mode);
                if let Err(e) = std::fs::set_permissions(addr.socket_path(), mode) {
                    tracing::warn!(listen = %addr, error = %e, "cannot change the unix socket mode");
                }
            }
        }

        let added: Vec<String> = bound.iter().map(|(a, _, _)| a.to_string()).collect();
        for (addr, listener, name) in bound {
            let Some(target) = self.contexts.get(&name).cloned() else {
                continue;
            };
            let (mut running, listener) = self.route(listener, target);
            running.task = Some(tokio::spawn(accept_loop(
                listener,
                self.shared.clone(),
                self.root.clone(),
            )));
            self.running.insert(addr, running);
        }

        self.shared.metrics.signers.set(
            self.contexts
                .values()
                .map(|t| WatchedTarget {
                    name: t.name.clone(),
                    host: t.host.clone(),
                    port: t.port,
                    region: t.region.clone(),
                    signer: t.signer.clone(),
                })
                .collect(),
        );
        let restart_only = restart_only_changes(&self.settings, &settings);
        if !restart_only.is_empty() {
            tracing::warn!(
                keys = %restart_only.join(", "),
                "these settings changed but take effect only after a restart"
            );
        }
        tracing::info!(
            targets = self.contexts.len(),
            listeners = self.running.len(),
            new_listeners = %added.join(", "),
            changed_targets = %changed.join(", "),
            "configuration reloaded"
        );
        self.settings = settings;
    }

    async fn stop_all(&mut self) {
        self.root.cancel();
        for (_, running) in self.running.drain() {
            if let Some(task) = running.task {
                let _ = task.await;
            }
        }
    }
}

/// The flags this process was started with: the command line cannot change while it runs,
/// so parsing it again gives what start-up loaded.
fn command_line_args() -> Result<RunArgs, ReloadError> {
    let cli =
        Cli::try_parse_from(std::env::args_os()).map_err(|e| ReloadError::Args(e.to_string()))?;
    match cli.command {
        None => Ok(cli.run),
        Some(_) => Err(ReloadError::Args("not the run command".into())),
    }
}

/// Settings read once at start-up.
fn restart_only_changes(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |key, differs: bool| {
        if differs {
            keys.push(key);
        }
    };
    check("admin_listen", old.admin_listen != new.admin_listen);
    check(
        "max_connections",
        old.max_connections != new.max_connections,
    );
    check(
        "startup_timeout",
        old.startup_timeout != new.startup_timeout,
    );
    check(
        "min_sigterm_delay",
        old.min_sigterm_delay != new.min_sigterm_delay,
    );
    check(
        "max_sigterm_delay",
        old.max_sigterm_delay != new.max_sigterm_delay,
    );
    check(
        "exit_zero_on_sigterm",
        old.exit_zero_on_sigterm != new.exit_zero_on_sigterm,
    );
    check("log_format", old.log_format != new.log_format);
    check("log_level", old.log_level != new.log_level);
    keys
}

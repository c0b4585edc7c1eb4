//! The default command: start the proxy, serve until SIGTERM, SIGINT or `POST /quitquitquit`,
//! then stop in order: keep accepting for the min delay, close the listeners, drain.

use std::sync::Arc;
use std::time::Duration;

use rds_iam_config::{RunArgs, Settings};
use tokio_util::sync::CancellationToken;

use super::environment::Environment;
use super::reload::Reloader;
use super::sd_notify::{self, NotifySocket};
use super::signals::{EarlyHangup, Signals};
use super::warmup::warm_up;
use crate::admin::{AdminServer, AdminState, Lifecycle, StopReason};
use crate::connection::{ClientPolicy, Route, Shared};
use crate::listen::{bind_addr, client_policy, ClientPolicyError, ListenError, Listeners};
use crate::metrics::Metrics;
use crate::targets::{TargetBuilder, TargetContext, TargetError};
use crate::upstream::{PoolSet, TopologySet};

/// How long the admin endpoint gets to finish in-flight replies once the drain is over.
const ADMIN_STOP_GRACE: Duration = Duration::from_secs(1);

/// Why the proxy could not start. Settings problems exit 2, the rest 1.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartupError {
    #[error(transparent)]
    Config(#[from] rds_iam_config::ConfigError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    ClientPolicy(#[from] ClientPolicyError),
    #[error(transparent)]
    Listen(#[from] ListenError),
}

impl StartupError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::ClientPolicy(ClientPolicyError::Tls(_)) => 2,
            Self::Target(e) => e.exit_code(),
            Self::ClientPolicy(ClientPolicyError::Random) | Self::Listen(_) => 1,
        }
    }
}

/// What the running proxy is made of, handed from start-up to the reloader.
pub(super) struct Running {
    pub args: RunArgs,
    pub env: Environment,
    pub settings: Settings,
    pub builder: TargetBuilder,
    pub client: Arc<ClientPolicy>,
    /// In the settings' order.
    pub targets: Vec<Arc<TargetContext>>,
    /// The pools of targets with `pool_mode = "session"`.
    pub pools: PoolSet,
    /// The monitors of Aurora clusters that targets follow (`topology`).
    pub topology: TopologySet,
    pub shared: Arc<Shared>,
}

/// Runs the proxy with resolved settings; returns the process exit code.
pub(crate) async fn serve(
    settings: Settings,
    args: RunArgs,
    env: Environment,
    early_hangup: Option<EarlyHangup>,
) -> Result<u8, StartupError> {
    let lifecycle = Arc::new(Lifecycle::default());
    let mut signals = early_hangup.and_then(Signals::register);
    let hangup = signals.as_mut().and_then(|s| s.hangup.take());
    let hangup_pending = signals.as_ref().is_some_and(|s| s.hangup_pending);
    if let Some(signals) = signals {
        tokio::spawn(signals.watch_stops(lifecycle.clone(), settings.exit_zero_on_sigterm));
    }
    let metrics = Metrics::new();
    let shared = Arc::new(Shared::new(&settings, metrics.clone()));
    let listeners = Listeners::start(shared.clone());
    let running = start(&settings, args, env.clone(), shared.clone(), &listeners).await?;
    let targets = running.targets.clone();
    metrics.signers.set(targets.clone());
    let builder = running.builder.clone();
    let pools = running.pools.stopper();
    let monitors = running.topology.stopper();
    let reloader = Reloader::start(running, listeners.control(), hangup, hangup_pending);
    let admin_stop = CancellationToken::new();
    let admin = match settings.admin_listen {
        Some(addr) => Some(AdminServer::bind(addr).await?.spawn(
            AdminState {
                lifecycle: lifecycle.clone(),
                metrics: metrics.clone(),
                quit: settings.quitquitquit,
            },
            admin_stop.clone(),
        )),
        None => None,
    };
    lifecycle.set_accepting(true);
    let notify = env.notify_socket();
    tokio::spawn(report_started(targets, lifecycle.clone(), notify.clone()));

    let reason = lifecycle.stopped().await;
    sd_notify::notify(notify.as_ref(), "STOPPING=1");
    // Idle server connections serve nobody from here on.
    pools.close_idle();
    let (min_delay, max_delay) = (settings.min_sigterm_delay, settings.max_sigterm_delay);
    tracing::info!(
        ?reason,
        min_delay = %humantime::format_duration(min_delay),
        max_delay = %humantime::format_duration(max_delay),
        "shutdown requested; still accepting for the min delay"
    );
    tokio::time::sleep(min_delay).await;
    lifecycle.set_accepting(false);
    reloader.stop().await;
    // Closes every listener, including those a reload added.
    listeners.stop().await;
    let closed_by_force = drain(&shared, max_delay).await;
    pools.finish(ADMIN_STOP_GRACE).await;
    monitors.cancel();
    let reason = lifecycle.stop_requested().unwrap_or(StopReason::Terminate);
    let code = reason.exit_code(settings.exit_zero_on_sigterm);
    tracing::info!(closed_by_force, exit_code = code, "stopped");
    admin_stop.cancel();
    if let Some(admin) = admin {
        let _ = tokio::time::timeout(ADMIN_STOP_GRACE, admin).await;
    }
    builder.signers().shutdown();
    Ok(code)
}

/// Builds every target and binds every listen address, then hands the listeners to their
/// owner. Nothing accepts until all are bound, so a failure leaves no socket behind.
async fn start(
    settings: &Settings,
    args: RunArgs,
    env: Environment,
    shared: Arc<Shared>,
    listeners: &Listeners,
) -> Result<Running, StartupError> {
    let builder = TargetBuilder::new(env.home());
    let client = Arc::new(client_policy(settings, None)?);
    let mut targets = Vec::new();
    for target in &settings.targets {
        let context = Arc::new(builder.build(target, settings).await?);
        tracing::info!(
            target = %context.name,
            host = %context.host,
            port = context.port,
            region = %context.region,
            dial = %format!("{}:{}", context.endpoint.dial.0, context.endpoint.dial.1),
            pool_mode = context.pool_mode.label(),
            topology = context.cluster.as_ref().map_or("off", |c| c.role.label()),
            "target ready"
        );
        targets.push(context);
    }
    let mut pools = PoolSet::default();
    pools.update(&targets, &settings.pool, &shared.metrics);
    let mut topology = TopologySet::default();
    topology.update(&targets, &settings.topology, &shared.metrics.topology);
    let mut bound = Vec::new();
    for (target, context) in settings.targets.iter().zip(&targets) {
        for addr in &target.listen {
            let listener = bind_addr(addr, settings.unix_socket_mode).await?;
            let route = Arc::new(Route {
                target: context.clone(),
                pool: pools.get(&context.name),
                topology: topology.get(&context.name),
                client: client.clone(),
            });
            bound.push((addr.clone(), listener, route));
        }
    }
    let control = listeners.control();
    for (addr, listener, route) in bound {
        control.add(addr, listener, route);
    }
    Ok(Running {
        args,
        env,
        settings: settings.clone(),
        builder,
        client,
        targets,
        pools,
        topology,
        shared,
    })
}

/// Lets open connections finish for up to `limit`, then closes the rest; returns how many
/// were closed by force.
async fn drain(shared: &Shared, limit: Duration) -> usize {
    tracing::info!(drain = %humantime::format_duration(limit), "stopped accepting; draining open connections");
    shared.tracker.close();
    if tokio::time::timeout(limit, shared.tracker.wait())
        .await
        .is_ok()
    {
        return 0;
    }
    let open = shared.tracker.len();
    tracing::warn!(open, "drain time is up; closing the remaining connections");
    shared.close_all.cancel();
    shared.tracker.wait().await;
    open
}

/// Waits for the start-up work, then tells `/startup` and systemd.
async fn report_started(
    targets: Vec<Arc<TargetContext>>,
    lifecycle: Arc<Lifecycle>,
    notify: Option<NotifySocket>,
) {
    warm_up(&targets).await;
    lifecycle.set_started();
    if lifecycle.stop_requested().is_none() {
        sd_notify::notify(notify.as_ref(), "READY=1");
    }
    tracing::info!("started: listening, with AWS credentials");
}

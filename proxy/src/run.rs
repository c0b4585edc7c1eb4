//! The default command: run the proxy until SIGTERM, SIGINT or `POST /quitquitquit`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rds_iam_config::{RunArgs, Settings};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::admin::{AdminServer, AdminState};
use crate::app::{bind_target, build_target, shared_context, SignerPool, StartupError};
use crate::lifecycle::Lifecycle;
pub use crate::lifecycle::StopReason;
use crate::metrics::{Metrics, WatchedTarget};
use crate::{sd_notify, server, warmup};

/// How long the admin endpoint gets to finish in-flight replies once the drain is over.
const ADMIN_STOP_GRACE: Duration = Duration::from_secs(1);

pub fn load_settings(args: &RunArgs) -> Result<Settings, StartupError> {
    let env: HashMap<String, String> = std::env::vars().collect();
    Ok(rds_iam_config::load(args, &env)?)
}

/// Runs the proxy with resolved settings; returns the process exit code.
pub async fn run(settings: Settings) -> Result<u8, StartupError> {
    let lifecycle = Arc::new(Lifecycle::default());
    // Handlers go in first: a signal during start-up must stop us in order, not kill us.
    if let Some(signals) = Signals::register() {
        tokio::spawn(signals.watch(lifecycle.clone(), settings.exit_zero_on_sigterm));
    }
    let metrics = Metrics::new();
    let shared = Arc::new(shared_context(&settings, metrics.clone()));
    let mut signers = SignerPool::default();
    let mut targets = Vec::new();
    let mut listeners = Vec::new();
    for target in &settings.targets {
        let context = Arc::new(build_target(target, &settings, &mut signers).await?);
        tracing::info!(
            target = %context.name,
            host = %context.host,
            port = context.port,
            region = %context.region,
            dial = %format!("{}:{}", context.dial.0, context.dial.1),
            "target ready"
        );
        listeners.extend(bind_target(target, context.clone(), &settings).await?);
        targets.push(context);
    }
    // Routes the listeners and handles SIGHUP (see reload.rs).
    let (listeners, reloader) =
        crate::reload::Reloader::start(&settings, listeners, &signers, &shared)?;
    metrics.signers.set(
        targets
            .iter()
            .map(|t| WatchedTarget {
                name: t.name.clone(),
                host: t.host.clone(),
                port: t.port,
                region: t.region.clone(),
                signer: t.signer.clone(),
            })
            .collect(),
    );
    let admin_stop = CancellationToken::new();
    let admin = match settings.admin_listen {
        Some(addr) => Some(AdminServer::bind(addr).await?.spawn(
            AdminState {
                lifecycle: lifecycle.clone(),
                metrics: metrics.clone(),
            },
            admin_stop.clone(),
        )),
        None => None,
    };
    lifecycle.set_accepting(true);
    tokio::spawn(report_started(targets, lifecycle.clone()));

    let shutdown = {
        let lifecycle = lifecycle.clone();
        let (min_delay, max_delay) = (settings.min_sigterm_delay, settings.max_sigterm_delay);
        async move {
            let reason = lifecycle.stopped().await;
            sd_notify::notify("STOPPING=1");
            tracing::info!(
                ?reason,
                min_delay = %humantime::format_duration(min_delay),
                max_delay = %humantime::format_duration(max_delay),
                "shutdown requested; still accepting for the min delay"
            );
            tokio::time::sleep(min_delay).await;
            lifecycle.set_accepting(false);
            // Stops every listener, including those a reload added.
            reloader.stop().await;
        }
    };
    let drained = server::run(listeners, shared, shutdown, settings.max_sigterm_delay).await;
    let reason = lifecycle.stop_requested().unwrap_or(StopReason::Terminate);
    let code = reason.exit_code(settings.exit_zero_on_sigterm);
    tracing::info!(
        closed_by_force = drained.closed_by_force,
        exit_code = code,
        "stopped"
    );
    admin_stop.cancel();
    if let Some(admin) = admin {
        let _ = tokio::time::timeout(ADMIN_STOP_GRACE, admin).await;
    }
    for signer in signers.all() {
        signer.shutdown();
    }
    Ok(code)
}

/// Waits for the start-up work, then tells `/startup` and systemd.
async fn report_started(
    targets: Vec<Arc<crate::context::TargetContext>>,
    lifecycle: Arc<Lifecycle>,
) {
    warmup::warm_up(&targets).await;
    lifecycle.set_started();
    if lifecycle.stop_requested().is_none() {
        sd_notify::notify("READY=1");
    }
    tracing::info!("started: listening, with AWS credentials");
}

struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn register() -> Option<Signals> {
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some(Signals { term, int }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot install signal handlers; stop with /quitquitquit or SIGKILL");
                None
            }
        }
    }

    /// The first signal starts an orderly stop; one after any stop request ends at once.
    async fn watch(mut self, lifecycle: Arc<Lifecycle>, exit_zero_on_sigterm: bool) {
        loop {
            let reason = tokio::select! {
                Some(()) = self.term.recv() => StopReason::Terminate,
                Some(()) = self.int.recv() => StopReason::Interrupt,
                else => return,
            };
            if !lifecycle.request_stop(reason) {
                let code = reason.exit_code(exit_zero_on_sigterm);
                tracing::warn!(?reason, exit_code = code, "second stop signal: exiting now");
                std::process::exit(i32::from(code));
            }
        }
    }
}

//! The default command: run the proxy until a signal.

use std::collections::HashMap;
use std::sync::Arc;

use rds_iam_config::{RunArgs, Settings};
use tokio::signal::unix::{signal, SignalKind};

use crate::app::{bind_target, build_target, shared_context, SignerPool, StartupError};
use crate::metrics::Metrics;
use crate::server;

/// Exit status after a signal-initiated shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Terminate,
    Interrupt,
}

impl StopReason {
    pub fn exit_code(self, exit_zero_on_sigterm: bool) -> u8 {
        match (self, exit_zero_on_sigterm) {
            (_, true) => 0,
            (StopReason::Terminate, false) => 143,
            (StopReason::Interrupt, false) => 130,
        }
    }
}

pub fn load_settings(args: &RunArgs) -> Result<Settings, StartupError> {
    let env: HashMap<String, String> = std::env::vars().collect();
    Ok(rds_iam_config::load(args, &env)?)
}

/// Runs the proxy with resolved settings; returns the process exit code.
pub async fn run(settings: Settings) -> Result<u8, StartupError> {
    let shared = Arc::new(shared_context(&settings, Metrics::new()));
    let mut signers = SignerPool::default();
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
        listeners.extend(bind_target(target, context, &settings).await?);
    }
    let (reason_tx, reason_rx) = tokio::sync::oneshot::channel();
    let shutdown = async move {
        let reason = wait_for_signal().await;
        tracing::info!(?reason, min_delay = %humantime::format_duration(settings.min_sigterm_delay), "shutdown requested");
        let _ = reason_tx.send(reason);
        // A second signal ends the process at once.
        let exit_zero = settings.exit_zero_on_sigterm;
        tokio::spawn(async move {
            let again = wait_for_signal().await;
            tracing::warn!(?again, "second signal: exiting now");
            std::process::exit(i32::from(again.exit_code(exit_zero)));
        });
        tokio::time::sleep(settings.min_sigterm_delay).await;
    };
    let drained = server::run(listeners, shared, shutdown, settings.max_sigterm_delay).await;
    tracing::info!(closed_by_force = drained.closed_by_force, "stopped");
    let reason = reason_rx.await.unwrap_or(StopReason::Terminate);
    Ok(reason.exit_code(settings.exit_zero_on_sigterm))
}

async fn wait_for_signal() -> StopReason {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process can only be killed; never resolve.
        std::future::pending::<()>().await;
        unreachable!()
    };
    tokio::select! {
        _ = term.recv() => StopReason::Terminate,
        _ = int.recv() => StopReason::Interrupt,
    }
}

//! SIGTERM, SIGINT and SIGHUP, all registered before anything else starts: a signal during
//! start-up must stop the process in order (or queue a reload), never kill it.

use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::admin::{Lifecycle, StopReason};

pub(crate) struct Signals {
    term: Signal,
    int: Signal,
    /// Handed to the reloader; a SIGHUP that arrives before it runs waits in the stream.
    pub hangup: Option<Signal>,
}

impl Signals {
    pub fn register() -> Option<Signals> {
        let hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGHUP handler; config reload is off");
                None
            }
        };
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some(Signals { term, int, hangup }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot install signal handlers; stop with /quitquitquit or SIGKILL");
                None
            }
        }
    }

    /// The first stop signal starts an orderly stop; one after any stop request ends at once.
    pub async fn watch_stops(mut self, lifecycle: Arc<Lifecycle>, exit_zero_on_sigterm: bool) {
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

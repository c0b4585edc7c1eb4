//! SIGTERM, SIGINT and SIGHUP, all registered before anything else starts: a signal during
//! start-up must stop the process in order (or queue a reload), never kill it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::admin::{Lifecycle, StopReason};

/// SIGHUP's default action ends the process; until the runtime's handler is in place this one
/// takes it and remembers it, so the reload it asks for happens once the proxy runs.
pub(crate) struct EarlyHangup {
    seen: Arc<AtomicBool>,
    id: Option<signal_hook::SigId>,
}

impl EarlyHangup {
    /// Installs the handler; the first thing `main` does.
    pub fn install() -> EarlyHangup {
        let seen = Arc::new(AtomicBool::new(false));
        let id = signal_hook::flag::register(signal_hook::consts::SIGHUP, seen.clone())
            .map_err(|e| eprintln!("rds-iam-proxy: cannot catch SIGHUP during start-up: {e}"))
            .ok();
        EarlyHangup { seen, id }
    }

    /// Removes the handler (the runtime's now has the signal); true if a SIGHUP came first.
    fn finish(self) -> bool {
        if let Some(id) = self.id {
            signal_hook::low_level::unregister(id);
        }
        self.seen.load(Ordering::SeqCst)
    }
}

pub(crate) struct Signals {
    term: Signal,
    int: Signal,
    /// Handed to the reloader; a SIGHUP that arrives before it runs waits in the stream.
    pub hangup: Option<Signal>,
    /// A SIGHUP came before the runtime's handler was installed: reload once started.
    pub hangup_pending: bool,
}

impl Signals {
    pub fn register(early: EarlyHangup) -> Option<Signals> {
        let hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGHUP handler; config reload is off");
                None
            }
        };
        // Kept when the runtime's handler failed: a SIGHUP is then ignored, never fatal.
        let hangup_pending = hangup.is_some() && early.finish();
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some(Signals {
                term,
                int,
                hangup,
                hangup_pending,
            }),
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

#[cfg(test)]
mod tests {
    use super::*;

    // The only test in this binary that touches SIGHUP: the handlers are process-wide.
    #[tokio::test]
    async fn a_sighup_before_the_runtime_handler_is_queued_not_fatal() {
        let early = EarlyHangup::install();
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
        let signals = Signals::register(early).expect("handlers installed");
        assert!(signals.hangup_pending, "the early SIGHUP was remembered");
        let again = Signals::register(EarlyHangup::install()).unwrap();
        assert!(!again.hangup_pending, "no SIGHUP this time");
    }
}

//! Where the process is in its life, shared by the run loop, the admin endpoints and signal
//! handling: started, accepting, and whether (and why) a stop was asked for.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Why the process is stopping; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    Terminate,
    Interrupt,
    /// `POST /quitquitquit`: an orderly stop asked for by the pod, always exit 0.
    Quit,
}

impl StopReason {
    pub fn exit_code(self, exit_zero_on_sigterm: bool) -> u8 {
        match (self, exit_zero_on_sigterm) {
            (StopReason::Quit, _) | (_, true) => 0,
            (StopReason::Terminate, false) => 143,
            (StopReason::Interrupt, false) => 130,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// Listeners bound and credentials (and forced users' tokens) in hand.
    started: AtomicBool,
    /// Listeners are accepting; false before binding and once a stop has closed them.
    accepting: AtomicBool,
    stop: watch::Sender<Option<StopReason>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            started: AtomicBool::new(false),
            accepting: AtomicBool::new(false),
            stop: watch::channel(None).0,
        }
    }
}

impl Lifecycle {
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    pub fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    pub fn set_accepting(&self, accepting: bool) {
        self.accepting.store(accepting, Ordering::Release);
    }

    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// Asks for a stop. Only the first request counts; returns whether this was it.
    pub fn request_stop(&self, reason: StopReason) -> bool {
        self.stop.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        })
    }

    pub fn stop_requested(&self) -> Option<StopReason> {
        *self.stop.borrow()
    }

    /// Resolves with the reason once a stop has been asked for.
    pub async fn stopped(&self) -> StopReason {
        let mut rx = self.stop.subscribe();
        loop {
            if let Some(reason) = *rx.borrow_and_update() {
                return reason;
            }
            // The sender lives in `self`, which outlives this borrow: changed() cannot fail.
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(StopReason::Terminate.exit_code(false), 143);
        assert_eq!(StopReason::Terminate.exit_code(true), 0);
        assert_eq!(StopReason::Interrupt.exit_code(false), 130);
        assert_eq!(StopReason::Quit.exit_code(false), 0);
    }

    #[tokio::test]
    async fn first_stop_request_wins() {
        let life = Lifecycle::default();
        assert_eq!(life.stop_requested(), None);
        assert!(life.request_stop(StopReason::Quit));
        assert!(!life.request_stop(StopReason::Terminate));
        assert_eq!(life.stopped().await, StopReason::Quit);
    }
}

//! Accept errors (EMFILE when the process is out of file descriptors, ECONNABORTED) come in
//! bursts of thousands a second; the log gets one line a second with the count.

use std::time::{Duration, Instant};

/// At most one "accept failed" line per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Pause after an accept error so the loop does not spin while the condition lasts.
pub(crate) const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
pub(crate) struct AcceptErrors {
    last_logged: Option<Instant>,
    /// Errors since the last line.
    unlogged: u64,
}

impl AcceptErrors {
    /// Records one failed accept on `listen` and logs it if a line is due.
    pub fn failed(&mut self, listen: &str, error: &std::io::Error) {
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|at| now.duration_since(at) < LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            listen,
            error = %error,
            failures = self.unlogged,
            "accept failed; backing off (one line a second at most)"
        );
        self.last_logged = Some(now);
        self.unlogged = 0;
    }

    /// Errors counted since the last line (for tests).
    #[cfg(test)]
    fn pending(&self) -> u64 {
        self.unlogged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_errors_is_one_line_then_counted() {
        let mut errors = AcceptErrors::default();
        let e = std::io::Error::from_raw_os_error(24);
        errors.failed("127.0.0.1:1", &e);
        assert_eq!(errors.pending(), 0, "the first error is logged at once");
        for _ in 0..1000 {
            errors.failed("127.0.0.1:1", &e);
        }
        assert_eq!(errors.pending(), 1000, "the rest wait for the next line");
    }
}

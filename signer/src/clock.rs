//! Wall-clock abstraction: tokens carry wall-clock times (X-Amz-Date, credential expiry), but
//! tests must drive them with tokio's paused clock.

use std::fmt::Debug;
use std::time::SystemTime;

/// Source of "now" for signing and expiry decisions.
pub trait Clock: Send + Sync + Debug + 'static {
    fn now(&self) -> SystemTime;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Wall time that advances with `tokio::time::Instant`, so `tokio::time::pause`/`advance`
/// move it. Anchored at construction.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    wall: SystemTime,
    mono: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `start` now and advancing with tokio's clock.
    pub fn starting_at(start: SystemTime) -> Self {
        Self {
            wall: start,
            mono: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::starting_at(SystemTime::now())
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.wall + self.mono.elapsed()
    }
}

//! New-connection rate limit per target (AWS asks for fewer than 200 new IAM connections a
//! second). A GCRA token bucket: callers beyond the rate wait their turn in arrival order, and
//! one that would wait past its deadline is refused without taking a slot.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How far ahead of the steady rate a burst may run, as a fraction of a second. 100 ms keeps
/// any one-second window under rate × 1.1 + 1.
const BURST_WINDOW: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    /// Theoretical arrival time of the next slot; `None` for no limit.
    next: Option<Mutex<Instant>>,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "new-connection rate limit of {per_second}/s: the queue is longer than the connect timeout"
)]
pub(crate) struct RateLimited {
    pub per_second: u32,
}

impl RateLimiter {
    /// `per_second == 0` disables the limit.
    pub fn new(per_second: u32) -> Self {
        if per_second == 0 {
            return RateLimiter {
                interval: Duration::ZERO,
                next: None,
            };
        }
        RateLimiter {
            interval: Duration::from_secs(1) / per_second,
            next: Some(Mutex::new(Instant::now())),
        }
    }

    fn per_second(&self) -> u32 {
        (Duration::from_secs(1).as_nanos() / self.interval.as_nanos().max(1)) as u32
    }

    /// Waits for a slot, or fails at once if the slot would come after `deadline`.
    pub async fn acquire(&self, deadline: Instant) -> Result<(), RateLimited> {
        let Some(next) = &self.next else {
            return Ok(());
        };
        let start = {
            let mut next = next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            let start = slot.checked_sub(BURST_WINDOW).unwrap_or(now).max(now);
            if start > deadline {
                return Err(RateLimited {
                    per_second: self.per_second(),
                });
            }
            *next = slot + self.interval;
            start
        };
        tokio::time::sleep_until(start).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_bursts_and_refuses_past_deadline() {
        let limiter = RateLimiter::new(100); // 10 ms apart, 100 ms of burst
        let t0 = Instant::now();
        let far = t0 + Duration::from_secs(60);
        // The first 11 go at once (burst window 100 ms / 10 ms + 1).
        for _ in 0..11 {
            limiter.acquire(far).await.unwrap();
        }
        assert_eq!(Instant::now(), t0);
        // The next one waits for its slot.
        limiter.acquire(far).await.unwrap();
        assert_eq!(Instant::now() - t0, Duration::from_millis(10));
        // 200 more at 100/s need ~2 s; with a 1 s deadline most are refused, none wait past it.
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut ok = 0;
        let mut refused = 0;
        for _ in 0..200 {
            match limiter.acquire(deadline).await {
                Ok(()) => ok += 1,
                Err(_) => refused += 1,
            }
            assert!(Instant::now() <= deadline);
        }
        assert_eq!(ok, 100, "slots inside one second plus the burst window");
        assert_eq!(refused, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_unlimited() {
        let limiter = RateLimiter::new(0);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            limiter.acquire(t0).await.unwrap();
        }
        assert_eq!(Instant::now(), t0);
    }
}

//! The background refresher: one task per signer that renews due credentials, re-mints due
//! tokens of confirmed keys and forgets idle and unconfirmed ones once their token lapses, so
//! callers find a valid token in the cache.

use super::inner::{Inner, Mode};
use super::Signer;
use crate::cache::Entry;
use crate::policy;
use crate::token::TokenRequest;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{watch, Notify};

impl Signer {
    /// Starts the background refresher once, from inside the runtime of the first caller.
    pub(super) fn ensure_worker(&self) {
        if self.inner.worker_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let wake = self.inner.wake.clone();
        let shutdown = self.inner.shutdown.subscribe();
        tokio::spawn(background(weak, wake, shutdown));
    }
}

async fn background(weak: Weak<Inner>, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        // Hold the signer only while working, so dropping the last clone ends this task.
        let Some(inner) = weak.upgrade() else { break };
        let sleep = inner.maintain().await;
        drop(inner);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = wake.notified() => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    tracing::debug!("token refresher stopped");
}

impl Inner {
    /// One pass of the background task: renew due credentials, re-mint due tokens of confirmed
    /// keys, forget lapsed idle or unconfirmed keys. Returns how long to sleep.
    async fn maintain(&self) -> Duration {
        let now = self.clock.now();
        let mut next = now + policy::MAX_SLEEP;

        if let Some(held) = self.creds.peek() {
            if !held.fresh(now) {
                if let Err(err) = self.creds.get().await {
                    self.record_error(&err);
                }
            }
            // After a failed renewal this is the back-off's retry time.
            if let Some(at) = self.creds.next_check() {
                next = next.min(at);
            }
        }
        let current_key = self
            .creds
            .peek()
            .map(|h| h.creds.access_key_id().to_string());

        for (req, entry) in self.cache.snapshot() {
            let now = self.clock.now();
            let due = {
                let state = entry.state();
                let valid = state.minted.as_ref().is_some_and(|m| now < m.valid_until);
                let idle = entry.idle_for(now) >= policy::IDLE_AFTER;
                if idle || !entry.confirmed() {
                    // Not kept fresh; forget it once its token lapses. `attempts == 0`: a
                    // caller is about to mint the new key.
                    if !valid && (idle || state.attempts > 0) {
                        drop(state);
                        self.forget(&req, &entry, idle);
                    }
                    continue;
                }
                if let Some(retry_at) = state.retry_at.filter(|at| now < *at) {
                    next = next.min(retry_at);
                    continue;
                }
                match &state.minted {
                    None => state.attempts == 0 || state.failures > 0,
                    Some(m) => {
                        now >= m.refresh_at
                            || current_key.as_deref().is_some_and(|k| k != m.access_key_id)
                    }
                }
            };
            if due {
                // Errors are recorded in the entry and the stats; the retry time is set there.
                let _ = self.mint(&req, &entry, Mode::Background).await;
            }
            let state = entry.state();
            if let Some(at) = state.retry_at {
                next = next.min(at);
            } else if let Some(m) = &state.minted {
                next = next.min(m.refresh_at);
            }
        }

        let now = self.clock.now();
        next.duration_since(now)
            .unwrap_or_default()
            .clamp(policy::MIN_SLEEP, policy::MAX_SLEEP)
    }

    /// Drops a key that is not kept fresh, unless a caller is minting it right now.
    fn forget(&self, req: &TokenRequest, entry: &Arc<Entry>, idle: bool) {
        let Ok(_minting) = entry.mint_lock.try_lock() else {
            return;
        };
        self.cache.remove(req, entry);
        if idle {
            tracing::info!(host = %req.host, port = req.port, user = ?req.user, "dropped idle token key");
        } else {
            // Debug only: unconfirmed keys may be client-chosen names, one per connection.
            tracing::debug!(host = %req.host, port = req.port, user = ?req.user, "dropped unconfirmed token key");
        }
    }
}

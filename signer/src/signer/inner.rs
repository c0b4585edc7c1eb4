//! `Inner`, the state every clone of a [`Signer`](super::Signer) shares: credentials, the
//! token cache, counters, and minting a token for one cache entry under its mint lock.

use crate::cache::{Entry, Minted, TokenCache};
use crate::clock::Clock;
use crate::credentials::{CredentialsCache, Held};
use crate::error::SignerError;
use crate::policy;
use crate::timefmt::rfc3339;
use crate::token::{generate_auth_token, AuthToken, TokenRequest, TOKEN_LIFETIME};
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;
use tokio::sync::{watch, Notify};

pub(super) struct Inner {
    pub(super) clock: Arc<dyn Clock>,
    pub(super) creds: CredentialsCache,
    pub(super) cache: TokenCache,
    pub(super) sdk_config: Option<SdkConfig>,
    pub(super) mints_ok: AtomicU64,
    pub(super) mints_failed: AtomicU64,
    pub(super) last_error: Mutex<Option<(SystemTime, String)>>,
    /// Wakes the background task early (a new key appeared).
    pub(super) wake: Arc<Notify>,
    /// `true` = explicit shutdown; dropping the sender (with `Inner`) also stops the task.
    pub(super) shutdown: watch::Sender<bool>,
    pub(super) worker_started: AtomicBool,
    /// Highest credentials generation a token was minted with.
    creds_generation: AtomicU64,
}

/// Why a mint is being done; decides how the re-check under the mint lock behaves.
#[derive(Clone, Copy)]
pub(super) enum Mode {
    /// A caller found no valid token.
    Miss { attempts_seen: u64 },
    /// The background task found the token due.
    Background,
    /// The database rejected a token: new credentials and a new token.
    Forced { forced_seen: u64, creds_seen: u64 },
}

impl Inner {
    pub(super) fn new(
        provider: SharedCredentialsProvider,
        clock: Arc<dyn Clock>,
        sdk_config: Option<SdkConfig>,
    ) -> Inner {
        let (shutdown, _) = watch::channel(false);
        Inner {
            creds: CredentialsCache::new(provider, clock.clone()),
            clock,
            cache: TokenCache::new(policy::MAX_TOKEN_KEYS),
            sdk_config,
            mints_ok: AtomicU64::new(0),
            mints_failed: AtomicU64::new(0),
            last_error: Mutex::new(None),
            wake: Arc::new(Notify::new()),
            shutdown,
            worker_started: AtomicBool::new(false),
            creds_generation: AtomicU64::new(0),
        }
    }

    pub(super) fn record_error(&self, err: &SignerError) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((self.clock.now(), err.to_string()));
    }

    /// Mints a token for `entry` under its mint lock, unless whoever held the lock before did
    /// the work already; records the outcome in the entry and the counters.
    pub(super) async fn mint(
        &self,
        req: &TokenRequest,
        entry: &Entry,
        mode: Mode,
    ) -> Result<AuthToken, SignerError> {
        let _guard = entry.mint_lock.lock().await;
        let now = self.clock.now();
        // Re-check now that we hold the lock: whoever held it may have done our work.
        if let Some(done) = self.done_meanwhile(entry, mode, now) {
            return done;
        }

        let held = match mode {
            Mode::Forced { creds_seen, .. } => self.creds.refresh(creds_seen).await,
            _ => self.creds.get().await,
        };
        let result = held.and_then(|held| {
            // New credentials: wake the background task so it re-mints the other keys'
            // tokens, which were signed with the old identity.
            if self
                .creds_generation
                .fetch_max(held.generation, Ordering::AcqRel)
                < held.generation
            {
                self.wake.notify_one();
            }
            self.sign(req, &held)
        });
        self.record_mint(req, entry, mode, now, result)
    }

    /// What the mint before ours (we waited for its lock) left that answers `mode`: its
    /// token, or its error for callers that should not retry at once. `None`: mint.
    fn done_meanwhile(
        &self,
        entry: &Entry,
        mode: Mode,
        now: SystemTime,
    ) -> Option<Result<AuthToken, SignerError>> {
        let state = entry.state();
        let current = state.minted.as_ref().filter(|m| now < m.valid_until);
        match mode {
            Mode::Miss { attempts_seen } => {
                if let Some(m) = current {
                    return Some(Ok(m.token.clone()));
                }
                if state.attempts != attempts_seen {
                    if let Some(err) = &state.last_error {
                        return Some(Err(err.clone()));
                    }
                }
            }
            Mode::Background => {
                if let Some(m) = current {
                    let same_identity = self
                        .creds
                        .peek()
                        .is_none_or(|h| h.creds.access_key_id() == m.access_key_id);
                    if now < m.refresh_at && same_identity {
                        return Some(Ok(m.token.clone()));
                    }
                }
                // A caller's attempt failed while we waited: respect its back-off.
                if state.retry_at.is_some_and(|at| now < at) {
                    if let Some(err) = &state.last_error {
                        return Some(Err(err.clone()));
                    }
                }
            }
            Mode::Forced { forced_seen, .. } => {
                if state.forced != forced_seen {
                    if let Some(m) = current {
                        return Some(Ok(m.token.clone()));
                    }
                }
            }
        }
        None
    }

    /// Stores a finished mint attempt (begun at `now`) in `entry` and the counters, and logs it.
    fn record_mint(
        &self,
        req: &TokenRequest,
        entry: &Entry,
        mode: Mode,
        now: SystemTime,
        result: Result<Minted, SignerError>,
    ) -> Result<AuthToken, SignerError> {
        let mut state = entry.state();
        state.attempts += 1;
        match result {
            Ok(minted) => {
                let token = minted.token.clone();
                tracing::info!(
                    host = %req.host,
                    port = req.port,
                    user = ?req.user,
                    region = %req.region,
                    expires_at = %rfc3339(minted.valid_until),
                    refresh_at = %rfc3339(minted.refresh_at),
                    forced = matches!(mode, Mode::Forced { .. }),
                    "minted RDS IAM auth token"
                );
                state.minted = Some(minted);
                state.last_error = None;
                state.failures = 0;
                state.retry_at = None;
                if matches!(mode, Mode::Forced { .. }) {
                    state.forced += 1;
                }
                self.mints_ok.fetch_add(1, Ordering::Relaxed);
                Ok(token)
            }
            Err(err) => {
                state.last_error = Some(err.clone());
                state.failures = state.failures.saturating_add(1);
                state.retry_at = Some(now + policy::retry_delay(state.failures));
                drop(state);
                self.mints_failed.fetch_add(1, Ordering::Relaxed);
                self.record_error(&err);
                tracing::warn!(
                    host = %req.host,
                    port = req.port,
                    user = ?req.user,
                    error = %err,
                    "minting RDS IAM auth token failed"
                );
                Err(err)
            }
        }
    }

    fn sign(&self, req: &TokenRequest, held: &Held) -> Result<Minted, SignerError> {
        let now = self.clock.now();
        let times =
            policy::token_times(now, held.creds.expiry(), TOKEN_LIFETIME).ok_or_else(|| {
                SignerError::CredentialsExpired {
                    detail: format!(
                        "the credentials expire at {}",
                        held.creds.expiry().map(rfc3339).unwrap_or_default()
                    ),
                }
            })?;
        let token = generate_auth_token(&held.creds, req, now)?;
        Ok(Minted {
            token,
            signed_at: now,
            valid_until: times.valid_until,
            refresh_at: times.refresh_at,
            access_key_id: held.creds.access_key_id().to_string(),
        })
    }
}

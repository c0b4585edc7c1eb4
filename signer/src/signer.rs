//! `Signer`: one credentials source, a token cache, and a background task that keeps every
//! recently used token fresh so the connection path never waits for STS or signing.

use crate::cache::{Entry, Minted, TokenCache};
use crate::clock::{Clock, SystemClock};
use crate::credentials::{self, CredentialOptions, CredentialsCache, Held};
use crate::error::SignerError;
use crate::policy;
use crate::timefmt::rfc3339;
use crate::token::{generate_auth_token, AuthToken, TokenRequest, TOKEN_LIFETIME};
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Notify};

/// Mints and caches IAM auth tokens. Cheap to clone; the background refresher stops when the
/// last clone is dropped or [`Signer::shutdown`] is called.
#[derive(Clone)]
pub struct Signer {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    creds: CredentialsCache,
    cache: TokenCache,
    sdk_config: Option<SdkConfig>,
    mints_ok: AtomicU64,
    mints_failed: AtomicU64,
    last_error: Mutex<Option<(SystemTime, String)>>,
    /// Wakes the background task early (a new key appeared).
    wake: Arc<Notify>,
    /// `true` = explicit shutdown; dropping the sender (with `Inner`) also stops the task.
    shutdown: watch::Sender<bool>,
    worker_started: AtomicBool,
    /// Highest credentials generation a token was minted with.
    creds_generation: AtomicU64,
}

/// A point-in-time view for health checks and metrics. Holds no secrets.
#[derive(Debug, Clone)]
pub struct SignerStatus {
    /// Whether credentials have been fetched at least once.
    pub credentials_loaded: bool,
    /// Expiry of the credentials held (`None`: none held, or they never expire).
    pub credentials_expiry: Option<SystemTime>,
    /// Every cached token, with when it stops being served.
    pub tokens: Vec<TokenStatus>,
    /// The soonest `expires_at` among `tokens`.
    pub earliest_token_expiry: Option<SystemTime>,
    pub mints_ok: u64,
    pub mints_failed: u64,
    pub credential_fetches_ok: u64,
    pub credential_fetches_failed: u64,
    /// Message of the most recent failure (mint or credentials), and when.
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    /// A currently valid token or unexpired credentials are held.
    pub can_mint: bool,
}

impl SignerStatus {
    /// Same as `can_mint`: what readiness should report.
    pub fn healthy(&self) -> bool {
        self.can_mint
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub region: String,
    pub signed_at: SystemTime,
    /// When the cache stops handing it out (before its real end, see `policy`).
    pub expires_at: SystemTime,
    /// When the background task re-mints it.
    pub refresh_at: SystemTime,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

/// Why a mint is being done; decides how the re-check under the mint lock behaves.
#[derive(Clone, Copy)]
enum Mode {
    /// A caller found no valid token.
    Miss { attempts_seen: u64 },
    /// The background task found the token due.
    Background,
    /// The database rejected a token: new credentials and a new token.
    Forced { forced_seen: u64, creds_seen: u64 },
}

impl Signer {
    /// Builds the AWS default credentials chain (with `profile` and `role_arn` applied). Does
    /// not fetch credentials: a missing source shows up on the first `token()`.
    pub async fn from_aws_config(opts: CredentialOptions) -> Result<Signer, SignerError> {
        let (sdk, provider) = credentials::load(&opts).await?;
        Ok(Self::build(provider, Arc::new(SystemClock), Some(sdk)))
    }

    /// A signer over any credentials provider and clock (tests, custom sources).
    pub fn from_provider(provider: SharedCredentialsProvider, clock: impl Clock) -> Signer {
        Self::build(provider, Arc::new(clock), None)
    }

    fn build(
        provider: SharedCredentialsProvider,
        clock: Arc<dyn Clock>,
        sdk_config: Option<SdkConfig>,
    ) -> Signer {
        let (shutdown, _) = watch::channel(false);
        Signer {
            inner: Arc::new(Inner {
                creds: CredentialsCache::new(provider, clock.clone()),
                clock,
                cache: TokenCache::default(),
                sdk_config,
                mints_ok: AtomicU64::new(0),
                mints_failed: AtomicU64::new(0),
                last_error: Mutex::new(None),
                wake: Arc::new(Notify::new()),
                shutdown,
                worker_started: AtomicBool::new(false),
                creds_generation: AtomicU64::new(0),
            }),
        }
    }

    /// The region of the AWS config (env `AWS_REGION`, profile, `CredentialOptions::region`).
    pub async fn default_region(&self) -> Option<String> {
        self.inner
            .sdk_config
            .as_ref()
            .and_then(|c| c.region())
            .map(|r| r.as_ref().to_string())
    }

    /// The credentials tokens are signed with (cached; fetched if due), for other AWS calls
    /// such as STS GetCallerIdentity in `rds-iam-proxy check`.
    pub async fn credentials(&self) -> Result<aws_credential_types::Credentials, SignerError> {
        Ok(self.inner.creds.get().await?.creds)
    }

    /// A valid token for `req`: from the cache when there is one (no waiting), else minted
    /// now. Concurrent callers for the same key share one mint.
    pub async fn token(&self, req: &TokenRequest) -> Result<AuthToken, SignerError> {
        let now = self.inner.clock.now();
        if let Some(token) = self.inner.cache.lookup(req, now) {
            return Ok(token);
        }
        self.ensure_worker();
        let (entry, created) = self.inner.cache.entry(req, now);
        if created {
            self.inner.wake.notify_one();
        }
        let attempts_seen = entry.state().attempts;
        self.inner
            .mint(req, &entry, Mode::Miss { attempts_seen })
            .await
    }

    /// Fresh credentials and a fresh token, for when the database rejected the cached one.
    /// Concurrent forced refreshes of one key share one mint; of different keys, one fetch.
    pub async fn refresh_token(&self, req: &TokenRequest) -> Result<AuthToken, SignerError> {
        self.ensure_worker();
        let now = self.inner.clock.now();
        let creds_seen = self.inner.creds.generation();
        let (entry, created) = self.inner.cache.entry(req, now);
        if created {
            self.inner.wake.notify_one();
        }
        let forced_seen = entry.state().forced;
        self.inner
            .mint(
                req,
                &entry,
                Mode::Forced {
                    forced_seen,
                    creds_seen,
                },
            )
            .await
    }

    /// Fetches credentials unless fresh ones are held, and starts the background refresher so
    /// they stay fresh. Lets a caller check readiness before any token is asked for; returns
    /// the credentials' expiry (`None`: they never expire).
    pub async fn load_credentials(&self) -> Result<Option<SystemTime>, SignerError> {
        self.ensure_worker();
        match self.inner.creds.get().await {
            Ok(held) => Ok(held.creds.expiry()),
            Err(err) => {
                self.inner.record_error(&err);
                Err(err)
            }
        }
    }

    /// Whether `other` is a clone of this signer (same credentials, cache and counters).
    pub fn same_as(&self, other: &Signer) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Stops the background refresher. Tokens are still minted on demand afterwards.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    pub fn status(&self) -> SignerStatus {
        let inner = &self.inner;
        let now = inner.clock.now();
        let held = inner.creds.peek();
        let mut tokens: Vec<TokenStatus> = inner
            .cache
            .snapshot()
            .into_iter()
            .filter_map(|(req, entry)| {
                let state = entry.state();
                let m = state.minted.as_ref()?;
                Some(TokenStatus {
                    host: req.host,
                    port: req.port,
                    user: req.user,
                    region: req.region,
                    signed_at: m.signed_at,
                    expires_at: m.valid_until,
                    refresh_at: m.refresh_at,
                })
            })
            .collect();
        tokens.sort_by(|a, b| {
            (&a.host, a.port, &a.user, &a.region).cmp(&(&b.host, b.port, &b.user, &b.region))
        });
        let earliest_token_expiry = tokens.iter().map(|t| t.expires_at).min();
        let token_valid = tokens.iter().any(|t| now < t.expires_at);
        let creds_valid = held.as_ref().is_some_and(|h| h.usable(now));
        let last_error = inner
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        SignerStatus {
            credentials_loaded: held.is_some(),
            credentials_expiry: held.as_ref().and_then(|h| h.creds.expiry()),
            tokens,
            earliest_token_expiry,
            mints_ok: inner.mints_ok.load(Ordering::Relaxed),
            mints_failed: inner.mints_failed.load(Ordering::Relaxed),
            credential_fetches_ok: inner.creds.fetches_ok.load(Ordering::Relaxed),
            credential_fetches_failed: inner.creds.fetches_failed.load(Ordering::Relaxed),
            last_error_at: last_error.as_ref().map(|(at, _)| *at),
            last_error: last_error.map(|(_, msg)| msg),
            can_mint: token_valid || creds_valid,
        }
    }

    /// Starts the background refresher once, from inside the runtime of the first caller.
    fn ensure_worker(&self) {
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
    fn record_error(&self, err: &SignerError) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((self.clock.now(), err.to_string()));
    }

    /// One pass of the background task: renew due credentials, re-mint due tokens, forget idle
    /// keys. Returns how long to sleep.
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
                if entry.idle_for(now) >= policy::IDLE_AFTER {
                    if !valid {
                        drop(state);
                        self.cache.remove(&req, &entry);
                        tracing::info!(host = %req.host, port = req.port, user = %req.user, "dropped idle token key");
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

    async fn mint(
        &self,
        req: &TokenRequest,
        entry: &Entry,
        mode: Mode,
    ) -> Result<AuthToken, SignerError> {
        let _guard = entry.mint_lock.lock().await;
        let now = self.clock.now();
        // Re-check now that we hold the lock: whoever held it may have done our work.
        {
            let state = entry.state();
            let current = state.minted.as_ref().filter(|m| now < m.valid_until);
            match mode {
                Mode::Miss { attempts_seen } => {
                    if let Some(m) = current {
                        return Ok(m.token.clone());
                    }
                    if state.attempts != attempts_seen {
                        if let Some(err) = &state.last_error {
                            return Err(err.clone());
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
                            return Ok(m.token.clone());
                        }
                    }
                    // A caller's attempt failed while we waited: respect its back-off.
                    if state.retry_at.is_some_and(|at| now < at) {
                        if let Some(err) = &state.last_error {
                            return Err(err.clone());
                        }
                    }
                }
                Mode::Forced { forced_seen, .. } => {
                    if state.forced != forced_seen {
                        if let Some(m) = current {
                            return Ok(m.token.clone());
                        }
                    }
                }
            }
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
        let mut state = entry.state();
        state.attempts += 1;
        match result {
            Ok(minted) => {
                let token = minted.token.clone();
                tracing::info!(
                    host = %req.host,
                    port = req.port,
                    user = %req.user,
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
                    user = %req.user,
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

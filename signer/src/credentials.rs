//! AWS credentials: building the default chain (plus profile / assume-role), and a cache in
//! front of it. The provider in `SdkConfig` is not cached, and every call may hit STS, IMDS or
//! a container endpoint, so the signer only goes there when credentials near expiry or a
//! caller forces it.

use crate::clock::Clock;
use crate::error::SignerError;
use crate::policy;
use crate::timefmt::rfc3339;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Session name shown in CloudTrail for assumed roles.
const SESSION_NAME: &str = "rds-iam-proxy";
/// STS needs a region; this one has the global endpoint when nothing else names one.
const FALLBACK_STS_REGION: &str = "us-east-1";
/// Upper bound on one provider call (credential_process or a hung endpoint must not wedge us).
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// How to find credentials. `Default` = the plain AWS default chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialOptions {
    /// AWS profile name (else `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// Assume this role (STS AssumeRole) with the chain's credentials.
    pub role_arn: Option<String>,
    /// Region for the AWS config (STS calls, `default_region`); else env/profile.
    pub region: Option<String>,
}

/// Loads the AWS config and the credentials provider it implies. Touches no network: the
/// chain only looks for credentials when first asked.
pub(crate) async fn load(
    opts: &CredentialOptions,
) -> Result<(SdkConfig, SharedCredentialsProvider), SignerError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &opts.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &opts.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let sdk = loader.load().await;
    let base = sdk
        .credentials_provider()
        .ok_or_else(|| SignerError::NoCredentials {
            detail: "the AWS config has no credentials provider".into(),
        })?;
    let provider = match &opts.role_arn {
        None => base,
        Some(arn) => {
            let mut builder = AssumeRoleProvider::builder(arn.clone())
                .session_name(SESSION_NAME)
                .configure(&sdk);
            if sdk.region().is_none() {
                builder = builder.region(Region::from_static(FALLBACK_STS_REGION));
            }
            SharedCredentialsProvider::new(builder.build().await)
        }
    };
    Ok((sdk, provider))
}

/// Credentials plus when we got them and when to renew them.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub creds: Credentials,
    pub refresh_at: Option<SystemTime>,
    /// Bumped by every successful fetch; lets waiters see that someone else fetched.
    pub generation: u64,
}

impl Held {
    pub fn fresh(&self, now: SystemTime) -> bool {
        self.refresh_at.is_none_or(|at| now < at)
    }

    pub fn usable(&self, now: SystemTime) -> bool {
        self.creds.expiry().is_none_or(|exp| now < exp)
    }
}

#[derive(Default)]
struct State {
    held: Option<Held>,
    /// Count of finished fetch attempts and the error of the last one, so callers that queued
    /// behind a failing fetch share its result instead of retrying one after another.
    attempts: u64,
    last_error: Option<SignerError>,
    /// Consecutive failed renewals, and when the next may be tried while old credentials
    /// still work (so a failing STS is not hit on every pass).
    failures: u32,
    retry_at: Option<SystemTime>,
    /// When the last fetch failed: with nothing usable held, that error is repeated for
    /// `policy::NEGATIVE_TTL` instead of asking the provider again for every connection.
    failed_at: Option<SystemTime>,
}

pub(crate) struct CredentialsCache {
    provider: SharedCredentialsProvider,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    fetch_lock: tokio::sync::Mutex<()>,
    pub fetches_ok: AtomicU64,
    pub fetches_failed: AtomicU64,
}

impl CredentialsCache {
    pub fn new(provider: SharedCredentialsProvider, clock: Arc<dyn Clock>) -> Self {
        Self {
            provider,
            clock,
            state: Mutex::new(State::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
            fetches_ok: AtomicU64::new(0),
            fetches_failed: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn peek(&self) -> Option<Held> {
        self.lock().held.clone()
    }

    pub fn generation(&self) -> u64 {
        self.lock().held.as_ref().map_or(0, |h| h.generation)
    }

    /// When the background task should next look at the credentials.
    pub fn next_check(&self) -> Option<SystemTime> {
        let state = self.lock();
        let held = state.held.as_ref()?;
        match state.retry_at {
            Some(at) if !held.fresh(self.clock.now()) => Some(at),
            _ => held.refresh_at,
        }
    }

    /// An answer without asking the provider: credentials that are fresh, or due but still
    /// valid while a failed renewal backs off; or a very recent failure when nothing is usable.
    fn cached(state: &State, now: SystemTime) -> Option<Result<Held, SignerError>> {
        if let Some(held) = &state.held {
            let backing_off = state.retry_at.is_some_and(|at| now < at) && held.usable(now);
            if held.fresh(now) || backing_off {
                return Some(Ok(held.clone()));
            }
        }
        let recent_failure = state
            .failed_at
            .is_some_and(|at| now < at + policy::NEGATIVE_TTL);
        match &state.last_error {
            Some(err) if recent_failure && !state.held.as_ref().is_some_and(|h| h.usable(now)) => {
                Some(Err(err.clone()))
            }
            _ => None,
        }
    }

    /// Credentials that are not yet due for renewal, fetching if needed. When a fetch fails but
    /// the old credentials have not expired, those are returned (a failed renewal must not
    /// take down a working signer).
    pub async fn get(&self) -> Result<Held, SignerError> {
        let attempts_before = {
            let state = self.lock();
            if let Some(answer) = Self::cached(&state, self.clock.now()) {
                return answer;
            }
            state.attempts
        };
        let _guard = self.fetch_lock.lock().await;
        let now = self.clock.now();
        {
            let state = self.lock();
            if let Some(answer) = Self::cached(&state, now) {
                return answer;
            }
            if state.attempts != attempts_before {
                if let Some(err) = &state.last_error {
                    return Self::fallback(state.held.as_ref(), now, err.clone());
                }
            }
        }
        match self.fetch_locked().await {
            Ok(held) => Ok(held),
            Err(err) => Self::fallback(self.lock().held.as_ref(), now, err),
        }
    }

    fn fallback(
        held: Option<&Held>,
        now: SystemTime,
        err: SignerError,
    ) -> Result<Held, SignerError> {
        match held {
            Some(held) if held.usable(now) => {
                tracing::warn!(error = %err, "renewing AWS credentials failed; using the current ones until they expire");
                Ok(held.clone())
            }
            _ => Err(err),
        }
    }

    /// Fetches new credentials unless someone else already did after generation `seen`.
    pub async fn refresh(&self, seen: u64) -> Result<Held, SignerError> {
        let _guard = self.fetch_lock.lock().await;
        if let Some(held) = self.peek() {
            if held.generation > seen {
                return Ok(held);
            }
        }
        self.fetch_locked().await
    }

    /// One provider call. Caller holds `fetch_lock`.
    async fn fetch_locked(&self) -> Result<Held, SignerError> {
        let result = match tokio::time::timeout(FETCH_TIMEOUT, self.provider.provide_credentials())
            .await
        {
            Ok(Ok(creds)) => self.accept(creds),
            Ok(Err(err)) => Err(SignerError::from_credentials_error(&err)),
            Err(_) => Err(SignerError::Credentials {
                detail: format!("the credentials provider did not answer within {FETCH_TIMEOUT:?}"),
            }),
        };
        let mut state = self.lock();
        state.attempts += 1;
        match &result {
            Ok(held) => {
                state.held = Some(held.clone());
                state.last_error = None;
                state.failures = 0;
                state.retry_at = None;
                state.failed_at = None;
                self.fetches_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                state.last_error = Some(err.clone());
                state.failures = state.failures.saturating_add(1);
                let now = self.clock.now();
                state.retry_at = Some(now + policy::retry_delay(state.failures));
                state.failed_at = Some(now);
                self.fetches_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %err, "fetching AWS credentials failed");
            }
        }
        result
    }

    fn accept(&self, creds: Credentials) -> Result<Held, SignerError> {
        let now = self.clock.now();
        if let Some(exp) = creds.expiry() {
            if exp <= now {
                return Err(SignerError::CredentialsExpired {
                    detail: format!(
                        "the provider returned credentials that expired at {}",
                        rfc3339(exp)
                    ),
                });
            }
        }
        let refresh_at = policy::credentials_refresh_at(now, creds.expiry());
        let generation = self.generation() + 1;
        match creds.expiry() {
            Some(exp) => tracing::info!(
                expires_at = %rfc3339(exp),
                refresh_at = %refresh_at.map(rfc3339).unwrap_or_default(),
                "AWS credentials refreshed"
            ),
            None => tracing::info!("AWS credentials loaded (no expiry)"),
        }
        Ok(Held {
            creds,
            refresh_at,
            generation,
        })
    }
}

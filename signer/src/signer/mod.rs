//! `Signer`: one credentials source, a bounded token cache, and a background task that keeps
//! every recently used, confirmed token fresh so the connection path never waits for STS or
//! signing.
//!
//! The handle and its public methods are here; the shared state and minting in `inner`, the
//! background refresher in `refresh`, the health view in `status`.

mod inner;
mod refresh;
mod status;

pub use status::{SignerStatus, TokenStatus};

use crate::clock::{Clock, SystemClock};
use crate::credentials::{self, CredentialOptions};
use crate::error::SignerError;
use crate::token::{AuthToken, TokenRequest};
use aws_credential_types::provider::SharedCredentialsProvider;
use inner::{Inner, Mode};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// Mints and caches IAM auth tokens. Cheap to clone; the background refresher stops when the
/// last clone is dropped or [`Signer::shutdown`] is called.
#[derive(Clone)]
pub struct Signer {
    inner: Arc<Inner>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Builds the AWS default credentials chain (with `profile` and `role_arn` applied). Does
    /// not fetch credentials: a missing source shows up on the first `token()`.
    pub async fn from_aws_config(opts: CredentialOptions) -> Result<Signer, SignerError> {
        let (sdk, provider) = credentials::load(&opts).await?;
        Ok(Signer {
            inner: Arc::new(Inner::new(provider, Arc::new(SystemClock), Some(sdk))),
        })
    }

    /// A signer over any credentials provider and clock (tests, custom sources).
    pub fn from_provider(provider: SharedCredentialsProvider, clock: impl Clock) -> Signer {
        Signer {
            inner: Arc::new(Inner::new(provider, Arc::new(clock), None)),
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
        // No wake for a new key: the background task has nothing to do for it until confirmed.
        let (entry, _) = self.inner.cache.entry(req, now);
        let attempts_seen = entry.state().attempts;
        self.inner
            .mint(req, &entry, Mode::Miss { attempts_seen })
            .await
    }

    /// Fresh credentials and a fresh token, for when the database rejected the cached one.
    /// Concurrent forced refreshes of one key share one mint; of different keys, one fetch.
    /// Withdraws the key's confirmation: call [`Signer::confirm`] again once the new token is
    /// accepted.
    pub async fn refresh_token(&self, req: &TokenRequest) -> Result<AuthToken, SignerError> {
        self.ensure_worker();
        let now = self.inner.clock.now();
        let creds_seen = self.inner.creds.generation();
        let (entry, _) = self.inner.cache.entry(req, now);
        // The database rejected this key's token: stop refreshing it until one is accepted.
        entry.set_confirmed(false);
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

    /// Records that the database accepted a token for `req` (call it after authentication
    /// succeeded). From then on the background task re-mints this key's token before it
    /// expires, so its connections never wait for signing. Keys never confirmed, e.g. user
    /// names that do not exist, are only minted on demand and dropped once their token lapses.
    /// No-op when `req` is not cached (evicted meanwhile); cheap, no allocation.
    pub fn confirm(&self, req: &TokenRequest) {
        if self.inner.cache.confirm(req) {
            // Let the background task schedule this key's re-mint.
            self.inner.wake.notify_one();
        }
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
}

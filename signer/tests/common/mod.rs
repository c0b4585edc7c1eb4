//! The fixture of the cache tests: a counting fake credentials provider on tokio's paused
//! clock, and readers of the token's query parameters.

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use rds_iam_signer::{AuthToken, Clock, Signer, SignerError, TokenRequest, TokioClock};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;

/// 2030-01-01T00:00:00Z: a fixed start keeps X-Amz-Date deterministic.
pub const START: Duration = Duration::from_secs(1_893_456_000);

#[derive(Debug, Clone)]
pub struct Fake {
    /// Fetches so far; held only by the fake and its clones.
    pub calls: Arc<AtomicUsize>,
    /// Fail every fetch from now on.
    pub fail: Arc<AtomicBool>,
    lifetime: Option<Duration>,
    latency: Duration,
    clock: TokioClock,
}

impl Fake {
    pub fn new(clock: TokioClock, lifetime: Option<Duration>) -> Self {
        Self {
            calls: Arc::default(),
            fail: Arc::default(),
            lifetime,
            latency: Duration::from_millis(50),
            clock,
        }
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl ProvideCredentials for Fake {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let expiry = self.lifetime.map(|l| self.clock.now() + l);
            // Latency makes the concurrency tests meaningful: callers pile up meanwhile.
            tokio::time::sleep(self.latency).await;
            if self.fail.load(Ordering::SeqCst) {
                return Err(CredentialsError::not_loaded(
                    "no providers in chain provided credentials",
                ));
            }
            Ok(Credentials::new(
                format!("AKIDFAKE{n:04}"),
                format!("fakeSecretKey{n:04}xyz"),
                Some(format!("fakeSessionToken{n:04}abc")),
                expiry,
                "fake",
            ))
        })
    }
}

pub fn setup(lifetime: Option<Duration>) -> (Signer, Fake, TokioClock) {
    let clock = TokioClock::starting_at(SystemTime::UNIX_EPOCH + START);
    let fake = Fake::new(clock, lifetime);
    let signer = Signer::from_provider(SharedCredentialsProvider::new(fake.clone()), clock);
    (signer, fake, clock)
}

pub fn req(user: &str) -> TokenRequest {
    TokenRequest::new(
        "db.cluster-abc.us-east-1.rds.amazonaws.com",
        5432,
        user,
        "us-east-1",
    )
}

pub fn key_id(token: &str) -> &str {
    let cred = token.split("X-Amz-Credential=").nth(1).unwrap();
    cred.split("%2F").next().unwrap()
}

pub fn amz_date(token: &str) -> &str {
    let d = token.split("X-Amz-Date=").nth(1).unwrap();
    d.split('&').next().unwrap()
}

/// Let paused time pass; the background task's timers fire on the way.
pub async fn pass(d: Duration) {
    tokio::time::sleep(d).await;
}

pub const S: fn(u64) -> Duration = Duration::from_secs;

/// `n` concurrent calls of `call`, each on its own clone of `signer`; their results.
pub async fn concurrently<F, Fut>(
    signer: &Signer,
    n: usize,
    call: F,
) -> Vec<Result<AuthToken, SignerError>>
where
    F: Fn(Signer) -> Fut,
    Fut: Future<Output = Result<AuthToken, SignerError>> + Send + 'static,
{
    let mut set = JoinSet::new();
    for _ in 0..n {
        set.spawn(call(signer.clone()));
    }
    set.join_all().await
}

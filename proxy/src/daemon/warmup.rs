//! Start-up work done in the background while the listeners already accept: load AWS
//! credentials for every signer and mint each forced user's first token, retrying until they
//! succeed. `/startup` and systemd's READY=1 wait for it.

use std::sync::Arc;
use std::time::Duration;

use crate::targets::{group_by_signer, TargetContext};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Returns once every signer has credentials and every forced user a token.
pub(crate) async fn warm_up(targets: &[Arc<TargetContext>]) {
    let signers = group_by_signer(targets.iter().map(|t| (t.signer.clone(), t.name.as_str())));
    for (signer, names) in signers {
        let what = format!("AWS credentials for {}", names.join(", "));
        retry(&what, || signer.load_credentials()).await;
    }
    for t in targets {
        if let Some(user) = &t.forced_user {
            let request = t.token_request(user);
            let what = format!("the first token for target {} user {user}", t.name);
            retry(&what, || t.signer.token(&request)).await;
            // The operator named this user, not a client: keep its token fresh from now on.
            t.signer.confirm(&request);
        }
    }
}

async fn retry<T, E, F>(what: &str, mut attempt: impl FnMut() -> F)
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut delay = FIRST_RETRY;
    loop {
        match attempt().await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = %humantime::format_duration(delay), "start-up: cannot get {what} yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}

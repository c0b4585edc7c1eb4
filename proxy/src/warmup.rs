//! Start-up work done in the background while the listeners already accept: load AWS
//! credentials for every signer and mint each forced user's first token, retrying until they
//! succeed. `/startup` and systemd's READY=1 wait for it.

use std::sync::Arc;
use std::time::Duration;

use rds_iam_signer::Signer;

use crate::context::TargetContext;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Returns once every signer has credentials and every forced user a token.
pub async fn warm_up(targets: &[Arc<TargetContext>]) {
    let mut signers: Vec<(&Signer, Vec<&str>)> = Vec::new();
    for t in targets {
        match signers.iter_mut().find(|(s, _)| s.same_as(&t.signer)) {
            Some((_, names)) => names.push(&t.name),
            None => signers.push((&t.signer, vec![&t.name])),
        }
    }
    for (signer, names) in signers {
        let what = format!("AWS credentials for {}", names.join(", "));
        retry(&what, || signer.load_credentials()).await;
    }
    for t in targets {
        if let Some(user) = &t.forced_user {
            let request = t.token_request(user);
            let what = format!("the first token for target {} user {user}", t.name);
            retry(&what, || t.signer.token(&request)).await;
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

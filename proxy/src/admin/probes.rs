//! What `/startup`, `/liveness` and `/readiness` answer, as plain functions of the process
//! state so they can be checked without HTTP.

use super::lifecycle::Lifecycle;
use crate::metrics::{ClusterHealth, SignerWatch};

/// A probe's verdict and a one-line explanation for whoever reads it with curl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verdict {
    pub ok: bool,
    pub detail: String,
}

impl Verdict {
    fn ok(detail: impl Into<String>) -> Self {
        Verdict {
            ok: true,
            detail: detail.into(),
        }
    }

    fn failing(detail: impl Into<String>) -> Self {
        Verdict {
            ok: false,
            detail: detail.into(),
        }
    }
}

/// Started: listeners bound, AWS credentials loaded for every target, and a token minted for
/// every target with a forced user (targets whose clients name the user cannot have one yet).
pub(super) fn startup(lifecycle: &Lifecycle) -> Verdict {
    if lifecycle.started() {
        Verdict::ok("started")
    } else {
        Verdict::failing(
            "starting: waiting for AWS credentials (and forced users' first tokens); see the log",
        )
    }
}

/// Alive while the process can answer at all.
pub(super) fn liveness() -> Verdict {
    Verdict::ok("alive")
}

/// Ready while the listeners accept, every target's signer holds a valid token or
/// unexpired credentials, and no followed Aurora cluster has every instance down.
pub(super) fn readiness(
    lifecycle: &Lifecycle,
    signers: &SignerWatch,
    clusters: &ClusterHealth,
) -> Verdict {
    if !lifecycle.accepting() {
        return Verdict::failing(if lifecycle.stop_requested().is_some() {
            "shutting down: no longer accepting connections"
        } else {
            "not accepting connections yet"
        });
    }
    let mut problems: Vec<String> = signers
        .reports()
        .into_iter()
        .filter(|r| !r.status.can_mint)
        .map(|r| {
            let why = r.status.last_error.unwrap_or_else(|| {
                if r.status.credentials_loaded {
                    "the AWS credentials have expired".into()
                } else {
                    "no AWS credentials loaded yet".into()
                }
            });
            format!("cannot mint tokens for {}: {why}", r.targets.join(", "))
        })
        .collect();
    problems.extend(clusters.problems());
    if problems.is_empty() {
        Verdict::ok("ready")
    } else {
        Verdict::failing(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::super::lifecycle::StopReason;
    use super::*;

    #[test]
    fn readiness_follows_accepting_and_the_stop() {
        let life = Lifecycle::default();
        let signers = SignerWatch::default();
        assert!(
            !readiness(&life, &signers, &ClusterHealth::default()).ok,
            "not before the listeners are bound"
        );
        life.set_accepting(true);
        assert_eq!(
            readiness(&life, &signers, &ClusterHealth::default()),
            Verdict::ok("ready")
        );
        life.request_stop(StopReason::Terminate);
        assert!(
            readiness(&life, &signers, &ClusterHealth::default()).ok,
            "still accepting in the min delay"
        );
        life.set_accepting(false);
        let verdict = readiness(&life, &signers, &ClusterHealth::default());
        assert!(!verdict.ok);
        assert!(verdict.detail.contains("shutting down"), "{verdict:?}");
    }

    #[test]
    fn startup_waits_for_the_warm_up() {
        let life = Lifecycle::default();
        assert!(!startup(&life).ok);
        life.set_started();
        assert!(startup(&life).ok);
        assert!(liveness().ok);
    }
}

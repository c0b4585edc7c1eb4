//! Signer figures read at scrape time: token and credential expiry, mint and fetch counts.
//! Reading `Signer::status()` on demand keeps one source of truth and no refresh task.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use rds_iam_signer::{Signer, SignerStatus};

use crate::targets::{group_by_signer, TargetContext};

/// One signer's status and the targets that share it.
#[derive(Debug, Clone)]
pub(crate) struct SignerReport {
    pub targets: Vec<String>,
    pub status: SignerStatus,
}

/// The targets being served; replaced as a whole at start-up (and on reload).
#[derive(Debug, Clone, Default)]
pub(crate) struct SignerWatch {
    targets: Arc<RwLock<Vec<Arc<TargetContext>>>>,
}

impl SignerWatch {
    pub fn set(&self, targets: Vec<Arc<TargetContext>>) {
        *self.targets.write().unwrap_or_else(PoisonError::into_inner) = targets;
    }

    fn targets(&self) -> Vec<Arc<TargetContext>> {
        self.targets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every distinct signer once (targets may share one), with its current status.
    pub fn reports(&self) -> Vec<SignerReport> {
        let targets = self.targets();
        group_by_signer(targets.iter().map(|t| (t.signer.clone(), t.name.clone())))
            .into_iter()
            .map(|(signer, targets)| SignerReport {
                targets,
                status: signer.status(),
            })
            .collect()
    }
}

/// Seconds from `now` to `t`; negative once `t` has passed.
fn seconds_until(t: SystemTime, now: SystemTime) -> f64 {
    match t.duration_since(now) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

impl Collector for SignerWatch {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = SystemTime::now();
        let targets = self.targets();
        let statuses: Vec<(Signer, SignerStatus)> =
            group_by_signer(targets.iter().map(|t| (t.signer.clone(), ())))
                .into_iter()
                .map(|(signer, _)| {
                    let status = signer.status();
                    (signer, status)
                })
                .collect();
        let status_of = |signer: &Signer| {
            statuses
                .iter()
                .find(|(s, _)| s.same_as(signer))
                .map(|(_, st)| st)
        };

        let sum = |f: fn(&SignerStatus) -> u64| statuses.iter().map(|(_, s)| f(s)).sum::<u64>();
        for (name, help, ok, failed) in [
            (
                "token_mints",
                "IAM auth tokens minted, by result",
                sum(|s| s.mints_ok),
                sum(|s| s.mints_failed),
            ),
            (
                "credential_fetches",
                "AWS credential fetches, by result",
                sum(|s| s.credential_fetches_ok),
                sum(|s| s.credential_fetches_failed),
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (result, n) in [("ok", ok), ("error", failed)] {
                ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
            }
        }

        let mut tokens = encoder.encode_descriptor(
            "token_expiry_seconds",
            "Seconds until the target's soonest-expiring cached token stops being used (negative: expired)",
            None,
            MetricType::Gauge,
        )?;
        for t in &targets {
            let soonest = status_of(&t.signer).and_then(|st| {
                st.tokens
                    .iter()
                    .filter(|k| t.signs_for(&k.host, k.port) && k.region == t.region)
                    .map(|k| k.expires_at)
                    .min()
            });
            if let Some(at) = soonest {
                ConstGauge::new(seconds_until(at, now))
                    .encode(tokens.encode_family(&[("target", t.name.as_str())])?)?;
            }
        }

        let mut creds = encoder.encode_descriptor(
            "credentials_expiry_seconds",
            "Seconds until the AWS credentials used for the target expire (absent: none held, or they never expire)",
            None,
            MetricType::Gauge,
        )?;
        for t in &targets {
            if let Some(at) = status_of(&t.signer).and_then(|st| st.credentials_expiry) {
                ConstGauge::new(seconds_until(at, now))
                    .encode(creds.encode_family(&[("target", t.name.as_str())])?)?;
            }
        }
        Ok(())
    }
}

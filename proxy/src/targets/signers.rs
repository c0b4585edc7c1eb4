//! Signers shared by targets with the same credential options, and grouping things by the
//! signer they use (start-up warm-up, the metrics scrape, readiness).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rds_iam_config::Target;
use rds_iam_signer::{region_from_host, CredentialOptions, Signer, SignerError};

/// Signers by everything that makes one differ. Clones share the pool, so targets added by a
/// reload reuse the signers (and cached tokens) of the running ones.
#[derive(Default, Clone)]
pub(crate) struct SignerPool {
    signers: Arc<Mutex<HashMap<SignerKey, Signer>>>,
}

/// Profile, role and the AWS config's region (which decides the STS endpoint and the default
/// region): two targets that differ in any of them must not share a signer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SignerKey {
    profile: Option<String>,
    role_arn: Option<String>,
    region: Option<String>,
}

impl SignerKey {
    fn of(target: &Target) -> SignerKey {
        SignerKey {
            profile: target.profile.clone(),
            role_arn: target.role_arn.clone(),
            region: target
                .region
                .clone()
                .or_else(|| region_from_host(&target.host)),
        }
    }
}

impl SignerPool {
    /// The signer for `target`, made on first use.
    pub async fn get(&self, target: &Target) -> Result<Signer, SignerError> {
        let key = SignerKey::of(target);
        if let Some(s) = self.lock().get(&key) {
            return Ok(s.clone());
        }
        let signer = Signer::from_aws_config(CredentialOptions {
            profile: key.profile.clone(),
            role_arn: key.role_arn.clone(),
            region: key.region.clone(),
        })
        .await?;
        // Another holder of the pool may have made one meanwhile: keep the first.
        Ok(self.lock().entry(key).or_insert(signer).clone())
    }

    /// Stops every signer's background refresh.
    pub fn shutdown(&self) {
        for signer in self.lock().values() {
            signer.shutdown();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SignerKey, Signer>> {
        self.signers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `items` grouped by signer, in first-seen order (targets may share one).
pub(crate) fn group_by_signer<T>(
    items: impl IntoIterator<Item = (Signer, T)>,
) -> Vec<(Signer, Vec<T>)> {
    let mut groups: Vec<(Signer, Vec<T>)> = Vec::new();
    for (signer, item) in items {
        match groups.iter_mut().find(|(s, _)| s.same_as(&signer)) {
            Some((_, list)) => list.push(item),
            None => groups.push((signer, vec![item])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, region: Option<&str>) -> Target {
        let url = format!("postgres://u@{name}.example.com/db");
        let mut settings = rds_iam_config::load(
            &rds_iam_config::RunArgs {
                targets: vec![url],
                ..Default::default()
            },
            &HashMap::new(),
        )
        .expect("settings");
        let mut t = settings.targets.remove(0);
        t.region = region.map(str::to_owned);
        t
    }

    // The pool was keyed by (profile, role_arn) and built with the first target's region, so
    // a target in another region got the first one's AWS config region (STS endpoint, default
    // region).
    #[tokio::test]
    async fn targets_in_other_regions_get_their_own_signer() {
        let pool = SignerPool::default();
        let a = pool.get(&target("a", Some("eu-west-1"))).await.unwrap();
        let b = pool.get(&target("b", Some("us-east-2"))).await.unwrap();
        let a_again = pool.get(&target("c", Some("eu-west-1"))).await.unwrap();
        assert!(!a.same_as(&b), "two regions shared one signer");
        assert!(a.same_as(&a_again), "one region made two signers");
        assert_eq!(a.default_region().await.as_deref(), Some("eu-west-1"));
        assert_eq!(b.default_region().await.as_deref(), Some("us-east-2"));
        pool.shutdown();
    }

    #[tokio::test]
    async fn grouping_keeps_first_seen_order() {
        let signer = || {
            let creds =
                aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
            Signer::from_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(creds),
                rds_iam_signer::SystemClock,
            )
        };
        let (a, b) = (signer(), signer());
        let groups = group_by_signer([(a.clone(), 1), (b.clone(), 2), (a.clone(), 3)]);
        assert_eq!(groups.len(), 2);
        assert!(groups[0].0.same_as(&a) && groups[1].0.same_as(&b));
        assert_eq!(
            (groups[0].1.clone(), groups[1].1.clone()),
            (vec![1, 3], vec![2])
        );
        a.shutdown();
        b.shutdown();
    }
}

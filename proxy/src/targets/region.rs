//! The signing region of a target, decided the same way by the proxy, `token`, `policy` and
//! `check`: the region set for it, else the one its endpoint name carries
//! (`*.REGION.rds.amazonaws.com`), else the AWS config's (`AWS_REGION`, the profile).

use rds_iam_signer::{region_from_host, Signer};

/// Where a region came from, for `check` to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegionSource {
    Setting,
    Host,
    AwsConfig,
}

/// The region to sign for `host`, or `None` when nothing names one. `signer` is asked last,
/// and only if given (a command that could not build one still resolves the rest).
pub(crate) async fn resolve_region(
    setting: Option<&str>,
    host: &str,
    signer: Option<&Signer>,
) -> Option<(String, RegionSource)> {
    if let Some(r) = setting {
        return Some((r.to_owned(), RegionSource::Setting));
    }
    if let Some(r) = region_from_host(host) {
        return Some((r, RegionSource::Host));
    }
    signer?
        .default_region()
        .await
        .map(|r| (r, RegionSource::AwsConfig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn setting_then_host_then_nothing() {
        let host = "db.cluster-abc.eu-west-1.rds.amazonaws.com";
        assert_eq!(
            resolve_region(Some("us-east-2"), host, None).await,
            Some(("us-east-2".into(), RegionSource::Setting))
        );
        assert_eq!(
            resolve_region(None, host, None).await,
            Some(("eu-west-1".into(), RegionSource::Host))
        );
        assert_eq!(resolve_region(None, "localhost", None).await, None);
    }
}

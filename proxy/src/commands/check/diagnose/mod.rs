//! From an error to its likely causes, each with the exact command or SQL that fixes it.
//! The texts name the real host, user, region and account so they can be pasted as they are.

use std::path::PathBuf;

use rds_iam_signer::SignerError;

mod database;

pub use database::{auth, dns, tcp, tls};

use super::report::{Cause, Failure};
use crate::commands::policy::aws_api::AwsApiError;
use crate::commands::policy::connect_arn;
use crate::commands::policy::rds::Endpoint;
use crate::targets::{TargetError, GLOBAL_BUNDLE_URL as CA_URL};

/// Clock offsets above this break SigV4 (AWS allows five minutes).
pub const MAX_SKEW_SECS: i64 = 300;

/// Where `ca_file = auto` caches the bundle; fetching into it never overwrites a custom file.
const DEFAULT_CA_CACHE: &str = "~/.cache/rds-iam-proxy/global-bundle.pem";

/// What the walk has learnt so far; the diagnoses quote it.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub target: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub region: String,
    pub account: Option<String>,
    /// The IAM principal of the credentials (STS ARN).
    pub principal: Option<String>,
    /// AWS's clock minus ours, in seconds.
    pub skew: Option<i64>,
    pub ca_file: Option<PathBuf>,
    pub connect_to: Option<(String, u16)>,
}

impl Facts {
    fn endpoint(&self) -> Option<Endpoint> {
        Endpoint::parse(&self.host)
    }

    /// The ARN the IAM policy must allow, with the parts still unknown as placeholders.
    pub fn needed_arn(&self) -> String {
        connect_arn(
            &self.region,
            self.account.as_deref().unwrap_or("ACCOUNT"),
            "CLUSTER_RESOURCE_ID",
            &self.user,
        )
    }

    fn quoted_user(&self) -> String {
        format!("\"{}\"", self.user.replace('"', "\"\""))
    }

    fn ca_path(&self) -> String {
        self.ca_file
            .as_ref()
            .map_or_else(|| "(auto)".into(), |p| p.display().to_string())
    }
}

pub fn startup(e: &TargetError) -> Failure {
    let causes = match e {
        TargetError::NoCaBundle { .. } | TargetError::Tls { .. } => vec![fetch_ca_cause(
            "the RDS CA bundle is missing or not a PEM file",
            DEFAULT_CA_CACHE,
        )],
        TargetError::NoRegion { .. } => vec![Cause::new(
            "the host does not name its region (not an *.rds.amazonaws.com name) and the AWS config has none",
            ["pass --region REGION, add ?region=REGION to the target URL, or set AWS_REGION".into()],
        )],
        _ => Vec::new(),
    };
    Failure {
        exit_code: e.exit_code(),
        ..Failure::config(e.to_string(), causes)
    }
}

fn fetch_ca_cause(what: &str, path: &str) -> Cause {
    Cause::new(
        what,
        [
            format!("mkdir -p \"$(dirname {path})\" && curl -fsSo {path} {CA_URL}"),
            format!(
                "then pass --ca-file {path} (or put it in /etc/rds-iam-proxy/global-bundle.pem)"
            ),
        ],
    )
}

pub fn credentials(e: &SignerError) -> Vec<Cause> {
    let mut causes = vec![
        Cause::new(
            "no source in the AWS default chain has credentials for this process",
            [
                "locally: aws sso login --profile NAME, then pass --profile NAME (or export AWS_PROFILE)".into(),
                "on EKS with IRSA: annotate the pod's service account with eks.amazonaws.com/role-arn=ROLE_ARN".into(),
                "on EKS with Pod Identity: aws eks create-pod-identity-association --cluster-name CLUSTER --namespace NS --service-account SA --role-arn ROLE_ARN".into(),
            ],
        ),
        Cause::new(
            format!("a credentials source was found but failed: {e}"),
            [
                "check that the container credential endpoint, the web identity token file or the profile it names is reachable and valid".into(),
            ],
        ),
    ];
    // A source that answered but failed is more likely the problem than an empty chain.
    if !matches!(e, SignerError::NoCredentials { .. }) {
        causes.reverse();
    }
    causes
}

pub fn sts(e: &AwsApiError, facts: &Facts) -> Vec<Cause> {
    let mut causes = Vec::new();
    let skew = match e {
        AwsApiError::Api { skew, .. } => *skew,
        _ => None,
    };
    if let Some(s) = skew.filter(|s| s.abs() > MAX_SKEW_SECS) {
        causes.push(clock_cause(s));
    }
    match e.code() {
        Some("ExpiredToken" | "ExpiredTokenException" | "RequestExpired") => causes.push(Cause::new(
            "the session credentials have expired",
            ["renew them (aws sso login, or restart the process that hands them out)".into()],
        )),
        Some("InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch") => {
            causes.push(Cause::new(
                "the access key is unknown to AWS or the secret key does not match it (deleted key, wrong profile, credentials of another partition)",
                [format!("compare with: aws sts get-caller-identity --region {}", facts.region)],
            ))
        }
        _ => causes.push(Cause::new(
            format!("STS refused the credentials: {e}"),
            [format!("aws sts get-caller-identity --region {}", facts.region)],
        )),
    }
    causes
}

pub fn clock_cause(skew: i64) -> Cause {
    let dir = if skew > 0 { "behind" } else { "ahead of" };
    Cause::new(
        format!(
            "this machine's clock is {}s {dir} AWS (measured against the Date header of the STS answer); tokens signed with it look expired or not yet valid",
            skew.abs()
        ),
        [
            "sudo timedatectl set-ntp true   # or: sudo chronyc makestep".into(),
        ],
    )
}

pub fn token(e: &SignerError, facts: &Facts) -> Vec<Cause> {
    if e.is_credentials() {
        return credentials(e);
    }
    vec![Cause::new(
        format!(
            "the token request for {}:{} as {} in {} is invalid",
            facts.host,
            facts.port,
            facts.quoted_user(),
            facts.region
        ),
        ["check the target host, port, user and --region".into()],
    )]
}

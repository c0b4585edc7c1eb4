//! From an error to its likely causes, each with the exact command or SQL that fixes it.
//! The texts name the real host, user, region and account so they can be pasted as they are.

use std::path::PathBuf;

use rds_iam_signer::{region_from_host, SignerError};

use super::report::{Cause, Failure};
use crate::app::StartupError;
use crate::policy::aws_api::AwsApiError;
use crate::policy::rds::Endpoint;
use crate::policy::{connect_arn, lookup_hint};
use crate::upstream::UpstreamError;

/// Clock offsets above this break SigV4 (AWS allows five minutes).
pub const MAX_SKEW_SECS: i64 = 300;

const CA_URL: &str = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem";
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

pub fn startup(e: &StartupError) -> Failure {
    let causes = match e {
        StartupError::NoCaBundle { .. } | StartupError::Tls { .. } => vec![fetch_ca_cause(
            "the RDS CA bundle is missing or not a PEM file",
            DEFAULT_CA_CACHE,
        )],
        StartupError::NoRegion { .. } => vec![Cause::new(
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

pub fn dns(facts: &Facts) -> Vec<Cause> {
    let mut causes = vec![Cause::new(
        format!("{} is not the endpoint name of the cluster", facts.host),
        [format!(
            "aws rds describe-db-clusters --region {} --query 'DBClusters[].[DBClusterIdentifier,Endpoint,ReaderEndpoint]' --output table",
            facts.region
        )],
    )];
    if facts.connect_to.is_none() {
        causes.push(Cause::new(
            "the endpoint resolves only inside its VPC and this machine is outside it",
            [format!(
                "open a tunnel (SSM or SSH) to {}:{} and pass --connect-to 127.0.0.1:LOCAL_PORT; the token and TLS still use the endpoint name",
                facts.host, facts.port
            )],
        ));
    }
    causes
}

pub fn tcp(facts: &Facts) -> Vec<Cause> {
    let id = facts
        .endpoint()
        .map_or("CLUSTER_ID".to_owned(), |e| e.identifier().to_owned());
    let mut causes = vec![
        Cause::new(
            "the database is stopped, starting, rebooting or failing over",
            [
                format!("aws rds describe-db-clusters --db-cluster-identifier {id} --query 'DBClusters[0].Status' --output text"),
                format!("aws rds start-db-cluster --db-cluster-identifier {id}   # if it is stopped"),
            ],
        ),
        Cause::new(
            format!("a security group or network ACL does not allow TCP {} from this machine", facts.port),
            [format!(
                "aws ec2 authorize-security-group-ingress --group-id DB_SECURITY_GROUP --protocol tcp --port {} --source-group THIS_MACHINES_SECURITY_GROUP",
                facts.port
            )],
        ),
    ];
    if let Some((h, p)) = &facts.connect_to {
        causes.insert(
            0,
            Cause::new(
                format!("the tunnel or port-forward at {h}:{p} (connect_to) is not running"),
                ["start it again, e.g. aws ssm start-session ... --document-name AWS-StartPortForwardingSessionToRemoteHost".into()],
            ),
        );
    }
    causes
}

pub fn tls(e: &UpstreamError, facts: &Facts) -> Vec<Cause> {
    let wrong_ca = fetch_ca_cause(
        &format!(
            "the CA bundle {} does not hold the CA that signed the server's certificate (not the RDS global bundle, or an old one)",
            facts.ca_path()
        ),
        DEFAULT_CA_CACHE,
    );
    let wrong_name = Cause::new(
        format!(
            "the certificate does not name {}: the target host must be the RDS endpoint, not a tunnel address, CNAME or IP",
            facts.host
        ),
        [format!(
            "use postgres://{}@ENDPOINT... and --connect-to HOST:PORT for the tunnel",
            facts.user
        )],
    );
    match e {
        UpstreamError::TlsRefused { .. } | UpstreamError::TlsUnexpectedResponse { .. } => {
            vec![Cause::new(
                "the server at the dialled address is not an RDS PostgreSQL endpoint with TLS (IAM needs TLS; the proxy never falls back to plaintext)",
                ["check --connect-to and the port".into()],
            )]
        }
        UpstreamError::Tls { source, .. } => {
            let text = format!("{source:?}").to_ascii_lowercase();
            if text.contains("notvalidforname") {
                vec![wrong_name, wrong_ca]
            } else if text.contains("expired") || text.contains("notvalidyet") {
                let mut causes = vec![Cause::new(
                    "the server certificate has expired or is not yet valid",
                    [format!(
                        "aws rds modify-db-cluster --db-cluster-identifier {} --ca-certificate-identifier rds-ca-rsa2048-g1 --apply-immediately",
                        facts.endpoint().map_or("CLUSTER_ID".into(), |e| e.identifier().to_owned())
                    )],
                )];
                if let Some(s) = facts.skew.filter(|s| s.abs() > MAX_SKEW_SECS) {
                    causes.insert(0, clock_cause(s));
                }
                causes
            } else {
                vec![wrong_ca, wrong_name]
            }
        }
        _ => Vec::new(),
    }
}

/// Whether a refusal means "this user logs in with a password" rather than "bad token".
pub fn is_password_user(e: &UpstreamError) -> bool {
    match e {
        UpstreamError::NotIamUser { .. } => true,
        UpstreamError::TokenRejected { fields, .. } => {
            fields.code == "28P01"
                || fields
                    .message
                    .to_ascii_lowercase()
                    .contains("password authentication failed")
        }
        _ => false,
    }
}

pub fn auth(e: &UpstreamError, facts: &Facts) -> (String, Vec<Cause>) {
    let user = facts.quoted_user();
    if is_password_user(e) {
        return (
            format!(
                "user {user} is not an IAM user: the database asked for a password ({}) instead of an IAM token",
                password_kind(e)
            ),
            vec![
                Cause::new(
                    format!("user {user} is not granted rds_iam; as the master user run:"),
                    [format!("GRANT rds_iam TO {user};")],
                ),
                Cause::new(
                    format!("user {user} does not exist; as the master user run:"),
                    [format!("CREATE USER {user} WITH LOGIN; GRANT rds_iam TO {user};")],
                ),
            ],
        );
    }
    match e {
        UpstreamError::TokenRejected { fields, .. } => {
            (format!("token rejected: the database refused the IAM token for {user} ({})", fields.message), token_rejected(facts))
        }
        UpstreamError::Server { fields, .. } if fields.code == "3D000" => (
            format!("the database refused the session: {}", fields.message),
            vec![Cause::new(
                "the database named in the target does not exist",
                [format!("CREATE DATABASE name OWNER {user};   -- or fix the /DATABASE part of the target")],
            )],
        ),
        other => (other.to_string(), Vec::new()),
    }
}

fn token_rejected(facts: &Facts) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(s) = facts.skew.filter(|s| s.abs() > MAX_SKEW_SECS) {
        causes.push(clock_cause(s));
    }
    let host_region = region_from_host(&facts.host);
    if let Some(hr) = host_region.as_ref().filter(|hr| **hr != facts.region) {
        causes.push(Cause::new(
            format!(
                "the token is signed for region {} but the endpoint is in {hr}",
                facts.region
            ),
            [format!(
                "pass --region {hr} (or drop the region setting: it is parsed from the host)"
            )],
        ));
    }
    let modify = match facts.endpoint() {
        Some(Endpoint::Instance(id)) => format!(
            "aws rds modify-db-instance --db-instance-identifier {id} --enable-iam-database-authentication --apply-immediately"
        ),
        other => format!(
            "aws rds modify-db-cluster --db-cluster-identifier {} --enable-iam-database-authentication --apply-immediately",
            other.as_ref().map_or("CLUSTER_ID", |e| e.identifier())
        ),
    };
    causes.push(Cause::new(
        "IAM database authentication is disabled on the cluster",
        [modify],
    ));
    let principal = facts
        .principal
        .as_deref()
        .unwrap_or("the role these credentials belong to");
    causes.push(Cause::new(
        format!(
            "the IAM policy of {principal} does not allow rds-db:connect on {} (CLUSTER_RESOURCE_ID is the cluster's resource id, not its name)",
            facts.needed_arn()
        ),
        [
            lookup_hint(&facts.host),
            format!("rds-iam-proxy policy {} --account {} > policy.json   # prints the exact policy", facts.target, facts.account.as_deref().unwrap_or("ACCOUNT")),
            "aws iam put-role-policy --role-name ROLE --policy-name rds-iam-proxy --policy-document file://policy.json".into(),
        ],
    ));
    causes.push(Cause::new(
        format!(
            "user {} is not granted rds_iam; as the master user run:",
            facts.quoted_user()
        ),
        [format!("GRANT rds_iam TO {};", facts.quoted_user())],
    ));
    if host_region.is_none() {
        causes.push(Cause::new(
            format!(
                "the signing region {} is not the cluster's region",
                facts.region
            ),
            ["pass --region REGION".into()],
        ));
    }
    if facts.skew.is_none_or(|s| s.abs() <= MAX_SKEW_SECS) {
        causes.push(match facts.skew {
            Some(s) => Cause::new(
                format!("clock skew: unlikely, this machine is {}s from AWS's clock (STS Date header); the database server's clock may be off", s.abs()),
                Vec::new(),
            ),
            None => Cause::new(
                "clock skew: could not be measured (STS did not answer); tokens are valid 15 minutes from signing",
                ["sudo timedatectl set-ntp true".to_owned()],
            ),
        });
    }
    causes
}

fn password_kind(e: &UpstreamError) -> String {
    use rds_iam_protocol::HandshakeError;
    match e {
        UpstreamError::NotIamUser {
            source: HandshakeError::Md5Requested,
            ..
        } => "md5".into(),
        UpstreamError::NotIamUser {
            source: HandshakeError::SaslRequested { mechanisms },
            ..
        } => mechanisms.join(", "),
        UpstreamError::TokenRejected { fields, .. } => fields.message.clone(),
        _ => "password".into(),
    }
}

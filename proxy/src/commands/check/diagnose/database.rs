//! Diagnoses of the stages that talk to the database: DNS, TCP, TLS and IAM authentication.

use rds_iam_signer::region_from_host;

use super::{clock_cause, fetch_ca_cause, Facts, DEFAULT_CA_CACHE, MAX_SKEW_SECS};
use crate::commands::check::report::Cause;
use crate::commands::policy::lookup_hint;
use crate::commands::policy::rds::Endpoint;
use crate::upstream::UpstreamError;

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

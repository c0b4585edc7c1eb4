//! `rds-iam-proxy policy`: the IAM policy JSON that allows the targets' connections, plus the
//! AWS lookups it needs (STS for the account, RDS for the resource id), which `check` reuses.

pub(crate) mod aws_api;
mod document;
pub(crate) mod rds;
pub(crate) mod sts;

use std::collections::HashMap;

use rds_iam_config::{ConfigError, RunArgs, Settings, Target};

use crate::targets::{resolve_region, SignerPool};

pub(crate) use document::connect_arn;
use document::policy_document;

#[derive(Debug, clap::Args)]
pub(crate) struct PolicyArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// AWS account id of the database [default: from STS GetCallerIdentity]
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Resource id of the cluster (cluster-...) or instance (db-...) [default: from RDS
    /// DescribeDBClusters / DescribeDBInstances, else *]
    #[arg(long, value_name = "ID")]
    pub resource_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum PolicyError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--account {0:?} is not a 12-digit AWS account id")]
    BadAccount(String),
}

impl PolicyError {
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// The policy document and the warnings about parts that had to be left as `*`.
#[derive(Debug)]
pub(crate) struct PolicyOutput {
    pub document: serde_json::Value,
    pub warnings: Vec<String>,
}

pub(crate) async fn policy(
    args: &PolicyArgs,
    env: &HashMap<String, String>,
) -> Result<PolicyOutput, PolicyError> {
    if let Some(account) = &args.account {
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PolicyError::BadAccount(account.clone()));
        }
    }
    let settings = rds_iam_config::load(&args.run, env)?;
    let signers = SignerPool::default();
    let mut warnings = Vec::new();
    let mut arns = Vec::new();
    for target in &settings.targets {
        let arn = target_arn(target, args, &settings, &signers, env, &mut warnings).await;
        arns.push(arn);
    }
    Ok(PolicyOutput {
        document: policy_document(&arns),
        warnings,
    })
}

async fn target_arn(
    target: &Target,
    args: &PolicyArgs,
    settings: &Settings,
    signers: &SignerPool,
    env: &HashMap<String, String>,
    warnings: &mut Vec<String>,
) -> String {
    let name = &target.name;
    let mut warn = |w: String| warnings.push(format!("target {name}: {w}"));
    let user = target.user.clone().unwrap_or_else(|| {
        warn("no database user named (postgres://USER@HOST or --user): the policy allows every user of the database".into());
        "*".into()
    });
    let signer = match signers.get(target).await {
        Ok(s) => Some(s),
        Err(e) => {
            warn(format!("AWS configuration: {e}"));
            None
        }
    };
    let region = resolve_region(target.region.as_deref(), &target.host, signer.as_ref())
        .await
        .map(|(region, _)| region);
    let region = region.unwrap_or_else(|| {
        warn(format!(
            "cannot tell the region of {}: using *; set --region",
            target.host
        ));
        "*".into()
    });
    let need_aws = args.account.is_none() || args.resource_id.is_none();
    let creds = match (&signer, need_aws) {
        (Some(s), true) => match s.credentials().await {
            Ok(c) => Some(c),
            Err(e) => {
                warn(format!("{e}"));
                None
            }
        },
        _ => None,
    };
    let timeout = settings.connect_timeout;
    let account = match (&args.account, &creds) {
        (Some(a), _) => a.clone(),
        (None, Some(c)) => match sts::caller_identity(&region, c, env, timeout).await {
            Ok(id) => id.account,
            Err(e) => {
                warn(format!(
                    "STS GetCallerIdentity failed ({e}): account left as *; pass --account ID"
                ));
                "*".into()
            }
        },
        (None, None) => {
            warn("no AWS credentials to ask STS for the account: account left as *; pass --account ID".into());
            "*".into()
        }
    };
    let resource_id = match (&args.resource_id, &creds) {
        (Some(r), _) => r.clone(),
        (None, Some(c)) => match rds::resource_id(&target.host, &region, c, env, timeout).await {
            Ok(id) => id,
            Err(e) => {
                warn(format!(
                    "cannot look up the resource id ({e}): resource id left as *, which allows this user on every database of the account; pass --resource-id ID ({})",
                    lookup_hint(&target.host)
                ));
                "*".into()
            }
        },
        (None, None) => {
            warn(format!(
                "resource id left as *, which allows this user on every database of the account; pass --resource-id ID ({})",
                lookup_hint(&target.host)
            ));
            "*".into()
        }
    };
    connect_arn(&region, &account, &resource_id, &user)
}

/// The AWS CLI command that prints the resource id of `host`'s database.
pub(crate) fn lookup_hint(host: &str) -> String {
    match rds::Endpoint::parse(host) {
        Some(rds::Endpoint::Instance(id)) => format!(
            "aws rds describe-db-instances --db-instance-identifier {id} --query 'DBInstances[0].[DbiResourceId,DBClusterIdentifier]' --output text"
        ),
        endpoint => format!(
            "aws rds describe-db-clusters --db-cluster-identifier {} --query 'DBClusters[0].DbClusterResourceId' --output text",
            endpoint.as_ref().map_or("CLUSTER_ID", |e| e.identifier())
        ),
    }
}

//! `rds-iam-proxy policy`: the IAM policy JSON for the targets, with the account and resource
//! id given, looked up (loopback STS and RDS), or left as `*` with a warning.

mod aws_stub;
mod common;

use aws_stub::{AwsStub, ACCOUNT, CLUSTER_RESOURCE_ID};
use common::PROXY_BIN;
use serde_json::Value;
use standin::ProxyCommand;

const CLUSTER: &str = "aurorapgsqlv1.cluster-cabc123xyz.ap-northeast-1.rds.amazonaws.com";

/// The command with static test credentials, no AWS config files, and every AWS endpoint on
/// loopback (`stub`, or a closed port).
fn policy_cmd(stub: Option<&AwsStub>, dir: &tempfile::TempDir) -> ProxyCommand {
    let cmd = ProxyCommand::new(PROXY_BIN)
        .arg("policy")
        .static_credentials("AKIDTESTPOLICY000001", "test-secret-not-real")
        .isolated_aws(&dir.path().join("none"))
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    cmd.envs(stub.map(AwsStub::env).unwrap_or_default())
}

fn resources(stdout: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(doc["Version"], "2012-10-17");
    let statement = &doc["Statement"][0];
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(statement["Action"], "rds-db:connect");
    statement["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn policy_with_account_and_resource_id_needs_no_aws_call() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = policy_cmd(None, &dir)
        .args([
            "--account",
            "210987654321",
            "--resource-id",
            "cluster-ALPQLYUXTQZEQ7M7F5UBRC7WTU",
        ])
        .arg(format!("postgres://iam_user@{CLUSTER}/orders"))
        .arg("postgres://report@db2.cluster-ro-xyz.eu-west-1.rds.amazonaws.com:5433/x")
        .output()
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        resources(&stdout),
        [
            "arn:aws:rds-db:ap-northeast-1:210987654321:dbuser:cluster-ALPQLYUXTQZEQ7M7F5UBRC7WTU/iam_user",
            "arn:aws:rds-db:eu-west-1:210987654321:dbuser:cluster-ALPQLYUXTQZEQ7M7F5UBRC7WTU/report",
        ]
    );
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn policy_looks_up_the_account_in_sts_and_the_resource_id_in_rds() {
    let dir = tempfile::tempdir().unwrap();
    let stub = AwsStub::start();
    let (status, stdout, stderr) = policy_cmd(Some(&stub), &dir)
        .arg(format!("postgres://iam_user@{CLUSTER}/orders"))
        // An instance endpoint of the same Aurora cluster: its cluster's resource id.
        .arg("postgres://iam_user@aurorapgsqlv1-instance-1.cabc123xyz.ap-northeast-1.rds.amazonaws.com/orders")
        .output()
        .unwrap();
    assert!(status.success(), "{stderr}");
    let want =
        format!("arn:aws:rds-db:ap-northeast-1:{ACCOUNT}:dbuser:{CLUSTER_RESOURCE_ID}/iam_user");
    assert_eq!(resources(&stdout), [want], "one ARN, listed once");
    assert!(!stderr.contains("warning"), "{stderr}");
    let actions: Vec<String> = stub.requests().into_iter().map(|(a, _)| a).collect();
    assert!(
        actions.contains(&"GetCallerIdentity".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"DescribeDBClusters".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"DescribeDBInstances".to_owned()),
        "{actions:?}"
    );
    for (action, auth) in stub.requests() {
        let service = if action == "GetCallerIdentity" {
            "sts"
        } else {
            "rds"
        };
        assert!(
            auth.contains("Credential=AKIDTESTPOLICY000001/")
                && auth.contains(&format!("/ap-northeast-1/{service}/aws4_request")),
            "{action}: {auth}"
        );
    }
}

#[test]
fn policy_falls_back_to_star_with_warnings_when_rds_says_no_and_no_user_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let stub = AwsStub::start();
    stub.deny_rds();
    let (status, stdout, stderr) = policy_cmd(Some(&stub), &dir)
        .arg(format!("postgres://{CLUSTER}/orders"))
        .output()
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        resources(&stdout),
        [format!(
            "arn:aws:rds-db:ap-northeast-1:{ACCOUNT}:dbuser:*/*"
        )]
    );
    assert!(stderr.contains("warning"), "{stderr}");
    assert!(stderr.contains("AccessDenied"), "{stderr}");
    assert!(stderr.contains("resource id left as *"), "{stderr}");
    assert!(stderr.contains("--resource-id"), "{stderr}");
    assert!(stderr.contains("allows every user"), "{stderr}");
    // Warnings go to stderr only: stdout stays valid JSON for `> policy.json`.
    assert!(!stdout.contains("warning"));
}

#[test]
fn policy_without_credentials_still_prints_a_policy_with_star_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = ProxyCommand::new(PROXY_BIN)
        .args(["policy", "--resource-id", "cluster-X"])
        .arg(format!("postgres://iam_user@{CLUSTER}"))
        .isolated_aws(&dir.path().join("none"))
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        resources(&stdout),
        ["arn:aws:rds-db:ap-northeast-1:*:dbuser:cluster-X/iam_user"]
    );
    assert!(stderr.contains("--account"), "{stderr}");
}

#[test]
fn policy_rejects_a_malformed_account() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = policy_cmd(None, &dir)
        .args([
            "--account",
            "12345",
            format!("postgres://u@{CLUSTER}").as_str(),
        ])
        .output()
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("12-digit"), "{stderr}");
    assert!(stdout.is_empty());
}

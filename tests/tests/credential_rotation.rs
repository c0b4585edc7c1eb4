//! End-to-end: the real AWS credential chain (EKS Pod Identity / ECS container endpoint) handing
//! out short-lived session credentials; connections keep working across rotations.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{connect, proxy_for, standin_with_session_lifetime, PROXY_BIN};
use standin::{ProxyCommand, StsEndpoint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_keep_working_across_credential_rotations() {
    // Session credentials live 12 s, so a 30 s run spans at least two rotations.
    let s = standin_with_session_lifetime(Duration::from_secs(12)).await;
    let proxy = proxy_for(&s).spawn().unwrap();

    let started = Instant::now();
    let mut connections = 0;
    while started.elapsed() < Duration::from_secs(30) {
        let client = connect(proxy.addr(), "iam_user")
            .await
            .unwrap_or_else(|e| panic!("connection {connections} at {:?}: {e}", started.elapsed()));
        client.simple_query("select 1").await.unwrap();
        connections += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let stats = s.token_stats();
    eprintln!(
        "rotation: {connections} connections, {} accepted, {} refused, {} distinct tokens, {} credential fetches",
        stats.accepted,
        stats.refused,
        stats.distinct_tokens,
        s.aws().container_calls()
    );
    // The checker refuses a token whose session token is missing or wrong, or whose
    // credentials had expired when it was presented: none was.
    assert_eq!(stats.refused, 0, "refusals: {:?}", stats.refusals);
    assert_eq!(stats.accepted, connections);
    let keys: BTreeSet<String> = s
        .token_checks()
        .iter()
        .filter_map(|r| credential_key(&r.token))
        .collect();
    assert!(
        keys.len() >= 3,
        "tokens were signed with {} access keys: {keys:?}",
        keys.len()
    );
    assert!(
        s.aws().container_calls() >= 3,
        "credentials fetched {} times",
        s.aws().container_calls()
    );
    // The proxy logged its refreshes, and never a secret.
    let logs = proxy.logs().join("\n");
    for check in s.token_checks() {
        assert!(!logs.contains(&*check.token), "a token reached the logs");
        if let Some(sig) = check.token.split("X-Amz-Signature=").nth(1) {
            assert!(!logs.contains(sig), "a signature reached the logs");
        }
    }
}

/// The access key id inside a token's X-Amz-Credential.
fn credential_key(token: &str) -> Option<String> {
    let cred = token.split("X-Amz-Credential=").nth(1)?;
    Some(cred.split("%2F").next()?.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_subcommand_prints_only_a_valid_token() {
    let s = common::standin().await;
    let (status, stdout, stderr) = ProxyCommand::new(PROXY_BIN)
        .args([
            "token",
            "--host",
            s.host(),
            "--port",
            "5432",
            "--user",
            "iam_user",
        ])
        .standin_env(&s)
        .output()
        .unwrap();
    assert!(status.success(), "{stderr}");
    let token = stdout.trim_end_matches('\n');
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout:?}");
    assert!(token.starts_with(&format!(
        "{}:5432/?Action=connect&DBUser=iam_user&",
        s.host()
    )));
    // The stand-in accepts it as a password, as it would from `aws rds generate-db-auth-token`.
    let client = s
        .connect_direct("iam_user", "appdb", token)
        .await
        .expect("token accepted");
    client.simple_query("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_subcommand_without_credentials_exits_1_naming_the_sources() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none");
    let (status, stdout, stderr) = ProxyCommand::new(PROXY_BIN)
        .args([
            "token",
            "--host",
            "db.cluster-abc.eu-west-1.rds.amazonaws.com",
            "--user",
            "u",
        ])
        .isolated_aws(&missing)
        .output()
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty());
    for source in [
        "environment",
        "profile",
        "web identity",
        "container",
        "IMDS",
    ] {
        assert!(stderr.contains(source), "stderr names {source}: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_arn_assumes_the_role_through_sts_and_signs_with_its_credentials() {
    const ROLE: &str = "arn:aws:iam::123456789012:role/db-access";
    let s = common::standin().await;
    // Base credentials from the environment (first in the default chain); the role on top.
    let base = s.aws().create_access_key();
    let sts = StsEndpoint::start(s.aws()).unwrap();
    let proxy = proxy_for(&s)
        .static_credentials(&base.access_key_id, &base.secret_access_key)
        .env("AWS_ENDPOINT_URL_STS", sts.url())
        .args(["--role-arn", ROLE])
        .spawn()
        .unwrap();

    for _ in 0..3 {
        let client = connect(proxy.addr(), "iam_user").await.unwrap();
        client.simple_query("select 1").await.unwrap();
    }

    let calls = sts.calls();
    assert_eq!(calls.len(), 1, "one AssumeRole, then cached: {calls:?}");
    let call = &calls[0];
    assert_eq!(call.caller_access_key_id, base.access_key_id);
    assert_eq!(call.role_arn, ROLE);
    assert_eq!(call.role_session_name, "rds-iam-proxy");
    let checks = s.token_checks();
    assert_eq!(checks.len(), 3);
    for check in &checks {
        let verified = check.result.as_ref().expect("token accepted");
        assert_eq!(
            verified.access_key_id, call.issued.access_key_id,
            "signed with the assumed role's session credentials"
        );
    }
    assert_eq!(
        s.aws().container_calls(),
        0,
        "the base came from the environment"
    );
    eprintln!(
        "role_arn: 1 AssumeRole signed by {}, 3 connections, tokens signed by {}",
        base.access_key_id, call.issued.access_key_id
    );
}

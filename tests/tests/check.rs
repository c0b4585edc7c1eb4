//! `rds-iam-proxy check` against the stand-in: every stage passes, and each classic failure is
//! diagnosed at the right stage with the fix a user can paste.

mod aws_stub;
mod common;

use std::path::Path;

use aws_stub::AwsStub;
use common::PROXY_BIN;
use standin::{ProxyCommand, StandIn};

const STAGES: [&str; 9] = [
    "config",
    "credentials",
    "identity",
    "token",
    "dns",
    "tcp",
    "tls",
    "auth",
    "query",
];

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// The one `[FAIL]` line's stage.
    fn failed_stage(&self) -> Option<String> {
        let line = self.stdout.lines().find(|l| l.starts_with("[FAIL] "))?;
        Some(line["[FAIL] ".len()..].split(':').next()?.to_owned())
    }

    fn passed(&self, stage: &str) -> bool {
        self.stdout
            .lines()
            .any(|l| l.starts_with(&format!("[ok] {stage}: ")))
    }

    fn assert_failed_at(&self, stage: &str, fixes: &[&str]) {
        let all = format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert_eq!(self.code, Some(1), "{all}");
        assert_eq!(self.failed_stage().as_deref(), Some(stage), "{all}");
        let at = STAGES.iter().position(|s| *s == stage).unwrap();
        for earlier in &STAGES[..at] {
            if *earlier != "identity" {
                assert!(
                    self.passed(earlier),
                    "stage {earlier} passed before {stage}: {all}"
                );
            }
        }
        for later in &STAGES[at + 1..] {
            assert!(!self.passed(later), "the walk stopped at {stage}: {all}");
        }
        for fix in fixes {
            assert!(
                self.stdout.contains(fix),
                "stdout names the fix {fix:?}: {all}"
            );
        }
        assert!(!self.stderr.contains("panicked"), "{all}");
    }
}

/// Runs `check` for `user` against the stand-in (verified with `ca_file`, else the stand-in's
/// CA), with STS answered by `stub`.
async fn run_check(s: &StandIn, stub: &AwsStub, user: &str, ca_file: Option<&Path>) -> Outcome {
    run_check_with(s, stub, user, ca_file, &[]).await
}

/// [`run_check`] with further flags.
async fn run_check_with(
    s: &StandIn,
    stub: &AwsStub,
    user: &str,
    ca_file: Option<&Path>,
    extra: &[&str],
) -> Outcome {
    let ca_file = ca_file.unwrap_or(s.ca_file());
    let cmd = ProxyCommand::new(PROXY_BIN)
        .arg("check")
        .arg(format!("postgres://{user}@{}/appdb", s.endpoint()))
        .args(["--connect-to".to_owned(), s.addr().to_string()])
        .args(["--ca-file".to_owned(), ca_file.display().to_string()])
        .args(["--connect-timeout", "10s"])
        .args(extra.iter().copied())
        .standin_env(s)
        .envs(stub.env());
    // Blocking wait in a blocking thread: the stand-in's servers keep running meanwhile.
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    Outcome {
        code: status.code(),
        stdout,
        stderr,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_every_stage_against_the_standin() {
    let s = common::standin().await;
    let stub = AwsStub::start();
    let out = run_check(&s, &stub, "iam_user", None).await;
    let all = format!("stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert_eq!(out.code, Some(0), "{all}");
    for stage in STAGES {
        assert!(out.passed(stage), "[ok] {stage}: {all}");
    }
    let order: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("[ok] "))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(order, STAGES, "one line per stage, in order: {all}");
    assert!(
        out.stdout
            .contains(&format!("[ok] tls: verified {} (TLSv1.", s.host())),
        "{all}"
    );
    assert!(out.stdout.contains("(account 123456789012)"), "{all}");
    assert!(out.stdout.contains("SELECT 1 returned 1"), "{all}");
    assert!(!out.stdout.contains("[FAIL]"), "{all}");
    assert!(out.stdout.contains("pool_mode none"), "{all}");

    // The identity came from the loopback STS, signed with the stand-in's credentials.
    let sts: Vec<_> = stub
        .requests()
        .into_iter()
        .filter(|(action, _)| action == "GetCallerIdentity")
        .collect();
    assert_eq!(sts.len(), 1, "{sts:?}");
    assert!(sts[0].1.contains("/us-east-1/sts/aws4_request"), "{sts:?}");
    // The token itself never reaches the output.
    for check in s.token_checks() {
        assert!(!out.stdout.contains(&*check.token) && !out.stderr.contains(&*check.token));
    }

    // With pooling on, the config line says so.
    let out = run_check_with(&s, &stub, "iam_user", None, &["--pool-mode", "session"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "pool_mode session (up to 8 idle per key, idle timeout 5m, lifetime 1h, reset \"DISCARD ALL\")"
        ),
        "check says pooling is on: {}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_the_wrong_ca_fails_at_tls_and_says_how_to_fetch_the_rds_bundle() {
    let s = common::standin().await;
    let stub = AwsStub::start();
    let wrong = s.write_wrong_ca_file().unwrap();
    let out = run_check(&s, &stub, "iam_user", Some(&wrong)).await;
    out.assert_failed_at(
        "tls",
        &[
            "does not hold the CA that signed the server's certificate",
            "curl -fsSo",
            "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_for_a_user_without_rds_iam_says_grant_rds_iam() {
    let s = common::standin().await;
    s.create_password_user("app_pw", "a secret").await.unwrap();
    let stub = AwsStub::start();
    let out = run_check(&s, &stub, "app_pw", None).await;
    out.assert_failed_at(
        "auth",
        &[
            "not an IAM user",
            "asked for a password",
            "GRANT rds_iam TO \"app_pw\";",
        ],
    );
    assert!(!out.stdout.contains("token rejected"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_a_rejected_token_lists_the_iam_causes_and_fixes() {
    // Named as an Aurora cluster endpoint: the fixes name the cluster (the topology cannot be
    // read from the stand-in, which `check` only warns about, after the walk fails here).
    let s = common::standin_with(standin::StandInOptions {
        host: "standin.cluster-c0ffee123abc.us-east-1.rds.amazonaws.com".into(),
        ..standin::StandInOptions::default()
    })
    .await;
    // The server side sees every token as expired: a token the database refuses.
    s.checker().set_clock_skew(3600);
    let stub = AwsStub::start();
    let out = run_check(&s, &stub, "iam_user", None).await;
    out.assert_failed_at(
        "auth",
        &[
            "token rejected",
            "aws rds modify-db-cluster --db-cluster-identifier standin --enable-iam-database-authentication --apply-immediately",
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:CLUSTER_RESOURCE_ID/iam_user",
            "aws rds describe-db-clusters --db-cluster-identifier standin --query 'DBClusters[0].DbClusterResourceId'",
            "GRANT rds_iam TO \"iam_user\";",
            "clock skew",
        ],
    );
    assert!(!out.stdout.contains("not an IAM user"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_the_database_down_fails_at_tcp() {
    let s = common::standin().await;
    s.stop_database().await.unwrap();
    let stub = AwsStub::start();
    let out = run_check(&s, &stub, "iam_user", None).await;
    out.assert_failed_at(
        "tcp",
        &[
            &format!("cannot connect to {}", s.addr()),
            "aws rds describe-db-clusters --db-cluster-identifier standin --query 'DBClusters[0].Status'",
            "aws rds start-db-cluster --db-cluster-identifier standin",
            "security group",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_without_credentials_fails_at_credentials() {
    let s = common::standin().await;
    s.aws().set_container_failing(true);
    let stub = AwsStub::start();
    let out = run_check(&s, &stub, "iam_user", None).await;
    out.assert_failed_at(
        "credentials",
        &[
            "no usable AWS credentials",
            "eks.amazonaws.com/role-arn",
            "aws eks create-pod-identity-association",
        ],
    );
    assert!(
        stub.requests().is_empty(),
        "no STS call without credentials"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_without_a_target_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = ProxyCommand::new(PROXY_BIN)
        .args(["check", "--connect-timeout", "soon"])
        .arg("postgres://u@db.cluster-abc.eu-west-1.rds.amazonaws.com/x")
        .isolated_aws(&dir.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.starts_with("[FAIL] config: "), "{stdout}");
    assert!(
        stdout.contains("connect_timeout") || stdout.contains("connect-timeout"),
        "{stdout}"
    );
}

//! Where the topology cannot be read the target behaves as with `topology = off`: it dials
//! its endpoint by name, after one log line.

use std::time::Duration;

use standin::ProxyCommand;

use crate::aws_stub::AwsStub;
use crate::common::PROXY_BIN;
use crate::harness::{addrs, aurora, proxy, session_on, signed_for};

/// `rds-iam-proxy check` for `host` through the cluster's names; its stdout and exit code.
async fn check(aurora: &standin::Aurora, host: &str) -> (Option<i32>, String) {
    let stub = AwsStub::start();
    let cmd = ProxyCommand::new(PROXY_BIN)
        .arg("check")
        .arg(format!("postgres://iam_user@{host}/postgres"))
        .args(["--ca-file", aurora.ca_file().to_str().unwrap()])
        .args(aurora.resolve_args())
        .envs(aurora.credentials_env())
        .envs(stub.env());
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    (status.code(), format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_the_topology_and_warns_when_it_cannot_be_read() {
    let aurora = aurora(Duration::from_secs(20)).await;
    aurora
        .set_replica_lag(2, Duration::from_millis(1500))
        .await
        .unwrap();
    let (code, out) = check(&aurora, &aurora.cluster_host()).await;
    println!("{out}");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("topology writer"), "{out}");
    for (i, role) in [(0, "writer"), (1, "reader"), (2, "reader")] {
        let id = &aurora.instance(i).names.id;
        assert!(
            out.contains(&format!("[ok] topology: {id} {role}, lag ")),
            "{id}: {out}"
        );
    }
    assert!(out.contains("lag 1500 ms"), "{out}");
    assert!(
        out.contains("this session is on orders-instance-1 (the writer)"),
        "{out}"
    );
    let (_, out) = check(&aurora, &aurora.reader_host()).await;
    assert!(out.contains("topology reader"), "{out}");
    assert!(out.contains("(in recovery)"), "{out}");

    aurora
        .on_writer("DROP FUNCTION pg_catalog.aurora_replica_status()")
        .await
        .unwrap();
    let (code, out) = check(&aurora, &aurora.cluster_host()).await;
    assert_eq!(code, Some(0), "a warning, not a failure: {out}");
    assert!(out.contains("cannot read the Aurora topology"), "{out}");
    assert!(out.contains("42883"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_topology_function_sessions_dial_the_endpoint_after_one_log_line() {
    let aurora = aurora(Duration::from_secs(20)).await;
    aurora
        .on_writer("DROP FUNCTION pg_catalog.aurora_replica_status()")
        .await
        .unwrap();
    let mut proxy = proxy(&aurora, &["--topology-user", "iam_user"])
        .spawn()
        .unwrap();
    let (writer, reader) = addrs(&proxy);
    const FELL_BACK: &str =
        "cannot read the Aurora topology; dialling the endpoint by DNS (as topology = off)";
    let lines = proxy
        .wait_for_message(FELL_BACK, 1, Duration::from_secs(10))
        .unwrap();
    assert!(lines[0].contains("42883"), "{}", lines[0]);
    // After the fallback: the endpoints by name, as without topology.
    for _ in 0..3 {
        assert_eq!(session_on(writer).await.1, aurora.instance(0).names.id);
    }
    // The reader endpoint's DNS names the first reader.
    assert_eq!(session_on(reader).await.1, aurora.instance(1).names.id);
    assert_eq!(proxy.log_messages(FELL_BACK).len(), 1, "one line");
    // Tokens were signed for the endpoints as given, as without topology.
    let endpoints = signed_for(&aurora, 0);
    assert!(endpoints.len() >= 4, "{endpoints:?}");
    assert!(
        endpoints
            .iter()
            .all(|e| *e == format!("{}:5432", aurora.cluster_host())),
        "{endpoints:?}"
    );
    assert!(proxy
        .log_messages("Aurora writer change confirmed")
        .is_empty());
}

//! End-to-end: operating the proxy. Admin endpoints and metrics after known traffic, graceful
//! shutdown on SIGTERM and `/quitquitquit`, readiness following the credentials, systemd
//! notifications, and logs that carry connection facts but never a secret.

mod common;

#[path = "operations/admin_client.rs"]
mod admin_client;

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use admin_client::{get, metric, post, wait_for_active, wait_for_status};
use common::{
    admin_addr, connect, connect_error, direct_session, proxy_for, spawn_with_admin, standin,
    standin_with_session_lifetime, still_serves, target_name, PROXY_BIN,
};
use serde_json::Value;
use standin::ProxyCommand;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// Receives one datagram, failing after `WAIT`.
fn recv_notification(socket: &UnixDatagram) -> String {
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a systemd notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_metrics_after_known_traffic_then_quitquitquit_exits_0() {
    let s = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let (mut proxy, admin) = spawn_with_admin(
        proxy_for(&s)
            .arg("--quitquitquit")
            .env("NOTIFY_SOCKET", notify_path.display().to_string()),
    );
    let target = target_name(&proxy);

    // READY=1 comes once started, and /startup agrees from then on.
    assert_eq!(recv_notification(&notify), "READY=1");
    assert_eq!(get(admin, "/startup").await.0, 200);
    assert_eq!(get(admin, "/liveness").await.0, 200);
    let (status, body) = get(admin, "/readiness").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(admin, "/nonesuch").await.0, 404);
    assert_eq!(
        get(admin, "/quitquitquit").await.0,
        405,
        "GET must not stop it"
    );

    // Known traffic: three good sessions and one the database refuses (no rds_iam grant).
    for i in 0..3 {
        let client = connect(proxy.addr(), "iam_user").await.unwrap();
        let rows = client
            .simple_query(&format!("select repeat('x', 1000) as n{i}"))
            .await
            .unwrap();
        assert!(!rows.is_empty());
        drop(client);
    }
    let (code, message, _) = connect_error(proxy.addr(), "not_iam").await;
    assert_eq!(code, "28000", "{message}");
    // Each session's figures are recorded when it closes; wait for the four close lines.
    proxy
        .wait_for_message("connection closed", 4, WAIT)
        .unwrap();

    let (status, text) = get(admin, "/metrics").await;
    assert_eq!(status, 200);
    let t = target.as_str();
    let value = |name: &str, labels: &[(&str, &str)]| {
        metric(&text, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} in:\n{text}"))
    };
    let ok = value(
        "rds_iam_proxy_connections_total",
        &[("target", t), ("result", "ok")],
    );
    let failed = value(
        "rds_iam_proxy_connections_total",
        &[("target", t), ("result", "auth_failed")],
    );
    let auth_failures = value("rds_iam_proxy_auth_failures_total", &[("target", t)]);
    let active = value("rds_iam_proxy_connections_active", &[("target", t)]);
    let connects = value("rds_iam_proxy_upstream_connect_seconds_count", &[]);
    let connect_sum = value("rds_iam_proxy_upstream_connect_seconds_sum", &[]);
    let bytes_up = value(
        "rds_iam_proxy_bytes_total",
        &[("target", t), ("direction", "client_to_server")],
    );
    let bytes_down = value(
        "rds_iam_proxy_bytes_total",
        &[("target", t), ("direction", "server_to_client")],
    );
    let mints = value("rds_iam_proxy_token_mints_total", &[("result", "ok")]);
    let token_ttl = value("rds_iam_proxy_token_expiry_seconds", &[("target", t)]);
    let creds_ttl = value("rds_iam_proxy_credentials_expiry_seconds", &[("target", t)]);
    eprintln!(
        "metrics: ok={ok} auth_failed={failed} auth_failures={auth_failures} active={active} \
         upstream_connects={connects} (sum {connect_sum:.3}s) bytes up={bytes_up} down={bytes_down} \
         mints_ok={mints} token_expiry={token_ttl:.0}s credentials_expiry={creds_ttl:.0}s"
    );
    assert_eq!(ok, 3.0);
    assert_eq!(failed, 1.0);
    assert_eq!(auth_failures, 1.0);
    assert_eq!(active, 0.0);
    assert_eq!(
        connects, 3.0,
        "one upstream connect observation per good session"
    );
    assert!(connect_sum > 0.0);
    // Three replies of 1000+ bytes came down; queries and Terminate went up.
    assert!(bytes_down > 3000.0, "{bytes_down}");
    assert!(bytes_up > 0.0, "{bytes_up}");
    // The refused user needed a token of its own: at least two mints.
    assert!(mints >= 2.0, "{mints}");
    // Tokens are used for at most 900 s less the safety margin; credentials last 1 h here.
    assert!((600.0..=900.0).contains(&token_ttl), "{token_ttl}");
    assert!((3000.0..=3600.0).contains(&creds_ttl), "{creds_ttl}");

    // /quitquitquit: an orderly stop with exit 0, STOPPING=1 on the way.
    let (status, body) = post(admin, "/quitquitquit").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(recv_notification(&notify), "STOPPING=1");
    let exit = proxy.wait_exit(WAIT).unwrap();
    assert_eq!(exit.code(), Some(0), "{}", proxy.logs().join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_open_transaction_commit_refuses_new_connections_and_exits_143() {
    let s = standin().await;
    let (mut proxy, admin) = spawn_with_admin(proxy_for(&s).args([
        "--min-sigterm-delay",
        "1s",
        "--max-sigterm-delay",
        "10s",
    ]));
    let addr = proxy.addr();
    let client = connect(addr, "iam_user").await.unwrap();
    client
        .batch_execute("BEGIN; CREATE TABLE drained (v int); INSERT INTO drained VALUES (42)")
        .await
        .unwrap();

    let signalled = Instant::now();
    proxy.signal("TERM").unwrap();
    proxy
        .wait_for_message(
            "shutdown requested; still accepting for the min delay",
            1,
            WAIT,
        )
        .unwrap();
    // Inside the min delay: still accepting and still ready.
    if signalled.elapsed() < Duration::from_millis(700) {
        let late = connect(addr, "iam_user")
            .await
            .expect("accepted in the min delay");
        drop(late);
    }
    // After it: readiness fails and the listener is gone.
    proxy
        .wait_for_message("stopped accepting; draining open connections", 1, WAIT)
        .unwrap();
    let stopped_accepting = signalled.elapsed();
    assert!(
        stopped_accepting >= Duration::from_secs(1),
        "{stopped_accepting:?}"
    );
    let (status, body) = get(admin, "/readiness").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("shutting down"), "{body}");
    assert_eq!(get(admin, "/liveness").await.0, 200);
    let refused = TcpStream::connect(addr).await.map(drop);
    assert_eq!(
        refused.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused),
        "{refused:?}"
    );

    // The open transaction still commits during the drain.
    client.batch_execute("COMMIT").await.unwrap();
    let committed: i32 = direct_session(&s)
        .await
        .query_one("SELECT v FROM drained", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(committed, 42);

    // Closing the last session ends the drain at once, long before the 10 s maximum.
    drop(client);
    let exit = proxy.wait_exit(Duration::from_secs(8)).unwrap();
    let total = signalled.elapsed();
    eprintln!("sigterm: stopped accepting after {stopped_accepting:?}, exited after {total:?}");
    assert!(total < Duration::from_secs(6), "{total:?}");
    assert_eq!(exit.code(), Some(143), "{}", proxy.logs().join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_sends_57p01_before_the_splice_and_exit_zero_on_sigterm() {
    let s = standin().await;
    let (mut proxy, admin) = spawn_with_admin(proxy_for(&s).args([
        "--max-sigterm-delay",
        "2s",
        "--exit-zero-on-sigterm",
    ]));
    let addr = proxy.addr();
    let spliced = connect(addr, "iam_user").await.unwrap();
    spliced.simple_query("select 1").await.unwrap();
    // A client that connected but has not sent its startup packet yet.
    let mut starting = TcpStream::connect(addr).await.unwrap();
    wait_for_active(admin, &target_name(&proxy), 2, WAIT).await;

    let signalled = Instant::now();
    proxy.signal("TERM").unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, starting.read_to_end(&mut reply))
        .await
        .expect("closed at the end of the drain")
        .unwrap();
    let waited = signalled.elapsed();
    assert_eq!(reply.first(), Some(&b'E'), "an ErrorResponse: {reply:?}");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("C57P01"), "{text}");
    assert!(
        text.contains("rds-iam-proxy: the proxy is shutting down"),
        "{text}"
    );
    assert!(
        waited >= Duration::from_millis(1900),
        "closed only when the drain ran out: {waited:?}"
    );
    // The spliced session cannot be sent a message mid-stream: it is just closed.
    assert!(spliced.simple_query("select 1").await.is_err());
    let exit = proxy.wait_exit(WAIT).unwrap();
    assert_eq!(exit.code(), Some(0), "{}", proxy.logs().join("\n"));
    let stopped = proxy.log_messages("stopped");
    assert_eq!(json(&stopped[0])["closed_by_force"], 2, "{stopped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_ends_at_once() {
    // No database needed: an idle client connection keeps the drain going.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    standin::TestCa::new("unused CA")
        .unwrap()
        .write_pem(&ca)
        .unwrap();
    let nowhere = standin::cluster::free_port().unwrap();
    let mut proxy = ProxyCommand::new(PROXY_BIN)
        .args([
            "postgres://db.cluster-abc.us-east-1.rds.amazonaws.com/appdb".to_owned(),
            "--connect-to".into(),
            format!("127.0.0.1:{nowhere}"),
            "--ca-file".into(),
            ca.display().to_string(),
            "--max-sigterm-delay".into(),
            "60s".into(),
            "--admin-listen".into(),
            "127.0.0.1:0".into(),
        ])
        .isolated_aws(&dir.path().join("none"))
        .spawn()
        .unwrap();
    let admin = admin_addr(&mut proxy);
    let _idle = TcpStream::connect(proxy.addr()).await.unwrap();
    wait_for_active(admin, &target_name(&proxy), 1, WAIT).await;
    proxy.signal("TERM").unwrap();
    proxy
        .wait_for_message("stopped accepting; draining open connections", 1, WAIT)
        .unwrap();
    let second = Instant::now();
    proxy.signal("TERM").unwrap();
    let exit = proxy.wait_exit(Duration::from_secs(5)).unwrap();
    assert!(second.elapsed() < Duration::from_secs(3));
    assert_eq!(exit.code(), Some(143));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_credentials_are_gone_and_recovers() {
    // Session credentials live 12 s, so they (and the tokens cut to them) lapse quickly.
    let s = standin_with_session_lifetime(Duration::from_secs(12)).await;
    let (proxy, admin) = spawn_with_admin(proxy_for(&s));
    wait_for_status(admin, "/readiness", 200, WAIT).await;
    still_serves(&proxy).await;

    let outage = Instant::now();
    s.aws().set_container_failing(true);
    let body = wait_for_status(admin, "/readiness", 503, Duration::from_secs(40)).await;
    let down_after = outage.elapsed();
    assert!(body.contains("cannot mint tokens"), "{body}");
    // Still alive and started: only readiness reflects the outage.
    assert_eq!(get(admin, "/liveness").await.0, 200);
    assert_eq!(get(admin, "/startup").await.0, 200);

    let restored = Instant::now();
    s.aws().set_container_failing(false);
    wait_for_status(admin, "/readiness", 200, Duration::from_secs(90)).await;
    let up_after = restored.elapsed();
    eprintln!("readiness: 503 {down_after:?} into the outage, 200 again {up_after:?} after it");
    connect(proxy.addr(), "iam_user")
        .await
        .unwrap()
        .simple_query("select 1")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_describe_connections_and_hold_no_secret() {
    let s = standin().await;
    let mut proxy = proxy_for(&s)
        .args(["--user", "iam_user", "--log-level", "trace"])
        .spawn()
        .unwrap();
    // With a forced user the first token is minted at start-up, before any client.
    proxy
        .wait_for_message("minted RDS IAM auth token", 1, WAIT)
        .unwrap();
    let client = connect(proxy.addr(), "someone").await.unwrap();
    client
        .simple_query("select repeat('y', 500)")
        .await
        .unwrap();
    drop(client);
    let closed = proxy
        .wait_for_message("connection closed", 1, WAIT)
        .unwrap();
    let target = target_name(&proxy);

    let opened = json(&proxy.log_messages("connection opened")[0]);
    let closed = json(&closed[0]);
    for line in [&opened, &closed] {
        assert_eq!(line["user"], "iam_user", "{line}");
        assert_eq!(line["database"], "appdb", "{line}");
        // The connection's span carries target and client address.
        assert_eq!(line["span"]["name"], "conn", "{line}");
        assert_eq!(line["span"]["target"], target.as_str(), "{line}");
        assert!(
            line["span"]["client"]
                .as_str()
                .is_some_and(|c| c.starts_with("127.0.0.1:")),
            "{line}"
        );
    }
    assert_eq!(closed["outcome"], "ok", "{closed}");
    assert!(closed["duration_ms"].is_u64(), "{closed}");
    assert!(closed["bytes_in"].as_u64().unwrap() > 0, "{closed}");
    assert!(closed["bytes_out"].as_u64().unwrap() > 500, "{closed}");
    // Credential and token refreshes are logged with their expiry.
    let creds = json(&proxy.log_messages("AWS credentials refreshed")[0]);
    assert!(creds["expires_at"].is_string(), "{creds}");
    let minted = json(&proxy.log_messages("minted RDS IAM auth token")[0]);
    assert!(minted["expires_at"].is_string(), "{minted}");

    // Stop the process so every line it will ever write is in.
    proxy.signal("TERM").unwrap();
    proxy.wait_exit(WAIT).unwrap();
    let logs = proxy.logs().join("\n");
    let checks = s.token_checks();
    assert!(!checks.is_empty());
    let mut secrets: Vec<(String, &str)> = Vec::new();
    for check in &checks {
        secrets.push((check.token.to_string(), "token"));
        if let Some(sig) = check.token.split("X-Amz-Signature=").nth(1) {
            secrets.push((sig.to_owned(), "token signature"));
        }
        if let Some(st) = check.token.split("X-Amz-Security-Token=").nth(1) {
            let st = st.split('&').next().unwrap_or_default();
            secrets.push((st.to_owned(), "URL-encoded session token"));
        }
    }
    let issued = s.aws().last_issued().expect("credentials were issued");
    secrets.push((issued.secret_access_key.clone(), "secret access key"));
    let session_token = issued.session_token.clone().unwrap();
    secrets.push((session_token.clone(), "session token"));
    // A long prefix catches a token that was cut or wrapped.
    secrets.push((session_token[..40].to_owned(), "session token prefix"));
    // Name each offending line with the secrets blanked out, so a failure shows none.
    let mut leaks = Vec::new();
    for line in proxy.logs() {
        let found: Vec<&str> = secrets
            .iter()
            .filter(|(secret, _)| line.contains(secret.as_str()))
            .map(|(_, what)| *what)
            .collect();
        if !found.is_empty() {
            let blanked = secrets.iter().fold(line, |l, (secret, _)| {
                l.replace(secret.as_str(), "<REDACTED>")
            });
            leaks.push(format!("{found:?} in: {blanked}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets reached the log:\n{}",
        leaks.join("\n")
    );
    eprintln!(
        "trace log: {} lines, {} bytes, {} secrets checked absent",
        proxy.logs().len(),
        logs.len(),
        secrets.len()
    );
}

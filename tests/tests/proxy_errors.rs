//! End-to-end: every way a connection can fail gives the client a FATAL ErrorResponse with the
//! SQLSTATE from the contract and a message saying what to do, and the proxy keeps serving.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{config_proxy, connect, connect_error, proxy_for, sqlstate, standin, target_toml};
use standin::cluster::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One proxy, several targets on their own ports: a good one and one per failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_untrusted_or_plaintext_databases_get_08001_and_others_keep_working() {
    let s = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let wrong_ca = s.write_wrong_ca_file().unwrap();

    // A server that refuses TLS, as a misconfigured or downgraded endpoint would.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_addr = plain.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = plain.accept().await {
            let mut req = [0u8; 8];
            if sock.read_exact(&mut req).await.is_ok() {
                let _ = sock.write_all(b"N").await;
            }
        }
    });
    let nothing = free_port().unwrap();
    let ports: Vec<u16> = (0..5).map(|_| free_port().unwrap()).collect();
    let ca = s.ca_file();
    let host = s.host().to_owned();
    let real = s.addr().to_string();
    let target = |name: &str, host: &str, port: u16, connect_to: &str, ca: &Path| {
        target_toml(
            name,
            host,
            &[format!("127.0.0.1:{port}")],
            ca,
            &format!("database = \"appdb\"\nconnect_to = \"{connect_to}\""),
        )
    };
    let config = [
        target("good", &host, ports[0], &real, ca),
        target("down", &host, ports[1], &format!("127.0.0.1:{nothing}"), ca),
        target("wrongca", &host, ports[2], &real, &wrong_ca),
        target(
            "mismatch",
            "other.cluster-c0ffee123abc.us-east-1.rds.amazonaws.com",
            ports[3],
            &real,
            ca,
        ),
        target("plaintext", &host, ports[4], &plain_addr.to_string(), ca),
    ]
    .concat();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, config).unwrap();
    let proxy = config_proxy(&s, &path, 5)
        .args(["--connect-timeout", "5s"])
        .spawn()
        .unwrap();
    let at =
        |i: usize| -> std::net::SocketAddr { format!("127.0.0.1:{}", ports[i]).parse().unwrap() };

    let cases = [
        (1, "cannot connect to the database"),
        (2, "TLS verification"),
        (3, "TLS verification"),
        (4, "does not accept TLS"),
    ];
    for (i, expected) in cases {
        let (code, message, _) = connect_error(at(i), "iam_user").await;
        assert_eq!(code, "08001", "target {i}: {message}");
        assert!(message.starts_with("rds-iam-proxy: "), "{message}");
        assert!(message.contains(expected), "target {i}: {message}");
        // The good target still serves after each failure.
        let client = connect(at(0), "iam_user")
            .await
            .expect("good target still works");
        client.simple_query("select 1").await.unwrap();
    }
    let wrong_ca_msg = connect_error(at(2), "iam_user").await.1;
    assert!(
        wrong_ca_msg.to_lowercase().contains("unknownissuer") || wrong_ca_msg.contains("issuer"),
        "{wrong_ca_msg}"
    );
    let mismatch_msg = connect_error(at(3), "iam_user").await.1;
    assert!(
        mismatch_msg.contains("NotValidForName") || mismatch_msg.contains("not valid for"),
        "{mismatch_msg}"
    );
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_then_back_without_restarting_the_proxy() {
    let s = standin().await;
    let proxy = proxy_for(&s)
        .args(["--connect-timeout", "5s"])
        .spawn()
        .unwrap();
    s.stop_database().await.unwrap();
    let (code, message, _) = connect_error(proxy.addr(), "iam_user").await;
    assert_eq!(code, "08001", "{message}");
    s.start_database().await.unwrap();
    let client = connect(proxy.addr(), "iam_user")
        .await
        .expect("works once the database is back");
    client.simple_query("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_token_is_retried_once_then_reported_as_28000_with_a_hint() {
    let s = standin().await;
    let proxy = proxy_for(&s).spawn().unwrap();
    // Warm the cache, then make every token look expired to the "database".
    connect(proxy.addr(), "iam_user").await.unwrap();
    s.reset_token_stats();
    s.checker().set_clock_skew(3600);
    let (code, message, hint) = connect_error(proxy.addr(), "iam_user").await;
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.starts_with("rds-iam-proxy: the database rejected the IAM token"),
        "{message}"
    );
    let hint = hint.expect("a hint naming the likely causes");
    for cause in ["rds_iam", "arn:aws:rds-db:", "region", "clock"] {
        assert!(hint.contains(cause), "hint lacks {cause}: {hint}");
    }
    let stats = s.token_stats();
    assert_eq!(
        stats.refused, 2,
        "one attempt and one retry with a fresh token"
    );
    assert_eq!(
        stats.distinct_tokens, 2,
        "the retry used a newly minted token"
    );
    // The clock is fixed: the next connection works.
    s.checker().set_clock_skew(0);
    connect(proxy.addr(), "iam_user")
        .await
        .expect("works again");
    let logs = proxy.logs().join("\n");
    assert!(
        logs.contains("auth_failed"),
        "the close log line names the outcome"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_gives_08004_and_recovers_when_they_return() {
    let s = standin().await;
    s.aws().set_container_failing(true);
    let proxy = proxy_for(&s).spawn().unwrap();
    let (code, message, _) = connect_error(proxy.addr(), "iam_user").await;
    assert_eq!(code, "08004", "{message}");
    assert!(message.contains("AWS credentials"), "{message}");
    s.aws().set_container_failing(false);
    // A failed fetch is remembered briefly (so a retrying client cannot hammer the credential
    // endpoint); within a few seconds the proxy recovers by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = loop {
        match connect(proxy.addr(), "iam_user").await {
            Ok(client) => break client,
            Err(e) => {
                assert_eq!(sqlstate(&e).as_deref(), Some("08004"), "{e}");
                assert!(Instant::now() < deadline, "no recovery: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    client.simple_query("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_without_rds_iam_is_told_to_grant_it() {
    let s = standin().await;
    s.create_password_user("pw_user", "secret-pw")
        .await
        .unwrap();
    let proxy = proxy_for(&s).spawn().unwrap();
    let (code, message, hint) = connect_error(proxy.addr(), "pw_user").await;
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.contains("password instead of an IAM token"),
        "{message}"
    );
    assert!(hint.unwrap_or_default().contains("GRANT rds_iam"));
}

/// Reads what the proxy sends until it closes, bounded in time.
async fn read_until_close(sock: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(limit, sock.read_to_end(&mut got))
        .await
        .expect("proxy closed the socket");
    got
}

fn assert_fatal(reply: &[u8], sqlstate: &str) {
    assert_eq!(reply.first(), Some(&b'E'), "an ErrorResponse: {reply:?}");
    let text = String::from_utf8_lossy(reply);
    assert!(
        text.contains(&format!("C{sqlstate}\0")),
        "SQLSTATE {sqlstate} in {text:?}"
    );
    assert!(text.contains("SFATAL\0"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversized_and_silent_clients_are_refused_within_limits() {
    let s = standin().await;
    let proxy = proxy_for(&s)
        .args(["--startup-timeout", "1s"])
        .spawn()
        .unwrap();
    let addr = proxy.addr();

    // An HTTP request: its first four bytes read as a huge length.
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_fatal(
        &read_until_close(&mut sock, Duration::from_secs(5)).await,
        "08P01",
    );

    // A startup packet declaring 20,000 bytes is refused before its body is sent.
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let mut header = 20_000u32.to_be_bytes().to_vec();
    header.extend_from_slice(&196_608u32.to_be_bytes());
    sock.write_all(&header).await.unwrap();
    assert_fatal(
        &read_until_close(&mut sock, Duration::from_secs(5)).await,
        "08P01",
    );

    // A client that says nothing is closed at the startup timeout.
    let started = Instant::now();
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let reply = read_until_close(&mut sock, Duration::from_secs(10)).await;
    let waited = started.elapsed();
    assert_fatal(&reply, "08P01");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );

    // Protocol 2.0 is refused with the server's own SQLSTATE for it.
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let mut v2 = 16u32.to_be_bytes().to_vec();
    v2.extend_from_slice(&0x0002_0000u32.to_be_bytes());
    v2.extend_from_slice(b"user\0x\0\0\0");
    sock.write_all(&v2[..16]).await.unwrap();
    assert_fatal(
        &read_until_close(&mut sock, Duration::from_secs(5)).await,
        "0A000",
    );

    // And the proxy carries on.
    let client = connect(addr, "iam_user")
        .await
        .expect("normal client still served");
    client.simple_query("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_with_53300() {
    let s = standin().await;
    let proxy = proxy_for(&s)
        .args(["--max-connections", "2"])
        .spawn()
        .unwrap();
    let a = connect(proxy.addr(), "iam_user").await.unwrap();
    let b = connect(proxy.addr(), "iam_user").await.unwrap();
    let (code, message, _) = connect_error(proxy.addr(), "iam_user").await;
    assert_eq!(code, "53300", "{message}");
    drop(a);
    // The slot frees when the first session ends; wait for the proxy to log its close.
    let mut proxy = proxy;
    proxy
        .wait_for_logs(Duration::from_secs(10), |lines| {
            lines
                .iter()
                .filter(|l| l.contains("connection closed") && l.contains("\"outcome\":\"ok\""))
                .count()
                >= 1
        })
        .unwrap();
    let c = connect(proxy.addr(), "iam_user")
        .await
        .expect("a freed slot is reused");
    c.simple_query("select 1").await.unwrap();
    b.simple_query("select 1").await.unwrap();
}

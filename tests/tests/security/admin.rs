//! The admin listener (findings 2 and 3): loopback unless allow_remote, /quitquitquit off
//! unless asked for, a header-read timeout, a connection cap, no large bodies.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::admin_client::{get, post};
use crate::common::{proxy_for, spawn_with_admin, standin, PROXY_BIN};

/// The proxy's `admin/serve.rs` limits, as documented.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ADMIN_CONNECTIONS: usize = 32;
const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(30);

#[test]
fn a_non_loopback_admin_address_needs_allow_remote() {
    let out = std::process::Command::new(PROXY_BIN)
        .args([
            "postgres://db.example.com/appdb",
            "--admin-listen",
            "0.0.0.0:9801",
        ])
        .env_clear()
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("admin_listen") && stderr.contains("0.0.0.0:9801"),
        "{stderr}"
    );
    assert!(
        stderr.contains("loopback") && stderr.contains("allow_remote"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quitquitquit_is_off_unless_asked_for() {
    let s = standin().await;
    let (mut proxy, admin) = spawn_with_admin(proxy_for(&s));
    assert_eq!(post(admin, "/quitquitquit").await.0, 404);
    assert!(
        proxy.wait_exit(Duration::from_millis(300)).is_err(),
        "still running"
    );
    crate::common::still_serves(&proxy).await;

    let (mut proxy, admin) = spawn_with_admin(proxy_for(&s).arg("--quitquitquit"));
    let (status, body) = post(admin, "/quitquitquit").await;
    assert_eq!(status, 200, "{body}");
    let exit = proxy.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(exit.code().is_some(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_request_head_is_cut_off_after_the_header_timeout() {
    let s = standin().await;
    let (proxy, admin) = spawn_with_admin(proxy_for(&s));
    let mut partial = TcpStream::connect(admin).await.unwrap();
    let partial_at = Instant::now();
    partial
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(admin).await.unwrap();
    let silent_at = Instant::now();
    let mut buf = [0u8; 256];
    for (sock, connected_at) in [(&mut partial, partial_at), (&mut silent, silent_at)] {
        let read = tokio::time::timeout(HEADER_READ_TIMEOUT * 3, sock.read(&mut buf)).await;
        let waited = connected_at.elapsed();
        // Closed without a reply (EOF or reset), not answered.
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "not closed, or answered, after {waited:?}: {read:?}"
        );
        assert!(
            waited >= HEADER_READ_TIMEOUT - Duration::from_secs(1),
            "closed early, after {waited:?}"
        );
        println!("admin connection without a whole head closed after {waited:?}");
    }
    assert_eq!(get(admin, "/liveness").await.0, 200);
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_replies_is_cut_off_at_the_connection_time_limit() {
    let s = standin().await;
    let (proxy, admin) = spawn_with_admin(proxy_for(&s));
    let mut hog = TcpStream::connect(admin).await.unwrap();
    let started = Instant::now();
    // Pipelined requests whose replies are never read: hyper blocks writing them once the
    // socket buffers are full, which no header timeout covers.
    let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
    let closed = async {
        loop {
            if hog.write_all(&request).await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(MAX_CONNECTION_LIFE * 2, closed)
        .await
        .expect("the connection is closed at its time limit");
    let waited = started.elapsed();
    println!("admin connection that never read its replies closed after {waited:?}");
    assert!(
        waited >= MAX_CONNECTION_LIFE - Duration::from_secs(1),
        "{waited:?}"
    );
    assert_eq!(get(admin, "/liveness").await.0, 200);
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_at_once_and_bodies_are_refused() {
    let s = standin().await;
    let (proxy, admin) = spawn_with_admin(proxy_for(&s));
    let mut held = Vec::new();
    for _ in 0..MAX_ADMIN_CONNECTIONS {
        held.push(TcpStream::connect(admin).await.unwrap());
    }
    // Each held one has been accepted once a request on a later one is answered; until then
    // the accept loop may still be working through the backlog.
    for extra in 0..8 {
        let mut sock = TcpStream::connect(admin).await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("connection {extra} over the cap was kept open"));
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "closed without a reply: {read:?}"
        );
        println!(
            "connection over the cap closed after {:?}",
            started.elapsed()
        );
    }
    drop(held);
    // Freed slots serve again (the held sockets' tasks end when they see EOF).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = try_get(admin, "/liveness").await;
        if reply.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "admin did not recover: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut sock = TcpStream::connect(admin).await.unwrap();
    sock.write_all(
        b"POST /liveness HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut reply))
        .await
        .expect("answered without reading the body")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_asks_the_admin_endpoint_on_loopback() {
    let s = standin().await;
    let (mut proxy, admin) = spawn_with_admin(proxy_for(&s));
    proxy
        .wait_for_message(
            "started: listening, with AWS credentials",
            1,
            Duration::from_secs(30),
        )
        .unwrap();
    for endpoint in ["startup", "liveness", "readiness"] {
        let out = std::process::Command::new(PROXY_BIN)
            .args(["probe", endpoint, "--admin", &admin.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{endpoint}: {out:?}");
    }
    drop(proxy);
    let out = std::process::Command::new(PROXY_BIN)
        .args(["probe", "liveness", "--admin", &admin.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!out.stderr.is_empty(), "says why: {out:?}");
}

/// The raw reply to one GET, empty when the connection was closed without one.
async fn try_get(admin: std::net::SocketAddr, path: &str) -> String {
    let Ok(mut sock) = TcpStream::connect(admin).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if sock.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), sock.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

//! What a hostile neighbour on the host can do (issue 17, spec §5), end to end: floods of
//! CancelRequests must not fill the log, and names a client chooses must not forge log lines;
//! the modules below take one finding each.

#[path = "security/admin.rs"]
mod admin;
#[path = "operations/admin_client.rs"]
#[allow(dead_code)]
mod admin_client;
mod common;
#[path = "security/limits.rs"]
mod limits;
#[path = "pool/raw_client.rs"]
#[allow(dead_code)]
mod raw_client;
#[path = "security/server_echo.rs"]
mod server_echo;
#[path = "security/startup_signals.rs"]
mod startup_signals;
#[path = "security/tls_required.rs"]
mod tls_required;
#[path = "security/token_flood.rs"]
mod token_flood;
#[path = "security/unix_socket.rs"]
mod unix_socket;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use admin_client::{get, metric};
use common::{proxy_for, spawn_with_admin, standin, target_name, PROXY_BIN};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A CancelRequest for a key nobody has.
fn cancel_request(pid: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&16u32.to_be_bytes());
    out.extend_from_slice(&80_877_102u32.to_be_bytes());
    out.extend_from_slice(&pid.to_be_bytes());
    out.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_flood_writes_nothing_at_info_and_is_counted() {
    let s = standin().await;
    let (proxy, admin) = spawn_with_admin(proxy_for(&s).args(["--log-level", "info"]));
    let target = target_name(&proxy);
    const N: usize = 60;
    for i in 0..N {
        let mut sock = TcpStream::connect(proxy.addr()).await.unwrap();
        sock.write_all(&cancel_request(i as u32 + 1)).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let labels = [("target", target.as_str()), ("result", "unknown")];
    loop {
        let (_, text) = get(admin, "/metrics").await;
        let counted = metric(&text, "rds_iam_proxy_cancel_requests_total", &labels).unwrap_or(0.0);
        if counted == N as f64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "counted {counted} of {N} cancels"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines: Vec<String> = proxy
        .logs()
        .into_iter()
        .filter(|l| l.to_ascii_lowercase().contains("cancel"))
        .collect();
    assert!(
        lines.is_empty(),
        "{} INFO lines for {N} cancels: {lines:#?}",
        lines.len()
    );
    common::still_serves(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_name_cannot_forge_a_text_log_line_or_send_escapes() {
    let s = standin().await;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = Command::new(PROXY_BIN)
        .arg(format!("postgres://{}/appdb", s.endpoint()))
        .args(["--connect-to", &s.addr().to_string()])
        .args(["--ca-file", &s.ca_file().display().to_string()])
        .args(["--listen", &addr.to_string(), "--log-format", "text"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(s.credentials_env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready once it accepts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the proxy did not listen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let evil = "evil\nINFO rds_iam_proxy: FORGED connection closed\x1b[2J";
    let packet = raw_client::startup_packet(&[("user", evil), ("database", "appdb\r\nFORGED-DB")]);
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(&packet).await.unwrap();
    // The database refuses that user; the proxy logs the attempt and closes.
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read_to_end(&mut sock, &mut reply),
    )
    .await;
    terminate(&mut child);
    let mut log = Vec::new();
    child.stderr.take().unwrap().read_to_end(&mut log).unwrap();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("connection opened"), "{text}");
    assert!(!log.contains(&0x1b), "a raw ESC reached the log: {text}");
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("INFO rds_iam_proxy: FORGED")
                && !line.starts_with("FORGED"),
            "a forged line: {line:?}\n{text}"
        );
    }
    assert!(
        text.contains(r"evil\nINFO rds_iam_proxy: FORGED"),
        "escaped: {text}"
    );
    assert!(text.contains(r"appdb\r\nFORGED-DB"), "escaped: {text}");
}

/// Stops the child with SIGTERM.
fn terminate(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

//! A minimal HTTP/1.1 client for the proxy's admin endpoint (one request per connection),
//! and a reader for its Prometheus text.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Status code and body of `METHOD path`.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut sock = TcpStream::connect(addr)
        .await
        .expect("admin endpoint reachable");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut raw))
        .await
        .expect("admin reply within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"));
    (status, body.to_owned())
}

pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, "GET", path).await
}

pub async fn post(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, "POST", path).await
}

/// Polls `path` until it answers `status`; returns that body. Panics after `timeout`.
pub async fn wait_for_status(
    addr: SocketAddr,
    path: &str,
    status: u16,
    timeout: Duration,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (got, body) = get(addr, path).await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still {got} after {timeout:?}, not {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of the sample `name{labels...}` (the labels given must all match; others may
/// be present), from Prometheus/OpenMetrics text.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let all = labels.iter().all(|(k, v)| {
                series_labels
                    .split(',')
                    .any(|kv| kv == format!("{k}=\"{v}\""))
            });
            all.then(|| value.parse().ok()).flatten()
        })
}

/// Waits up to `wait` until the proxy counts exactly `n` open client connections for `target`
/// (so they were accepted, or have all closed); a target with no gauge yet counts as 0.
pub async fn wait_for_active(admin: SocketAddr, target: &str, n: usize, wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        let (_, text) = get(admin, "/metrics").await;
        let active = metric(
            &text,
            "rds_iam_proxy_connections_active",
            &[("target", target)],
        )
        .unwrap_or(0.0);
        if active == n as f64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{active} active connections, never {n}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

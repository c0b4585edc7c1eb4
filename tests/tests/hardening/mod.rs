//! Shared pieces of the hardening tests (faults.rs, load.rs, integrity.rs): the long-variant
//! switch, the proxy's RSS, a raw PostgreSQL client for clients that misbehave on purpose, and
//! server-side views of the sessions.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use standin::StandIn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `RDS_IAM_TESTS_FULL=1` runs the full-size variants (`scripts/test-long`); otherwise the
/// shorter CI variants run.
pub fn full() -> bool {
    std::env::var("RDS_IAM_TESTS_FULL").is_ok_and(|v| v == "1")
}

/// `ci` normally, `full` under `RDS_IAM_TESTS_FULL=1`.
pub fn size<T>(ci: T, full_size: T) -> T {
    if full() {
        full_size
    } else {
        ci
    }
}

/// Resident set size of a process, from /proc/PID/status, in KiB.
pub fn vm_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The anonymous part of a process's RSS (its heap and stacks), in KiB. Unlike `VmRSS` it leaves
/// out the pages of the executable paged in as code paths run for the first time, which are
/// file-backed and make up most of a debug build's RSS.
pub fn rss_anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/PID/status"))
}

/// Polls the proxy's anonymous RSS until it is at most `limit_kib`, or has stopped falling (no
/// new low for 8 s), or a minute has passed; returns the last reading and how long it took. The
/// allocator hands freed memory back to the OS in steps over its decay time (1 s, set in
/// `.cargo/config.toml`), so RSS falls for a while after the connections close; no event says
/// when it is done.
pub async fn rss_anon_settles(pid: u32, limit_kib: u64) -> (u64, Duration) {
    const QUIET: Duration = Duration::from_secs(8);
    const DEADLINE: Duration = Duration::from_secs(60);
    let started = Instant::now();
    let (mut low, mut low_at) = (u64::MAX, started);
    loop {
        let rss = rss_anon_kib(pid);
        if rss < low {
            (low, low_at) = (rss, Instant::now());
        }
        if rss <= limit_kib || low_at.elapsed() >= QUIET || started.elapsed() >= DEADLINE {
            return (rss, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A StartupMessage (protocol 3.0) with these parameters.
pub fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = vec![0, 3, 0, 0];
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = (body.len() as u32 + 4).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// A simple-protocol Query message.
pub fn query_message(sql: &str) -> Vec<u8> {
    let mut m = vec![b'Q'];
    m.extend_from_slice(&(sql.len() as u32 + 5).to_be_bytes());
    m.extend_from_slice(sql.as_bytes());
    m.push(0);
    m
}

/// Reads one backend message: (tag, body).
pub async fn read_message(sock: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let tag = sock.read_u8().await?;
    let len = sock.read_u32().await? as usize;
    let mut body = vec![0; len.saturating_sub(4)];
    sock.read_exact(&mut body).await?;
    Ok((tag, body))
}

/// A hand-driven session through the proxy, for clients that misbehave on purpose: startup
/// with `application_name`, then everything up to the first ReadyForQuery.
pub async fn raw_session(addr: SocketAddr, user: &str, application_name: &str) -> TcpStream {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(&startup_packet(&[
        ("user", user),
        ("database", "appdb"),
        ("application_name", application_name),
    ]))
    .await
    .unwrap();
    loop {
        let (tag, body) = read_message(&mut sock).await.unwrap();
        match tag {
            b'Z' => return sock,
            b'E' => panic!("startup failed: {}", String::from_utf8_lossy(&body)),
            _ => {}
        }
    }
}

/// One row of pg_stat_activity for the backend serving `application_name`, if there is one:
/// (pid, state, wait_event).
pub async fn backend_of(
    admin: &tokio_postgres::Client,
    application_name: &str,
) -> Option<(i32, String, String)> {
    admin
        .query_opt(
            "select pid, coalesce(state, ''), coalesce(wait_event, '') from pg_stat_activity \
             where application_name = $1",
            &[&application_name],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
}

/// For [`wait_for_backend`]: the backend runs a query.
pub fn is_active(row: &Option<(i32, String, String)>) -> bool {
    matches!(row, Some((_, state, _)) if state == "active")
}

/// Polls pg_stat_activity until `done` holds for the backend of `application_name`
/// (`None` = no such backend); returns how long it took. Panics after `timeout`.
pub async fn wait_for_backend(
    s: &StandIn,
    application_name: &str,
    timeout: Duration,
    done: impl Fn(&Option<(i32, String, String)>) -> bool,
) -> Duration {
    let admin = s.superuser_client().await.unwrap();
    let started = Instant::now();
    loop {
        let row = backend_of(&admin, application_name).await;
        if done(&row) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "backend of {application_name} still {row:?} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

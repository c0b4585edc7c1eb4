//! Process limits and over-limit clients (findings 4 and 12): no core dumps, the open-files
//! limit raised, and a client over `--max-connections` refused within about a second instead
//! of holding its descriptor for the whole startup timeout.

use std::time::{Duration, Instant};

use standin::{ProxyCommand, ProxyProcess, StandIn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{connect, PROXY_BIN};

/// The proxy for the stand-in, started by `prlimit` with these limits (prlimit execs it, so
/// the pid is the proxy's).
fn under_prlimit(s: &StandIn, limits: &[&str], extra: &[&str]) -> ProxyProcess {
    ProxyCommand::new("prlimit")
        .args(limits.iter().copied())
        .args([
            "--",
            PROXY_BIN,
            &format!("postgres://{}/appdb", s.endpoint()),
            "--connect-to",
            &s.addr().to_string(),
            "--ca-file",
            &s.ca_file().display().to_string(),
        ])
        .args(extra.iter().copied())
        .standin_env(s)
        .spawn()
        .expect("proxy starts under prlimit")
}

/// (soft, hard) of one row of /proc/PID/limits.
fn limit(pid: u32, row: &str) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("{row} in {text}"));
    let mut cols = line[row.len()..].split_whitespace();
    (cols.next().unwrap().into(), cols.next().unwrap().into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_dumps_are_off_and_the_open_files_limit_is_raised() {
    let s = crate::common::standin().await;
    let limits = ["--nofile=256:4096", "--core=unlimited"];
    let proxy = under_prlimit(&s, &limits, &[]);
    assert_eq!(
        limit(proxy.pid(), "Max core file size"),
        ("0".into(), "0".into())
    );
    assert_eq!(
        limit(proxy.pid(), "Max open files"),
        ("4096".into(), "4096".into())
    );
    drop(proxy);

    let proxy = under_prlimit(&s, &limits, &["--allow-core-dumps"]);
    assert_eq!(
        limit(proxy.pid(), "Max core file size"),
        ("unlimited".into(), "unlimited".into()),
        "--allow-core-dumps leaves them as they were"
    );
}

/// An SSLRequest.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_limit_clients_are_refused_within_a_second_even_out_of_descriptors() {
    let s = crate::common::standin().await;
    // 64 descriptors (hard too, so nothing can raise it); a startup timeout much longer than
    // the over-limit deadline, so waiting for it would show.
    let proxy = under_prlimit(
        &s,
        &["--nofile=64:64"],
        &["--max-connections", "2", "--startup-timeout", "30s"],
    );
    let addr = proxy.addr();
    let held = [
        connect(addr, "iam_user").await.unwrap(),
        connect(addr, "iam_user").await.unwrap(),
    ];

    // More silent sockets than the process has descriptors.
    const FLOOD: usize = 150;
    let started = Instant::now();
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        flood.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut slowest = Duration::ZERO;
    for mut sock in flood {
        let mut reply = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), sock.read_to_end(&mut reply))
            .await
            .expect("an over-limit socket is closed well before the 30 s startup timeout");
        // The proxy says why (an ErrorResponse) or, while out of descriptors, only closes.
        assert!(
            reply.is_empty() || reply[0] == b'E',
            "{read:?} {}",
            String::from_utf8_lossy(&reply)
        );
        slowest = slowest.max(started.elapsed());
    }
    println!("{FLOOD} silent over-limit sockets under 64 fds: all closed {slowest:?} after the first connect");
    assert!(slowest < Duration::from_secs(10), "{slowest:?}");

    // A real client over the limit hears why at once.
    let started = Instant::now();
    let e = connect(addr, "iam_user").await.expect_err("over the limit");
    let refused_after = started.elapsed();
    let code = e.as_db_error().map(|d| d.code().code().to_owned());
    assert_eq!(code.as_deref(), Some("53300"), "{e:?}");
    assert!(refused_after < Duration::from_secs(2), "{refused_after:?}");
    println!("a real client over the limit got 53300 after {refused_after:?}");

    // SSLRequest over the limit: `N`, then 53300 for the StartupMessage.
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(&SSL_REQUEST).await.unwrap();
    let mut answer = [0u8; 1];
    sock.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    sock.write_all(&crate::raw_client::startup_packet(&[("user", "iam_user")]))
        .await
        .unwrap();
    let (tag, body) = crate::raw_client::read_message(&mut sock).await;
    assert_eq!(tag, b'E');
    assert!(String::from_utf8_lossy(&body).contains("53300"));

    // The held sessions were never disturbed; accept errors were counted, not each logged.
    for c in &held {
        c.simple_query("select 1").await.unwrap();
    }
    let lines = proxy.log_messages("accept failed; backing off (one line a second at most)");
    let seconds = slowest.as_secs() as usize + 2;
    assert!(
        lines.len() <= seconds,
        "{} lines in ~{seconds} s",
        lines.len()
    );
    println!("accept-failure log lines during the flood: {}", lines.len());
}

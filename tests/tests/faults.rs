//! Hardening, faults: what a client sees when the database restarts, cannot be reached, does
//! not resolve or stalls in the TLS handshake; when the credential endpoint goes down; when
//! credentials rotate under steady traffic; when a client vanishes mid-query or stops reading.
//! Every test also checks that the proxy still serves afterwards, and prints what it measured.
//!
//! `RDS_IAM_TESTS_FULL=1` (see `scripts/test-long`) runs the full-length credential soak.

#[path = "operations/admin_client.rs"]
#[allow(dead_code)]
mod admin_client;
mod common;
#[path = "hardening/mod.rs"]
mod hardening;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use admin_client::{get, metric, wait_for_status};
use common::{
    config_proxy, connect, connect_error, connect_with, proxy_for, spawn_with_admin, sqlstate,
    standin, standin_with_session_lifetime, still_serves, target_name, target_toml,
};
use hardening::{is_active, raw_session, read_message, size, vm_rss_kib, wait_for_backend};
use standin::ProxyProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const WAIT: Duration = Duration::from_secs(30);

fn closed_sessions(proxy: &ProxyProcess) -> usize {
    proxy.log_messages("connection closed").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restart_mid_session_gives_57p01_and_the_next_connection_works() {
    let s = standin().await;
    let proxy = proxy_for(&s).spawn().unwrap();
    let (idle, idle_conn) = connect_with(proxy.addr(), "application_name=restart-idle").await;
    idle.simple_query("select 1").await.unwrap();
    let (busy, _busy_conn) = connect_with(proxy.addr(), "application_name=restart-busy").await;
    let query = tokio::spawn(async move { busy.simple_query("select pg_sleep(60)").await });
    wait_for_backend(&s, "restart-busy", WAIT, is_active).await;

    let restarted = Instant::now();
    s.restart().await.unwrap();
    let restart_took = restarted.elapsed();

    // The server's own FATAL reaches both clients unchanged through the splice: the one in a
    // query gets it as the query's error, the idle one as its connection's end.
    let err = tokio::time::timeout(WAIT, query)
        .await
        .expect("the running query ended")
        .unwrap()
        .expect_err("the running query failed");
    let busy_error_after = restarted.elapsed();
    assert_eq!(sqlstate(&err).as_deref(), Some("57P01"), "{err:?}");
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("terminating connection"),
        "{err:?}"
    );
    let idle_end = tokio::time::timeout(WAIT, idle_conn)
        .await
        .expect("the idle session ended")
        .unwrap()
        .expect_err("the idle session got an error");
    assert_eq!(
        sqlstate(&idle_end).as_deref(),
        Some("57P01"),
        "{idle_end:?}"
    );
    assert!(idle.simple_query("select 1").await.is_err());

    // The next connection works, through the same proxy process.
    let reconnect = Instant::now();
    still_serves(&proxy).await;
    eprintln!(
        "restart: database restart took {restart_took:?}; the running query failed with 57P01 \
         {busy_error_after:?} after it began, the idle session got 57P01 too; the next \
         connection worked in {:?}",
        reconnect.elapsed()
    );
}

/// A loopback address whose accept queue is full, so a new TCP SYN is dropped and the
/// connect hangs: a blackholed database. The returned socket keeps the queue full.
async fn blackhole() -> (SocketAddr, TcpListener, TcpStream) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let filler = TcpStream::connect(addr).await.unwrap();
    // Proof that the queue is full: another connect does not complete.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr))
            .await
            .is_err(),
        "the blackhole accepted a connection"
    );
    (addr, listener, filler)
}

/// Accepts and holds connections; after the 8-byte SSLRequest it answers `reply` (if any) and
/// then never says anything more.
async fn staller(reply: Option<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut req = [0u8; 8];
            if sock.read_exact(&mut req).await.is_ok() {
                if let Some(byte) = reply {
                    let _ = sock.write_all(&[byte]).await;
                }
            }
            held.push(sock);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_unresolvable_and_stalling_databases_fail_08001_within_the_connect_timeout() {
    let s = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let (hole, _hole_listener, _filler) = blackhole().await;
    let silent = staller(None).await;
    let stall_after_s = staller(Some(b'S')).await;

    let host = s.host().to_owned();
    let names = [
        "good",
        "blackholed",
        "dns-connect-to",
        "dns-host",
        "no-sslrequest-answer",
        "tls-stall",
    ];
    let ports: Vec<u16> = names
        .iter()
        .map(|_| standin::cluster::free_port().unwrap())
        .collect();
    let connect_to = [
        format!("connect_to = \"{}\"", s.addr()),
        format!("connect_to = \"{hole}\""),
        "connect_to = \"db.nothing.invalid:5432\"".to_owned(),
        String::new(),
        format!("connect_to = \"{silent}\""),
        format!("connect_to = \"{stall_after_s}\""),
    ];
    let mut config = String::new();
    for (i, name) in names.iter().enumerate() {
        let target_host = if *name == "dns-host" {
            "cluster.nothing.invalid"
        } else {
            &host
        };
        config.push_str(&target_toml(
            name,
            target_host,
            &[format!("127.0.0.1:{}", ports[i])],
            s.ca_file(),
            &format!(
                "region = \"us-east-1\"\ndatabase = \"appdb\"\n{}",
                connect_to[i]
            ),
        ));
    }
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, config).unwrap();
    let timeout = Duration::from_secs(2);
    let proxy = config_proxy(&s, &path, names.len())
        .args(["--connect-timeout", "2s"])
        .spawn()
        .unwrap();
    let at = |i: usize| -> SocketAddr { format!("127.0.0.1:{}", ports[i]).parse().unwrap() };
    let slack = Duration::from_secs(1);

    // (target, what the message says, whether the failure waits out the whole timeout)
    let cases = [
        (1, "within 2s", true),
        (
            2,
            "cannot resolve the database host db.nothing.invalid",
            false,
        ),
        (
            3,
            "cannot resolve the database host cluster.nothing.invalid",
            false,
        ),
        (4, "within 2s", true),
        (5, "within 2s", true),
    ];
    for (i, expected, waits) in cases {
        let started = Instant::now();
        let (code, message, _) = connect_error(at(i), "iam_user").await;
        let took = started.elapsed();
        eprintln!(
            "connect fault {}: {code} after {took:?}: {message}",
            names[i]
        );
        assert_eq!(code, "08001", "{}: {message}", names[i]);
        assert!(message.starts_with("rds-iam-proxy: "), "{message}");
        assert!(message.contains(expected), "{}: {message}", names[i]);
        assert!(took < timeout + slack, "{}: took {took:?}", names[i]);
        if waits {
            assert!(
                took >= timeout - Duration::from_millis(50),
                "{}: failed early, after {took:?}",
                names[i]
            );
        }
        // The good target serves between every failure.
        let client = connect(at(0), "iam_user").await.expect("good target works");
        client.simple_query("select 1").await.unwrap();
    }
    // Several clients stalled at once all get their answer at the timeout.
    let started = Instant::now();
    let stalled: Vec<_> = (0..10)
        .map(|k| tokio::spawn(connect_error(at(4 + k % 2), "iam_user")))
        .collect();
    for task in stalled {
        assert_eq!(task.await.unwrap().0, "08001");
    }
    let took = started.elapsed();
    eprintln!("connect fault: 10 concurrent stalled clients all got 08001 within {took:?}");
    assert!(took < timeout + slack, "{took:?}");
    drop(proxy);
}

/// (token seconds left, credentials seconds left) from /metrics.
async fn expiries(admin: SocketAddr, target: &str) -> (f64, f64) {
    let (_, text) = get(admin, "/metrics").await;
    let t = [("target", target)];
    (
        metric(&text, "rds_iam_proxy_token_expiry_seconds", &t).unwrap_or(0.0),
        metric(&text, "rds_iam_proxy_credentials_expiry_seconds", &t).unwrap_or(0.0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_outage_cached_tokens_work_until_they_lapse_then_08004_then_recovery() {
    // Session credentials live 20 s, so the outage outlasts them within the test.
    let s = standin_with_session_lifetime(Duration::from_secs(20)).await;
    let (proxy, admin) = spawn_with_admin(proxy_for(&s));
    let target = target_name(&proxy);
    still_serves(&proxy).await;

    // Begin the outage while the cached token has at least 8 s left, so the window in which it
    // must keep working is long enough to observe.
    let deadline = Instant::now() + WAIT;
    let (token_left, creds_left) = loop {
        let (token, creds) = expiries(admin, &target).await;
        if token >= 8.0 {
            break (token, creds);
        }
        assert!(Instant::now() < deadline, "token never had 8 s left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    s.aws().set_container_failing(true);
    let outage = Instant::now();
    let fetches_before = s.aws().container_calls();

    // A connection every 250 ms: all work until the held token and credentials can no longer
    // make a usable token; from then on every one gets 08004.
    let (mut ok, mut last_ok, mut failed, mut first_failure) = (0, None, 0, None);
    let mut first_not_ready = None;
    while failed < 8 || first_not_ready.is_none() {
        let (status, body) = get(admin, "/readiness").await;
        if status == 503 {
            first_not_ready.get_or_insert(outage.elapsed());
        } else {
            assert!(
                first_not_ready.is_none(),
                "readiness back to {status} {:?} into the outage: {body}",
                outage.elapsed()
            );
        }
        match connect(proxy.addr(), "iam_user").await {
            Ok(client) => {
                assert!(
                    first_failure.is_none(),
                    "a connection worked after one had failed"
                );
                client.simple_query("select 1").await.unwrap();
                ok += 1;
                last_ok = Some(outage.elapsed());
            }
            Err(e) => {
                let db = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
                assert_eq!(db.code().code(), "08004", "{db:?}");
                assert!(db.message().contains("AWS credentials"), "{db:?}");
                first_failure.get_or_insert(outage.elapsed());
                failed += 1;
            }
        }
        assert!(
            outage.elapsed() < Duration::from_secs_f64(creds_left) + Duration::from_secs(20),
            "still no 08004 {:?} into the outage",
            outage.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let first_failure = first_failure.unwrap();
    let not_ready_after = first_not_ready.unwrap();
    let readiness_body = wait_for_status(admin, "/readiness", 503, WAIT).await;
    eprintln!(
        "credential outage: began with the token {token_left:.1}s and the credentials \
         {creds_left:.1}s from expiry; {ok} connections worked (last {last_ok:?} in), the first \
         08004 came {first_failure:?} in, readiness first 503 at {not_ready_after:?}: {readiness_body}"
    );
    assert!(ok >= 1, "no connection was served from the cached token");
    assert!(
        first_failure >= Duration::from_secs_f64(token_left - 1.0),
        "08004 at {first_failure:?}, while the cached token had {token_left:.1}s left"
    );
    assert!(
        first_failure <= Duration::from_secs_f64(creds_left + 2.0),
        "08004 only at {first_failure:?}; the credentials had {creds_left:.1}s left"
    );
    assert!(
        readiness_body.contains("cannot mint tokens"),
        "{readiness_body}"
    );
    assert!(
        s.aws().container_calls() > fetches_before,
        "no refetch tried"
    );
    // No expired token ever reached the database: every failure was the proxy's own 08004.
    let stats = s.token_stats();
    assert_eq!(stats.refused, 0, "{:?}", stats.refusals);

    // The endpoint returns: clients and readiness recover without a restart.
    s.aws().set_container_failing(false);
    let restored = Instant::now();
    let mut still_failing = 0;
    loop {
        match connect(proxy.addr(), "iam_user").await {
            Ok(client) => {
                client.simple_query("select 1").await.unwrap();
                break;
            }
            Err(e) => {
                assert_eq!(sqlstate(&e).as_deref(), Some("08004"), "{e:?}");
                still_failing += 1;
                assert!(restored.elapsed() < WAIT, "no recovery: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let client_back = restored.elapsed();
    wait_for_status(admin, "/readiness", 200, WAIT).await;
    let ready_back = restored.elapsed();
    eprintln!(
        "credential outage over: a client connected again {client_back:?} after ({still_failing} \
         more 08004 first), readiness 200 after {ready_back:?}, same process"
    );
    assert_eq!(proxy.log_messages("listening").len(), 1, "not restarted");
    still_serves(&proxy).await;
}

/// The access key id inside a token's X-Amz-Credential.
fn credential_key(token: &str) -> Option<String> {
    let cred = token.split("X-Amz-Credential=").nth(1)?;
    Some(cred.split("%2F").next()?.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_rotating_under_a_connection_every_100ms_lose_no_connection() {
    // CI: credentials live 15 s for 45 s; full: 60 s for five minutes.
    let (lifetime, run) = size(
        (Duration::from_secs(15), Duration::from_secs(45)),
        (Duration::from_secs(60), Duration::from_secs(300)),
    );
    let s = standin_with_session_lifetime(lifetime).await;
    let proxy = proxy_for(&s).spawn().unwrap();
    let addr = proxy.addr();

    // A new connection every 100 ms whatever the previous ones are doing.
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    while started.elapsed() < run {
        ticker.tick().await;
        let at = started.elapsed();
        tasks.spawn(async move {
            let t = Instant::now();
            let client = connect(addr, "iam_user")
                .await
                .map_err(|e| format!("at {at:?}: {e}"))?;
            let took = t.elapsed();
            client
                .simple_query("select 1")
                .await
                .map_err(|e| format!("query at {at:?}: {e}"))?;
            Ok::<_, String>(took)
        });
    }
    let (mut times, mut failures) = (Vec::new(), Vec::new());
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(t) => times.push(t),
            Err(e) => failures.push(e),
        }
    }
    let opened = times.len() + failures.len();
    let keys: BTreeSet<String> = s
        .token_checks()
        .iter()
        .filter_map(|r| credential_key(&r.token))
        .collect();
    let stats = s.token_stats();
    times.sort();
    eprintln!(
        "rotation soak: credentials every {lifetime:?} for {run:?}: {opened} connections, {} \
         failed; connect median {:?}, p99 {:?}, max {:?}; {} credential fetches, tokens from {} \
         access keys, {} distinct tokens, {} refused",
        failures.len(),
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        times[times.len() - 1],
        s.aws().container_calls(),
        keys.len(),
        stats.distinct_tokens,
        stats.refused,
    );
    assert!(failures.is_empty(), "failed connections: {failures:?}");
    assert_eq!(stats.refused, 0, "{:?}", stats.refusals);
    let expected = (run.as_millis() / 100) as usize;
    assert!(opened + 5 >= expected, "only {opened} of {expected} opened");
    // The run spanned the rotations it was meant to.
    let rotations = (run.as_secs() / lifetime.as_secs()) as usize;
    assert!(
        keys.len() >= rotations,
        "tokens from {} keys: {keys:?}",
        keys.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_mid_query_ends_its_session_and_its_server_backend() {
    let s = standin().await;
    let mut proxy = proxy_for(&s).spawn().unwrap();
    let addr = proxy.addr();

    // 1. Gone during pg_sleep(60), socket closed (FIN). The proxy passes the half-close on;
    // the server notices at its client_connection_check_interval, as it would for a direct
    // client, and the backend ends long before the query would have.
    let (client, conn) = connect_with(
        addr,
        "application_name=vanish-sleep options='-c client_connection_check_interval=200'",
    )
    .await;
    let _query = tokio::spawn(async move { client.simple_query("select pg_sleep(60)").await });
    wait_for_backend(&s, "vanish-sleep", WAIT, is_active).await;
    let closed_before = closed_sessions(&proxy);
    conn.abort(); // drops the socket, as a killed process would
    let sleep_gone = wait_for_backend(&s, "vanish-sleep", WAIT, Option::is_none).await;
    proxy
        .wait_for_message("connection closed", closed_before + 1, WAIT)
        .expect("the proxy ended the session");

    // 2. Gone while a huge result streams, with unread bytes in its socket (RST). The proxy's
    // write fails, it drops the upstream session, and the server's next write fails too.
    let mut sock = raw_session(addr, "iam_user", "vanish-stream").await;
    sock.write_all(&hardening::query_message(
        "select repeat('x', 1000) from generate_series(1, 10000000)",
    ))
    .await
    .unwrap();
    let mut rows = 0;
    while rows < 1000 {
        let (tag, _) = read_message(&mut sock).await.unwrap();
        rows += usize::from(tag == b'D');
    }
    wait_for_backend(&s, "vanish-stream", WAIT, |row| row.is_some()).await;
    drop(sock);
    let stream_gone = wait_for_backend(&s, "vanish-stream", WAIT, Option::is_none).await;
    proxy
        .wait_for_message("connection closed", closed_before + 2, WAIT)
        .expect("the proxy ended the streaming session");

    eprintln!(
        "vanished clients: the backend of a client gone during pg_sleep(60) ended {sleep_gone:?} \
         later (client_connection_check_interval = 200ms); of one gone while a result streamed, \
         {stream_gone:?} later"
    );
    assert!(sleep_gone < Duration::from_secs(5), "{sleep_gone:?}");
    assert!(stream_gone < Duration::from_secs(5), "{stream_gone:?}");
    still_serves(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_large_result_does_not_grow_the_proxy() {
    let s = standin().await;
    let proxy = proxy_for(&s).spawn().unwrap();
    let addr = proxy.addr();
    let pid = proxy.pid();
    let big = "select repeat('x', 1000) from generate_series(1, 500000)"; // ~500 MB

    // Warm-up: one session reads a 20 MB result in full, so the proxy's buffers and allocator
    // are at their working size before the baseline is taken.
    let warm = connect(addr, "iam_user").await.unwrap();
    warm.simple_query("select repeat('x', 1000) from generate_series(1, 20000)")
        .await
        .unwrap();
    drop(warm);
    let baseline = vm_rss_kib(pid);

    // A client asks for ~500 MB and reads none of it.
    let mut sock = raw_session(addr, "iam_user", "stalled-reader").await;
    sock.write_all(&hardening::query_message(big))
        .await
        .unwrap();
    // Back-pressure reached the server: its backend waits to write to its (proxy) socket.
    let blocked_after = wait_for_backend(
        &s,
        "stalled-reader",
        WAIT,
        |row| matches!(row, Some((_, _, wait)) if wait == "ClientWrite"),
    )
    .await;
    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(vm_rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still blocked after two seconds: the proxy did not soak the result up.
    let admin = s.superuser_client().await.unwrap();
    let (_, _, wait) = hardening::backend_of(&admin, "stalled-reader")
        .await
        .expect("backend still there");
    assert_eq!(wait, "ClientWrite");

    // Reading resumes and data flows again: 50 MB more.
    let mut read = 0usize;
    while read < 50_000_000 {
        let (tag, body) = read_message(&mut sock).await.unwrap();
        assert!(
            tag == b'T' || tag == b'D',
            "unexpected message {}",
            tag as char
        );
        read += body.len() + 5;
        peak = peak.max(vm_rss_kib(pid));
    }
    drop(sock);
    wait_for_backend(&s, "stalled-reader", WAIT, Option::is_none).await;
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "back-pressure: server blocked in ClientWrite {blocked_after:?} after the query; proxy \
         RSS {baseline} KiB before, peak {peak} KiB while stalled and while 50 MB more were \
         read (growth {growth} KiB)"
    );
    assert!(growth < 4 * 1024, "proxy RSS grew by {growth} KiB");
    still_serves(&proxy).await;
}

//! Server connection reuse (`pool_mode = "session"`, spec §8) against the stand-in: reuse
//! and its IAM savings, no session state leaking, dirty endings never reused, faults in the
//! reset query and on the server side, and the pool's lifecycle (timeouts, SIGTERM, SIGHUP).

#[path = "operations/admin_client.rs"]
#[allow(dead_code)]
mod admin_client;
mod common;
#[path = "pool/raw_client.rs"]
mod raw_client;
#[path = "pool/state_leaks.rs"]
mod state_leaks;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use admin_client::{get, metric};
use common::{
    connect, connect_with, open, proxy_for, spawn_with_admin, sqlstate, standin, target_name,
};
use standin::{ProxyCommand, StandIn};
use tokio_postgres::Client;

pub fn pooled(s: &StandIn) -> ProxyCommand {
    proxy_for(s).args(["--pool-mode", "session"])
}

pub async fn pid(client: &Client) -> i32 {
    client
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// Waits until backend `pid` is gone from the server; returns how long that took.
pub async fn wait_gone(s: &StandIn, pid: i32, within: Duration) -> Duration {
    let su = s.superuser_client().await.unwrap();
    let started = Instant::now();
    loop {
        let n: i64 = su
            .query_one(
                "select count(*) from pg_stat_activity where pid = $1",
                &[&pid],
            )
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "backend {pid} still there after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the proxy's pool for `target` holds `n` idle connections (a session's reset
/// runs after its client has gone).
pub async fn wait_idle(admin: std::net::SocketAddr, target: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = get(admin, "/metrics").await;
        let idle = metric(&text, "rds_iam_proxy_pool_idle", &[("target", target)]).unwrap_or(0.0);
        if idle == n as f64 {
            return;
        }
        assert!(Instant::now() < deadline, "pool_idle {idle}, not {n}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn counter(admin: std::net::SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (_, text) = get(admin, "/metrics").await;
    metric(&text, name, labels).unwrap_or(0.0)
}

/// One session: its backend pid, then it ends with Terminate.
async fn session_pid(addr: std::net::SocketAddr) -> i32 {
    let client = connect(addr, "iam_user").await.unwrap();
    pid(&client).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sessions_in_a_row_cost_at_most_pool_max_idle_iam_authentications() {
    let s = standin().await;
    let (proxy, admin) = spawn_with_admin(pooled(&s));
    let target = target_name(&proxy);
    s.reset_token_stats();
    let started = Instant::now();
    let mut pids = HashSet::new();
    for _ in 0..1000 {
        pids.insert(session_pid(proxy.addr()).await);
    }
    let elapsed = started.elapsed();
    let stats = s.token_stats();
    let opened = counter(
        admin,
        "rds_iam_proxy_server_connections_opened_total",
        &[("target", &target)],
    )
    .await;
    let reuses = counter(
        admin,
        "rds_iam_proxy_pool_reuses_total",
        &[("target", &target)],
    )
    .await;
    println!(
        "1000 sessions in a row in {elapsed:?}: {} IAM authentications, {} server backends, \
         {opened} server connections opened, {reuses} reuses",
        stats.accepted,
        pids.len()
    );
    assert!(stats.accepted >= 1 && stats.accepted <= 8, "{stats:?}");
    assert_eq!(stats.refused, 0);
    assert_eq!(opened as usize, stats.accepted);
    assert_eq!(opened + reuses, 1000.0);
    assert_eq!(pids.len(), stats.accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_startup_options_never_share_a_server_connection() {
    let s = standin().await;
    s.create_iam_user("iam_user2").await.unwrap();
    s.superuser_client()
        .await
        .unwrap()
        .batch_execute("grant all on database appdb to iam_user2")
        .await
        .unwrap();
    let (proxy, admin) = spawn_with_admin(pooled(&s));
    let target = target_name(&proxy);
    let first = session_pid(proxy.addr()).await;
    wait_idle(admin, &target, 1).await;

    let other_user = connect(proxy.addr(), "iam_user2").await.unwrap();
    assert_ne!(
        pid(&other_user).await,
        first,
        "another user got iam_user's connection"
    );
    let (options, _) = connect_with(proxy.addr(), "options='-c work_mem=1MB'").await;
    assert_ne!(
        pid(&options).await,
        first,
        "other startup options got the same connection"
    );
    assert_eq!(common::one(&options, "show work_mem").await, "1MB");
    // A different application_name is not a different key: it is applied with SET.
    let (named, _) = connect_with(proxy.addr(), "application_name=report").await;
    assert_eq!(pid(&named).await, first);
    assert_eq!(common::one(&named, "show application_name").await, "report");
    drop((other_user, options));
    drop(named);
    // The first one is back, and still the one iam_user gets.
    wait_idle(admin, &target, 3).await;
    assert_eq!(session_pid(proxy.addr()).await, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_session_looks_fresh_and_cancel_reaches_it() {
    let s = standin().await;
    let (proxy, admin) = spawn_with_admin(pooled(&s));
    let target = target_name(&proxy);
    let (first, _) = connect_with(proxy.addr(), "application_name=first").await;
    let first_pid = pid(&first).await;
    drop(first);
    wait_idle(admin, &target, 1).await;

    // No application_name: the one the first client gave is not inherited.
    let client = connect(proxy.addr(), "iam_user").await.unwrap();
    assert_eq!(pid(&client).await, first_pid, "reused");
    assert_eq!(common::one(&client, "show application_name").await, "");
    let row = client
        .query_one("select current_user::text, current_database()::text", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("iam_user".into(), "appdb".into())
    );

    // The BackendKeyData the client got is the reused connection's: cancel lands.
    let token = client.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move {
        let e = client
            .simple_query("select pg_sleep(30)")
            .await
            .unwrap_err();
        (sqlstate(&e), client)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let (code, client) = sleeper.await.unwrap();
    println!(
        "cancel on a reused connection: query ended {:?} after start",
        started.elapsed()
    );
    assert_eq!(code.as_deref(), Some("57014"));
    assert!(started.elapsed() < Duration::from_secs(10));
    client.simple_query("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_end_dirty_are_closed_never_reused() {
    let s = standin().await;
    let setup = s
        .connect_direct("iam_user", "appdb", &s.sign_token("iam_user"))
        .await
        .unwrap();
    setup
        .batch_execute("create table locks (id int primary key); insert into locks values (1); create table sink (v text);")
        .await
        .unwrap();
    drop(setup);
    let (proxy, admin) = spawn_with_admin(pooled(&s));
    let target = target_name(&proxy);
    let addr = proxy.addr();

    // 1. Quits inside a transaction holding a row lock.
    let (client, conn) = connect_with(addr, "").await;
    let dirty = pid(&client).await;
    client
        .batch_execute("begin; select * from locks where id = 1 for update")
        .await
        .unwrap();
    drop(client);
    let _ = conn.await;
    // The next client is not given that connection (it is not even idle in the pool).
    let next = connect(addr, "iam_user").await.unwrap();
    assert_ne!(pid(&next).await, dirty);
    let gone = wait_gone(&s, dirty, Duration::from_secs(10)).await;
    next.batch_execute("begin; select * from locks where id = 1 for update nowait; rollback")
        .await
        .expect("the row lock went with the closed connection");
    drop(next);
    println!("mid-transaction: backend gone {gone:?} after the client left");

    // 2. Quits in the middle of COPY FROM STDIN.
    let (client, conn) = connect_with(addr, "").await;
    let dirty = pid(&client).await;
    let sink = client
        .copy_in::<_, bytes::Bytes>("copy sink from stdin")
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    futures_util::SinkExt::send(&mut sink, bytes::Bytes::from_static(b"half\n"))
        .await
        .unwrap();
    conn.abort();
    drop(client);
    let gone = wait_gone(&s, dirty, Duration::from_secs(10)).await;
    println!("mid-COPY: backend gone {gone:?} after the client left");

    // 3. Quits with a message half sent.
    let (raw, dirty) = raw_client::ready(addr, "iam_user", "appdb").await;
    raw_client::send_and_close(raw, b"Q\0\0\0\x20select").await;
    let gone = wait_gone(&s, dirty, Duration::from_secs(10)).await;
    println!("half-sent message: backend gone {gone:?} after the client left");

    // 4. Quits while a query runs (and holds a lock): cancelled and closed.
    let (client, conn) = open(&common::conninfo(addr, "iam_user", "")).await.unwrap();
    let dirty = pid(&client).await;
    let running = tokio::spawn(async move {
        let _ = client
            .batch_execute(
                "begin; select * from locks where id = 1 for update; select pg_sleep(60)",
            )
            .await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left = Instant::now();
    conn.abort();
    running.abort();
    let next = connect(addr, "iam_user").await.unwrap();
    assert_ne!(pid(&next).await, dirty);
    let gone = wait_gone(&s, dirty, Duration::from_secs(10)).await;
    println!(
        "query running: backend gone {gone:?} after the client left ({:?})",
        left.elapsed()
    );
    next.batch_execute("begin; select * from locks where id = 1 for update nowait; rollback")
        .await
        .unwrap();
    drop(next);

    // 5. An orderly Terminate right behind a statement: the server finishes the statement
    //    (the Terminate goes on to it, as without a pool), nothing is cancelled.
    let (raw, dirty) = raw_client::ready(addr, "iam_user", "appdb").await;
    let mut bytes = raw_client::query("insert into sink select 'orderly' from pg_sleep(0.3)");
    bytes.extend_from_slice(&raw_client::TERMINATE);
    raw_client::send_and_close(raw, &bytes).await;
    wait_gone(&s, dirty, Duration::from_secs(10)).await;
    let next = connect(addr, "iam_user").await.unwrap();
    assert_eq!(
        common::one(&next, "select count(*)::text from sink where v = 'orderly'").await,
        "1",
        "the statement sent before Terminate completed"
    );
    drop(next);

    wait_idle(admin, &target, 1).await;
    let dirty_count = counter(
        admin,
        "rds_iam_proxy_pool_discards_total",
        &[("target", &target), ("reason", "dirty")],
    )
    .await;
    assert_eq!(dirty_count, 5.0, "five dirty endings counted");
    let log = proxy.log_messages("connection closed");
    let kept = log
        .iter()
        .filter(|l| l.contains("\"server_kept\":true"))
        .count();
    assert_eq!(kept, 3, "only the three clean sessions were kept: {log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_reset_query_closes_the_connection_and_the_next_client_is_served() {
    let s = standin().await;
    let (proxy, admin) = spawn_with_admin(pooled(&s).args(["--server-reset-query", "select 1/0"]));
    let target = target_name(&proxy);
    let first = session_pid(proxy.addr()).await;
    wait_gone(&s, first, Duration::from_secs(10)).await;
    let reason = [("target", target.as_str()), ("reason", "reset_failed")];
    assert_eq!(
        counter(admin, "rds_iam_proxy_pool_discards_total", &reason).await,
        1.0
    );
    assert_eq!(
        counter(admin, "rds_iam_proxy_pool_idle", &[("target", &target)]).await,
        0.0,
        "a connection whose reset failed is never kept"
    );
    let next = connect(proxy.addr(), "iam_user").await.unwrap();
    next.simple_query("select 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_the_session_changed_are_re_read_for_the_next_client() {
    let s = standin().await;
    // A reset that keeps settings: what the next client is told must be what it gets.
    let (proxy, admin) =
        spawn_with_admin(pooled(&s).args(["--server-reset-query", "DISCARD PLANS"]));
    let target = target_name(&proxy);
    // Both sessions start the same way (tokio-postgres would add startup parameters).
    let (sock, first) = raw_client::ready(proxy.addr(), "iam_user", "appdb").await;
    raw_client::run_then_terminate(sock, "set timezone = 'Asia/Tokyo'").await;
    wait_idle(admin, &target, 1).await;
    let (_sock, second, params) =
        raw_client::ready_with_params(proxy.addr(), "iam_user", "appdb").await;
    assert_eq!(second, first, "reused");
    assert_eq!(
        params.get("TimeZone").map(String::as_str),
        Some("Asia/Tokyo"),
        "{params:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_reset_query_is_cut_off_at_the_connect_timeout() {
    let s = standin().await;
    let proxy = pooled(&s)
        .args([
            "--server-reset-query",
            "select pg_sleep(60)",
            "--connect-timeout",
            "2s",
        ])
        .spawn()
        .unwrap();
    let client = connect(proxy.addr(), "iam_user").await.unwrap();
    let first = pid(&client).await;
    let left = Instant::now();
    drop(client);
    // The backend is cancelled and closed once the reset has run for connect_timeout.
    wait_gone(&s, first, Duration::from_secs(10)).await;
    let gone = left.elapsed();
    println!("hanging reset: backend gone {gone:?} after its client left (connect_timeout 2s)");
    assert!(
        gone >= Duration::from_millis(1900) && gone < Duration::from_secs(5),
        "{gone:?}"
    );
    let next = connect(proxy.addr(), "iam_user").await.unwrap();
    assert_ne!(
        pid(&next).await,
        first,
        "the next client gets a fresh connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_the_server_ended_are_dropped_before_anyone_gets_them() {
    let s = standin().await;
    let (proxy, admin) = spawn_with_admin(pooled(&s));
    let target = target_name(&proxy);
    let first = session_pid(proxy.addr()).await;
    wait_idle(admin, &target, 1).await;
    let su = s.superuser_client().await.unwrap();
    su.query_one("select pg_terminate_backend($1)", &[&first])
        .await
        .unwrap();
    wait_idle(admin, &target, 0).await;
    let second = session_pid(proxy.addr()).await;
    assert_ne!(second, first);
    let closed = counter(
        admin,
        "rds_iam_proxy_pool_discards_total",
        &[("target", &target), ("reason", "server_closed")],
    )
    .await;
    assert_eq!(closed, 1.0);

    // A restart ends every idle backend; the next clients connect without an error.
    wait_idle(admin, &target, 1).await;
    s.restart().await.unwrap();
    wait_idle(admin, &target, 0).await;
    for _ in 0..3 {
        let client = connect(proxy.addr(), "iam_user")
            .await
            .expect("connects after the restart");
        client.simple_query("select 1").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_and_lifetime_retire_server_connections() {
    let s = standin().await;
    let (proxy, admin) = spawn_with_admin(pooled(&s).args(["--server-idle-timeout", "1s"]));
    let target = target_name(&proxy);
    let first = session_pid(proxy.addr()).await;
    let gone = wait_gone(&s, first, Duration::from_secs(10)).await;
    println!("server_idle_timeout 1s: idle backend closed {gone:?} after its client left");
    assert!(gone >= Duration::from_millis(800), "{gone:?}");
    assert_eq!(
        counter(
            admin,
            "rds_iam_proxy_pool_discards_total",
            &[("target", &target), ("reason", "idle_timeout")]
        )
        .await,
        1.0
    );
    drop(proxy);

    let proxy = pooled(&s)
        .args(["--server-lifetime", "2s"])
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut pids = Vec::new();
    while started.elapsed() < Duration::from_secs(5) {
        pids.push(session_pid(proxy.addr()).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let distinct: HashSet<i32> = pids.iter().copied().collect();
    println!(
        "server_lifetime 2s: {} sessions over 5 s used {} backends",
        pids.len(),
        distinct.len()
    );
    assert!(distinct.len() >= 2 && distinct.len() <= 4, "{distinct:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_server_connections_at_once() {
    let s = standin().await;
    let (mut proxy, admin) = spawn_with_admin(pooled(&s).args(["--min-sigterm-delay", "5s"]));
    let target = target_name(&proxy);
    let first = session_pid(proxy.addr()).await;
    wait_idle(admin, &target, 1).await;
    proxy.signal("TERM").unwrap();
    let gone = wait_gone(&s, first, Duration::from_secs(4)).await;
    println!("SIGTERM: idle backend gone after {gone:?} (min delay 5 s still running)");
    let log = s.server_log_tail(200).await;
    assert!(log.contains("connection"), "the server log was read: {log}");
    assert!(
        !log.contains("unexpected EOF on client connection"),
        "the proxy said Terminate: {log}"
    );
    proxy.wait_exit(Duration::from_secs(20)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_drops_the_pool_of_a_changed_target() {
    let s = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    let listen = vec!["127.0.0.1:0".to_owned()];
    let write = |mode: &str| {
        let target = common::target_toml(
            "db",
            s.host(),
            &listen,
            s.ca_file(),
            &format!(
                "database = \"appdb\"\nconnect_to = \"{}\"\npool_mode = \"{mode}\"",
                s.addr()
            ),
        );
        std::fs::write(&path, target).unwrap();
    };
    write("session");
    let (mut proxy, admin) = spawn_with_admin(common::config_proxy(&s, &path, 1));
    let first = session_pid(proxy.addr()).await;
    wait_idle(admin, "db", 1).await;
    assert_eq!(
        session_pid(proxy.addr()).await,
        first,
        "pooled before the reload"
    );
    wait_idle(admin, "db", 1).await;

    write("none");
    proxy.signal("HUP").unwrap();
    proxy
        .wait_for_message("configuration reloaded", 1, Duration::from_secs(20))
        .unwrap();
    wait_gone(&s, first, Duration::from_secs(5)).await;
    let a = session_pid(proxy.addr()).await;
    let b = session_pid(proxy.addr()).await;
    assert_ne!(a, b, "no pooling after pool_mode = none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_state_leaks_to_the_next_client() {
    state_leaks::run().await;
}

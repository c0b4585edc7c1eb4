//! A writer failover with the cluster endpoint's DNS stale for 20 s: a client opening a
//! connection and writing a row every 100 ms through the proxy, measured with the topology
//! followed and with `topology = off`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::admin_client::{get, metric};
use crate::common::{admin_addr, sqlstate};
use standin::AuroraOptions;

use crate::harness::{addrs, aurora_with, connect, proxy, session_on, wait_followed, where_am_i};

/// How often the writing client opens a connection and writes.
const EVERY: Duration = Duration::from_millis(100);
const STALE_DNS: Duration = Duration::from_secs(20);

/// One attempt of the writing client.
#[derive(Debug, Clone)]
struct Attempt {
    /// When the attempt started, and when it ended.
    at: Instant,
    done: Instant,
    result: Result<String, String>,
    sqlstate: Option<String>,
}

/// Connects and inserts a row every 100 ms until cancelled; each attempt is bounded so a
/// slow one does not hide the next.
fn writer_loop(addr: SocketAddr, stop: CancellationToken) -> Arc<Mutex<Vec<Attempt>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let out = log.clone();
    tokio::spawn(async move {
        let mut n = 0i32;
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while !stop.is_cancelled() {
            tick.tick().await;
            n += 1;
            let at = Instant::now();
            let attempt = async {
                let client = connect(addr).await?;
                let row = client
                    .query_one(
                        "INSERT INTO writes VALUES ($1, pg_catalog.aurora_db_instance_identifier()) RETURNING at_instance",
                        &[&n],
                    )
                    .await?;
                Ok::<String, tokio_postgres::Error>(row.get(0))
            };
            let (result, state) = match tokio::time::timeout(Duration::from_secs(5), attempt).await
            {
                Ok(Ok(id)) => (Ok(id), None),
                Ok(Err(e)) => (Err(e.to_string()), sqlstate(&e)),
                Err(_) => (Err("timed out after 5 s".into()), None),
            };
            out.lock().unwrap().push(Attempt {
                at,
                done: Instant::now(),
                result,
                sqlstate: state,
            });
        }
    });
    log
}

/// What one failover run measured.
#[derive(Debug)]
struct Run {
    /// From the crash to the first write that succeeded afterwards.
    outage: Duration,
    failed: usize,
    read_only: usize,
    succeeded_after: usize,
}

/// One failover run with `--topology topology` and `pool_mode`.
async fn run_failover(topology: &str, pool_mode: &str) -> Run {
    // The old writer comes back as a reader while the cluster endpoint still names it.
    let aurora = aurora_with(AuroraOptions {
        stale_dns: STALE_DNS,
        rejoin_old_writer: true,
        ..AuroraOptions::default()
    })
    .await;
    let mut proxy = proxy(
        &aurora,
        &[
            "--topology",
            topology,
            "--admin-listen",
            "127.0.0.1:0",
            "--connect-timeout",
            "10s",
            "--pool-mode",
            pool_mode,
        ],
    )
    .spawn()
    .unwrap();
    let admin = admin_addr(&mut proxy);
    let (writer, reader) = addrs(&proxy);
    let topology = format!("{topology}, pool_mode {pool_mode}");
    let topology = topology.as_str();
    let stop = CancellationToken::new();
    let attempts = writer_loop(writer, stop.clone());
    // Writing works before the failover.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !attempts.lock().unwrap().iter().any(|a| a.result.is_ok()) {
        assert!(
            Instant::now() < deadline,
            "no write before the failover: {:?}",
            attempts.lock().unwrap()
        );
        tokio::time::sleep(EVERY).await;
    }
    // A proxy that has been up a while: the monitor (logged in as the writing client) has
    // read the topology. Before its first reading sessions dial the endpoint by DNS.
    if topology.starts_with("auto") {
        wait_followed(admin).await;
    }
    let crashed = Instant::now();
    let failover = aurora.failover().await.unwrap();
    let new_writer = aurora.instance(failover.new_writer).names.id.clone();
    println!(
        "topology={topology}: {} crashed, {new_writer} promoted {:?} after",
        aurora.instance(failover.old_writer).names.id,
        failover.promoted_after
    );
    // Write until 3 writes after the crash succeeded (or DNS moved long ago).
    let give_up = crashed + STALE_DNS + Duration::from_secs(20);
    loop {
        let ok_after = attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.at > crashed && a.result.is_ok())
            .count();
        if ok_after >= 3 {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "writes never resumed: {:?}",
            attempts.lock().unwrap().last()
        );
        tokio::time::sleep(EVERY).await;
    }
    stop.cancel();
    let attempts = attempts.lock().unwrap().clone();
    let after: Vec<&Attempt> = attempts.iter().filter(|a| a.at > crashed).collect();
    let first_ok = after
        .iter()
        .find(|a| a.result.is_ok())
        .expect("a write after the crash");
    let run = Run {
        // Until the first write after the crash was committed (it may have waited for the
        // new writer).
        outage: first_ok.done - crashed,
        failed: after.iter().filter(|a| a.result.is_err()).count(),
        read_only: after
            .iter()
            .filter(|a| a.sqlstate.as_deref() == Some("25006"))
            .count(),
        succeeded_after: after.iter().filter(|a| a.result.is_ok()).count(),
    };
    // Every write that succeeded after the crash landed on the new writer.
    for a in after.iter().filter(|a| a.result.is_ok()) {
        assert_eq!(a.result.as_deref(), Ok(new_writer.as_str()), "{a:?}");
    }
    let errors: Vec<&String> = after
        .iter()
        .filter_map(|a| a.result.as_ref().err())
        .collect();
    println!(
        "topology={topology}: outage {:?} (crash to the first write after it committed), {} failed attempts, {} read-only errors; first errors: {:?}",
        run.outage,
        run.failed,
        run.read_only,
        errors.iter().take(2).collect::<Vec<_>>()
    );
    if topology.starts_with("auto") {
        // After the failover, reader sessions go to the remaining reader.
        for _ in 0..4 {
            let (client, id) = session_on(reader).await;
            assert_ne!(id, new_writer, "a reader session on the new writer");
            assert!(where_am_i(&client).await.1, "{id} is in recovery");
        }
        let (_, text) = get(admin, "/metrics").await;
        assert_eq!(
            metric(
                &text,
                "rds_iam_proxy_writer_changes_total",
                &[("target", "orders")]
            ),
            Some(1.0),
            "{text}"
        );
        let lines = proxy
            .wait_for_message(
                "Aurora writer changed: first session on the new writer",
                1,
                Duration::from_secs(5),
            )
            .unwrap();
        println!("log: {}", lines[0]);
    }
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_within_5_s_of_a_writer_crash_despite_20_s_of_stale_dns() {
    let followed = run_failover("auto", "none").await;
    let pooled = run_failover("auto", "session").await;
    let dns = run_failover("off", "none").await;
    println!(
        "outage with the topology followed: {:?} (pooled: {:?}); with topology = off: {:?}",
        followed.outage, pooled.outage, dns.outage
    );
    for run in [&followed, &pooled] {
        assert!(run.outage < Duration::from_secs(5), "{run:?}");
        assert_eq!(run.read_only, 0, "{run:?}");
        assert!(run.succeeded_after >= 3);
    }
    // Without the topology the outage lasts until the stale DNS moves, and writes meet the
    // old writer once it is back as a reader.
    assert!(dns.outage >= STALE_DNS - Duration::from_secs(2), "{dns:?}");
    assert!(dns.read_only > 0, "{dns:?}");
}

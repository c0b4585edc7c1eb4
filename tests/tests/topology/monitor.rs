//! The monitor's connection: one per cluster, back after it is cut; a cluster with every
//! instance down makes readiness fail until it comes back by itself.

use std::time::{Duration, Instant};

use crate::admin_client::{get, metric, wait_for_status};
use crate::common::admin_addr;
use crate::harness::{addrs, aurora, connect, monitor_connections, proxy, session_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_reconnects_and_a_cluster_wholly_down_fails_readiness_until_it_returns() {
    let aurora = aurora(Duration::from_secs(20)).await;
    // topology_user: the monitor starts without waiting for a client.
    let mut proxy = proxy(
        &aurora,
        &[
            "--topology-user",
            "iam_user",
            "--admin-listen",
            "127.0.0.1:0",
            "--connect-timeout",
            "2s",
        ],
    )
    .spawn()
    .unwrap();
    let admin = admin_addr(&mut proxy);
    let (writer, _) = addrs(&proxy);
    wait_for_status(admin, "/readiness", 200, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while monitor_connections(&aurora).await != [1, 0, 0] {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            monitor_connections(&aurora).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Cut the monitor's connection: it comes back (one, on the writer, a new backend).
    let su = aurora.instance(0).superuser_client().await.unwrap();
    let monitor_pid =
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'rds-iam-proxy topology'";
    let before: i32 = su.query_one(monitor_pid, &[]).await.unwrap().get(0);
    let cut = Instant::now();
    let killed: bool = su
        .query_one("SELECT pg_terminate_backend($1)", &[&before])
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<i32> = su
            .query(monitor_pid, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if pids.len() == 1 && pids[0] != before && monitor_connections(&aurora).await == [1, 0, 0] {
            println!(
                "monitor connection back {:?} after it was cut (pid {before} -> {})",
                cut.elapsed(),
                pids[0]
            );
            break;
        }
        assert!(
            Instant::now() < give_up,
            "monitor did not come back: {pids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(su);
    // Sessions still reach the writer.
    assert_eq!(session_on(writer).await.1, aurora.instance(0).names.id);

    // Every instance down: readiness fails, writer sessions are refused after the connect
    // timeout, and all comes back by itself.
    let down = Instant::now();
    aurora.crash_all().await.unwrap();
    let body = wait_for_status(admin, "/readiness", 503, Duration::from_secs(10)).await;
    println!(
        "readiness 503 {:?} after every instance went down: {body}",
        down.elapsed()
    );
    assert!(
        body.contains("no instance of Aurora cluster orders answers"),
        "{body}"
    );
    let refused = Instant::now();
    let e = connect(writer).await.map(|_| ()).unwrap_err();
    let db = e.as_db_error().expect("an ErrorResponse");
    println!(
        "writer session refused after {:?}: {} {}",
        refused.elapsed(),
        db.code().code(),
        db.message()
    );
    assert_eq!(db.code().code(), "08001", "{e:?}");
    assert!(
        db.message()
            .contains("no writer instance of Aurora cluster orders"),
        "{e:?}"
    );
    let up = Instant::now();
    aurora.start_all().await.unwrap();
    wait_for_status(admin, "/readiness", 200, Duration::from_secs(10)).await;
    println!(
        "readiness 200 {:?} after the instances were started again",
        up.elapsed()
    );
    assert_eq!(session_on(writer).await.1, aurora.instance(0).names.id);
    let (_, metrics) = get(admin, "/metrics").await;
    for (role, n) in [("writer", 1.0), ("reader", 2.0)] {
        assert_eq!(
            metric(
                &metrics,
                "rds_iam_proxy_topology_instances",
                &[("target", "orders"), ("role", role)]
            ),
            Some(n),
            "{metrics}"
        );
    }
}

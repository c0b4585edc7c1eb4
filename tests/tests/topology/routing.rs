//! Where sessions land: writer sessions on the writer instance with tokens signed for its own
//! name, reader sessions spread over the readers within the lag bound, one monitor
//! connection; and a tunnel (`connect_to` for the cluster endpoint, `resolve` per instance).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::admin_client::{get, metric};
use crate::common::{admin_addr, PROXY_BIN};
use crate::harness::{
    addrs, aurora, monitor_connections, proxy, session_on, signed_for, wait_followed, where_am_i,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_sessions_reach_the_writer_and_reader_sessions_spread_over_the_readers() {
    let aurora = aurora(Duration::from_secs(20)).await;
    let mut proxy = proxy(
        &aurora,
        &[
            "--topology-refresh",
            "500ms",
            "--topology-user",
            "iam_user",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    )
    .spawn()
    .unwrap();
    let admin = admin_addr(&mut proxy);
    wait_followed(admin).await;
    let (writer, reader) = addrs(&proxy);
    let writer_id = aurora.instance(0).names.id.clone();

    for _ in 0..5 {
        let (client, id) = session_on(writer).await;
        assert_eq!(id, writer_id);
        assert!(
            !where_am_i(&client).await.1,
            "the writer is not in recovery"
        );
        client
            .execute("INSERT INTO writes VALUES (1, $1)", &[&id])
            .await
            .unwrap();
    }
    // Signed for the writer's own endpoint, not the cluster's (which only the monitor's
    // first connection used, before it knew the instances).
    let signed: Vec<String> = signed_for(&aurora, 0);
    let instance_endpoint = format!("{}:5432", aurora.instance(0).names.host);
    let cluster_endpoint = format!("{}:5432", aurora.cluster_host());
    let to_instance = signed.iter().filter(|e| **e == instance_endpoint).count();
    let to_cluster = signed.iter().filter(|e| **e == cluster_endpoint).count();
    println!("tokens checked by the writer: {to_instance} for its instance endpoint, {to_cluster} for the cluster endpoint");
    assert!(to_instance >= 5, "{signed:?}");
    assert_eq!(to_cluster, 1, "{signed:?}");
    assert_eq!(to_instance + to_cluster, signed.len(), "{signed:?}");

    // Ten reader sessions held open together: the least-loaded reader each time.
    let mut held = Vec::new();
    let mut spread = BTreeMap::<String, usize>::new();
    for _ in 0..10 {
        let (client, id) = session_on(reader).await;
        assert!(where_am_i(&client).await.1, "{id} is a reader");
        *spread.entry(id).or_default() += 1;
        held.push(client);
    }
    println!("reader sessions held together, per instance: {spread:?}");
    let readers: Vec<String> = (1..3)
        .map(|i| aurora.instance(i).names.id.clone())
        .collect();
    assert_eq!(spread.keys().cloned().collect::<Vec<_>>(), readers);
    assert!(spread.values().all(|n| *n == 5), "{spread:?}");
    let (_, text) = get(admin, "/metrics").await;
    let target = "orders-2";
    for r in &readers {
        assert_eq!(
            metric(
                &text,
                "rds_iam_proxy_sessions_active",
                &[("target", target), ("instance", r)]
            ),
            Some(5.0),
            "{r}: {text}"
        );
    }
    assert_eq!(
        metric(
            &text,
            "rds_iam_proxy_topology_instances",
            &[("target", "orders"), ("role", "reader")]
        ),
        Some(2.0),
        "{text}"
    );
    drop(held);

    // Sessions one after another spread too.
    let mut in_a_row = BTreeMap::<String, usize>::new();
    for _ in 0..6 {
        *in_a_row.entry(session_on(reader).await.1).or_default() += 1;
    }
    println!("reader sessions one after another, per instance: {in_a_row:?}");
    assert!(in_a_row.values().all(|n| *n == 3), "{in_a_row:?}");

    // A reader lagging past max_replica_lag (10 s) gets no new sessions once the monitor has
    // read the lag.
    aurora
        .set_replica_lag(1, Duration::from_secs(30))
        .await
        .unwrap();
    let lagging_set = Instant::now();
    let deadline = lagging_set + Duration::from_secs(10);
    loop {
        let ids: Vec<String> = {
            let mut ids = Vec::new();
            for _ in 0..4 {
                ids.push(session_on(reader).await.1);
            }
            ids
        };
        if ids.iter().all(|id| *id == readers[1]) {
            println!(
                "lagging reader skipped {:?} after the lag was set",
                lagging_set.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lagging reader still chosen: {ids:?}"
        );
    }

    // One monitor connection for the cluster, though two targets follow it.
    let monitors = monitor_connections(&aurora).await;
    println!("monitor connections per instance: {monitors:?}");
    assert_eq!(monitors.iter().sum::<i64>(), 1, "{monitors:?}");
    assert_eq!(monitors[0], 1, "on the writer: {monitors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_tunnel_connect_to_reaches_the_cluster_and_resolve_the_instances() {
    let aurora = aurora(Duration::from_secs(20)).await;
    // Only the instances are resolved; the cluster endpoint goes through `connect_to`, as an
    // SSM or SSH tunnel would carry it.
    let mut args = vec![
        format!("postgres://{}/postgres", aurora.cluster_host()),
        "--connect-to".into(),
        aurora.cluster_dns().addr().to_string(),
        "--ca-file".into(),
        aurora.ca_file().display().to_string(),
    ];
    for i in aurora.instances() {
        args.push("--resolve".into());
        args.push(format!("{}={}", i.names.host, i.addr()));
    }
    let proxy = standin::ProxyCommand::new(PROXY_BIN)
        .args(args)
        .envs(aurora.credentials_env())
        .spawn()
        .unwrap();
    // The first client's session (before the monitor, which logs in as that client, has
    // read the topology) goes through the tunnel by name; sessions after it to the writer
    // instance's own endpoint, resolved to its address.
    let instance = format!("{}:5432", aurora.instance(0).names.host);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut sessions = 0;
    loop {
        let (client, id) = session_on(proxy.addr()).await;
        sessions += 1;
        assert_eq!(id, aurora.instance(0).names.id);
        client
            .execute("INSERT INTO writes VALUES (2, $1)", &[&id])
            .await
            .unwrap();
        if signed_for(&aurora, 0).last() == Some(&instance) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sessions never went to {instance}"
        );
    }
    println!("through the tunnel: session {sessions} was the first sent to the instance endpoint");
    let endpoints = signed_for(&aurora, 0);
    assert!(
        endpoints.contains(&format!("{}:5432", aurora.cluster_host())),
        "{endpoints:?}"
    );
}

//! The Aurora stand-in cluster itself, connected to directly (no proxy): each instance takes
//! IAM tokens signed for its own name or the cluster's, serves Aurora's topology functions, and
//! the failover helper promotes a standby that then takes writes and feeds the other one.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use standin::{sign_for_test, Aurora, AuroraOptions};
use tokio_postgres::Client;

/// A TLS session to the instance at `addr`, verified as `host`, with a token signed for `host`.
async fn connect(
    aurora: &Aurora,
    host: &str,
    addr: SocketAddr,
) -> Result<Client, tokio_postgres::Error> {
    let creds = aurora.aws().create_access_key();
    let token = sign_for_test(
        host,
        5432,
        aurora.region(),
        "iam_user",
        &creds,
        SystemTime::now(),
    );
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .hostaddr(addr.ip())
        .port(addr.port())
        .user("iam_user")
        .dbname("postgres")
        .password(token)
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(Duration::from_secs(10));
    let (client, conn) = config.connect(aurora.ca().postgres_tls()).await?;
    tokio::spawn(conn);
    Ok(client)
}

async fn topology(client: &Client) -> Vec<(String, bool)> {
    client
        .query(
            "SELECT server_id, session_id = 'MASTER_SESSION_ID' FROM pg_catalog.aurora_replica_status() ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_serve_the_topology_and_a_failover_promotes_a_standby() {
    let aurora = Aurora::start(AuroraOptions {
        stale_dns: Duration::from_secs(2),
        ..AuroraOptions::default()
    })
    .await
    .unwrap();
    aurora.create_iam_user("iam_user").await.unwrap();
    aurora
        .on_writer("CREATE TABLE public.t (n int); GRANT ALL ON public.t TO iam_user")
        .await
        .unwrap();

    for (i, instance) in aurora.instances().iter().enumerate() {
        let client = match connect(&aurora, &instance.names.host, instance.addr()).await {
            Ok(c) => c,
            Err(e) => panic!(
                "{}: {e}\n{}",
                instance.names.id,
                instance.log_tail(10).await
            ),
        };
        let id: String = client
            .query_one("SELECT pg_catalog.aurora_db_instance_identifier()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(id, instance.names.id);
        let rows = topology(&client).await;
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows.iter().filter(|(_, w)| *w).count(), 1);
        assert!(rows.contains(&(aurora.instance(0).names.id.clone(), true)));
        let in_recovery: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(in_recovery, i != 0, "{}", instance.names.id);
        if i != 0 {
            let e = client
                .execute("INSERT INTO t VALUES (1)", &[])
                .await
                .unwrap_err();
            assert_eq!(e.code().map(|c| c.code()), Some("25006"), "{e:?}");
        }
        // A token for the cluster endpoint is accepted too; one for another instance is not.
        connect(&aurora, &aurora.cluster_host(), instance.addr())
            .await
            .unwrap();
        let other = &aurora.instance((i + 1) % 3).names.host;
        assert!(connect(&aurora, other, instance.addr()).await.is_err());
    }
    let checks = aurora.instance(1).checker().records();
    assert!(checks.iter().any(|c| c
        .result
        .as_ref()
        .is_ok_and(|v| v.endpoint.starts_with(&aurora.instance(1).names.host))));

    // The cluster endpoint's name reaches the writer, and keeps doing so after the failover
    // until its DNS moves.
    assert_eq!(aurora.cluster_dns().target(), aurora.instance(0).addr());
    let failover = aurora.failover().await.unwrap();
    let crashed_at = Instant::now() - failover.promoted_after;
    println!(
        "failover: {} -> {}, promoted {:?} after the crash",
        failover.old_writer, failover.new_writer, failover.promoted_after
    );
    assert_eq!(failover.old_writer, 0);
    assert_eq!(aurora.writer(), failover.new_writer);
    assert_eq!(
        aurora.cluster_dns().target(),
        aurora.instance(0).addr(),
        "still stale"
    );
    let new = aurora.instance(failover.new_writer);
    let writer = connect(&aurora, &new.names.host, new.addr()).await.unwrap();
    writer
        .execute("INSERT INTO t VALUES (42)", &[])
        .await
        .unwrap();
    let rows = topology(&writer).await;
    assert_eq!(
        rows,
        vec![
            (
                aurora.instance(1).names.id.clone(),
                failover.new_writer == 1
            ),
            (
                aurora.instance(2).names.id.clone(),
                failover.new_writer == 2
            ),
        ]
    );
    // The other standby follows the new writer: the row reaches it.
    let other = 3 - failover.new_writer;
    let reader = connect(
        &aurora,
        &aurora.instance(other).names.host,
        aurora.instance(other).addr(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = reader
            .query_one("SELECT count(*) FROM t WHERE n = 42", &[])
            .await
            .unwrap()
            .get(0);
        if n == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            aurora.instance(other).log_tail(20).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(topology(&reader).await, rows);
    // DNS moves 2 s after the crash.
    while aurora.cluster_dns().target() != new.addr() {
        assert!(
            crashed_at.elapsed() < Duration::from_secs(10),
            "DNS never moved"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let moved = crashed_at.elapsed();
    assert!(
        moved >= Duration::from_millis(1900),
        "moved after {moved:?}"
    );
}

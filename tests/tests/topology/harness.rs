//! A stand-in Aurora cluster with `iam_user` and a table, and the proxy in front of its
//! writer and reader endpoints.

use std::net::SocketAddr;
use std::time::Duration;

use standin::cluster::free_port;
use standin::proxy::field;
use standin::{Aurora, AuroraOptions, ProxyCommand, ProxyProcess};
use tokio_postgres::Client;

use crate::common::{open, PROXY_BIN};

pub async fn aurora(stale_dns: Duration) -> Aurora {
    aurora_with(AuroraOptions {
        stale_dns,
        ..AuroraOptions::default()
    })
    .await
}

pub async fn aurora_with(options: AuroraOptions) -> Aurora {
    let aurora = Aurora::start(options)
        .await
        .expect("the Aurora stand-in starts");
    aurora.create_iam_user("iam_user").await.unwrap();
    aurora
        .on_writer(
            "CREATE TABLE public.writes (n int, at_instance text); \
             GRANT ALL ON public.writes TO iam_user",
        )
        .await
        .unwrap();
    aurora
}

/// The proxy with a writer target (the cluster endpoint) and a reader target (the reader
/// endpoint), every name resolved to its stand-in address; `extra` arguments added.
pub fn proxy(aurora: &Aurora, extra: &[&str]) -> ProxyCommand {
    let listen = |host: String| {
        let port = free_port().unwrap();
        format!("postgres://{host}/postgres?listen=127.0.0.1:{port}")
    };
    ProxyCommand::new(PROXY_BIN)
        .arg(listen(aurora.cluster_host()))
        .arg(listen(aurora.reader_host()))
        .args(["--ca-file", aurora.ca_file().to_str().unwrap()])
        .args(aurora.resolve_args())
        .args(extra.iter().copied())
        .envs(aurora.credentials_env())
        .expect_listeners(2)
}

/// The writer and reader listen addresses, in that order (targets `orders` and
/// `orders-2`, named after the endpoints' first label).
pub fn addrs(proxy: &ProxyProcess) -> (SocketAddr, SocketAddr) {
    let of = |target: &str| {
        proxy
            .log_messages("listening")
            .iter()
            .find(|l| field(l, "target").as_deref() == Some(target))
            .and_then(|l| field(l, "listen"))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no listener for target {target}"))
    };
    (of("orders"), of("orders-2"))
}

/// A session through the proxy at `addr` as `iam_user` (database `postgres`).
pub async fn connect(addr: SocketAddr) -> Result<Client, tokio_postgres::Error> {
    let conninfo = format!(
        "host={} port={} user=iam_user dbname=postgres sslmode=disable connect_timeout=30",
        addr.ip(),
        addr.port()
    );
    Ok(open(&conninfo).await?.0)
}

/// The instance a session is on, and whether it is in recovery.
pub async fn where_am_i(client: &Client) -> (String, bool) {
    let row = client
        .query_one(
            "SELECT pg_catalog.aurora_db_instance_identifier(), pg_is_in_recovery()",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// A session through the proxy at `addr`, and the instance it landed on.
pub async fn session_on(addr: SocketAddr) -> (Client, String) {
    let client = connect(addr)
        .await
        .unwrap_or_else(|e| panic!("session through {addr}: {e}"));
    let (id, _) = where_am_i(&client).await;
    (client, id)
}

/// `host:port` of every token instance `i` accepted, in order: whose name it was signed for.
pub fn signed_for(aurora: &Aurora, i: usize) -> Vec<String> {
    aurora
        .instance(i)
        .checker()
        .records()
        .into_iter()
        .filter_map(|r| r.result.ok())
        .map(|v| v.endpoint)
        .collect()
}

/// Waits until the proxy's admin endpoint says the writer target follows a writer (the
/// monitor's first reading is in); sessions before it dial the endpoint by DNS.
pub async fn wait_followed(admin: SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, text) = crate::admin_client::get(admin, "/metrics").await;
        let writers = crate::admin_client::metric(
            &text,
            "rds_iam_proxy_topology_instances",
            &[("target", "orders"), ("role", "writer")],
        );
        if writers == Some(1.0) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the topology was never read: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many topology monitor connections each running instance has.
pub async fn monitor_connections(aurora: &Aurora) -> Vec<i64> {
    let mut out = Vec::new();
    for i in aurora.instances() {
        if !i.is_running().await {
            out.push(0);
            continue;
        }
        let client = i.superuser_client().await.unwrap();
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rds-iam-proxy topology'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        out.push(n);
    }
    out
}

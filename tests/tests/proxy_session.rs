//! End-to-end: real clients through the real proxy binary to the Aurora stand-in.

mod common;

use std::time::{Duration, Instant};

use common::{connect, connect_default_db, copy_out_digest, proxy_for, standin};
use futures_util::SinkExt;
use tokio_postgres::NoTls;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_and_tokio_postgres_connect_without_a_password() {
    let s = standin().await;
    let proxy = proxy_for(&s).spawn().unwrap();
    let addr = proxy.addr();

    // psql -w never prompts: it would fail if the proxy asked for a password. sslmode=prefer
    // (the default) exercises the SSLRequest → 'N' → plaintext path.
    let out = tokio::process::Command::new("psql")
        .arg("-w")
        .arg(format!(
            "host={} port={} user=iam_user dbname=appdb application_name=psql-e2e",
            addr.ip(),
            addr.port()
        ))
        .args(["-Atc", "select current_user, current_database(), current_setting('application_name'), ssl from pg_stat_ssl where pid = pg_backend_pid()"])
        .env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "20")
        .output()
        .await
        .expect("psql runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server saw our user, database and application_name, over TLS upstream.
    assert_eq!(stdout.trim(), "iam_user|appdb|psql-e2e|t");

    let client = connect(addr, "iam_user").await.unwrap();
    let row = client
        .query_one("select current_user::text, $1::int + 1", &[&41i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "iam_user");
    assert_eq!(row.get::<_, i32>(1), 42);
    // ParameterStatus from the server reached the client through the relayed startup.
    let tz = client.simple_query("show server_encoding").await.unwrap();
    assert!(!tz.is_empty());

    let stats = s.token_stats();
    assert_eq!(stats.refused, 0, "{:?}", stats.refusals);
    assert_eq!(stats.accepted, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_reuse_one_cached_token() {
    let s = standin().await;
    let proxy = proxy_for(&s).spawn().unwrap();
    s.reset_token_stats();
    for i in 0..200 {
        let client = connect(proxy.addr(), "iam_user")
            .await
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        let n: i64 = client
            .query_one("select $1::bigint", &[&(i as i64)])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, i as i64);
    }
    let stats = s.token_stats();
    assert_eq!(stats.accepted, 200);
    assert_eq!(stats.refused, 0);
    assert_eq!(
        stats.distinct_tokens, 1,
        "every connection used the cached token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_through_the_proxy_stops_a_running_query() {
    let s = standin().await;
    let proxy = proxy_for(&s).spawn().unwrap();
    let client = connect(proxy.addr(), "iam_user").await.unwrap();
    let cancel = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("select pg_sleep(60)").await });

    // Wait until the query is really running on the server.
    let admin = s.superuser_client().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = admin
            .query_one("select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'", &[])
            .await
            .unwrap()
            .get(0);
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the query never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = Instant::now();
    cancel
        .cancel_query(NoTls)
        .await
        .expect("cancel request sent");
    let result = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("query ended")
        .unwrap();
    let elapsed = sent.elapsed();
    let err = result.expect_err("the query was cancelled");
    assert_eq!(
        err.as_db_error().map(|e| e.code().code()),
        Some("57014"),
        "{err}"
    );
    eprintln!("cancel: query ended {elapsed:?} after the CancelRequest was sent");
    assert!(elapsed < Duration::from_secs(1), "cancel took {elapsed:?}");
}

const COPY_ROWS: i64 = 105_000; // 961 bytes a row: ~101 MB
const ROW_SQL: &str = "repeat(md5(i::text), 30)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabyte_copy_out_and_in_is_byte_exact() {
    let s = standin().await;
    let proxy = proxy_for(&s).spawn().unwrap();
    let client = connect(proxy.addr(), "iam_user").await.unwrap();
    let query = format!("copy (select {ROW_SQL} from generate_series(1, {COPY_ROWS}) i) to stdout");

    // COPY out through the proxy and directly (superuser, unix socket): same bytes.
    let t0 = Instant::now();
    let through = copy_out_digest(&client, &query).await;
    let through_time = t0.elapsed();
    let t0 = Instant::now();
    let direct = copy_out_digest(&s.superuser_client().await.unwrap(), &query).await;
    eprintln!(
        "copy out: {} bytes through the proxy in {through_time:?}, direct (unix socket) in {:?}",
        through.0,
        t0.elapsed()
    );
    assert!(through.0 > 100_000_000, "copied {} bytes", through.0);
    assert_eq!(through, direct);

    // COPY in through the proxy, then compare with the same rows generated on the server.
    client
        .batch_execute("create table copy_in (id bigserial primary key, t text not null)")
        .await
        .unwrap();
    let sink = client.copy_in("copy copy_in (t) from stdin").await.unwrap();
    let mut sink = std::pin::pin!(sink);
    let mut batch = String::with_capacity(1 << 20);
    for i in 1..=COPY_ROWS {
        let md5 = format!("{:x}", md5_hex_of(&i.to_string()));
        batch.push_str(&md5.repeat(30));
        batch.push('\n');
        if batch.len() >= 1 << 20 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut batch)))
                .await
                .unwrap();
        }
    }
    sink.send(bytes::Bytes::from(batch)).await.unwrap();
    let written = sink.as_mut().finish().await.unwrap();
    assert_eq!(written, COPY_ROWS as u64);
    let same: bool = client
        .query_one(
            &format!(
                "select (select md5(string_agg(t, '' order by id)) from copy_in) = \
                 (select md5(string_agg({ROW_SQL}, '' order by i)) from generate_series(1, {COPY_ROWS}) i)"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(same, "rows copied in differ from the generated ones");
}

/// MD5 as the server computes `md5(text)`, to generate COPY input client-side.
fn md5_hex_of(s: &str) -> Md5Hex {
    Md5Hex(md5::compute(s.as_bytes()).0)
}

struct Md5Hex([u8; 16]);

impl std::fmt::LowerHex for Md5Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_user_and_default_database_apply() {
    let s = standin().await;
    let proxy = common::proxy_for(&s)
        .args(["--user", "iam_user"])
        .spawn()
        .unwrap();
    // The client says it is "someone_else" and names no database: the proxy forces the user,
    // and the target's database (appdb) is used.
    let client = connect_default_db(proxy.addr(), "someone_else")
        .await
        .unwrap();
    let row = client
        .query_one("select current_user::text, current_database()::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "iam_user");
    assert_eq!(row.get::<_, String>(1), "appdb");
}

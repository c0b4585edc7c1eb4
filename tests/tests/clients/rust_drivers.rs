//! The Rust clients, in process: tokio-postgres and sqlx.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context};
use futures_util::{SinkExt, StreamExt};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Connection, Row};
use tokio_postgres::{AsyncMessage, NoTls};

use super::matrix::{gap, Matrix, COPY_ROWS, LARGE_ROWS, LARGE_WIDTH, WAIT};

pub const USER: &str = "iam_user";
pub const DATABASE: &str = "appdb";

pub fn large_sql() -> String {
    format!(
        "select i, lpad(i::text, {LARGE_WIDTH}, 'x') as t from generate_series(1, {LARGE_ROWS}) i order by i"
    )
}

pub fn copy_out_sql() -> String {
    format!(
        "copy (select i, md5(i::text) from generate_series(1, {COPY_ROWS}) i order by i) to stdout"
    )
}

pub const COPY_IN_TABLE: &str = "create temp table copy_in (i int primary key, t text not null)";
pub const COPY_IN_SQL: &str = "copy copy_in (i, t) from stdin";
pub const COPY_IN_CHECK: &str =
    "select count(*) = 10000 and coalesce(bool_and(t = md5(i::text)), false) from copy_in";
pub const APP_NAME_SQL: &str =
    "select application_name::text from pg_stat_activity where pid = pg_backend_pid()";
pub const UPSTREAM_SQL: &str =
    "select current_user::text, ssl from pg_stat_ssl where pid = pg_backend_pid()";

/// `i<TAB>md5(i)` lines, as the server renders them in COPY text format.
pub fn copy_text() -> Vec<u8> {
    let mut s = String::new();
    for i in 1..=COPY_ROWS {
        s.push_str(&format!("{i}\t{:x}\n", md5::compute(i.to_string())));
    }
    s.into_bytes()
}

/// Checks the rows of [`large_sql`], in order and intact.
pub fn check_large(rows: impl Iterator<Item = (i32, String)>) -> anyhow::Result<String> {
    let (mut n, mut total) = (0usize, 0usize);
    for (i, t) in rows {
        n += 1;
        ensure!(
            i as usize == n && t.len() == LARGE_WIDTH && t.ends_with(&n.to_string()),
            "row {n} is wrong"
        );
        total += t.len();
    }
    ensure!(n == LARGE_ROWS, "{n} rows, expected {LARGE_ROWS}");
    Ok(format!("{n} rows, {:.1} MB", total as f64 / 1e6))
}

pub fn check_copy_out(data: &[u8]) -> anyhow::Result<String> {
    let expected = copy_text();
    ensure!(
        data == expected.as_slice(),
        "{} bytes differ from the expected {}",
        data.len(),
        expected.len()
    );
    Ok(format!(
        "{COPY_ROWS} rows, {} bytes, byte-exact",
        data.len()
    ))
}

/// Counts this session's prepared statements holding `tag` (split so this query does not).
pub fn prepared_count_sql(tag: &str) -> String {
    let (a, b) = tag.split_at(tag.len() / 2);
    format!(
        "select count(*) from pg_prepared_statements where strpos(statement, '{a}' || '{b}') > 0"
    )
}

pub fn running_query_sql(tag: &str) -> String {
    format!(
        "select count(*) from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() \
         and query like '%{tag}%' and query not like '%pg_stat_activity%'"
    )
}

async fn tp_connect(
    addr: SocketAddr,
) -> anyhow::Result<(
    tokio_postgres::Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
)> {
    let conninfo = format!(
        "host={} port={} user={USER} dbname={DATABASE} sslmode=disable \
         application_name=clients-tokio-postgres connect_timeout=10",
        addr.ip(),
        addr.port()
    );
    Ok(tokio_postgres::connect(&conninfo, NoTls).await?)
}

async fn tp_client(addr: SocketAddr) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tp_connect(addr).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Polls `sql` (a count) on `client` until it returns `want`, at most [`WAIT`].
async fn tp_wait_count(
    client: &tokio_postgres::Client,
    sql: &str,
    want: i64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let n: i64 = client.query_one(sql, &[]).await?.get(0);
        if n == want {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "timed out waiting for {sql}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

pub async fn tokio_postgres(m: &mut Matrix, addr: SocketAddr) {
    const C: &str = "tokio-postgres";
    m.versions.insert(
        C.into(),
        format!("tokio-postgres {}", super::lock_version("tokio-postgres")),
    );
    let mut client = None;
    m.check(C, "connect", async {
        let c = tp_client(addr).await?;
        let row = c.query_one(UPSTREAM_SQL, &[]).await?;
        let (user, ssl): (String, bool) = (row.get(0), row.get(1));
        ensure!(user == USER && ssl, "{user} {ssl}");
        client = Some(c);
        Ok(format!("as {user}, no password; upstream TLS: {ssl}"))
    })
    .await;
    let Some(mut c) = client else { return };

    m.check(C, "simple_query", async {
        let msgs = c.simple_query("select 1; select 'two'").await?;
        let rows: Vec<String> = msgs
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect();
        ensure!(rows == ["1", "two"], "{rows:?}");
        Ok("simple_query(): two statements in one Query message".into())
    })
    .await;

    m.check(C, "extended_query", async {
        let row = c
            .query_one("select $1::int + 1, $2::text", &[&41i32, &"é"])
            .await?;
        ensure!(row.get::<_, i32>(0) == 42 && row.get::<_, String>(1) == "é");
        Ok("parameters bound server-side (Parse/Bind/Execute)".into())
    })
    .await;

    m.check(C, "prepared", async {
        let stmt = c
            .prepare("select $1::int * 3 /* tokio-postgres-prepared */")
            .await?;
        let mut got = Vec::new();
        for i in 0..5i32 {
            got.push(c.query_one(&stmt, &[&i]).await?.get::<_, i32>(0));
        }
        ensure!(got == [0, 3, 6, 9, 12], "{got:?}");
        let n: i64 = c
            .query_one(&prepared_count_sql("tokio-postgres-prepared"), &[])
            .await?
            .get(0);
        ensure!(n == 1, "{n} server-side prepared statements");
        Ok("prepare(): one named statement on the server, executed 5 times".into())
    })
    .await;

    m.check(C, "pipeline", async {
        // Concurrent requests on one client are pipelined (documented behaviour).
        let futs = (0..10i32).map(|i| {
            let c = &c;
            async move {
                c.query_one("select $1::int", &[&i])
                    .await
                    .map(|r| r.get::<_, i32>(0))
            }
        });
        let got = futures_util::future::try_join_all(futs).await?;
        ensure!(got == (0..10).collect::<Vec<_>>(), "{got:?}");
        Ok("10 concurrent queries on one client, pipelined".into())
    })
    .await;

    m.check(C, "transaction_rollback", async {
        c.batch_execute("create temp table tx_test (i int)").await?;
        let tx = c.transaction().await?;
        tx.execute("insert into tx_test values (1)", &[]).await?;
        tx.rollback().await?;
        let n: i64 = c
            .query_one("select count(*) from tx_test", &[])
            .await?
            .get(0);
        ensure!(n == 0, "{n} rows after rollback");
        Ok("transaction(); insert; rollback()".into())
    })
    .await;

    m.check(C, "large_result", async {
        let t0 = Instant::now();
        let rows = c.query(&large_sql(), &[]).await?;
        let detail = check_large(rows.iter().map(|r| (r.get(0), r.get(1))))?;
        Ok(format!("{detail} in {:.2?}", t0.elapsed()))
    })
    .await;

    m.check(C, "copy_in", async {
        c.batch_execute(COPY_IN_TABLE).await?;
        let sink = c.copy_in(COPY_IN_SQL).await?;
        let mut sink = std::pin::pin!(sink);
        for chunk in copy_text().chunks(65536) {
            sink.send(bytes::Bytes::copy_from_slice(chunk)).await?;
        }
        let n = sink.as_mut().finish().await?;
        ensure!(n == COPY_ROWS as u64, "{n} rows");
        let ok: bool = c.query_one(COPY_IN_CHECK, &[]).await?.get(0);
        ensure!(ok, "server-side check differs");
        Ok(format!("{COPY_ROWS} rows, server-side check equal"))
    })
    .await;

    m.check(C, "copy_out", async {
        let stream = c.copy_out(&copy_out_sql()).await?;
        let mut stream = std::pin::pin!(stream);
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        check_copy_out(&buf)
    })
    .await;

    m.check(C, "notify", async {
        let (listener, mut conn) = tp_connect(addr).await?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(Ok(msg)) = messages.next().await {
                if let AsyncMessage::Notification(n) = msg {
                    let _ = tx.send(n);
                }
            }
        });
        listener
            .batch_execute("listen clients_tokio_postgres")
            .await?;
        c.batch_execute("select pg_notify('clients_tokio_postgres', 'hello from tokio-postgres')")
            .await?;
        let n = tokio::time::timeout(WAIT, rx.recv())
            .await
            .context("no notification")?
            .context("listener connection ended")?;
        drop(listener);
        let _ = driver.await;
        ensure!(
            n.payload() == "hello from tokio-postgres",
            "{}",
            n.payload()
        );
        Ok(format!(
            "payload '{}' from pid {}",
            n.payload(),
            n.process_id()
        ))
    })
    .await;

    m.check(C, "cancel", async {
        let tag = "cancel-tokio-postgres";
        let victim = tp_client(addr).await?;
        let token = victim.cancel_token();
        let sql = format!("select pg_sleep(30) /* {tag} */");
        let running = tokio::spawn(async move { victim.simple_query(&sql).await.map(|_| ()) });
        tp_wait_count(&c, &running_query_sql(tag), 1).await?;
        let sent = Instant::now();
        token.cancel_query(NoTls).await?;
        let r = tokio::time::timeout(WAIT, running)
            .await
            .context("not cancelled")??;
        let e = r.err().ok_or_else(|| anyhow!("the query completed"))?;
        let code = e.as_db_error().map(|d| d.code().code().to_owned());
        ensure!(code.as_deref() == Some("57014"), "{e}");
        Ok(format!(
            "CancelToken::cancel_query: SQLSTATE 57014: {}, {:.3?} after the request",
            e.as_db_error().map(|d| d.message()).unwrap_or_default(),
            sent.elapsed()
        ))
    })
    .await;

    m.check(C, "application_name", async {
        let name: String = c.query_one(APP_NAME_SQL, &[]).await?.get(0);
        ensure!(name == "clients-tokio-postgres", "{name}");
        Ok(format!("server sees '{name}'"))
    })
    .await;

    m.check(C, "error_sqlstate", async {
        let e = match c.query_one("select 1/0", &[]).await {
            Ok(_) => bail!("no error"),
            Err(e) => e,
        };
        let db = e.as_db_error().context("not a server error")?;
        ensure!(db.code().code() == "22012", "{e}");
        let one: i32 = c.query_one("select 1", &[]).await?.get(0);
        ensure!(one == 1);
        Ok(format!(
            "SQLSTATE 22012: {}; connection still usable",
            db.message()
        ))
    })
    .await;
}

fn sqlx_options(addr: SocketAddr) -> PgConnectOptions {
    PgConnectOptions::new()
        .host(&addr.ip().to_string())
        .port(addr.port())
        .username(USER)
        .database(DATABASE)
        .application_name("clients-sqlx")
        .ssl_mode(PgSslMode::Disable)
}

pub async fn sqlx(m: &mut Matrix, addr: SocketAddr) {
    const C: &str = "sqlx";
    m.versions.insert(
        C.into(),
        format!(
            "sqlx {} (runtime-tokio, postgres)",
            super::lock_version("sqlx")
        ),
    );
    let mut conn = None;
    m.check(C, "connect", async {
        let mut c = sqlx::PgConnection::connect_with(&sqlx_options(addr)).await?;
        let row = sqlx::query(UPSTREAM_SQL).fetch_one(&mut c).await?;
        let (user, ssl): (String, bool) = (row.try_get(0)?, row.try_get(1)?);
        ensure!(user == USER && ssl, "{user} {ssl}");
        conn = Some(c);
        Ok(format!("as {user}, no password; upstream TLS: {ssl}"))
    })
    .await;
    let Some(mut c) = conn else { return };

    m.check(C, "simple_query", async {
        let rows = sqlx::raw_sql("select 1::int4; select 2::int4")
            .fetch_all(&mut c)
            .await?;
        let got: Vec<i32> = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        ensure!(got == [1, 2], "{got:?}");
        Ok("raw_sql(): two statements in one Query message".into())
    })
    .await;

    m.check(C, "extended_query", async {
        let row = sqlx::query("select $1::int + 1, $2::text")
            .bind(41i32)
            .bind("é")
            .fetch_one(&mut c)
            .await?;
        ensure!(row.try_get::<i32, _>(0)? == 42 && row.try_get::<String, _>(1)? == "é");
        Ok("parameters bound server-side (Parse/Bind/Execute)".into())
    })
    .await;

    m.check(C, "prepared", async {
        let mut got = Vec::new();
        for i in 0..5i32 {
            let v: i32 = sqlx::query_scalar("select $1::int * 3 /* sqlx-prepared */")
                .bind(i)
                .fetch_one(&mut c)
                .await?;
            got.push(v);
        }
        ensure!(got == [0, 3, 6, 9, 12], "{got:?}");
        let n: i64 = sqlx::query_scalar(&prepared_count_sql("sqlx-prepared"))
            .fetch_one(&mut c)
            .await?;
        ensure!(n == 1, "{n} server-side prepared statements");
        Ok("statement cache: one named statement on the server, executed 5 times".into())
    })
    .await;

    m.check(C, "pipeline", async {
        gap("sqlx has no pipelining: a connection waits for each result before the next query")
    })
    .await;

    m.check(C, "transaction_rollback", async {
        sqlx::raw_sql("create temp table tx_test (i int)")
            .execute(&mut c)
            .await?;
        let mut tx = c.begin().await?;
        sqlx::query("insert into tx_test values (1)")
            .execute(&mut *tx)
            .await?;
        tx.rollback().await?;
        let n: i64 = sqlx::query_scalar("select count(*) from tx_test")
            .fetch_one(&mut c)
            .await?;
        ensure!(n == 0, "{n} rows after rollback");
        Ok("begin(); insert; rollback()".into())
    })
    .await;

    m.check(C, "large_result", async {
        let t0 = Instant::now();
        let rows = sqlx::query(&large_sql()).fetch_all(&mut c).await?;
        let detail = check_large(
            rows.iter()
                .map(|r| (r.get::<i32, _>(0), r.get::<String, _>(1))),
        )?;
        Ok(format!("{detail} in {:.2?}", t0.elapsed()))
    })
    .await;

    m.check(C, "copy_in", async {
        sqlx::raw_sql(COPY_IN_TABLE).execute(&mut c).await?;
        let mut copy = c.copy_in_raw(COPY_IN_SQL).await?;
        for chunk in copy_text().chunks(65536) {
            copy.send(chunk).await?;
        }
        let n = copy.finish().await?;
        ensure!(n == COPY_ROWS as u64, "{n} rows");
        let ok: bool = sqlx::query_scalar(COPY_IN_CHECK).fetch_one(&mut c).await?;
        ensure!(ok, "server-side check differs");
        Ok(format!(
            "{COPY_ROWS} rows via copy_in_raw, server-side check equal"
        ))
    })
    .await;

    m.check(C, "copy_out", async {
        let mut buf = Vec::new();
        {
            let mut stream = c.copy_out_raw(&copy_out_sql()).await?;
            while let Some(chunk) = stream.next().await {
                buf.extend_from_slice(&chunk?);
            }
        }
        check_copy_out(&buf).map(|d| format!("{d}, via copy_out_raw"))
    })
    .await;

    m.check(C, "notify", async {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(sqlx_options(addr))
            .await?;
        let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
        listener.listen("clients_sqlx").await?;
        sqlx::query("select pg_notify('clients_sqlx', 'hello from sqlx')")
            .execute(&mut c)
            .await?;
        let n = tokio::time::timeout(WAIT, listener.recv())
            .await
            .context("no notification")??;
        drop(listener);
        pool.close().await;
        ensure!(n.payload() == "hello from sqlx", "{}", n.payload());
        Ok(format!(
            "PgListener: payload '{}' from pid {}",
            n.payload(),
            n.process_id()
        ))
    })
    .await;

    m.check(C, "cancel", async {
        gap("sqlx has no API to send a CancelRequest (it keeps the backend key but never uses it)")
    })
    .await;

    m.check(C, "application_name", async {
        let name: String = sqlx::query_scalar(APP_NAME_SQL).fetch_one(&mut c).await?;
        ensure!(name == "clients-sqlx", "{name}");
        Ok(format!("server sees '{name}'"))
    })
    .await;

    m.check(C, "error_sqlstate", async {
        let e = match sqlx::query("select 1/0").fetch_one(&mut c).await {
            Ok(_) => bail!("no error"),
            Err(e) => e,
        };
        let db = e.as_database_error().context("not a server error")?;
        ensure!(db.code().as_deref() == Some("22012"), "{e}");
        let msg = db.message().to_owned();
        let one: i32 = sqlx::query_scalar("select 1").fetch_one(&mut c).await?;
        ensure!(one == 1);
        Ok(format!("SQLSTATE 22012: {msg}; connection still usable"))
    })
    .await;

    let _ = c.close().await;
}

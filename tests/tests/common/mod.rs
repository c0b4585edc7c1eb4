//! Shared set-up for the end-to-end tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use standin::{ProxyCommand, ProxyProcess, StandIn, StandInOptions};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

pub const PROXY_BIN: &str = env!("CARGO_BIN_EXE_proxy-under-test");

/// A stand-in with IAM user `iam_user` owning database `appdb`.
pub async fn standin() -> StandIn {
    standin_with(StandInOptions::default()).await
}

/// [`standin`] with non-default options (credential lifetime, connection limit, ...).
pub async fn standin_with(options: StandInOptions) -> StandIn {
    let s = StandIn::start(options).await.expect("stand-in starts");
    s.create_iam_user("iam_user")
        .await
        .expect("create iam_user");
    s.create_database("appdb", "iam_user")
        .await
        .expect("create appdb");
    s
}

/// [`standin`] whose container endpoint hands out credentials that live `lifetime`.
pub async fn standin_with_session_lifetime(lifetime: Duration) -> StandIn {
    standin_with(StandInOptions {
        session_lifetime: lifetime,
        ..StandInOptions::default()
    })
    .await
}

pub fn proxy_for(s: &StandIn) -> ProxyCommand {
    ProxyCommand::for_standin(PROXY_BIN, s, "appdb")
}

/// The proxy with the targets of the config file at `path` and the stand-in's credentials;
/// ready once it reports `listeners` listeners.
pub fn config_proxy(s: &StandIn, path: &Path, listeners: usize) -> ProxyCommand {
    ProxyCommand::new(PROXY_BIN)
        .args(["--config", path.to_str().unwrap()])
        .standin_env(s)
        .expect_listeners(listeners)
}

/// One `[[target]]` table for `host:5432`, listening on `listen`, verified with `ca_file`;
/// `extra` holds further `key = value` lines (`connect_to`, `database`, `user`, ...).
pub fn target_toml(
    name: &str,
    host: &str,
    listen: &[String],
    ca_file: &Path,
    extra: &str,
) -> String {
    let listen = listen
        .iter()
        .map(|l| format!("{l:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[[target]]\nname = \"{name}\"\nhost = \"{host}\"\nport = 5432\nlisten = [{listen}]\n\
         ca_file = \"{}\"\n{extra}\n\n",
        ca_file.display()
    )
}

/// libpq-style connection string to the proxy: plaintext, no password, database `appdb`.
pub fn conninfo(addr: SocketAddr, user: &str, extra: &str) -> String {
    format!(
        "host={} port={} user={user} dbname=appdb sslmode=disable {extra}",
        addr.ip(),
        addr.port()
    )
}

/// A plaintext session from a libpq-style connection string. Its connection task runs on the
/// caller's runtime and is returned too, since an error the server sends outside a query
/// (57P01) ends up there.
pub async fn open(
    conninfo: &str,
) -> Result<(Client, JoinHandle<Result<(), tokio_postgres::Error>>), tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
    Ok((client, tokio::spawn(conn)))
}

/// Connects through the proxy with tokio-postgres and no password.
pub async fn connect(addr: SocketAddr, user: &str) -> Result<Client, tokio_postgres::Error> {
    Ok(open(&conninfo(addr, user, "")).await?.0)
}

/// [`connect`] naming no database: the target's default applies.
pub async fn connect_default_db(
    addr: SocketAddr,
    user: &str,
) -> Result<Client, tokio_postgres::Error> {
    let conninfo = format!(
        "host={} port={} user={user} sslmode=disable",
        addr.ip(),
        addr.port()
    );
    Ok(open(&conninfo).await?.0)
}

/// Connects as `iam_user` with extra conninfo, panicking on failure; the connection task is
/// returned too (see [`open`]).
pub async fn connect_with(
    addr: SocketAddr,
    extra: &str,
) -> (Client, JoinHandle<Result<(), tokio_postgres::Error>>) {
    open(&conninfo(addr, "iam_user", extra))
        .await
        .unwrap_or_else(|e| panic!("connect ({extra}): {e}"))
}

/// Runs `sql` and returns the text in the first column of its first row.
pub async fn one(client: &Client, sql: &str) -> String {
    let rows = client.query(sql, &[]).await.expect(sql);
    rows[0].get::<_, String>(0)
}

/// The SQLSTATE of an error the server (or the proxy) sent.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.code().code().to_owned())
}

/// The SQLSTATE and message of a failed connection attempt.
pub async fn connect_error(addr: SocketAddr, user: &str) -> (String, String, Option<String>) {
    match connect(addr, user).await {
        Ok(_) => panic!("connection to {addr} unexpectedly succeeded"),
        Err(e) => {
            let db = e
                .as_db_error()
                .unwrap_or_else(|| panic!("expected an ErrorResponse, got: {e:?}"));
            (
                db.code().code().to_owned(),
                db.message().to_owned(),
                db.hint().map(str::to_owned),
            )
        }
    }
}

/// Spawns the proxy with its admin listener on a free port; returns it and the admin address.
pub fn spawn_with_admin(cmd: ProxyCommand) -> (ProxyProcess, SocketAddr) {
    let mut proxy = cmd
        .args(["--admin-listen", "127.0.0.1:0"])
        .spawn()
        .expect("proxy starts");
    let admin = admin_addr(&mut proxy);
    (proxy, admin)
}

/// The admin address the proxy logged (it binds `127.0.0.1:0`).
pub fn admin_addr(proxy: &mut ProxyProcess) -> SocketAddr {
    let lines = proxy
        .wait_for_message("admin listening", 1, Duration::from_secs(30))
        .unwrap();
    standin::proxy::field(&lines[0], "listen")
        .and_then(|a| a.parse().ok())
        .expect("admin listen address in the log")
}

/// The only target's name, from its "target ready" line.
pub fn target_name(proxy: &ProxyProcess) -> String {
    let lines = proxy.log_messages("target ready");
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    v["target"].as_str().unwrap().to_owned()
}

/// (bytes, sha256 in hex) of a `COPY ... TO STDOUT`.
pub async fn copy_out_digest(client: &Client, sql: &str) -> (u64, String) {
    let stream = client.copy_out(sql).await.unwrap();
    let mut stream = std::pin::pin!(stream);
    let (mut n, mut h) = (0u64, Sha256::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        n += chunk.len() as u64;
        h.update(&chunk);
    }
    (n, hex::encode(h.finalize()))
}

/// Connects through the proxy and runs a query: the proxy serves.
pub async fn still_serves(proxy: &ProxyProcess) {
    let client = connect(proxy.addr(), "iam_user")
        .await
        .expect("the proxy still serves");
    client.simple_query("select 1").await.unwrap();
}

/// A session straight to the stand-in (TLS, verified, not through the proxy) with a token the
/// test signs itself: the reference the proxy's bytes are compared against.
pub async fn direct_session(s: &StandIn) -> tokio_postgres::Client {
    s.connect_direct("iam_user", "appdb", &s.sign_token("iam_user"))
        .await
        .unwrap()
}

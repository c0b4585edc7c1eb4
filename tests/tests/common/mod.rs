//! Shared set-up for the end-to-end tests.
#![allow(dead_code)]

use std::net::SocketAddr;

use standin::{ProxyCommand, StandIn, StandInOptions};
use tokio_postgres::{Client, NoTls};

pub const PROXY_BIN: &str = env!("CARGO_BIN_EXE_proxy-under-test");

/// A stand-in with IAM user `iam_user` owning database `appdb`.
pub async fn standin() -> StandIn {
    let s = StandIn::start(StandInOptions::default())
        .await
        .expect("stand-in starts");
    s.create_iam_user("iam_user")
        .await
        .expect("create iam_user");
    s.create_database("appdb", "iam_user")
        .await
        .expect("create appdb");
    s
}

pub fn proxy_for(s: &StandIn) -> ProxyCommand {
    ProxyCommand::for_standin(PROXY_BIN, s, "appdb")
}

/// libpq-style connection string to the proxy: plaintext, no password.
pub fn conninfo(addr: SocketAddr, user: &str, extra: &str) -> String {
    format!(
        "host={} port={} user={user} dbname=appdb sslmode=disable {extra}",
        addr.ip(),
        addr.port()
    )
}

/// Connects through the proxy with tokio-postgres and no password.
pub async fn connect(addr: SocketAddr, user: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(&conninfo(addr, user, ""), NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
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

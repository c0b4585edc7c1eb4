//! Startups with made-up user names (finding 5): each new name needs a new token, so the
//! rate-limit permit is taken before the token is minted, and names that never got in are
//! not kept fresh (the signer's own tests cover the cache bound and the refresh rule).

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::admin_client::{get, metric};
use crate::common::{proxy_for, spawn_with_admin, standin};
use crate::raw_client::startup_packet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_made_up_user_names_mints_only_what_the_rate_allows() {
    let s = standin().await;
    let (proxy, admin) = spawn_with_admin(proxy_for(&s).args([
        "--max-connect-rate",
        "2",
        "--connect-timeout",
        "2s",
    ]));
    const NAMES: usize = 40;
    let mut clients = Vec::new();
    for i in 0..NAMES {
        let addr = proxy.addr();
        clients.push(tokio::spawn(async move {
            let mut sock = TcpStream::connect(addr).await.unwrap();
            let user = format!("made_up_{i}");
            sock.write_all(&startup_packet(&[("user", &user), ("database", "appdb")]))
                .await
                .unwrap();
            let _ = tokio::time::timeout(
                Duration::from_secs(20),
                crate::raw_client::read_message(&mut sock),
            )
            .await;
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let (_, text) = get(admin, "/metrics").await;
    let mints = metric(
        &text,
        "rds_iam_proxy_token_mints_total",
        &[("result", "ok")],
    )
    .unwrap();
    // 2/s with a 100 ms burst for the 2 s each client may wait: a handful of slots, each
    // one token (a rejected name's retry takes a slot too).
    println!("{NAMES} made-up user names at --max-connect-rate 2: {mints} tokens minted");
    assert!(mints <= 10.0, "{mints} tokens for {NAMES} names");
    assert!(mints >= 1.0, "some got a slot: {mints}");
}

use super::*;
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn relays_both_ways_and_counts_bytes() {
    let (mut client_app, mut client_proxy) = duplex(64);
    let (mut server_proxy, mut server_db) = duplex(64);
    let task =
        tokio::spawn(
            async move { splice(&mut client_proxy, &mut server_proxy, None, &mut Raw).await },
        );
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let send = payload.clone();
    let writer = tokio::spawn(async move {
        client_app.write_all(&send).await.unwrap();
        client_app.shutdown().await.unwrap();
        let mut back = Vec::new();
        client_app.read_to_end(&mut back).await.unwrap();
        back
    });
    let mut got = Vec::new();
    server_db.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, payload, "client to server bytes");
    server_db.write_all(b"bye").await.unwrap();
    drop(server_db);
    let back = writer.await.unwrap();
    assert_eq!(back, b"bye");
    let (moved, end) = task.await.unwrap();
    assert!(matches!(end, SpliceEnd::ServerClosed), "{end:?}");
    assert_eq!(moved.client_to_server, 100_000);
    assert_eq!(moved.server_to_client, 3);
}

#[tokio::test]
async fn meters_count_as_bytes_flow() {
    let (mut client_app, mut client_proxy) = duplex(64);
    let (mut server_proxy, mut server_db) = duplex(64);
    let meters = ByteCounters::default();
    let live = meters.clone();
    let task = tokio::spawn(async move {
        splice(
            &mut client_proxy,
            &mut server_proxy,
            Some(&meters),
            &mut Raw,
        )
        .await
    });
    client_app.write_all(b"hello").await.unwrap();
    let mut got = [0u8; 5];
    server_db.read_exact(&mut got).await.unwrap();
    // Counted while the session is still open.
    assert_eq!(live.client_to_server.get(), 5);
    server_db.write_all(b"hi").await.unwrap();
    drop(server_db);
    let mut back = Vec::new();
    client_app.read_to_end(&mut back).await.unwrap();
    let (moved, _) = task.await.unwrap();
    assert_eq!(live.server_to_client.get(), 2);
    assert_eq!(moved.client_to_server, 5);
}

#[tokio::test]
async fn names_the_side_that_failed() {
    let (client_app, mut client_proxy) = duplex(64);
    let (mut server_proxy, mut server_db) = duplex(64);
    let task =
        tokio::spawn(
            async move { splice(&mut client_proxy, &mut server_proxy, None, &mut Raw).await },
        );
    // Client vanishes; server keeps talking: the write towards the client fails.
    drop(client_app);
    let _ = server_db.write_all(&[1u8; 1024]).await;
    let (_, end) = task.await.unwrap();
    match end {
        SpliceEnd::Failed(e) => assert_eq!(e.side(), Side::Client, "{e}"),
        other => panic!("expected a client-side failure, got {other:?}"),
    }
}

/// `tag`, length, body.
fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn a_pooled_splice_holds_back_terminate_and_leaves_the_server_open() {
    let (mut client_app, mut client_proxy) = duplex(64);
    let (mut server_proxy, mut server_db) = duplex(64);
    let task = tokio::spawn(async move {
        let mut watch = Tracked::default();
        let (moved, end) = splice(&mut client_proxy, &mut server_proxy, None, &mut watch).await;
        (moved, end, watch, server_proxy)
    });
    let query = frame(b'Q', b"select 1\0");
    client_app.write_all(&query).await.unwrap();
    let mut got = vec![0u8; query.len()];
    server_db.read_exact(&mut got).await.unwrap();
    assert_eq!(got, query);
    let mut reply = frame(b'C', b"SELECT 1\0");
    reply.extend(frame(b'Z', b"I"));
    server_db.write_all(&reply).await.unwrap();
    let mut back = vec![0u8; reply.len()];
    client_app.read_exact(&mut back).await.unwrap();
    client_app.write_all(&frame(b'X', b"")).await.unwrap();
    let (moved, end, watch, mut server_proxy) = task.await.unwrap();
    assert!(matches!(end, SpliceEnd::ClientLeft), "{end:?}");
    assert!(watch.state.is_idle());
    assert_eq!(
        moved.client_to_server,
        query.len() as u64,
        "Terminate not relayed"
    );
    // The server side is still open and usable: nothing more arrived, nothing was shut down.
    server_proxy.write_all(b"ping").await.unwrap();
    let mut ping = [0u8; 4];
    server_db.read_exact(&mut ping).await.unwrap();
    assert_eq!(&ping, b"ping");
}

#[tokio::test]
async fn a_pooled_splice_whose_client_leaves_mid_query_is_not_idle() {
    let (mut client_app, mut client_proxy) = duplex(64);
    let (mut server_proxy, mut server_db) = duplex(64);
    let task = tokio::spawn(async move {
        let mut watch = Tracked::default();
        let (_, end) = splice(&mut client_proxy, &mut server_proxy, None, &mut watch).await;
        (end, watch)
    });
    let query = frame(b'Q', b"select pg_sleep(10)\0");
    client_app.write_all(&query).await.unwrap();
    let mut got = vec![0u8; query.len()];
    server_db.read_exact(&mut got).await.unwrap();
    drop(client_app);
    let (end, watch) = task.await.unwrap();
    assert!(matches!(end, SpliceEnd::ClientLeft), "{end:?}");
    assert!(!watch.state.is_idle());
    assert!(watch.state.is_busy());
}

//! Hardening, data integrity: large COPY out, large result streams and COPY in through the
//! proxy are byte-for-byte what a direct (TLS, verified, test-signed token) session gives.
//! CI sizes ~200 MB / ~90 MB / 128 MB; `RDS_IAM_TESTS_FULL=1` (`scripts/test-long`) ~1 GB each.

mod common;
#[path = "hardening/mod.rs"]
mod hardening;

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use common::{connect, copy_out_digest, direct_session, proxy_for, standin};
use futures_util::{SinkExt, StreamExt};
use hardening::size;
use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_binary_copy_out_through_the_proxy_equals_the_direct_one() {
    let s = standin().await;
    let proxy = proxy_for(&s).spawn().unwrap();
    let rows: i64 = size(200_000, 1_000_000); // ~1 KiB a row
                                              // Binary format: every byte value occurs, nothing is escaped.
    let sql = format!(
        "copy (select i, decode(repeat(md5(i::text) || md5((-i)::text), 32), 'hex') \
         from generate_series(1, {rows}) i) to stdout with (format binary)"
    );
    let through = connect(proxy.addr(), "iam_user").await.unwrap();
    let t = Instant::now();
    let via_proxy = copy_out_digest(&through, &sql).await;
    let proxy_time = t.elapsed();
    let t = Instant::now();
    let direct = copy_out_digest(&direct_session(&s).await, &sql).await;
    eprintln!(
        "integrity copy out: {} bytes, sha256 {} through the proxy ({proxy_time:?}), {} bytes, \
         sha256 {} direct over TLS ({:?})",
        via_proxy.0,
        via_proxy.1,
        direct.0,
        direct.1,
        t.elapsed()
    );
    assert!(via_proxy.0 > rows as u64 * 1024, "{} bytes", via_proxy.0);
    assert_eq!(via_proxy, direct);
    through.simple_query("select 1").await.unwrap();
}

/// (rows, bytes, sha256) of a result streamed row by row with the extended protocol.
async fn result_digest(client: &Client, sql: &str) -> (u64, u64, String) {
    let none: [&(dyn ToSql + Sync); 0] = [];
    let stream = client.query_raw(sql, none).await.unwrap();
    let mut stream = std::pin::pin!(stream);
    let (mut rows, mut n, mut h) = (0u64, 0u64, Sha256::new());
    while let Some(row) = stream.next().await {
        let row = row.unwrap();
        let id: i64 = row.get(0);
        let text: &str = row.get(1);
        let blob: &[u8] = row.get(2);
        h.update(id.to_be_bytes());
        h.update(text.as_bytes());
        h.update(blob);
        n += 8 + text.len() as u64 + blob.len() as u64;
        rows += 1;
    }
    (rows, n, hex::encode(h.finalize()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_result_stream_through_the_proxy_equals_the_direct_one() {
    let s = standin().await;
    let proxy = proxy_for(&s).spawn().unwrap();
    let rows: i64 = size(128_000, 1_000_000);
    let sql = format!(
        "select i, repeat('ü€' || i::text, 20), decode(repeat(md5(i::text), 32), 'hex') \
         from generate_series(1::bigint, {rows}) i"
    );
    let through = connect(proxy.addr(), "iam_user").await.unwrap();
    let t = Instant::now();
    let via_proxy = result_digest(&through, &sql).await;
    let proxy_time = t.elapsed();
    let direct = result_digest(&direct_session(&s).await, &sql).await;
    eprintln!(
        "integrity result stream: {} rows, {} bytes of values, sha256 {} through the proxy \
         ({proxy_time:?}); direct: {} rows, sha256 {}",
        via_proxy.0, via_proxy.1, via_proxy.2, direct.0, direct.2
    );
    assert_eq!(via_proxy.0, rows as u64);
    assert_eq!(via_proxy, direct);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_through_the_proxy_stores_exactly_what_was_sent() {
    let s = standin().await;
    let proxy = proxy_for(&s).spawn().unwrap();
    let client = connect(proxy.addr(), "iam_user").await.unwrap();
    client
        .batch_execute("create table blobs (id bigint primary key, payload bytea not null)")
        .await
        .unwrap();
    let rows: i64 = size(32_000, 250_000); // 4 KiB of random bytes each: 128 MB / 1 GB

    // Binary COPY: the stream COPY ... TO STDOUT (FORMAT binary) gives back for the same
    // rows is byte-identical to this one, so the two digests can be compared.
    let sink = client
        .copy_in("copy blobs (id, payload) from stdin with (format binary)")
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    let mut rng = fastrand::Rng::with_seed(9);
    let (mut sent, mut h) = (0u64, Sha256::new());
    let mut buf = BytesMut::with_capacity(1 << 20);
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0);
    buf.put_i32(0);
    let mut payload = vec![0u8; 4096];
    let t = Instant::now();
    for id in 1..=rows {
        rng.fill(&mut payload);
        buf.put_i16(2);
        buf.put_i32(8);
        buf.put_i64(id);
        buf.put_i32(payload.len() as i32);
        buf.put_slice(&payload);
        if buf.len() >= 1 << 20 || id == rows {
            if id == rows {
                buf.put_i16(-1);
            }
            let chunk: Bytes = buf.split().freeze();
            sent += chunk.len() as u64;
            h.update(&chunk);
            sink.send(chunk).await.unwrap();
        }
    }
    let written = sink.as_mut().finish().await.unwrap();
    let copy_time = t.elapsed();
    assert_eq!(written, rows as u64);
    let sent_digest = hex::encode(h.finalize());

    // Read back directly, not through the proxy.
    let stored = copy_out_digest(
        &direct_session(&s).await,
        "copy (select id, payload from blobs order by id) to stdout with (format binary)",
    )
    .await;
    eprintln!(
        "integrity copy in: {sent} bytes sent through the proxy in {copy_time:?}, sha256 \
         {sent_digest}; read back directly: {} bytes, sha256 {}",
        stored.0, stored.1
    );
    assert_eq!(stored, (sent, sent_digest));
}

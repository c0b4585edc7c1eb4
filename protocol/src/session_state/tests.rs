use super::*;

/// A frame with `tag` and a body of `body` bytes.
fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    frame(b'Q', &body)
}

fn ready(status: u8) -> Vec<u8> {
    frame(b'Z', &[status])
}

fn terminate() -> Vec<u8> {
    frame(b'X', &[])
}

#[test]
fn a_new_session_is_idle() {
    assert!(SessionState::new().is_idle());
}

#[test]
fn a_query_in_flight_is_not_idle_until_its_ready_for_query() {
    let mut s = SessionState::new();
    assert_eq!(s.client_sent(&query("select 1")), ClientChunk::Forward);
    assert!(!s.is_idle());
    let mut reply = frame(b'T', &[0, 0]);
    reply.extend(frame(b'C', b"SELECT 1\0"));
    s.server_sent(&reply);
    assert!(!s.is_idle(), "no ReadyForQuery yet");
    s.server_sent(&ready(b'I'));
    assert!(s.is_idle());
}

#[test]
fn inside_a_transaction_is_not_idle() {
    let mut s = SessionState::new();
    s.client_sent(&query("begin"));
    s.server_sent(&ready(b'T'));
    assert!(!s.is_idle());
    assert_eq!(s.status(), b'T');
    s.client_sent(&query("select 1/0"));
    s.server_sent(&ready(b'E'));
    assert!(!s.is_idle());
    s.client_sent(&query("rollback"));
    s.server_sent(&ready(b'I'));
    assert!(s.is_idle());
}

#[test]
fn an_extended_batch_without_sync_is_not_idle() {
    let mut s = SessionState::new();
    let mut batch = frame(b'P', b"\0select 1\0\0\0");
    batch.extend(frame(b'B', &[0; 8]));
    batch.extend(frame(b'E', &[0, 0, 0, 0, 0]));
    s.client_sent(&batch);
    assert!(!s.is_idle(), "batch open");
    s.client_sent(&frame(b'S', &[]));
    assert!(!s.is_idle(), "Sync not answered");
    s.server_sent(&frame(b'1', &[]));
    s.server_sent(&frame(b'2', &[]));
    s.server_sent(&ready(b'I'));
    assert!(s.is_idle());
}

#[test]
fn copy_in_progress_is_not_idle() {
    let mut s = SessionState::new();
    s.client_sent(&query("copy t from stdin"));
    s.server_sent(&frame(b'G', &[0, 0, 0]));
    s.client_sent(&frame(b'd', b"1\n"));
    assert!(!s.is_idle());
    s.client_sent(&frame(b'c', &[]));
    s.server_sent(&frame(b'C', b"COPY 1\0"));
    assert!(!s.is_idle());
    s.server_sent(&ready(b'I'));
    assert!(s.is_idle());
}

#[test]
fn terminate_is_found_where_it_starts() {
    let mut s = SessionState::new();
    let mut chunk = query("select 1");
    let at = chunk.len();
    chunk.extend(terminate());
    assert_eq!(s.client_sent(&chunk), ClientChunk::TerminateAt(at));
    // The query before it was never answered.
    assert!(!s.is_idle());

    let mut s = SessionState::new();
    assert_eq!(s.client_sent(&terminate()), ClientChunk::TerminateAt(0));
    assert!(s.is_idle());
}

#[test]
fn a_terminate_split_across_chunks_cannot_be_held_back() {
    let mut s = SessionState::new();
    let x = terminate();
    assert_eq!(s.client_sent(&x[..2]), ClientChunk::Forward);
    assert_eq!(s.client_sent(&x[2..]), ClientChunk::Forward);
    assert!(!s.is_idle(), "part of the Terminate reached the server");
}

#[test]
fn a_half_sent_message_is_not_idle() {
    let mut s = SessionState::new();
    let q = query("select 1");
    s.client_sent(&q[..3]);
    assert!(!s.is_idle(), "inside a header");
    let mut s = SessionState::new();
    s.client_sent(&q[..q.len() - 1]);
    assert!(!s.is_idle(), "inside a body");
}

#[test]
fn headers_and_status_split_at_every_byte_are_followed() {
    let mut client = query("select 1");
    client.extend(frame(b'P', b"\0x\0\0\0"));
    client.extend(frame(b'S', &[]));
    let mut server = frame(b'C', b"SELECT 1\0");
    server.extend(ready(b'I'));
    server.extend(frame(b'1', &[]));
    server.extend(ready(b'I'));
    for cut in 0..=client.len() {
        for scut in 0..=server.len() {
            let mut s = SessionState::new();
            s.client_sent(&client[..cut]);
            s.client_sent(&client[cut..]);
            s.server_sent(&server[..scut]);
            s.server_sent(&server[scut..]);
            assert!(s.is_idle(), "cuts {cut}/{scut}");
        }
    }
}

#[test]
fn a_status_split_from_its_header_is_read() {
    let mut s = SessionState::new();
    s.client_sent(&query("begin"));
    let z = ready(b'T');
    s.server_sent(&z[..5]);
    s.server_sent(&z[5..]);
    assert_eq!(s.status(), b'T');
}

#[test]
fn an_unasked_ready_for_query_or_a_bad_length_breaks_the_session() {
    let mut s = SessionState::new();
    s.server_sent(&ready(b'I'));
    assert!(!s.is_idle());
    let mut s = SessionState::new();
    s.client_sent(&[b'Q', 0, 0, 0, 2]);
    assert!(!s.is_idle());
    // Once broken, it stays so.
    s.server_sent(&ready(b'I'));
    assert!(!s.is_idle());
}

#[test]
fn large_bodies_are_skipped_without_being_seen() {
    let mut s = SessionState::new();
    s.client_sent(&query("copy t to stdout"));
    let row = frame(b'd', &[b'Z'; 10_000]);
    for chunk in row.chunks(1000) {
        s.server_sent(chunk);
    }
    assert!(!s.is_idle());
    assert_eq!(s.status(), b'I', "a Z inside a body is not a ReadyForQuery");
    s.server_sent(&frame(b'C', b"COPY 1\0"));
    s.server_sent(&ready(b'I'));
    assert!(s.is_idle());
}

#[test]
fn a_parameter_report_during_the_session_is_noticed() {
    let mut s = SessionState::new();
    s.client_sent(&query("set timezone = 'UTC'"));
    assert!(!s.parameters_reported());
    let mut reply = frame(b'C', b"SET\0");
    reply.extend(frame(b'S', b"TimeZone\0UTC\0"));
    reply.extend(ready(b'I'));
    s.server_sent(&reply);
    assert!(s.parameters_reported());
    assert!(s.is_idle());
}

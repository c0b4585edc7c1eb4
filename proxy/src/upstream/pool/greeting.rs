//! What a client is sent when it gets a pooled connection: what a fresh session would send.

use std::sync::Arc;

use bytes::BytesMut;
use rds_iam_protocol::BackendMessage;

use super::{Idle, Lease, Pool, Pooled};
use crate::upstream::ServerSession;

/// The session for a reused connection, with its greeting.
pub(super) fn session(pool: &Arc<Pool>, idle: Idle) -> ServerSession {
    let Idle { stream, conn } = idle;
    ServerSession {
        stream,
        addr: conn.addr,
        trust: conn.trust.clone(),
        instance: None,
        to_client: greeting(&conn),
        backend_key: conn.backend_key.clone(),
        params: Vec::new(),
        negotiated: None,
        reused: true,
        lease: Some(Lease {
            pool: pool.clone(),
            conn,
        }),
    }
}

/// The server's NegotiateProtocolVersion if it sent one, AuthenticationOk, the ParameterStatus
/// set, BackendKeyData (so cancel reaches this connection), ReadyForQuery `I`: the order a
/// server sends them in.
fn greeting(conn: &Pooled) -> BytesMut {
    let mut out = BytesMut::with_capacity(512);
    if let Some(frame) = &conn.negotiated {
        out.extend_from_slice(frame);
    }
    BackendMessage::AuthenticationOk.encode(&mut out);
    for (name, value) in &conn.params {
        BackendMessage::ParameterStatus {
            name: name.clone(),
            value: value.clone(),
        }
        .encode(&mut out);
    }
    if let Some((pid, secret)) = &conn.backend_key {
        BackendMessage::BackendKeyData {
            pid: *pid,
            secret: secret.clone(),
        }
        .encode(&mut out);
    }
    BackendMessage::ReadyForQuery { status: b'I' }.encode(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::pool::PoolKey;
    use bytes::Bytes;
    use rds_iam_protocol::{decode_backend_message, ProtocolVersion, StartupMessage};

    fn messages(mut buf: &[u8]) -> Vec<BackendMessage> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let (m, n) = decode_backend_message(buf).unwrap().complete().unwrap();
            out.push(m);
            buf = &buf[n..];
        }
        out
    }

    #[test]
    fn a_reused_connection_greets_like_a_fresh_one() {
        let startup = StartupMessage::new(ProtocolVersion::V3_2, vec![("user".into(), "u".into())]);
        let mut negotiated = BytesMut::new();
        BackendMessage::NegotiateProtocolVersion {
            newest_minor: 0,
            unrecognized: vec![],
        }
        .encode(&mut negotiated);
        let conn = Pooled {
            key: PoolKey::of(&startup).unwrap(),
            addr: "127.0.0.1:5432".parse().unwrap(),
            trust: Arc::new(crate::targets::test_trust()),
            params: vec![
                ("server_version".into(), "15.4".into()),
                ("application_name".into(), "app".into()),
            ],
            negotiated: Some(negotiated.freeze()),
            backend_key: Some((4242, Bytes::from_static(&[1, 2, 3, 4]))),
            retire_at: tokio::time::Instant::now(),
        };
        assert_eq!(
            messages(&greeting(&conn)),
            [
                BackendMessage::NegotiateProtocolVersion {
                    newest_minor: 0,
                    unrecognized: vec![]
                },
                BackendMessage::AuthenticationOk,
                BackendMessage::ParameterStatus {
                    name: "server_version".into(),
                    value: "15.4".into()
                },
                BackendMessage::ParameterStatus {
                    name: "application_name".into(),
                    value: "app".into()
                },
                BackendMessage::BackendKeyData {
                    pid: 4242,
                    secret: Bytes::from_static(&[1, 2, 3, 4])
                },
                BackendMessage::ReadyForQuery { status: b'I' },
            ]
        );
    }
}

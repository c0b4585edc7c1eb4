//! What a client is sent when it gets a pooled connection: what a fresh session would send.

use bytes::BytesMut;
use rds_iam_protocol::BackendMessage;

use super::{Idle, Lease, Pool};
use crate::upstream::ServerSession;
use std::sync::Arc;

/// The session for a reused connection: AuthenticationOk, its ParameterStatus set, its
/// BackendKeyData (so cancel reaches it), ReadyForQuery `I`.
pub(super) fn session(pool: &Arc<Pool>, idle: Idle) -> ServerSession {
    let Idle { stream, conn } = idle;
    let mut to_client = BytesMut::with_capacity(512);
    BackendMessage::AuthenticationOk.encode(&mut to_client);
    for (name, value) in &conn.params {
        BackendMessage::ParameterStatus {
            name: name.clone(),
            value: value.clone(),
        }
        .encode(&mut to_client);
    }
    if let Some((pid, secret)) = &conn.backend_key {
        BackendMessage::BackendKeyData {
            pid: *pid,
            secret: secret.clone(),
        }
        .encode(&mut to_client);
    }
    BackendMessage::ReadyForQuery { status: b'I' }.encode(&mut to_client);
    ServerSession {
        stream,
        addr: conn.addr,
        to_client,
        backend_key: conn.backend_key.clone(),
        params: Vec::new(),
        reused: true,
        lease: Some(Lease {
            pool: pool.clone(),
            conn,
        }),
    }
}

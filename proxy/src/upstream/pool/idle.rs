//! One idle pooled connection's watcher: it hands the connection to a checkout, or closes
//! it when the server speaks or hangs up (`idle_session_timeout`, `pg_terminate_backend`, a
//! restart), when it has idled too long or lived too long, or when the pool closes.

use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use super::{Discard, Idle, Pool};

/// A checkout's request: the sender the connection is handed over on.
pub(super) type Take = oneshot::Sender<Idle>;

/// How the pool reaches one idle connection's watcher.
#[derive(Debug)]
pub(super) struct IdleHandle {
    pub id: u64,
    pub take: oneshot::Sender<Take>,
}

enum Event {
    Taken(Result<Take, oneshot::error::RecvError>),
    Close(Discard),
}

pub(super) async fn watch(
    pool: Arc<Pool>,
    mut idle: Idle,
    id: u64,
    taken: oneshot::Receiver<Take>,
) {
    let idle_until = tokio::time::Instant::now() + pool.settings.idle_timeout;
    let (deadline, expiry) = if idle.conn.retire_at < idle_until {
        (idle.conn.retire_at, Discard::Lifetime)
    } else {
        (idle_until, Discard::IdleTimeout)
    };
    let event = {
        let mut byte = [0u8; 1];
        // In this order: a server that already said goodbye (a FATAL, EOF) or a closing pool
        // wins over a checkout that asks at the same moment, so neither is handed out.
        tokio::select! {
            biased;
            // An idle server has nothing to say; anything means it is done.
            _ = idle.stream.read(&mut byte) => Event::Close(Discard::ServerClosed),
            () = pool.closed.cancelled() => Event::Close(pool.close_reason()),
            t = taken => Event::Taken(t),
            () = tokio::time::sleep_until(deadline) => Event::Close(expiry),
        }
    };
    match event {
        Event::Taken(Ok(reply)) => {
            if let Err(back) = reply.send(idle) {
                // The checkout gave up (its client left); the connection is still good.
                pool.keep(back.stream, back.conn);
            }
        }
        // The pool dropped the handle without a request: it is gone.
        Event::Taken(Err(_)) => pool.discard(idle.stream, pool.close_reason()),
        Event::Close(reason) => {
            pool.forget(&idle.conn.key, id);
            pool.discard(idle.stream, reason);
        }
    }
}

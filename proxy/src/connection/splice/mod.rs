//! The splice: after ReadyForQuery, bytes flow both ways without parsing.
//!
//! A poll-based copy in one task (no stream splitting, no locks), so that an error says which
//! side failed, and half-close is handled: when the client stops sending we shut down the write
//! half upstream and keep relaying the server's last bytes; when the server closes, the session
//! is over. A pooled session ([`Tracked`]) instead ends when its client does, leaving the
//! server side open, and its client's Terminate is not relayed.

mod watch;

pub(crate) use watch::{Raw, Tracked, Watch};

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::ByteCounters;

/// Largest read per poll, into a buffer on the poller's stack, so it costs an idle session
/// nothing. One TLS record carries at most 16 KiB of plaintext, so a read of that size can take
/// a whole record; 64 KiB reads made no difference beyond the noise in bench/run's `COPY`.
pub(crate) const SPLICE_BUFFER_LEN: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Server => "server",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SpliceError {
    #[error("reading from the {side} failed: {source}")]
    Read { side: Side, source: io::Error },
    #[error("writing to the {side} failed: {source}")]
    Write { side: Side, source: io::Error },
}

impl SpliceError {
    pub fn side(&self) -> Side {
        match self {
            SpliceError::Read { side, .. } | SpliceError::Write { side, .. } => *side,
        }
    }
}

/// Bytes moved in each direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transferred {
    pub client_to_server: u64,
    pub server_to_client: u64,
}

/// How the splice ended.
#[derive(Debug)]
pub(crate) enum SpliceEnd {
    /// The server closed its side (normally after the client's Terminate).
    ServerClosed,
    /// A pooled session's client sent Terminate or closed; the server side is still open.
    ClientLeft,
    /// One side failed.
    Failed(SpliceError),
}

/// One direction of the splice.
///
/// Reads go into a buffer on the stack and are written out at once; only what the writer does
/// not take (it pushed back) is kept, in `spill`, which is allocated then and freed again when
/// the reader runs dry. An idle session therefore holds no copy buffer at all, and the steady
/// state of request/response traffic allocates nothing.
struct Direction {
    from: Side,
    to: Side,
    /// Bytes read but not yet written; `pos` is how far they have been written.
    spill: Vec<u8>,
    pos: usize,
    eof: bool,
    /// At EOF, shut the writer down (not for a pooled server connection, which stays open).
    shutdown_at_eof: bool,
    needs_flush: bool,
    done: bool,
    moved: u64,
    /// Added to per write (not per byte), so long sessions show in `bytes_total` as they run.
    meter: Option<Counter>,
}

impl Direction {
    fn new(from: Side, to: Side, meter: Option<Counter>) -> Self {
        Direction {
            from,
            to,
            spill: Vec::new(),
            pos: 0,
            eof: false,
            shutdown_at_eof: true,
            needs_flush: false,
            done: false,
            moved: 0,
            meter,
        }
    }

    fn read_err(&self, source: io::Error) -> SpliceError {
        SpliceError::Read {
            side: self.from,
            source,
        }
    }

    fn write_err(&self, source: io::Error) -> SpliceError {
        SpliceError::Write {
            side: self.to,
            source,
        }
    }

    fn count(&mut self, n: usize) {
        self.moved += n as u64;
        if let Some(meter) = &self.meter {
            meter.inc_by(n as u64);
        }
        self.needs_flush = true;
    }

    /// Writes `data[*off..]` until done or the writer pushes back.
    fn poll_write_all<W>(
        &mut self,
        cx: &mut Context<'_>,
        w: &mut Pin<&mut W>,
        data: &[u8],
        off: &mut usize,
    ) -> Poll<Result<(), SpliceError>>
    where
        W: AsyncWrite + ?Sized,
    {
        while *off < data.len() {
            let n =
                ready!(w.as_mut().poll_write(cx, &data[*off..])).map_err(|e| self.write_err(e))?;
            if n == 0 {
                return Poll::Ready(Err(self.write_err(io::ErrorKind::WriteZero.into())));
            }
            *off += n;
            self.count(n);
        }
        Poll::Ready(Ok(()))
    }

    /// Copies until `r` reaches EOF (or `watch` cuts the stream), then flushes and shuts
    /// down `w`. `watch` sees each chunk read and says how much of it to relay.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut r: Pin<&mut R>,
        mut w: Pin<&mut W>,
        mut watch: impl FnMut(&[u8]) -> usize,
    ) -> Poll<Result<(), SpliceError>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        let mut stack = [MaybeUninit::<u8>::uninit(); SPLICE_BUFFER_LEN];
        loop {
            if self.pos < self.spill.len() {
                let spill = std::mem::take(&mut self.spill);
                let mut pos = self.pos;
                let result = self.poll_write_all(cx, &mut w, &spill, &mut pos);
                self.spill = spill;
                self.pos = pos;
                ready!(result)?;
                // Drained: keep the allocation while data keeps coming, for the next push-back.
                self.spill.clear();
                self.pos = 0;
            }
            if self.eof {
                ready!(w.as_mut().poll_flush(cx)).map_err(|e| self.write_err(e))?;
                if !self.shutdown_at_eof {
                    return Poll::Ready(Ok(()));
                }
                // A peer that already went away cannot be shut down; that is not a failure.
                if let Err(e) = ready!(w.as_mut().poll_shutdown(cx)) {
                    if e.kind() != io::ErrorKind::NotConnected {
                        return Poll::Ready(Err(self.write_err(e)));
                    }
                }
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::uninit(&mut stack);
            match r.as_mut().poll_read(cx, &mut rb) {
                Poll::Pending => {
                    // Idle: hold no buffer while waiting.
                    self.spill = Vec::new();
                    // Nothing more to read now: push what we wrote so far out.
                    if self.needs_flush {
                        ready!(w.as_mut().poll_flush(cx)).map_err(|e| self.write_err(e))?;
                        self.needs_flush = false;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(self.read_err(e))),
                Poll::Ready(Ok(())) => {
                    let read = rb.filled();
                    if read.is_empty() {
                        self.eof = true;
                        continue;
                    }
                    let keep = watch(read);
                    let data = &read[..keep];
                    // The rest of a cut stream (a Terminate held back) is never relayed.
                    self.eof = keep < read.len();
                    let mut off = 0;
                    match self.poll_write_all(cx, &mut w, data, &mut off) {
                        Poll::Ready(result) => result?,
                        Poll::Pending => {
                            // The writer pushed back: keep the rest until it is ready.
                            self.spill.extend_from_slice(&data[off..]);
                            self.pos = 0;
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
    }
}

/// Relays bytes between `client` and `server` until the server closes or a side fails (or,
/// for a pooled session, the client is done), adding them to `meters` as they are relayed.
pub(crate) async fn splice<C, S, W>(
    client: &mut C,
    server: &mut S,
    meters: Option<&ByteCounters>,
    watch: &mut W,
) -> (Transferred, SpliceEnd)
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
    W: Watch,
{
    let mut up = Direction::new(
        Side::Client,
        Side::Server,
        meters.map(|m| m.client_to_server.clone()),
    );
    let mut down = Direction::new(
        Side::Server,
        Side::Client,
        meters.map(|m| m.server_to_client.clone()),
    );
    up.shutdown_at_eof = !W::ENDS_WITH_CLIENT;
    let end = poll_fn(|cx| {
        if !up.done {
            let seen = |data: &[u8]| watch.client_sent(data);
            match up.poll_copy(cx, Pin::new(&mut *client), Pin::new(&mut *server), seen) {
                Poll::Ready(Ok(())) if W::ENDS_WITH_CLIENT => {
                    return Poll::Ready(SpliceEnd::ClientLeft)
                }
                Poll::Ready(Ok(())) => up.done = true,
                Poll::Ready(Err(e)) => return Poll::Ready(SpliceEnd::Failed(e)),
                Poll::Pending => {}
            }
        }
        let seen = |data: &[u8]| {
            watch.server_sent(data);
            data.len()
        };
        match down.poll_copy(cx, Pin::new(&mut *server), Pin::new(&mut *client), seen) {
            Poll::Ready(Ok(())) => Poll::Ready(SpliceEnd::ServerClosed),
            Poll::Ready(Err(e)) => Poll::Ready(SpliceEnd::Failed(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    let moved = Transferred {
        client_to_server: up.moved,
        server_to_client: down.moved,
    };
    (moved, end)
}

#[cfg(test)]
mod tests;

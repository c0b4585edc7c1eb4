//! Where a session stands after the startup phase, read from message headers only.
//!
//! A pooled server connection may be handed to another client only if its session ended
//! idle and quiet: the server's last ReadyForQuery said `I`, every query and Sync the client
//! sent has been answered, no extended-protocol batch is open, and neither side stopped in
//! the middle of a message. [`SessionState`] follows that from the 5-byte headers (tag and
//! length) of the messages as they pass, plus the one status byte of ReadyForQuery; payloads
//! are skipped, never copied or parsed. IO-free: it is fed the byte chunks the splice relays.

use crate::backend::FRAME_HEADER_LEN;

/// Message tags that matter here.
mod tag {
    // Frontend.
    pub const QUERY: u8 = b'Q';
    pub const SYNC: u8 = b'S';
    pub const FUNCTION_CALL: u8 = b'F';
    pub const TERMINATE: u8 = b'X';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const COPY_FAIL: u8 = b'f';
    // Backend.
    pub const READY_FOR_QUERY: u8 = b'Z';
    pub const PARAMETER_STATUS: u8 = b'S';
}

/// Walks message boundaries in one direction of a byte stream.
#[derive(Debug, Clone, Default)]
struct Frames {
    /// The header being assembled: tag, length word, and for ReadyForQuery its status.
    header: [u8; FRAME_HEADER_LEN + 1],
    have: usize,
    /// Body bytes of the current message still to skip.
    skip: usize,
}

/// A message whose header was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    tag: u8,
    /// ReadyForQuery's transaction status; 0 for other messages.
    status: u8,
    /// Where the message starts in the chunk being scanned, if it starts there.
    start: Option<usize>,
}

/// The length word is out of range: the stream is not PostgreSQL's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed;

impl Frames {
    /// Whether the stream stands between two messages.
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.skip == 0
    }

    /// Scans `data`, calling `on` for every header completed in it; `on` returning `false`
    /// stops the scan. Returns how far it got.
    fn scan(
        &mut self,
        data: &[u8],
        wants_status: impl Fn(u8) -> bool,
        mut on: impl FnMut(Header) -> bool,
    ) -> Result<usize, Malformed> {
        let mut pos = 0;
        while pos < data.len() {
            if self.skip > 0 {
                let n = self.skip.min(data.len() - pos);
                self.skip -= n;
                pos += n;
                continue;
            }
            let start = (self.have == 0).then_some(pos);
            let tag = if self.have > 0 {
                self.header[0]
            } else {
                data[pos]
            };
            let need = FRAME_HEADER_LEN + usize::from(wants_status(tag));
            let n = (need - self.have).min(data.len() - pos);
            self.header[self.have..self.have + n].copy_from_slice(&data[pos..pos + n]);
            self.have += n;
            pos += n;
            if self.have < need {
                break;
            }
            let len = u32::from_be_bytes([
                self.header[1],
                self.header[2],
                self.header[3],
                self.header[4],
            ]) as usize;
            // The length word counts itself; ReadyForQuery's status byte is already taken.
            let body = len
                .checked_sub(4 + (need - FRAME_HEADER_LEN))
                .ok_or(Malformed)?;
            let header = Header {
                tag,
                status: if need > FRAME_HEADER_LEN {
                    self.header[FRAME_HEADER_LEN]
                } else {
                    0
                },
                start,
            };
            self.have = 0;
            self.skip = body;
            if !on(header) {
                return Ok(pos);
            }
        }
        Ok(pos)
    }
}

/// What to do with a chunk the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientChunk {
    /// Relay all of it.
    Forward,
    /// The client sent Terminate at this offset: relay the bytes before it, then stop.
    TerminateAt(usize),
}

/// Where a session stands, from both directions' message headers.
#[derive(Debug, Clone)]
pub struct SessionState {
    client: Frames,
    server: Frames,
    /// ReadyForQuery messages the server still owes: one per Query, Sync and FunctionCall.
    awaiting: u32,
    /// Extended-protocol messages sent since the last Sync.
    batch_open: bool,
    /// The last ReadyForQuery's status: `I` idle, `T` in a transaction, `E` failed one.
    status: u8,
    /// Something the protocol does not allow was seen; the session can never be reused.
    broken: bool,
    /// The server reported a parameter (ParameterStatus) during the session.
    reported: bool,
}

impl Default for SessionState {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionState {
    /// A session just greeted with ReadyForQuery `I`.
    pub fn new() -> Self {
        SessionState {
            client: Frames::default(),
            server: Frames::default(),
            awaiting: 0,
            batch_open: false,
            status: b'I',
            broken: false,
            reported: false,
        }
    }

    /// Follows a chunk the client sent.
    pub fn client_sent(&mut self, data: &[u8]) -> ClientChunk {
        let mut terminate = None;
        let mut split_terminate = false;
        let (awaiting, batch_open) = (&mut self.awaiting, &mut self.batch_open);
        let scanned = self.client.scan(
            data,
            |_| false,
            |h| {
                match h.tag {
                    tag::TERMINATE => {
                        match h.start {
                            Some(at) => terminate = Some(at),
                            // Its first bytes already went to the server.
                            None => split_terminate = true,
                        }
                        return false;
                    }
                    tag::QUERY | tag::FUNCTION_CALL => *awaiting += 1,
                    tag::SYNC => {
                        *awaiting += 1;
                        *batch_open = false;
                    }
                    tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL => {}
                    // Parse, Bind, Describe, Execute, Close, Flush and anything else wait
                    // for a Sync.
                    _ => *batch_open = true,
                }
                true
            },
        );
        if scanned.is_err() || split_terminate {
            self.broken = true;
        }
        match terminate {
            Some(at) => ClientChunk::TerminateAt(at),
            None => ClientChunk::Forward,
        }
    }

    /// Follows a chunk the server sent.
    pub fn server_sent(&mut self, data: &[u8]) {
        let (awaiting, status, broken) = (&mut self.awaiting, &mut self.status, &mut self.broken);
        let reported = &mut self.reported;
        let scanned = self.server.scan(
            data,
            |t| t == tag::READY_FOR_QUERY,
            |h| {
                if h.tag == tag::PARAMETER_STATUS {
                    *reported = true;
                }
                if h.tag == tag::READY_FOR_QUERY {
                    match awaiting.checked_sub(1) {
                        Some(n) => *awaiting = n,
                        // A ReadyForQuery nobody asked for.
                        None => *broken = true,
                    }
                    *status = h.status;
                }
                true
            },
        );
        if scanned.is_err() {
            self.broken = true;
        }
    }

    /// Whether the session stands idle and quiet: nothing owed in either direction, outside
    /// any transaction, COPY or unfinished message.
    pub fn is_idle(&self) -> bool {
        !self.broken
            && self.awaiting == 0
            && !self.batch_open
            && self.status == b'I'
            && self.client.at_boundary()
            && self.server.at_boundary()
    }

    /// Whether the server still owes a reply: a query or Sync it has not answered yet.
    pub fn is_busy(&self) -> bool {
        self.awaiting > 0
    }

    /// Whether the server reported a parameter change during the session (a `SET` of a
    /// reported setting, or the server's own change): what a pooled connection recorded at
    /// startup may then be out of date.
    pub fn parameters_reported(&self) -> bool {
        self.reported
    }

    /// The last ReadyForQuery status seen.
    pub fn status(&self) -> u8 {
        self.status
    }
}

#[cfg(test)]
mod tests;

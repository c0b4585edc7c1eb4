//! What the splice looks at as bytes pass. The raw splice looks at nothing; a pooled session
//! follows message boundaries (headers only) to know whether it ended idle and quiet, and
//! holds back the client's Terminate so the server connection can be kept.

use rds_iam_protocol::{ClientChunk, SessionState};

/// Sees every chunk once, as it is read, before it is written on.
pub(crate) trait Watch {
    /// A pooled session ends when its client does; the server connection stays open.
    const ENDS_WITH_CLIENT: bool;

    /// How many bytes of `data` from the client to relay; fewer means the client is done.
    fn client_sent(&mut self, data: &[u8]) -> usize;

    fn server_sent(&mut self, data: &[u8]);
}

/// Today's splice: bytes only, the client's Terminate relayed, the session over when the
/// server closes.
pub(crate) struct Raw;

impl Watch for Raw {
    const ENDS_WITH_CLIENT: bool = false;

    #[inline(always)]
    fn client_sent(&mut self, data: &[u8]) -> usize {
        data.len()
    }

    #[inline(always)]
    fn server_sent(&mut self, _: &[u8]) {}
}

/// A pooled session's splice.
#[derive(Debug, Default)]
pub(crate) struct Tracked {
    pub state: SessionState,
    /// The client ended with Terminate (held back), not by closing.
    pub terminated: bool,
}

impl Watch for Tracked {
    const ENDS_WITH_CLIENT: bool = true;

    fn client_sent(&mut self, data: &[u8]) -> usize {
        match self.state.client_sent(data) {
            ClientChunk::Forward => data.len(),
            ClientChunk::TerminateAt(at) => {
                self.terminated = true;
                at
            }
        }
    }

    fn server_sent(&mut self, data: &[u8]) {
        self.state.server_sent(data);
    }
}

//! PostgreSQL wire protocol pieces for rds-iam-proxy: the client's first
//! packet, the upstream messages up to the first ReadyForQuery, the upstream
//! handshake state machine and the errors the proxy itself sends.
//!
//! IO-free: decoders take `&[u8]` and return [`Decoded::Incomplete`] until a
//! whole frame is buffered; encoders append to a `BytesMut`.
//!
//! The decoders are hand-written rather than built on pgwire's `messages`
//! codec because, for untrusted input, pgwire 0.42 panics on truncated
//! bodies (`get_i32` on a 4-byte `R` frame), lets C strings run past the
//! frame end into the next message, keeps startup parameters in a
//! `BTreeMap` (order and duplicates lost) and decodes cancel keys by a
//! protocol version the proxy does not know yet. pgwire is used in tests as
//! an independent encoder/decoder so our codec is not checked against itself.
#![forbid(unsafe_code)]

pub mod backend;
pub mod error;
pub mod frontend;
pub mod handshake;
pub mod limits;
pub mod query;
pub mod scram;
pub mod session_state;
pub mod sqlstate;

mod wire;

pub use backend::{decode_backend_message, encode_password_message, BackendMessage};
pub use error::{encode_error_response, ErrorFields, ProtocolError, Severity};
pub use frontend::{
    decode_frontend_startup, encode_ssl_request, encode_ssl_response, CancelRequest,
    FrontendStartup, ProtocolVersion, StartupMessage,
};
pub use handshake::{HandshakeError, HandshakeStep, UpstreamHandshake};
pub use query::{decode_data_row, encode_query};
pub use session_state::{ClientChunk, SessionState};
pub use sqlstate::SqlState;

/// Result of a decoder: `Incomplete` is a normal outcome meaning "read more".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    Incomplete,
    /// `consumed` is the number of bytes of `buf` the value occupies.
    Complete {
        value: T,
        consumed: usize,
    },
}

impl<T> Decoded<T> {
    pub fn is_incomplete(&self) -> bool {
        matches!(self, Decoded::Incomplete)
    }

    /// The value and its byte count, or `None` when incomplete.
    pub fn complete(self) -> Option<(T, usize)> {
        match self {
            Decoded::Incomplete => None,
            Decoded::Complete { value, consumed } => Some((value, consumed)),
        }
    }
}

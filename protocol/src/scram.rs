//! Server side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802/7677 as
//! PostgreSQL uses them), for checking a client's password at the proxy.
//! IO-free: the caller supplies the random server nonce, the channel-binding
//! data and moves the frames.
//!
//! Flow: [`ScramServer::encode_authentication_sasl`], then each client `p`
//! frame body (from [`decode_password_frame`]) goes to
//! [`ScramServer::on_password_message`], which writes SASLContinue and then
//! SASLFinal. `-PLUS` (channel binding `tls-server-end-point`) is offered when
//! the server is built with [`ScramServer::with_channel_binding`] and data.
//! Passwords are used as raw UTF-8 bytes: SASLprep is the identity for ASCII,
//! so only non-ASCII passwords could differ from libpq.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::backend::{auth_code, FRAME_HEADER_LEN};
use crate::error::ProtocolError;
use crate::limits::MAX_PASSWORD_MESSAGE_LEN;
use crate::sqlstate::SqlState;
use crate::wire::{length_lower_bound, put_cstr, put_frame};
use crate::Decoded;

mod channel_binding;
mod server;

pub use channel_binding::TLS_SERVER_END_POINT;
pub use server::{ScramServer, ScramStep};

pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// PostgreSQL's default `scram_iterations`.
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Bounds the PBKDF2 work a stored verifier can demand.
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Random bytes in a server nonce (PostgreSQL uses 18).
pub const SERVER_NONCE_RANDOM_LEN: usize = 18;

type HmacSha256 = hmac::Hmac<Sha256>;
const KEY_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("unsupported SASL mechanism {0:?}")]
    UnsupportedMechanism(String),
    /// SCRAM-SHA-256-PLUS selected where it was not offered (no TLS).
    #[error("the client selected SCRAM-SHA-256-PLUS, but channel binding is not offered on this connection")]
    ChannelBindingUnavailable,
    /// `p=` flag with plain SCRAM-SHA-256.
    #[error("the client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data")]
    ChannelBindingNotSelected,
    /// `n`/`y` flag with SCRAM-SHA-256-PLUS.
    #[error("the client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data")]
    MissingChannelBinding,
    #[error("unsupported SCRAM channel-binding type {0:?}")]
    UnsupportedChannelBindingType(String),
    /// `y` flag although SCRAM-SHA-256-PLUS was offered.
    #[error("SCRAM channel binding negotiation error: the client supports channel binding but thinks the server does not, yet it was offered")]
    ChannelBindingDowngrade,
    /// The client-final-message's `c=` is not this connection's certificate hash.
    #[error("SCRAM channel binding check failed")]
    ChannelBindingMismatch,
    #[error("SCRAM nonce mismatch")]
    NonceMismatch,
    #[error("password authentication failed")]
    InvalidProof,
    #[error("invalid SCRAM secret: {0}")]
    InvalidSecret(&'static str),
    #[error("SCRAM exchange already finished")]
    Finished,
}

impl ScramError {
    pub fn sqlstate(&self) -> SqlState {
        match self {
            ScramError::InvalidProof => SqlState::INVALID_PASSWORD,
            ScramError::ChannelBindingDowngrade | ScramError::ChannelBindingMismatch => {
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            }
            ScramError::InvalidSecret(_) => SqlState::INTERNAL_ERROR,
            _ => SqlState::PROTOCOL_VIOLATION,
        }
    }
}

/// A SCRAM-SHA-256 verifier, as PostgreSQL stores it in `pg_authid`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; KEY_LEN],
    pub server_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramSecret")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramSecret {
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = hi(password.as_bytes(), salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        ScramSecret {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn parse(s: &str) -> Result<Self, ScramError> {
        let bad = ScramError::InvalidSecret;
        let rest = s
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(bad("missing SCRAM-SHA-256$ prefix"))?;
        let (params, keys) = rest.split_once('$').ok_or(bad("missing keys"))?;
        let (iter, salt) = params.split_once(':').ok_or(bad("missing salt"))?;
        let (stored, server) = keys.split_once(':').ok_or(bad("missing server key"))?;
        let iterations: u32 = iter.parse().map_err(|_| bad("bad iteration count"))?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(bad("iteration count out of range"));
        }
        let key = |k: &str| -> Result<[u8; KEY_LEN], ScramError> {
            B64.decode(k)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or(bad("bad key"))
        };
        Ok(ScramSecret {
            iterations,
            salt: B64.decode(salt).map_err(|_| bad("bad salt"))?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

/// A server nonce from caller-supplied random bytes (base64, so printable
/// and comma-free as SCRAM requires).
pub fn server_nonce_from_random(random: &[u8]) -> String {
    B64.encode(random)
}

/// AuthenticationSASL offering SCRAM-SHA-256 only: matches [`ScramServer::new`]. With
/// channel binding use [`ScramServer::encode_authentication_sasl`], which lists -PLUS.
pub fn encode_authentication_sasl(out: &mut BytesMut) {
    put_mechanisms(out, &[SCRAM_SHA_256]);
}

fn put_mechanisms(out: &mut BytesMut, mechanisms: &[&str]) {
    put_frame(out, b'R', |b| {
        b.put_u32(auth_code::SASL);
        for m in mechanisms {
            put_cstr(b, m);
        }
        b.put_u8(0);
    });
}

/// Body of one client `p` frame (PasswordMessage/SASLInitialResponse/
/// SASLResponse), bounded by [`MAX_PASSWORD_MESSAGE_LEN`]. `consumed` is the
/// whole frame.
pub fn decode_password_frame(buf: &[u8]) -> Result<Decoded<Bytes>, ProtocolError> {
    let Some(&tag) = buf.first() else {
        return Ok(Decoded::Incomplete);
    };
    let malformed = |reason: &str| ProtocolError::MalformedFrontendMessage {
        tag,
        reason: reason.to_string(),
    };
    if tag != b'p' {
        return Err(malformed("expected a password message"));
    }
    let len = length_lower_bound(&buf[1..]) as usize;
    if len > MAX_PASSWORD_MESSAGE_LEN {
        return Err(ProtocolError::FrontendMessageTooLarge {
            tag,
            len,
            max: MAX_PASSWORD_MESSAGE_LEN,
        });
    }
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(Decoded::Incomplete);
    }
    if len < 4 {
        return Err(malformed("length below 4"));
    }
    match buf.get(FRAME_HEADER_LEN..1 + len) {
        Some(body) => Ok(Decoded::Complete {
            value: Bytes::copy_from_slice(body),
            consumed: 1 + len,
        }),
        None => Ok(Decoded::Incomplete),
    }
}

/// RFC 5802 `printable`: 0x21..=0x7e except ','.
fn is_printable_nonce(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; KEY_LEN] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with one output block (RFC 5802 `Hi`).
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; KEY_LEN] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        out.iter_mut().zip(u).for_each(|(o, x)| *o ^= x);
    }
    out
}

fn constant_time_eq(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

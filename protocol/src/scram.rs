//! Server side of SCRAM-SHA-256 (RFC 5802/7677 as PostgreSQL uses it), for
//! checking a client's password at the proxy. IO-free: the caller supplies
//! the random server nonce and moves the frames.
//!
//! Flow: [`encode_authentication_sasl`], then each client `p` frame body
//! (from [`decode_password_frame`]) goes to [`ScramServer::on_password_message`],
//! which writes SASLContinue and then SASLFinal. Channel binding (`-PLUS`) is
//! not offered. Passwords are used as raw UTF-8 bytes: SASLprep is the
//! identity for ASCII, so only non-ASCII passwords could differ from libpq.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::backend::{auth_code, FRAME_HEADER_LEN};
use crate::error::ProtocolError;
use crate::limits::MAX_PASSWORD_MESSAGE_LEN;
use crate::sqlstate::SqlState;
use crate::wire::{length_lower_bound, put_cstr, put_frame, take_cstr};
use crate::Decoded;

pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
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
    #[error("unsupported SASL mechanism {0:?}: only SCRAM-SHA-256 is offered")]
    UnsupportedMechanism(String),
    #[error("channel binding was requested but is not offered")]
    ChannelBindingUnsupported,
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

/// AuthenticationSASL offering SCRAM-SHA-256 only.
pub fn encode_authentication_sasl(out: &mut BytesMut) {
    put_frame(out, b'R', |b| {
        b.put_u32(auth_code::SASL);
        put_cstr(b, SCRAM_SHA_256);
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramStep {
    /// SASLContinue written to `out`; wait for the next `p` frame.
    Continue,
    /// SASLFinal written to `out`: the client proved the password. The
    /// caller then sends (or relays) AuthenticationOk.
    Authenticated,
}

enum State {
    Initial,
    /// client-first-message-bare + "," + server-first-message, and the nonce.
    SentFirst {
        auth_prefix: String,
        nonce: String,
        gs2_header: String,
    },
    Done,
}

pub struct ScramServer {
    secret: ScramSecret,
    server_nonce: String,
    state: State,
}

impl ScramServer {
    /// `server_nonce`: printable, comma-free; normally
    /// `server_nonce_from_random(&[u8; SERVER_NONCE_RANDOM_LEN])`.
    pub fn new(secret: ScramSecret, server_nonce: &str) -> Self {
        ScramServer {
            secret,
            server_nonce: server_nonce.to_string(),
            state: State::Initial,
        }
    }

    /// Handles one `p` frame body. Any error ends the exchange.
    pub fn on_password_message(
        &mut self,
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<ScramStep, ScramError> {
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::Initial => {
                let data = parse_initial_response(body)?;
                let first = self.client_first(data)?;
                put_frame(out, b'R', |b| {
                    b.put_u32(auth_code::SASL_CONTINUE);
                    b.put_slice(first.server_first.as_bytes());
                });
                self.state = State::SentFirst {
                    auth_prefix: format!("{},{}", first.client_first_bare, first.server_first),
                    nonce: first.nonce,
                    gs2_header: first.gs2_header,
                };
                Ok(ScramStep::Continue)
            }
            State::SentFirst {
                auth_prefix,
                nonce,
                gs2_header,
            } => {
                let signature = self.finish(body, &auth_prefix, &nonce, &gs2_header)?;
                put_frame(out, b'R', |b| {
                    b.put_u32(auth_code::SASL_FINAL);
                    b.put_slice(b"v=");
                    b.put_slice(B64.encode(signature).as_bytes());
                });
                Ok(ScramStep::Authenticated)
            }
            State::Done => Err(ScramError::Finished),
        }
    }
}

struct FirstExchange {
    client_first_bare: String,
    server_first: String,
    nonce: String,
    gs2_header: String,
}

impl ScramServer {
    /// client-first-message: `gs2-cbind-flag,[authzid],n=user,r=nonce[,ext]`.
    /// PostgreSQL ignores the user name here (the StartupMessage's counts).
    fn client_first(&self, data: &[u8]) -> Result<FirstExchange, ScramError> {
        let msg = std::str::from_utf8(data).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (cbind, rest) = msg
            .split_once(',')
            .ok_or(ScramError::Malformed("no GS2 header"))?;
        match cbind {
            // "y": client could bind but thinks we cannot; true, we offer no -PLUS.
            "n" | "y" => {}
            c if c.starts_with("p=") => return Err(ScramError::ChannelBindingUnsupported),
            _ => return Err(ScramError::Malformed("bad channel binding flag")),
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(ScramError::Malformed("no GS2 header"))?;
        if !authzid.is_empty() {
            return Err(ScramError::Malformed(
                "authorization identity not supported",
            ));
        }
        let mut attrs = bare.split(',');
        let user = attrs.next().unwrap_or_default();
        if !user.starts_with("n=") {
            return Err(ScramError::Malformed("expected n= attribute"));
        }
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("expected r= attribute"))?;
        if client_nonce.is_empty() || !is_printable_nonce(client_nonce) {
            return Err(ScramError::Malformed("bad client nonce"));
        }
        if !is_printable_nonce(&self.server_nonce) || self.server_nonce.is_empty() {
            return Err(ScramError::Malformed("bad server nonce"));
        }
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&self.secret.salt),
            self.secret.iterations
        );
        Ok(FirstExchange {
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
            gs2_header: format!("{cbind},,"),
        })
    }

    /// client-final-message: `c=base64(gs2 header),r=nonce[,ext],p=proof`.
    /// Returns the ServerSignature once the proof checks out.
    fn finish(
        &self,
        data: &[u8],
        auth_prefix: &str,
        nonce: &str,
        gs2_header: &str,
    ) -> Result<[u8; KEY_LEN], ScramError> {
        let msg = std::str::from_utf8(data).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("missing proof"))?;
        let mut attrs = without_proof.split(',');
        let cbind = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("expected c= attribute"))?;
        if cbind != B64.encode(gs2_header) {
            return Err(ScramError::Malformed("channel binding data does not match"));
        }
        let r = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("expected r= attribute"))?;
        if r != nonce {
            return Err(ScramError::NonceMismatch);
        }
        let proof: [u8; KEY_LEN] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(ScramError::Malformed("bad proof"))?;
        let auth_message = format!("{auth_prefix},{without_proof}");
        let client_signature = hmac(&self.secret.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; KEY_LEN];
        for (k, (p, s)) in client_key
            .iter_mut()
            .zip(proof.iter().zip(client_signature))
        {
            *k = p ^ s;
        }
        let computed: [u8; KEY_LEN] = Sha256::digest(client_key).into();
        if !constant_time_eq(&computed, &self.secret.stored_key) {
            return Err(ScramError::InvalidProof);
        }
        Ok(hmac(&self.secret.server_key, auth_message.as_bytes()))
    }
}

/// SASLInitialResponse body: mechanism, Int32 length (-1: none), data.
fn parse_initial_response(body: &[u8]) -> Result<&[u8], ScramError> {
    let (mechanism, rest) = take_cstr(body).ok_or(ScramError::Malformed("no mechanism"))?;
    if mechanism != SCRAM_SHA_256.as_bytes() {
        return Err(ScramError::UnsupportedMechanism(
            String::from_utf8_lossy(mechanism).into_owned(),
        ));
    }
    let len = rest
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(ScramError::Malformed("no data length"))?;
    let data = &rest[4..];
    if usize::try_from(len).ok() != Some(data.len()) {
        return Err(ScramError::Malformed("data length mismatch"));
    }
    Ok(data)
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

//! What a client sends first: SSLRequest, GSSENCRequest, CancelRequest,
//! StartupMessage, or a direct-TLS ClientHello.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::limits::{
    MAX_CANCEL_KEY_LEN, MAX_STARTUP_PACKET_LEN, MIN_CANCEL_KEY_LEN, MIN_STARTUP_PACKET_LEN,
};
use crate::wire::{cstr_len, length_lower_bound, put_cstr, read_u32, take_cstr};
use crate::Decoded;

/// Request codes sit where a protocol version would: major 1234.
pub const CANCEL_REQUEST_CODE: u32 = 80877102;
pub const SSL_REQUEST_CODE: u32 = 80877103;
pub const GSSENC_REQUEST_CODE: u32 = 80877104;

/// First byte of a TLS handshake record (PostgreSQL 17 direct TLS).
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// SSLRequest/GSSENCRequest are exactly length + code.
const NEGOTIATION_REQUEST_LEN: usize = 8;
/// CancelRequest without its key: length + code + pid.
const CANCEL_HEADER_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendStartup {
    SslRequest,
    GssEncRequest,
    Cancel(CancelRequest),
    Startup(StartupMessage),
    /// The client opened with a TLS ClientHello. `consumed` is 0: the bytes
    /// belong to the TLS handshake and must be handed to it untouched.
    DirectTls,
}

/// Decodes the client's first packet (call again after `N` to SSL/GSS).
///
/// The length word is checked as soon as its bytes arrive, before waiting
/// for the body, and the request code as soon as it arrives.
pub fn decode_frontend_startup(buf: &[u8]) -> Result<Decoded<FrontendStartup>, ProtocolError> {
    let Some(&first) = buf.first() else {
        return Ok(Decoded::Incomplete);
    };
    // A valid length word starts with 0x00 (lengths <= 10,000), so 0x16
    // can only be a TLS record.
    if first == TLS_HANDSHAKE_RECORD {
        return Ok(Decoded::Complete {
            value: FrontendStartup::DirectTls,
            consumed: 0,
        });
    }
    let len = length_lower_bound(buf) as usize;
    if len > MAX_STARTUP_PACKET_LEN {
        return Err(ProtocolError::StartupTooLarge { len });
    }
    if buf.len() < 4 {
        return Ok(Decoded::Incomplete);
    }
    if len < MIN_STARTUP_PACKET_LEN {
        return Err(ProtocolError::StartupTooShort { len });
    }
    let Some(code) = read_u32(buf, 4) else {
        return Ok(Decoded::Incomplete);
    };
    match code {
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => {
            if len != NEGOTIATION_REQUEST_LEN {
                return Err(ProtocolError::MalformedStartup(format!(
                    "SSL/GSS request with length {len}, expected {NEGOTIATION_REQUEST_LEN}"
                )));
            }
            let value = if code == SSL_REQUEST_CODE {
                FrontendStartup::SslRequest
            } else {
                FrontendStartup::GssEncRequest
            };
            Ok(Decoded::Complete {
                value,
                consumed: len,
            })
        }
        CANCEL_REQUEST_CODE => {
            let key_len = len.saturating_sub(CANCEL_HEADER_LEN);
            if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key_len) {
                return Err(ProtocolError::InvalidCancelKeyLength { len: key_len });
            }
            let (Some(packet), Some(pid)) = (buf.get(..len), read_u32(buf, 8)) else {
                return Ok(Decoded::Incomplete);
            };
            let secret = Bytes::copy_from_slice(&packet[CANCEL_HEADER_LEN..]);
            Ok(Decoded::Complete {
                value: FrontendStartup::Cancel(CancelRequest { pid, secret }),
                consumed: len,
            })
        }
        _ => {
            let version = ProtocolVersion::from_code(code);
            if version.major != 3 {
                return Err(ProtocolError::UnsupportedProtocolVersion {
                    major: version.major,
                    minor: version.minor,
                });
            }
            let Some(packet) = buf.get(..len) else {
                return Ok(Decoded::Incomplete);
            };
            let params = decode_params(&packet[8..])?;
            Ok(Decoded::Complete {
                value: FrontendStartup::Startup(StartupMessage { version, params }),
                consumed: len,
            })
        }
    }
}

/// `name\0value\0 ... \0`, with the final NUL as the last byte (as
/// PostgreSQL requires). Names and values must be UTF-8: they are
/// re-encoded upstream, and lossy decoding would silently change them.
fn decode_params(mut body: &[u8]) -> Result<Vec<(String, String)>, ProtocolError> {
    let malformed = |what: &str| ProtocolError::MalformedStartup(what.to_string());
    let utf8 = |b: &[u8]| {
        String::from_utf8(b.to_vec()).map_err(|_| malformed("startup parameter is not valid UTF-8"))
    };
    let mut params = Vec::new();
    loop {
        let (name, rest) =
            take_cstr(body).ok_or_else(|| malformed("missing terminator as last byte"))?;
        if name.is_empty() {
            if !rest.is_empty() {
                return Err(malformed("data after the parameter list terminator"));
            }
            return Ok(params);
        }
        let (value, rest) =
            take_cstr(rest).ok_or_else(|| malformed("parameter without a value"))?;
        params.push((utf8(name)?, utf8(value)?));
        body = rest;
    }
}

/// Frontend protocol version from the StartupMessage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolVersion {
    pub major: u16,
    pub minor: u16,
}

impl ProtocolVersion {
    pub const V3_0: ProtocolVersion = ProtocolVersion { major: 3, minor: 0 };
    pub const V3_2: ProtocolVersion = ProtocolVersion { major: 3, minor: 2 };

    pub fn from_code(code: u32) -> Self {
        ProtocolVersion {
            major: (code >> 16) as u16,
            minor: code as u16,
        }
    }

    pub fn code(&self) -> u32 {
        (u32::from(self.major) << 16) | u32::from(self.minor)
    }

    /// 3.2 and later use variable-length (4..=256 byte) cancel keys.
    pub fn has_long_cancel_keys(&self) -> bool {
        self.major == 3 && self.minor >= 2
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A StartupMessage; parameters keep the client's order and duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    pub version: ProtocolVersion,
    pub params: Vec<(String, String)>,
}

impl StartupMessage {
    pub fn new(version: ProtocolVersion, params: Vec<(String, String)>) -> Self {
        StartupMessage { version, params }
    }

    /// The value PostgreSQL would use: the last occurrence wins there.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Replaces the first occurrence in place (dropping later duplicates so
    /// the server cannot see another value) or appends.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.params.iter().position(|(k, _)| k == name) {
            Some(i) => {
                self.params[i].1 = value.to_string();
                let mut seen = 0;
                self.params.retain(|(k, _)| {
                    if k == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.params.push((name.to_string(), value.to_string())),
        }
    }

    pub fn user(&self) -> Option<&str> {
        self.get("user")
    }

    /// `database`, defaulting (as PostgreSQL does) to the user name.
    pub fn database(&self) -> Option<&str> {
        self.get("database").or_else(|| self.user())
    }

    /// Encoded size in bytes; may exceed [`MAX_STARTUP_PACKET_LEN`] after
    /// `set`, which callers can check before sending.
    pub fn encoded_len(&self) -> usize {
        8 + self
            .params
            .iter()
            .map(|(k, v)| cstr_len(k) + cstr_len(v))
            .sum::<usize>()
            + 1
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        out.put_u32(self.encoded_len() as u32);
        out.put_u32(self.version.code());
        for (k, v) in &self.params {
            put_cstr(out, k);
            put_cstr(out, v);
        }
        out.put_u8(0);
    }
}

/// A CancelRequest. The key is 4 bytes in 3.0 and 4..=256 bytes in 3.2;
/// it is carried as bytes either way so both forward unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CancelRequest {
    pub pid: u32,
    pub secret: Bytes,
}

impl CancelRequest {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u32((CANCEL_HEADER_LEN + self.secret.len()) as u32);
        out.put_u32(CANCEL_REQUEST_CODE);
        out.put_u32(self.pid);
        out.put_slice(&self.secret);
    }
}

pub fn encode_ssl_request(out: &mut BytesMut) {
    out.put_u32(NEGOTIATION_REQUEST_LEN as u32);
    out.put_u32(SSL_REQUEST_CODE);
}

pub fn encode_gssenc_request(out: &mut BytesMut) {
    out.put_u32(NEGOTIATION_REQUEST_LEN as u32);
    out.put_u32(GSSENC_REQUEST_CODE);
}

/// The one-byte answer to SSLRequest (`S`) or to SSL/GSS requests (`N`).
pub fn encode_ssl_response(accept: bool, out: &mut BytesMut) {
    out.put_u8(if accept { b'S' } else { b'N' });
}

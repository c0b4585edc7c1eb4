//! Server messages the proxy reads before the first ReadyForQuery, and the
//! PasswordMessage it answers with.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ErrorFields, ProtocolError};
use crate::limits::{MAX_BACKEND_STARTUP_MESSAGE_LEN, MAX_CANCEL_KEY_LEN, MIN_CANCEL_KEY_LEN};
use crate::wire::{length_lower_bound, put_cstr, put_frame, read_u32, take_cstr};
use crate::Decoded;

/// Authentication request codes (message `R`).
pub mod auth_code {
    pub const OK: u32 = 0;
    pub const KERBEROS_V5: u32 = 2;
    pub const CLEARTEXT_PASSWORD: u32 = 3;
    pub const MD5_PASSWORD: u32 = 5;
    pub const GSS: u32 = 7;
    pub const GSS_CONTINUE: u32 = 8;
    pub const SSPI: u32 = 9;
    pub const SASL: u32 = 10;
    pub const SASL_CONTINUE: u32 = 11;
    pub const SASL_FINAL: u32 = 12;
}

/// Tag byte + length word: the smallest typed frame.
pub const FRAME_HEADER_LEN: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    AuthenticationOk,
    AuthenticationCleartextPassword,
    AuthenticationMd5Password,
    AuthenticationSasl {
        mechanisms: Vec<String>,
    },
    /// Any other authentication code (GSS, SSPI, SASLContinue, ...).
    AuthenticationOther(u32),
    ParameterStatus {
        name: String,
        value: String,
    },
    /// `secret` is 4 bytes under 3.0 and 4..=256 under 3.2; kept as bytes.
    BackendKeyData {
        pid: u32,
        secret: Bytes,
    },
    /// `newest_minor` as sent: older servers send the minor number, some
    /// newer ones the full version word; the frame is relayed as is.
    NegotiateProtocolVersion {
        newest_minor: u32,
        unrecognized: Vec<String>,
    },
    NoticeResponse(ErrorFields),
    ErrorResponse(ErrorFields),
    ReadyForQuery {
        status: u8,
    },
    /// A well-framed message of a type not expected before ReadyForQuery.
    Other {
        tag: u8,
    },
}

impl BackendMessage {
    pub fn tag(&self) -> u8 {
        match self {
            BackendMessage::AuthenticationOk
            | BackendMessage::AuthenticationCleartextPassword
            | BackendMessage::AuthenticationMd5Password
            | BackendMessage::AuthenticationSasl { .. }
            | BackendMessage::AuthenticationOther(_) => b'R',
            BackendMessage::ParameterStatus { .. } => b'S',
            BackendMessage::BackendKeyData { .. } => b'K',
            BackendMessage::NegotiateProtocolVersion { .. } => b'v',
            BackendMessage::NoticeResponse(_) => b'N',
            BackendMessage::ErrorResponse(_) => b'E',
            BackendMessage::ReadyForQuery { .. } => b'Z',
            BackendMessage::Other { tag } => *tag,
        }
    }

    /// Encodes the message as a server would. Used to synthesize frames and
    /// in tests; the proxy relays server frames raw. The md5 salt is not kept
    /// by the decoder, so it is written as zeros; `Other` gets an empty body;
    /// `AuthenticationOther` gets no payload.
    pub fn encode(&self, out: &mut BytesMut) {
        let tag = self.tag();
        put_frame(out, tag, |b| match self {
            BackendMessage::AuthenticationOk => b.put_u32(auth_code::OK),
            BackendMessage::AuthenticationCleartextPassword => {
                b.put_u32(auth_code::CLEARTEXT_PASSWORD)
            }
            BackendMessage::AuthenticationMd5Password => {
                b.put_u32(auth_code::MD5_PASSWORD);
                b.put_u32(0);
            }
            BackendMessage::AuthenticationSasl { mechanisms } => {
                b.put_u32(auth_code::SASL);
                for m in mechanisms {
                    put_cstr(b, m);
                }
                b.put_u8(0);
            }
            BackendMessage::AuthenticationOther(code) => b.put_u32(*code),
            BackendMessage::ParameterStatus { name, value } => {
                put_cstr(b, name);
                put_cstr(b, value);
            }
            BackendMessage::BackendKeyData { pid, secret } => {
                b.put_u32(*pid);
                b.put_slice(secret);
            }
            BackendMessage::NegotiateProtocolVersion {
                newest_minor,
                unrecognized,
            } => {
                b.put_u32(*newest_minor);
                b.put_u32(unrecognized.len() as u32);
                for o in unrecognized {
                    put_cstr(b, o);
                }
            }
            BackendMessage::NoticeResponse(f) | BackendMessage::ErrorResponse(f) => {
                encode_fields(f, b)
            }
            BackendMessage::ReadyForQuery { status } => b.put_u8(*status),
            BackendMessage::Other { .. } => {}
        });
    }
}

fn encode_fields(f: &ErrorFields, b: &mut BytesMut) {
    let named = [
        (b'S', Some(&f.severity)),
        (b'C', Some(&f.code)),
        (b'M', Some(&f.message)),
        (b'D', f.detail.as_ref()),
        (b'H', f.hint.as_ref()),
    ];
    let others = f.other.iter().map(|(c, v)| (*c, Some(v)));
    for (code, value) in named.into_iter().chain(others) {
        if let Some(v) = value {
            b.put_u8(code);
            put_cstr(b, v);
        }
    }
    b.put_u8(0);
}

/// Decodes one server frame. `consumed` is the whole frame (tag + length
/// word + body) so the caller can relay `&buf[..consumed]` unchanged.
/// The length is checked against [`MAX_BACKEND_STARTUP_MESSAGE_LEN`] as soon
/// as it can be, before the body arrives.
pub fn decode_backend_message(buf: &[u8]) -> Result<Decoded<BackendMessage>, ProtocolError> {
    let Some(&tag) = buf.first() else {
        return Ok(Decoded::Incomplete);
    };
    let len = length_lower_bound(&buf[1..]) as usize;
    if len > MAX_BACKEND_STARTUP_MESSAGE_LEN {
        return Err(ProtocolError::BackendMessageTooLarge { tag, len });
    }
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(Decoded::Incomplete);
    }
    if len < 4 {
        return Err(ProtocolError::backend(
            tag,
            format!("length {len} is below 4"),
        ));
    }
    let Some(frame) = buf.get(..1 + len) else {
        return Ok(Decoded::Incomplete);
    };
    let value = decode_body(tag, &frame[FRAME_HEADER_LEN..])?;
    Ok(Decoded::Complete {
        value,
        consumed: frame.len(),
    })
}

fn decode_body(tag: u8, body: &[u8]) -> Result<BackendMessage, ProtocolError> {
    let err = |reason: &str| ProtocolError::backend(tag, reason);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let exact = |want: usize| {
        if body.len() == want {
            Ok(())
        } else {
            Err(ProtocolError::backend(
                tag,
                format!("body is {} bytes, expected {want}", body.len()),
            ))
        }
    };
    Ok(match tag {
        b'R' => {
            let code = read_u32(body, 0).ok_or_else(|| err("missing authentication code"))?;
            match code {
                auth_code::OK => {
                    exact(4)?;
                    BackendMessage::AuthenticationOk
                }
                auth_code::CLEARTEXT_PASSWORD => {
                    exact(4)?;
                    BackendMessage::AuthenticationCleartextPassword
                }
                auth_code::MD5_PASSWORD => {
                    exact(8)?;
                    BackendMessage::AuthenticationMd5Password
                }
                auth_code::SASL => {
                    let mut rest = &body[4..];
                    let mut mechanisms = Vec::new();
                    loop {
                        let (m, r) = take_cstr(rest)
                            .ok_or_else(|| err("unterminated SASL mechanism list"))?;
                        if m.is_empty() {
                            if !r.is_empty() {
                                return Err(err("data after SASL mechanism list"));
                            }
                            break;
                        }
                        mechanisms.push(text(m));
                        rest = r;
                    }
                    BackendMessage::AuthenticationSasl { mechanisms }
                }
                other => BackendMessage::AuthenticationOther(other),
            }
        }
        b'S' => {
            let (name, rest) = take_cstr(body).ok_or_else(|| err("unterminated name"))?;
            let (value, rest) = take_cstr(rest).ok_or_else(|| err("unterminated value"))?;
            if !rest.is_empty() {
                return Err(err("data after value"));
            }
            BackendMessage::ParameterStatus {
                name: text(name),
                value: text(value),
            }
        }
        b'K' => {
            let pid = read_u32(body, 0).ok_or_else(|| err("missing process id"))?;
            let key_len = body.len() - 4;
            if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key_len) {
                return Err(ProtocolError::InvalidCancelKeyLength { len: key_len });
            }
            BackendMessage::BackendKeyData {
                pid,
                secret: Bytes::copy_from_slice(&body[4..]),
            }
        }
        b'v' => {
            let newest_minor = read_u32(body, 0).ok_or_else(|| err("missing version"))?;
            let count = read_u32(body, 4).ok_or_else(|| err("missing option count"))?;
            let mut rest = &body[8..];
            // Each option takes at least its NUL, so the frame bounds the count.
            if count as usize > rest.len() {
                return Err(err("option count exceeds message length"));
            }
            let mut unrecognized = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let (o, r) = take_cstr(rest).ok_or_else(|| err("unterminated option name"))?;
                unrecognized.push(text(o));
                rest = r;
            }
            if !rest.is_empty() {
                return Err(err("data after option list"));
            }
            BackendMessage::NegotiateProtocolVersion {
                newest_minor,
                unrecognized,
            }
        }
        b'E' => BackendMessage::ErrorResponse(ErrorFields::decode_body(tag, body)?),
        b'N' => BackendMessage::NoticeResponse(ErrorFields::decode_body(tag, body)?),
        b'Z' => {
            exact(1)?;
            match body[0] {
                status @ (b'I' | b'T' | b'E') => BackendMessage::ReadyForQuery { status },
                _ => return Err(err("unknown transaction status")),
            }
        }
        _ => BackendMessage::Other { tag },
    })
}

/// Appends a PasswordMessage (`p`) carrying `password` (the IAM token).
pub fn encode_password_message(password: &str, out: &mut BytesMut) {
    put_frame(out, b'p', |b| put_cstr(b, password));
}

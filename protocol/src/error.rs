//! Protocol errors, ErrorResponse/NoticeResponse fields, and the
//! ErrorResponse the proxy sends to clients.

use std::fmt;

use bytes::BytesMut;

use crate::sqlstate::SqlState;
use crate::wire::{put_cstr, put_frame, take_cstr};

/// A peer broke the protocol; the connection cannot continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("startup packet length {len} exceeds the limit of {max} bytes", max = crate::limits::MAX_STARTUP_PACKET_LEN)]
    StartupTooLarge { len: usize },
    #[error("startup packet length {len} is below the minimum of {min} bytes", min = crate::limits::MIN_STARTUP_PACKET_LEN)]
    StartupTooShort { len: usize },
    #[error("unsupported frontend protocol {major}.{minor}: only protocol 3.x is supported")]
    UnsupportedProtocolVersion { major: u16, minor: u16 },
    #[error("invalid cancel key length {len}: must be {min} to {max} bytes", min = crate::limits::MIN_CANCEL_KEY_LEN, max = crate::limits::MAX_CANCEL_KEY_LEN)]
    InvalidCancelKeyLength { len: usize },
    #[error("invalid startup packet: {0}")]
    MalformedStartup(String),
    #[error("server message '{}' length {len} exceeds the limit of {max} bytes", char::from(*tag), max = crate::limits::MAX_BACKEND_STARTUP_MESSAGE_LEN)]
    BackendMessageTooLarge { tag: u8, len: usize },
    #[error("malformed server message '{}': {reason}", char::from(*tag))]
    MalformedBackendMessage { tag: u8, reason: String },
    #[error("client message '{}' length {len} exceeds the limit of {max} bytes", char::from(*tag))]
    FrontendMessageTooLarge { tag: u8, len: usize, max: usize },
    #[error("malformed client message '{}': {reason}", char::from(*tag))]
    MalformedFrontendMessage { tag: u8, reason: String },
}

impl ProtocolError {
    /// SQLSTATE for the FATAL ErrorResponse sent to the client.
    pub fn sqlstate(&self) -> SqlState {
        match self {
            // PostgreSQL answers an unknown major version with 0A000.
            ProtocolError::UnsupportedProtocolVersion { .. } => SqlState::FEATURE_NOT_SUPPORTED,
            _ => SqlState::PROTOCOL_VIOLATION,
        }
    }

    pub(crate) fn backend(tag: u8, reason: impl Into<String>) -> Self {
        ProtocolError::MalformedBackendMessage {
            tag,
            reason: reason.into(),
        }
    }
}

/// Severity of an ErrorResponse the proxy sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Fatal => "FATAL",
            Severity::Error => "ERROR",
        }
    }
}

/// Fields of an ErrorResponse or NoticeResponse from the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    /// `S` (localized), or `V` when `S` is absent.
    pub severity: String,
    /// `C`: SQLSTATE.
    pub code: String,
    /// `M`.
    pub message: String,
    /// `D`.
    pub detail: Option<String>,
    /// `H`.
    pub hint: Option<String>,
    /// Every other field (`V`, `P`, `F`, `L`, `R`, ...) in wire order.
    pub other: Vec<(u8, String)>,
}

impl ErrorFields {
    /// 28000/28P01: the server refused the password (here: the IAM token).
    pub fn is_auth_failure(&self) -> bool {
        SqlState::is_auth_failure_code(&self.code)
    }

    /// Parses the body of an `E`/`N` frame. Text is decoded lossily: the raw
    /// frame is what gets relayed, these strings are only for decisions and
    /// logs, and pre-startup errors may be in the server's encoding.
    pub(crate) fn decode_body(tag: u8, mut body: &[u8]) -> Result<Self, ProtocolError> {
        let mut f = ErrorFields::default();
        let mut localized_severity = None;
        let mut v_severity = None;
        loop {
            let (&code, rest) = body
                .split_first()
                .ok_or_else(|| ProtocolError::backend(tag, "missing field list terminator"))?;
            if code == 0 {
                if !rest.is_empty() {
                    return Err(ProtocolError::backend(
                        tag,
                        "data after field list terminator",
                    ));
                }
                break;
            }
            let (value, rest) =
                take_cstr(rest).ok_or_else(|| ProtocolError::backend(tag, "unterminated field"))?;
            let value = String::from_utf8_lossy(value).into_owned();
            match code {
                b'S' => localized_severity = Some(value),
                b'C' => f.code = value,
                b'M' => f.message = value,
                b'D' => f.detail = Some(value),
                b'H' => f.hint = Some(value),
                b'V' => {
                    v_severity = Some(value.clone());
                    f.other.push((code, value));
                }
                _ => f.other.push((code, value)),
            }
            body = rest;
        }
        f.severity = localized_severity.or(v_severity).unwrap_or_default();
        Ok(f)
    }
}

impl fmt::Display for ErrorFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (SQLSTATE {})",
            self.severity, self.message, self.code
        )?;
        if let Some(d) = &self.detail {
            write!(f, " DETAIL: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, " HINT: {h}")?;
        }
        Ok(())
    }
}

/// Appends an ErrorResponse with S and V (severity), C, M and optional H.
/// Embedded NULs end a field (they cannot be sent inside one).
pub fn encode_error_response(
    severity: Severity,
    code: SqlState,
    message: &str,
    hint: Option<&str>,
    out: &mut BytesMut,
) {
    put_frame(out, b'E', |b| {
        for (field, value) in [
            (b'S', Some(severity.as_str())),
            (b'V', Some(severity.as_str())),
            (b'C', Some(code.0)),
            (b'M', Some(message)),
            (b'H', hint),
        ] {
            if let Some(value) = value {
                b.extend_from_slice(&[field]);
                put_cstr(b, value);
            }
        }
        b.extend_from_slice(&[0]);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{decode_backend_message, BackendMessage};
    use crate::Decoded;
    use pgwire::messages::response::ErrorResponse as PgErrorResponse;
    use pgwire::messages::{DecodeContext, Message, ProtocolVersion as PgVersion};

    #[test]
    fn error_response_decodes_with_pgwire() {
        let mut out = BytesMut::new();
        encode_error_response(
            Severity::Fatal,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            "rds-iam-proxy: IAM authentication rejected",
            Some("check rds_iam"),
            &mut out,
        );
        let ctx = DecodeContext::new(PgVersion::PROTOCOL3_0);
        let mut buf = out.clone();
        let pg = PgErrorResponse::decode(&mut buf, &ctx).unwrap().unwrap();
        assert!(buf.is_empty());
        assert_eq!(
            pg.fields,
            vec![
                (b'S', "FATAL".to_string()),
                (b'V', "FATAL".to_string()),
                (b'C', "28000".to_string()),
                (
                    b'M',
                    "rds-iam-proxy: IAM authentication rejected".to_string()
                ),
                (b'H', "check rds_iam".to_string()),
            ]
        );
    }

    #[test]
    fn error_response_round_trip_and_no_hint() {
        for (sev, hint) in [(Severity::Fatal, None), (Severity::Error, Some("h"))] {
            let mut out = BytesMut::new();
            encode_error_response(sev, SqlState::TOO_MANY_CONNECTIONS, "busy", hint, &mut out);
            let Decoded::Complete { value, consumed } = decode_backend_message(&out).unwrap()
            else {
                panic!("incomplete")
            };
            assert_eq!(consumed, out.len());
            let BackendMessage::ErrorResponse(f) = value else {
                panic!("{value:?}")
            };
            assert_eq!(f.severity, sev.as_str());
            assert_eq!(f.code, "53300");
            assert_eq!(f.message, "busy");
            assert_eq!(f.hint.as_deref(), hint);
            assert_eq!(f.other, vec![(b'V', sev.as_str().to_string())]);
        }
    }

    #[test]
    fn embedded_nul_cannot_inject_fields() {
        let mut out = BytesMut::new();
        encode_error_response(
            Severity::Fatal,
            SqlState::PROTOCOL_VIOLATION,
            "a\0Cxx",
            None,
            &mut out,
        );
        let (value, _) = decode_backend_message(&out).unwrap().complete().unwrap();
        let BackendMessage::ErrorResponse(f) = value else {
            panic!()
        };
        assert_eq!(f.message, "a");
        assert_eq!(f.code, "08P01");
    }

    #[test]
    fn severity_falls_back_to_v() {
        let f = ErrorFields::decode_body(b'E', b"VFATAL\0C28000\0Mno\0\0").unwrap();
        assert_eq!(f.severity, "FATAL");
        let f = ErrorFields::decode_body(b'E', b"SFATAL\0VFATAL\0\0").unwrap();
        assert_eq!(f.severity, "FATAL");
        let f = ErrorFields::decode_body(b'E', b"SFATALE\0VFATAL\0\0").unwrap();
        assert_eq!(f.severity, "FATALE", "localized S wins for display");
    }

    #[test]
    fn malformed_field_lists() {
        for body in [&b""[..], b"SFATAL", b"SFATAL\0", b"SFATAL\0\0x"] {
            assert!(ErrorFields::decode_body(b'E', body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn sqlstates_of_protocol_errors() {
        assert_eq!(
            ProtocolError::StartupTooLarge { len: 1 }.sqlstate(),
            SqlState::PROTOCOL_VIOLATION
        );
        assert_eq!(
            ProtocolError::UnsupportedProtocolVersion { major: 2, minor: 0 }.sqlstate(),
            SqlState::FEATURE_NOT_SUPPORTED
        );
        let e = ProtocolError::BackendMessageTooLarge {
            tag: b'S',
            len: 70000,
        };
        assert!(e.to_string().contains("'S'"), "{e}");
    }
}

//! The token is a bearer credential: a server that echoes the password it was sent (none
//! should; a verified Aurora never does) must not get it into the log or to the client.
//! Everything the server sends during authentication and the greeting passes through here
//! before it is logged or relayed. The splice after ReadyForQuery is not scanned.

use bytes::{BufMut, Bytes, BytesMut};
use rds_iam_protocol::ErrorFields;

/// What stands in the token's place.
const REDACTED: &str = "[redacted]";

/// `frame` with every occurrence of `secret` replaced, its length header fixed up; the frame
/// itself (no copy) when it has none. Replacing text inside the null-terminated strings of an
/// ErrorResponse or NoticeResponse leaves a valid frame: the replacement holds no NUL.
pub(super) fn frame(frame: Bytes, secret: &str) -> Bytes {
    let secret = secret.as_bytes();
    if secret.is_empty() || frame.len() < 5 || find(&frame[5..], secret).is_none() {
        return frame;
    }
    let mut body = Vec::with_capacity(frame.len());
    let mut rest = &frame[5..];
    while let Some(at) = find(rest, secret) {
        body.extend_from_slice(&rest[..at]);
        body.extend_from_slice(REDACTED.as_bytes());
        rest = &rest[at + secret.len()..];
    }
    body.extend_from_slice(rest);
    let mut out = BytesMut::with_capacity(body.len() + 5);
    out.put_u8(frame[0]);
    out.put_u32(u32::try_from(body.len() + 4).unwrap_or(u32::MAX));
    out.extend_from_slice(&body);
    out.freeze()
}

/// `text` with `secret` replaced.
pub(super) fn text(text: String, secret: &str) -> String {
    if secret.is_empty() || !text.contains(secret) {
        return text;
    }
    text.replace(secret, REDACTED)
}

/// Every text field of a server error or notice, with `secret` replaced.
pub(super) fn fields(fields: &mut ErrorFields, secret: &str) {
    let texts = [&mut fields.severity, &mut fields.code, &mut fields.message]
        .into_iter()
        .chain(fields.detail.as_mut())
        .chain(fields.hint.as_mut())
        .chain(fields.other.iter_mut().map(|(_, v)| v));
    for field in texts {
        *field = text(std::mem::take(field), secret);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(text: &str) -> Bytes {
        let mut body = Vec::new();
        body.extend_from_slice(b"SNOTICE\0M");
        body.extend_from_slice(text.as_bytes());
        body.extend_from_slice(b"\0\0");
        let mut out = BytesMut::new();
        out.put_u8(b'N');
        out.put_u32(body.len() as u32 + 4);
        out.extend_from_slice(&body);
        out.freeze()
    }

    #[test]
    fn a_frame_with_the_token_is_rewritten_with_a_valid_length() {
        let token = "host:5432/?Action=connect&X-Amz-Signature=abc123";
        let got = frame(notice(&format!("you sent {token} twice: {token}")), token);
        assert_eq!(got, notice("you sent [redacted] twice: [redacted]"));
        let len = u32::from_be_bytes(got[1..5].try_into().unwrap()) as usize;
        assert_eq!(len + 1, got.len());
    }

    #[test]
    fn a_frame_without_it_is_left_alone() {
        let original = notice("hello");
        assert_eq!(frame(original.clone(), "secret"), original);
        assert_eq!(frame(original.clone(), ""), original);
    }

    #[test]
    fn every_text_field_is_redacted() {
        let mut f = ErrorFields {
            severity: "FATAL".into(),
            code: "28000".into(),
            message: "password tok was wrong".into(),
            detail: Some("detail tok".into()),
            hint: Some("hint tok".into()),
            other: vec![(b'W', "where tok".into())],
        };
        fields(&mut f, "tok");
        let all = format!("{f:?}");
        assert!(!all.contains("tok"), "{all}");
        assert_eq!(f.message, "password [redacted] was wrong");
    }
}

//! Checks shared by the fuzz targets.

use std::fmt::Debug;

use rds_iam_protocol::{Decoded, ProtocolError};

/// Decodes the frame at the start of `buf` the way the proxy meets it: after every read, on
/// everything buffered so far. The decoders are stateless, so a read boundary anywhere in the
/// frame is the same as decoding a prefix. This decodes every prefix up to the first one whose
/// answer is not `Incomplete`, and checks that answer against the whole buffer's and against
/// one byte more: that covers every way the bytes could have been split into reads (one byte
/// at a time included). Returns the whole buffer's answer.
pub fn decode_like_reads<T, F>(buf: &[u8], decode: F) -> Result<Decoded<T>, ProtocolError>
where
    T: PartialEq + Debug,
    F: Fn(&[u8]) -> Result<Decoded<T>, ProtocolError>,
{
    let whole = decode(buf);
    for k in 0..=buf.len() {
        let first = decode(&buf[..k]);
        if matches!(first, Ok(Decoded::Incomplete)) {
            continue;
        }
        same_answer(&first, &whole, k);
        if k < buf.len() {
            same_answer(&decode(&buf[..k + 1]), &whole, k + 1);
        }
        if let Ok(Decoded::Complete { consumed, .. }) = &first {
            // A value is produced exactly when its last byte arrives (direct TLS: on the
            // first byte, consuming nothing).
            assert!(
                *consumed == k || (*consumed == 0 && k == 1),
                "complete after {k} bytes but consumed {consumed}"
            );
        }
        return whole;
    }
    assert_eq!(whole, Ok(Decoded::Incomplete));
    whole
}

fn same_answer<T: PartialEq + Debug>(
    prefix: &Result<Decoded<T>, ProtocolError>,
    whole: &Result<Decoded<T>, ProtocolError>,
    k: usize,
) {
    let same = match (prefix, whole) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => same_error(a, b),
        _ => false,
    };
    assert!(
        same,
        "the first {k} bytes gave {prefix:?}, the whole buffer {whole:?}"
    );
}

/// Errors are the same, except that a length rejected before its whole length word arrived
/// is reported as the lower bound known then (documented in the protocol crate, and tested
/// there).
fn same_error(prefix: &ProtocolError, whole: &ProtocolError) -> bool {
    use ProtocolError as E;
    match (prefix, whole) {
        (E::StartupTooLarge { len: a }, E::StartupTooLarge { len: b }) => a <= b,
        (
            E::BackendMessageTooLarge { tag: t, len: a },
            E::BackendMessageTooLarge { tag, len: b },
        ) => t == tag && a <= b,
        (
            E::FrontendMessageTooLarge {
                tag: t,
                len: a,
                max: m,
            },
            E::FrontendMessageTooLarge { tag, len: b, max },
        ) => t == tag && m == max && a <= b,
        _ => prefix == whole,
    }
}

/// Every error must be displayable and map to a SQLSTATE (both are sent to the client).
pub fn check_error(e: &ProtocolError) {
    use rds_iam_protocol::limits::*;
    let _ = e.to_string();
    assert_eq!(e.sqlstate().0.len(), 5);
    match e {
        ProtocolError::StartupTooLarge { len } => assert!(*len > MAX_STARTUP_PACKET_LEN),
        ProtocolError::StartupTooShort { len } => assert!(*len < MIN_STARTUP_PACKET_LEN),
        ProtocolError::InvalidCancelKeyLength { len } => {
            assert!(!(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(len))
        }
        ProtocolError::BackendMessageTooLarge { len, .. } => {
            assert!(*len > MAX_BACKEND_STARTUP_MESSAGE_LEN)
        }
        ProtocolError::FrontendMessageTooLarge { len, max, .. } => assert!(len > max),
        _ => {}
    }
}

//! Small bounded readers shared by the decoders.

use bytes::{BufMut, BytesMut};

/// Lower bound of a big-endian u32 length word when only a prefix of it is
/// buffered (missing bytes read as zero). Lets callers reject an oversized
/// length before the rest of the word, let alone the body, arrives.
pub(crate) fn length_lower_bound(prefix: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    let n = prefix.len().min(4);
    word[..n].copy_from_slice(&prefix[..n]);
    u32::from_be_bytes(word)
}

pub(crate) fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Splits a NUL-terminated string off the front of `buf`; `None` when the
/// frame ends without a terminator.
pub(crate) fn take_cstr(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = buf.iter().position(|&b| b == 0)?;
    Some((&buf[..nul], &buf[nul + 1..]))
}

/// Writes `s` up to (not including) its first NUL, then a NUL: an embedded
/// NUL can never end a field early and inject another one.
pub(crate) fn put_cstr(out: &mut BytesMut, s: &str) {
    let bytes = s.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    out.put_slice(&bytes[..end]);
    out.put_u8(0);
}

/// Encoded size of [`put_cstr`]'s output.
pub(crate) fn cstr_len(s: &str) -> usize {
    s.as_bytes().iter().position(|&b| b == 0).unwrap_or(s.len()) + 1
}

/// Writes a typed frame: tag, length word (filled in afterwards), body.
pub(crate) fn put_frame(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    let len_at = out.len();
    out.put_u32(0);
    body(out);
    let len = (out.len() - len_at) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

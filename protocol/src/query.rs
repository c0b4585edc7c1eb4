//! Simple Query protocol pieces for a one-off query after the handshake (`rds-iam-proxy
//! check` runs `SELECT 1`): the Query message and the DataRow body. IO-free like the rest.

use bytes::BytesMut;

use crate::backend::FRAME_HEADER_LEN;
use crate::error::ProtocolError;
use crate::wire::{put_cstr, put_frame, read_u32};

/// Appends a simple Query (`Q`) for `sql`.
pub fn encode_query(sql: &str, out: &mut BytesMut) {
    put_frame(out, b'Q', |b| put_cstr(b, sql));
}

/// The column values of a whole DataRow frame (`D`, length word, body); `None` is SQL NULL.
pub fn decode_data_row(frame: &[u8]) -> Result<Vec<Option<Vec<u8>>>, ProtocolError> {
    let err = |reason: &str| ProtocolError::backend(b'D', reason);
    if frame.first() != Some(&b'D') {
        return Err(err("not a DataRow"));
    }
    let body = frame
        .get(FRAME_HEADER_LEN..)
        .ok_or_else(|| err("frame shorter than its header"))?;
    let count = body
        .get(..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| err("missing column count"))?;
    let mut at = 2;
    let mut values = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let len = read_u32(body, at).ok_or_else(|| err("truncated column length"))?;
        at += 4;
        if len == u32::MAX {
            // -1: SQL NULL, no bytes follow.
            values.push(None);
            continue;
        }
        let end = at
            .checked_add(len as usize)
            .filter(|&end| end <= body.len())
            .ok_or_else(|| err("column runs past the end of the frame"))?;
        values.push(Some(body[at..end].to_vec()));
        at = end;
    }
    if at != body.len() {
        return Err(err("trailing bytes after the last column"));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_frame_is_tag_length_and_nul_terminated_sql() {
        let mut out = BytesMut::new();
        encode_query("SELECT 1", &mut out);
        assert_eq!(&out[..], b"Q\0\0\0\x0dSELECT 1\0");
    }

    #[test]
    fn data_row_values_and_null() {
        let frame = b"D\0\0\0\x0f\0\x02\0\0\0\x011\xff\xff\xff\xff";
        assert_eq!(
            decode_data_row(frame).unwrap(),
            vec![Some(b"1".to_vec()), None]
        );
    }

    #[test]
    fn data_row_length_past_the_end_is_an_error() {
        let frame = b"D\0\0\0\x0b\0\x01\0\0\0\x091";
        assert!(decode_data_row(frame).is_err());
        assert!(decode_data_row(b"Z\0\0\0\x05I").is_err());
    }
}

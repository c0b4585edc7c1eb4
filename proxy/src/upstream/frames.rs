use bytes::{Bytes, BytesMut};
use rds_iam_protocol::{decode_backend_message, BackendMessage, Decoded};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::UpstreamError;

/// Reads one backend message, returning it with its raw frame (for relaying unchanged).
/// The decoder bounds each frame's length before its body is awaited.
pub(crate) async fn read_backend<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<(BackendMessage, Bytes), UpstreamError> {
    loop {
        match decode_backend_message(buf)? {
            Decoded::Complete { value, consumed } => {
                return Ok((value, buf.split_to(consumed).freeze()));
            }
            Decoded::Incomplete => {
                if stream.read_buf(buf).await? == 0 {
                    return Err(UpstreamError::Closed);
                }
            }
        }
    }
}

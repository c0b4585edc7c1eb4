//! Telling a client why it is being closed, while the protocol still allows it.

use bytes::BytesMut;
use rds_iam_protocol::{encode_error_response, Severity};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::error::{ClientError, UserFacing};

/// Upper bound on the time spent telling a client why it is being closed.
const ERROR_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends a FATAL ErrorResponse for `error` (or the database's own, unchanged) and closes,
/// unless the error means no reply can reach the client. Write failures are ignored: the
/// client may already be gone.
pub(crate) async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, error: &ClientError) {
    if !error.may_reply() {
        return;
    }
    let mut out = BytesMut::with_capacity(512);
    let server_frame = match error {
        ClientError::Upstream(e) => e.server_frame(),
        _ => None,
    };
    match server_frame {
        Some(frame) => out.extend_from_slice(frame),
        None => {
            let reply = error.client_message();
            encode_error_response(
                Severity::Fatal,
                error.sqlstate(),
                &format!("rds-iam-proxy: {}", reply.message),
                reply.hint.as_deref(),
                &mut out,
            );
        }
    }
    let _ = tokio::time::timeout(ERROR_WRITE_TIMEOUT, async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await;
}

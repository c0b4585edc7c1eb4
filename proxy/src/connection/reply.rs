use bytes::BytesMut;
use rds_iam_protocol::{encode_error_response, Severity};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::ClientError;

/// Upper bound on the time spent telling a client why it is being closed.
const ERROR_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends a FATAL ErrorResponse (or the database's own, unchanged) and closes. Failures are
/// ignored: the client may already be gone.
pub async fn send_error<S: AsyncWrite + Unpin>(stream: &mut S, error: &ClientError) {
    let mut out = BytesMut::with_capacity(512);
    let server_frame = match error {
        ClientError::Upstream(e) => e.server_frame(),
        _ => None,
    };
    match server_frame {
        Some(frame) => out.extend_from_slice(frame),
        None => {
            let (message, hint) = error.client_message();
            encode_error_response(
                Severity::Fatal,
                error.sqlstate(),
                &format!("rds-iam-proxy: {message}"),
                hint.as_deref(),
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

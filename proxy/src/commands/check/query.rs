//! The last stage: `SELECT 1` on the authenticated session, read until ReadyForQuery.

use bytes::BytesMut;
use rds_iam_protocol::{decode_data_row, encode_query, BackendMessage};
use tokio::io::AsyncWriteExt;

use crate::upstream::{read_backend, UpstreamError, UpstreamStream};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("the database answered SELECT 1 with an error: {message} ({code})")]
    Server { code: String, message: String },
    #[error("SELECT 1 returned no row")]
    NoRow,
    #[error("the database sent a malformed row: {0}")]
    Protocol(#[from] rds_iam_protocol::ProtocolError),
}

/// Runs `SELECT 1` and returns the value of the first column of the first row.
pub async fn select_one(stream: &mut UpstreamStream) -> Result<String, QueryError> {
    let mut out = BytesMut::new();
    encode_query("SELECT 1", &mut out);
    stream.write_all(&out).await.map_err(UpstreamError::Io)?;
    stream.flush().await.map_err(UpstreamError::Io)?;
    let mut buf = BytesMut::new();
    let mut first = None;
    let mut error = None;
    loop {
        let (message, frame) = read_backend(stream, &mut buf).await?;
        match message {
            BackendMessage::Other { tag: b'D' } if first.is_none() => {
                let values = decode_data_row(&frame)?;
                first = Some(match values.into_iter().next().flatten() {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None => "NULL".into(),
                });
            }
            BackendMessage::ErrorResponse(fields) => error = Some(fields),
            // The server always ends a simple query with ReadyForQuery, error or not.
            BackendMessage::ReadyForQuery { .. } => break,
            _ => {}
        }
    }
    if let Some(fields) = error {
        return Err(QueryError::Server {
            code: fields.code,
            message: fields.message,
        });
    }
    first.ok_or(QueryError::NoRow)
}

//! One simple Query on an authenticated session, its rows read up to ReadyForQuery (`check`'s
//! `SELECT 1`, the topology monitor's reads).

use bytes::BytesMut;
use rds_iam_protocol::{decode_data_row, encode_query, BackendMessage, ErrorFields};
use tokio::io::AsyncWriteExt;

use super::{read_backend, UpstreamError, UpstreamStream};

/// The rows of every statement in the query, in order; NULL is `None`.
pub(crate) type Rows = Vec<Vec<Option<String>>>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum QueryError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("the database answered {}: {}", .0.code, .0.message)]
    Server(ErrorFields),
}

/// Sends `sql` as one simple Query.
pub(crate) async fn send_query(stream: &mut UpstreamStream, sql: &str) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(sql.len() + 6);
    encode_query(sql, &mut out);
    stream.write_all(&out).await?;
    stream.flush().await
}

/// Sends `sql` and reads its rows (text format) until ReadyForQuery. `buf` holds bytes read
/// ahead and keeps any the server sent after ReadyForQuery.
pub(crate) async fn simple_query(
    stream: &mut UpstreamStream,
    buf: &mut BytesMut,
    sql: &str,
) -> Result<Rows, QueryError> {
    send_query(stream, sql).await.map_err(UpstreamError::Io)?;
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let (message, frame) = read_backend(stream, buf).await?;
        match message {
            BackendMessage::Other { tag: b'D' } => {
                let values = decode_data_row(&frame).map_err(UpstreamError::from)?;
                rows.push(
                    values
                        .into_iter()
                        .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()))
                        .collect(),
                );
            }
            BackendMessage::ErrorResponse(fields) => {
                error.get_or_insert(fields);
            }
            // The server always ends a simple query with ReadyForQuery, error or not.
            BackendMessage::ReadyForQuery { .. } => break,
            _ => {}
        }
    }
    match error {
        Some(fields) => Err(QueryError::Server(fields)),
        None => Ok(rows),
    }
}
